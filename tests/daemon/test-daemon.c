/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon.c: sealvold on a private bus with swtpm: provisioning, the boot's unlock-all after a
 * reboot, a changed PCR 7 and recovery with its rotation and reseal, authorisation (root passes,
 * nobody is refused without polkit), malformed calls, concurrent clients, and the audit trail.
 */

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>

#include <cmocka.h>

#include "bus-errors.h"
#include "daemon-fixture.h"
#include "dra-fixture.h"
#include "fileio.h"
#include "polkit-fixture.h"
#include "recovery.h"
#include "secmem.h"
#include "server-recovery.h"
#include "test-util.h"
#include "tpm-count.h"
#include "v1-format.h"
#include "vmk.h"
#include "volume-internal.h"
#include "volume.h"

#define N_VOLUMES 3
#define N_CLIENTS 20
#define NOBODY 65534

typedef struct Fixture {
        DaemonFixture *d;
        sd_bus *bus;
        char *images[N_VOLUMES];
        char *paths[N_VOLUMES];
        char *server_password;
        char *ca[2]; /* TPM makers' CAs: the configured one and another (setup_ek_ca) */
} Fixture;

static int setup_with(void **state, const char *extra_config) {
        Fixture *f = calloc(1, sizeof(*f));

        if (!f || daemon_fixture_new("test-daemon", extra_config, &f->d) < 0 || sd_bus_open_system(&f->bus) < 0)
                return -1;
        *state = f;
        return 0;
}

static int setup(void **state) {
        return setup_with(state, NULL);
}

/* The organisation's DRA CA as the trust anchor: the test CA and its intermediate, in one file. */
static int setup_trust_anchor(void **state) {
        _cleanup_free_ char *anchor = dra_fixture_path("ca-bundle", ".crt"), *config = NULL;

        if (!anchor || asprintf(&config, "[DRA]\nTrustAnchor=%s\n", anchor) < 0)
                return -1;
        return setup_with(state, config);
}

/* The TPM maker's CA in [TPM] EKCertificateCA=, and another maker's CA beside it. A CA comes to exist
 * with the first TPM it certifies. */
static int setup_ek_ca(void **state) {
        _cleanup_free_ char *ca0 = NULL, *ca1 = NULL, *anchors = NULL, *config = NULL;
        char **ca[2] = { &ca0, &ca1 };
        int r;

        for (size_t i = 0; i < 2; i++) {
                _cleanup_(swtpm_fixture_freep) SwtpmFixture *t = NULL;

                if (test_tmpdir_new(i == 0 ? "test-daemon-ca" : "test-daemon-ca-other", ca[i]) < 0 ||
                    swtpm_fixture_new_with_ek("test-daemon-mkca", *ca[i], &t) < 0)
                        return -1;
        }
        if (swtpm_fixture_ca_anchor_file(ca0, &anchors) < 0 ||
            asprintf(&config, "[TPM]\nEKCertificateCA=%s\n", anchors) < 0)
                return -1;
        r = setup_with(state, config);
        if (r < 0)
                return r;
        for (size_t i = 0; i < 2; i++)
                ((Fixture *) *state)->ca[i] = TAKE_PTR(*ca[i]);
        return 0;
}

/* Recovery keyslots at the production KDF cost (the fixture's 1000 iterations make every KDF instant). */
static int setup_production_kdf(void **state) {
        return setup_with(state, "[Recovery]\nKDFIterations=1048576\n");
}

/* One certificate pinned by its fingerprint, self-signed as DRA certificates often are. */
static int setup_pinned(void **state) {
        _cleanup_free_ char *fp = dra_fixture_fingerprint("rsa2048"), *config = NULL;

        if (!fp || asprintf(&config, "[DRA]\nPinnedFingerprint=%s\n", fp) < 0)
                return -1;
        return setup_with(state, config);
}

static int teardown(void **state) {
        Fixture *f = *state;
        pid_t pid = f->d->pid;
        int r;

        sd_bus_flush_close_unref(f->bus);
        r = daemon_fixture_stop(f->d);
        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);
                fprintf(stderr, "sealvold did not stop cleanly (%s); its log:\n%s\n", strerror(-r), strempty(log));
        }
        for (size_t i = 0; i < N_VOLUMES; i++) {
                free(f->images[i]);
                free(f->paths[i]);
        }
        daemon_fixture_free(f->d);
        free(f->server_password);
        for (size_t i = 0; i < 2; i++)
                if (f->ca[i]) {
                        (void) rm_rf(f->ca[i]);
                        free(f->ca[i]);
                }
        free(f);
        return r < 0 || (pid > 0 && kill(pid, 0) == 0) ? -1 : 0;
}

/* After a daemon restart the old connection is fine, but cached names are not: reconnect. */
static void reconnect(Fixture *f) {
        f->bus = sd_bus_flush_close_unref(f->bus);
        assert_int_equal(sd_bus_open_system(&f->bus), 0);
}

static void provision_all(Fixture *f) {
        for (size_t i = 0; i < N_VOLUMES; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *path, *key_id;
                char name[32];

                snprintf(name, sizeof(name), "disk%zu.img", i);
                assert_int_equal(daemon_fixture_new_image(f->d, name, &f->images[i]), 0);
                assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                                    "ProvisionVolume", &error, &reply, "st", f->images[i], UINT64_C(0)) >= 0);
                assert_true(sd_bus_message_read(reply, "os", &path, &key_id) >= 0);
                assert_int_equal(strlen(key_id), 36);
                f->paths[i] = strdup(path);
                sd_bus_message_unref(reply);
        }
}

static char *get_string(Fixture *f, const char *path, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", property, &error,
                                                    &s) >= 0);
        return s;
}

static void assert_state(Fixture *f, size_t i, const char *state) {
        _cleanup_free_ char *s = get_string(f, f->paths[i], "State");
        assert_string_equal(s, state);
}

static char *read_password(Fixture *f, size_t i) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *pw, *key_id;
        char *copy;

        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->paths[i], "org.sealvol1.Volume",
                                            "GetRecoveryPassword", &error, &reply, "") >= 0);
        assert_true(sd_bus_message_read(reply, "ss", &pw, &key_id) >= 0);
        copy = strdup(pw);
        sd_bus_message_unref(reply);
        return copy;
}

static void test_provision_reboot_unlock_all(void **state) {
        Fixture *f = *state;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t opened = 0, failed = 0;
        size_t n = 0;

        provision_all(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "locked");

        /* The passwords the daemon hands out open the volumes (checked with the library, not the daemon). */
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_free_ char *pw = read_password(f, i);
                _cleanup_(volume_freep) Volume *v = NULL;

                assert_int_equal(volume_load(f->images[i], &v), 0);
                assert_true(volume_open_recovery(v, pw, NULL, 0, NULL) >= 0);
        }

        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "UnlockAll",
                                            &error, &reply, "t", UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "uu", &opened, &failed) >= 0);
        reply = sd_bus_message_unref(reply);
        assert_int_equal(opened, N_VOLUMES);
        assert_int_equal(failed, 0);

        /* A reboot: the daemon unlocks every volume at start (verified: no device-mapper here). The
         * power was cut while it wrote two files: their temporaries are swept, nothing else. */
        _cleanup_free_ char *tmp1 = path_join(f->d->state_dir, "vmk-export.json.tmp.Ab12Cd");
        _cleanup_free_ char *tmp2 = path_join(f->d->state_dir, "volumes/0f5c4b22.tmp.zZ9yY8");
        _cleanup_free_ char *other = path_join(f->d->state_dir, "notes.tmp.x");
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(write_file_atomic(tmp1, "{", 1, 0600), 0);
        assert_int_equal(write_file_atomic(tmp2, "/dev/s", 6, 0600), 0);
        assert_int_equal(write_file_atomic(other, "x", 1, 0600), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        assert_int_equal(access(tmp1, F_OK), -1);
        assert_int_equal(access(tmp2, F_OK), -1);
        assert_int_equal(access(other, F_OK), 0);

        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                            "ListVolumes", &error, &reply, "") >= 0);
        assert_int_equal(sd_bus_message_enter_container(reply, 'a', "(ssso)"), 1);
        while (sd_bus_message_skip(reply, "(ssso)") > 0)
                n++;
        sd_bus_message_unref(reply);
        assert_int_equal(n, N_VOLUMES);
}

/* The size of the daemon's log (appended to across restarts): where the next start begins. */
static size_t log_size(Fixture *f) {
        struct stat st;

        return stat(f->d->log_path, &st) < 0 ? 0 : (size_t) st.st_size;
}

/* How often text appears in the daemon's log after offset. */
static unsigned count_in_log(Fixture *f, size_t offset, const char *text) {
        _cleanup_free_ char *log = NULL;
        size_t size = 0;
        unsigned n = 0;

        assert_int_equal(read_file_full(f->d->log_path, 64 * 1024 * 1024, &log, &size), 0);
        assert_true(offset <= size);
        for (const char *p = log + offset; (p = strstr(p, text)); p++)
                n++;
        return n;
}

/* The server recovery password as the daemon hands it out (GetServerRecoveryPassword). */
static char *read_server_password_of(Fixture *f) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *pw, *key_id;
        char *copy;

        /* Read now: the daemon holds no VMK after a changed boot, and the password is kept under it. */
        if (!f->server_password) {
                assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "GetServerRecoveryPassword", &error, &reply, "") >= 0);
                assert_true(sd_bus_message_read(reply, "ss", &pw, &key_id) >= 0);
                f->server_password = strdup(pw);
                sd_bus_message_unref(reply);
        }
        copy = strdup(f->server_password);
        assert_non_null(copy);
        return copy;
}

static void test_changed_pcr_recovery_reseal(void **state) {
        Fixture *f = *state;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_free_ char *pw = NULL, *old_id = NULL, *reason = NULL, *typo = NULL;
        const char *st, *new_id;
        uint32_t count = 0;

        provision_all(f);
        pw = read_password(f, 0);
        old_id = get_string(f, f->paths[0], "RecoveryKeyId");
        free(read_server_password_of(f));

        /* A firmware update: PCR 7 changes before the next boot. */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f->d->tpm, 7, "new db", 6), 0);
        size_t boot_log = log_size(f);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);

        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");
        reason = get_string(f, f->paths[0], "StateReason");
        assert_non_null(strstr(reason, "PCR 7"));
        /* The TPM was asked once for all of them, and its refusal logged once. */
        assert_int_equal(count_in_log(f, boot_log, "The TPM refuses the VMK"), 1);
        assert_true(sd_bus_get_property_trivial(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                                     "RecoveryRequiredCount", &error, 'u', &count) >= 0);
        assert_int_equal(count, N_VOLUMES);

        /* A typo: the block is named, nothing changes. */
        typo = strdup(pw);
        typo[2 * 7 + 3] = typo[2 * 7 + 3] == '0' ? '1' : '0';
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume",
                                       "UnlockWithRecoveryPassword", &error, &reply, "st", typo, UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_RECOVERY_PASSWORD_TYPO);
        assert_non_null(strstr(error.message, "Block 3"));
        sd_bus_error_free(&error);

        /* The right password opens its disk, and nothing else: no server-scoped secret is wrapped under
         * it. The daemon holds no VMK, so the password is replaced once it does. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume",
                                            "UnlockWithRecoveryPassword", &error, &reply, "st", pw, UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "ss", &st, &new_id) >= 0);
        assert_string_equal(st, "verified");
        assert_string_equal(new_id, "");
        reply = sd_bus_message_unref(reply);
        _cleanup_free_ char *still = get_string(f, f->paths[0], "RecoveryKeyId");
        assert_string_equal(still, old_id);
        for (size_t i = 1; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");
        /* Nor can a changed boot be accepted with it: there is no VMK to reseal. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ResealVMK",
                                       &error, NULL, "sst", "", "", UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_NO_VMK);
        sd_bus_error_free(&error);

        /* A reboot before the server is recovered (the TPM still refuses): the used password is not
         * forgotten. The server recovery password then opens every disk, and the reseal replaces the
         * disk password that was used. */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f->d->tpm, 7, "new db", 6), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
        assert_state(f, 0, "recovery-required");
        _cleanup_free_ char *spw = read_server_password_of(f);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", spw, UINT64_C(0)) >= 0);
        reply = sd_bus_message_unref(reply);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        _cleanup_free_ char *old_id2 = get_string(f, f->paths[1], "RecoveryKeyId");

        /* Reseal to the new PCR 7, reboot: everything opens from the TPM again. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ResealVMK",
                                            &error, NULL, "sst", "", "", UINT64_C(0)) >= 0);
        /* Resealed: now the used password is replaced; the one nobody used stays. */
        _cleanup_free_ char *replaced = get_string(f, f->paths[0], "RecoveryKeyId");
        assert_string_not_equal(replaced, old_id);
        _cleanup_free_ char *kept2 = get_string(f, f->paths[1], "RecoveryKeyId");
        assert_string_equal(kept2, old_id2);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f->d->tpm, 7, "new db", 6), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");

        /* The old password was rotated away: it no longer opens. */
        _cleanup_(volume_freep) Volume *v = NULL;
        assert_int_equal(volume_load(f->images[0], &v), 0);
        assert_int_equal(volume_open_recovery(v, pw, NULL, 0, NULL), -EPERM);

        /* The audit trail has the recovery and the reseal, and never the password. */
        _cleanup_free_ char *log = test_read_file(f->d->log_path);
        assert_non_null(log);
        assert_non_null(strstr(log, "OPERATION=unlock-recovery-password"));
        assert_non_null(strstr(log, "OPERATION=reseal"));
        assert_non_null(strstr(log, "MESSAGE_ID=5b7f0c1e9a4d4e2b8c3f6a1d2e9b7c40"));
        assert_null(strstr(log, pw));
}

static char *manager_string(Fixture *f, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               property, &error, &s) >= 0);
        return s;
}

/* Attack 7: ResealVMK to PCRs software can reset is refused before anything is sealed, with the PCR
 * and the reason in the error; the sealed VMK stays byte for byte what it was. A selection without
 * the configured minimum (PCR 7) is refused the same way; one above the floor is sealed. */
static void test_reseal_floor(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *vmk = path_join(f->d->state_dir, "vmk.sealed"), *before = NULL, *after = NULL;
        static const struct {
                const char *pcrs, *reason;
        } refused[] = {
                { "23", "PCR 23 can be reset by software" },
                { "16", "PCR 16 can be reset by software" },
                { "16,23", "PCRs 16,23 can be reset by software" },
                { "7,23", "PCR 23 can be reset by software" },
                { "0", "PCR 7 is missing" },
        };

        provision_all(f);
        before = test_read_file(vmk);
        assert_non_null(before);
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;

                assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "ResealVMK", &error, NULL, "sst", "", refused[i].pcrs,
                                               UINT64_C(0)) < 0);
                if (!sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS) ||
                    !strstr(error.message, refused[i].reason))
                        fail_msg("ResealVMK to %s: %s: %s", refused[i].pcrs, error.name, error.message);
                sd_bus_error_free(&error);
                after = test_read_file(vmk);
                assert_non_null(after);
                assert_string_equal(after, before);
                after = mfree(after);
        }
        _cleanup_free_ char *sealed = manager_string(f, "SealedPCRs");
        _cleanup_free_ char *minimum = manager_string(f, "MinimumPCRs");
        assert_string_equal(sealed, "sha256:7");
        assert_string_equal(minimum, "7");

        /* sealvolctl says why, as a usage error. */
        _cleanup_free_ char *out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--pcrs", "23", "tpm", "reseal"), 2);
        assert_non_null(strstr(out, "PCR 23 can be reset by software"));

        /* Above the floor: sealed, and every volume still opens from the TPM after a reboot. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ResealVMK",
                                       NULL, NULL, "sst", "", "0,7", UINT64_C(0)) >= 0);
        after = test_read_file(vmk);
        assert_non_null(after);
        assert_string_not_equal(after, before);
        sealed = mfree(sealed);
        sealed = manager_string(f, "SealedPCRs");
        assert_string_equal(sealed, "sha256:0,7");
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
}

/* Runs calls(f) in a child that dropped to nobody, which must return 0 (a bit per failure else). */
static void as_nobody(Fixture *f, int (*calls)(Fixture *f)) {
        int status;
        pid_t pid;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(101);
                _exit(calls(f));
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* The daemon's TPM through the pcap TCTI, so that its commands can be counted (tpm-count.h): the
 * environment is the daemon's (SEALVOL_TCTI wins over the configuration), set for this test only. */
static int setup_counted(void **state) {
        _cleanup_free_ char *tcti = NULL, *capture = NULL;
        Fixture *f;

        if (setup(state) < 0)
                return -1;
        f = *state;
        capture = path_join(f->d->dir, "daemon.pcap");
        if (!capture || asprintf(&tcti, "pcap:%s", f->d->tpm->tcti) < 0 || daemon_fixture_stop(f->d) < 0 ||
            setenv(TPM2_TCTI_ENV, tcti, 1) < 0 || setenv(TPM_COUNT_ENV, capture, 1) < 0 ||
            daemon_fixture_start(f->d) < 0) {
                (void) unsetenv(TPM2_TCTI_ENV);
                (void) unsetenv(TPM_COUNT_ENV);
                (void) teardown(state);
                return -1;
        }
        reconnect(f);
        return 0;
}

static int teardown_counted(void **state) {
        (void) unsetenv(TPM2_TCTI_ENV);
        (void) unsetenv(TPM_COUNT_ENV);
        return teardown(state);
}

/* Reads the TPM properties of the manager as an unprivileged caller, with GetAll and with a Get of
 * each, and checks what they say: a bit per failure, 0 if all is well. */
static int nobody_reads_tpm_status(Fixture *f) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL, *m = NULL;
        char *manufacturer = NULL, *firmware = NULL, *sealed = NULL;
        uint32_t counter = 0, max_tries = 0;
        int present = 0, in_lockout = 1, failures = 0, r;
        bool seen_manufacturer = false;
        sd_bus *bus = NULL;

        (void) f;
        if (sd_bus_open_system(&bus) < 0)
                return 1;
        r = sd_bus_call_method(bus, "org.sealvol1", "/org/sealvol1", "org.freedesktop.DBus.Properties", "GetAll",
                               &error, &reply, "s", "org.sealvol1.Manager");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *name, *value;

                r = sd_bus_message_read(reply, "s", &name);
                if (r >= 0 && streq(name, "TPMManufacturer")) {
                        r = sd_bus_message_read(reply, "v", "s", &value);
                        seen_manufacturer = r >= 0 && strncmp(value, "IBM", 3) == 0;
                } else if (r >= 0)
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        if (r < 0 || !seen_manufacturer)
                failures |= 2;
        reply = sd_bus_message_unref(reply);

        if (sd_bus_get_property_trivial(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "TPMPresent",
                                        &error, 'b', &present) < 0 || !present)
                failures |= 4;
        if (sd_bus_get_property_string(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "TPMManufacturer", &error, &manufacturer) < 0 ||
            strncmp(manufacturer, "IBM", 3) != 0)
                failures |= 8;
        if (sd_bus_get_property_string(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "TPMFirmware",
                                       &error, &firmware) < 0 || isempty(firmware) || streq(firmware, "0.0.0.0"))
                failures |= 16;
        if (sd_bus_get_property(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "TPMLockout", &error,
                                &m, "(uub)") < 0 ||
            sd_bus_message_read(m, "(uub)", &counter, &max_tries, &in_lockout) < 0 || max_tries == 0 || in_lockout)
                failures |= 32;
        if (sd_bus_get_property_string(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "SealedPCRs",
                                       &error, &sealed) < 0 || !streq(sealed, "sha256:7"))
                failures |= 64;
        sd_bus_message_unref(m);
        free(manufacturer);
        free(firmware);
        free(sealed);
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return failures;
}

static int on_properties_changed(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        char **sealed = userdata;
        const char *interface, *name, *value;
        int r;

        (void) error;
        r = sd_bus_message_read(message, "s", &interface);
        if (r >= 0)
                r = sd_bus_message_enter_container(message, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(message, 'e', "sv")) > 0) {
                r = sd_bus_message_read(message, "s", &name);
                if (r >= 0 && streq(name, "SealedPCRs") && sd_bus_message_read(message, "v", "s", &value) >= 0) {
                        free(*sealed);
                        *sealed = strdup(value);
                } else if (r >= 0)
                        r = sd_bus_message_skip(message, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(message);
        }
        return 0;
}

/* Waits up to 5 s for a PropertiesChanged of the manager that says SealedPCRs is expected. */
static void wait_sealed_changed(Fixture *f, char **sealed, const char *expected) {
        for (unsigned waited = 0; waited < 5000 && !streq_ptr(*sealed, expected); waited += 50) {
                int r = sd_bus_process(f->bus, NULL);

                assert_true(r >= 0);
                if (r == 0)
                        assert_true(sd_bus_wait(f->bus, 50 * 1000) >= 0);
        }
        if (!streq_ptr(*sealed, expected))
                fail_msg("no PropertiesChanged with SealedPCRs \"%s\" (last: \"%s\")", expected, strempty(*sealed));
}

/* Attack 9: status costs the TPM nothing. Once the daemon has started (the TPM's identity and
 * lockout state: two GetCapability), an unprivileged GetAll on the manager and a Get of every TPM
 * property send no TPM command and open no TPM connection, and still say what the TPM is (swtpm's
 * maker is IBM). SealedPCRs follows a reseal and a replacement of the file, and says so. */
static void test_status_costs_no_tpm_command(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *capture = path_join(f->d->dir, "daemon.pcap"), *sealed = NULL, *signalled = NULL;
        _cleanup_free_ char *vmk = path_join(f->d->state_dir, "vmk.sealed"), *blob = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        TpmCount start, before, after;
        char histogram[512];
        int r;

        /* What the start asked (no capture at all: nothing), checked below. */
        r = tpm_count_read(capture, &start);
        if (r == -ENOENT)
                start = (TpmCount) {};
        else
                assert_int_equal(r, 0);

        /* The first seal writes vmk.sealed: SealedPCRs knows it without a restart. */
        provision_all(f);
        sealed = manager_string(f, "SealedPCRs");
        assert_string_equal(sealed, "sha256:7");

        assert_int_equal(tpm_count_read(capture, &before), 0);
        as_nobody(f, nobody_reads_tpm_status);
        assert_int_equal(tpm_count_read(capture, &after), 0);
        if (after.commands != before.commands || after.sections != before.sections)
                fail_msg("reading the status cost the TPM %u commands and %u connections (%s)",
                         after.commands - before.commands, after.sections - before.sections,
                         tpm_count_format(&after, histogram, sizeof(histogram)));

        /* Instead, the start asked once: the TPM's identity and its lockout state. */
        print_message("start without a VMK: %u TPM commands (%s)\n", start.commands,
                      tpm_count_format(&start, histogram, sizeof(histogram)));
        assert_int_equal(start.commands, 2);
        assert_int_equal(tpm_count_of(&start, TPM2_CC_GetCapability), 2);

        /* The flags are honest: a reseal and a file put back by hand are signalled. */
        blob = test_read_file(vmk);
        assert_non_null(blob);
        assert_true(sd_bus_match_signal(f->bus, &slot, "org.sealvol1", "/org/sealvol1", "org.freedesktop.DBus.Properties",
                                        "PropertiesChanged", on_properties_changed, &signalled) >= 0);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ResealVMK",
                                       NULL, NULL, "sst", "", "0,7", UINT64_C(0)) >= 0);
        wait_sealed_changed(f, &signalled, "sha256:0,7");
        assert_int_equal(write_file_atomic(vmk, blob, strlen(blob), 0600), 0);
        wait_sealed_changed(f, &signalled, "sha256:7");
        sealed = mfree(sealed);
        sealed = manager_string(f, "SealedPCRs");
        assert_string_equal(sealed, "sha256:7");

        /* A start that unlocks: the one unseal, and the same two questions for the status. */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(truncate(capture, 0), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        assert_int_equal(tpm_count_read(capture, &start), 0);
        print_message("start with %d volumes: %u TPM commands (%s)\n", N_VOLUMES, start.commands,
                      tpm_count_format(&start, histogram, sizeof(histogram)));
        assert_int_equal(tpm_count_of(&start, TPM2_CC_Unseal), 1);
        assert_int_equal(tpm_count_of(&start, TPM2_CC_GetCapability), 2);
}

/* As nobody: status is public; every change and every secret is refused (no polkit here). */
static int nobody_calls(Fixture *f) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        sd_bus *bus = NULL;
        char *state = NULL;
        int failures = 0;

        if (sd_bus_open_system(&bus) < 0)
                return 100;
        if (sd_bus_call_method(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ListVolumes", &error,
                               &reply, "") < 0)
                failures |= 1;
        reply = sd_bus_message_unref(reply);
        if (sd_bus_get_property_string(bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume", "State", &error,
                                       &state) < 0)
                failures |= 2;
        free(state);
        if (sd_bus_call_method(bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume", "GetRecoveryPassword", &error,
                               &reply, "") >= 0 ||
            !sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                failures |= 4;
        sd_bus_error_free(&error);
        if (sd_bus_call_method(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ProvisionVolume", &error,
                               &reply, "st", f->images[0], UINT64_C(0)) >= 0 ||
            !sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                failures |= 8;
        sd_bus_error_free(&error);
        if (sd_bus_call_method(bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume", "RotateRecoveryPassword", &error,
                               &reply, "") >= 0 ||
            !sd_bus_error_has_name(&error, SD_BUS_ERROR_ACCESS_DENIED))
                failures |= 16;
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return failures;
}

static void test_unprivileged_caller(void **state) {
        Fixture *f = *state;

        provision_all(f);
        as_nobody(f, nobody_calls);
}

static void test_malformed_calls(void **state) {
        Fixture *f = *state;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_free_ char *huge = malloc(100000);

        provision_all(f);
        assert_non_null(huge);
        memset(huge, 'x', 99999);
        huge[99999] = '\0';

        struct {
                const char *path, *interface, *member, *types;
                const char *arg;
                const char *expected;
        } cases[] = {
                { "/org/sealvol1", "org.sealvol1.Manager", "ProvisionVolume", "st", "relative.img", SD_BUS_ERROR_INVALID_ARGS },
                { "/org/sealvol1", "org.sealvol1.Manager", "ProvisionVolume", "st", huge, SD_BUS_ERROR_INVALID_ARGS },
                { "/org/sealvol1", "org.sealvol1.Manager", "GetVolume", "s", "no-such-uuid", BUS_ERROR_NO_SUCH_VOLUME },
                { "/org/sealvol1", "org.sealvol1.Manager", "GetVolume", "u", NULL, SD_BUS_ERROR_INVALID_ARGS },
                { "/org/sealvol1/volume/_3nope", "org.sealvol1.Volume", "Unlock", "t", NULL, SD_BUS_ERROR_UNKNOWN_OBJECT },
                { "/org/sealvol1", "org.sealvol1.Manager", "NoSuchMethod", "", NULL, SD_BUS_ERROR_UNKNOWN_METHOD },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int r;

                if (streq(cases[i].types, "st"))
                        r = sd_bus_call_method(f->bus, "org.sealvol1", cases[i].path, cases[i].interface,
                                               cases[i].member, &error, &reply, "st", cases[i].arg, UINT64_C(0));
                else if (streq(cases[i].types, "s"))
                        r = sd_bus_call_method(f->bus, "org.sealvol1", cases[i].path, cases[i].interface,
                                               cases[i].member, &error, &reply, "s", cases[i].arg);
                else if (streq(cases[i].types, "u"))
                        r = sd_bus_call_method(f->bus, "org.sealvol1", cases[i].path, cases[i].interface,
                                               cases[i].member, &error, &reply, "u", 7u);
                else if (streq(cases[i].types, "t"))
                        r = sd_bus_call_method(f->bus, "org.sealvol1", cases[i].path, cases[i].interface,
                                               cases[i].member, &error, &reply, "t", UINT64_C(0));
                else
                        r = sd_bus_call_method(f->bus, "org.sealvol1", cases[i].path, cases[i].interface,
                                               cases[i].member, &error, &reply, "");
                assert_true(r < 0);
                if (!sd_bus_error_has_name(&error, cases[i].expected))
                        fail_msg("case %zu: %s: got %s (%s)", i, cases[i].member, error.name, error.message);
                sd_bus_error_free(&error);
        }

        /* Unknown flags are refused, and the daemon still serves. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume", "Unlock", &error,
                                       &reply, "t", UINT64_C(1) << 40) < 0);
        assert_true(sd_bus_error_has_name(&error, SD_BUS_ERROR_INVALID_ARGS));
        sd_bus_error_free(&error);
        assert_state(f, 0, "locked");
}

static void test_concurrent_clients(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *expected = NULL;
        pid_t pids[N_CLIENTS];

        provision_all(f);
        expected = read_password(f, 1);
        for (size_t i = 0; i < N_CLIENTS; i++) {
                pids[i] = fork();
                assert_true(pids[i] >= 0);
                if (pids[i] == 0) {
                        sd_bus_error error = SD_BUS_ERROR_NULL;
                        sd_bus_message *reply = NULL;
                        const char *pw, *id;
                        sd_bus *bus = NULL;

                        if (sd_bus_open_system(&bus) < 0 ||
                            sd_bus_call_method(bus, "org.sealvol1", f->paths[1], "org.sealvol1.Volume",
                                               "GetRecoveryPassword", &error, &reply, "") < 0 ||
                            sd_bus_message_read(reply, "ss", &pw, &id) < 0 || !streq(pw, expected))
                                _exit(1);
                        _exit(0);
                }
        }
        for (size_t i = 0; i < N_CLIENTS; i++) {
                int status;

                assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
}

#define CTL(f, uid, input, out, ...) DAEMON_CTL((f)->d, uid, input, out, __VA_ARGS__)

static void test_sealvolctl(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *out = NULL, *uuid = NULL, *password = NULL, *typo = NULL;
        char *p, *line;

        assert_int_equal(daemon_fixture_new_image(f->d, "ctl.img", &image), 0);

        /* Provisioning shows the recovery password and its Key ID, as BitLocker does. */
        assert_int_equal(CTL(f, 0, NULL, &out, "provision", image), 0);
        p = strstr(out, "Recovery password: ");
        assert_non_null(p);
        password = strndup(p + strlen("Recovery password: "), RECOVERY_PASSWORD_LEN);
        assert_non_null(strstr(out, "Recovery Key ID: "));
        free(out);

        /* status: the table, and --json for tools; nobody may read it. */
        assert_int_equal(CTL(f, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, image));
        assert_non_null(strstr(out, "locked"));
        line = strstr(out, "\n\n");
        assert_non_null(line);
        uuid = strndup(strchr(line + 2, '\n') + 1, 36);
        free(out);
        assert_int_equal(CTL(f, NOBODY, NULL, &out, "--json", "list"), 0);
        assert_non_null(strstr(out, "\"uuid\":\""));
        assert_non_null(strstr(out, uuid));
        free(out);

        /* Secrets need authorisation: nobody gets exit code 3. */
        assert_int_equal(CTL(f, NOBODY, NULL, &out, "recovery", "show", uuid), 3);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "recovery", "show", image), 0);
        assert_non_null(strstr(out, password));
        free(out);

        /* Recovery reads the password from stdin (never argv): a typo names its block (exit 5). */
        typo = strdup(password);
        typo[0] = typo[0] == '0' ? '1' : '0';
        assert_int_equal(CTL(f, 0, typo, &out, "recover", uuid), 5);
        assert_non_null(strstr(out, "Block 1"));
        free(out);
        assert_int_equal(CTL(f, 0, password, &out, "recover", uuid), 0);
        assert_non_null(strstr(out, "has been replaced"));
        free(out);
        assert_int_equal(CTL(f, 0, password, &out, "recover", uuid), 5);
        free(out);

        /* TPM status: the swtpm's maker, the sealed selection. */
        assert_int_equal(CTL(f, NOBODY, NULL, &out, "tpm", "status"), 0);
        assert_non_null(strstr(out, "TPMPresent           yes"));
        assert_non_null(strstr(out, "TPMManufacturer      IBM"));
        assert_non_null(strstr(out, "TPMLockout           no, 0 of "));
        assert_non_null(strstr(out, "SealedPCRs           sha256:7"));
        free(out);

        /* Reseal to another selection; a bad one is refused. */
        assert_int_equal(CTL(f, 0, NULL, &out, "--pcrs", "0,7", "tpm", "reseal"), 0);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "tpm", "status"), 0);
        assert_non_null(strstr(out, "SealedPCRs           sha256:0,7"));
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "--pcrs", "0,99", "tpm", "reseal"), 2);
        free(out);

        /* Unknown volume 4, unknown verb 2. */
        assert_int_equal(CTL(f, 0, NULL, &out, "recovery", "show", "no-such-volume"), 4);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "frobnicate"), 2);
        free(out);
        out = NULL;
}

/* With the real polkitd and a rule that grants one action to one user: that user gets that action
 * and no other; another user gets nothing. */
static void test_polkit_grants_one_action(void **state) {
        Fixture *f = *state;
        _cleanup_(polkit_fixture_freep) PolkitFixture *pk = NULL;
        _cleanup_free_ char *out = NULL;
        struct passwd *pw = getpwnam("daemon");
        char uuid[VOLUME_UUID_STRING_MAX];

        assert_non_null(pw);
        assert_int_equal(polkit_fixture_new("test-daemon-polkit",
                                            "polkit.addRule(function(action, subject) {\n"
                                            "        if (action.id == \"org.sealvol1.rotate\" && subject.user == \"daemon\")\n"
                                            "                return polkit.Result.YES;\n"
                                            "});\n",
                                            &pk),
                         0);
        provision_all(f);
        _cleanup_free_ char *u = get_string(f, f->paths[0], "UUID");
        snprintf(uuid, sizeof(uuid), "%s", u);

        assert_int_equal(CTL(f, pw->pw_uid, NULL, &out, "recovery", "rotate", uuid), 0);
        assert_non_null(strstr(out, "new recovery Key ID"));
        free(out);
        assert_int_equal(CTL(f, pw->pw_uid, NULL, &out, "recovery", "show", uuid), 3);
        free(out);
        assert_int_equal(CTL(f, pw->pw_uid, NULL, &out, "unlock", uuid), 3);
        free(out);
        assert_int_equal(CTL(f, NOBODY, NULL, &out, "recovery", "rotate", uuid), 3);
        free(out);
        out = NULL;

        /* The rotation happened (the Key ID changed), and the audit trail names the caller. */
        _cleanup_free_ char *log = test_read_file(f->d->log_path);
        char needle[160];
        snprintf(needle, sizeof(needle), "OPERATION=rotate-recovery-password VOLUME=%s UID=%u", uuid,
                 (unsigned) pw->pw_uid);
        assert_non_null(strstr(log, needle));
}

/* A call that needs the VMK while the daemon holds none (started with --no-unlock) has it unsealed off
 * the loop first ("prepare-vmk"), then runs again: polkit is asked once for it (the rule says yes only
 * the first time it is asked, which a second call shows). */
static void test_vmk_unsealed_for_a_call(void **state) {
        Fixture *f = *state;
        _cleanup_(polkit_fixture_freep) PolkitFixture *pk = NULL;
        _cleanup_free_ char *out = NULL, *shown = NULL;
        struct passwd *pw = getpwnam("daemon");
        char uuid[VOLUME_UUID_STRING_MAX];
        const char *p;

        assert_non_null(pw);
        assert_int_equal(polkit_fixture_new("test-daemon-polkit-once",
                                            "var asked = 0;\n"
                                            "polkit.addRule(function(action, subject) {\n"
                                            "        if (action.id == \"org.sealvol1.read-recovery-password\" &&\n"
                                            "            subject.user == \"daemon\") {\n"
                                            "                asked++;\n"
                                            "                return asked == 1 ? polkit.Result.YES : polkit.Result.NO;\n"
                                            "        }\n"
                                            "});\n",
                                            &pk),
                         0);
        provision_all(f);
        _cleanup_free_ char *u = get_string(f, f->paths[0], "UUID");
        snprintf(uuid, sizeof(uuid), "%s", u);
        assert_int_equal(CTL(f, 0, NULL, &shown, "recovery", "show", uuid), 0);

        f->d->extra_arg = "--no-unlock";
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        f->d->extra_arg = NULL;
        assert_int_equal(CTL(f, pw->pw_uid, NULL, &out, "recovery", "show", uuid), 0);
        p = strstr(shown, "Recovery password: ");
        assert_non_null(p);
        if (!strstr(out, p))
                fail_msg("the password read after the unseal differs: %s / %s", out, shown);
        free(out);
        assert_int_equal(CTL(f, pw->pw_uid, NULL, &out, "recovery", "show", uuid), 3);
}

/* The DRA end to end: set the certificate (every volume re-wrapped), export the VMK, then replace the
 * TPM (a new main board): nothing opens from the TPM; the DRA key opens one volume and, through the
 * export, gives back the VMK that opens the others; reseal to the new TPM; reboot; all open. */
static void test_dra_and_tpm_replacement(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cert = dra_fixture_path("signed", ".crt"), *key = dra_fixture_path("signed", ".key"),
                            *bad = dra_fixture_path("rsa-ku-sign", ".crt"), *other_key = dra_fixture_path("ec256", ".key");
        _cleanup_free_ char *out = NULL, *fp = NULL;
        char uuid[VOLUME_UUID_STRING_MAX];

        provision_all(f);
        _cleanup_free_ char *u = get_string(f, f->paths[0], "UUID");
        snprintf(uuid, sizeof(uuid), "%s", u);

        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", bad), 5);
        assert_non_null(strstr(out, "key usage"));
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 0);
        assert_non_null(strstr(out, "3 volumes re-wrapped"));
        free(out);
        fp = get_string(f, f->paths[2], "DRAFingerprint");
        assert_int_equal(strlen(fp), 64);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "show"), 0);
        assert_non_null(strstr(out, fp));
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "vmk", "export"), 0);
        assert_non_null(strstr(out, "sealvol-vmk-export"));
        free(out);
        /* Exporting the VMK is its own, uncached authorisation. */
        assert_int_equal(CTL(f, NOBODY, NULL, &out, "vmk", "export"), 3);
        free(out);

        /* A new TPM: the old storage hierarchy is gone. */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_kill(f->d->tpm), 0);
        assert_int_equal(rm_rf(f->d->tpm->state_dir), 0);
        assert_int_equal(mkdir(f->d->tpm->state_dir, 0700), 0);
        assert_int_equal(swtpm_fixture_start(f->d->tpm), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");

        /* The wrong key opens nothing; the DRA key opens the server. */
        assert_int_equal(CTL(f, 0, NULL, &out, "--dra-key", other_key, "recover", uuid), 5);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "--dra-key", key, "recover", uuid), 0);
        free(out);
        out = NULL;
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");

        /* A reseal is refused: the VMK is pinned to the old TPM's storage key. The replacement, proven
         * with the DRA key again, seals it to the new TPM; the next boot needs nobody. */
        assert_int_equal(CTL(f, 0, NULL, &out, "tpm", "reseal"), 6);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "--dra-key", other_key, "tpm", "replace"), 5);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "--dra-key", key, "tpm", "replace"), 0);
        free(out);
        out = NULL;
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
}

static char *read_server_password(Fixture *f, char **ret_key_id) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *pw, *key_id;
        char *copy;

        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "GetServerRecoveryPassword", &error, &reply, "") >= 0);
        assert_true(sd_bus_message_read(reply, "ss", &pw, &key_id) >= 0);
        copy = strdup(pw);
        if (ret_key_id)
                *ret_key_id = strdup(key_id);
        sd_bus_message_unref(reply);
        return copy;
}

/* What sealvolctl prints when the daemon refuses: the daemon's reason and what to do, never a bus
 * method's name nor the same failure said twice. */
static void assert_says_why(const char *out, const char *why) {
        static const char *const methods[] = { "ProvisionVolume", "UnlockWithRecoveryPassword",
                                               "UnlockWithServerRecoveryPassword", "Unlock ", "ReplaceTPM" };

        if (!strstr(out, why))
                fail_msg("\"%s\" does not say \"%s\"", out, why);
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (strstr(out, methods[i]))
                        fail_msg("\"%s\" names the bus method %s", out, methods[i]);
        assert_null(strstr(out, ": Failed"));
        assert_null(strstr(out, ": Cannot"));
}

static void test_cli_says_why(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *out = NULL, *input = NULL, *pw = NULL, *uuid = NULL;

        provision_all(f);
        uuid = get_string(f, f->paths[0], "UUID");

        /* A device that holds LUKS2 already: what is wrong, and the two ways on. */
        assert_int_equal(CTL(f, 0, NULL, &out, "provision", f->images[0]), 1);
        assert_says_why(out, "holds data");
        assert_says_why(out, "wipefs -a");
        assert_says_why(out, "--in-place");
        out = mfree(out);
        /* One that is not there. */
        assert_int_equal(CTL(f, 0, NULL, &out, "provision", "/nonexistent/disk.img"), 4);
        assert_says_why(out, "/nonexistent/disk.img");
        out = mfree(out);
        /* A typo in a recovery password names its block; the wrong password says which Key IDs it takes. */
        pw = read_password(f, 1);
        input = strdup(pw);
        input[2 * 7 + 3] = input[2 * 7 + 3] == '0' ? '1' : '0';
        assert_int_equal(CTL(f, 0, input, &out, "recover", uuid), 5);
        assert_says_why(out, "Block 3");
        out = mfree(out);
        assert_int_equal(CTL(f, 0, pw, &out, "recover", uuid), 5);
        assert_says_why(out, "Key ID");
        out = mfree(out);
        /* An unknown volume. */
        assert_int_equal(CTL(f, 0, NULL, &out, "unlock", "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60"), 4);
        assert_says_why(out, "No sealvol volume");
        out = mfree(out);
        /* A disk's password given for the server's. */
        _cleanup_free_ char *sin = NULL;
        assert_true(asprintf(&sin, "%s\n", pw) > 0);
        assert_int_equal(CTL(f, 0, sin, &out, "tpm", "replace"), 5);
        assert_says_why(out, "not the server recovery password");
        out = mfree(out);
}

static int on_unlock_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        int *result = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        (void) ret_error;
        *result = e ? -1 : 1;
        if (e)
                print_message("UnlockWithRecoveryPassword failed: %s: %s\n", e->name, e->message);
        return 0;
}

/* Whether the operation name is under way: on the volume at path, or (path NULL) in the Manager's
 * list. */
static bool operation_seen(Fixture *f, const char *path, const char *name) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char **ops = NULL;
        bool seen;

        if (path) {
                _cleanup_free_ char *op = get_string(f, path, "Operation");

                return streq(op, name);
        }
        assert_true(sd_bus_get_property_strv(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                             "Operations", &error, &ops) >= 0);
        seen = ops && ops[0] && streq(ops[0], name);
        for (char **o = ops; o && *o; o++)
                free(*o);
        free(ops);
        return seen;
}

/* Calls member (its arguments: password and no flags, or none when password is NULL) on object
 * through caller, and reads properties until the operation name shows (on path, or the Manager's
 * list): the bus answered while it ran. A reply before that fails the test. */
static void call_until_under_way(Fixture *f, sd_bus *caller, sd_bus_slot **slot, const char *object,
                                 const char *interface, const char *member, const char *password, int *result,
                                 const char *path, const char *name) {
        bool seen = false;

        *result = 0;
        *slot = sd_bus_slot_unref(*slot);
        if (password)
                assert_true(sd_bus_call_method_async(caller, slot, "org.sealvol1", object, interface, member,
                                                     on_unlock_reply, result, "st", password, UINT64_C(0)) >= 0);
        else
                assert_true(sd_bus_call_method_async(caller, slot, "org.sealvol1", object, interface, member,
                                                     on_unlock_reply, result, NULL) >= 0);
        assert_true(sd_bus_flush(caller) >= 0);
        /* Until the daemon has it, nothing is under way; then the operation until its work is done. */
        for (unsigned i = 0; i < 100000 && !seen; i++) {
                seen = operation_seen(f, path, name);
                if (!seen) {
                        assert_true(sd_bus_process(caller, NULL) >= 0);
                        if (*result != 0)
                                fail_msg("%s was answered before the bus answered a property read during it", member);
                }
        }
        assert_true(seen);
}

/* The reply of the call started by call_until_under_way(): 1 success, -1 an error. */
static int wait_reply(sd_bus *caller, const int *result) {
        while (*result == 0) {
                assert_true(sd_bus_process(caller, NULL) >= 0);
                if (*result == 0)
                        assert_true(sd_bus_wait(caller, UINT64_MAX) >= 0);
        }
        return *result;
}

/* A call refused as Busy naming the operation under way; other outcomes only when allowed (the
 * operation may have ended just before). */
static void assert_busy(sd_bus_error *error, int r, const char *what, bool may_pass) {
        if (r >= 0 && may_pass)
                return;
        assert_true(r < 0);
        assert_string_equal(error->name, BUS_ERROR_BUSY);
        assert_non_null(strstr(error->message, what));
        sd_bus_error_free(error);
}

/* The slow calls (production KDF cost) run as operations, off the event loop: while they run, the bus
 * answers (properties, status), the volume or the Manager says what is under way, and a conflicting
 * call is refused at once. Ordering, not timing: the operation is read as under way, which a daemon
 * blocked in the work could only answer after it ended, when it is gone again. */
static void test_answers_during_recovery(void **state) {
        Fixture *f = *state;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *caller = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *pw = NULL, *out = NULL, *spw = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int result = 0, r;

        provision_all(f);
        pw = read_password(f, 0);
        assert_true(sd_bus_open_system(&caller) >= 0);

        /* A recovery unlock: the volume is busy until the KDF is done. */
        call_until_under_way(f, caller, &slot, f->paths[0], "org.sealvol1.Volume", "UnlockWithRecoveryPassword", pw,
                             &result, f->paths[0], "recover");
        /* A change to the same volume is refused at once; another volume, the Manager and status answer. */
        r = sd_bus_call_method(f->bus, "org.sealvol1", f->paths[0], "org.sealvol1.Volume", "UnlockWithRecoveryPassword",
                               &error, NULL, "st", pw, UINT64_C(0));
        assert_busy(&error, r, "recover is under way", false);
        assert_state(f, 1, "locked");
        assert_int_equal(CTL(f, 0, NULL, &out, "status"), 0);
        _cleanup_free_ char *op = get_string(f, f->paths[0], "Operation");
        if (streq(op, "recover"))
                assert_non_null(strstr(out, "busy: recover under way"));
        /* The answer comes when the work is done, and the volume is idle again. */
        assert_int_equal(wait_reply(caller, &result), 1);
        _cleanup_free_ char *idle = get_string(f, f->paths[0], "Operation");
        assert_string_equal(idle, "");
        assert_state(f, 0, "verified");

        /* The server recovery password's KDF (twice a keyslot's) likewise: the Manager lists it. */
        spw = read_server_password(f, NULL);
        call_until_under_way(f, caller, &slot, "/org/sealvol1", "org.sealvol1.Manager",
                             "UnlockWithServerRecoveryPassword", spw, &result, NULL, "recover-server");
        assert_int_equal(wait_reply(caller, &result), 1);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");

        /* The TPM replacement with the (rotated) server recovery password: its KDF and the TPM's work are
         * operations; it runs alone, so a reseal meanwhile is refused at once, naming it (a reseal that
         * succeeds came after the replacement ended: the seal took less than two calls). */
        free(spw);
        spw = read_server_password(f, NULL);
        call_until_under_way(f, caller, &slot, "/org/sealvol1", "org.sealvol1.Manager",
                             "ReplaceTPMWithServerRecoveryPassword", spw, &result, NULL, "replace-tpm");
        r = sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ResealVMK", &error,
                               NULL, "sst", "", "", UINT64_C(0));
        assert_busy(&error, r, "replace-tpm is under way", true);
        assert_int_equal(wait_reply(caller, &result), 1);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");

        /* A recovery password's rotation: the new keyslot's KDF and the escrow are an operation on the
         * volume, which is busy meanwhile; the new password opens it, the old one no more. */
        _cleanup_free_ char *before = read_password(f, 1);
        call_until_under_way(f, caller, &slot, f->paths[1], "org.sealvol1.Volume", "RotateRecoveryPassword", NULL,
                             &result, f->paths[1], "rotate-recovery");
        r = sd_bus_call_method(f->bus, "org.sealvol1", f->paths[1], "org.sealvol1.Volume", "RotateRecoveryPassword",
                               &error, NULL, NULL);
        assert_busy(&error, r, "rotate-recovery is under way", false);
        /* A change of the VMK waits for it too (the rotation escrows what it started with). */
        r = sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "RotateVMK", &error,
                               NULL, "t", UINT64_C(0));
        assert_busy(&error, r, "rotate-recovery is under way", true);
        assert_int_equal(wait_reply(caller, &result), 1);
        _cleanup_free_ char *after = read_password(f, 1);
        assert_string_not_equal(before, after);
        _cleanup_(volume_freep) Volume *vol = NULL;
        assert_int_equal(volume_load(f->images[1], &vol), 0);
        assert_true(volume_open_recovery(vol, after, NULL, 0, NULL) >= 0);
        assert_true(volume_open_recovery(vol, before, NULL, 0, NULL) < 0);
}

/* A new main board (its TPM manufactured afresh: new seeds, no storage key) with the disks kept. */
static void new_main_board(Fixture *f) {
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_kill(f->d->tpm), 0);
        assert_int_equal(rm_rf(f->d->tpm->state_dir), 0);
        assert_int_equal(mkdir(f->d->tpm->state_dir, 0700), 0);
        assert_int_equal(swtpm_fixture_start(f->d->tpm), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
}

/* The TPM replacement proven with the server recovery password alone (no DRA in this server): every
 * disk opens, the VMK is sealed to the new TPM with its storage key pinned anew, the VMK and the
 * password are rotated, and the next boot needs nobody. A disk's password, the wrong server password
 * and an unauthorised caller change nothing. */
static void test_tpm_replacement_with_server_password(void **state) {
        Fixture *f = *state;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *spw = NULL, *key_id = NULL, *disk_pw = NULL, *out = NULL, *input = NULL, *log = NULL,
                            *records = NULL, *path = NULL, *new_id = NULL;
        size_t size;

        provision_all(f);
        spw = read_server_password(f, &key_id);
        disk_pw = read_password(f, 0);
        new_main_board(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");

        /* A disk's password is no server-scoped secret; nobody may replace the TPM. */
        assert_true(asprintf(&input, "%s\n", disk_pw) > 0);
        assert_int_equal(CTL(f, 0, input, &out, "tpm", "replace"), 5);
        assert_non_null(strstr(out, "not the server recovery password"));
        free(out);
        out = NULL;
        free(input);
        input = NULL;
        assert_true(asprintf(&input, "%s\n", spw) > 0);
        assert_int_equal(CTL(f, NOBODY, input, &out, "tpm", "replace"), 3);
        free(out);
        out = NULL;
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");
        path = path_join(f->d->state_dir, "tpm-replacements.json");
        assert_int_equal(access(path, F_OK), -1);
        /* A record a crash cut short is kept aside, not overwritten. */
        assert_int_equal(write_file_atomic(path, "{\"replacements\": [{\"time\"", 25, 0600), 0);

        /* The prompt names the Key ID it wants; the record says what proved it. */
        assert_int_equal(CTL(f, 0, input, &out, "--json", "tpm", "replace"), 0);
        assert_non_null(strstr(out, "\"credential\": \"server-recovery-password\""));
        assert_non_null(strstr(out, "\"new_srk_name\": \"000b"));
        free(out);
        out = NULL;
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        assert_int_equal(read_file_full(path, 1024 * 1024, &records, &size), 0);
        assert_non_null(strstr(records, "server-recovery-password"));
        assert_non_null(strstr(records, "\"old_tpm\"")); /* from tpm-identity.json of the first seal */
        {
                _cleanup_free_ char *aside = NULL, *kept = NULL;
                DIR *dir = opendir(f->d->state_dir);
                struct dirent *de;

                assert_non_null(dir);
                while ((de = readdir(dir)))
                        if (strncmp(de->d_name, "tpm-replacements.json.unreadable.", 33) == 0)
                                aside = path_join(f->d->state_dir, de->d_name);
                closedir(dir);
                assert_non_null(aside);
                assert_int_equal(read_file_full(aside, 1024, &kept, &size), 0);
                assert_string_equal(kept, "{\"replacements\": [{\"time\"");
        }
        /* Used once: replaced, with the VMK. */
        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "ServerRecoveryKeyId", &error, &new_id) >= 0);
        assert_string_not_equal(new_id, key_id);

        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        /* The used password opens nothing any more. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, NULL, "st", spw, UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_WRONG_KEY);
        sd_bus_error_free(&error);
        assert_int_equal(read_file_full(f->d->log_path, 64 * 1024 * 1024, &log, &size), 0);
        assert_non_null(strstr(log, "OPERATION=replace-tpm"));
}

/* A main board replaced by one whose TPM was manufactured with an EK certificate from ca (NULL: none). */
static void new_main_board_by(Fixture *f, const char *ca) {
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_new_tpm(f->d->tpm, ca), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
}

/* With [TPM] EKCertificateCA=, `tpm replace` seals the VMK only to a TPM its maker certified, which
 * proves it holds the certified EK: a TPM without an EK certificate, and one of another maker, are
 * refused with the reason and nothing is sealed to them; the certified one is accepted, its EK
 * certificate recorded, and the next boot needs nobody. */
static void test_tpm_replacement_ek_checked(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *spw = NULL, *key_id = NULL, *out = NULL, *input = NULL, *sealed = NULL, *now = NULL,
                            *identity = NULL, *path = NULL, *records = NULL;
        size_t sealed_size, size;

        provision_all(f);
        spw = read_server_password(f, &key_id);
        assert_true(asprintf(&input, "%s\n", spw) > 0);
        path = path_join(f->d->state_dir, "vmk.sealed");
        /* The first seal noted the TPM it was made on (no EK check there: nothing to compare with). */
        identity = path_join(f->d->state_dir, "tpm-identity.json");
        assert_int_equal(read_file_full(identity, 64 * 1024, &now, &size), 0);
        assert_non_null(strstr(now, "\"srk_name\""));
        assert_null(strstr(now, "ek_certificate"));
        now = mfree(now);

        /* No EK certificate: refused, nothing sealed. */
        new_main_board_by(f, NULL);
        assert_int_equal(read_file_full(path, 1024 * 1024, &sealed, &sealed_size), 0);
        assert_int_equal(CTL(f, 0, input, &out, "tpm", "replace"), 6);
        assert_non_null(strstr(out, "not one its maker certified"));
        assert_non_null(strstr(out, "no EK certificate"));
        out = mfree(out);
        assert_int_equal(read_file_full(path, 1024 * 1024, &now, &size), 0);
        assert_true(size == sealed_size && memcmp(now, sealed, size) == 0);
        now = mfree(now);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");

        /* Another maker's TPM: its certificate chains to no configured CA. */
        new_main_board_by(f, f->ca[1]);
        assert_int_equal(CTL(f, 0, input, &out, "tpm", "replace"), 6);
        assert_non_null(strstr(out, "not one its maker certified"));
        assert_non_null(strstr(out, "chain"));
        out = mfree(out);
        assert_int_equal(read_file_full(path, 1024 * 1024, &now, &size), 0);
        assert_true(size == sealed_size && memcmp(now, sealed, size) == 0);
        now = mfree(now);

        /* The certified one: sealed, its EK certificate in the record and in tpm-identity.json. */
        new_main_board_by(f, f->ca[0]);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");
        assert_int_equal(CTL(f, 0, input, &out, "--json", "tpm", "replace"), 0);
        assert_non_null(strstr(out, "\"ek_certificate_sha256\": \""));
        assert_non_null(strstr(out, "\"old_tpm\""));
        out = mfree(out);
        assert_int_equal(read_file_full(identity, 64 * 1024, &now, &size), 0);
        assert_non_null(strstr(now, "ek_certificate_issuer"));
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
}

/* A reboot after which PCR 7 holds what measuring event gives (a firmware update). */
static void changed_boot_by(Fixture *f, const char *event) {
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f->d->tpm, 7, event, strlen(event)), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);
}

static void changed_boot(Fixture *f) {
        changed_boot_by(f, "new db");
}

/* The server recovery password: a server-scoped secret of its own, which opens the VMK and so every
 * disk of the server at once (the Manager's method, or any volume's). It is kept wrapped in the state
 * directory, never in clear; once used it is replaced, with the VMK (a rotation), and the next boot
 * needs nobody. */
static void test_server_recovery_password(void **state) {
        Fixture *f = *state;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_free_ char *spw = NULL, *key_id = NULL, *property = NULL, *file = NULL, *disk_pw = NULL,
                            *typo = NULL, *out = NULL, *input = NULL, *due = NULL;
        uint32_t opened = 0, failed = 0;
        const char *st, *new_id;
        struct stat sb;

        provision_all(f);
        spw = read_server_password(f, &key_id);
        assert_int_equal(strlen(spw), RECOVERY_PASSWORD_LEN);
        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "ServerRecoveryKeyId", &error, &property) >= 0);
        assert_string_equal(property, key_id);
        file = path_join(f->d->state_dir, "server-recovery.json");
        assert_int_equal(stat(file, &sb), 0);
        assert_int_equal(sb.st_mode & 07777, 0600);
        _cleanup_free_ char *content = test_read_file(file);
        assert_non_null(strstr(content, key_id));
        assert_null(strstr(content, spw));
        /* A guess against it costs what one against a disk's recovery keyslot costs: the keyslot's
         * 64-byte key is two PBKDF2 blocks at its count, the wrap's 32-byte key one block at twice it. */
        {
                ServerRecovery sr;
                struct crypt_pbkdf_type pbkdf;
                _cleanup_(volume_freep) Volume *v = NULL;
                uint32_t iterations = 0;

                assert_int_equal(server_recovery_read(file, &sr), 0);
                for (unsigned i = 0; i < 4; i++)
                        iterations |= (uint32_t) sr.wrapped_vmk[i] << (8 * i);
                server_recovery_done(&sr);
                assert_int_equal(volume_load(f->images[0], &v), 0);
                assert_int_equal(crypt_keyslot_get_pbkdf(v->cd, v->token.protectors[PROTECTOR_RECOVERY].keyslot, &pbkdf),
                                 0);
                assert_int_equal(iterations, 2 * pbkdf.iterations);
        }
        /* It is no disk's password. */
        disk_pw = read_password(f, 0);
        assert_string_not_equal(disk_pw, spw);
        due = path_join(f->d->state_dir, "vmk-rotation-due");
        assert_int_equal(access(due, F_OK), -1);

        changed_boot(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");

        /* A typo is named before any KDF; a disk's password is not the server's. */
        typo = strdup(spw);
        typo[3] = typo[3] == '0' ? '1' : '0';
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", typo, UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_RECOVERY_PASSWORD_TYPO);
        sd_bus_error_free(&error);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", disk_pw,
                                       UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_WRONG_KEY);
        assert_non_null(strstr(error.message, key_id));
        sd_bus_error_free(&error);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "recovery-required");

        /* The right one opens the server; used, it is replaced at once, with the VMK: the rotation seals a
         * new VMK to the boot as it is (the recovery proved the change), and binds every disk to it. */
        _cleanup_free_ char *vmk_before = manager_string(f, "VMKId");
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", spw, UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "uu", &opened, &failed) >= 0);
        reply = sd_bus_message_unref(reply);
        assert_int_equal(opened, N_VOLUMES);
        assert_int_equal(failed, 0);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        _cleanup_free_ char *vmk_after = manager_string(f, "VMKId"), *rotation = manager_string(f, "VMKRotation");
        assert_string_not_equal(vmk_after, vmk_before);
        assert_string_equal(rotation, "");
        assert_int_equal(access(due, F_OK), -1);
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_free_ char *id = get_string(f, f->paths[i], "VMKId");
                assert_string_equal(id, vmk_after);
        }
        _cleanup_free_ char *key_id2 = NULL, *spw2 = read_server_password(f, &key_id2);
        assert_string_not_equal(key_id2, key_id);
        assert_string_not_equal(spw2, spw);

        /* The same boot again: nobody is needed. */
        changed_boot(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");

        /* Another change: the used password opens nothing now; the new one does, through a volume's
         * method too (the prompt names both Key IDs). */
        changed_boot_by(f, "newer db");
        assert_state(f, 0, "recovery-required");
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", spw, UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_WRONG_KEY);
        sd_bus_error_free(&error);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->paths[2], "org.sealvol1.Volume",
                                       "UnlockWithRecoveryPassword", &error, &reply, "st", spw2, UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "ss", &st, &new_id) >= 0);
        assert_string_equal(st, "verified");
        reply = sd_bus_message_unref(reply);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        _cleanup_free_ char *key_id3 = NULL, *spw3 = read_server_password(f, &key_id3);
        assert_string_not_equal(key_id3, key_id2);

        /* And sealvolctl, without a volume, from stdin. */
        changed_boot_by(f, "newest db");
        assert_true(asprintf(&input, "%s\n", spw3) > 0);
        assert_int_equal(CTL(f, 0, input, &out, "recover"), 0);
        assert_non_null(strstr(out, "3 volumes open"));
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "recovery", "show-server"), 0);
        assert_null(strstr(out, spw3)); /* rotated after that use as well */

        _cleanup_free_ char *log = test_read_file(f->d->log_path);
        assert_non_null(strstr(log, "OPERATION=unlock-server-recovery-password"));
        assert_non_null(strstr(log, "OPERATION=read-server-recovery-password"));
        assert_null(strstr(log, spw));
}

/* RotateVMK with a disk missing: every other volume is bound to the new VMK at once; the previous one
 * stays sealed beside it (one object, one unseal) until the missing disk is back, which is re-bound
 * when it appears, and the previous VMK goes. The old server recovery password opens nothing now. */
static void test_rotate_vmk_absent_volume(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *away = NULL, *out = NULL, *before = NULL, *after = NULL, *rotation = NULL,
                            *old_spw = NULL, *sealed = path_join(f->d->state_dir, "vmk.sealed");
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        VmkBlob blob;

        provision_all(f);
        old_spw = read_server_password(f, NULL);
        before = manager_string(f, "VMKId");
        assert_true(asprintf(&away, "%s.away", f->images[2]) > 0);
        assert_int_equal(rename(f->images[2], away), 0);

        assert_int_equal(CTL(f, 0, NULL, &out, "tpm", "rotate-vmk"), 0);
        assert_non_null(strstr(out, "The VMK is rotated"));
        after = manager_string(f, "VMKId");
        assert_string_not_equal(after, before);
        rotation = manager_string(f, "VMKRotation");
        assert_non_null(strstr(rotation, before));
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *id = get_string(f, f->paths[i], "VMKId");
                assert_string_equal(id, after);
        }
        assert_int_equal(vmk_blob_read(sealed, &blob), 0);
        assert_true(blob.has_previous);

        /* A second rotation waits for the first. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "RotateVMK",
                                       &error, &reply, "t", UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_BUSY);
        sd_bus_error_free(&error);

        /* The disk is back at the next boot: opened with the previous VMK, re-bound, and the previous
         * VMK goes from the sealed state. */
        assert_int_equal(rename(away, f->images[2]), 0);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        /* The re-binding runs once the boot is ready. */
        assert_int_equal(daemon_fixture_wait_idle(f->d, 120000), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_free_ char *id = get_string(f, f->paths[i], "VMKId");
                assert_state(f, i, "verified");
                assert_string_equal(id, after);
        }
        free(rotation);
        rotation = manager_string(f, "VMKRotation");
        assert_string_equal(rotation, "");
        assert_int_equal(vmk_blob_read(sealed, &blob), 0);
        assert_false(blob.has_previous);

        /* The server recovery password of the old VMK opens nothing any more. */
        changed_boot_by(f, "after the rotation");
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", old_spw,
                                       UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_WRONG_KEY);
        sd_bus_error_free(&error);
}

/* The token of an image as any header copy has it. */
static char *token_json_of(const char *image) {
        _cleanup_(volume_freep) Volume *v = NULL;
        const char *json;
        int id;
        char *copy;

        assert_int_equal(volume_load(image, &v), 0);
        assert_int_equal(volume_find_token(v->cd, &id, &json), 0);
        copy = strdup(json);
        assert_non_null(copy);
        return copy;
}

/* A server provisioned by version 1 (its formats written by the frozen writer of
 * tests/harness/v1-format.c) boots with this version: the sealed state and every token are written as
 * version 2, a server recovery password is made, and the VMK, which version 1 kept under each disk's
 * recovery password, is rotated. A header copy taken before (the attack on version 1) still gives the
 * old VMK with a disk's password, and that VMK opens none of the disks now. */
static void test_v1_server_upgraded(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *sealed = path_join(f->d->state_dir, "vmk.sealed"), *v1 = NULL, *old_token = NULL,
                            *server = path_join(f->d->state_dir, "server-recovery.json"), *old_vmk_id = NULL,
                            *new_vmk_id = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL, *stolen = NULL;
        char *passwords[N_VOLUMES] = {};
        VmkBlob blob;

        provision_all(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                passwords[i] = read_password(f, i);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        {
                _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;

                assert_int_equal(tpm2_context_new(f->d->tpm->tcti, &c), 0);
                assert_int_equal(vmk_unseal_from_file(c, sealed, &vmk, &blob, NULL), 0);
        }
        old_vmk_id = strdup(guid_format(&blob.vmk_id, (char[GUID_STRING_MAX]) {}));
        assert_int_equal(v1_blob_to_json(&blob, &v1), 0);
        assert_int_equal(write_file_atomic(sealed, v1, strlen(v1), 0600), 0);
        assert_int_equal(unlink(server), 0);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_int_equal(v1_volume_downgrade(f->images[i], vmk, passwords[i]), 0);
        /* What a helpdesk holding disk 0's password and a copy of its header had. */
        old_token = token_json_of(f->images[0]);
        assert_int_equal(v1_recover_vmk(old_token, passwords[0], &stolen), 0);
        assert_memory_equal(stolen, vmk, VMK_SIZE);

        assert_int_equal(daemon_fixture_start(f->d), 0);
        /* The rotation the upgrade brings runs once the boot is ready. */
        assert_int_equal(daemon_fixture_wait_idle(f->d, 120000), 0);
        reconnect(f);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        assert_int_equal(vmk_blob_read(sealed, &blob), 0);
        assert_int_equal(blob.version, 2u);
        assert_false(blob.has_previous);
        assert_int_equal(access(server, F_OK), 0);
        new_vmk_id = manager_string(f, "VMKId");
        assert_string_not_equal(new_vmk_id, old_vmk_id);
        assert_string_equal(new_vmk_id, guid_format(&blob.vmk_id, (char[GUID_STRING_MAX]) {}));
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_(volume_freep) Volume *v = NULL;
                _cleanup_free_ char *json = token_json_of(f->images[i]);
                _cleanup_secure_ uint8_t *none = NULL;

                assert_int_equal(volume_load(f->images[i], &v), 0);
                assert_int_equal(v->token.version, 2u);
                /* No copy of the VMK under the disk's password in the token now. */
                assert_int_equal(v1_recover_vmk(json, passwords[i], &none), -ENODATA);
                /* The stolen VMK opens nothing: the volume is bound to another one, and the old VMK's
                 * passphrase opens no keyslot. */
                _cleanup_secure_ uint8_t *pass = NULL;
                assert_int_equal(vmk_derive_keyslot_passphrase(stolen, v->token.volume_uuid, &pass), 0);
                assert_true(crypt_activate_by_passphrase(v->cd, NULL, CRYPT_ANY_SLOT, (const char *) pass,
                                                         VMK_KEYSLOT_PASSPHRASE_SIZE, 0) < 0);
                /* Each disk's own password still opens it, with stock tools as with ours. */
                assert_true(volume_open_recovery(v, passwords[i], NULL, 0, NULL) >= 0);
        }
        _cleanup_free_ char *log = test_read_file(f->d->log_path);
        assert_non_null(strstr(log, "upgraded to version 2"));
        assert_non_null(strstr(log, "VMK rotation complete"));
        for (size_t i = 0; i < N_VOLUMES; i++)
                free(passwords[i]);
}

/* The attack of the planted volume (docs/threat-model.md, "VMK substitution"): a disk whose token names
 * this server's VMK id (public) but whose keys come from another VMK, with a server copy of the
 * attacker's own. Presented to ProvisionVolume it is not taken for an interrupted provisioning; once
 * in the registry anyway (as discovery would list it), its passwords give the daemon no VMK while the
 * TPM refuses; and when the genuine VMK is back, its token is found tampered and nothing of it used. */
static void test_vmk_substitution_refused(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *planted = NULL, *vmk_id_text = NULL, *registry = NULL, *content = NULL,
                            *out = NULL, *spw = NULL;
        _cleanup_secure_ char *disk_pw = NULL, *fake_spw = NULL;
        _cleanup_secure_ uint8_t *other = NULL;
        _cleanup_(volume_freep) Volume *pv = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        ServerRecovery fake;
        Guid vmk_id;
        int b = 1;

        provision_all(f);
        spw = read_server_password(f, NULL);
        vmk_id_text = manager_string(f, "VMKId");
        assert_int_equal(guid_parse(vmk_id_text, &vmk_id), 0);
        assert_int_equal(vmk_generate(&other), 0);
        assert_int_equal(server_recovery_new(other, &vmk_id, SERVER_RECOVERY_ITERATIONS_MIN, &fake, &fake_spw), 0);
        assert_int_equal(daemon_fixture_new_image(f->d, "planted.img", &planted), 0);
        VolumeProvisionParams p = { .vmk = other, .vmk_id = vmk_id, .recovery_iterations = 1000,
                                    .server_key_id = &fake.key_id, .server_wrap = fake.wrapped_vmk };
        assert_int_equal(volume_provision(planted, &p, &disk_pw, &pv), 0);

        /* Not registered as a provisioning that did not finish: its token is not the daemon's writing. */
        assert_int_not_equal(CTL(f, 0, NULL, &out, "provision", planted), 0);
        free(out);
        out = NULL;
        assert_int_equal(CTL(f, 0, NULL, &out, "--json", "list"), 0);
        assert_null(strstr(out, pv->token.volume_uuid));
        free(out);
        out = NULL;

        /* In the registry all the same, and a changed boot: the daemon holds no VMK. */
        assert_true(asprintf(&registry, "%s/volumes/%s", f->d->state_dir, pv->token.volume_uuid) > 0);
        assert_true(asprintf(&content, "%s\n", planted) > 0);
        assert_int_equal(write_file_atomic(registry, content, strlen(content), 0600), 0);
        changed_boot(f);
        _cleanup_free_ char *path = NULL;
        assert_int_equal(sd_bus_path_encode("/org/sealvol1/volume", pv->token.volume_uuid, &path), 0);

        /* Its own password opens it, as a stock cryptsetup would, and gives nothing else. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume",
                                       "UnlockWithRecoveryPassword", &error, &reply, "st", disk_pw, UINT64_C(0)) >= 0);
        reply = sd_bus_message_unref(reply);
        /* Its fake server password opens nothing: the server's copy is the state directory's. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume",
                                       "UnlockWithRecoveryPassword", &error, &reply, "st", fake_spw, UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_WRONG_KEY);
        sd_bus_error_free(&error);
        assert_true(sd_bus_get_property_trivial(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                                "VMKAvailable", &error, 'b', &b) >= 0);
        assert_false(b);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ResealVMK",
                                       &error, NULL, "sst", "", "", UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_NO_VMK);
        sd_bus_error_free(&error);

        /* The genuine server recovery password brings the genuine VMK: the server's disks open, the
         * planted one is tampered and left as it is. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "UnlockWithServerRecoveryPassword", &error, &reply, "st", spw, UINT64_C(0)) >= 0);
        reply = sd_bus_message_unref(reply);
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_state(f, i, "verified");
        /* (Opened with its own password above, it stays so; asked to open from the VMK, it is refused.) */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", "Lock", &error, NULL,
                                       "") >= 0);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", "Unlock", &error, NULL,
                                       "t", UINT64_C(0)) < 0);
        assert_string_equal(error.name, BUS_ERROR_TAMPERED);
        sd_bus_error_free(&error);
        _cleanup_free_ char *st = get_string(f, path, "State");
        assert_string_equal(st, "tampered");
        server_recovery_done(&fake);
}

/* ---- who may set the DRA ----------------------------------------------------------------------- */

/* The DRA certificate each volume is wrapped to, and the state the daemon keeps of it: what a
 * refused SetDRACertificate must leave as it was. */
typedef struct DraState {
        char *volume_fp[N_VOLUMES];
        char *export; /* vmk-export.json */
        char *kept;   /* dra.pem */
} DraState;

static void dra_state_get(Fixture *f, DraState *ret) {
        _cleanup_free_ char *export = path_join(f->d->state_dir, "vmk-export.json");
        _cleanup_free_ char *kept = path_join(f->d->state_dir, "dra.pem");

        for (size_t i = 0; i < N_VOLUMES; i++)
                ret->volume_fp[i] = get_string(f, f->paths[i], "DRAFingerprint");
        ret->export = test_read_file(export);
        ret->kept = test_read_file(kept);
}

static void dra_state_done(DraState *s) {
        for (size_t i = 0; i < N_VOLUMES; i++)
                free(s->volume_fp[i]);
        free(s->export);
        free(s->kept);
        *s = (DraState) {};
}

static void assert_dra_state_equal(const DraState *a, const DraState *b) {
        for (size_t i = 0; i < N_VOLUMES; i++)
                assert_string_equal(a->volume_fp[i], b->volume_fp[i]);
        assert_true(!a->export == !b->export);
        if (a->export)
                assert_string_equal(a->export, b->export);
        assert_true(!a->kept == !b->kept);
        if (a->kept)
                assert_string_equal(a->kept, b->kept);
}

/* Every volume opens with the DRA private key of fixture name, read straight from its header. */
static void assert_dra_key_opens_all(Fixture *f, const char *name) {
        EVP_PKEY *key = dra_fixture_key(name);

        assert_non_null(key);
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_(volume_freep) Volume *v = NULL;

                assert_int_equal(volume_load(f->images[i], &v), 0);
                if (volume_open_dra(v, key, NULL, 0) < 0)
                        fail_msg("volume %zu does not open with the DRA key %s", i, name);
        }
        EVP_PKEY_free(key);
}

/* The attack: with the organisation's DRA in force, someone allowed to call SetDRACertificate offers a
 * certificate of their own, self-signed and meeting every key rule. It is refused, and nothing moves:
 * every volume is still wrapped to the organisation's DRA, whose key opens it, and the VMK export is
 * the same file. */
static void test_dra_takeover_refused(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cert = dra_fixture_path("signed", ".crt"), *attacker = dra_fixture_path("rsa2048", ".crt");
        _cleanup_free_ char *out = NULL, *log = NULL, *needle = NULL;
        _cleanup_free_ char *fp = dra_fixture_fingerprint("signed"), *attacker_fp = dra_fixture_fingerprint("rsa2048");
        DraState before = {}, after = {};

        provision_all(f);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 0);
        assert_non_null(strstr(out, "3 volumes re-wrapped"));
        free(out);
        dra_state_get(f, &before);
        assert_string_equal(before.volume_fp[0], fp);
        assert_non_null(before.export);

        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", attacker), 5);
        assert_non_null(strstr(out, "Refused as a DRA certificate: not trusted: it does not chain to a trust anchor: "
                                    "self-signed certificate"));
        free(out);
        out = NULL;
        dra_state_get(f, &after);
        assert_dra_state_equal(&before, &after);
        assert_dra_key_opens_all(f, "signed");

        /* The same over the bus, with the error's name; and the audit trail says who tried what. */
        {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                _cleanup_close_ int fd = open(attacker, O_RDONLY | O_CLOEXEC);

                assert_true(fd >= 0);
                assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "SetDRACertificate", &error, &reply, "ht", fd, UINT64_C(0)) < 0);
                assert_true(sd_bus_error_has_name(&error, BUS_ERROR_CERTIFICATE_REJECTED));
                sd_bus_error_free(&error);
        }
        log = test_read_file(f->d->log_path);
        assert_true(asprintf(&needle, "RESULT=failure ERRNO=%d DETAIL=old %s, new %s", EKEYREJECTED, fp,
                             attacker_fp) > 0);
        assert_non_null(strstr(log, needle));

        /* Across a restart too: the daemon finishes no change that never happened. */
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        reconnect(f);
        dra_state_done(&after);
        dra_state_get(f, &after);
        assert_dra_state_equal(&before, &after);
        dra_state_done(&before);
        dra_state_done(&after);
}

/* Chains to the anchor, directly or through the intermediate the anchor file holds: accepted, and a
 * replacement re-wraps everything with the old and new fingerprints in the audit trail. Anything the
 * anchor does not vouch for is refused, each with its reason. */
static void test_dra_chain_to_anchor(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *first = dra_fixture_path("signed", ".crt"), *first_fp = dra_fixture_fingerprint("signed");
        _cleanup_free_ char *second = dra_fixture_path("signed-intermediate", ".crt");
        _cleanup_free_ char *second_fp = dra_fixture_fingerprint("signed-intermediate");
        _cleanup_free_ char *out = NULL, *log = NULL, *needle = NULL;
        static const struct {
                const char *name, *reason;
        } refused[] = {
                { "signed-other", "unable to get local issuer certificate" },
                { "signed-expired", "certificate has expired" },
                { "signed-by-leaf", "unable to get local issuer certificate" },
                { "ec256", "self-signed certificate" },
        };

        provision_all(f);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", first), 0);
        free(out);
        assert_dra_key_opens_all(f, "signed");
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", second), 0);
        assert_non_null(strstr(out, "3 volumes re-wrapped"));
        free(out);
        out = NULL;
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_free_ char *fp = get_string(f, f->paths[i], "DRAFingerprint");
                assert_string_equal(fp, second_fp);
        }
        assert_dra_key_opens_all(f, "signed-intermediate");
        log = test_read_file(f->d->log_path);
        assert_true(asprintf(&needle, "RESULT=success ERRNO=0 DETAIL=old %s, new %s", first_fp, second_fp) > 0);
        assert_non_null(strstr(log, needle));

        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                _cleanup_free_ char *cert = dra_fixture_path(refused[i].name, ".crt");

                assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 5);
                if (!strstr(out, refused[i].reason))
                        fail_msg("%s: refused with \"%s\", not for \"%s\"", refused[i].name, out, refused[i].reason);
                free(out);
                out = NULL;
        }
        assert_dra_key_opens_all(f, "signed-intermediate");

        /* A chain file (the certificate and its CA) is not what is asked for. */
        {
                _cleanup_free_ char *chain = path_join(f->d->dir, "chain.pem"), *a = NULL, *b = NULL, *both = NULL;
                _cleanup_free_ char *ca = dra_fixture_path("ca", ".crt");

                a = test_read_file(first);
                b = test_read_file(ca);
                assert_true(asprintf(&both, "%s%s", a, b) > 0);
                assert_int_equal(write_file_atomic(chain, both, strlen(both), 0644), 0);
                assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", chain), 5);
                assert_non_null(strstr(out, "more than one certificate"));
        }
}

/* A pinned fingerprint: that certificate, self-signed, is accepted; no other. */
static void test_dra_pinned(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt"), *other = dra_fixture_path("ec256", ".crt");
        _cleanup_free_ char *signed_cert = dra_fixture_path("signed", ".crt"), *out = NULL;

        provision_all(f);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", other), 5);
        assert_non_null(strstr(out, "is not pinned"));
        free(out);
        /* No anchor is configured here: a CA's signature counts for nothing. */
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", signed_cert), 5);
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 0);
        assert_non_null(strstr(out, "3 volumes re-wrapped"));
        free(out);
        out = NULL;
        assert_dra_key_opens_all(f, "rsa2048");
}

/* Neither anchor nor pin: every certificate is refused with what to configure, and nothing changes
 * (no certificate kept, no volume wrapped, no export). */
static void test_dra_no_anchor(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt"), *signed_cert = dra_fixture_path("signed", ".crt");
        _cleanup_free_ char *out = NULL, *kept = path_join(f->d->state_dir, "dra.pem");
        _cleanup_free_ char *export = path_join(f->d->state_dir, "vmk-export.json");

        provision_all(f);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 5);
        assert_non_null(strstr(out, "no trust anchor is configured"));
        assert_non_null(strstr(out, "[DRA] TrustAnchor="));
        assert_non_null(strstr(out, "[DRA] PinnedFingerprint="));
        free(out);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", signed_cert), 5);
        free(out);
        out = NULL;
        assert_int_equal(access(kept, F_OK), -1);
        assert_int_equal(access(export, F_OK), -1);
        for (size_t i = 0; i < N_VOLUMES; i++) {
                _cleanup_free_ char *fp = get_string(f, f->paths[i], "DRAFingerprint");
                assert_string_equal(fp, "");
        }
}

/* The anchor file is checked when it is used: one that others could have written vouches for nothing,
 * and the error says which file and why. */
static void test_dra_anchor_file_unsafe(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cert = dra_fixture_path("signed", ".crt"), *ca = dra_fixture_path("ca", ".crt");
        _cleanup_free_ char *anchor = path_join(f->d->dir, "dra-ca.pem"), *text = NULL, *config = NULL;
        _cleanup_free_ char *out = NULL, *expect = NULL;

        provision_all(f);
        text = test_read_file(ca);
        assert_non_null(text);
        assert_int_equal(write_file_atomic(anchor, text, strlen(text), 0666), 0);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        config = test_read_file(f->d->config_path);
        free(text);
        assert_true(asprintf(&text, "%s[DRA]\nTrustAnchor=%s\n", config, anchor) > 0);
        assert_int_equal(write_file_atomic(f->d->config_path, text, strlen(text), 0644), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        reconnect(f);

        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 5);
        assert_true(asprintf(&expect, "the trust anchor file %s cannot be used: %s is writable by group or others "
                             "(mode 0666)", anchor, anchor) > 0);
        if (!strstr(out, expect))
                fail_msg("refused with \"%s\", expected \"%s\"", out, expect);
        free(out);
        /* Made root's alone again, the same file serves, with no restart. */
        assert_int_equal(chmod(anchor, 0644), 0);
        assert_int_equal(CTL(f, 0, NULL, &out, "dra", "set", cert), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_provision_reboot_unlock_all, setup, teardown),
                cmocka_unit_test_setup_teardown(test_changed_pcr_recovery_reseal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reseal_floor, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unprivileged_caller, setup, teardown),
                cmocka_unit_test_setup_teardown(test_malformed_calls, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cli_says_why, setup, teardown),
                cmocka_unit_test_setup_teardown(test_answers_during_recovery, setup_production_kdf, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent_clients, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sealvolctl, setup, teardown),
                cmocka_unit_test_setup_teardown(test_polkit_grants_one_action, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vmk_unsealed_for_a_call, setup, teardown),
                cmocka_unit_test_setup_teardown(test_server_recovery_password, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_vmk_absent_volume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v1_server_upgraded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_vmk_substitution_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_status_costs_no_tpm_command, setup_counted, teardown_counted),
                cmocka_unit_test_setup_teardown(test_dra_and_tpm_replacement, setup_trust_anchor, teardown),
                cmocka_unit_test_setup_teardown(test_tpm_replacement_with_server_password, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tpm_replacement_ek_checked, setup_ek_ca, teardown),
                cmocka_unit_test_setup_teardown(test_dra_takeover_refused, setup_trust_anchor, teardown),
                cmocka_unit_test_setup_teardown(test_dra_chain_to_anchor, setup_trust_anchor, teardown),
                cmocka_unit_test_setup_teardown(test_dra_pinned, setup_pinned, teardown),
                cmocka_unit_test_setup_teardown(test_dra_no_anchor, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dra_anchor_file_unsafe, setup, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(geteuid() == 0, "root (the daemon test switches to an unprivileged user)");
        test_require(access(POLKITD_PATH, X_OK) == 0, "polkitd (Debian package polkitd)");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        test_require(test_have_executable("unshare"), "unshare (Debian package util-linux)");
        sd_bus_error_add_map(sealvol_bus_errors);
        test_filter_from_env();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
