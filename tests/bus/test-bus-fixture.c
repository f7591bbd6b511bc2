/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-bus-fixture.c: the private system bus enforces the project's policy/org.sealvol1.conf: only
 * root may own org.sealvol1, and any user may call it (polkit, not the bus, gates changes).
 */

#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>

#include <cmocka.h>

#include "bus-fixture.h"
#include "test-util.h"

#define NOBODY 65534
#define SERVE_TIMEOUT_US (10 * 1000 * 1000ULL)

static int setup(void **state) {
        BusFixture *f = NULL;

        if (bus_fixture_new("test-bus", &f) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        BusFixture *f = *state;
        pid_t pid = f->pid;

        bus_fixture_free(f);
        return pid > 0 && kill(pid, 0) == 0 ? -1 : 0;
}

/* Runs fn as an unprivileged user in a child and returns its exit status, serving bus (if any)
 * while waiting so the child's calls to us are answered. */
static int run_as_nobody(int (*fn)(void), sd_bus *bus) {
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(100);
                _exit(fn());
        }

        for (uint64_t waited = 0;; waited += 10000) {
                pid_t p = waitpid(pid, &status, WNOHANG);
                if (p == pid)
                        break;
                assert_true(waited < SERVE_TIMEOUT_US);
                if (bus) {
                        while (sd_bus_process(bus, NULL) > 0)
                                ;
                        (void) sd_bus_wait(bus, 10000);
                } else
                        (void) usleep(10000);
        }
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int nobody_requests_name(void) {
        sd_bus *bus = NULL;
        int r;

        if (sd_bus_open_system(&bus) < 0)
                return 101;
        r = sd_bus_request_name(bus, "org.sealvol1", 0);
        sd_bus_flush_close_unref(bus);
        if (r != -EACCES)
                fprintf(stderr, "RequestName as nobody: %d\n", r);
        return r == -EACCES ? 0 : 102;
}

static int nobody_calls_ping(void) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *s = NULL;
        sd_bus *bus = NULL;
        int r, ret = 0;

        if (sd_bus_open_system(&bus) < 0)
                return 101;
        r = sd_bus_call_method(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Test", "Ping", &error, &reply,
                               "s", "ping");
        if (r < 0)
                ret = 103;
        else if (sd_bus_message_read(reply, "s", &s) < 0 || !streq_ptr(s, "pong"))
                ret = 104;
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return ret;
}

static int method_ping(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *s;
        int r;

        (void) userdata;
        (void) error;
        r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", streq(s, "ping") ? "pong" : "?");
}

static const sd_bus_vtable test_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Ping", "s", "s", method_ping, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static void test_address_exported(void **state) {
        BusFixture *f = *state;

        assert_non_null(f->address);
        assert_string_equal(getenv("DBUS_SYSTEM_BUS_ADDRESS"), f->address);
        assert_non_null(strstr(f->address, f->dir));
}

static void test_root_owns_name_and_nobody_calls_it(void **state) {
        sd_bus *bus = NULL;

        (void) state;
        assert_int_equal(sd_bus_open_system(&bus), 0);
        assert_int_equal(sd_bus_add_object_vtable(bus, NULL, "/org/sealvol1", "org.sealvol1.Test", test_vtable,
                                                  NULL),
                         0);
        assert_true(sd_bus_request_name(bus, "org.sealvol1", 0) >= 0);
        assert_int_equal(run_as_nobody(nobody_calls_ping, bus), 0);
        sd_bus_flush_close_unref(bus);
}

static void test_nobody_cannot_own_name(void **state) {
        (void) state;
        assert_int_equal(run_as_nobody(nobody_requests_name, NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_address_exported, setup, teardown),
                cmocka_unit_test_setup_teardown(test_root_owns_name_and_nobody_calls_it, setup, teardown),
                cmocka_unit_test_setup_teardown(test_nobody_cannot_own_name, setup, teardown),
        };

        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(geteuid() == 0, "root (the bus policy test switches to an unprivileged user)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
