/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-vmk.c: the VMK against swtpm: seal to a file, unseal after a reboot, refuse a changed boot,
 * another TPM, and every kind of damaged or foreign blob file, without changing the file; reseal
 * to new PCR values; derive keyslot passphrases (known answer).
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "dra-fixture.h"
#include "dra.h"
#include "fileio.h"
#include "kill-points.h"
#include "secmem.h"
#include "swtpm-fixture.h"
#include "test-util.h"
#include "v1-format.h"
#include "vmk.h"

typedef struct Fixture {
        SwtpmFixture *tpm;
        Tpm2Context *c;
        char *path;
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        if (!f || swtpm_fixture_new("test-vmk", &f->tpm) < 0 || tpm2_context_new(f->tpm->tcti, &f->c) < 0)
                return -1;
        f->path = path_join(f->tpm->dir, "vmk.sealed");
        *state = f;
        return f->path ? 0 : -1;
}

static int teardown(void **state) {
        Fixture *f = *state;

        tpm2_context_free(f->c);
        swtpm_fixture_free(f->tpm);
        free(f->path);
        free(f);
        return 0;
}

/* After the TPM restarted, the old ESAPI connection is gone: open a new one. */
static void reconnect(Fixture *f) {
        f->c = tpm2_context_free(f->c);
        assert_int_equal(tpm2_context_new(f->tpm->tcti, &f->c), 0);
}

static void create(Fixture *f, uint8_t **ret_vmk, VmkBlob *ret_blob) {
        assert_int_equal(vmk_generate(ret_vmk), 0);
        assert_int_equal(secure_size(*ret_vmk), VMK_SIZE);
        assert_int_equal(vmk_seal_to_file(f->c, *ret_vmk, NULL, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path,
                                          ret_blob),
                         0);
}

static void test_seal_reboot_unseal(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL, *again = NULL;
        VmkBlob blob, read;
        struct stat st;

        create(f, &vmk, &blob);
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_false(guid_is_null(&blob.vmk_id));
        assert_true(blob.noda);
        assert_int_equal(blob.pcrs.mask, 1u << 7);

        assert_int_equal(swtpm_fixture_reboot(f->tpm), 0);
        reconnect(f);
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, &read, NULL), 0);
        assert_memory_equal(vmk, again, VMK_SIZE);
        assert_true(guid_equal(&blob.vmk_id, &read.vmk_id));
        assert_int_equal(read.created, blob.created);
}

static void test_changed_pcr_then_reseal(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL, *again = NULL;
        VmkBlob blob, resealed;
        uint32_t changed = 0;

        create(f, &vmk, &blob);
        assert_int_equal(swtpm_fixture_extend_pcr(f->tpm, 7, "db update", 9), 0);
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, &changed), -ESTALE);
        assert_null(again);
        assert_int_equal(changed, 1u << 7);

        /* After a legitimate change, the same VMK (same identity) is sealed to the new values. */
        assert_int_equal(vmk_seal_to_file(f->c, vmk, &blob.vmk_id, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path,
                                          &resealed),
                         0);
        assert_true(guid_equal(&blob.vmk_id, &resealed.vmk_id));
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, NULL), 0);
        assert_memory_equal(vmk, again, VMK_SIZE);

        /* A wiped buffer is not a VMK. */
        uint8_t zero[VMK_SIZE] = {};
        assert_int_equal(vmk_seal_to_file(f->c, zero, &blob.vmk_id, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path,
                                          NULL),
                         -EINVAL);
}

static void test_another_tpm(void **state) {
        Fixture *f = *state;
        _cleanup_(swtpm_fixture_freep) SwtpmFixture *other = NULL;
        _cleanup_(tpm2_context_freep) Tpm2Context *oc = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL, *again = NULL;
        VmkBlob blob;

        create(f, &vmk, &blob);
        assert_int_equal(swtpm_fixture_new("test-vmk-other", &other), 0);
        assert_int_equal(tpm2_context_new(other->tcti, &oc), 0);
        assert_int_equal(vmk_unseal_from_file(oc, f->path, &again, NULL, NULL), -ENXIO);
}

/* Writes a variant of the blob, checks it is refused with the expected error, and that the refusal
 * left the file exactly as it was. */
static void expect_refused(Fixture *f, const char *content, size_t size, int error) {
        _cleanup_free_ char *variant = path_join(f->tpm->dir, "variant.sealed"), *after = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        size_t n;

        assert_non_null(variant);
        assert_int_equal(write_file_atomic(variant, content, size, 0600), 0);
        assert_int_equal(vmk_unseal_from_file(f->c, variant, &vmk, NULL, NULL), error);
        assert_null(vmk);
        assert_int_equal(read_file_full(variant, 2 * VMK_BLOB_SIZE_MAX, &after, &n), 0);
        assert_int_equal(n, size);
        assert_memory_equal(after, content, size);
}

static char *replace_once(const char *s, const char *from, const char *to) {
        const char *p = strstr(s, from);
        char *out;

        assert_non_null(p);
        assert_true(asprintf(&out, "%.*s%s%s", (int) (p - s), s, to, p + strlen(from)) > 0);
        return out;
}

static void test_damaged_and_foreign_blobs(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *json = NULL;
        VmkBlob blob;
        size_t n;

        create(f, &vmk, &blob);
        assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &json, &n), 0);

        /* Missing. */
        _cleanup_free_ char *missing = path_join(f->tpm->dir, "nothing-here");
        assert_int_equal(vmk_unseal_from_file(f->c, missing, &vmk, NULL, NULL), -ENOENT);

        /* Truncated anywhere. */
        for (size_t cut = 0; cut < n; cut += n / 7 + 1)
                expect_refused(f, json, cut, -EBADMSG);

        /* Not JSON, JSON but not ours, trailing garbage. */
        expect_refused(f, "\x7f" "ELF", 4, -EBADMSG);
        expect_refused(f, "[]", 2, -EBADMSG);
        _cleanup_free_ char *trailing = NULL;
        assert_true(asprintf(&trailing, "%s{}", json) > 0);
        expect_refused(f, trailing, strlen(trailing), -EBADMSG);

        /* A newer format version: refused as such. */
        _cleanup_free_ char *v3 = replace_once(json, "\"version\": 2", "\"version\": 3");
        expect_refused(f, v3, strlen(v3), -EPROTONOSUPPORT);

        /* Well-formed but altered fields: the digest catches them. */
        _cleanup_free_ char *other_id = replace_once(json, "\"vmk_id\": \"", "\"vmk_id\": \"0");
        expect_refused(f, other_id, strlen(other_id), -EBADMSG);
        _cleanup_free_ char *noda = replace_once(json, "\"noda\": true", "\"noda\": false");
        expect_refused(f, noda, strlen(noda), -EBADMSG);
        _cleanup_free_ char *pcr = replace_once(json, "\"pcrs\": [\n    7\n  ]", "\"pcrs\": [\n    8\n  ]");
        expect_refused(f, pcr, strlen(pcr), -EBADMSG);

        /* An extra or a missing key. */
        _cleanup_free_ char *extra = replace_once(json, "{", "{ \"comment\": \"hi\",");
        expect_refused(f, extra, strlen(extra), -EBADMSG);
        _cleanup_free_ char *less = replace_once(json, "\"noda\": true,", "");
        expect_refused(f, less, strlen(less), -EBADMSG);

        /* A blob over the size limit. */
        _cleanup_free_ char *huge = malloc(VMK_BLOB_SIZE_MAX + 2);
        assert_non_null(huge);
        memset(huge, ' ', VMK_BLOB_SIZE_MAX + 1);
        huge[VMK_BLOB_SIZE_MAX + 1] = '\0';
        expect_refused(f, huge, VMK_BLOB_SIZE_MAX + 1, -EBADMSG);

        /* And the real one still opens. */
        _cleanup_secure_ uint8_t *again = NULL;
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, NULL), 0);
        assert_memory_equal(vmk, again, VMK_SIZE);
}

static void assert_file_is(const char *path, const char *content, size_t size) {
        _cleanup_free_ char *now = NULL;
        size_t n;

        assert_int_equal(read_file_full(path, VMK_BLOB_SIZE_MAX, &now, &n), 0);
        assert_int_equal(n, size);
        assert_memory_equal(now, content, size);
}

/* Attack: another key at the SRK's handle (an interposer on the TPM's bus, or a cleared hierarchy
 * whose SRK somebody made again) must not be sealed to: the session's salt is encrypted to it, so its
 * owner would read the VMK inside TPM2_Create. Only the operator's TPM replacement re-pins. */
static void test_srk_pinned(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL, *again = NULL;
        _cleanup_free_ char *before = NULL, *damaged = NULL;
        VmkBlob blob, repinned;
        size_t n;

        create(f, &vmk, &blob);
        assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &before, &n), 0);
        assert_int_equal(swtpm_fixture_replace_srk(f->tpm), 0);

        assert_int_equal(vmk_seal_to_file(f->c, vmk, &blob.vmk_id, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path,
                                          NULL),
                         -ENXIO);
        assert_file_is(f->path, before, n);
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, NULL), -ENXIO);

        /* A sealed state that cannot be read pins nothing, so nothing is sealed over it either. */
        damaged = replace_once(before, "\"noda\": true", "\"noda\": false");
        assert_int_equal(write_file_atomic(f->path, damaged, strlen(damaged), 0600), 0);
        assert_int_equal(vmk_seal_to_file(f->c, vmk, &blob.vmk_id, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path,
                                          NULL),
                         -EBADMSG);
        assert_file_is(f->path, damaged, strlen(damaged));

        /* The replacement of the TPM, on purpose. */
        assert_int_equal(vmk_seal(f->c,
                                  &(VmkSealParams) { .vmk = vmk, .vmk_id = &blob.vmk_id, .bank = TPM2_ALG_SHA256,
                                                     .pcr_mask = VMK_PCR_MASK_DEFAULT, .repin_srk = true },
                                  f->path, &repinned),
                         0);
        assert_false(tpm2_name_equal(&repinned.sealed.srk_name, &blob.sealed.srk_name));
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, NULL), 0);
        assert_memory_equal(vmk, again, VMK_SIZE);
}

/* The sealed state names its keys by their check values: a file that names another VMK than the TPM
 * holds for it is refused (its digest is no secret, anyone can make one that verifies). A rotation
 * keeps the previous VMK in the same sealed object: one unseal gives both. */
static void test_key_check_and_previous(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL, *other = NULL, *again = NULL, *previous = NULL;
        VmkBlob blob, forged, both, read;

        create(f, &vmk, &blob);
        assert_true(vmk_blob_matches(&blob, vmk, false));
        assert_false(vmk_blob_matches(&blob, vmk, true));
        assert_int_equal(vmk_generate(&other), 0);
        assert_false(vmk_blob_matches(&blob, other, false));

        forged = blob;
        assert_int_equal(vmk_key_check_value(other, forged.key_check), 0);
        assert_int_equal(vmk_blob_write(&forged, f->path), 0);
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, NULL), -EBADMSG);
        assert_null(again);

        assert_int_equal(vmk_seal(f->c,
                                  &(VmkSealParams) { .vmk = other, .previous = vmk, .previous_id = &blob.vmk_id,
                                                     .bank = TPM2_ALG_SHA256, .pcr_mask = VMK_PCR_MASK_DEFAULT },
                                  f->path, &both),
                         0);
        assert_true(both.has_previous);
        assert_false(guid_equal(&both.vmk_id, &blob.vmk_id));
        assert_int_equal(swtpm_fixture_reboot(f->tpm), 0);
        reconnect(f);
        assert_int_equal(vmk_unseal_from_file_full(f->c, f->path, &again, &previous, &read, NULL), 0);
        assert_memory_equal(again, other, VMK_SIZE);
        assert_non_null(previous);
        assert_memory_equal(previous, vmk, VMK_SIZE);
        assert_true(read.has_previous);
        assert_true(guid_equal(&read.previous_id, &blob.vmk_id));
        assert_true(vmk_blob_matches(&read, vmk, true));

        /* The previous VMK is another one, with an identity. */
        assert_int_equal(vmk_seal(f->c,
                                  &(VmkSealParams) { .vmk = other, .vmk_id = &read.vmk_id, .previous = vmk,
                                                     .previous_id = &read.vmk_id, .bank = TPM2_ALG_SHA256,
                                                     .pcr_mask = VMK_PCR_MASK_DEFAULT },
                                  f->path, NULL),
                         -EINVAL);
}

/* A server sealed by the version 1 code: its file opens, gets the key check value of the key the TPM
 * gave, and is written back as version 2. */
static void test_v1_blob_upgrade(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL, *again = NULL;
        _cleanup_free_ char *v1 = NULL, *damaged = NULL;
        VmkBlob blob, read, upgraded;

        create(f, &vmk, &blob);
        assert_int_equal(v1_blob_to_json(&blob, &v1), 0);
        assert_non_null(strstr(v1, "\"version\": 1"));
        damaged = replace_once(v1, "\"noda\": true", "\"noda\": false");
        expect_refused(f, damaged, strlen(damaged), -EBADMSG);

        assert_int_equal(write_file_atomic(f->path, v1, strlen(v1), 0600), 0);
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, &read, NULL), 0);
        assert_memory_equal(again, vmk, VMK_SIZE);
        assert_int_equal(read.version, 1u);
        assert_true(vmk_blob_matches(&read, vmk, false));

        assert_int_equal(vmk_blob_write(&read, f->path), 0);
        assert_int_equal(vmk_blob_read(f->path, &upgraded), 0);
        assert_int_equal(upgraded.version, 2u);
        assert_memory_equal(upgraded.key_check, blob.key_check, VMK_KEY_CHECK_SIZE);
        assert_true(guid_equal(&upgraded.vmk_id, &blob.vmk_id));
        again = secure_free(again);
        assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, NULL, NULL), 0);
        assert_memory_equal(again, vmk, VMK_SIZE);
}

static void test_blob_json_round_trip(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *a = NULL, *b = NULL;
        VmkBlob blob, parsed;

        create(f, &vmk, &blob);
        assert_int_equal(vmk_blob_to_json(&blob, &a), 0);
        assert_int_equal(vmk_blob_from_json(a, strlen(a), &parsed), 0);
        assert_int_equal(vmk_blob_to_json(&parsed, &b), 0);
        assert_string_equal(a, b);
        /* No secret in the file: the VMK does not appear in it in any form we write. */
        assert_null(memmem(a, strlen(a), vmk, VMK_SIZE));
}

static void test_derive_keyslot_passphrase(void **state) {
        /* Known answer, computed independently from RFC 5869 with Python's hmac module:
         * HKDF-SHA256(IKM = 00..1f, salt = the UUID text, info = "sealvol tpm keyslot v1"). */
        static const uint8_t expected[VMK_KEYSLOT_PASSPHRASE_SIZE] = {
                0x8b, 0x2b, 0x82, 0xf3, 0x88, 0x5f, 0x3d, 0x05, 0xeb, 0x7f, 0x8e, 0x5a, 0x5b, 0xc3, 0x96, 0x91,
                0x7e, 0x0c, 0x4f, 0xbc, 0x6f, 0xf6, 0x45, 0x9c, 0x19, 0x53, 0x7a, 0x4e, 0x14, 0x41, 0xa2, 0x4f,
        };
        _cleanup_secure_ uint8_t *a = NULL, *b = NULL;
        uint8_t vmk[VMK_SIZE];
        uint8_t *none = NULL;

        (void) state;
        for (unsigned i = 0; i < VMK_SIZE; i++)
                vmk[i] = (uint8_t) i;
        assert_int_equal(vmk_derive_keyslot_passphrase(vmk, "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60", &a), 0);
        assert_int_equal(secure_size(a), VMK_KEYSLOT_PASSPHRASE_SIZE);
        assert_memory_equal(a, expected, sizeof(expected));

        /* Another volume, another passphrase. */
        assert_int_equal(vmk_derive_keyslot_passphrase(vmk, "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f61", &b), 0);
        assert_memory_not_equal(a, b, VMK_KEYSLOT_PASSPHRASE_SIZE);

        /* Only the canonical spelling: an uppercase UUID would silently derive another key. */
        assert_int_equal(vmk_derive_keyslot_passphrase(vmk, "0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60", &none), -EINVAL);
        assert_int_equal(vmk_derive_keyslot_passphrase(vmk, "0f5c4b227d364cf19a3e1b2c3d4e5f60", &none), -EINVAL);
        assert_int_equal(vmk_derive_keyslot_passphrase(vmk, "", &none), -EINVAL);
        assert_int_equal(vmk_derive_keyslot_passphrase(vmk, NULL, &none), -EINVAL);
        assert_null(none);
}

typedef struct ResealContext {
        const char *tcti;
        const char *path;
        /* A copy in ordinary memory: secure memory reads as zeroes in a forked child (MADV_WIPEONFORK). */
        uint8_t vmk[VMK_SIZE];
        const Guid *id;
} ResealContext;

static int reseal(void *userdata) {
        ResealContext *c = userdata;
        _cleanup_(tpm2_context_freep) Tpm2Context *tc = NULL;
        int r;

        r = tpm2_context_new(c->tcti, &tc);
        if (r < 0)
                return r;
        return vmk_seal_to_file(tc, c->vmk, c->id, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, c->path, NULL);
}

/* A reseal (after a firmware update, say) killed at each of its steps on disk: the file always holds
 * the old blob or the new one, and it always unseals. */
static void test_reseal_killed_at_every_step(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL;
        ResealContext c = { .tcti = f->tpm->tcti, .path = f->path };
        VmkBlob blob;
        bool completed = false;
        unsigned k;

        create(f, &vmk, &blob);
        memcpy(c.vmk, vmk, VMK_SIZE);
        c.id = &blob.vmk_id;
        for (k = 1; !completed; k++) {
                _cleanup_secure_ uint8_t *again = NULL;
                VmkBlob now;

                assert_true(k < 100);
                assert_int_equal(test_run_killed_at(reseal, &c, f->tpm->dir, k, &completed), 0);
                assert_int_equal(vmk_unseal_from_file(f->c, f->path, &again, &now, NULL), 0);
                assert_memory_equal(again, vmk, VMK_SIZE);
                assert_true(guid_equal(&now.vmk_id, &blob.vmk_id));
        }
        explicit_bzero(c.vmk, sizeof(c.vmk));
        print_message("reseal: killed at each of its %u steps on disk, the blob always unsealed\n", k - 2);
}

static X509 *dra_cert(const char *name) {
        X509 *cert = dra_fixture_cert(name);

        assert_non_null(cert);
        return cert;
}

static EVP_PKEY *dra_key(const char *name) {
        EVP_PKEY *key = dra_fixture_key(name);

        assert_non_null(key);
        return key;
}

static void test_export_to_dra(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ uint8_t *vmk = NULL, *imported = NULL;
        _cleanup_free_ char *json = NULL, *cmd = NULL, *blob = path_join(f->tpm->dir, "vmk.cms"),
                            *out = path_join(f->tpm->dir, "vmk.out"), *plain = NULL;
        X509 *rsa = dra_cert("rsa2048"), *ec = dra_cert("ec384"), *bad = dra_cert("rsa-ku-sign");
        EVP_PKEY *rsa_key = dra_key("rsa2048"), *ec_key = dra_key("ec384");
        uint8_t kcv1[VMK_KEY_CHECK_SIZE], kcv2[VMK_KEY_CHECK_SIZE];
        char *none = NULL;
        VmkBlob blob_info;
        Guid id;
        size_t n;

        create(f, &vmk, &blob_info);
        assert_int_equal(vmk_export_dra(vmk, &blob_info.vmk_id, rsa, NULL, &json), 0);
        assert_null(memmem(json, strlen(json), vmk, VMK_SIZE));

        /* Back with the DRA key: the same VMK and identity; with another key: refused. */
        assert_int_equal(vmk_import_dra(json, strlen(json), rsa_key, &imported, &id), 0);
        assert_memory_equal(imported, vmk, VMK_SIZE);
        assert_true(guid_equal(&id, &blob_info.vmk_id));
        imported = secure_free(imported);
        assert_int_equal(vmk_import_dra(json, strlen(json), ec_key, &imported, &id), -EKEYREJECTED);
        assert_null(imported);

        /* A wrong key check value is caught. */
        assert_int_equal(vmk_key_check_value(vmk, kcv1), 0);
        _cleanup_free_ char *hex = NULL;
        hex = calloc(1, 2 * VMK_KEY_CHECK_SIZE + 1);
        assert_non_null(hex);
        for (size_t i = 0; i < VMK_KEY_CHECK_SIZE; i++)
                sprintf(hex + 2 * i, "%02x", kcv1[i]);
        _cleanup_free_ char *tampered = strdup(json);
        char *p = strstr(tampered, hex);
        assert_non_null(p);
        p[0] = p[0] == '0' ? '1' : '0';
        assert_int_equal(vmk_import_dra(tampered, strlen(tampered), rsa_key, &imported, &id), -EBADMSG);
        assert_int_equal(vmk_import_dra("{}", 2, rsa_key, &imported, &id), -EBADMSG);

        /* Stock openssl opens the "cms" field and yields the 32 VMK bytes. */
        assert_int_equal(vmk_export_dra(vmk, &blob_info.vmk_id, ec, NULL, &none), 0);
        _cleanup_free_ char *ec_json = none;
        const char *c = strstr(ec_json, "\"cms\": \"");
        assert_non_null(c);
        c += strlen("\"cms\": \"");
        _cleanup_free_ char *b64 = strndup(c, strcspn(c, "\""));
        assert_true(asprintf(&cmd,
                             "printf '%%s' '%s' | openssl base64 -d -A > '%s' && "
                             "openssl cms -decrypt -binary -inform DER -in '%s' -inkey '%s/dra-ec384.key' > '%s'",
                             b64, blob, blob, getenv("SEALVOL_DRA_FIXTURES"), out) > 0);
        assert_int_equal(system(cmd), 0);
        assert_int_equal(read_file_full(out, 1024, &plain, &n), 0);
        assert_int_equal(n, VMK_SIZE);
        assert_memory_equal(plain, vmk, VMK_SIZE);

        /* Same VMK, same check value; a certificate that may not be a DRA is refused. */
        assert_int_equal(vmk_key_check_value(vmk, kcv2), 0);
        assert_memory_equal(kcv1, kcv2, sizeof(kcv1));
        assert_int_equal(vmk_export_dra(vmk, &blob_info.vmk_id, bad, NULL, &none), -EKEYREJECTED);

        X509_free(rsa);
        X509_free(ec);
        X509_free(bad);
        EVP_PKEY_free(rsa_key);
        EVP_PKEY_free(ec_key);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_derive_keyslot_passphrase),
                cmocka_unit_test_setup_teardown(test_seal_reboot_unseal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_changed_pcr_then_reseal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_another_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_and_foreign_blobs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blob_json_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_srk_pinned, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_check_and_previous, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v1_blob_upgrade, setup, teardown),
                cmocka_unit_test_setup_teardown(test_export_to_dra, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reseal_killed_at_every_step, setup, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
