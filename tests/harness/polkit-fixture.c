/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* polkit-fixture.c: polkitd in a mount namespace on the private bus (see polkit-fixture.h). */

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "bus-fixture.h"
#include "fileio.h"
#include "polkit-fixture.h"
#include "test-util.h"

#define POLKIT_START_TIMEOUT_MS 20000u

PolkitFixture *polkit_fixture_free(PolkitFixture *f) {
        if (!f)
                return NULL;
        if (f->pid > 0)
                (void) test_process_stop(f->pid, 5000);
        if (f->dir)
                (void) rm_rf(f->dir);
        free(f->dir);
        free(f->log_path);
        free(f);
        return NULL;
}

int polkit_fixture_new(const char *name, const char *rules, PolkitFixture **ret) {
        _cleanup_(polkit_fixture_freep) PolkitFixture *f = calloc(1, sizeof(PolkitFixture));
        _cleanup_free_ char *actions = NULL, *rules_dir = NULL, *empty = NULL, *rules_file = NULL, *script = NULL,
                            *policy = NULL, *policy_copy = NULL, *data = NULL;
        size_t n;
        int r;

        if (!f)
                return -ENOMEM;
        r = test_tmpdir_new(name, &f->dir);
        if (r < 0)
                return r;
        actions = path_join(f->dir, "actions");
        rules_dir = path_join(f->dir, "rules");
        empty = path_join(f->dir, "empty");
        f->log_path = path_join(f->dir, "polkitd.log");
        if (!actions || !rules_dir || !empty || !f->log_path)
                return -ENOMEM;
        if (mkdir(actions, 0755) < 0 || mkdir(rules_dir, 0755) < 0 || mkdir(empty, 0755) < 0)
                return -errno;

        /* The project's action file, as installed. */
        policy = strdup(SEALVOL_SOURCE_ROOT "/policy/org.sealvol1.policy");
        policy_copy = path_join(actions, "org.sealvol1.policy");
        rules_file = path_join(rules_dir, "50-test.rules");
        if (!policy || !policy_copy || !rules_file)
                return -ENOMEM;
        r = read_file_full(policy, 1024 * 1024, &data, &n);
        if (r < 0)
                return r;
        r = write_file_atomic(policy_copy, data, n, 0644);
        if (r < 0)
                return r;
        r = write_file_atomic(rules_file, rules, strlen(rules), 0644);
        if (r < 0)
                return r;

        if (asprintf(&script,
                     "mount --bind '%s' /usr/share/polkit-1/actions && "
                     "mount --bind '%s' /etc/polkit-1/rules.d && "
                     "mount --bind '%s' /usr/share/polkit-1/rules.d && "
                     "exec " POLKITD_PATH " --no-debug",
                     actions, rules_dir, empty) < 0)
                return -ENOMEM;
        char *argv[] = { (char *) "unshare", (char *) "--mount", (char *) "--propagation", (char *) "private",
                         (char *) "--", (char *) "sh", (char *) "-c", script, NULL };
        r = test_spawn(argv, f->log_path, -1, &f->pid);
        if (r < 0)
                return r;

        for (unsigned waited = 0; waited < POLKIT_START_TIMEOUT_MS; waited += 20) {
                if (bus_name_has_owner("org.freedesktop.PolicyKit1") > 0) {
                        *ret = TAKE_PTR(f);
                        return 0;
                }
                if (!test_process_running(f->pid)) {
                        f->pid = 0;
                        return -ECHILD;
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        return -ETIMEDOUT;
}
