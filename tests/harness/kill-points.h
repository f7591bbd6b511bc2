/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kill-points.h: SIGKILL at every observed step of a multi-step change, deterministically.
 *
 * fn runs in a child traced with ptrace; the child is killed just before its k-th state-changing
 * system call (write, pwrite, fsync, rename, truncate, unlink ...) on a file under path_prefix. Calling
 * this for k = 1, 2, ... until the child completes kills the change once at every step it makes on
 * disk, with no hook in the code under test.
 *
 * A long-running program (sealvold) is traced the same way, from its exec on, by the process that
 * started it (kill_point_process_spawn()). Its seccomp filter is installed in the forked child before
 * the execve and is kept across it (with no_new_privs), so the program runs unmodified and at full
 * speed between its writes; the tracer handles the exec event, and follows the children the program
 * starts (an escrow hook through posix_spawn()), whose writes would otherwise fail with ENOSYS under
 * a SECCOMP_RET_TRACE filter with nobody tracing. Steps are counted only inside
 * kill_point_process_run(), from its call on: the caller starts the program, lets it become ready
 * (a run with k = 0, which kills nothing), then sends it the request whose steps it wants (for
 * sealvold, a bus call made by a child of the caller, sealvolctl) and runs it again with k = 1, 2,
 * ... in fresh starts. The daemon is one event loop, idle between its readiness and the call, so the
 * steps counted from the call on are the call's. The tracer is the test process itself rather than
 * an attach with PTRACE_SEIZE right before the call: a filter cannot be added to a process from
 * outside, and without one every system call of the daemon would stop it. Here a step is a write,
 * sync or truncation of a file, or a rename or unlink of a name, under one of the given directories
 * (paths resolved in the tracee), so the daemon's log, bus and TPM traffic do not count; the grain
 * (below) says whether each such call is a step.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "macro.h"

typedef int (*KillPointFn)(void *userdata);

/* With $SEALVOL_VALGRIND set (the valgrind test setup) fn runs once to completion, unkilled.
 * Returns 0 with *ret_completed false if the child was killed at the k-th step, true if fn finished
 * first (then fn's result must have been >= 0, else -EIO). Negative errno on harness failure. */
int test_run_killed_at(KillPointFn fn, void *userdata, const char *path_prefix, unsigned k, bool *ret_completed);

typedef struct KillPointProcess KillPointProcess;

typedef enum KillPointGrain {
        /* Every state-changing system call is a step, as test_run_killed_at() counts them. */
        KILL_POINT_GRAIN_CALLS,
        /* A run of writes to one file, up to a sync or a step elsewhere, is one step (killed before its
         * first write), and syncs are not steps: a process killed right before an fsync leaves what it
         * wrote all the same (power cuts are the VM suite's). The tears inside one run (half a LUKS2
         * header copy) are what the library's kill points cover at every call; this grain is for the
         * order of a program's changes across its files, at a fraction of the runs. */
        KILL_POINT_GRAIN_WRITE_RUNS,
} KillPointGrain;

/* > 0 when what the caller waits for has happened, 0 not yet, < 0 an error (the run returns it). */
typedef int (*KillPointDoneFn)(void *userdata);

/* Starts argv[0] (a path) with stdin from /dev/null and stdout+stderr appended to log_path, traced,
 * stopped at nothing yet; prefixes is a NULL-terminated list of directories whose files count as
 * steps (see KillPointGrain). With $SEALVOL_VALGRIND set it runs untraced (and is never killed). */
int kill_point_process_spawn(char *const argv[], const char *log_path, const char *const *prefixes,
                             KillPointGrain grain, KillPointProcess **ret);
pid_t kill_point_process_pid(const KillPointProcess *p);
/* Lets the program run until done(userdata) > 0 (returns 0) or, with k > 0, SIGKILLs it and every
 * child it started right before its k-th step from this call on (returns 1; the program is reaped).
 * -ECHILD if it exited by itself, -ETIMEDOUT after timeout_ms. *ret_steps (optional): the steps seen. */
int kill_point_process_run(KillPointProcess *p, unsigned k, KillPointDoneFn done, void *userdata,
                           unsigned timeout_ms, unsigned *ret_steps);
/* SIGKILLs what is left (a traced program is never asked to exit: a sanitizer's leak check at exit
 * would try to ptrace it) and reaps it. */
KillPointProcess *kill_point_process_free(KillPointProcess *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(KillPointProcess *, kill_point_process_free);
