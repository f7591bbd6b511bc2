/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vmk.h: the volume master key, one per server.
 *
 * The VMK is 256 random bits, sealed to the TPM under a PCR policy. Its sealed form lives in a
 * versioned JSON file in the state directory (docs/sealed-vmk.md); the file holds nothing secret:
 * the TPM-encrypted object, the PCR values it is bound to, and the VMK's identity. Each volume's
 * "tpm" keyslot passphrase is derived from the VMK in software, so one unseal opens every volume.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "guid.h"
#include "tpm2.h"

#define VMK_SIZE 32
#define VMK_KEYSLOT_PASSPHRASE_SIZE 32
#define VMK_BLOB_VERSION 2
#define VMK_BLOB_SIZE_MAX (64u * 1024u)
#define VMK_EXPORT_VERSION 1
#define VMK_KEY_CHECK_SIZE 16
/* Sealing default: PCR 7 (Secure Boot policy) of the SHA-256 bank, as BitLocker does on UEFI. */
#define VMK_PCR_MASK_DEFAULT (UINT32_C(1) << 7)

/* The sealed state. Version 2 names the VMK by its key check value as well as its id, so a VMK that
 * comes from anywhere but the TPM (a recovery, the DRA export) is accepted only if it is this one; and
 * it may carry the previous VMK beside the current one while a rotation re-binds the volumes (both in
 * one sealed object: one unseal per boot still opens every volume). A version 1 blob has neither and
 * is upgraded by the daemon once the TPM has opened it. */
typedef struct VmkBlob {
        unsigned version;
        Guid vmk_id;        /* which VMK: tokens of volumes bound to it name this */
        uint8_t key_check[VMK_KEY_CHECK_SIZE]; /* vmk_key_check_value() of it */
        bool has_previous;  /* a rotation is re-binding volumes from the previous VMK */
        Guid previous_id;
        uint8_t previous_key_check[VMK_KEY_CHECK_SIZE];
        uint64_t created;   /* seconds since the epoch, UTC */
        bool noda;
        Tpm2PcrValues pcrs; /* the values the policy is bound to */
        Tpm2Sealed sealed;
} VmkBlob;

/* 256 bits from OpenSSL's private generator, in secure memory. */
int vmk_generate(uint8_t **ret_vmk);

typedef struct VmkSealParams {
        const uint8_t *vmk;      /* VMK_SIZE bytes */
        const Guid *vmk_id;      /* NULL: a new identity */
        const uint8_t *previous; /* NULL: no rotation under way */
        const Guid *previous_id;
        TPMI_ALG_HASH bank;
        uint32_t pcr_mask;
        /* Only the SRK that the existing sealed state names is sealed to; true only when the operator
         * replaces the TPM (or its storage hierarchy was cleared) on purpose. */
        bool repin_srk;
        /* With repin_srk: the key at the SRK handle must have this name (the one the TPM's certified
         * EK vouched for, tpm_identity_verify()), never created; NULL: whichever is there, or a new one. */
        const TPM2B_NAME *expect_srk;
} VmkSealParams;

/* Seals the VMK (and the previous one, if any) under the current values of the PCRs in pcr_mask of
 * bank, unseals it once to prove the blob works, and only then writes it to path atomically (0600).
 * If path already holds a sealed state, the SRK it names is pinned (tpm2_seal()): -ENXIO when the
 * TPM's key differs, and -EBADMSG when that state is damaged, unless repin_srk. */
int vmk_seal(Tpm2Context *c, const VmkSealParams *p, const char *path, VmkBlob *ret_blob);
/* vmk_seal() of one VMK, no rotation, the SRK pinned as there. */
int vmk_seal_to_file(Tpm2Context *c, const uint8_t vmk[static VMK_SIZE], const Guid *identity,
                     TPMI_ALG_HASH bank, uint32_t pcr_mask, const char *path, VmkBlob *ret_blob);

/* Reads and unseals path. Errors as tpm2_unseal(), plus: -ENOENT no blob, -EBADMSG a malformed or
 * damaged blob, or one whose sealed object holds other keys than it names (a key check value that
 * does not match), -EPROTONOSUPPORT a blob version newer than this code. ret_previous, when given,
 * gets the previous VMK of a rotation under way (NULL if none). A version 1 blob gets its key check
 * value from the key the TPM gave (ret_blob->version stays 1; vmk_blob_write() upgrades the file). */
int vmk_unseal_from_file(Tpm2Context *c, const char *path, uint8_t **ret_vmk, VmkBlob *ret_blob,
                         uint32_t *ret_changed_pcrs);
int vmk_unseal_from_file_full(Tpm2Context *c, const char *path, uint8_t **ret_vmk, uint8_t **ret_previous,
                              VmkBlob *ret_blob, uint32_t *ret_changed_pcrs);
/* Writes b as the current version to path atomically (0600); nothing is sealed again. */
int vmk_blob_write(const VmkBlob *b, const char *path);
/* Whether vmk is the key b names as current (previous: as the previous one), by its key check value
 * compared in constant time. */
bool vmk_blob_matches(const VmkBlob *b, const uint8_t vmk[static VMK_SIZE], bool previous);

int vmk_blob_to_json(const VmkBlob *b, char **ret);
int vmk_blob_from_json(const char *json, size_t size, VmkBlob *ret);
int vmk_blob_read(const char *path, VmkBlob *ret);

/* The passphrase of a volume's "tpm" keyslot: HKDF-SHA256 (RFC 5869) with the VMK as input key,
 * the volume's LUKS UUID (canonical lowercase text) as salt and "sealvol tpm keyslot v1" as info.
 * The UUID binds it to one volume: a keyslot copied to another disk opens nothing. */
int vmk_derive_keyslot_passphrase(const uint8_t vmk[static VMK_SIZE], const char *volume_uuid,
                                  uint8_t **ret_passphrase);

/* A 256-bit key for one purpose, derived from the VMK: HKDF-SHA256 with salt (text) and label as info.
 * In secure memory. */
int vmk_derive_key(const uint8_t vmk[static VMK_SIZE], const char *salt, const char *label, uint8_t **ret_key);

/* A value that identifies the VMK without revealing it (HKDF-SHA256 of the VMK with the info
 * "sealvol vmk check v1"): lets an imported VMK be checked before anything is sealed with it. */
int vmk_key_check_value(const uint8_t vmk[static VMK_SIZE], uint8_t ret[static VMK_KEY_CHECK_SIZE]);

/* The server-level "external key" of BitLocker's chain: the VMK wrapped to the DRA certificate as
 * CMS EnvelopedData, in a small JSON document with its identity and key check value
 * (docs/sealed-vmk.md). With the DRA private key it opens every volume of the server after the TPM
 * or the main board is lost; `openssl cms -decrypt` on its "cms" field yields the 32 VMK bytes. A
 * certificate that fails dra_cert_check() is -EKEYREJECTED. */
int vmk_export_dra(const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, X509 *cert,
                   const char *const *extra_ekus, char **ret_json);
/* -EBADMSG malformed or its key check value does not match, -EPROTONOSUPPORT newer version,
 * -EKEYREJECTED not wrapped to this key. */
int vmk_import_dra(const char *json, size_t size, EVP_PKEY *key, uint8_t **ret_vmk, Guid *ret_vmk_id);
/* The key check value an export names, without opening it (-EBADMSG, -EPROTONOSUPPORT as above). */
int vmk_export_key_check(const char *json, size_t size, uint8_t ret[static VMK_KEY_CHECK_SIZE]);
