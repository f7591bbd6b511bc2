/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bus-fixture.c: a private dbus-daemon with a system-bus policy (see bus-fixture.h). */

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-bus.h>

#include "bus-fixture.h"
#include "test-util.h"

#define BUS_START_TIMEOUT_MS 10000
#define BUS_STOP_TIMEOUT_MS 5000u

/* Same shape as a distribution's system.conf: any user may connect, nobody owns names or calls
 * methods unless a policy file says so, signals and expected replies flow, and the bus driver
 * itself can be used. polkit's own policy comes in too, for the tests that run polkitd. */
static const char bus_config_format[] =
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n"
        "  <type>system</type>\n"
        "  <listen>unix:path=%s/system_bus_socket</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        "  <policy context=\"default\">\n"
        "    <allow user=\"*\"/>\n"
        "    <deny own=\"*\"/>\n"
        "    <deny send_type=\"method_call\"/>\n"
        "    <allow send_type=\"signal\"/>\n"
        "    <allow send_requested_reply=\"true\" send_type=\"method_return\"/>\n"
        "    <allow send_requested_reply=\"true\" send_type=\"error\"/>\n"
        "    <allow receive_type=\"method_call\"/>\n"
        "    <allow receive_type=\"method_return\"/>\n"
        "    <allow receive_type=\"error\"/>\n"
        "    <allow receive_type=\"signal\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\"\n"
        "           send_interface=\"org.freedesktop.DBus.Introspectable\"/>\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Properties\"/>\n"
        "    <deny send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus\"\n"
        "          send_member=\"UpdateActivationEnvironment\"/>\n"
        "  </policy>\n"
        /* As on Debian's system bus: root may monitor it (test-daemon-leaks captures the traffic). */
        "  <policy user=\"root\">\n"
        "    <allow send_destination=\"org.freedesktop.DBus\" send_interface=\"org.freedesktop.DBus.Monitoring\"/>\n"
        "  </policy>\n"
        "  <include ignore_missing=\"yes\">/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>\n"
        "  <includedir>%s</includedir>\n"
        "</busconfig>\n";

BusFixture *bus_fixture_free(BusFixture *f) {
        if (!f)
                return NULL;
        if (f->pid > 0)
                (void) test_process_stop(f->pid, BUS_STOP_TIMEOUT_MS);
        if (f->address && streq_ptr(getenv("DBUS_SYSTEM_BUS_ADDRESS"), f->address))
                (void) unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
        if (f->dir)
                (void) rm_rf(f->dir);
        free(f->dir);
        free(f->config_path);
        free(f->log_path);
        free(f->address);
        free(f);
        return NULL;
}

/* The project's policy/ directory, so tests run against the policy we install. */
static const char *policy_dir(void) {
        const char *d = getenv("SEALVOL_POLICY_DIR");
        return isempty(d) ? SEALVOL_SOURCE_ROOT "/policy" : d;
}

int bus_fixture_new(const char *name, BusFixture **ret) {
        _cleanup_(bus_fixture_freep) BusFixture *f = NULL;
        _cleanup_fclose_ FILE *config = NULL, *pipe_in = NULL;
        _cleanup_close_ int pipe_write = -EBADF;
        char line[512];
        int fds[2], r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        r = test_tmpdir_new(name, &f->dir);
        if (r < 0)
                return r;
        f->config_path = path_join(f->dir, "bus.conf");
        f->log_path = path_join(f->dir, "dbus-daemon.log");
        if (!f->config_path || !f->log_path)
                return -ENOMEM;

        config = fopen(f->config_path, "we");
        if (!config)
                return -errno;
        fprintf(config, bus_config_format, f->dir, policy_dir());
        if (fflush(config) != 0)
                return -errno;
        config = safe_fclose(config);

        /* The daemon prints its address on fd 3 once it listens: that is our readiness signal. */
        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        pipe_in = fdopen(fds[0], "r");
        if (!pipe_in) {
                r = -errno;
                (void) close(fds[0]);
                (void) close(fds[1]);
                return r;
        }
        pipe_write = fds[1];

        char *argv[] = {
                (char *) "dbus-daemon", (char *) "--nofork", (char *) "--nopidfile",
                (char *) "--print-address=3", NULL, NULL,
        };
        _cleanup_free_ char *config_arg = NULL;
        if (asprintf(&config_arg, "--config-file=%s", f->config_path) < 0)
                return -ENOMEM;
        argv[4] = config_arg;

        r = test_spawn(argv, f->log_path, pipe_write, &f->pid);
        if (r < 0)
                return r;
        pipe_write = safe_close(pipe_write);

        struct pollfd p = { .fd = fileno(pipe_in), .events = POLLIN };
        r = poll(&p, 1, BUS_START_TIMEOUT_MS);
        if (r < 0)
                return -errno;
        if (r == 0)
                return -ETIMEDOUT;
        if (!fgets(line, sizeof(line), pipe_in))
                return -ECHILD; /* exited without an address: the log says why */
        line[strcspn(line, "\n")] = '\0';
        f->address = strdup(line);
        if (!f->address)
                return -ENOMEM;
        if (setenv("DBUS_SYSTEM_BUS_ADDRESS", f->address, /* overwrite= */ 1) < 0)
                return -errno;

        *ret = TAKE_PTR(f);
        return 0;
}

int bus_name_has_owner(const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        int has = 0, r;

        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", &error, &reply, "s", name);
        if (r >= 0)
                r = sd_bus_message_read(reply, "b", &has);
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        return r < 0 ? r : has;
}
