/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-tpm2-swtpm.c: lib/tpm2.c against a real (software) TPM: TCTI selection, random bytes, PCR
 * reads, a measured change of PCR 7, a reboot that resets it, and the errors for a missing TPM.
 */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "swtpm-fixture.h"
#include "test-util.h"
#include "tpm2.h"

static int setup(void **state) {
        SwtpmFixture *f = NULL;

        if (swtpm_fixture_new("test-tpm2", &f) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        SwtpmFixture *f = *state;
        pid_t pid = f->pid;

        swtpm_fixture_free(f);
        /* The fixture must not leave its TPM behind. */
        return pid > 0 && kill(pid, 0) == 0 ? -1 : 0;
}

static void test_tcti_select(void **state) {
        (void) state;
        assert_int_equal(unsetenv(TPM2_TCTI_ENV), 0);
        assert_string_equal(tpm2_tcti_select(NULL), "device:/dev/tpmrm0");
        assert_string_equal(tpm2_tcti_select(""), "device:/dev/tpmrm0");
        assert_string_equal(tpm2_tcti_select("device:/dev/tpm0"), "device:/dev/tpm0");
        assert_int_equal(setenv(TPM2_TCTI_ENV, "swtpm:path=/x", 1), 0);
        assert_string_equal(tpm2_tcti_select("device:/dev/tpm0"), "swtpm:path=/x");
        assert_int_equal(unsetenv(TPM2_TCTI_ENV), 0);
}

static void test_get_random(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        uint8_t a[100] = {}, b[100] = {}, zero[100] = {};

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        /* More than one TPM2B_DIGEST's worth, so the loop over short answers is exercised. */
        assert_int_equal(tpm2_get_random(c, a, sizeof(a)), 0);
        assert_int_equal(tpm2_get_random(c, b, sizeof(b)), 0);
        assert_memory_not_equal(a, zero, sizeof(a));
        assert_memory_not_equal(a, b, sizeof(a));
}

static void read_pcr7(SwtpmFixture *f, uint8_t ret[static SHA256_DIGEST_LENGTH]) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        uint8_t digest[sizeof(TPMU_HA)];
        size_t n = 0;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_pcr_read(c, TPM2_ALG_SHA256, 7, digest, &n), 0);
        assert_int_equal(n, SHA256_DIGEST_LENGTH);
        memcpy(ret, digest, n);
}

static void test_pcr_extend_and_reboot(void **state) {
        SwtpmFixture *f = *state;
        static const char event[] = "sealvol test: changed boot chain";
        uint8_t pcr[SHA256_DIGEST_LENGTH], zero[SHA256_DIGEST_LENGTH] = {}, expected[SHA256_DIGEST_LENGTH];
        uint8_t chain[2 * SHA256_DIGEST_LENGTH] = {};

        read_pcr7(f, pcr);
        assert_memory_equal(pcr, zero, sizeof(pcr));

        /* PCR_Event hashes the event, then extends: new = SHA256(old || SHA256(event)). */
        assert_int_equal(swtpm_fixture_extend_pcr(f, 7, event, strlen(event)), 0);
        SHA256((const uint8_t *) event, strlen(event), chain + SHA256_DIGEST_LENGTH);
        SHA256(chain, sizeof(chain), expected);
        read_pcr7(f, pcr);
        assert_memory_equal(pcr, expected, sizeof(pcr));

        /* A reboot resets the PCRs but keeps the TPM (same state directory). */
        pid_t old = f->pid;
        assert_int_equal(swtpm_fixture_reboot(f), 0);
        assert_int_not_equal(f->pid, old);
        assert_int_not_equal(kill(old, 0), 0);
        read_pcr7(f, pcr);
        assert_memory_equal(pcr, zero, sizeof(pcr));
}

static void test_pcr_read_refuses_bad_index(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        uint8_t digest[sizeof(TPMU_HA)];
        size_t n;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_pcr_read(c, TPM2_ALG_SHA256, 24, digest, &n), -EINVAL);
}

static void test_missing_tpm(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_free_ char *gone = NULL;
        Tpm2Context *c = NULL;

        assert_int_equal(tpm2_context_new("device:/dev/sealvol-no-such-tpm", &c), -ENODEV);
        assert_null(c);

        gone = path_join(f->dir, "no-such.sock");
        assert_non_null(gone);
        _cleanup_free_ char *tcti = NULL;
        assert_true(asprintf(&tcti, "swtpm:path=%s", gone) > 0);
        assert_int_equal(tpm2_context_new(tcti, &c), -ENODEV);
        assert_null(c);
}

static void test_tpm_dies_under_us(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        uint8_t buf[8];

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(swtpm_fixture_kill(f), 0);
        assert_true(tpm2_get_random(c, buf, sizeof(buf)) < 0);
        /* And the fixture can bring it back on the same state. */
        assert_int_equal(swtpm_fixture_start(f), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tcti_select),
                cmocka_unit_test_setup_teardown(test_get_random, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pcr_extend_and_reboot, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pcr_read_refuses_bad_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tpm_dies_under_us, setup, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
