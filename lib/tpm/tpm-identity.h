/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tpm-identity.h: is this TPM one of a manufacturer we trust?
 *
 * When a TPM is replaced, sealvol pins the new TPM's storage root key. With manufacturer CAs
 * configured, it first checks the new TPM's EK certificate: the certificate chains to one of the CAs,
 * the TPM holds the certificate's key, and the SRK name to be pinned was read in a session only that
 * key can answer (tpm2_ek_prove_srk()). A software TPM, or a TPM behind an interposer that shows its
 * own SRK, fails one of the three.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <json.h>
#include <openssl/x509.h>

#include "tpm2.h"

#define TPM_IDENTITY_FINGERPRINT_SIZE 32
#define TPM_IDENTITY_NAME_TEXT_MAX 256

typedef struct TpmIdentity {
        bool have_ek_cert;
        uint8_t ek_cert_fingerprint[TPM_IDENTITY_FINGERPRINT_SIZE]; /* SHA-256 of the DER */
        /* one-line RFC 2253 text, truncated */
        char ek_cert_subject[TPM_IDENTITY_NAME_TEXT_MAX], ek_cert_issuer[TPM_IDENTITY_NAME_TEXT_MAX];
        TPM2B_NAME ek_name;
        TPM2B_NAME srk_name; /* read in the session salted to the certified EK */
} TpmIdentity;

/* Verifies the TPM behind c against anchors, the manufacturer CAs (every certificate a trust anchor,
 * partial chains; load them with dra_trust_anchors_load_file()), at time now. The RSA 2048 EK
 * certificate is read from the TPM's NV (padding after the DER is ignored), verified with
 * x509_verify_to_anchors(), and the TPM must prove it holds the key and name its SRK under that
 * proof. On success *ret describes the TPM. Every refusal comes with why in *ret_reason (malloc'd,
 * may be NULL, written only on these errors):
 *   -ENOENT        the TPM has no EK certificate;
 *   -EBADMSG       what its NV index holds is not a certificate;
 *   -EKEYREJECTED  the certificate does not chain to any of anchors (or is expired);
 *   -EOPNOTSUPP    the certified key is not RSA 2048;
 *   -EBADE         the TPM does not hold the certified EK (another TPM's certificate);
 *   -ENXIO         the TPM has no SRK (create it first, as the TPM replacement does);
 *   -ENOTUNIQ      the key at the SRK's handle is no storage key;
 *   -ENOKEY        anchors is empty: every TPM would be refused.
 * Other errors are the TPM's (tpm2_rc_to_errno()), or -ENOMEM. */
int tpm_identity_verify(Tpm2Context *c, STACK_OF(X509) *anchors, time_t now, TpmIdentity *ret, char **ret_reason);

/* The record of TPM replacements (<state>/tpm-replacements.json: {"replacements": [entry, ...]}) with
 * entry appended, as text in *ret. existing (NULL: none) is the record as read; identity (NULL: none)
 * is <state>/tpm-identity.json as read, the note of the TPM the VMK was sealed to. Both are whatever a
 * crash, a restored backup or an editor left. When identity is a note about old_srk (its "srk_name" is
 * old_srk's name in hex), it is added to entry as "old_tpm". Returns 0, or 1 when existing was there
 * but is no such record and the text starts the record again (keep existing aside); -ENOMEM. */
int tpm_replacements_append(const char *existing, size_t existing_size, const char *identity,
                            size_t identity_size, const TPM2B_NAME *old_srk, json_object *entry, char **ret);
