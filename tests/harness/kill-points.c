/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* kill-points.c: kill a child at its k-th write to a directory, through ptrace (see kill-points.h). */

#include <limits.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

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
