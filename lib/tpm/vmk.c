/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmk.c: creating, sealing, storing and unsealing the server's volume master key (see vmk.h). */

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>
#include <tss2/tss2_mu.h>

#include "dra.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "pcr-floor.h"
#include "secmem.h"
#include "vmk.h"

#define VMK_BLOB_FORMAT "sealvol-sealed-vmk"
#define VMK_KEYSLOT_LABEL "sealvol tpm keyslot v1"
#define VMK_CHECK_LABEL "sealvol vmk check v1"
#define VMK_EXPORT_FORMAT "sealvol-vmk-export"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_KDF *, EVP_KDF_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_KDF_CTX *, EVP_KDF_CTX_free);

int vmk_generate(uint8_t **ret_vmk) {
        _cleanup_secure_ uint8_t *vmk = secure_alloc(VMK_SIZE);

        if (!vmk)
                return negative_errno();
        if (RAND_priv_bytes(vmk, VMK_SIZE) != 1)
                return -EIO;
        *ret_vmk = TAKE_PTR(vmk);
        return 0;
}

/* The canonical form libcryptsetup gives: lowercase 8-4-4-4-12. Anything else would derive a
 * different key for the same volume, so it is refused rather than normalised. */
static bool is_canonical_uuid(const char *s) {
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23) {
                        if (s[i] != '-')
                                return false;
                } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

static int hkdf_sha256(const uint8_t *key, size_t key_size, const void *salt, size_t salt_size, const char *info,
                       uint8_t *out, size_t out_size) {
        _cleanup_(EVP_KDF_freep) EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
        _cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
        OSSL_PARAM params[5], *p = params;

        if (!kdf)
                return -EOPNOTSUPP;
        ctx = EVP_KDF_CTX_new(kdf);
        if (!ctx)
                return -ENOMEM;
        *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *) key, key_size);
        if (salt_size > 0)
                *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *) salt, salt_size);
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *) info, strlen(info));
        *p = OSSL_PARAM_construct_end();
        return EVP_KDF_derive(ctx, out, out_size, params) == 1 ? 0 : -EIO;
}

int vmk_derive_keyslot_passphrase(const uint8_t vmk[static VMK_SIZE], const char *volume_uuid,
                                  uint8_t **ret_passphrase) {
        _cleanup_secure_ uint8_t *out = NULL;
        int r;

        if (!is_canonical_uuid(volume_uuid))
                return -EINVAL;
        out = secure_alloc(VMK_KEYSLOT_PASSPHRASE_SIZE);
        if (!out)
                return negative_errno();
        r = hkdf_sha256(vmk, VMK_SIZE, volume_uuid, strlen(volume_uuid), VMK_KEYSLOT_LABEL, out,
                        VMK_KEYSLOT_PASSPHRASE_SIZE);
        if (r < 0)
                return r;
        *ret_passphrase = TAKE_PTR(out);
        return 0;
}

int vmk_derive_key(const uint8_t vmk[static VMK_SIZE], const char *salt, const char *label, uint8_t **ret_key) {
        _cleanup_secure_ uint8_t *out = secure_alloc(32);
        int r;

        if (!out)
                return negative_errno();
        r = hkdf_sha256(vmk, VMK_SIZE, salt, strlen(salt), label, out, 32);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(out);
        return 0;
}

int vmk_key_check_value(const uint8_t vmk[static VMK_SIZE], uint8_t ret[static VMK_KEY_CHECK_SIZE]) {
        return hkdf_sha256(vmk, VMK_SIZE, NULL, 0, VMK_CHECK_LABEL, ret, VMK_KEY_CHECK_SIZE);
}

int vmk_export_dra(const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, X509 *cert,
                   const char *const *extra_ekus, char **ret_json) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ uint8_t *cms = NULL;
        uint8_t kcv[VMK_KEY_CHECK_SIZE], fp[DRA_FINGERPRINT_SIZE];
        char id[GUID_STRING_MAX];
        size_t cms_size = 0;
        char *s;
        int r;

        if (!o)
                return -ENOMEM;
        if (dra_cert_check(cert, extra_ekus, time(NULL), NULL) < 0)
                return -EKEYREJECTED;
        if ((r = vmk_key_check_value(vmk, kcv)) < 0 || (r = dra_cert_fingerprint(cert, fp)) < 0 ||
            (r = dra_wrap(cert, vmk, VMK_SIZE, &cms, &cms_size)) < 0)
                return r;

        if ((r = json_add_string(o, "format", VMK_EXPORT_FORMAT)) < 0 ||
            (r = json_add_owned(o, "version", json_object_new_int(VMK_EXPORT_VERSION))) < 0 ||
            (r = json_add_string(o, "vmk_id", guid_format(vmk_id, id))) < 0 ||
            (r = json_add_time(o, "created", (uint64_t) time(NULL))) < 0 ||
            (r = json_add_hex(o, "dra_fingerprint", fp, sizeof(fp))) < 0 ||
            (r = json_add_hex(o, "key_check", kcv, sizeof(kcv))) < 0 ||
            (r = json_add_base64(o, "cms", cms, cms_size)) < 0)
                return r;
        s = json_format(o);
        if (!s)
                return -ENOMEM;
        *ret_json = s;
        return 0;
}

/* The fields of an export, strictly. *ret_cms is malloc'd. */
static int export_parse(const char *json, size_t size, Guid *ret_id, uint8_t ret_check[static VMK_KEY_CHECK_SIZE],
                        void **ret_cms, size_t *ret_cms_size) {
        static const char *const keys[] = { "format", "version", "vmk_id", "created", "dra_fingerprint",
                                            "key_check", "cms", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ void *cms = NULL;
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        json_object *v;
        uint64_t created;
        size_t cms_size;
        int r;

        if (size > VMK_BLOB_SIZE_MAX)
                return -EBADMSG;
        r = json_parse_object(json, size, 3, &o);
        if (r < 0)
                return r;
        if (!streq_ptr(json_get_string(o, "format"), VMK_EXPORT_FORMAT) ||
            !json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 1)
                return -EBADMSG;
        if (json_object_get_int64(v) > VMK_EXPORT_VERSION)
                return -EPROTONOSUPPORT;
        if (json_check_keys(o, keys) < 0 || guid_parse(json_get_string(o, "vmk_id"), ret_id) < 0 ||
            json_get_time(o, "created", &created) < 0 ||
            hex_decode_fixed(json_get_string(o, "dra_fingerprint"), fp, sizeof(fp)) < 0 ||
            hex_decode_fixed(json_get_string(o, "key_check"), ret_check, VMK_KEY_CHECK_SIZE) < 0 ||
            base64_decode(json_get_string(o, "cms"), &cms, &cms_size) < 0)
                return -EBADMSG;
        if (ret_cms) {
                *ret_cms = TAKE_PTR(cms);
                *ret_cms_size = cms_size;
        }
        return 0;
}

int vmk_export_key_check(const char *json, size_t size, uint8_t ret[static VMK_KEY_CHECK_SIZE]) {
        Guid id;

        return export_parse(json, size, &id, ret, NULL, NULL);
}

int vmk_import_dra(const char *json, size_t size, EVP_PKEY *key, uint8_t **ret_vmk, Guid *ret_vmk_id) {
        _cleanup_free_ void *cms = NULL;
        _cleanup_secure_ void *vmk = NULL;
        uint8_t kcv[VMK_KEY_CHECK_SIZE], expected[VMK_KEY_CHECK_SIZE];
        size_t cms_size = 0, vmk_size = 0;
        Guid id;
        int r;

        r = export_parse(json, size, &id, expected, &cms, &cms_size);
        if (r < 0)
                return r;
        r = dra_unwrap(key, cms, cms_size, &vmk, &vmk_size);
        if (r < 0)
                return r;
        /* CMS with AES-CBC has no integrity of its own: the key check value is what says this is the
         * VMK and not bytes that merely decrypted. */
        if (vmk_size != VMK_SIZE)
                return -EBADMSG;
        r = vmk_key_check_value(vmk, kcv);
        if (r < 0)
                return r;
        if (!memeq_secure(kcv, expected, sizeof(kcv)))
                return -EBADMSG;

        *ret_vmk = TAKE_PTR(vmk);
        if (ret_vmk_id)
                *ret_vmk_id = id;
        return 0;
}

/* ---- the blob file --------------------------------------------------------------------------- */

typedef struct MarshaledSealed {
        uint8_t public[sizeof(TPM2B_PUBLIC)];
        size_t public_size;
        uint8_t private[sizeof(TPM2B_PRIVATE)];
        size_t private_size;
} MarshaledSealed;

static int marshal_sealed(const Tpm2Sealed *s, MarshaledSealed *ret) {
        MarshaledSealed m = {};

        if (Tss2_MU_TPM2B_PUBLIC_Marshal(&s->public, m.public, sizeof(m.public), &m.public_size) !=
                    TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Marshal(&s->private, m.private, sizeof(m.private), &m.private_size) !=
                    TSS2_RC_SUCCESS)
                return -EINVAL;
        *ret = m;
        return 0;
}

/* SHA-256 over every field in a fixed binary order: a blob damaged in a way that still parses is
 * caught here, with a clear "damaged" error, rather than by the TPM as a puzzling refusal. */
static int blob_digest(const VmkBlob *b, const MarshaledSealed *m, uint8_t ret[static 32]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t header[4 + 1 + 2 + 4 + 8];
        unsigned n = 0;
        int ok;

        if (!md)
                return -ENOMEM;
        header[0] = (uint8_t) b->version;
        header[1] = (uint8_t) (b->version >> 8);
        header[2] = (uint8_t) (b->version >> 16);
        header[3] = (uint8_t) (b->version >> 24);
        header[4] = b->noda;
        header[5] = (uint8_t) b->pcrs.bank;
        header[6] = (uint8_t) (b->pcrs.bank >> 8);
        for (unsigned i = 0; i < 4; i++)
                header[7 + i] = (uint8_t) (b->pcrs.mask >> (8 * i));
        for (unsigned i = 0; i < 8; i++)
                header[11 + i] = (uint8_t) (b->created >> (8 * i));

        ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, VMK_BLOB_FORMAT, sizeof(VMK_BLOB_FORMAT)) == 1 &&
             EVP_DigestUpdate(md, header, sizeof(header)) == 1 &&
             EVP_DigestUpdate(md, b->vmk_id.bytes, sizeof(b->vmk_id.bytes)) == 1;
        /* Version 2 adds the keys' check values and the previous VMK of a rotation. */
        if (ok && b->version >= 2) {
                uint8_t has_previous = b->has_previous;

                ok = EVP_DigestUpdate(md, b->key_check, sizeof(b->key_check)) == 1 &&
                     EVP_DigestUpdate(md, &has_previous, 1) == 1 &&
                     EVP_DigestUpdate(md, b->previous_id.bytes, sizeof(b->previous_id.bytes)) == 1 &&
                     EVP_DigestUpdate(md, b->previous_key_check, sizeof(b->previous_key_check)) == 1;
        }
        for (unsigned i = 0; ok && i <= TPM2_PCR_INDEX_MAX; i++)
                if (b->pcrs.mask & (UINT32_C(1) << i))
                        ok = EVP_DigestUpdate(md, b->pcrs.digests[i], b->pcrs.digest_size) == 1;
        ok = ok && EVP_DigestUpdate(md, m->public, m->public_size) == 1 &&
             EVP_DigestUpdate(md, m->private, m->private_size) == 1 &&
             EVP_DigestUpdate(md, b->sealed.srk_name.name, b->sealed.srk_name.size) == 1 &&
             EVP_DigestUpdate(md, b->sealed.policy.buffer, b->sealed.policy.size) == 1 &&
             EVP_DigestFinal_ex(md, ret, &n) == 1;
        EVP_MD_CTX_free(md);
        return ok ? 0 : -EIO;
}

int vmk_blob_to_json(const VmkBlob *blob, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *pcrs = NULL, *values = NULL;
        char id[GUID_STRING_MAX], previous[GUID_STRING_MAX] = "", handle[16];
        uint8_t digest[32];
        MarshaledSealed m;
        const char *bank = tpm2_hash_alg_to_string(blob->pcrs.bank);
        /* Always written as the current version: a version 1 blob read and unsealed has its key check
         * value by now. */
        VmkBlob copy = *blob, *b = &copy;
        char *s;
        int r;

        if (!o)
                return -ENOMEM;
        if (!bank)
                return -EINVAL;
        b->version = VMK_BLOB_VERSION;
        if (b->has_previous)
                guid_format(&b->previous_id, previous);
        else {
                b->previous_id = (Guid) {};
                memset(b->previous_key_check, 0, sizeof(b->previous_key_check));
        }
        r = marshal_sealed(&b->sealed, &m);
        if (r < 0)
                return r;
        r = blob_digest(b, &m, digest);
        if (r < 0)
                return r;
        snprintf(handle, sizeof(handle), "0x%08x", (unsigned) TPM2_SRK_HANDLE);

        pcrs = json_object_new_array();
        values = json_object_new_array();
        if (!pcrs || !values)
                return -ENOMEM;
        for (unsigned i = 0; i <= TPM2_PCR_INDEX_MAX; i++) {
                _cleanup_free_ char *hex = NULL;

                if (!(b->pcrs.mask & (UINT32_C(1) << i)))
                        continue;
                hex = hex_encode(b->pcrs.digests[i], b->pcrs.digest_size);
                if (!hex || json_object_array_add(pcrs, json_object_new_int((int32_t) i)) < 0 ||
                    json_object_array_add(values, json_object_new_string(hex)) < 0)
                        return -ENOMEM;
        }

        if ((r = json_add_string(o, "format", VMK_BLOB_FORMAT)) < 0 ||
            (r = json_add_owned(o, "version", json_object_new_int((int32_t) b->version))) < 0 ||
            (r = json_add_string(o, "vmk_id", guid_format(&b->vmk_id, id))) < 0 ||
            (r = json_add_hex(o, "key_check", b->key_check, sizeof(b->key_check))) < 0 ||
            (r = json_add_string(o, "previous_vmk_id", previous)) < 0 ||
            (r = json_add_hex(o, "previous_key_check", b->previous_key_check,
                              b->has_previous ? sizeof(b->previous_key_check) : 0)) < 0 ||
            (r = json_add_time(o, "created", b->created)) < 0 ||
            (r = json_add_owned(o, "noda", json_object_new_boolean(b->noda))) < 0 ||
            (r = json_add_string(o, "pcr_bank", bank)) < 0 ||
            (r = json_add_owned(o, "pcrs", TAKE_PTR(pcrs))) < 0 ||
            (r = json_add_owned(o, "pcr_values", TAKE_PTR(values))) < 0 ||
            (r = json_add_string(o, "srk_handle", handle)) < 0 ||
            (r = json_add_hex(o, "srk_name", b->sealed.srk_name.name, b->sealed.srk_name.size)) < 0 ||
            (r = json_add_hex(o, "policy", b->sealed.policy.buffer, b->sealed.policy.size)) < 0 ||
            (r = json_add_base64(o, "public", m.public, m.public_size)) < 0 ||
            (r = json_add_base64(o, "private", m.private, m.private_size)) < 0 ||
            (r = json_add_hex(o, "digest", digest, sizeof(digest))) < 0)
                return r;

        s = json_format(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static const char *const blob_keys_v1[] = {
        "format", "version", "vmk_id", "created", "noda", "pcr_bank", "pcrs", "pcr_values",
        "srk_handle", "srk_name", "policy", "public", "private", "digest", NULL,
};

static const char *const blob_keys_v2[] = {
        "format", "version", "vmk_id", "key_check", "previous_vmk_id", "previous_key_check", "created", "noda",
        "pcr_bank", "pcrs", "pcr_values", "srk_handle", "srk_name", "policy", "public", "private", "digest", NULL,
};

/* The check values of version 2; the previous VMK's two fields are both empty or both set. */
static int parse_key_checks(json_object *o, VmkBlob *b) {
        const char *previous = json_get_string(o, "previous_vmk_id"), *check = json_get_string(o, "previous_key_check");

        if (hex_decode_fixed(json_get_string(o, "key_check"), b->key_check, sizeof(b->key_check)) < 0 || !previous ||
            !check)
                return -EBADMSG;
        if (isempty(previous) && isempty(check))
                return 0;
        if (guid_parse(previous, &b->previous_id) < 0 || guid_is_null(&b->previous_id) ||
            guid_equal(&b->previous_id, &b->vmk_id) ||
            hex_decode_fixed(check, b->previous_key_check, sizeof(b->previous_key_check)) < 0)
                return -EBADMSG;
        b->has_previous = true;
        return 0;
}

static int parse_hex_into(const char *s, uint8_t *buf, size_t max, UINT16 *ret_size) {
        _cleanup_free_ void *data = NULL;
        size_t n;

        if (hex_decode(s, &data, &n) < 0 || n > max)
                return -EBADMSG;
        memcpy(buf, data, n);
        *ret_size = (UINT16) n;
        return 0;
}

static int parse_pcrs(json_object *o, VmkBlob *b) {
        json_object *pcrs, *values;
        const char *bank = json_get_string(o, "pcr_bank");
        size_t n;
        int r;

        r = tpm2_hash_alg_from_string(bank, &b->pcrs.bank);
        if (r < 0)
                return -EBADMSG;
        if (!json_object_object_get_ex(o, "pcrs", &pcrs) || !json_object_is_type(pcrs, json_type_array) ||
            !json_object_object_get_ex(o, "pcr_values", &values) || !json_object_is_type(values, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(pcrs);
        if (n == 0 || n > TPM2_PCR_INDEX_MAX + 1 || json_object_array_length(values) != n)
                return -EBADMSG;

        b->pcrs.mask = 0;
        b->pcrs.digest_size = 0;
        for (size_t i = 0; i < n; i++) {
                json_object *p = json_object_array_get_idx(pcrs, i), *v = json_object_array_get_idx(values, i);
                int64_t index;
                UINT16 size;

                if (!json_object_is_type(p, json_type_int) || !json_object_is_type(v, json_type_string))
                        return -EBADMSG;
                index = json_object_get_int64(p);
                /* Strictly ascending: one canonical form, no duplicates. */
                if (index < 0 || index > TPM2_PCR_INDEX_MAX || (b->pcrs.mask >> index) != 0)
                        return -EBADMSG;
                if (parse_hex_into(json_object_get_string(v), b->pcrs.digests[index], sizeof(TPMU_HA), &size) < 0)
                        return -EBADMSG;
                if (i > 0 && size != b->pcrs.digest_size)
                        return -EBADMSG;
                b->pcrs.digest_size = size;
                b->pcrs.mask |= UINT32_C(1) << index;
        }
        /* The digest size must be the bank's. */
        if ((b->pcrs.bank == TPM2_ALG_SHA256 && b->pcrs.digest_size != TPM2_SHA256_DIGEST_SIZE) ||
            (b->pcrs.bank == TPM2_ALG_SHA384 && b->pcrs.digest_size != TPM2_SHA384_DIGEST_SIZE) ||
            (b->pcrs.bank == TPM2_ALG_SHA512 && b->pcrs.digest_size != TPM2_SHA512_DIGEST_SIZE) ||
            (b->pcrs.bank == TPM2_ALG_SHA1 && b->pcrs.digest_size != TPM2_SHA1_DIGEST_SIZE))
                return -EBADMSG;
        return 0;
}

static int parse_sealed(json_object *o, VmkBlob *b, MarshaledSealed *m) {
        _cleanup_free_ void *pub = NULL, *priv = NULL;
        size_t pub_n, priv_n, off;
        char handle[16];

        snprintf(handle, sizeof(handle), "0x%08x", (unsigned) TPM2_SRK_HANDLE);
        if (!streq_ptr(json_get_string(o, "srk_handle"), handle))
                return -EBADMSG;
        if (parse_hex_into(json_get_string(o, "srk_name"), b->sealed.srk_name.name,
                           sizeof(b->sealed.srk_name.name), &b->sealed.srk_name.size) < 0 ||
            parse_hex_into(json_get_string(o, "policy"), b->sealed.policy.buffer, sizeof(b->sealed.policy.buffer),
                           &b->sealed.policy.size) < 0)
                return -EBADMSG;

        if (base64_decode(json_get_string(o, "public"), &pub, &pub_n) < 0 ||
            base64_decode(json_get_string(o, "private"), &priv, &priv_n) < 0)
                return -EBADMSG;
        /* Each must be exactly one marshaled structure, nothing more. */
        off = 0;
        if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub, pub_n, &off, &b->sealed.public) != TSS2_RC_SUCCESS || off != pub_n)
                return -EBADMSG;
        off = 0;
        if (Tss2_MU_TPM2B_PRIVATE_Unmarshal(priv, priv_n, &off, &b->sealed.private) != TSS2_RC_SUCCESS ||
            off != priv_n)
                return -EBADMSG;
        if (pub_n > sizeof(m->public) || priv_n > sizeof(m->private))
                return -EBADMSG;
        memcpy(m->public, pub, pub_n);
        m->public_size = pub_n;
        memcpy(m->private, priv, priv_n);
        m->private_size = priv_n;
        return 0;
}

int vmk_blob_from_json(const char *json, size_t size, VmkBlob *ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *v;
        VmkBlob b = {};
        MarshaledSealed m = {};
        uint8_t digest[32], expected[32];
        int64_t version;
        int r;

        if (size > VMK_BLOB_SIZE_MAX)
                return -EBADMSG;
        /* Shallow: the format has two levels; anything deeper is not ours. */
        r = json_parse_object(json, size, 4, &o);
        if (r < 0)
                return r;

        if (!streq_ptr(json_get_string(o, "format"), VMK_BLOB_FORMAT))
                return -EBADMSG;
        if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        version = json_object_get_int64(v);
        if (version < 1)
                return -EBADMSG;
        /* A newer sealvol wrote this: refuse cleanly rather than misread it. */
        if (version > VMK_BLOB_VERSION)
                return -EPROTONOSUPPORT;
        b.version = (unsigned) version;

        /* Strict: every key known, none missing. */
        if (json_check_keys(o, b.version >= 2 ? blob_keys_v2 : blob_keys_v1) < 0)
                return -EBADMSG;

        if (guid_parse(json_get_string(o, "vmk_id"), &b.vmk_id) < 0 || guid_is_null(&b.vmk_id))
                return -EBADMSG;
        if (b.version >= 2 && parse_key_checks(o, &b) < 0)
                return -EBADMSG;
        if (json_get_time(o, "created", &b.created) < 0)
                return -EBADMSG;
        if (!json_object_object_get_ex(o, "noda", &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        b.noda = json_object_get_boolean(v);

        r = parse_pcrs(o, &b);
        if (r < 0)
                return r;
        r = parse_sealed(o, &b, &m);
        if (r < 0)
                return r;

        if (hex_decode_fixed(json_get_string(o, "digest"), expected, sizeof(expected)) < 0)
                return -EBADMSG;
        r = blob_digest(&b, &m, digest);
        if (r < 0)
                return r;
        if (memcmp(digest, expected, sizeof(digest)) != 0)
                return -EBADMSG;

        *ret = b;
        return 0;
}

int vmk_blob_read(const char *path, VmkBlob *ret) {
        _cleanup_free_ char *json = NULL;
        size_t size;
        int r;

        r = read_file_full(path, VMK_BLOB_SIZE_MAX, &json, &size);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        return vmk_blob_from_json(json, size, ret);
}

bool vmk_blob_matches(const VmkBlob *b, const uint8_t vmk[static VMK_SIZE], bool previous) {
        uint8_t kcv[VMK_KEY_CHECK_SIZE];

        if (previous && !b->has_previous)
                return false;
        if (vmk_key_check_value(vmk, kcv) < 0)
                return false;
        return memeq_secure(kcv, previous ? b->previous_key_check : b->key_check, sizeof(kcv));
}

int vmk_blob_write(const VmkBlob *b, const char *path) {
        _cleanup_free_ char *json = NULL;
        int r;

        r = vmk_blob_to_json(b, &json);
        if (r < 0)
                return r;
        return write_file_atomic(path, json, strlen(json), 0600);
}

/* All zeroes is never a generated key: it is what a wiped buffer looks like (secure memory reads as
 * zeroes in a forked child), and sealing it would lose the real one. */
static bool vmk_is_zero(const uint8_t vmk[static VMK_SIZE]) {
        uint8_t any = 0;

        for (size_t i = 0; i < VMK_SIZE; i++)
                any |= vmk[i];
        return any == 0;
}

int vmk_seal(Tpm2Context *c, const VmkSealParams *p, const char *path, VmkBlob *ret_blob) {
        _cleanup_secure_ void *check = NULL;
        _cleanup_secure_ uint8_t *secret = NULL;
        VmkBlob b = {
                .version = VMK_BLOB_VERSION,
                .created = (uint64_t) time(NULL),
                .noda = true, /* no PIN: a wrong-PCR unseal must not count against the DA lockout */
                .has_previous = !!p->previous,
        };
        VmkBlob existing;
        const TPM2B_NAME *pinned = NULL;
        size_t size = p->previous ? 2 * VMK_SIZE : VMK_SIZE, n = 0;
        int r;

        if (vmk_is_zero(p->vmk) || (p->previous && (vmk_is_zero(p->previous) || !p->previous_id ||
                                                     guid_is_null(p->previous_id))))
                return -EINVAL;
        /* No path seals below the floor (the configured minimum is the daemon's to add). */
        r = pcr_floor_check(p->pcr_mask, /* min_mask= */ 0, NULL);
        if (r < 0)
                return r;

        /* The SRK of the sealed state in place is the only one this server seals to: a key that
         * appeared at its handle since is an interposer's or another TPM's, and the salt of the
         * session would be encrypted to it. */
        if (!p->repin_srk) {
                r = vmk_blob_read(path, &existing);
                if (r >= 0)
                        pinned = &existing.sealed.srk_name;
                else if (r != -ENOENT)
                        return r == -EPROTONOSUPPORT ? r : -EBADMSG;
        } else
                pinned = p->expect_srk;

        if (p->vmk_id)
                b.vmk_id = *p->vmk_id;
        else {
                r = guid_generate(&b.vmk_id);
                if (r < 0)
                        return r;
        }
        r = vmk_key_check_value(p->vmk, b.key_check);
        if (r < 0)
                return r;
        if (p->previous) {
                if (guid_equal(p->previous_id, &b.vmk_id))
                        return -EINVAL;
                b.previous_id = *p->previous_id;
                r = vmk_key_check_value(p->previous, b.previous_key_check);
                if (r < 0)
                        return r;
        }

        secret = secure_alloc(size);
        if (!secret)
                return negative_errno();
        memcpy(secret, p->vmk, VMK_SIZE);
        if (p->previous)
                memcpy(secret + VMK_SIZE, p->previous, VMK_SIZE);

        r = tpm2_pcr_read_values(c, p->bank, p->pcr_mask, &b.pcrs);
        if (r < 0)
                return r;
        r = tpm2_seal(c, &b.pcrs, b.noda, secret, size, pinned, &b.sealed);
        if (r < 0)
                return r;

        /* Prove the new blob opens before anything depends on it (a PCR that moved between the read
         * and the seal shows up here, not at the next boot). */
        r = tpm2_unseal(c, &b.pcrs, &b.sealed, &check, &n, NULL);
        if (r < 0)
                return r;
        if (n != size || !memeq_secure(check, secret, size))
                return -EIO;

        r = vmk_blob_write(&b, path);
        if (r < 0)
                return r;
        if (ret_blob)
                *ret_blob = b;
        return 0;
}

int vmk_seal_to_file(Tpm2Context *c, const uint8_t vmk[static VMK_SIZE], const Guid *identity,
                     TPMI_ALG_HASH bank, uint32_t pcr_mask, const char *path, VmkBlob *ret_blob) {
        return vmk_seal(c, &(VmkSealParams) { .vmk = vmk, .vmk_id = identity, .bank = bank, .pcr_mask = pcr_mask },
                        path, ret_blob);
}

int vmk_unseal_from_file_full(Tpm2Context *c, const char *path, uint8_t **ret_vmk, uint8_t **ret_previous,
                              VmkBlob *ret_blob, uint32_t *ret_changed_pcrs) {
        _cleanup_secure_ uint8_t *secret = NULL, *vmk = NULL, *previous = NULL;
        VmkBlob b;
        size_t n = 0;
        int r;

        r = vmk_blob_read(path, &b);
        if (r < 0)
                return r;
        r = tpm2_unseal(c, &b.pcrs, &b.sealed, (void **) &secret, &n, ret_changed_pcrs);
        if (r < 0)
                return r;
        if (n != (b.has_previous ? 2 * VMK_SIZE : VMK_SIZE))
                return -EBADMSG;
        vmk = secure_memdup(secret, VMK_SIZE);
        if (!vmk)
                return negative_errno();
        if (b.has_previous) {
                previous = secure_memdup(secret + VMK_SIZE, VMK_SIZE);
                if (!previous)
                        return negative_errno();
        }

        if (b.version < 2)
                /* Trust on first use: the TPM gave it, under the policy it was sealed with. */
                r = vmk_key_check_value(vmk, b.key_check);
        else if (!vmk_blob_matches(&b, vmk, false) || (previous && !vmk_blob_matches(&b, previous, true)))
                /* The file names other keys than the TPM holds for it: not a blob sealvol wrote. */
                r = -EBADMSG;
        if (r < 0)
                return r;

        *ret_vmk = TAKE_PTR(vmk);
        if (ret_previous)
                *ret_previous = TAKE_PTR(previous);
        if (ret_blob)
                *ret_blob = b;
        return 0;
}

int vmk_unseal_from_file(Tpm2Context *c, const char *path, uint8_t **ret_vmk, VmkBlob *ret_blob,
                         uint32_t *ret_changed_pcrs) {
        return vmk_unseal_from_file_full(c, path, ret_vmk, NULL, ret_blob, ret_changed_pcrs);
}
