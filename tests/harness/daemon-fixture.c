/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon-fixture.c: sealvold with its own TPM, bus and state (see daemon-fixture.h). */

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon-fixture.h"
#include "bus-fixture.h"
#include "fileio.h"
#include "luks-fixture.h"
#include "test-util.h"

#define DAEMON_START_TIMEOUT_MS 20000u
#define DAEMON_STOP_TIMEOUT_MS 10000u

DaemonFixture *daemon_fixture_free(DaemonFixture *f) {
        if (!f)
                return NULL;
        (void) daemon_fixture_stop(f);
        bus_fixture_free(f->bus);
        swtpm_fixture_free(f->tpm);
        if (f->dir)
                (void) rm_rf(f->dir);
        free(f->dir);
        free(f->config_path);
        free(f->state_dir);
        free(f->log_path);
        free(f);
        return NULL;
}

int daemon_fixture_new(const char *name, const char *extra_config, DaemonFixture **ret) {
        _cleanup_(daemon_fixture_freep) DaemonFixture *f = calloc(1, sizeof(DaemonFixture));
        _cleanup_free_ char *config = NULL;
        int r;

        if (!f)
                return -ENOMEM;
        r = test_tmpdir_new(name, &f->dir);
        if (r < 0)
                return r;
        f->config_path = path_join(f->dir, "sealvol.conf");
        f->state_dir = path_join(f->dir, "state");
        f->log_path = path_join(f->dir, "sealvold.log");
        if (!f->config_path || !f->state_dir || !f->log_path)
                return -ENOMEM;

        r = swtpm_fixture_new(name, &f->tpm);
        if (r < 0)
                return r;
        r = bus_fixture_new(name, &f->bus);
        if (r < 0)
                return r;

        if (asprintf(&config, "[TPM]\nTCTI=%s\n[Paths]\nStateDirectory=%s\n[Recovery]\nKDFIterations=1000\n%s",
                     f->tpm->tcti, f->state_dir, strempty(extra_config)) < 0)
                return -ENOMEM;
        r = write_file_atomic(f->config_path, config, strlen(config), 0644);
        if (r < 0)
                return r;

        r = daemon_fixture_start(f);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

int daemon_fixture_start(DaemonFixture *f) {
        const char *daemon = getenv("SEALVOLD");
        int r;

        if (f->pid > 0)
                return -EBUSY;
        if (isempty(daemon))
                return -ENOENT;
        char *argv[] = { (char *) daemon, (char *) "--config", f->config_path, NULL };
        r = test_spawn(argv, f->log_path, -1, &f->pid);
        if (r < 0)
                return r;

        /* Ready when it owns its name (it unlocks the volumes first). */
        for (unsigned waited = 0; waited < DAEMON_START_TIMEOUT_MS; waited += 20) {
                if (bus_name_has_owner("org.sealvol1") > 0)
                        return 0;
                if (!test_process_running(f->pid)) {
                        f->pid = 0;
                        return -ECHILD;
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        return -ETIMEDOUT;
}

int daemon_fixture_stop(DaemonFixture *f) {
        int r;

        if (f->pid <= 0)
                return 0;
        r = test_process_stop(f->pid, DAEMON_STOP_TIMEOUT_MS);
        f->pid = 0;
        /* The name goes with the connection; wait until the bus has noticed. */
        for (unsigned waited = 0; waited < DAEMON_STOP_TIMEOUT_MS && bus_name_has_owner("org.sealvol1") > 0;
             waited += 10)
                (void) nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        /* A clean SIGTERM exit is 0; anything else (a sanitizer report, a leak, a crash) is a failure. */
        return r < 0 ? r : r > 0 ? -EPROTO : 0;
}

int daemon_fixture_reboot(DaemonFixture *f) {
        int r;

        r = daemon_fixture_stop(f);
        if (r >= 0)
                r = swtpm_fixture_reboot(f->tpm);
        if (r >= 0)
                r = daemon_fixture_start(f);
        return r;
}

int daemon_fixture_new_image(DaemonFixture *f, const char *name, char **ret_path) {
        return sparse_image_new(f->dir, name, LUKS_IMAGE_SIZE_DEFAULT, ret_path);
}
