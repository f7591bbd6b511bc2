/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-util.h: what every sealvol test shares: per-test directories, the skip policy, and child
 * processes that are always stopped by PID.
 *
 * Skip policy: a test that lacks something it needs exits 77 (meson's "skipped"), except with
 * CI=true, where the machine is supposed to have everything and a skip is a failure.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "macro.h"

#define TEST_EXIT_SKIP 77

bool test_in_ci(void);
/* Runs only the tests whose names match SEALVOL_TEST_FILTER (a cmocka glob), when it is set: for a
 * person working on one test. Call before cmocka_run_group_tests(). */
void test_filter_from_env(void);

/* Call from main() before running tests: returns when present, otherwise exits (77, or 1 in CI). */
void test_require(bool present, const char *what);
bool test_have_executable(const char *name);

/* A fresh directory (mode 0755, so tests that drop privileges can reach sockets in it) under
 * $SEALVOL_TEST_TMPDIR, or /tmp when unset. */
int test_tmpdir_new(const char *name, char **ret);
int rm_rf(const char *path);

/* cmocka group/test setup and teardown for tests that need only a fresh directory: *state is its
 * path (named after the program). */
int test_setup_tmpdir(void **state);
int test_teardown_tmpdir(void **state);

char *path_join(const char *a, const char *b);

/* Starts argv with stdin from /dev/null and stdout+stderr appended to log_path. If pass_fd >= 0 it
 * becomes fd 3 in the child. The child gets SIGKILL if the test process dies, so an aborted test
 * (sanitizer report, crash) does not leave it behind. */
int test_spawn(char *const argv[], const char *log_path, int pass_fd, pid_t *ret_pid);
/* Runs argv as test_spawn() does and waits for it to end: its exit status (128 + signal when killed),
 * or -ETIMEDOUT when it ran longer than timeout_ms (then it is stopped). */
int test_run(char *const argv[], const char *log_path, unsigned timeout_ms);
/* SIGTERM, then SIGKILL after timeout_ms; always reaps. Returns the exit status or -errno. */
int test_process_stop(pid_t pid, unsigned timeout_ms);
bool test_process_running(pid_t pid);

/* Writes "#!/bin/sh\n<body>\n" as dir/name, mode 0700, by a rename (never a file being written when
 * it runs); the path, to free. Fails the test on error. */
char *test_write_script(const char *dir, const char *name, const char *body);
/* A server on 127.0.0.1 that accepts connections (the kernel does, into its backlog) and never says a
 * word: a DC or vault that hangs. Returns the listening socket (the caller closes it), its port in
 * *ret_port; -errno on failure. */
int test_silent_listener(unsigned *ret_port);

/* Reads a whole (small) file; NULL on error. For log excerpts in failure messages. */
char *test_read_file(const char *path);

/* A bound on each stage of a long test, so that a hang says where it is rather than running into
 * meson's timeout: test_watchdog_set() (re)arms it with what the test is doing now; a stage that runs
 * past its bound prints that, what report() adds (a daemon's log, say), and every process but the
 * kernel's threads with its state and kernel wait channel, and aborts the test.
 * test_watchdog_clear() disarms. */
typedef void (*TestWatchdogReportFn)(void *userdata);
void test_watchdog_report(TestWatchdogReportFn report, void *userdata);
_printf_(2, 3) void test_watchdog_set(unsigned seconds, const char *format, ...);
void test_watchdog_clear(void);
