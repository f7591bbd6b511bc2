/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ctl-valgrind.c: sealvolctl under memcheck, against a running sealvold: the everyday commands,
 * one that succeeds with each kind of output, and the failing paths (usage, unknown volume, a
 * damaged one). Each must exit with its own code and with no memcheck error and no definite leak.
 * Run by `meson test --setup valgrind` (suite "valgrind", not part of the default setup: the ASan
 * build's sealvolctl cannot run under valgrind).
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "daemon-fixture.h"
#include "test-util.h"
#include "volume.h"

/* Not an exit code sealvolctl uses (docs/sealvolctl.md). */
#define VALGRIND_ERROR_EXIT 99

static int setup(void **state) {
        DaemonFixture *d = NULL;

        if (daemon_fixture_new("test-ctl-valgrind", NULL, &d) < 0)
                return -1;
        *state = d;
        return 0;
}

static int teardown(void **state) {
        DaemonFixture *d = *state;
        pid_t pid = d->pid;
        int r = daemon_fixture_stop(d);

        daemon_fixture_free(d);
        return r < 0 || (pid > 0 && kill(pid, 0) == 0) ? -1 : 0;
}

/* Runs sealvolctl args under memcheck; returns its exit code (VALGRIND_ERROR_EXIT on a memcheck
 * error), with its output and memcheck's report in *ret_output. */
static int ctl(DaemonFixture *d, char **ret_output, const char *const *args) {
        _cleanup_free_ char *out = path_join(d->dir, "ctl.out"), *supp = NULL, *exit_arg = NULL;
        char *argv[32];
        size_t n = 0;
        int status;
        pid_t pid;

        assert_non_null(out);
        assert_true(asprintf(&supp, "--suppressions=%s", getenv("SEALVOL_VALGRIND_SUPPRESSIONS")) > 0);
        assert_true(asprintf(&exit_arg, "--error-exitcode=%d", VALGRIND_ERROR_EXIT) > 0);
        argv[n++] = (char *) "valgrind";
        argv[n++] = (char *) "--tool=memcheck";
        argv[n++] = (char *) "--leak-check=full";
        argv[n++] = (char *) "--show-leak-kinds=definite,indirect";
        argv[n++] = (char *) "--errors-for-leak-kinds=definite,indirect";
        argv[n++] = exit_arg;
        argv[n++] = supp;
        argv[n++] = getenv("SEALVOLCTL");
        for (size_t i = 0; args[i]; i++) {
                assert_true(n < ELEMENTSOF(argv) - 1);
                argv[n++] = (char *) args[i];
        }
        argv[n] = NULL;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

                if (o < 0 || in < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(o, STDOUT_FILENO) < 0 ||
                    dup2(o, STDERR_FILENO) < 0)
                        _exit(120);
                execvp(argv[0], argv);
                _exit(122);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        *ret_output = test_read_file(out);
        assert_non_null(*ret_output);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void expect(DaemonFixture *d, int code, const char *const *args) {
        _cleanup_free_ char *out = NULL;
        int r = ctl(d, &out, args);

        if (r != code)
                fail_msg("sealvolctl %s ...: exit %d, expected %d:\n%s", args[0], r, code, out);
}

#define EXPECT(d, code, ...) expect(d, code, (const char *const[]) { __VA_ARGS__, NULL })

static void test_sealvolctl_memcheck_clean(void **state) {
        DaemonFixture *d = *state;
        _cleanup_free_ char *image = NULL, *cmd = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        char uuid[VOLUME_UUID_STRING_MAX];

        assert_int_equal(daemon_fixture_new_image(d, "disk.img", &image), 0);
        EXPECT(d, 0, "provision", image);
        assert_int_equal(volume_load(image, &v), 0);
        snprintf(uuid, sizeof(uuid), "%s", v->token.volume_uuid);
        v = volume_free(v);

        EXPECT(d, 0, "status");
        EXPECT(d, 0, "--json", "list");
        EXPECT(d, 0, "unlock", uuid);
        EXPECT(d, 0, "recovery", "show", uuid);
        EXPECT(d, 0, "tpm", "status");
        EXPECT(d, 2, "frobnicate");
        EXPECT(d, 4, "unlock", "no-such-volume");

        /* A damaged header under the daemon: exit 7. */
        assert_true(asprintf(&cmd, "truncate -s 8192 '%s'", image) > 0);
        assert_int_equal(system(cmd), 0);
        EXPECT(d, 7, "unlock", uuid);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_sealvolctl_memcheck_clean, setup, teardown),
        };

        test_require(getuid() == 0, "root (the daemon owns org.sealvol1 on the private bus)");
        test_require(test_have_executable("valgrind"), "valgrind");
        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(!isempty(getenv("SEALVOL_VALGRIND_SUPPRESSIONS")), "SEALVOL_VALGRIND_SUPPRESSIONS");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
