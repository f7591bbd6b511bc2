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
#define VMK_BLOB_VERSION 1
#define VMK_BLOB_SIZE_MAX (64u * 1024u)
#define VMK_EXPORT_VERSION 1
#define VMK_KEY_CHECK_SIZE 16
/* Sealing default: PCR 7 (Secure Boot policy) of the SHA-256 bank, as BitLocker does on UEFI. */
#define VMK_PCR_MASK_DEFAULT (UINT32_C(1) << 7)

typedef struct VmkBlob {
        unsigned version;
        Guid vmk_id;        /* which VMK: tokens of volumes bound to it name this */
        uint64_t created;   /* seconds since the epoch, UTC */
        bool noda;
        Tpm2PcrValues pcrs; /* the values the policy is bound to */
        Tpm2Sealed sealed;
} VmkBlob;

/* 256 bits from OpenSSL's private generator, in secure memory. */
int vmk_generate(uint8_t **ret_vmk);

/* Seals vmk under the current values of the PCRs in pcr_mask of bank, unseals it once to prove the
 * blob works, and only then writes it to path atomically (0600). The identity is kept from
 * identity, or a new one is made when identity is NULL. */
int vmk_seal_to_file(Tpm2Context *c, const uint8_t vmk[static VMK_SIZE], const Guid *identity,
                     TPMI_ALG_HASH bank, uint32_t pcr_mask, const char *path, VmkBlob *ret_blob);

/* Reads and unseals path. Errors as tpm2_unseal(), plus: -ENOENT no blob, -EBADMSG a malformed or
 * damaged blob, -EPROTONOSUPPORT a blob version newer than this code. */
int vmk_unseal_from_file(Tpm2Context *c, const char *path, uint8_t **ret_vmk, VmkBlob *ret_blob,
                         uint32_t *ret_changed_pcrs);

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
