/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-tpm2-swtpm.c: lib/tpm/tpm2.c against a real (software) TPM: TCTI selection, random bytes, PCR
 * reads, a measured change of PCR 7, a reboot that resets it, sealing and unsealing with a PCR
 * policy, and the errors for a missing TPM, another TPM, a damaged object and a changed PCR.
 */

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "secmem.h"
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
        Tpm2PcrValues v;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, UINT32_C(1) << 7, &v), 0);
        assert_int_equal(v.digest_size, SHA256_DIGEST_LENGTH);
        memcpy(ret, v.digests[7], SHA256_DIGEST_LENGTH);
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

static void test_pcr_read_values(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        Tpm2PcrValues all, some;
        uint8_t zero[SHA256_DIGEST_LENGTH] = {};

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        /* All 24 PCRs: more than one PCR_Read answers (at most 8 digests each). */
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, TPM2_PCR_MASK_ALL, &all), 0);
        assert_int_equal(all.mask, TPM2_PCR_MASK_ALL);
        assert_memory_equal(all.digests[7], zero, sizeof(zero));
        /* PCRs 17-22 reset to all ones (TPM PC Client profile: locality-controlled PCRs). */
        assert_int_equal(all.digests[17][0], 0xff);

        assert_int_equal(swtpm_fixture_extend_pcr(f, 2, "x", 1), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, (1u << 0) | (1u << 2) | (1u << 7), &some), 0);
        assert_int_equal(tpm2_pcr_values_diff(&all, &some), TPM2_PCR_MASK_ALL & ~((1u << 0) | (1u << 7)));

        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, 0, &some), -EINVAL);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, 1u << 24, &some), -EINVAL);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SM3_256, 1u << 7, &some), -EOPNOTSUPP);
}

static void test_pcr_mask_strings(void **state) {
        char buf[128];
        uint32_t mask;

        (void) state;
        assert_int_equal(tpm2_pcr_mask_from_string("7", &mask), 0);
        assert_int_equal(mask, 1u << 7);
        assert_int_equal(tpm2_pcr_mask_from_string("0,2+7", &mask), 0);
        assert_int_equal(mask, (1u << 0) | (1u << 2) | (1u << 7));
        assert_string_equal(tpm2_pcr_mask_to_string(mask, buf, sizeof(buf)), "0,2,7");
        assert_string_equal(tpm2_pcr_mask_to_string(TPM2_PCR_MASK_ALL, buf, sizeof(buf)),
                            "0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23");
        assert_int_equal(tpm2_pcr_mask_from_string("24", &mask), -EINVAL);
        assert_int_equal(tpm2_pcr_mask_from_string("7,", &mask), -EINVAL);
        assert_int_equal(tpm2_pcr_mask_from_string("", &mask), -EINVAL);
        assert_int_equal(tpm2_pcr_mask_from_string("-1", &mask), -EINVAL);
        assert_int_equal(tpm2_pcr_mask_from_string("7x", &mask), -EINVAL);
}

static const uint8_t test_secret[32] = "sealvol test secret, 32 bytes.!";

static void seal_to_pcrs(SwtpmFixture *f, uint32_t mask, Tpm2PcrValues *ret_pcrs, Tpm2Sealed *ret_sealed) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, mask, ret_pcrs), 0);
        assert_int_equal(tpm2_seal(c, ret_pcrs, /* noda= */ true, test_secret, sizeof(test_secret),
                                   /* pinned_srk= */ NULL, ret_sealed),
                         0);
}

static int unseal(SwtpmFixture *f, const Tpm2PcrValues *pcrs, const Tpm2Sealed *sealed, uint32_t *ret_changed) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ void *secret = NULL;
        size_t size = 0;
        int r;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        r = tpm2_unseal(c, pcrs, sealed, &secret, &size, ret_changed);
        if (r < 0)
                return r;
        assert_int_equal(size, sizeof(test_secret));
        assert_int_equal(secure_size(secret), sizeof(test_secret));
        assert_memory_equal(secret, test_secret, size);
        return 0;
}

static void test_seal_unseal_reboot_extend(void **state) {
        SwtpmFixture *f = *state;
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed;
        uint32_t changed = 0;

        seal_to_pcrs(f, 1u << 7, &pcrs, &sealed);
        assert_true(sealed.public.publicArea.objectAttributes & TPMA_OBJECT_NODA);
        assert_false(sealed.public.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH);
        assert_int_equal(unseal(f, &pcrs, &sealed, NULL), 0);

        /* Same TPM after a reboot: the SRK persisted, PCR 7 is back to its boot value. */
        assert_int_equal(swtpm_fixture_reboot(f), 0);
        assert_int_equal(unseal(f, &pcrs, &sealed, NULL), 0);

        /* A changed boot chain: refused, and PCR 7 is named. */
        assert_int_equal(swtpm_fixture_extend_pcr(f, 7, "new boot loader", 15), 0);
        assert_int_equal(unseal(f, &pcrs, &sealed, &changed), -ESTALE);
        assert_int_equal(changed, 1u << 7);
}

static void test_seal_several_pcrs_names_the_changed_one(void **state) {
        SwtpmFixture *f = *state;
        uint32_t mask = (1u << 0) | (1u << 2) | (1u << 4) | (1u << 7) | (1u << 9) | (1u << 11) | (1u << 14) |
                        (1u << 15) | (1u << 16);
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed;
        uint32_t changed = 0;

        seal_to_pcrs(f, mask, &pcrs, &sealed);
        assert_int_equal(unseal(f, &pcrs, &sealed, NULL), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f, 4, "kernel", 6), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f, 5, "not in the policy", 17), 0);
        assert_int_equal(unseal(f, &pcrs, &sealed, &changed), -ESTALE);
        assert_int_equal(changed, 1u << 4);
}

/* Everything sent to and received from the TPM goes through the pcap TCTI into a capture file; the
 * secret must appear in it neither when sealed nor when unsealed. */
static void test_secret_never_on_the_bus(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ void *secret = NULL;
        _cleanup_free_ char *capture = path_join(f->dir, "bus.pcap"), *tcti = NULL, *data = NULL;
        uint8_t rnd[32];
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed;
        size_t size, n;
        FILE *file;

        assert_non_null(capture);
        assert_true(asprintf(&tcti, "pcap:%s", f->tcti) > 0);
        assert_int_equal(setenv("TCTI_PCAP_FILE", capture, 1), 0);
        assert_int_equal(tpm2_context_new(tcti, &c), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, 1u << 7, &pcrs), 0);
        assert_int_equal(tpm2_seal(c, &pcrs, true, test_secret, sizeof(test_secret), NULL, &sealed), 0);
        assert_int_equal(tpm2_unseal(c, &pcrs, &sealed, &secret, &size, NULL), 0);
        assert_memory_equal(secret, test_secret, sizeof(test_secret));
        /* The control: what travels in clear is in the capture. */
        assert_int_equal(tpm2_get_random(c, rnd, sizeof(rnd)), 0);
        c = tpm2_context_free(c);
        assert_int_equal(unsetenv("TCTI_PCAP_FILE"), 0);

        file = fopen(capture, "re");
        assert_non_null(file);
        data = malloc(1024 * 1024);
        assert_non_null(data);
        n = fread(data, 1, 1024 * 1024, file);
        fclose(file);
        assert_true(n > 0);
        assert_non_null(memmem(data, n, rnd, sizeof(rnd)));
        assert_null(memmem(data, n, test_secret, sizeof(test_secret)));
        assert_null(memmem(data, n, test_secret, 8));
}

static void test_unseal_on_another_tpm(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(swtpm_fixture_freep) SwtpmFixture *other = NULL;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        ESYS_TR srk;
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed;

        seal_to_pcrs(f, 1u << 7, &pcrs, &sealed);

        /* A fresh TPM has no SRK at all. */
        assert_int_equal(swtpm_fixture_new("test-tpm2-other", &other), 0);
        assert_int_equal(unseal(other, &pcrs, &sealed, NULL), -ENXIO);

        /* With its own SRK, the name differs. */
        assert_int_equal(tpm2_context_new(other->tcti, &c), 0);
        assert_int_equal(tpm2_srk_get(c, /* create= */ true, &srk), 0);
        assert_int_equal(unseal(other, &pcrs, &sealed, NULL), -ENXIO);
}

static void test_unseal_damaged_object(void **state) {
        SwtpmFixture *f = *state;
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed, bad;

        seal_to_pcrs(f, 1u << 7, &pcrs, &sealed);

        bad = sealed;
        bad.private.buffer[bad.private.size / 2] ^= 0x01;
        assert_int_equal(unseal(f, &pcrs, &bad, NULL), -EBADMSG);

        bad = sealed;
        bad.public.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
        assert_int_equal(unseal(f, &pcrs, &bad, NULL), -EBADMSG);

        /* And nothing was harmed: the real object still opens. */
        assert_int_equal(unseal(f, &pcrs, &sealed, NULL), 0);
}

static void test_seal_refuses_bad_sizes(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        uint8_t big[TPM2_SEALED_SECRET_MAX + 1] = {};
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, 1u << 7, &pcrs), 0);
        assert_int_equal(tpm2_seal(c, &pcrs, true, big, 0, NULL, &sealed), -EINVAL);
        assert_int_equal(tpm2_seal(c, &pcrs, true, big, sizeof(big), NULL, &sealed), -EINVAL);
}

static void test_lockout_info(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        uint32_t counter = 99, max_tries = 0;
        bool in_lockout = true;

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_get_lockout_info(c, &counter, &max_tries, &in_lockout), 0);
        assert_int_equal(counter, 0);
        assert_true(max_tries > 0);
        assert_false(in_lockout);
}

/* Drives the TPM into dictionary-attack lockout with a PIN-protected (DA-counted) object and wrong
 * PINs: the lockout is its own error, the counter is readable, and a noDA sealed secret (the VMK
 * without PIN) still unseals, so a lockout never blocks the boot. */
static void test_lockout(void **state) {
        SwtpmFixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        TPM2B_SENSITIVE_CREATE sensitive = { .sensitive = { .userAuth = { .size = 4, .buffer = "1234" },
                                                            .data = { .size = 5, .buffer = "guess" } } };
        TPM2B_PUBLIC template = {
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH,
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                },
        };
        TPM2B_AUTH wrong = { .size = 4, .buffer = "0000" };
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION none = {};
        TPM2B_PRIVATE *priv = NULL;
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_CREATION_DATA *cd = NULL;
        TPM2B_DIGEST *ch = NULL;
        TPMT_TK_CREATION *tk = NULL;
        ESYS_TR srk, obj;
        Tpm2PcrValues pcrs;
        Tpm2Sealed sealed;
        uint32_t counter = 0, max_tries = 0;
        bool in_lockout = false;
        int r = 0;

        seal_to_pcrs(f, 1u << 7, &pcrs, &sealed);

        assert_int_equal(tpm2_context_new(f->tcti, &c), 0);
        assert_int_equal(tpm2_srk_get(c, false, &srk), 0);
        assert_int_equal(Esys_Create(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                     &template, &outside, &none, &priv, &pub, &cd, &ch, &tk),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_Load(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &obj),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_TR_SetAuth(c->esys, obj, &wrong), TSS2_RC_SUCCESS);
        assert_int_equal(tpm2_get_lockout_info(c, NULL, &max_tries, NULL), 0);

        for (unsigned i = 0; i <= max_tries && r != -ENOLCK; i++) {
                TPM2B_SENSITIVE_DATA *out = NULL;
                TSS2_RC rc = Esys_Unseal(c->esys, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &out);

                assert_int_not_equal(rc, TSS2_RC_SUCCESS);
                r = tpm2_rc_to_errno(rc, "Unseal with a wrong PIN");
                assert_true(r == -EPERM || r == -ENOLCK);
        }
        assert_int_equal(r, -ENOLCK);
        assert_int_equal(tpm2_get_lockout_info(c, &counter, NULL, &in_lockout), 0);
        assert_true(in_lockout);
        assert_true(counter >= max_tries);

        (void) Esys_FlushContext(c->esys, obj);
        Esys_Free(priv);
        Esys_Free(pub);
        Esys_Free(cd);
        Esys_Free(ch);
        Esys_Free(tk);
        assert_int_equal(unseal(f, &pcrs, &sealed, NULL), 0);
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
                cmocka_unit_test_setup_teardown(test_pcr_read_values, setup, teardown),
                cmocka_unit_test(test_pcr_mask_strings),
                cmocka_unit_test_setup_teardown(test_seal_unseal_reboot_extend, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seal_several_pcrs_names_the_changed_one, setup, teardown),
                cmocka_unit_test_setup_teardown(test_secret_never_on_the_bus, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unseal_on_another_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unseal_damaged_object, setup, teardown),
                cmocka_unit_test_setup_teardown(test_seal_refuses_bad_sizes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lockout_info, setup, teardown),
                cmocka_unit_test_setup_teardown(test_lockout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tpm_dies_under_us, setup, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
