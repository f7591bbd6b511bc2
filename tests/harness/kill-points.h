/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * kill-points.h: SIGKILL at every observed step of a multi-step change, deterministically.
 *
 * fn runs in a child traced with ptrace; the child is killed just before its k-th state-changing
 * system call (write, pwrite, fsync, rename, truncate, unlink ...) on a file under path_prefix. Calling
 * this for k = 1, 2, ... until the child completes kills the change once at every step it makes on
 * disk, with no hook in the code under test.
 */
#pragma once

#include <stdbool.h>

typedef int (*KillPointFn)(void *userdata);

/* With $SEALVOL_VALGRIND set (the valgrind test setup) fn runs once to completion, unkilled.
 * Returns 0 with *ret_completed false if the child was killed at the k-th step, true if fn finished
 * first (then fn's result must have been >= 0, else -EIO). Negative errno on harness failure. */
int test_run_killed_at(KillPointFn fn, void *userdata, const char *path_prefix, unsigned k, bool *ret_completed);
