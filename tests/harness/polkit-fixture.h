/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * polkit-fixture.h: the real polkitd on a test's private bus, with the project's actions and a
 * test's own rules.
 *
 * polkitd reads its actions and rules from fixed directories; it runs in a private mount namespace
 * where those are bind mounts of the fixture's directory, so the host's polkit is never touched.
 * It is started as root and switches to its own user, as in production.
 */
#pragma once

#include <sys/types.h>

#include "macro.h"

#define POLKITD_PATH "/usr/lib/polkit-1/polkitd"

typedef struct PolkitFixture {
        char *dir;
        char *log_path;
        pid_t pid;
} PolkitFixture;

/* rules: the JavaScript of one rules file. The bus must already be running (bus-fixture.h). */
int polkit_fixture_new(const char *name, const char *rules, PolkitFixture **ret);
PolkitFixture *polkit_fixture_free(PolkitFixture *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(PolkitFixture *, polkit_fixture_free);
