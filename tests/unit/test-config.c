/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-config.c: sealvol.conf: defaults, every key, and errors that name the line. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf.h"
#include "fileio.h"
#include "test-util.h"
#include "volume.h"

/* Two SHA-256 fingerprints: as sealvol shows them, and as `openssl x509 -fingerprint` prints them. */
#define FP_A "0f0000000000000000000000000000000000000000000000000000000000aaAA"
#define FP_B_COLONS "AB:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01"

static int load_text(const char *dir, const char *text, Config *c, char **ret_error) {
        _cleanup_free_ char *path = path_join(dir, "sealvol.conf");

        assert_int_equal(write_file_atomic(path, text, strlen(text), 0644), 0);
        config_init(c);
        return config_load(path, c, ret_error);
}

static void test_defaults_without_file(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *missing = path_join(dir, "none.conf");
        Config c;

        config_init(&c);
        assert_int_equal(config_load(missing, &c, NULL), 0);
        assert_null(c.tcti);
        assert_int_equal(c.pcr_bank, TPM2_ALG_SHA256);
        assert_int_equal(c.pcr_mask, 1u << 7);
        assert_int_equal(c.pcr_min_mask, 1u << 7);
        assert_int_equal(c.recovery_kdf_iterations, VOLUME_RECOVERY_PBKDF2_ITERATIONS);
        assert_int_equal(c.recovery_kdf_iterations_max, VOLUME_RECOVERY_PBKDF2_ITERATIONS_MAX);
        assert_null(c.dra_certificate);
        assert_null(c.dra_extra_ekus[0]);
        assert_null(c.dra_trust_anchor);
        assert_null(c.tpm_ek_ca);
        assert_int_equal(c.n_dra_pinned, 0);
        assert_false(c.escrow_hook_plaintext);
        config_done(&c);
}

static void test_every_key(void **state) {
        Config c;

        assert_int_equal(load_text(*state,
                                   "# sealvol\n"
                                   "[TPM]\n"
                                   "TCTI = swtpm:path=/run/x.sock\n"
                                   "PCRBank=sha384\n"
                                   "PCRs=0,2,7\n"
                                   "MinimumPCRs=0,7\n"
                                   "EKCertificateCA=/etc/sealvol/tpm-ca.pem\n"
                                   "\n"
                                   "; the DRA\n"
                                   "[DRA]\n"
                                   "Certificate=/etc/sealvol/dra.pem\n"
                                   "ExtraEKU=1.3.6.1.4.1.99999.1 1.2.3\n"
                                   "TrustAnchor=/etc/sealvol/dra-ca.pem\n"
                                   "PinnedFingerprint=" FP_A "\n"
                                   "PinnedFingerprint=" FP_B_COLONS " " FP_A "\n"
                                   "[Recovery]\n"
                                   "KDFIterations=1000\n"
                                   "KDFIterationsMax=2000000\n"
                                   "[Escrow]\n"
                                   "Targets=spool,hook\n"
                                   "Require=hook\n"
                                   "SpoolDirectory=/var/spool/sealvol\n"
                                   "Hook=/usr/local/libexec/escrow-to-vault\n"
                                   "HookPlaintext=yes\n"
                                   "HookTimeoutSec=5\n"
                                   "RetrySec=30\n"
                                   "RetryMaxSec=600\n"
                                   "[Paths]\n"
                                   "StateDirectory=/tmp/state\n",
                                   &c, NULL),
                         0);
        assert_string_equal(c.tcti, "swtpm:path=/run/x.sock");
        assert_int_equal(c.pcr_bank, TPM2_ALG_SHA384);
        assert_int_equal(c.pcr_mask, (1u << 0) | (1u << 2) | (1u << 7));
        assert_int_equal(c.pcr_min_mask, (1u << 0) | (1u << 7));
        assert_string_equal(c.dra_certificate, "/etc/sealvol/dra.pem");
        assert_string_equal(c.dra_extra_ekus[0], "1.3.6.1.4.1.99999.1");
        assert_string_equal(c.dra_extra_ekus[1], "1.2.3");
        assert_null(c.dra_extra_ekus[2]);
        assert_string_equal(c.dra_trust_anchor, "/etc/sealvol/dra-ca.pem");
        assert_string_equal(c.tpm_ek_ca, "/etc/sealvol/tpm-ca.pem");
        /* Each assignment adds; a fingerprint given twice counts once. */
        assert_int_equal(c.n_dra_pinned, 2);
        assert_int_equal(c.dra_pinned[0][0], 0x0f);
        assert_int_equal(c.dra_pinned[0][31], 0xaa);
        assert_int_equal(c.dra_pinned[1][0], 0xab);
        assert_int_equal(c.dra_pinned[1][31], 0x01);
        assert_true(c.escrow_hook_plaintext);
        assert_int_equal(c.recovery_kdf_iterations, 1000);
        assert_int_equal(c.recovery_kdf_iterations_max, 2000000);
        assert_string_equal(c.state_directory, "/tmp/state");
        assert_int_equal(c.escrow_targets, (1u << ESCROW_TARGET_SPOOL) | (1u << ESCROW_TARGET_HOOK));
        assert_int_equal(c.escrow_required, 1u << ESCROW_TARGET_HOOK);
        assert_string_equal(c.escrow_spool_directory, "/var/spool/sealvol");
        assert_string_equal(c.escrow_hook, "/usr/local/libexec/escrow-to-vault");
        assert_int_equal(c.escrow_hook_timeout_sec, 5);
        assert_int_equal(c.escrow_retry_sec, 30);
        assert_int_equal(c.escrow_retry_max_sec, 600);
        config_done(&c);
}

/* An empty assignment clears the pinned fingerprints, as a list setting does in systemd. */
static void test_pinned_reset(void **state) {
        Config c;

        assert_int_equal(load_text(*state, "[DRA]\nPinnedFingerprint=" FP_A "\nPinnedFingerprint=\n", &c, NULL), 0);
        assert_int_equal(c.n_dra_pinned, 0);
        config_done(&c);
}

static void expect_error(const char *dir, const char *text, const char *where) {
        _cleanup_free_ char *error = NULL;
        Config c;

        assert_int_equal(load_text(dir, text, &c, &error), -EBADMSG);
        assert_non_null(error);
        assert_non_null(strstr(error, where));
        config_done(&c);
}

static void test_errors_name_the_line(void **state) {
        const char *dir = *state;

        expect_error(dir, "[TPM]\nPCRs=7\nPCRz=8\n", "sealvol.conf:3: unknown key PCRz in [TPM]");
        expect_error(dir, "[Tpm]\n", ":1: unknown section [Tpm]");
        expect_error(dir, "PCRs=7\n", ":1: assignment outside of a section");
        expect_error(dir, "[TPM]\nPCRs=24\n", ":2: invalid value for PCRs");
        expect_error(dir, "[TPM]\nPCRBank=md5\n", ":2: invalid value for PCRBank");
        expect_error(dir, "[DRA]\nCertificate=dra.pem\n", ":2: invalid value for Certificate");
        expect_error(dir, "[DRA]\nExtraEKU=1..2\n", ":2: invalid value for ExtraEKU");
        expect_error(dir, "[DRA]\nTrustAnchor=dra-ca.pem\n", ":2: invalid value for TrustAnchor");
        expect_error(dir, "[TPM]\nEKCertificateCA=tpm-ca.pem\n", ":2: invalid value for EKCertificateCA");
        expect_error(dir, "[DRA]\nPinnedFingerprint=0f00\n", ":2: invalid value for PinnedFingerprint");
        expect_error(dir, "[DRA]\nPinnedFingerprint=" FP_A "x\n", ":2: invalid value for PinnedFingerprint");
        expect_error(dir, "[Escrow]\nHookPlaintext=maybe\n", ":2: invalid value for HookPlaintext");
        expect_error(dir, "[Recovery]\nKDFIterations=10\n", ":2: invalid value for KDFIterations");
        expect_error(dir, "[Recovery]\nKDFIterations=1e6\n", ":2: invalid value for KDFIterations");
        /* A recovery keyslot of the configured cost would be refused as tampered before its KDF. */
        expect_error(dir, "[Recovery]\nKDFIterations=8388608\n", "KDFIterations=8388608 is above KDFIterationsMax=4194304");
        expect_error(dir, "[Recovery]\nKDFIterationsMax=99999999\n", ":2: invalid value for KDFIterationsMax");
        expect_error(dir, "[TPM\n", ":1: malformed section header");
        expect_error(dir, "[TPM]\nnonsense\n", ":2: expected Key=Value");
        expect_error(dir, "[Escrow]\nTargets=spool vault\n", ":2: invalid value for Targets");
        expect_error(dir, "[Escrow]\nTargets=spool\nRequire=hook\n", "Require= names a target that Targets= does not");
        expect_error(dir, "[Escrow]\nTargets=hook\n", "Targets= names the hook, but Hook= is not set");
        expect_error(dir, "[Escrow]\nHook=escrow.sh\n", ":2: invalid value for Hook");
        expect_error(dir, "[Escrow]\nHookTimeoutSec=0\n", ":2: invalid value for HookTimeoutSec");
        expect_error(dir, "[Escrow]\nRetrySec=60\nRetryMaxSec=10\n", "RetryMaxSec= is less than RetrySec=");
}

/* Attack 7: a configuration that would seal the VMK to PCRs software can reset, or to nothing, or
 * below the minimum, does not load; the error names the line and the PCR. */
static void test_pcr_floor(void **state) {
        const char *dir = *state;
        Config c;

        expect_error(dir, "[TPM]\nPCRs=23\n", ":2: invalid value for PCRs: \"23\": PCR 23 can be reset by software");
        expect_error(dir, "[TPM]\nPCRBank=sha256\nPCRs=16\n", ":3: invalid value for PCRs: \"16\": PCR 16 can be reset");
        expect_error(dir, "[TPM]\nPCRs=16,23\n", ":2: invalid value for PCRs: \"16,23\": PCRs 16,23 can be reset");
        expect_error(dir, "[TPM]\nPCRs=0,7,23\n", ":2: invalid value for PCRs: \"0,7,23\": PCR 23 can be reset");
        expect_error(dir, "[TPM]\nPCRs=\n", ":2: invalid value for PCRs");
        expect_error(dir, "[TPM]\nPCRs=0,2\n", ":2: [TPM] PCRs=0,2: PCR 7 is missing");
        /* The minimum is checked against the default selection too, naming its own line. */
        expect_error(dir, "# x\n[TPM]\nMinimumPCRs=0,7\n", ":3: [TPM] PCRs=7 (the default): PCR 0 is missing");
        expect_error(dir, "[TPM]\nPCRs=0,7\nMinimumPCRs=0,2,7\n", ":2: [TPM] PCRs=0,7: PCR 2 is missing");
        expect_error(dir, "[TPM]\nMinimumPCRs=23\n", ":2: invalid value for MinimumPCRs: \"23\": PCR 23 can be reset");
        expect_error(dir, "[TPM]\nMinimumPCRs=\n", ":2: invalid value for MinimumPCRs");

        /* Another floor, one selection above it. */
        assert_int_equal(load_text(dir, "[TPM]\nMinimumPCRs=11\nPCRs=11\n", &c, NULL), 0);
        assert_int_equal(c.pcr_mask, 1u << 11);
        assert_int_equal(c.pcr_min_mask, 1u << 11);
        config_done(&c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_defaults_without_file, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_every_key, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_pinned_reset, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_errors_name_the_line, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_pcr_floor, test_setup_tmpdir, test_teardown_tmpdir),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
