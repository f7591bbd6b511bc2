/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bus-fixture.h: a private system bus for one test.
 *
 * A dbus-daemon with a system-bus-like policy (default deny for owning names and for method calls,
 * as Debian's system bus) plus the project's own policy files from policy/, listening on a unix
 * socket in the test directory. The fixture exports its address as DBUS_SYSTEM_BUS_ADDRESS, so the
 * code under test connects with the ordinary sd_bus_open_system() / sd_bus_default_system().
 */
#pragma once

#include <sys/types.h>

#include "macro.h"

typedef struct BusFixture {
        char *dir;
        char *config_path;
        char *log_path;
        char *address; /* "unix:path=..." as printed by the daemon */
        pid_t pid;
} BusFixture;

int bus_fixture_new(const char *name, BusFixture **ret);
/* Whether name has an owner on the system bus (the fixture's, through DBUS_SYSTEM_BUS_ADDRESS):
 * how fixtures know their server is up. */
int bus_name_has_owner(const char *name);
BusFixture *bus_fixture_free(BusFixture *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusFixture *, bus_fixture_free);
