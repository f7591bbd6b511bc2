/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm2.c: opening the TPM by TCTI string, error mapping, and the basic ESAPI operations. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "log.h"
#include "openssl-util.h"
#include "secmem.h"
#include "tpm2.h"

const char *tpm2_tcti_select(const char *configured) {
        const char *e = getenv(TPM2_TCTI_ENV);

        if (!isempty(e))
                return e;
        if (!isempty(configured))
                return configured;
        return TPM2_TCTI_DEFAULT;
}

/* The TPM's own response code without the handle/parameter/session number that format-one codes
 * carry (TPM 2.0 Part 2, 6.6.3), so it can be compared with the TPM2_RC_* constants. */
static TSS2_RC tpm2_rc_base(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        if (layer != TSS2_TPM_RC_LAYER && layer != TSS2_RESMGR_TPM_RC_LAYER)
                return rc;
        rc &= 0xFFFFu;
        if (rc & TPM2_RC_FMT1)
                return rc & (TPM2_RC_FMT1 | 0x3Fu);
        return rc;
}

/* An error of the TPM itself that is not about a handle, parameter or session of the command. */
static bool tpm2_rc_is_tpm_fmt0(TSS2_RC rc) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;

        return rc != TSS2_RC_SUCCESS && (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER) &&
               !(rc & TPM2_RC_FMT1);
}

int tpm2_rc_to_errno(TSS2_RC rc, const char *what) {
        TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
        TSS2_RC base = tpm2_rc_base(rc);
        int r;

        if (rc == TSS2_RC_SUCCESS)
                return 0;

        if (layer == TSS2_TPM_RC_LAYER || layer == TSS2_RESMGR_TPM_RC_LAYER)
                switch (base) {
                case TPM2_RC_LOCKOUT:
                        r = -ENOLCK;
                        break;
                case TPM2_RC_PCR_CHANGED:
                case TPM2_RC_RETRY:
                case TPM2_RC_YIELDED:
                case TPM2_RC_TESTING:
                        r = -EAGAIN;
                        break;
                case TPM2_RC_POLICY_FAIL:
                case TPM2_RC_AUTH_FAIL:
                case TPM2_RC_BAD_AUTH:
                case TPM2_RC_PCR:
                        r = -EPERM;
                        break;
                case TPM2_RC_INTEGRITY:
                        r = -EBADMSG;
                        break;
                case TPM2_RC_MEMORY:
                case TPM2_RC_OBJECT_MEMORY:
                case TPM2_RC_SESSION_MEMORY:
                        r = -ENOMEM;
                        break;
                default:
                        r = -ENOTRECOVERABLE;
                }
        else
                switch (rc & ~TSS2_RC_LAYER_MASK) {
                case TSS2_BASE_RC_NO_CONNECTION:
                case TSS2_BASE_RC_IO_ERROR:
                        r = -ENODEV;
                        break;
                case TSS2_BASE_RC_BAD_SEQUENCE:
                        /* ESAPI refuses every command once a response was lost on the way back
                         * (_ESYS_STATE_INTERNALERROR); we make synchronous calls only, so that is the
                         * one way here: the transport failed on an earlier command whose error was
                         * ignored (a flush). */
                        r = layer == TSS2_ESAPI_RC_LAYER ? -ENODEV : -ENOTRECOVERABLE;
                        break;
                case TSS2_BASE_RC_TRY_AGAIN:
                        r = -EAGAIN;
                        break;
                case TSS2_BASE_RC_MEMORY:
                        r = -ENOMEM;
                        break;
                case TSS2_BASE_RC_BAD_VALUE:
                case TSS2_BASE_RC_BAD_REFERENCE:
                        r = -EINVAL;
                        break;
                default:
                        r = -ENOTRECOVERABLE;
                }

        log_debug("%s: TPM error 0x%08x: %s", what, (unsigned) rc, Tss2_RC_Decode(rc));
        return r;
}

Tpm2Context *tpm2_context_free(Tpm2Context *c) {
        if (!c)
                return NULL;
        if (c->esys)
                Esys_Finalize(&c->esys);
        if (c->tcti)
                Tss2_TctiLdr_Finalize(&c->tcti);
        free(c->tcti_string);
        free(c);
        return NULL;
}

int tpm2_context_new(const char *tcti, Tpm2Context **ret) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        TSS2_RC rc;

        if (!tcti)
                tcti = tpm2_tcti_select(NULL);

        /* tpm2-tss writes its own errors to stderr; ours are logged by whoever handles them, with
         * the decoded code. An operator who wants the library's trace still sets TSS2_LOG. */
        (void) setenv("TSS2_LOG", "all+none", /* overwrite= */ 0);

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->tcti_string = strdup(tcti);
        if (!c->tcti_string)
                return -ENOMEM;

        rc = Tss2_TctiLdr_Initialize(tcti, &c->tcti);
        if (rc != TSS2_RC_SUCCESS) {
                int r = tpm2_rc_to_errno(rc, "Tss2_TctiLdr_Initialize");
                /* A TPM that is absent or not answering is a distinct, expected condition. */
                return r == -ENOTRECOVERABLE || r == -EINVAL ? -ENODEV : r;
        }

        rc = Esys_Initialize(&c->esys, c->tcti, /* abiVersion= */ NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_Initialize");

        *ret = TAKE_PTR(c);
        return 0;
}

int tpm2_get_random(Tpm2Context *c, void *buf, size_t n) {
        uint8_t *p = buf;

        while (n > 0) {
                TPM2B_DIGEST *rnd = NULL;
                size_t k = n < sizeof(rnd->buffer) ? n : sizeof(rnd->buffer);
                TSS2_RC rc;

                rc = Esys_GetRandom(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, (UINT16) k, &rnd);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_rc_to_errno(rc, "Esys_GetRandom");
                /* A TPM may return fewer bytes than asked (TPM 2.0 Part 3, 16.1); take what came. */
                k = rnd->size < k ? rnd->size : k;
                memcpy(p, rnd->buffer, k);
                explicit_bzero(rnd->buffer, sizeof(rnd->buffer));
                Esys_Free(rnd);
                if (k == 0)
                        return -EIO;
                p += k;
                n -= k;
        }
        return 0;
}

static void pcr_selection_from_mask(TPMI_ALG_HASH bank, uint32_t mask, TPML_PCR_SELECTION *ret) {
        *ret = (TPML_PCR_SELECTION) {
                .count = 1,
                .pcrSelections[0] = { .hash = bank, .sizeofSelect = 3 },
        };
        for (unsigned i = 0; i < 3; i++)
                ret->pcrSelections[0].pcrSelect[i] = (uint8_t) (mask >> (8 * i));
}

static uint32_t pcr_selection_to_mask(const TPMS_PCR_SELECTION *s) {
        uint32_t mask = 0;

        for (unsigned i = 0; i < s->sizeofSelect && i < 3; i++)
                mask |= (uint32_t) s->pcrSelect[i] << (8 * i);
        return mask;
}

static uint16_t hash_alg_size(TPMI_ALG_HASH alg) {
        switch (alg) {
        case TPM2_ALG_SHA1:
                return TPM2_SHA1_DIGEST_SIZE;
        case TPM2_ALG_SHA256:
                return TPM2_SHA256_DIGEST_SIZE;
        case TPM2_ALG_SHA384:
                return TPM2_SHA384_DIGEST_SIZE;
        case TPM2_ALG_SHA512:
                return TPM2_SHA512_DIGEST_SIZE;
        default:
                return 0;
        }
}

static const struct {
        TPMI_ALG_HASH alg;
        const char *name;
} hash_algs[] = {
        { TPM2_ALG_SHA1, "sha1" },
        { TPM2_ALG_SHA256, "sha256" },
        { TPM2_ALG_SHA384, "sha384" },
        { TPM2_ALG_SHA512, "sha512" },
};

const char *tpm2_hash_alg_to_string(TPMI_ALG_HASH alg) {
        for (size_t i = 0; i < ELEMENTSOF(hash_algs); i++)
                if (hash_algs[i].alg == alg)
                        return hash_algs[i].name;
        return NULL;
}

int tpm2_hash_alg_from_string(const char *s, TPMI_ALG_HASH *ret) {
        for (size_t i = 0; i < ELEMENTSOF(hash_algs); i++)
                if (streq_ptr(s, hash_algs[i].name)) {
                        *ret = hash_algs[i].alg;
                        return 0;
                }
        return -EINVAL;
}

char *tpm2_pcr_mask_to_string(uint32_t mask, char *buf, size_t size) {
        size_t n = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';
        for (unsigned i = 0; i <= TPM2_PCR_INDEX_MAX; i++) {
                int k;

                if (!(mask & (UINT32_C(1) << i)))
                        continue;
                k = snprintf(buf + n, size - n, "%s%u", n > 0 ? "," : "", i);
                if (k < 0 || (size_t) k >= size - n)
                        break;
                n += (size_t) k;
        }
        return buf;
}

int tpm2_pcr_mask_from_string(const char *s, uint32_t *ret) {
        uint32_t mask = 0;

        if (isempty(s))
                return -EINVAL;
        for (const char *p = s;;) {
                char *end;
                unsigned long v;

                if (*p < '0' || *p > '9')
                        return -EINVAL;
                errno = 0;
                v = strtoul(p, &end, 10);
                if (errno != 0 || v > TPM2_PCR_INDEX_MAX)
                        return -EINVAL;
                mask |= UINT32_C(1) << v;
                if (*end == '\0')
                        break;
                if (*end != ',' && *end != '+')
                        return -EINVAL;
                p = end + 1;
        }
        *ret = mask;
        return 0;
}

int tpm2_pcr_read_values(Tpm2Context *c, TPMI_ALG_HASH bank, uint32_t mask, Tpm2PcrValues *ret) {
        Tpm2PcrValues v = { .bank = bank, .mask = mask, .digest_size = hash_alg_size(bank) };
        uint32_t remaining = mask;

        if (v.digest_size == 0)
                return -EOPNOTSUPP;
        if (mask == 0 || (mask & ~TPM2_PCR_MASK_ALL))
                return -EINVAL;

        /* One PCR_Read returns at most 8 digests (TPM 2.0 Part 3, 22.4): ask again for the rest. */
        while (remaining != 0) {
                TPML_PCR_SELECTION sel, *sel_out = NULL;
                TPML_DIGEST *values = NULL;
                UINT32 update_counter;
                uint32_t got;
                unsigned k = 0;
                TSS2_RC rc;

                pcr_selection_from_mask(bank, remaining, &sel);
                rc = Esys_PCR_Read(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &update_counter,
                                   &sel_out, &values);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_rc_to_errno(rc, "Esys_PCR_Read");

                got = sel_out->count == 1 ? pcr_selection_to_mask(&sel_out->pcrSelections[0]) & remaining : 0;
                for (unsigned i = 0; i <= TPM2_PCR_INDEX_MAX && got; i++) {
                        if (!(got & (UINT32_C(1) << i)))
                                continue;
                        if (k >= values->count || values->digests[k].size != v.digest_size) {
                                got = 0;
                                break;
                        }
                        memcpy(v.digests[i], values->digests[k].buffer, v.digest_size);
                        k++;
                }
                Esys_Free(sel_out);
                Esys_Free(values);
                /* A bank the TPM does not allocate comes back as an empty selection, not an error. */
                if (got == 0)
                        return -EOPNOTSUPP;
                remaining &= ~got;
        }

        *ret = v;
        return 0;
}

uint32_t tpm2_pcr_values_diff(const Tpm2PcrValues *a, const Tpm2PcrValues *b) {
        uint32_t diff = 0;

        for (unsigned i = 0; i <= TPM2_PCR_INDEX_MAX; i++) {
                uint32_t bit = UINT32_C(1) << i;

                if (!((a->mask | b->mask) & bit))
                        continue;
                if ((a->mask & bit) != (b->mask & bit) || a->digest_size != b->digest_size ||
                    memcmp(a->digests[i], b->digests[i], a->digest_size) != 0)
                        diff |= bit;
        }
        return diff;
}

static void flush_handle(Tpm2Context *c, ESYS_TR *h) {
        if (*h != ESYS_TR_NONE)
                (void) Esys_FlushContext(c->esys, *h);
        *h = ESYS_TR_NONE;
}

/* TCG TPM v2.0 Provisioning Guidance, SRK template: a restricted, non-duplicable ECC P-256 decryption
 * key usable without authorisation and exempt from dictionary-attack accounting. */
static const TPM2B_PUBLIC srk_template = {
        .publicArea = {
                .type = TPM2_ALG_ECC,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                    TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                .parameters.eccDetail = {
                        .symmetric = {
                                .algorithm = TPM2_ALG_AES,
                                .keyBits.aes = 128,
                                .mode.aes = TPM2_ALG_CFB,
                        },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .curveID = TPM2_ECC_NIST_P256,
                        .kdf.scheme = TPM2_ALG_NULL,
                },
        },
};

/* A primary key of hierarchy (empty authorisation) from template, transient; nothing of the creation
 * data is kept. */
static int primary_create(Tpm2Context *c, ESYS_TR hierarchy, const TPM2B_PUBLIC *template, const char *what,
                          ESYS_TR *ret) {
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcrs = {};
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_CREATION_DATA *creation_data = NULL;
        TPM2B_DIGEST *creation_hash = NULL;
        TPMT_TK_CREATION *ticket = NULL;
        TSS2_RC rc;

        rc = Esys_CreatePrimary(c->esys, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                template, &outside, &creation_pcrs, ret, &pub, &creation_data, &creation_hash,
                                &ticket);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, what);
        Esys_Free(pub);
        Esys_Free(creation_data);
        Esys_Free(creation_hash);
        Esys_Free(ticket);
        return 0;
}

static int srk_create(Tpm2Context *c, ESYS_TR *ret) {
        ESYS_TR transient = ESYS_TR_NONE, persistent = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        r = primary_create(c, ESYS_TR_RH_OWNER, &srk_template, "Esys_CreatePrimary (SRK)", &transient);
        if (r < 0)
                return r;

        rc = Esys_EvictControl(c->esys, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, TPM2_SRK_HANDLE, &persistent);
        flush_handle(c, &transient);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_EvictControl (SRK)");

        *ret = persistent;
        return 0;
}

/* An SRK somebody else persisted (systemd, tpm2-tools) is fine if it is a storage key: restricted,
 * decrypting, non-signing, bound to this TPM. */
static bool srk_public_is_storage_key(const TPMT_PUBLIC *p) {
        TPMA_OBJECT need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
                           TPMA_OBJECT_FIXEDPARENT;

        if ((p->objectAttributes & need) == need && !(p->objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) &&
            (p->type == TPM2_ALG_ECC || p->type == TPM2_ALG_RSA))
                return true;
        log_debug("Object at 0x%08x is not a storage root key (type 0x%04x, attributes 0x%08x).",
                  (unsigned) TPM2_SRK_HANDLE, p->type, p->objectAttributes);
        return false;
}

static int srk_check(Tpm2Context *c, ESYS_TR srk) {
        TPM2B_PUBLIC *pub = NULL;
        TSS2_RC rc;
        int r = 0;

        rc = Esys_ReadPublic(c->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_ReadPublic (SRK)");
        if (!srk_public_is_storage_key(&pub->publicArea))
                r = -ENOTUNIQ;
        Esys_Free(pub);
        return r;
}

int tpm2_srk_get(Tpm2Context *c, bool create, ESYS_TR *ret_srk) {
        ESYS_TR srk = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        rc = Esys_TR_FromTPMPublic(c->esys, TPM2_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &srk);
        if (rc == TSS2_RC_SUCCESS) {
                if (create) {
                        r = srk_check(c, srk);
                        if (r < 0) {
                                (void) Esys_TR_Close(c->esys, &srk);
                                return r;
                        }
                }
                *ret_srk = srk;
                return 0;
        }
        if (tpm2_rc_base(rc) != TPM2_RC_HANDLE)
                return tpm2_rc_to_errno(rc, "Esys_TR_FromTPMPublic (SRK)");
        if (!create)
                return -ENXIO;

        log_debug("No SRK at 0x%08x, creating one.", (unsigned) TPM2_SRK_HANDLE);
        return srk_create(c, ret_srk);
}

/* A session salted with the SRK: its key is derived from a secret only this TPM can decrypt, so
 * parameter encryption under it keeps secrets off the bus (TPM 2.0 Part 1, 19.6 and 21). */
static int start_salted_session(Tpm2Context *c, ESYS_TR srk, TPM2_SE type, TPMA_SESSION attributes,
                                ESYS_TR *ret) {
        static const TPMT_SYM_DEF aes_cfb = {
                .algorithm = TPM2_ALG_AES,
                .keyBits.aes = 128,
                .mode.aes = TPM2_ALG_CFB,
        };
        ESYS_TR session = ESYS_TR_NONE;
        TSS2_RC rc;

        rc = Esys_StartAuthSession(c->esys, srk, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                   type, &aes_cfb, TPM2_ALG_SHA256, &session);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_StartAuthSession");
        rc = Esys_TRSess_SetAttributes(c->esys, session, attributes, 0xff);
        if (rc != TSS2_RC_SUCCESS) {
                flush_handle(c, &session);
                return tpm2_rc_to_errno(rc, "Esys_TRSess_SetAttributes");
        }
        *ret = session;
        return 0;
}

/* pcrDigest for PolicyPCR: the hash, with the policy's algorithm, of the selected PCR values
 * concatenated in index order (TPM 2.0 Part 3, 23.7). */
static int pcr_values_policy_digest(const Tpm2PcrValues *pcrs, TPM2B_DIGEST *ret) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned n = 0;

        if (!md)
                return -ENOMEM;
        if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
                return -EIO;
        for (unsigned i = 0; i <= TPM2_PCR_INDEX_MAX; i++)
                if ((pcrs->mask & (UINT32_C(1) << i)) &&
                    EVP_DigestUpdate(md, pcrs->digests[i], pcrs->digest_size) != 1)
                        return -EIO;
        if (EVP_DigestFinal_ex(md, ret->buffer, &n) != 1)
                return -EIO;
        ret->size = (UINT16) n;
        return 0;
}

/* The authPolicy of a PolicyPCR over exactly these values, computed by the TPM in a trial session,
 * so the formula is the TPM's own. */
static int policy_pcr_digest(Tpm2Context *c, const Tpm2PcrValues *pcrs, TPM2B_DIGEST *ret) {
        static const TPMT_SYM_DEF sym_null = { .algorithm = TPM2_ALG_NULL };
        ESYS_TR session = ESYS_TR_NONE;
        TPML_PCR_SELECTION sel;
        TPM2B_DIGEST pcr_digest, *policy = NULL;
        TSS2_RC rc;
        int r;

        r = pcr_values_policy_digest(pcrs, &pcr_digest);
        if (r < 0)
                return r;
        pcr_selection_from_mask(pcrs->bank, pcrs->mask, &sel);

        rc = Esys_StartAuthSession(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                   ESYS_TR_NONE, NULL, TPM2_SE_TRIAL, &sym_null, TPM2_ALG_SHA256, &session);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_StartAuthSession (trial)");
        rc = Esys_PolicyPCR(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pcr_digest, &sel);
        if (rc == TSS2_RC_SUCCESS)
                rc = Esys_PolicyGetDigest(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &policy);
        flush_handle(c, &session);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "PolicyPCR (trial)");

        *ret = *policy;
        Esys_Free(policy);
        return 0;
}

/* The name ESAPI holds for an object: for a key, the hash of the public area it keeps (and encrypts
 * salts to), not a name the TPM reported. */
static int object_name(Tpm2Context *c, ESYS_TR object, TPM2B_NAME *ret) {
        TPM2B_NAME *name = NULL;
        TSS2_RC rc;

        rc = Esys_TR_GetName(c->esys, object, &name);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_TR_GetName");
        *ret = *name;
        Esys_Free(name);
        return 0;
}

bool tpm2_name_equal(const TPM2B_NAME *a, const TPM2B_NAME *b) {
        return a->size == b->size && a->size <= sizeof(a->name) && memcmp(a->name, b->name, a->size) == 0;
}

int tpm2_seal(Tpm2Context *c, const Tpm2PcrValues *pcrs, bool noda, const void *secret, size_t size,
              const TPM2B_NAME *pinned_srk, Tpm2Sealed *ret) {
        TPM2B_SENSITIVE_CREATE sensitive = {};
        CLEANUP_ERASE(sensitive);
        TPM2B_PUBLIC template = {
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = TPM2_ALG_SHA256,
                        /* No userWithAuth: only the policy opens it. No sensitiveDataOrigin: the data
                         * is ours. */
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_ADMINWITHPOLICY | (noda ? TPMA_OBJECT_NODA : 0),
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                },
        };
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcrs = {};
        TPM2B_PRIVATE *priv = NULL;
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_CREATION_DATA *creation_data = NULL;
        TPM2B_DIGEST *creation_hash = NULL;
        TPMT_TK_CREATION *ticket = NULL;
        ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
        Tpm2Sealed sealed = {};
        TSS2_RC rc;
        int r;

        if (size == 0 || size > TPM2_SEALED_SECRET_MAX || size > sizeof(sensitive.sensitive.data.buffer))
                return -EINVAL;
        if (hash_alg_size(pcrs->bank) == 0 || pcrs->mask == 0 || (pcrs->mask & ~TPM2_PCR_MASK_ALL))
                return -EINVAL;

        /* A pinned SRK is never created: a missing one means a cleared or another TPM. */
        r = tpm2_srk_get(c, /* create= */ !pinned_srk, &srk);
        if (r < 0)
                return r;
        r = object_name(c, srk, &sealed.srk_name);
        /* The salt of the session below is encrypted to this key: one that is not the pinned SRK may
         * be an interposer's, who would then read the secret inside TPM2_Create. */
        if (r >= 0 && pinned_srk && !tpm2_name_equal(&sealed.srk_name, pinned_srk)) {
                log_debug("The key at 0x%08x is not the SRK the VMK is pinned to.", (unsigned) TPM2_SRK_HANDLE);
                r = -ENXIO;
        }
        if (r >= 0)
                r = policy_pcr_digest(c, pcrs, &sealed.policy);
        if (r < 0)
                goto finish;
        template.publicArea.authPolicy = sealed.policy;

        sensitive.sensitive.data.size = (UINT16) size;
        memcpy(sensitive.sensitive.data.buffer, secret, size);

        /* DECRYPT: the first command parameter (inSensitive) travels encrypted. */
        r = start_salted_session(c, srk, TPM2_SE_HMAC, TPMA_SESSION_DECRYPT | TPMA_SESSION_CONTINUESESSION,
                                 &session);
        if (r < 0)
                goto finish;
        rc = Esys_Create(c->esys, srk, session, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &template, &outside,
                         &creation_pcrs, &priv, &pub, &creation_data, &creation_hash, &ticket);
        flush_handle(c, &session);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm2_rc_to_errno(rc, "Esys_Create (sealed object)");
                goto finish;
        }

        sealed.public = *pub;
        sealed.private = *priv;
        Esys_Free(priv);
        Esys_Free(pub);
        Esys_Free(creation_data);
        Esys_Free(creation_hash);
        Esys_Free(ticket);
        *ret = sealed;
        r = 0;
finish:
        (void) Esys_TR_Close(c->esys, &srk);
        return r;
}

static int unseal_once(Tpm2Context *c, ESYS_TR srk, ESYS_TR object, const Tpm2PcrValues *pcrs,
                       void **ret_secret, size_t *ret_size, TSS2_RC *ret_rc) {
        ESYS_TR session = ESYS_TR_NONE;
        TPML_PCR_SELECTION sel;
        TPM2B_DIGEST empty = {};
        TPM2B_SENSITIVE_DATA *out = NULL;
        void *secret;
        TSS2_RC rc;
        int r;

        /* ENCRYPT: the first response parameter (the unsealed data) travels encrypted. */
        r = start_salted_session(c, srk, TPM2_SE_POLICY, TPMA_SESSION_ENCRYPT, &session);
        if (r < 0)
                return r;

        /* An empty pcrDigest makes the TPM use the PCRs' current values; the result matches the
         * object's authPolicy only if they equal the sealed ones. */
        pcr_selection_from_mask(pcrs->bank, pcrs->mask, &sel);
        rc = Esys_PolicyPCR(c->esys, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty, &sel);
        if (rc == TSS2_RC_SUCCESS)
                rc = Esys_Unseal(c->esys, object, session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
        /* The session is not continued, so the TPM flushed it with the command; flush only on error. */
        if (rc != TSS2_RC_SUCCESS) {
                flush_handle(c, &session);
                *ret_rc = rc;
                return tpm2_rc_to_errno(rc, "Unseal");
        }

        secret = secure_memdup(out->buffer, out->size);
        *ret_size = out->size;
        explicit_bzero(out->buffer, sizeof(out->buffer));
        Esys_Free(out);
        if (!secret)
                return -errno;
        *ret_secret = secret;
        return 0;
}

int tpm2_unseal(Tpm2Context *c, const Tpm2PcrValues *pcrs, const Tpm2Sealed *sealed, void **ret_secret,
                size_t *ret_size, uint32_t *ret_changed_pcrs) {
        ESYS_TR srk = ESYS_TR_NONE, object = ESYS_TR_NONE;
        TPM2B_NAME name;
        uint32_t changed = 0;
        TSS2_RC rc;
        int r;

        if (hash_alg_size(pcrs->bank) == 0 || pcrs->mask == 0 || (pcrs->mask & ~TPM2_PCR_MASK_ALL))
                return -EINVAL;

        r = tpm2_srk_get(c, /* create= */ false, &srk);
        if (r < 0)
                return r;
        r = object_name(c, srk, &name);
        if (r < 0)
                goto finish;
        /* Another TPM, or this one after its storage hierarchy was cleared: the SRK is a new key. */
        if (!tpm2_name_equal(&name, &sealed->srk_name)) {
                r = -ENXIO;
                goto finish;
        }

        rc = Esys_Load(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sealed->private,
                       &sealed->public, &object);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm2_rc_to_errno(rc, "Esys_Load (sealed object)");
                /* The parent is the right one, so an object it refuses is a damaged one. A TPM that
                 * refuses every command (format-zero errors such as TPM_RC_FAILURE, TPM 2.0 Part 2,
                 * 6.6.3) says nothing about the object. */
                if (!IN_SET(r, -ENOLCK, -ENODEV, -ENOMEM, -EAGAIN) && !tpm2_rc_is_tpm_fmt0(rc))
                        r = -EBADMSG;
                goto finish;
        }

        for (unsigned attempt = 1;; attempt++) {
                Tpm2PcrValues now;
                TSS2_RC urc = TSS2_RC_SUCCESS;

                r = unseal_once(c, srk, object, pcrs, ret_secret, ret_size, &urc);
                if (r >= 0 || attempt >= TPM2_UNSEAL_RETRY_MAX)
                        break;
                if (tpm2_rc_base(urc) == TPM2_RC_PCR_CHANGED)
                        continue;
                if (tpm2_rc_base(urc) != TPM2_RC_POLICY_FAIL)
                        break;

                /* Say which PCRs moved. If none did, one changed and changed back: try again. */
                r = tpm2_pcr_read_values(c, pcrs->bank, pcrs->mask, &now);
                if (r < 0)
                        break;
                changed = tpm2_pcr_values_diff(pcrs, &now);
                r = -ESTALE;
                if (changed != 0)
                        break;
        }
        flush_handle(c, &object);

        if (r == -EPERM)
                r = -ESTALE;
        if (r == -ESTALE && ret_changed_pcrs)
                *ret_changed_pcrs = changed;
finish:
        (void) Esys_TR_Close(c->esys, &srk);
        return r;
}

/* Reads count TPM properties from first on and keeps those of interest: TPM_PT_PERMANENT,
 * TPM_PT_LOCKOUT_COUNTER, TPM_PT_MAX_AUTH_FAIL. Returns how many of the two lockout ones came. */
static int get_lockout_properties(Tpm2Context *c, TPM2_PT first, UINT32 count, uint32_t *permanent,
                                  uint32_t *counter, uint32_t *max_tries) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        TSS2_RC rc;
        int found = 0;

        rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                first, count, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_GetCapability (PT_VAR)");
        for (UINT32 i = 0; i < cap->data.tpmProperties.count; i++) {
                TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];

                if (p->property == TPM2_PT_PERMANENT)
                        *permanent = p->value;
                else if (p->property == TPM2_PT_LOCKOUT_COUNTER) {
                        *counter = p->value;
                        found++;
                } else if (p->property == TPM2_PT_MAX_AUTH_FAIL) {
                        *max_tries = p->value;
                        found++;
                }
        }
        Esys_Free(cap);
        return found;
}

int tpm2_get_lockout_info(Tpm2Context *c, uint32_t *ret_counter, uint32_t *ret_max_tries, bool *ret_in_lockout) {
        uint32_t counter = 0, max_tries = 0, permanent = 0;
        int r;

        /* The three are in the variable group (TPM 2.0 Part 2, 6.13): one question from PT_PERMANENT to
         * PT_MAX_AUTH_FAIL answers all of them; a TPM that answers fewer is asked for the rest. */
        r = get_lockout_properties(c, TPM2_PT_PERMANENT, TPM2_PT_MAX_AUTH_FAIL - TPM2_PT_PERMANENT + 1,
                                   &permanent, &counter, &max_tries);
        if (r >= 0 && r < 2)
                r = get_lockout_properties(c, TPM2_PT_LOCKOUT_COUNTER, 2, &permanent, &counter, &max_tries);
        if (r < 0)
                return r;

        if (ret_counter)
                *ret_counter = counter;
        if (ret_max_tries)
                *ret_max_tries = max_tries;
        if (ret_in_lockout)
                *ret_in_lockout = permanent & TPMA_PERMANENT_INLOCKOUT;
        return 0;
}

static void property_text(uint32_t v, char *out) {
        /* Four ASCII characters, big-endian, NUL-padded (TPM 2.0 Part 2, 6.13). */
        size_t n = 0;

        for (int shift = 24; shift >= 0; shift -= 8) {
                char c = (char) ((v >> shift) & 0xff);
                if (c >= 0x20 && c < 0x7f)
                        out[n++] = c;
        }
        out[n] = '\0';
}

int tpm2_get_info(Tpm2Context *c, Tpm2Info *ret) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        Tpm2Info info = {};
        char part[5];
        TPMI_YES_NO more;
        TSS2_RC rc;

        rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_GetCapability (PT_FIXED)");
        for (UINT32 i = 0; i < cap->data.tpmProperties.count; i++) {
                TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];

                switch (p->property) {
                case TPM2_PT_MANUFACTURER:
                        property_text(p->value, info.manufacturer);
                        break;
                case TPM2_PT_VENDOR_STRING_1:
                case TPM2_PT_VENDOR_STRING_2:
                case TPM2_PT_VENDOR_STRING_3:
                case TPM2_PT_VENDOR_STRING_4:
                        property_text(p->value, part);
                        strncat(info.vendor, part, sizeof(info.vendor) - strlen(info.vendor) - 1);
                        break;
                case TPM2_PT_FIRMWARE_VERSION_1:
                        info.firmware[0] = p->value;
                        break;
                case TPM2_PT_FIRMWARE_VERSION_2:
                        info.firmware[1] = p->value;
                        break;
                case TPM2_PT_REVISION:
                        info.spec_revision = p->value;
                        break;
                default:
                        break;
                }
        }
        Esys_Free(cap);
        *ret = info;
        return 0;
}

/* ---- the endorsement key: which TPM this is ------------------------------------------------- */

/* The largest NV_Read this TPM answers (TPM_PT_NV_BUFFER_MAX), at most what a TPM2B_MAX_NV_BUFFER
 * holds. A TPM that does not say is read 512 bytes at a time, a size we expect every TPM to take. */
static uint16_t nv_read_chunk_size(Tpm2Context *c) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        uint32_t v = 512;
        TSS2_RC rc;

        rc = Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES,
                                TPM2_PT_NV_BUFFER_MAX, 1, &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                (void) tpm2_rc_to_errno(rc, "Esys_GetCapability (PT_NV_BUFFER_MAX), reading 512 bytes at a time");
        else {
                if (cap->data.tpmProperties.count == 1 &&
                    cap->data.tpmProperties.tpmProperty[0].property == TPM2_PT_NV_BUFFER_MAX &&
                    cap->data.tpmProperties.tpmProperty[0].value > 0)
                        v = cap->data.tpmProperties.tpmProperty[0].value;
                Esys_Free(cap);
        }
        return (uint16_t) MIN(v, (uint32_t) sizeof(((TPM2B_MAX_NV_BUFFER *) NULL)->buffer));
}

int tpm2_ek_cert_read(Tpm2Context *c, uint8_t **ret_der, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        TPM2B_NV_PUBLIC *pub = NULL;
        ESYS_TR nv = ESYS_TR_NONE, auth;
        TPMA_NV attributes;
        uint16_t size, chunk, offset = 0;
        TSS2_RC rc;
        int r;

        if (!c || !ret_der || !ret_size)
                return -EINVAL;

        rc = Esys_TR_FromTPMPublic(c->esys, TPM2_EK_CERT_NV_INDEX, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
        if (rc != TSS2_RC_SUCCESS) {
                if (tpm2_rc_base(rc) == TPM2_RC_HANDLE)
                        return log_debug_errno(ENOENT, "No EK certificate at NV index 0x%08x.",
                                               (unsigned) TPM2_EK_CERT_NV_INDEX);
                return tpm2_rc_to_errno(rc, "Esys_TR_FromTPMPublic (EK certificate)");
        }
        rc = Esys_NV_ReadPublic(c->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL);
        if (rc != TSS2_RC_SUCCESS) {
                r = tpm2_rc_to_errno(rc, "Esys_NV_ReadPublic (EK certificate)");
                goto finish;
        }
        size = pub->nvPublic.dataSize;
        attributes = pub->nvPublic.attributes;
        Esys_Free(pub);
        /* Defined but never written: there is no certificate to read. */
        if (size == 0 || !(attributes & TPMA_NV_WRITTEN)) {
                r = log_debug_errno(ENOENT, "NV index 0x%08x holds no data.", (unsigned) TPM2_EK_CERT_NV_INDEX);
                goto finish;
        }
        if (size > TPM2_EK_CERT_MAX) {
                r = log_debug_errno(EFBIG, "NV index 0x%08x holds %u bytes, more than an EK certificate.",
                                    (unsigned) TPM2_EK_CERT_NV_INDEX, (unsigned) size);
                goto finish;
        }
        buf = malloc(size);
        if (!buf) {
                r = -ENOMEM;
                goto finish;
        }

        /* The EK Credential Profile gives the index an empty authValue; a TPM that does not let it
         * authorise reads (no TPMA_NV_AUTHREAD) may let the owner do it, whose auth is empty too on a
         * TPM nobody took ownership of. Asking the index first spares the owner's authorisation. */
        auth = (attributes & TPMA_NV_AUTHREAD) || !(attributes & TPMA_NV_OWNERREAD) ? nv : ESYS_TR_RH_OWNER;
        chunk = nv_read_chunk_size(c);
        while (offset < size) {
                TPM2B_MAX_NV_BUFFER *data = NULL;
                uint16_t n = MIN(chunk, (uint16_t) (size - offset));

                rc = Esys_NV_Read(c->esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n, offset, &data);
                if (rc != TSS2_RC_SUCCESS && auth == nv && (attributes & TPMA_NV_OWNERREAD) &&
                    (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
                        (void) tpm2_rc_to_errno(rc, "Esys_NV_Read (EK certificate), trying the owner hierarchy");
                        auth = ESYS_TR_RH_OWNER;
                        continue;
                }
                if (rc != TSS2_RC_SUCCESS) {
                        r = tpm2_rc_to_errno(rc, "Esys_NV_Read (EK certificate)");
                        goto finish;
                }
                if (data->size != n) {
                        Esys_Free(data);
                        r = log_debug_errno(EIO, "NV_Read returned %u bytes instead of %u.", (unsigned) data->size,
                                            (unsigned) n);
                        goto finish;
                }
                memcpy(buf + offset, data->buffer, n);
                Esys_Free(data);
                offset += n;
        }

        *ret_der = TAKE_PTR(buf);
        *ret_size = size;
        r = 0;
finish:
        (void) Esys_TR_Close(c->esys, &nv);
        return r;
}

/* TCG EK Credential Profile 2.0, annex B, template L-1: the RSA 2048 EK, usable only in a
 * policy session with PolicySecret(TPM_RH_ENDORSEMENT) (this authPolicy), and as the key a
 * session's salt is encrypted to. With unique = 256 zero bytes the TPM derives it from its EPS,
 * so every CreatePrimary from this template gives the same key until the EPS changes. */
static const TPM2B_PUBLIC ek_rsa2048_template = {
        .publicArea = {
                .type = TPM2_ALG_RSA,
                .nameAlg = TPM2_ALG_SHA256,
                .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                    TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                                    TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                .authPolicy = {
                        .size = 32,
                        .buffer = { 0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc,
                                    0x8d, 0x46, 0xa5, 0xd7, 0x24, 0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52,
                                    0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa },
                },
                .parameters.rsaDetail = {
                        .symmetric = {
                                .algorithm = TPM2_ALG_AES,
                                .keyBits.aes = 128,
                                .mode.aes = TPM2_ALG_CFB,
                        },
                        .scheme.scheme = TPM2_ALG_NULL,
                        .keyBits = 2048,
                        .exponent = 0,
                },
                .unique.rsa.size = TPM2_EK_RSA2048_MODULUS_SIZE,
        },
};

/* The name of a public area: nameAlg || H_nameAlg(TPMT_PUBLIC) (TPM 2.0 Part 1, "Names"). SHA-256 only,
 * the nameAlg of every template here. */
static int public_name(const TPMT_PUBLIC *p, TPM2B_NAME *ret) {
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t n = 0;
        unsigned md_size = 0;
        TSS2_RC rc;

        if (p->nameAlg != TPM2_ALG_SHA256)
                return -EOPNOTSUPP;
        rc = Tss2_MU_TPMT_PUBLIC_Marshal(p, buf, sizeof(buf), &n);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Tss2_MU_TPMT_PUBLIC_Marshal");
        ret->name[0] = (uint8_t) (TPM2_ALG_SHA256 >> 8);
        ret->name[1] = (uint8_t) TPM2_ALG_SHA256;
        if (EVP_Digest(buf, n, ret->name + 2, &md_size, EVP_sha256(), NULL) != 1 ||
            md_size != TPM2_SHA256_DIGEST_SIZE)
                return log_openssl_errors(-EIO, "Failed to hash a public area");
        ret->size = (UINT16) (2 + md_size);
        return 0;
}

/* The EK with the name want (the certified key in template L-1): the persistent one when it is that
 * key, else made again by CreatePrimary (*ret_transient set, flush it). -EBADE when the TPM's EK is
 * another key. The comparison is with the name ESAPI computes from the public area it keeps, which is
 * the one the session's salt is encrypted to: whatever answered the commands so far, the salt can
 * only be decrypted with the certified key's private part. */
static int ek_get(Tpm2Context *c, const TPM2B_NAME *want, ESYS_TR *ret, bool *ret_transient) {
        ESYS_TR ek = ESYS_TR_NONE;
        TPM2B_NAME name;
        TSS2_RC rc;
        int r;

        rc = Esys_TR_FromTPMPublic(c->esys, TPM2_EK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &ek);
        if (rc == TSS2_RC_SUCCESS) {
                r = object_name(c, ek, &name);
                if (r >= 0 && tpm2_name_equal(&name, want)) {
                        *ret = ek;
                        *ret_transient = false;
                        return 0;
                }
                (void) Esys_TR_Close(c->esys, &ek);
                if (r < 0)
                        return r;
                /* Another template (an ECC EK, a signing EK of template H) or a stale key: the EK
                 * itself is still derivable. */
                log_debug("The key at 0x%08x is not the certified EK, creating the EK from its template.",
                          (unsigned) TPM2_EK_HANDLE);
        } else if (tpm2_rc_base(rc) != TPM2_RC_HANDLE)
                return tpm2_rc_to_errno(rc, "Esys_TR_FromTPMPublic (EK)");

        r = primary_create(c, ESYS_TR_RH_ENDORSEMENT, &ek_rsa2048_template, "Esys_CreatePrimary (EK)", &ek);
        if (r < 0)
                return r;

        r = object_name(c, ek, &name);
        if (r >= 0 && !tpm2_name_equal(&name, want))
                r = log_debug_errno(EBADE, "The TPM's EK is not the key of the EK certificate.");
        if (r < 0) {
                flush_handle(c, &ek);
                return r;
        }
        *ret = ek;
        *ret_transient = true;
        return 0;
}

int tpm2_ek_prove_srk(Tpm2Context *c, const uint8_t *modulus, size_t modulus_size, TPM2B_NAME *ret_ek_name,
                      TPM2B_NAME *ret_srk_name) {
        TPM2B_PUBLIC want = ek_rsa2048_template, *pub = NULL;
        TPM2B_NAME ek_name, srk_name, *name = NULL;
        ESYS_TR ek = ESYS_TR_NONE, srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
        bool transient = false;
        TSS2_RC rc;
        int r;

        if (!c || !modulus || modulus_size != TPM2_EK_RSA2048_MODULUS_SIZE)
                return -EINVAL;

        memcpy(want.publicArea.unique.rsa.buffer, modulus, modulus_size);
        r = public_name(&want.publicArea, &ek_name);
        if (r < 0)
                return r;
        r = ek_get(c, &ek_name, &ek, &transient);
        if (r < 0)
                return r;

        r = tpm2_srk_get(c, /* create= */ false, &srk);
        if (r < 0)
                goto finish;

        /* ENCRYPT: the response's first parameter (the SRK's public area) comes back encrypted, and the
         * response carries an HMAC, both keyed from the salt that only the EK's private part opens. */
        r = start_salted_session(c, ek, TPM2_SE_HMAC, TPMA_SESSION_ENCRYPT, &session);
        if (r < 0)
                goto finish;
        rc = Esys_ReadPublic(c->esys, srk, session, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name, NULL);
        /* ESAPI checks the response HMAC of every session, auth or encrypt-only alike
         * (iesys_check_response() -> iesys_check_rp_hmacs()), failing with ESYS_RC_RSP_AUTH_FAILED;
         * test-tpm-identity changes one bit of this answer to show it. */
        if (rc != TSS2_RC_SUCCESS) {
                /* Not continued: the TPM flushed the session with a command it ran. */
                flush_handle(c, &session);
                r = tpm2_rc_to_errno(rc, "Esys_ReadPublic (SRK, in the session salted to the EK)");
                if (rc == TSS2_ESYS_RC_RSP_AUTH_FAILED)
                        r = log_debug_errno(EBADE, "The answer was not made with the EK's private key.");
                goto finish;
        }

        /* Both travelled under the HMAC; ESAPI does not check that one is the hash of the other. */
        r = public_name(&pub->publicArea, &srk_name);
        if (r >= 0 && !tpm2_name_equal(&srk_name, name))
                r = log_debug_errno(EBADMSG, "The TPM reported a name that is not its SRK's.");
        /* fixedTPM and fixedParent: a key the TPM made and keeps, never one imported from outside. */
        if (r >= 0 && !srk_public_is_storage_key(&pub->publicArea))
                r = -ENOTUNIQ;
        Esys_Free(pub);
        Esys_Free(name);
        if (r < 0)
                goto finish;

        if (ret_ek_name)
                *ret_ek_name = ek_name;
        if (ret_srk_name)
                *ret_srk_name = srk_name;
        r = 0;
finish:
        if (srk != ESYS_TR_NONE)
                (void) Esys_TR_Close(c->esys, &srk);
        if (transient)
                flush_handle(c, &ek);
        else
                (void) Esys_TR_Close(c->esys, &ek);
        return r;
}
