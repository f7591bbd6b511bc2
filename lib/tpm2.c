/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm2.c: opening the TPM by TCTI string, error mapping, and the basic ESAPI operations. */

#include <stdlib.h>
#include <string.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "log.h"
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

int tpm2_pcr_read(Tpm2Context *c, TPMI_ALG_HASH bank, unsigned index, void *ret_digest, size_t *ret_size) {
        TPML_PCR_SELECTION sel = {
                .count = 1,
                .pcrSelections[0] = { .hash = bank, .sizeofSelect = 3 },
        };
        TPML_PCR_SELECTION *sel_out = NULL;
        TPML_DIGEST *values = NULL;
        UINT32 update_counter;
        TSS2_RC rc;
        int r = 0;

        if (index > TPM2_PCR_INDEX_MAX)
                return -EINVAL;
        sel.pcrSelections[0].pcrSelect[index / 8] = (uint8_t) (1u << (index % 8));

        rc = Esys_PCR_Read(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, &update_counter, &sel_out,
                           &values);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_PCR_Read");

        /* A bank the TPM does not implement comes back as an empty selection, not an error. */
        if (values->count != 1 || values->digests[0].size > sizeof(TPMU_HA))
                r = -EOPNOTSUPP;
        else {
                memcpy(ret_digest, values->digests[0].buffer, values->digests[0].size);
                *ret_size = values->digests[0].size;
        }
        Esys_Free(sel_out);
        Esys_Free(values);
        return r;
}
