/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* v1-format.c: the version 1 formats as sealvol wrote them up to c270d29 (see v1-format.h). */

#include <openssl/evp.h>
#include <string.h>
#include <tss2/tss2_mu.h>

#include "encoding.h"
#include "json-util.h"
#include "v1-format.h"

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
