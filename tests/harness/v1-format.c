/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* v1-format.c: the version 1 formats as sealvol wrote them up to c270d29 (see v1-format.h). */

#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "aead.h"
#include "encoding.h"
#include "json-util.h"
#include "secmem.h"
#include "v1-format.h"

static inline void crypt_freep_v1(struct crypt_device **cd) {
        crypt_free(*cd);
}

#define V1_BLOB_FORMAT "sealvol-sealed-vmk"

typedef struct V1Marshaled {
        uint8_t public[sizeof(TPM2B_PUBLIC)];
        size_t public_size;
        uint8_t private[sizeof(TPM2B_PRIVATE)];
        size_t private_size;
} V1Marshaled;

/* SHA-256 over the fields in version 1's fixed order. */
static int v1_blob_digest(const VmkBlob *b, const V1Marshaled *m, uint8_t ret[static 32]) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t header[4 + 1 + 2 + 4 + 8] = { 1, 0, 0, 0 };
        unsigned n = 0;
        int ok;

        if (!md)
                return -ENOMEM;
        header[4] = b->noda;
        header[5] = (uint8_t) b->pcrs.bank;
        header[6] = (uint8_t) (b->pcrs.bank >> 8);
        for (unsigned i = 0; i < 4; i++)
                header[7 + i] = (uint8_t) (b->pcrs.mask >> (8 * i));
        for (unsigned i = 0; i < 8; i++)
                header[11 + i] = (uint8_t) (b->created >> (8 * i));
        ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(md, V1_BLOB_FORMAT, sizeof(V1_BLOB_FORMAT)) == 1 &&
             EVP_DigestUpdate(md, header, sizeof(header)) == 1 &&
             EVP_DigestUpdate(md, b->vmk_id.bytes, sizeof(b->vmk_id.bytes)) == 1;
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

int v1_blob_to_json(const VmkBlob *b, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *pcrs, *values;
        char id[GUID_STRING_MAX], handle[16];
        uint8_t digest[32];
        V1Marshaled m = {};
        int r;

        if (!o)
                return -ENOMEM;
        if (Tss2_MU_TPM2B_PUBLIC_Marshal(&b->sealed.public, m.public, sizeof(m.public), &m.public_size) !=
                    TSS2_RC_SUCCESS ||
            Tss2_MU_TPM2B_PRIVATE_Marshal(&b->sealed.private, m.private, sizeof(m.private), &m.private_size) !=
                    TSS2_RC_SUCCESS)
                return -EINVAL;
        r = v1_blob_digest(b, &m, digest);
        if (r < 0)
                return r;
        snprintf(handle, sizeof(handle), "0x%08x", (unsigned) TPM2_SRK_HANDLE);
        if ((r = json_add_string(o, "format", V1_BLOB_FORMAT)) < 0 ||
            (r = json_add_owned(o, "version", json_object_new_int(1))) < 0 ||
            (r = json_add_string(o, "vmk_id", guid_format(&b->vmk_id, id))) < 0 ||
            (r = json_add_time(o, "created", b->created)) < 0 ||
            (r = json_add_owned(o, "noda", json_object_new_boolean(b->noda))) < 0 ||
            (r = json_add_string(o, "pcr_bank", tpm2_hash_alg_to_string(b->pcrs.bank))) < 0 ||
            (r = json_add_owned(o, "pcrs", pcrs = json_object_new_array())) < 0 ||
            (r = json_add_owned(o, "pcr_values", values = json_object_new_array())) < 0 ||
            (r = json_add_string(o, "srk_handle", handle)) < 0 ||
            (r = json_add_hex(o, "srk_name", b->sealed.srk_name.name, b->sealed.srk_name.size)) < 0 ||
            (r = json_add_hex(o, "policy", b->sealed.policy.buffer, b->sealed.policy.size)) < 0 ||
            (r = json_add_base64(o, "public", m.public, m.public_size)) < 0 ||
            (r = json_add_base64(o, "private", m.private, m.private_size)) < 0 ||
            (r = json_add_hex(o, "digest", digest, sizeof(digest))) < 0)
                return r;
        for (unsigned i = 0; i <= TPM2_PCR_INDEX_MAX; i++) {
                _cleanup_free_ char *hex = NULL;

                if (!(b->pcrs.mask & (UINT32_C(1) << i)))
                        continue;
                hex = hex_encode(b->pcrs.digests[i], b->pcrs.digest_size);
                if (!hex || json_object_array_add(pcrs, json_object_new_int((int32_t) i)) < 0 ||
                    json_object_array_add(values, json_object_new_string(hex)) < 0)
                        return -ENOMEM;
        }
        *ret = json_format(o);
        return *ret ? 0 : -ENOMEM;
}

#define V1_SALT_SIZE 16
#define V1_HEADER_SIZE (4 + V1_SALT_SIZE)

static void v1_aad(const char *uuid, const char *key_id, const char *vmk_id, char ret[static 160]) {
        snprintf(ret, 160, "sealvol recovery v1|%s|%s|%s", uuid, key_id, vmk_id);
}

static int v1_password_key(const char *password, const uint8_t *salt, uint32_t iterations, uint8_t **ret) {
        _cleanup_secure_ uint8_t *key = secure_alloc(AEAD_KEY_SIZE);

        if (!key)
                return -ENOMEM;
        if (PKCS5_PBKDF2_HMAC(password, (int) strlen(password), salt, V1_SALT_SIZE, (int) iterations, EVP_sha256(),
                              AEAD_KEY_SIZE, key) != 1)
                return -EIO;
        *ret = TAKE_PTR(key);
        return 0;
}

static json_object *v1_recovery_protector(json_object *token) {
        json_object *protectors;

        if (!json_object_object_get_ex(token, "protectors", &protectors))
                return NULL;
        for (size_t i = 0; i < json_object_array_length(protectors); i++) {
                json_object *p = json_object_array_get_idx(protectors, i);

                if (streq_ptr(json_get_string(p, "type"), "recovery"))
                        return p;
        }
        return NULL;
}

int v1_volume_downgrade(const char *device, const uint8_t vmk[static VMK_SIZE], const char *password) {
        _cleanup_(crypt_freep_v1) struct crypt_device *cd = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_secure_ uint8_t *pw_key = NULL;
        _cleanup_free_ uint8_t *sealed = NULL, *wvmk = NULL;
        struct crypt_pbkdf_type pbkdf;
        const char *json = NULL;
        json_object *rp;
        char aad[160];
        size_t sealed_size;
        int id = -1, r;

        r = crypt_init(&cd, device);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return r;
        for (int i = 0; i < crypt_token_max(CRYPT_LUKS2); i++) {
                const char *type = NULL;

                if (crypt_token_status(cd, i, &type) != CRYPT_TOKEN_INACTIVE && streq_ptr(type, "sealvol")) {
                        id = i;
                        break;
                }
        }
        if (id < 0 || crypt_token_json_get(cd, id, &json) < 0 || json_parse_object(json, strlen(json), 8, &o) < 0)
                return -ENOMSG;
        rp = v1_recovery_protector(o);
        if (!rp)
                return -ENOENT;
        r = crypt_keyslot_get_pbkdf(cd, (int) json_object_get_int(json_object_object_get(rp, "keyslot")), &pbkdf);
        if (r < 0)
                return r;

        /* wrapped_vmk as the old code made it. */
        wvmk = malloc(V1_HEADER_SIZE + AEAD_OVERHEAD + VMK_SIZE);
        if (!wvmk)
                return -ENOMEM;
        for (unsigned i = 0; i < 4; i++)
                wvmk[i] = (uint8_t) (pbkdf.iterations >> (8 * i));
        if (RAND_bytes(wvmk + 4, V1_SALT_SIZE) != 1)
                return -EIO;
        r = v1_password_key(password, wvmk + 4, pbkdf.iterations, &pw_key);
        if (r < 0)
                return r;
        v1_aad(json_get_string(o, "volume_uuid"), json_get_string(rp, "key_id"), json_get_string(o, "vmk_id"), aad);
        r = aead_seal(pw_key, aad, strlen(aad), vmk, VMK_SIZE, &sealed, &sealed_size);
        if (r < 0)
                return r;
        memcpy(wvmk + V1_HEADER_SIZE, sealed, sealed_size);

        json_object_object_del(o, "mac");
        json_object_object_del(o, "server_recovery");
        if (json_add_owned(o, "sealvol_version", json_object_new_int(1)) < 0 ||
            json_add_base64(rp, "wrapped_vmk", wvmk, V1_HEADER_SIZE + sealed_size) < 0)
                return -ENOMEM;
        _cleanup_free_ char *text = json_format(o);
        if (!text)
                return -ENOMEM;
        r = crypt_token_json_set(cd, id, text);
        return r < 0 ? r : 0;
}

int v1_recover_vmk(const char *token_json, const char *password, uint8_t **ret_vmk) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_secure_ uint8_t *pw_key = NULL;
        _cleanup_secure_ void *vmk = NULL;
        _cleanup_free_ void *wvmk = NULL;
        json_object *rp;
        const char *b64;
        uint32_t iterations = 0;
        size_t n, size;
        char aad[160];
        int r;

        if (json_parse_object(token_json, strlen(token_json), 8, &o) < 0)
                return -EBADMSG;
        rp = v1_recovery_protector(o);
        b64 = rp ? json_get_string(rp, "wrapped_vmk") : NULL;
        if (!b64 || base64_decode(b64, &wvmk, &n) < 0 || n <= V1_HEADER_SIZE)
                return -ENODATA;
        for (unsigned i = 0; i < 4; i++)
                iterations |= (uint32_t) ((uint8_t *) wvmk)[i] << (8 * i);
        r = v1_password_key(password, (uint8_t *) wvmk + 4, iterations, &pw_key);
        if (r < 0)
                return r;
        v1_aad(json_get_string(o, "volume_uuid"), json_get_string(rp, "key_id"), json_get_string(o, "vmk_id"), aad);
        r = aead_open(pw_key, aad, strlen(aad), (uint8_t *) wvmk + V1_HEADER_SIZE, n - V1_HEADER_SIZE, &vmk, &size);
        if (r == -EBADMSG)
                return -EPERM;
        if (r < 0)
                return r;
        if (size != VMK_SIZE)
                return -EBADMSG;
        *ret_vmk = TAKE_PTR(vmk);
        return 0;
}
