/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* process-util.c: running a helper program with a time limit (see spawn.h). */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "process-util.h"

static uint64_t now_msec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void close_pair(int p[2]) {
        safe_close(p[0]);
        safe_close(p[1]);
}

/* The last non-empty line of buf, without its newline, malloc'd. */
static char *last_line(const char *buf, size_t n) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                n--;
        size_t start = n;
        while (start > 0 && buf[start - 1] != '\n')
                start--;
        return strndup(buf + start, n - start);
}

static char *first_line(const char *buf, size_t n) {
        const char *nl = memchr(buf, '\n', n);

        return strndup(buf, nl ? (size_t) (nl - buf) : n);
}

int spawn_run(char *const argv[], const void *data, size_t size, unsigned timeout_sec, char **ret_output,
              char **ret_error) {
        const char *path = argv[0];
        char *const envp[] = { (char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               (char *) "LANG=C.UTF-8", NULL };
        int in[2] = { -EBADF, -EBADF }, out[2] = { -EBADF, -EBADF }, err[2] = { -EBADF, -EBADF };
        _cleanup_free_ char *outbuf = malloc(SPAWN_OUTPUT_MAX + 1), *errbuf = malloc(SPAWN_OUTPUT_MAX + 1);
        size_t written = 0, n_out = 0, n_err = 0;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        uint64_t deadline;
        int status = 0, r;
        bool exited = false, reaped = false, timed_out = false;
        _cleanup_close_ int pidfd = -EBADF;
        pid_t pid;

        if (!path || path[0] != '/' || timeout_sec == 0)
                return -EINVAL;
        if (!outbuf || !errbuf)
                return -ENOMEM;
        if (access(path, X_OK) < 0)
                return -errno;

        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
                r = -errno;
                close_pair(in);
                close_pair(out);
                close_pair(err);
                return r;
        }

        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
        /* Nothing of the caller's reaches the child: not the bus, not the TPM, not a volume. */
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        r = -posix_spawn(&pid, path, &fa, &attr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        in[0] = safe_close(in[0]);
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        if (r < 0) {
                safe_close(in[1]);
                safe_close(out[0]);
                safe_close(err[0]);
                return log_debug_errno(r, "Cannot run %s: %m", path);
        }
        /* The child's end is seen through a pidfd: one that closes its output and lingers is still
         * bounded by the deadline. Without pidfd_open (valgrind does not know it), waitpid(WNOHANG)
         * every few milliseconds does the same. */
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0 && errno != ENOSYS) {
                r = -errno;
                (void) kill(-pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                safe_close(in[1]);
                safe_close(out[0]);
                safe_close(err[0]);
                return log_debug_errno(r, "Cannot watch %s: %m", path);
        }
        (void) fcntl(in[1], F_SETFL, O_NONBLOCK);
        (void) fcntl(out[0], F_SETFL, O_NONBLOCK);
        (void) fcntl(err[0], F_SETFL, O_NONBLOCK);
        /* A child that exits without reading its input must not kill the caller with SIGPIPE: it is
         * blocked in this thread while writing, and one left pending is taken back below. */
        sigset_t pipe_set, old_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

        deadline = now_msec() + (uint64_t) timeout_sec * 1000u;
        if (size == 0)
                in[1] = safe_close(in[1]);
        while (!exited || out[0] >= 0 || err[0] >= 0) {
                struct pollfd p[4] = {
                        { .fd = in[1], .events = POLLOUT },
                        { .fd = out[0], .events = POLLIN },
                        { .fd = err[0], .events = POLLIN },
                        { .fd = exited ? -EBADF : pidfd, .events = POLLIN },
                };
                uint64_t now = now_msec();

                if (now >= deadline) {
                        timed_out = true;
                        break;
                }
                r = poll(p, ELEMENTSOF(p), pidfd < 0 && !exited ? (int) MIN(deadline - now, (uint64_t) 10)
                                                                   : (int) (deadline - now));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (pidfd < 0 && !exited && waitpid(pid, &status, WNOHANG) == pid)
                        exited = reaped = true;
                if (p[0].revents & (POLLOUT | POLLERR | POLLHUP)) {
                        ssize_t k = write(in[1], (const char *) data + written, size - written);

                        if (k > 0)
                                written += (size_t) k;
                        if ((k < 0 && errno != EAGAIN && errno != EINTR) || written == size)
                                in[1] = safe_close(in[1]);
                }
                for (int i = 1; i <= 2; i++) {
                        int *fd = i == 1 ? &out[0] : &err[0];
                        char *buf = i == 1 ? outbuf : errbuf;
                        size_t *n = i == 1 ? &n_out : &n_err;
                        char scratch[512];

                        if (!(p[i].revents & (POLLIN | POLLERR | POLLHUP)))
                                continue;
                        /* Keep the first SPAWN_OUTPUT_MAX bytes; drain the rest. */
                        ssize_t k = *n < SPAWN_OUTPUT_MAX ? read(*fd, buf + *n, SPAWN_OUTPUT_MAX - *n)
                                                                 : read(*fd, scratch, sizeof(scratch));
                        if (k > 0 && *n < SPAWN_OUTPUT_MAX)
                                *n += (size_t) k;
                        else if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
                                *fd = safe_close(*fd);
                }
                if (p[3].revents & POLLIN)
                        exited = true;
        }
        in[1] = safe_close(in[1]);
        out[0] = safe_close(out[0]);
        err[0] = safe_close(err[0]);
        /* What was read is text to the string functions below: terminate it. */
        outbuf[n_out] = '\0';
        errbuf[n_err] = '\0';

        if (timed_out || (r < 0 && !exited))
                (void) kill(-pid, SIGKILL);
        while (!reaped && waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        /* Whatever the child left running in its process group goes with it. */
        (void) kill(-pid, SIGKILL);
        /* Take back a SIGPIPE our writes raised while it was blocked, before unblocking it. */
        if (!sigismember(&old_set, SIGPIPE)) {
                struct timespec zero = {};

                while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
                        ;
        }
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);

        if (timed_out) {
                if (ret_error && asprintf(ret_error, "killed after %u s", timeout_sec) < 0)
                        *ret_error = NULL;
                return log_debug_errno(ETIMEDOUT, "%s did not finish in %u s, killed.", path,
                                       timeout_sec);
        }
        if (r < 0 && !exited)
                return r;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                _cleanup_free_ char *line = last_line(errbuf, n_err);
                if (ret_error) {
                        int k = WIFEXITED(status) ? asprintf(ret_error, "exit status %d%s%s", WEXITSTATUS(status),
                                                             isempty(line) ? "" : ": ", strempty(line))
                                                  : asprintf(ret_error, "killed by signal %s",
                                                             strsignal(WTERMSIG(status)));
                        if (k < 0)
                                *ret_error = NULL;
                }
                return -EREMOTEIO;
        }
        if (ret_output) {
                *ret_output = first_line(outbuf, n_out);
                if (!*ret_output)
                        return -ENOMEM;
        }
        return 0;
}

int spawn_on_fd(char *const argv[], int fd, const char *const *pass_env, pid_t *ret_pid) {
        char *envp[16] = { (char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                           (char *) "LANG=C.UTF-8" };
        char *buf[ELEMENTSOF(envp)] = {};
        size_t n = 2;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        pid_t pid;
        int r;

        if (!argv[0] || argv[0][0] != '/' || fd < 0)
                return -EINVAL;
        for (size_t i = 0; pass_env && pass_env[i] && n < ELEMENTSOF(envp) - 1; i++) {
                const char *v = getenv(pass_env[i]);

                if (!v)
                        continue;
                if (asprintf(&buf[n], "%s=%s", pass_env[i], v) < 0) {
                        buf[n] = NULL;
                        r = -ENOMEM;
                        goto finish;
                }
                envp[n] = buf[n];
                n++;
        }
        envp[n] = NULL;

        sigemptyset(&none);
        sigfillset(&all);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fd, STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, fd, STDOUT_FILENO);
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        posix_spawnattr_setpgroup(&attr, 0);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        r = -posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r < 0)
                log_debug_errno(r, "Cannot run %s: %m", argv[0]);
        else
                *ret_pid = pid;
finish:
        /* The environment's copies: an array of allocations, not one, so no cleanup attribute. */
        for (size_t i = 0; i < ELEMENTSOF(buf); i++)
                free(buf[i]);
        return r < 0 ? r : 0;
}
