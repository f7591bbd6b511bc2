/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kill-points.c: kill a child at its k-th write to a directory, through ptrace (see kill-points.h). */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "kill-points.h"
#include "test-util.h"

/* System calls that change a file through a descriptor (argument 0); the filter below stops the
 * child at these and at the namespace changes only. */
static bool is_fd_write(uint64_t nr) {
        return nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_writev || nr == SYS_pwritev ||
               nr == SYS_pwritev2 || nr == SYS_fsync || nr == SYS_fdatasync || nr == SYS_ftruncate ||
               nr == SYS_fallocate;
}

/* System calls that change the namespace: counted whatever the path (the code under test makes them
 * only for its own files). */
static bool is_namespace_change(uint64_t nr) {
        return nr == SYS_rename || nr == SYS_renameat || nr == SYS_renameat2 || nr == SYS_unlink ||
               nr == SYS_unlinkat || nr == SYS_truncate;
}

static bool fd_is_under(pid_t pid, uint64_t fd, const char *prefix) {
        char link[64], target[PATH_MAX];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/%d/fd/%llu", (int) pid, (unsigned long long) fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        return strncmp(target, prefix, strlen(prefix)) == 0;
}

static const uint32_t watched_syscalls[] = {
        SYS_write,     SYS_pwrite64, SYS_writev,    SYS_pwritev,  SYS_pwritev2, SYS_fsync,    SYS_fdatasync,
        SYS_ftruncate, SYS_fallocate, SYS_rename,   SYS_renameat, SYS_renameat2, SYS_unlink, SYS_unlinkat,
        SYS_truncate,
};

/* In the child: stop for the tracer only at the watched system calls (SECCOMP_RET_TRACE), so the
 * thousands of reads libcryptsetup and blkid make run at full speed. */
static int install_filter(void) {
        struct sock_filter prog[3 + ELEMENTSOF(watched_syscalls) + 2];
        size_t n = 0;

        prog[n++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
        /* Another ABI (a 32-bit call): not ours to watch. */
        prog[n++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0,
                                                  (uint8_t) (ELEMENTSOF(watched_syscalls) + 2));
        prog[n++] = (struct sock_filter) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
        for (size_t i = 0; i < ELEMENTSOF(watched_syscalls); i++)
                /* Match: jump over the remaining tests and the ALLOW to the TRACE. */
                prog[n++] = (struct sock_filter) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, watched_syscalls[i],
                                                          (uint8_t) (ELEMENTSOF(watched_syscalls) - i), 0);
        prog[n++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
        prog[n++] = (struct sock_filter) BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);

        struct sock_fprog fprog = { .len = (unsigned short) n, .filter = prog };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
                return -errno;
        return 0;
}

int test_run_killed_at(KillPointFn fn, void *userdata, const char *path_prefix, unsigned k, bool *ret_completed) {
        unsigned seen = 0;
        int status;
        pid_t pid;

        /* Under valgrind the child's system calls are valgrind's: our filter and ptrace stops would
         * see (and kill) the emulator, not the change. There the change runs once, uninterrupted, so
         * memcheck still sees its code; the kills are tested by the other builds. */
        if (!isempty(getenv("SEALVOL_VALGRIND"))) {
                pid = fork();
                if (pid < 0)
                        return -errno;
                if (pid == 0)
                        _exit(fn(userdata) < 0 ? 1 : 0);
                if (waitpid(pid, &status, 0) != pid)
                        return -errno;
                *ret_completed = true;
                return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
        }

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                (void) prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 || install_filter() < 0)
                        _exit(126);
                (void) raise(SIGSTOP);
                /* _exit(): no atexit handlers (a sanitizer's leak check would try to ptrace us). */
                _exit(fn(userdata) < 0 ? 1 : 0);
        }

        if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
                return -ECHILD;
        if (ptrace(PTRACE_SETOPTIONS, pid, NULL, PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL) < 0)
                return -errno;

        for (int sig = 0;;) {
                struct __ptrace_syscall_info info;

                if (ptrace(PTRACE_CONT, pid, NULL, (void *) (intptr_t) sig) < 0)
                        return -errno;
                sig = 0;
                if (waitpid(pid, &status, 0) != pid)
                        return -errno;
                if (WIFEXITED(status)) {
                        *ret_completed = true;
                        return WEXITSTATUS(status) == 0 ? 0 : -EIO;
                }
                if (WIFSIGNALED(status))
                        return -EIO;
                if (!WIFSTOPPED(status))
                        continue;
                if (status >> 8 != (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8))) {
                        sig = WSTOPSIG(status); /* a real signal: deliver it */
                        continue;
                }
                if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *) sizeof(info), &info) < 0)
                        return -errno;
                if (info.op != PTRACE_SYSCALL_INFO_SECCOMP)
                        continue;
                if (!(is_namespace_change(info.seccomp.nr) ||
                      (is_fd_write(info.seccomp.nr) && fd_is_under(pid, info.seccomp.args[0], path_prefix))))
                        continue;
                if (++seen < k)
                        continue;

                /* Stopped at the entry of the k-th step: it never happens. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, &status, 0);
                *ret_completed = false;
                return 0;
        }
}

/* ---- a traced program --------------------------------------------------------------------------- */

/* The program and the children it starts (a hook and what the hook runs). */
#define KILL_POINT_TRACEES_MAX 256
#define KILL_ALL_TIMEOUT_MS 60000u

struct KillPointProcess {
        pid_t pid; /* the program; 0 once reaped */
        pid_t tracees[KILL_POINT_TRACEES_MAX];
        bool fresh[KILL_POINT_TRACEES_MAX]; /* its initial SIGSTOP (auto-attached child) is to come */
        size_t n_tracees;
        char **prefixes;
        KillPointGrain grain;
        char last_write[PATH_MAX]; /* KILL_POINT_GRAIN_WRITE_RUNS: the file of the run of writes going on */
        bool traced;
};

pid_t kill_point_process_pid(const KillPointProcess *p) {
        return p->pid;
}

static bool path_under(const char *path, char *const *prefixes) {
        for (size_t i = 0; prefixes[i]; i++) {
                size_t n = strlen(prefixes[i]);

                if (strncmp(path, prefixes[i], n) == 0 && (path[n] == '/' || path[n] == '\0'))
                        return true;
        }
        return false;
}

static int link_target(const char *link, char *buf, size_t size) {
        ssize_t n = readlink(link, buf, size - 1);

        if (n < 0)
                return -errno;
        buf[n] = '\0';
        return 0;
}

/* The absolute path a path argument of the stopped tracee names (relative ones against its dirfd). */
static int tracee_path(pid_t pid, int64_t dirfd, uint64_t addr, char *buf, size_t size) {
        char path[PATH_MAX], base[PATH_MAX], link[64];
        size_t n = 0;
        int r;

        /* Word by word: a string near the end of a mapping cannot be read in one larger piece. */
        while (n < sizeof(path) - sizeof(long)) {
                long word;

                errno = 0;
                word = ptrace(PTRACE_PEEKDATA, pid, (void *) (uintptr_t) (addr + n), NULL);
                if (errno != 0)
                        return -errno;
                memcpy(path + n, &word, sizeof(word));
                if (memchr(&word, '\0', sizeof(word)))
                        break;
                n += sizeof(word);
        }
        path[sizeof(path) - 1] = '\0';
        if (path[0] == '/') {
                snprintf(buf, size, "%s", path);
                return 0;
        }
        if ((int) dirfd == AT_FDCWD)
                snprintf(link, sizeof(link), "/proc/%d/cwd", (int) pid);
        else
                snprintf(link, sizeof(link), "/proc/%d/fd/%d", (int) pid, (int) dirfd);
        r = link_target(link, base, sizeof(base));
        if (r < 0)
                return r;
        /* Too long to tell: not ours (the code under test names its files in full). */
        if (strlen(base) + 1 + strlen(path) >= size)
                return -ENAMETOOLONG;
        strcpy(buf, base);
        strcat(buf, "/");
        strcat(buf, path);
        return 0;
}

static bool path_arg_under(pid_t pid, int64_t dirfd, uint64_t addr, char *const *prefixes) {
        char path[PATH_MAX];

        return tracee_path(pid, dirfd, addr, path, sizeof(path)) >= 0 && path_under(path, prefixes);
}

static bool is_sync(uint64_t nr) {
        return nr == SYS_fsync || nr == SYS_fdatasync;
}

/* Whether the system call the tracee is stopped at is a step (see KillPointGrain). */
static bool is_step(KillPointProcess *p, pid_t pid, const struct __ptrace_syscall_info *info) {
        const uint64_t *a = info->seccomp.args;
        char link[64], target[PATH_MAX];
        bool under;

        if (is_fd_write(info->seccomp.nr)) {
                snprintf(link, sizeof(link), "/proc/%d/fd/%llu", (int) pid, (unsigned long long) a[0]);
                if (link_target(link, target, sizeof(target)) < 0 || !path_under(target, p->prefixes))
                        return false;
                if (p->grain == KILL_POINT_GRAIN_CALLS)
                        return true;
                /* A sync ends a run of writes (the writer's own commit point) but changes nothing a
                 * killed process would not have left anyway. */
                if (is_sync(info->seccomp.nr)) {
                        p->last_write[0] = '\0';
                        return false;
                }
                if (streq(p->last_write, target))
                        return false;
                snprintf(p->last_write, sizeof(p->last_write), "%s", target);
                return true;
        }
        switch (info->seccomp.nr) {
        case SYS_unlink:
        case SYS_truncate:
                under = path_arg_under(pid, AT_FDCWD, a[0], p->prefixes);
                break;
        case SYS_unlinkat:
                under = path_arg_under(pid, (int64_t) a[0], a[1], p->prefixes);
                break;
        case SYS_rename:
                under = path_arg_under(pid, AT_FDCWD, a[0], p->prefixes) ||
                        path_arg_under(pid, AT_FDCWD, a[1], p->prefixes);
                break;
        case SYS_renameat:
        case SYS_renameat2:
                under = path_arg_under(pid, (int64_t) a[0], a[1], p->prefixes) ||
                        path_arg_under(pid, (int64_t) a[2], a[3], p->prefixes);
                break;
        default:
                under = false;
                break;
        }
        if (under)
                p->last_write[0] = '\0';
        return under;
}

static void strv_free(char **l) {
        for (size_t i = 0; l && l[i]; i++)
                free(l[i]);
        free(l);
}

/* The tracer of pid, from /proc/<pid>/status; 0 when there is none (or pid is gone). */
static pid_t tracer_of(pid_t pid) {
        char path[64], line[128];
        pid_t tracer = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "TracerPid: %d", &tracer) == 1)
                        break;
        (void) fclose(f);
        return tracer;
}

/* What the tracer never heard of: a child whose parent was killed while it stopped at the fork, vfork
 * or clone that made it (SIGKILL ends that stop without reporting it). The child is traced from its
 * first instruction and stays stopped there, holding what it inherited (the daemon's bus connection,
 * and with it the daemon's name): every process this tracer traces that is no longer a known tracee
 * is killed and reaped. */
static void kill_unknown_tracees(void) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        pid_t self = getpid();
        struct dirent *de;

        while (d && (de = readdir(d))) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);

                if (*end != '\0' || pid <= 0 || (pid_t) pid == self || tracer_of((pid_t) pid) != self)
                        continue;
                (void) kill((pid_t) pid, SIGKILL);
                (void) waitpid((pid_t) pid, NULL, __WALL);
        }
}

static uint64_t now_msec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static void tracee_remove(KillPointProcess *p, size_t i) {
        memmove(p->tracees + i, p->tracees + i + 1, (p->n_tracees - i - 1) * sizeof(p->tracees[0]));
        memmove(p->fresh + i, p->fresh + i + 1, (p->n_tracees - i - 1) * sizeof(p->fresh[0]));
        p->n_tracees--;
}

static bool tracee_known(const KillPointProcess *p, pid_t t) {
        for (size_t i = 0; i < p->n_tracees; i++)
                if (p->tracees[i] == t)
                        return true;
        return false;
}

/* The threads of the tracees that the tracer never heard of: a thread cloned while its creator was
 * killed in the stop that would have reported it. Its death is the tracer's to reap like any other
 * tracee's, and until it is, its thread group's leader is not reported dead at all: it joins the
 * list. 1 if one did. */
static int adopt_unknown_threads(KillPointProcess *p) {
        int adopted = 0;

        for (size_t i = 0; i < p->n_tracees && p->n_tracees < KILL_POINT_TRACEES_MAX; i++) {
                _cleanup_(closedirp) DIR *d = NULL;
                char path[64];
                struct dirent *de;

                snprintf(path, sizeof(path), "/proc/%d/task", (int) p->tracees[i]);
                d = opendir(path);
                while (d && (de = readdir(d)) && p->n_tracees < KILL_POINT_TRACEES_MAX) {
                        char *end;
                        long tid = strtol(de->d_name, &end, 10);

                        if (*end != '\0' || tid <= 0 || tracee_known(p, (pid_t) tid))
                                continue;
                        p->fresh[p->n_tracees] = false;
                        p->tracees[p->n_tracees++] = (pid_t) tid;
                        adopted = 1;
                }
        }
        return adopted;
}

static void kill_all(KillPointProcess *p) {
        uint64_t deadline = now_msec() + KILL_ALL_TIMEOUT_MS;

        for (size_t i = 0; i < p->n_tracees; i++)
                (void) kill(p->tracees[i], SIGKILL);
        /* Reaped (or, for the program's children, handed back to their parent) only once the tracer
         * has seen them die, each asked without blocking: a thread group's leader is reported dead
         * only after its other threads were reaped, so a blocking wait for it would wait for ever on
         * a thread it has not reaped. A fork, vfork or clone the tracer had not heard of yet is
         * reported now, by its parent's stop: that child is traced from its first instruction, and
         * would be left stopped there for ever, holding what it inherited (the daemon's bus
         * connection, and with it the daemon's name), so it is killed and reaped too; a thread whose
         * clone was never reported is found in /proc. Bounded: a tracee that does not die in
         * KILL_ALL_TIMEOUT_MS is left, and the caller's next step fails rather than hangs. */
        while (p->n_tracees > 0 && now_msec() < deadline) {
                bool progress = false;

                for (size_t i = p->n_tracees; i-- > 0;) {
                        pid_t t = p->tracees[i], w;
                        unsigned long child;
                        int status;

                        w = waitpid(t, &status, WNOHANG | __WALL);
                        if (w == 0)
                                continue;
                        progress = true;
                        if (w < 0 || WIFEXITED(status) || WIFSIGNALED(status)) {
                                tracee_remove(p, i);
                                continue;
                        }
                        if (WIFSTOPPED(status) &&
                            IN_SET(status >> 16, PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE) &&
                            ptrace(PTRACE_GETEVENTMSG, t, NULL, &child) >= 0 && !tracee_known(p, (pid_t) child) &&
                            p->n_tracees < KILL_POINT_TRACEES_MAX) {
                                (void) kill((pid_t) child, SIGKILL);
                                p->fresh[p->n_tracees] = false;
                                p->tracees[p->n_tracees++] = (pid_t) child;
                        }
                }
                if (progress || adopt_unknown_threads(p))
                        continue;
                (void) nanosleep(&(struct timespec) { .tv_nsec = 1000 * 1000 }, NULL);
        }
        if (p->n_tracees > 0)
                fprintf(stderr, "kill points: %zu tracees did not die within %u ms\n", p->n_tracees,
                        KILL_ALL_TIMEOUT_MS);
        kill_unknown_tracees();
        p->pid = 0;
}

KillPointProcess *kill_point_process_free(KillPointProcess *p) {
        if (!p)
                return NULL;
        if (p->traced)
                kill_all(p);
        else if (p->pid > 0) {
                (void) kill(p->pid, SIGKILL);
                (void) waitpid(p->pid, NULL, 0);
        }
        strv_free(p->prefixes);
        free(p);
        return NULL;
}

int kill_point_process_spawn(char *const argv[], const char *log_path, const char *const *prefixes,
                             KillPointGrain grain, KillPointProcess **ret) {
        _cleanup_(kill_point_process_freep) KillPointProcess *p = calloc(1, sizeof(KillPointProcess));
        size_t n = 0;
        int status, r;
        pid_t pid;

        if (!p)
                return -ENOMEM;
        p->grain = grain;
        while (prefixes[n])
                n++;
        p->prefixes = calloc(n + 1, sizeof(char *));
        if (!p->prefixes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (!(p->prefixes[i] = strdup(prefixes[i])))
                        return -ENOMEM;

        /* Valgrind's children are valgrind's to run: as test_run_killed_at(), no kill points there. */
        if (!isempty(getenv("SEALVOL_VALGRIND"))) {
                r = test_spawn(argv, log_path, -1, &p->pid);
                if (r < 0)
                        return r;
                *ret = TAKE_PTR(p);
                return 0;
        }

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC),
                    log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || devnull < 0 || log < 0 ||
                    dup2(devnull, STDIN_FILENO) < 0 || dup2(log, STDOUT_FILENO) < 0 || dup2(log, STDERR_FILENO) < 0)
                        _exit(126);
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 || install_filter() < 0)
                        _exit(126);
                (void) raise(SIGSTOP);
                execv(argv[0], argv);
                _exit(127);
        }
        p->pid = p->tracees[0] = pid;
        p->n_tracees = 1;
        p->traced = true;
        if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status))
                return -ECHILD;
        /* The exec is reported as an event rather than as a SIGTRAP that would have to be told from
         * a real one; the program's children are traced from their first instruction. */
        if (ptrace(PTRACE_SETOPTIONS, pid, NULL,
                   PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEFORK |
                           PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE) < 0 ||
            ptrace(PTRACE_CONT, pid, NULL, NULL) < 0)
                return -errno;
        *ret = TAKE_PTR(p);
        return 0;
}

/* Handles whatever the tracees have reported: 1 when the k-th step was reached (everything killed),
 * -ECHILD when the program ended, 0 otherwise; *progress if anything was reported. */
static int pump(KillPointProcess *p, unsigned k, unsigned *seen, bool *progress) {
        for (size_t i = 0; i < p->n_tracees; i++) {
                pid_t t = p->tracees[i], w;
                int status, sig = 0, event;

                w = waitpid(t, &status, WNOHANG | __WALL);
                if (w == 0)
                        continue;
                if (w < 0)
                        return -errno;
                *progress = true;
                if (WIFEXITED(status) || WIFSIGNALED(status)) {
                        if (t == p->pid) {
                                tracee_remove(p, i);
                                kill_all(p);
                                return -ECHILD;
                        }
                        tracee_remove(p, i--);
                        continue;
                }
                if (!WIFSTOPPED(status))
                        continue;

                event = status >> 16;
                if (event == PTRACE_EVENT_SECCOMP) {
                        struct __ptrace_syscall_info info;

                        if (ptrace(PTRACE_GET_SYSCALL_INFO, t, (void *) sizeof(info), &info) < 0)
                                return -errno;
                        if (info.op == PTRACE_SYSCALL_INFO_SECCOMP && is_step(p, t, &info) && ++*seen == k) {
                                /* Stopped at the entry of the k-th step: it never happens. */
                                kill_all(p);
                                return 1;
                        }
                } else if (IN_SET(event, PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE)) {
                        unsigned long child;

                        if (ptrace(PTRACE_GETEVENTMSG, t, NULL, &child) < 0)
                                return -errno;
                        if (p->n_tracees >= KILL_POINT_TRACEES_MAX)
                                return -E2BIG;
                        p->tracees[p->n_tracees] = (pid_t) child;
                        p->fresh[p->n_tracees++] = true;
                } else if (event == 0 && WSTOPSIG(status) == SIGSTOP && p->fresh[i])
                        p->fresh[i] = false; /* the stop a traced child starts with */
                else if (event == 0)
                        sig = WSTOPSIG(status); /* a real signal: deliver it */
                /* PTRACE_EVENT_EXEC: nothing to do. */
                if (ptrace(PTRACE_CONT, t, NULL, (void *) (intptr_t) sig) < 0 && errno != ESRCH)
                        return -errno;
        }
        return 0;
}

int kill_point_process_run(KillPointProcess *p, unsigned k, KillPointDoneFn done, void *userdata,
                           unsigned timeout_ms, unsigned *ret_steps) {
        uint64_t deadline = now_msec() + timeout_ms;
        sigset_t chld, old;
        unsigned seen = 0;
        int r;

        if (p->pid <= 0)
                return -ECHILD;
        p->last_write[0] = '\0';
        /* A tracee's stop, and a child's exit, raise SIGCHLD: blocked, it wakes the wait below at once
         * and is never lost between a look and the wait. */
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &chld, &old) < 0)
                return -errno;
        for (;;) {
                bool progress = false;

                if (p->traced) {
                        r = pump(p, k, &seen, &progress);
                        if (r != 0)
                                break;
                        if (progress)
                                continue;
                } else if (!test_process_running(p->pid)) {
                        p->pid = 0;
                        r = -ECHILD;
                        break;
                }
                r = done(userdata);
                if (r != 0) {
                        r = r < 0 ? r : 0;
                        break;
                }
                if (now_msec() >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                (void) sigtimedwait(&chld, NULL, &(struct timespec) { .tv_nsec = 10 * 1000 * 1000 });
        }
        (void) sigprocmask(SIG_SETMASK, &old, NULL);
        if (ret_steps)
                *ret_steps = seen;
        return r;
}
