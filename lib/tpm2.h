/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tpm2.h: sealvol's boundary to the TPM (tpm2-tss ESAPI).
 *
 * The TPM is chosen by a TCTI string: SEALVOL_TCTI from the environment, else the configured
 * string, else device:/dev/tpmrm0 (the kernel's resource manager). Tests pass the TCTI of a
 * private swtpm the same way; there is no other test path through this code.
 *
 * TSS2_RC values never leave this module: they become -errno here, with the decoded TPM text
 * logged at debug level.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_esys.h>

#include "macro.h"

#define TPM2_TCTI_DEFAULT "device:/dev/tpmrm0"
#define TPM2_TCTI_ENV "SEALVOL_TCTI"
#define TPM2_PCR_INDEX_MAX 23u

typedef struct Tpm2Context {
        char *tcti_string;
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
} Tpm2Context;

/* Which TCTI to use: the environment overrides the configuration, which overrides the default. */
const char *tpm2_tcti_select(const char *configured);

/* Opens the TPM behind tcti (NULL: tpm2_tcti_select(NULL)). -ENODEV when there is no TPM there. */
int tpm2_context_new(const char *tcti, Tpm2Context **ret);
Tpm2Context *tpm2_context_free(Tpm2Context *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Tpm2Context *, tpm2_context_free);

/* TSS2_RC -> -errno: -ENOLCK DA lockout, -EAGAIN PCR changed / TPM busy, -EPERM policy or
 * authorisation failure, -EBADMSG integrity check failed (object from another TPM), -ENODEV or
 * -ECONNREFUSED transport failures, -ENOMEM, else -ENOTRECOVERABLE. Logs the decoded text at debug. */
int tpm2_rc_to_errno(TSS2_RC rc, const char *what);

int tpm2_get_random(Tpm2Context *c, void *buf, size_t n);

/* Reads one PCR of one bank into ret_digest (room for sizeof(TPMU_HA)), returns its size. */
int tpm2_pcr_read(Tpm2Context *c, TPMI_ALG_HASH bank, unsigned index, void *ret_digest, size_t *ret_size);
