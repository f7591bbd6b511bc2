/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-tpm-identity.c: lib/tpm/tpm-identity.c against software TPMs manufactured with EK certificates of
 * a test CA: a TPM of the trusted manufacturer passes, with the SRK name read under its EK. A TPM
 * without a certificate, one certified by another CA, one showing another TPM's certificate, one
 * without SRK, one with an ECC certificate or garbage in the RSA certificate's index, and an answer
 * changed on its way from the TPM are each refused with their own error and a reason. A replaced TPM
 * has another EK and no SRK.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "dra.h"
#include "log.h"
#include "openssl-util.h"
#include "swtpm-fixture.h"
#include "test-util.h"
#include "tpm-identity.h"
#include "tpm2.h"

/* Two manufacturers: "ours" (ca) and another one (ca_other), each a CA directory of swtpm_localca. */
typedef struct Cas {
        char *ca, *ca_other;
        STACK_OF(X509) *anchors, *anchors_other, *issuer_only;
} Cas;

/* What one test holds, released in teardown even when an assertion jumped out of the test. */
typedef struct Test {
        Cas *cas;
        SwtpmFixture *a, *b;
        Tpm2Context *c;
        char *reason;
} Test;

static STACK_OF(X509) *load_anchors(const char *ca_dir) {
        _cleanup_free_ char *path = NULL;
        STACK_OF(X509) *anchors = NULL;
        _cleanup_free_ char *reason = NULL;

        assert_int_equal(swtpm_fixture_ca_anchor_file(ca_dir, &path), 0);
        /* As the daemon loads the configured CA file. */
        assert_int_equal(dra_trust_anchors_load_file(path, &anchors, &reason), 0);
        assert_int_equal(sk_X509_num(anchors), 2);
        return anchors;
}

static int group_setup(void **state) {
        Cas *cas = calloc(1, sizeof(*cas));
        SwtpmFixture *f = NULL;
        X509 *issuer;

        if (!cas || test_tmpdir_new("test-tpm-identity-ca", &cas->ca) < 0 ||
            test_tmpdir_new("test-tpm-identity-ca-other", &cas->ca_other) < 0)
                return -1;
        /* A CA comes to exist with the first TPM it certifies. */
        if (swtpm_fixture_new_with_ek("test-tpm-identity-mkca", cas->ca, &f) < 0)
                return -1;
        f = swtpm_fixture_free(f);
        if (swtpm_fixture_new_with_ek("test-tpm-identity-mkca", cas->ca_other, &f) < 0)
                return -1;
        f = swtpm_fixture_free(f);

        cas->anchors = load_anchors(cas->ca);
        cas->anchors_other = load_anchors(cas->ca_other);
        /* The issuing CA alone, without its root: a partial chain. */
        cas->issuer_only = sk_X509_new_null();
        issuer = sk_X509_value(cas->anchors, 1);
        if (!cas->issuer_only || !X509_up_ref(issuer) || !sk_X509_push(cas->issuer_only, issuer))
                return -1;
        *state = cas;
        return 0;
}

static int group_teardown(void **state) {
        Cas *cas = *state;

        if (!cas)
                return 0;
        x509_stack_freep(&cas->anchors);
        x509_stack_freep(&cas->anchors_other);
        x509_stack_freep(&cas->issuer_only);
        if (cas->ca)
                (void) rm_rf(cas->ca);
        if (cas->ca_other)
                (void) rm_rf(cas->ca_other);
        free(cas->ca);
        free(cas->ca_other);
        free(cas);
        return 0;
}

static int setup(void **state) {
        Test *t = calloc(1, sizeof(*t));

        if (!t)
                return -1;
        t->cas = *state;
        *state = t;
        return 0;
}

static int teardown(void **state) {
        Test *t = *state;

        tpm2_context_free(t->c);
        swtpm_fixture_free(t->a);
        swtpm_fixture_free(t->b);
        free(t->reason);
        *state = t->cas;
        free(t);
        return 0;
}

/* A fresh connection to f in t->c (closing the one before). */
static Tpm2Context *connect_to(Test *t, SwtpmFixture *f) {
        t->c = tpm2_context_free(t->c);
        assert_int_equal(tpm2_context_new(f->tcti, &t->c), 0);
        return t->c;
}

/* Creates the SRK, as the TPM replacement does before it checks the TPM, and returns its name as a
 * plain ReadPublic reports it. */
static void srk_create(Tpm2Context *c, TPM2B_NAME *ret_name) {
        TPM2B_NAME *name = NULL;
        ESYS_TR srk;

        assert_int_equal(tpm2_srk_get(c, /* create= */ true, &srk), 0);
        assert_int_equal(Esys_ReadPublic(c->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL, &name, NULL),
                         TSS2_RC_SUCCESS);
        *ret_name = *name;
        Esys_Free(name);
        assert_int_equal(Esys_TR_Close(c->esys, &srk), TSS2_RC_SUCCESS);
}

static int verify(Test *t, STACK_OF(X509) *anchors, TpmIdentity *ret) {
        t->reason = mfree(t->reason);
        return tpm_identity_verify(t->c, anchors, time(NULL), ret, &t->reason);
}

static void assert_reason_contains(Test *t, const char *text) {
        assert_non_null(t->reason);
        if (!strstr(t->reason, text))
                fail_msg("reason \"%s\" does not say \"%s\"", t->reason, text);
}

/* The first transient object and loaded session handles (TPM 2.0 Part 2, 7.2), shifted as unsigned:
 * tss2's TPM2_TRANSIENT_FIRST shifts a uint8_t, promoted to int, into its sign bit. */
#define HANDLE_TRANSIENT_FIRST ((TPM2_HANDLE) TPM2_HT_TRANSIENT << TPM2_HR_SHIFT)
#define HANDLE_LOADED_SESSION_FIRST ((TPM2_HANDLE) TPM2_HT_HMAC_SESSION << TPM2_HR_SHIFT)

/* How many objects and sessions are loaded: what a check must not leave behind. */
static unsigned loaded_handles(Tpm2Context *c, TPM2_HANDLE first) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        unsigned n;

        assert_int_equal(Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                            first, TPM2_MAX_CAP_HANDLES, &more, &cap),
                         TSS2_RC_SUCCESS);
        n = cap->data.handles.count;
        Esys_Free(cap);
        return n;
}

static void persistent_ek_name(Tpm2Context *c, TPM2B_NAME *ret) {
        TPM2B_NAME *name = NULL;
        ESYS_TR ek;

        assert_int_equal(Esys_TR_FromTPMPublic(c->esys, TPM2_EK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ek),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_TR_GetName(c->esys, ek, &name), TSS2_RC_SUCCESS);
        *ret = *name;
        Esys_Free(name);
        assert_int_equal(Esys_TR_Close(c->esys, &ek), TSS2_RC_SUCCESS);
}

static void test_verified_ek(void **state) {
        Test *t = *state;
        _cleanup_free_ uint8_t *der = NULL;
        uint8_t fp[SHA256_DIGEST_LENGTH];
        TPM2B_NAME srk_name, ek_name;
        TpmIdentity id = {}, again = {};
        ESYS_TR ek, gone;
        size_t size = 0;

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity", t->cas->ca, &t->a), 0);
        connect_to(t, t->a);
        srk_create(t->c, &srk_name);

        assert_int_equal(verify(t, t->cas->anchors, &id), 0);
        assert_null(t->reason);
        assert_true(id.have_ek_cert);
        /* The fingerprint is that of the certificate in NV (swtpm stores it without padding). */
        assert_int_equal(tpm2_ek_cert_read(t->c, &der, &size), 0);
        assert_true(size > 0 && size <= TPM2_EK_CERT_MAX);
        SHA256(der, size, fp);
        assert_memory_equal(id.ek_cert_fingerprint, fp, sizeof(fp));
        assert_string_equal(id.ek_cert_issuer, "CN=swtpm-localca");
        assert_true(strlen(id.ek_cert_subject) > 0);
        /* The SRK name read under the EK is the SRK's. */
        assert_true(tpm2_name_equal(&id.srk_name, &srk_name));
        persistent_ek_name(t->c, &ek_name);
        assert_true(tpm2_name_equal(&id.ek_name, &ek_name));
        assert_int_equal(loaded_handles(t->c, HANDLE_TRANSIENT_FIRST), 0);
        assert_int_equal(loaded_handles(t->c, HANDLE_LOADED_SESSION_FIRST), 0);

        /* The issuing CA alone is anchor enough. */
        assert_int_equal(verify(t, t->cas->issuer_only, &again), 0);
        assert_true(tpm2_name_equal(&again.srk_name, &srk_name));

        /* Without the persistent EK, the TPM makes it again from its template (and the copy is flushed). */
        assert_int_equal(Esys_TR_FromTPMPublic(t->c->esys, TPM2_EK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                               &ek),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_EvictControl(t->c->esys, ESYS_TR_RH_OWNER, ek, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                           ESYS_TR_NONE, TPM2_EK_HANDLE, &gone),
                         TSS2_RC_SUCCESS);
        assert_int_not_equal(Esys_TR_FromTPMPublic(t->c->esys, TPM2_EK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE,
                                                   ESYS_TR_NONE, &ek),
                             TSS2_RC_SUCCESS);
        again = (TpmIdentity) {};
        assert_int_equal(verify(t, t->cas->anchors, &again), 0);
        assert_true(tpm2_name_equal(&again.ek_name, &ek_name));
        assert_true(tpm2_name_equal(&again.srk_name, &srk_name));
        assert_memory_equal(again.ek_cert_fingerprint, id.ek_cert_fingerprint, sizeof(fp));
        assert_int_equal(loaded_handles(t->c, HANDLE_TRANSIENT_FIRST), 0);
        assert_int_equal(loaded_handles(t->c, HANDLE_LOADED_SESSION_FIRST), 0);
}

static void test_no_ek_cert(void **state) {
        Test *t = *state;
        _cleanup_free_ uint8_t *der = NULL;
        TpmIdentity id = {};
        TPM2B_NAME srk_name;
        size_t size = 0;

        assert_int_equal(swtpm_fixture_new("test-tpm-identity-plain", &t->a), 0);
        connect_to(t, t->a);
        srk_create(t->c, &srk_name);
        assert_int_equal(tpm2_ek_cert_read(t->c, &der, &size), -ENOENT);
        assert_int_equal(verify(t, t->cas->anchors, &id), -ENOENT);
        assert_reason_contains(t, "no EK certificate");
        assert_false(id.have_ek_cert);
}

static void test_other_manufacturer(void **state) {
        Test *t = *state;
        TpmIdentity id = {};
        TPM2B_NAME srk_name;

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity", t->cas->ca, &t->a), 0);
        connect_to(t, t->a);
        srk_create(t->c, &srk_name);
        assert_int_equal(verify(t, t->cas->anchors_other, &id), -EKEYREJECTED);
        assert_reason_contains(t, "does not chain to a configured TPM manufacturer CA");
        /* OpenSSL's own words follow. */
        assert_reason_contains(t, "issuer");

        /* Nothing configured: every TPM would be refused, which is a configuration error. */
        STACK_OF(X509) *none = sk_X509_new_null();
        assert_non_null(none);
        assert_int_equal(verify(t, none, &id), -ENOKEY);
        sk_X509_free(none);
}

/* Replaces the EK certificate index with data in an index of index_size bytes, defined by the owner
 * (as `tpm2_nvdefine -C o` does), readable with the index's authorisation when authread. */
static void nv_replace_ek_cert(Tpm2Context *c, const uint8_t *data, size_t size, uint16_t index_size, bool authread) {
        TPM2B_NV_PUBLIC pub = {
                .nvPublic = {
                        .nvIndex = TPM2_EK_CERT_NV_INDEX,
                        .nameAlg = TPM2_ALG_SHA256,
                        .attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD | TPMA_NV_NO_DA |
                                      (authread ? TPMA_NV_AUTHREAD : 0),
                        .dataSize = index_size,
                },
        };
        TPM2B_AUTH empty = {};
        ESYS_TR nv;

        assert_true(size <= index_size);
        /* The manufacturer's index was made with platform authorisation and goes away only with it. */
        if (Esys_TR_FromTPMPublic(c->esys, TPM2_EK_CERT_NV_INDEX, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv) ==
            TSS2_RC_SUCCESS &&
            Esys_NV_UndefineSpace(c->esys, ESYS_TR_RH_PLATFORM, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE) !=
                    TSS2_RC_SUCCESS)
                assert_int_equal(Esys_NV_UndefineSpace(c->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                                       ESYS_TR_NONE),
                                 TSS2_RC_SUCCESS);
        assert_int_equal(Esys_NV_DefineSpace(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                             &empty, &pub, &nv),
                         TSS2_RC_SUCCESS);
        for (size_t offset = 0; offset < size;) {
                TPM2B_MAX_NV_BUFFER chunk = { .size = (UINT16) MIN(size - offset, (size_t) 512) };

                memcpy(chunk.buffer, data + offset, chunk.size);
                assert_int_equal(Esys_NV_Write(c->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                               ESYS_TR_NONE, &chunk, (UINT16) offset),
                                 TSS2_RC_SUCCESS);
                offset += chunk.size;
        }
        assert_int_equal(Esys_TR_Close(c->esys, &nv), TSS2_RC_SUCCESS);
}

static void test_cert_of_another_tpm(void **state) {
        Test *t = *state;
        _cleanup_free_ uint8_t *der_a = NULL;
        TpmIdentity id = {};
        TPM2B_NAME srk_name;
        size_t size_a = 0;

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity-a", t->cas->ca, &t->a), 0);
        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity-b", t->cas->ca, &t->b), 0);
        connect_to(t, t->a);
        assert_int_equal(tpm2_ek_cert_read(t->c, &der_a, &size_a), 0);

        /* B is a genuine TPM of the manufacturer too... */
        connect_to(t, t->b);
        srk_create(t->c, &srk_name);
        assert_int_equal(verify(t, t->cas->anchors, &id), 0);
        /* ...but showing A's certificate, which chains just as well, it cannot prove A's key. */
        nv_replace_ek_cert(t->c, der_a, size_a, (uint16_t) size_a, /* authread= */ true);
        id = (TpmIdentity) {};
        assert_int_equal(verify(t, t->cas->anchors, &id), -EBADE);
        assert_reason_contains(t, "does not hold the certified EK");
        assert_int_equal(loaded_handles(t->c, HANDLE_TRANSIENT_FIRST), 0);
}

/* The whole of NV index, read by the owner, in the test's own way (tpm2_ek_cert_read() reads one index). */
static void nv_read_index(Tpm2Context *c, TPM2_HANDLE index, uint8_t **ret, size_t *ret_size) {
        TPM2B_NV_PUBLIC *pub = NULL;
        ESYS_TR nv;
        uint8_t *buf;
        uint16_t size;

        assert_int_equal(Esys_TR_FromTPMPublic(c->esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_NV_ReadPublic(c->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL),
                         TSS2_RC_SUCCESS);
        size = pub->nvPublic.dataSize;
        Esys_Free(pub);
        buf = malloc(size);
        assert_non_null(buf);
        for (uint16_t offset = 0; offset < size;) {
                TPM2B_MAX_NV_BUFFER *data = NULL;
                uint16_t n = MIN((uint16_t) (size - offset), (uint16_t) 512);

                assert_int_equal(Esys_NV_Read(c->esys, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                              ESYS_TR_NONE, n, offset, &data),
                                 TSS2_RC_SUCCESS);
                assert_int_equal(data->size, n);
                memcpy(buf + offset, data->buffer, n);
                Esys_Free(data);
                offset += n;
        }
        assert_int_equal(Esys_TR_Close(c->esys, &nv), TSS2_RC_SUCCESS);
        *ret = buf;
        *ret_size = size;
}

static void test_padded_and_garbage_cert(void **state) {
        Test *t = *state;
        _cleanup_free_ uint8_t *der = NULL, *padded = NULL, *ecc = NULL;
        static const uint8_t garbage[] = "not a certificate, just text a TPM could hold";
        TpmIdentity before = {}, id = {};
        TPM2B_NAME srk_name;
        size_t size = 0, read_size = 0, ecc_size = 0;
        uint8_t *read_back = NULL;
        uint16_t index_size = 2048; /* more than one NV_Read of swtpm (1024) */

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity", t->cas->ca, &t->a), 0);
        connect_to(t, t->a);
        srk_create(t->c, &srk_name);
        assert_int_equal(verify(t, t->cas->anchors, &before), 0);
        assert_int_equal(tpm2_ek_cert_read(t->c, &der, &size), 0);
        assert_true(size < index_size);

        /* Some TPMs keep the certificate in a larger index, padded: the DER says where it ends. Read
         * here by the owner, the index not allowing its own authorisation. */
        padded = malloc(index_size);
        assert_non_null(padded);
        memset(padded, 0xff, index_size);
        memcpy(padded, der, size);
        nv_replace_ek_cert(t->c, padded, index_size, index_size, /* authread= */ false);
        assert_int_equal(tpm2_ek_cert_read(t->c, &read_back, &read_size), 0);
        assert_int_equal(read_size, index_size);
        assert_memory_equal(read_back, padded, index_size);
        free(read_back);
        assert_int_equal(verify(t, t->cas->anchors, &id), 0);
        assert_memory_equal(id.ek_cert_fingerprint, before.ek_cert_fingerprint, sizeof(id.ek_cert_fingerprint));
        assert_true(tpm2_name_equal(&id.srk_name, &srk_name));

        /* The TPM's ECC P-384 EK certificate (NV 0x01c00016) in the RSA one's place: it chains, but
         * only the RSA 2048 EK is proven. */
        nv_read_index(t->c, UINT32_C(0x01c00016), &ecc, &ecc_size);
        nv_replace_ek_cert(t->c, ecc, ecc_size, (uint16_t) ecc_size, /* authread= */ true);
        assert_int_equal(verify(t, t->cas->anchors, &id), -EOPNOTSUPP);
        assert_reason_contains(t, "not RSA 2048");

        /* A truncated certificate, and no certificate at all. */
        nv_replace_ek_cert(t->c, der, size - 1, (uint16_t) (size - 1), /* authread= */ true);
        assert_int_equal(verify(t, t->cas->anchors, &id), -EBADMSG);
        assert_reason_contains(t, "no X.509 certificate");
        nv_replace_ek_cert(t->c, garbage, sizeof(garbage), sizeof(garbage), /* authread= */ true);
        assert_int_equal(verify(t, t->cas->anchors, &id), -EBADMSG);
        assert_reason_contains(t, "no X.509 certificate");
}

static void test_no_srk(void **state) {
        Test *t = *state;
        TpmIdentity id = {};
        ESYS_TR srk;

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity", t->cas->ca, &t->a), 0);
        connect_to(t, t->a);
        assert_int_equal(tpm2_srk_get(t->c, /* create= */ false, &srk), -ENXIO);
        assert_int_equal(verify(t, t->cas->anchors, &id), -ENXIO);
        assert_reason_contains(t, "no storage root key");
        assert_int_equal(loaded_handles(t->c, HANDLE_TRANSIENT_FIRST), 0);
}

static void test_replaced_tpm(void **state) {
        Test *t = *state;
        TpmIdentity old = {}, new = {}, id = {};
        TPM2B_NAME old_srk, new_srk;
        ESYS_TR srk;

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity", t->cas->ca, &t->a), 0);
        connect_to(t, t->a);
        srk_create(t->c, &old_srk);
        assert_int_equal(verify(t, t->cas->anchors, &old), 0);

        /* The main board was replaced: a TPM of the same manufacturer, with another EK and no SRK. */
        t->c = tpm2_context_free(t->c);
        assert_int_equal(swtpm_fixture_new_tpm(t->a, t->cas->ca), 0);
        connect_to(t, t->a);
        assert_int_equal(tpm2_srk_get(t->c, /* create= */ false, &srk), -ENXIO);
        assert_int_equal(verify(t, t->cas->anchors, &id), -ENXIO);
        srk_create(t->c, &new_srk);
        assert_int_equal(verify(t, t->cas->anchors, &new), 0);
        assert_memory_not_equal(new.ek_cert_fingerprint, old.ek_cert_fingerprint, sizeof(old.ek_cert_fingerprint));
        assert_false(tpm2_name_equal(&new.ek_name, &old.ek_name));
        assert_false(tpm2_name_equal(&new.srk_name, &old.srk_name));
        assert_true(tpm2_name_equal(&new.srk_name, &new_srk));
        assert_string_equal(new.ek_cert_issuer, old.ek_cert_issuer);

        /* And one without an EK certificate in its place. */
        t->c = tpm2_context_free(t->c);
        assert_int_equal(swtpm_fixture_new_tpm(t->a, /* ca_dir= */ NULL), 0);
        connect_to(t, t->a);
        srk_create(t->c, &new_srk);
        assert_int_equal(verify(t, t->cas->anchors, &id), -ENOENT);
}

/* One bit of the SRK's public area changed on its way back from the TPM, as an interposer showing its
 * own SRK would: the response HMAC, keyed from the salt only the EK opens, no longer matches. */
static void test_tampered_answer(void **state) {
        Test *t = *state;
        _cleanup_free_ char *log = NULL, *tcti = NULL, *faults = NULL;
        TpmIdentity id = {};
        TPM2B_NAME srk_name;

        assert_int_equal(swtpm_fixture_new_with_ek("test-tpm-identity", t->cas->ca, &t->a), 0);
        connect_to(t, t->a);
        srk_create(t->c, &srk_name);
        t->c = tpm2_context_free(t->c);
        log = path_join(t->a->dir, "fault.log");
        assert_non_null(log);

        /* The third ReadPublic of the check is the one in the session (the EK's and the SRK's
         * FromTPMPublic come first); byte 16 is inside its encrypted outPublic, after the header
         * (10), parameterSize (4) and the TPM2B's size (2). */
        assert_true(asprintf(&tcti, "%s:cc=ReadPublic,nth=3,flip=16,log=%s;%s", getenv("SEALVOL_FAULT_TCTI"), log,
                             t->a->tcti) > 0);
        assert_int_equal(tpm2_context_new(tcti, &t->c), 0);
        assert_int_equal(verify(t, t->cas->anchors, &id), -EBADE);
        assert_reason_contains(t, "does not hold the certified EK");
        faults = test_read_file(log);
        assert_non_null(faults);
        assert_non_null(strstr(faults, " 0x173 fault\n"));
        assert_null(strstr(strstr(faults, " fault\n") + 1, " fault\n"));

        /* The control: through the same TCTI without a fault, the same TPM passes. */
        free(tcti);
        tcti = NULL;
        assert_true(asprintf(&tcti, "%s:log=%s;%s", getenv("SEALVOL_FAULT_TCTI"), log, t->a->tcti) > 0);
        connect_to(t, t->a);
        t->c = tpm2_context_free(t->c);
        assert_int_equal(tpm2_context_new(tcti, &t->c), 0);
        assert_int_equal(verify(t, t->cas->anchors, &id), 0);
        assert_true(tpm2_name_equal(&id.srk_name, &srk_name));
        assert_int_equal(loaded_handles(t->c, HANDLE_TRANSIENT_FIRST), 0);
        assert_int_equal(loaded_handles(t->c, HANDLE_LOADED_SESSION_FIRST), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_verified_ek, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_ek_cert, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_manufacturer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cert_of_another_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_padded_and_garbage_cert, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_srk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replaced_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tampered_answer, setup, teardown),
        };

        /* SEALVOL_LOG_LEVEL=debug shows which way each check went. */
        log_parse_environment();
        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("swtpm_setup") && test_have_executable("swtpm_localca"),
                     "swtpm_setup and swtpm_localca (Debian package swtpm-tools)");
        test_require(!isempty(getenv("SEALVOL_FAULT_TCTI")), "SEALVOL_FAULT_TCTI (the fault-injecting TCTI)");
        /* The CA file is loaded as the daemon loads it, which wants it root's. */
        test_require(geteuid() == 0, "root (the manufacturer CA file must be root's, as for the daemon)");
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
