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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_esys.h>

#include "macro.h"

#define TPM2_TCTI_DEFAULT "device:/dev/tpmrm0"
#define TPM2_TCTI_ENV "SEALVOL_TCTI"
#define TPM2_PCR_INDEX_MAX 23u
#define TPM2_PCR_MASK_ALL ((UINT32_C(1) << (TPM2_PCR_INDEX_MAX + 1)) - 1)
/* The TCG's well-known handle for the storage root key (TCG TPM v2.0 Provisioning Guidance). */
#define TPM2_SRK_HANDLE UINT32_C(0x81000001)
/* Where the RSA 2048 EK (template L-1) persists (TCG TPM v2.0 Provisioning Guidance) and where its
 * certificate is stored (TCG EK Credential Profile 2.0, the low range of EK certificate indices). */
#define TPM2_EK_HANDLE UINT32_C(0x81010001)
#define TPM2_EK_CERT_NV_INDEX UINT32_C(0x01c00002)
/* An EK certificate is 1-2 KiB; anything much larger in its index is not one. */
#define TPM2_EK_CERT_MAX ((size_t) 8192)
#define TPM2_EK_RSA2048_MODULUS_SIZE 256u
/* A PCR that changes between PolicyPCR and Unseal makes the TPM answer TPM_RC_PCR_CHANGED; try again,
 * a bounded number of times. */
#define TPM2_UNSEAL_RETRY_MAX 5u
#define TPM2_SEALED_SECRET_MAX 128u

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

/* The values of a set of PCRs of one bank, in index order. */
typedef struct Tpm2PcrValues {
        TPMI_ALG_HASH bank;
        uint32_t mask; /* bit i set: PCR i is part of the set */
        uint16_t digest_size;
        uint8_t digests[TPM2_PCR_INDEX_MAX + 1][sizeof(TPMU_HA)];
} Tpm2PcrValues;

/* A secret sealed to the TPM: the TPM-encrypted object and what it is bound to. Nothing here is
 * secret: the private part is encrypted with the SRK's seed, which never leaves the TPM. */
typedef struct Tpm2Sealed {
        TPM2B_PUBLIC public;
        TPM2B_PRIVATE private;
        TPM2B_NAME srk_name;  /* which TPM (storage hierarchy seed) can load it */
        TPM2B_DIGEST policy;  /* PolicyPCR digest over the recorded PCR values */
} Tpm2Sealed;

/* TSS2_RC -> -errno: -ENOLCK DA lockout, -EAGAIN PCR changed / TPM busy, -EPERM policy or
 * authorisation failure, -EBADMSG integrity check failed (object from another TPM), -ENODEV or
 * -ECONNREFUSED transport failures, -ENOMEM, else -ENOTRECOVERABLE. Logs the decoded text at debug. */
int tpm2_rc_to_errno(TSS2_RC rc, const char *what);

int tpm2_get_random(Tpm2Context *c, void *buf, size_t n);

/* Reads the PCRs in mask (bit i: PCR i) of one bank. -EOPNOTSUPP if the TPM has no such bank. */
int tpm2_pcr_read_values(Tpm2Context *c, TPMI_ALG_HASH bank, uint32_t mask, Tpm2PcrValues *ret);
/* The PCRs (as a mask) whose values differ between two sets of the same selection. */
uint32_t tpm2_pcr_values_diff(const Tpm2PcrValues *a, const Tpm2PcrValues *b);
/* Formats a mask as "7" or "0,2,7" into buf. */
char *tpm2_pcr_mask_to_string(uint32_t mask, char *buf, size_t size);
int tpm2_pcr_mask_from_string(const char *s, uint32_t *ret);
int tpm2_hash_alg_from_string(const char *s, TPMI_ALG_HASH *ret);
const char *tpm2_hash_alg_to_string(TPMI_ALG_HASH alg);

/* Returns the storage root key at TPM2_SRK_HANDLE, a restricted decryption key. With create, makes
 * and persists one from the TCG's ECC P-256 SRK template when there is none (CreatePrimary +
 * EvictControl). Without create, a missing SRK is -ENXIO: this is not the TPM (or the storage
 * hierarchy was cleared). */
int tpm2_srk_get(Tpm2Context *c, bool create, ESYS_TR *ret_srk);

bool tpm2_name_equal(const TPM2B_NAME *a, const TPM2B_NAME *b);

/* Seals secret under the SRK as a keyed-hash object that can be unsealed only when the PCRs of
 * pcrs->bank in pcrs->mask hold exactly the values in pcrs (PolicyPCR). noda exempts it from the
 * dictionary-attack counter, right when no PIN guards it. The secret reaches the TPM encrypted
 * (salted session, parameter encryption). With pinned_srk, the key at TPM2_SRK_HANDLE must have that
 * name (-ENXIO otherwise: another TPM, a cleared one, or a key planted there) and is never created;
 * without, an SRK is created when there is none (the first seal, a TPM replacement). */
int tpm2_seal(Tpm2Context *c, const Tpm2PcrValues *pcrs, bool noda, const void *secret, size_t size,
              const TPM2B_NAME *pinned_srk, Tpm2Sealed *ret);

/* Unseals in a salted policy session with response encryption, so the secret never crosses the bus
 * to the TPM in clear; the result is in secure memory. Errors: -ENXIO the object belongs to another
 * TPM (SRK missing or a different one), -ESTALE the PCR values differ from pcrs (the differing PCRs
 * in *ret_changed_pcrs, which may be 0 if they changed back in between), -ENOLCK the TPM is in
 * dictionary-attack lockout, -EBADMSG the object is malformed, -ENODEV no TPM. */
int tpm2_unseal(Tpm2Context *c, const Tpm2PcrValues *pcrs, const Tpm2Sealed *sealed, void **ret_secret,
                size_t *ret_size, uint32_t *ret_changed_pcrs);

typedef struct Tpm2Info {
        char manufacturer[5]; /* TPM_PT_MANUFACTURER as text, e.g. "IBM", "INTC" */
        char vendor[17];      /* TPM_PT_VENDOR_STRING_1..4 */
        uint32_t firmware[2]; /* TPM_PT_FIRMWARE_VERSION_1, _2 */
        uint32_t spec_revision;
} Tpm2Info;

/* Who made the TPM and which firmware it runs (one GetCapability). */
int tpm2_get_info(Tpm2Context *c, Tpm2Info *ret);

/* The TPM's dictionary-attack state (TPM_PT_LOCKOUT_COUNTER / MAX_AUTH_FAIL / in lockout), in one
 * GetCapability where the TPM answers the whole range at once. */
int tpm2_get_lockout_info(Tpm2Context *c, uint32_t *ret_counter, uint32_t *ret_max_tries, bool *ret_in_lockout);

/* Reads the RSA 2048 EK certificate the manufacturer stored in NV index TPM2_EK_CERT_NV_INDEX, as
 * the TPM holds it (DER, possibly followed by padding up to the index's size), malloc'd. The read is
 * authorised by the index (empty authValue), or by the owner hierarchy (empty auth) when the index
 * does not allow it. Nothing here is authenticated: whoever answers could send any certificate, so
 * it proves nothing until tpm2_ek_prove_srk() shows the TPM holds its key. -ENOENT when there is no
 * such index or it was never written, -EFBIG above TPM2_EK_CERT_MAX bytes. */
int tpm2_ek_cert_read(Tpm2Context *c, uint8_t **ret_der, size_t *ret_size);

/* Proves that this TPM holds the private key of the RSA 2048 EK whose modulus (big-endian,
 * TPM2_EK_RSA2048_MODULUS_SIZE bytes, taken from the EK certificate) is given, and reads the name of
 * the SRK at TPM2_SRK_HANDLE in that proof: the EK is the persistent key at TPM2_EK_HANDLE when it has
 * this modulus in template L-1, else made again by CreatePrimary from that template (and flushed).
 * Then ReadPublic of the SRK runs in an HMAC session salted to the EK with response encryption: its
 * answer is HMAC'd and encrypted with a key only the holder of the EK's private key can derive, and
 * ESAPI refuses an answer whose HMAC does not match. So *ret_srk_name is the name of a storage key
 * inside the TPM the EK certificate was issued for, not what something between us and the TPM says.
 * Errors: -EBADE the TPM's EK is another key (or the answer was not made with the EK), -ENXIO no SRK,
 * -ENOTUNIQ the key at TPM2_SRK_HANDLE is no storage key, -EOPNOTSUPP an SRK whose nameAlg is not
 * SHA-256, -EINVAL a modulus of another size. */
int tpm2_ek_prove_srk(Tpm2Context *c, const uint8_t *modulus, size_t modulus_size, TPM2B_NAME *ret_ek_name,
                      TPM2B_NAME *ret_srk_name);
