/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* escrow.c: the escrow record, the spool and the hook (see escrow.h). */

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dra.h"
#include "escrow.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "recovery.h"
#include "secmem.h"

static const char *const escrow_target_table[_ESCROW_TARGET_MAX] = {
        [ESCROW_TARGET_SPOOL] = "spool",
        [ESCROW_TARGET_HOOK] = "hook",
        [ESCROW_TARGET_AD] = "ad",
};

const char *escrow_target_to_string(EscrowTarget t) {
        return t >= 0 && t < _ESCROW_TARGET_MAX ? escrow_target_table[t] : NULL;
}

EscrowTarget escrow_target_from_string(const char *s) {
        for (EscrowTarget t = 0; s && t < _ESCROW_TARGET_MAX; t++)
                if (streq(s, escrow_target_table[t]))
                        return t;
        return _ESCROW_TARGET_INVALID;
}

int escrow_targets_from_string(const char *s, uint32_t *ret_mask) {
        _cleanup_free_ char *copy = strdup(s);
        char *save = NULL;
        uint32_t mask = 0;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                EscrowTarget t = escrow_target_from_string(w);

                if (t < 0)
                        return -EINVAL;
                mask |= 1u << t;
        }
        *ret_mask = mask;
        return 0;
}

char *escrow_targets_to_string(uint32_t mask) {
        char buf[64] = "";

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if (mask & (1u << t)) {
                        if (buf[0])
                                strcat(buf, " ");
                        strcat(buf, escrow_target_table[t]);
                }
        return strdup(buf);
}

/* ---- the record --------------------------------------------------------------------------------- */

static int password_is_canonical(const char *password) {
        _cleanup_secure_ uint8_t *key = NULL;
        _cleanup_secure_ char *again = NULL;
        int r;

        if (!password || strlen(password) != RECOVERY_PASSWORD_LEN)
                return -EINVAL;
        r = recovery_password_parse(password, &key, NULL);
        if (r < 0)
                return -EINVAL;
        r = recovery_password_format(key, &again);
        if (r < 0)
                return r;
        return memeq_secure(again, password, RECOVERY_PASSWORD_LEN) ? 0 : -EINVAL;
}

int escrow_password_to_json(const EscrowPassword *e, char **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        static const char field[] = ",\"recovery_password\":\"";
        char key_id[GUID_STRING_MAX], vmk_id[GUID_STRING_MAX];
        _cleanup_free_ char *text = NULL;
        char *out;
        size_t n, size;
        int r;

        if (!o)
                return -ENOMEM;
        r = password_is_canonical(e->password);
        if (r < 0)
                return r;

        r = json_add_owned(o, "sealvol_escrow_version", json_object_new_int(ESCROW_RECORD_VERSION));
        if (r >= 0)
                r = json_add_string(o, "type", "recovery-password");
        if (r >= 0)
                r = json_add_string(o, "hostname", strempty(e->hostname));
        if (r >= 0 && e->machine_id)
                r = json_add_string(o, "machine_id", e->machine_id);
        if (r >= 0)
                r = json_add_string(o, "volume_uuid", e->volume_uuid);
        if (r >= 0)
                r = json_add_string(o, "device", strempty(e->device));
        if (r >= 0)
                r = json_add_string(o, "key_id", guid_format(&e->key_id, key_id));
        if (r >= 0)
                r = json_add_string(o, "vmk_id", guid_format(&e->vmk_id, vmk_id));
        if (r >= 0)
                r = json_add_time(o, "created", e->created);
        if (r < 0)
                return r;

        /* json-c copies strings into memory it frees without wiping, so it never sees the password:
         * it is appended to the secure copy as the last member. It is digits and dashes only. */
        text = json_format(o);
        if (!text)
                return -ENOMEM;
        n = strlen(text);
        if (n < 2 || text[n - 1] != '}')
                return -EINVAL;
        size = n - 1 + strlen(field) + RECOVERY_PASSWORD_LEN + strlen("\"}\n");
        if (size > ESCROW_RECORD_MAX)
                return -E2BIG;
        out = secure_alloc(size + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, text, n - 1);
        memcpy(out + n - 1, field, strlen(field));
        memcpy(out + n - 1 + strlen(field), e->password, RECOVERY_PASSWORD_LEN);
        memcpy(out + n - 1 + strlen(field) + RECOVERY_PASSWORD_LEN, "\"}\n", 4);
        *ret = out;
        if (ret_size)
                *ret_size = size;
        return 0;
}

int escrow_vmk_to_json(const char *hostname, const char *machine_id, const Guid *vmk_id, const char *export_json,
                       char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *export = NULL;
        char id[GUID_STRING_MAX];
        char *text;
        int r;

        if (!o)
                return -ENOMEM;
        r = json_parse_object(export_json, strlen(export_json), 8, &export);
        if (r < 0)
                return -EBADMSG;
        r = json_add_owned(o, "sealvol_escrow_version", json_object_new_int(ESCROW_RECORD_VERSION));
        if (r >= 0)
                r = json_add_string(o, "type", "vmk");
        if (r >= 0)
                r = json_add_string(o, "hostname", strempty(hostname));
        if (r >= 0 && machine_id)
                r = json_add_string(o, "machine_id", machine_id);
        if (r >= 0)
                r = json_add_string(o, "vmk_id", guid_format(vmk_id, id));
        if (r >= 0)
                r = json_add_owned(o, "vmk_export", TAKE_PTR(export));
        if (r < 0)
                return r;
        text = json_format(o);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

/* ---- the spool ---------------------------------------------------------------------------------- */

int escrow_spool_name(const char *volume_uuid, const Guid *key_id, bool encrypted, char **ret) {
        char g[GUID_STRING_MAX];

        if (!volume_uuid || strchr(volume_uuid, '/') || volume_uuid[0] == '.')
                return -EINVAL;
        if (asprintf(ret, "%s-%s.%s", volume_uuid, guid_format(key_id, g), encrypted ? "cms" : "json") < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

static int spool_open_dir(const char *dir) {
        struct stat st;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_debug_errno(errno, "Cannot create the escrow spool %s: %m", dir);
        if (stat(dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* Records are encrypted or the directory is the only thing between them and other users. */
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return log_debug_errno(EPERM, "The escrow spool %s is writable by others, refusing.", dir);
        return 0;
}

int escrow_spool_store(const char *dir, const char *name, X509 *dra_cert, const void *data, size_t size,
                       char **ret_path, bool *ret_verified) {
        _cleanup_free_ uint8_t *cms = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_secure_ char *back = NULL;
        _cleanup_free_ char *plain_back = NULL;
        const void *content = data;
        size_t content_size = size, back_size = 0;
        int r;

        if (!dir || dir[0] != '/' || !name || strchr(name, '/') || size == 0 || size > ESCROW_RECORD_MAX)
                return -EINVAL;
        r = spool_open_dir(dir);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        if (dra_cert) {
                r = dra_wrap(dra_cert, data, size, &cms, &content_size);
                if (r < 0)
                        return log_debug_errno(r, "Cannot encrypt the escrow record to the DRA certificate: %m");
                content = cms;
        }
        r = write_file_atomic(path, content, content_size, 0600);
        if (r < 0)
                return log_debug_errno(r, "Cannot write %s: %m", path);

        /* Read back what the disk holds: a full disk or a broken file system shows here, not on the
         * day the password is needed. A plain record is a secret: it is read into secure memory. */
        if (dra_cert) {
                r = read_file_full(path, ESCROW_RECORD_MAX * 4, &plain_back, &back_size);
                if (r >= 0)
                        r = back_size == content_size && memcmp(plain_back, content, back_size) == 0;
        } else {
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                ssize_t n;

                back = secure_alloc(size + 1);
                if (!back)
                        return -ENOMEM;
                if (fd < 0)
                        r = -errno;
                else {
                        n = read(fd, back, size + 1);
                        r = n < 0 ? -errno : (size_t) n == size && memeq_secure(back, data, size);
                }
        }
        if (r < 0)
                return log_debug_errno(r, "Cannot read back %s: %m", path);
        if (ret_verified)
                *ret_verified = r > 0;
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

/* ---- the hook ----------------------------------------------------------------------------------- */

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

int escrow_hook_run(const char *path, const char *verb, const void *data, size_t size, unsigned timeout_sec,
                    char **ret_output, char **ret_error) {
        char *const argv[] = { (char *) path, (char *) verb, NULL };
        char *const envp[] = { (char *) "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               (char *) "LANG=C.UTF-8", NULL };
        int in[2] = { -EBADF, -EBADF }, out[2] = { -EBADF, -EBADF }, err[2] = { -EBADF, -EBADF };
        _cleanup_free_ char *outbuf = malloc(ESCROW_HOOK_OUTPUT_MAX), *errbuf = malloc(ESCROW_HOOK_OUTPUT_MAX);
        size_t written = 0, n_out = 0, n_err = 0;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, all;
        uint64_t deadline;
        int status = 0, r;
        bool exited = false, timed_out = false;
        _cleanup_close_ int pidfd = -EBADF;
        pid_t pid;

        if (!path || path[0] != '/' || !verb)
                return -EINVAL;
        if (!outbuf || !errbuf)
                return -ENOMEM;
        if (timeout_sec == 0)
                timeout_sec = ESCROW_HOOK_TIMEOUT_SEC_DEFAULT;
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
        /* Nothing of the daemon's reaches the hook: not the bus, not the TPM, not a volume. */
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
                return log_debug_errno(r, "Cannot run the escrow hook %s: %m", path);
        }
        /* The hook's end is seen through a pidfd: a hook that closes its output and lingers is still
         * bounded by the deadline. */
        pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                r = -errno;
                (void) kill(-pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                safe_close(in[1]);
                safe_close(out[0]);
                safe_close(err[0]);
                return log_debug_errno(r, "Cannot watch the escrow hook: %m");
        }
        (void) fcntl(in[1], F_SETFL, O_NONBLOCK);
        (void) fcntl(out[0], F_SETFL, O_NONBLOCK);
        (void) fcntl(err[0], F_SETFL, O_NONBLOCK);
        /* A hook that exits without reading its input must not kill the caller with SIGPIPE: it is
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
                r = poll(p, ELEMENTSOF(p), (int) (deadline - now));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
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
                        /* Keep the first ESCROW_HOOK_OUTPUT_MAX bytes; drain the rest. */
                        ssize_t k = *n < ESCROW_HOOK_OUTPUT_MAX ? read(*fd, buf + *n, ESCROW_HOOK_OUTPUT_MAX - *n)
                                                                 : read(*fd, scratch, sizeof(scratch));
                        if (k > 0 && *n < ESCROW_HOOK_OUTPUT_MAX)
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

        if (timed_out || (r < 0 && !exited))
                (void) kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        /* Whatever the hook left running in its process group goes with it. */
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
                return log_debug_errno(ETIMEDOUT, "The escrow hook %s did not finish in %u s, killed.", path,
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
