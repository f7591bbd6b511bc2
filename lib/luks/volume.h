/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volume.h: a sealvol volume: a LUKS2 device whose keyslots are sealvol's protectors, described by
 * one "sealvol" token (docs/token-format.md).
 *
 *   keyslot "tpm"       passphrase = HKDF-SHA256(VMK, volume UUID), minimal PBKDF2
 *   keyslot "recovery"  passphrase = the 48-digit recovery password as displayed
 *   keyslot "dra"       passphrase = 32 random bytes, CMS-encrypted to the DRA certificate in the token
 *
 * Every change to the protectors is crash-safe: the token journals what is in progress ("pending"
 * keyslots that are not yet trusted, "retiring" keyslots on their way out), a new keyslot is verified
 * before the token refers to it, and the old one is destroyed only after. Whoever loads the volume
 * next finishes the journal. At every moment the volume opens with its previous protectors.
 */
#pragma once

#include <libcryptsetup.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"
#include "vmk.h"

#define VOLUME_TOKEN_TYPE "sealvol"
/* Set at format time; tells an interrupted provisioning from somebody else's LUKS2 volume. */
#define VOLUME_LUKS2_SUBSYSTEM "sealvol"
/* Version 2 adds the MAC and the server recovery password's copy of the VMK, and drops version 1's
 * wrapped_vmk (the VMK under one disk's recovery password). Version 1 is read, and upgraded once the
 * VMK authenticates it. */
#define VOLUME_TOKEN_VERSION 2
#define VOLUME_TOKEN_MAC_SIZE 32
/* The server recovery password's copy of the VMK (server-recovery.h). */
#define VOLUME_SERVER_WRAP_SIZE 80
#define VOLUME_TOKEN_SIZE_MAX (32u * 1024u)
#define VOLUME_UUID_STRING_MAX 37
#define VOLUME_HOSTNAME_MAX 255
#define VOLUME_DRA_SECRET_SIZE 32
#define VOLUME_KEYSLOT_MAX 32
#define ESCROW_RECORDS_MAX 16
#define ESCROW_LOCATION_MAX 1024

/* Full-entropy inputs (VMK-derived, DRA random): the KDF adds nothing, so the cheapest one. */
#define VOLUME_PBKDF2_ITERATIONS_MIN 1000u
/* The recovery password carries 128 random bits, so its KDF is not what resists guessing. It keeps one
 * try well under a second (about 0.4 s here: PBKDF2-SHA256 derives the 64-byte keyslot key as two
 * blocks, at ~5M iterations/s), is the same on every machine, and needs no memory at the recovery
 * console (docs/token-format.md). */
#define VOLUME_RECOVERY_PBKDF2_ITERATIONS (UINT32_C(1) << 20)
/* The most a recovery keyslot may ask for (volume_set_recovery_kdf_max() may lower or raise it): a disk
 * is untrusted input, and its keyslot's cost is checked before any KDF runs. */
#define VOLUME_RECOVERY_PBKDF2_ITERATIONS_MAX (UINT32_C(1) << 22)

typedef enum ProtectorType {
        PROTECTOR_TPM,
        PROTECTOR_RECOVERY,
        PROTECTOR_DRA,
        _PROTECTOR_TYPE_MAX,
        _PROTECTOR_TYPE_INVALID = -EINVAL,
} ProtectorType;

const char *protector_type_to_string(ProtectorType t);
ProtectorType protector_type_from_string(const char *s);

typedef enum EscrowState {
        ESCROW_PENDING,
        ESCROW_DONE,
        ESCROW_FAILED,
        _ESCROW_STATE_MAX,
        _ESCROW_STATE_INVALID = -EINVAL,
} EscrowState;

const char *escrow_state_to_string(EscrowState s);

/* Where a recovery password was sent, and how that went, one record per target. Filled by the escrow
 * code (escrow.h). */
typedef struct EscrowRecord {
        char target[16]; /* "ad", "spool", "hook" */
        EscrowState state;
        uint64_t time;
        bool verified;
        char location[ESCROW_LOCATION_MAX]; /* AD object DN, spool file, hook name */
} EscrowRecord;

/* A record as the token keeps it (docs/token-format.md); strict: -EBADMSG. */
typedef struct json_object json_object;
int escrow_record_to_json(const EscrowRecord *e, json_object **ret);
int escrow_record_from_json(json_object *o, EscrowRecord *ret);
/* A list of records, at most one per target: o[key] to and from JSON (strict: -EBADMSG), and one
 * target's record replaced or added (-E2BIG beyond ESCROW_RECORDS_MAX). */
int escrow_records_to_json(const EscrowRecord *records, size_t n, json_object *o, const char *key);
int escrow_records_from_json(json_object *o, const char *key, EscrowRecord records[static ESCROW_RECORDS_MAX],
                             size_t *ret_n);
int escrow_records_set(EscrowRecord records[static ESCROW_RECORDS_MAX], size_t *n, const EscrowRecord *e);

typedef struct Protector {
        ProtectorType type;
        int keyslot;
        Guid key_id;
        uint64_t created;
        /* dra */
        uint8_t dra_fingerprint[32];
        uint8_t *dra_cms;
        size_t dra_cms_size;
        /* recovery */
        EscrowRecord escrow[ESCROW_RECORDS_MAX];
        size_t n_escrow;
        uint8_t *wrapped_password; /* the password under a VMK-derived key (AES-256-GCM); may be absent */
        size_t wrapped_password_size;
} Protector;

void protector_done(Protector *p);
/* Replaces p's record for e->target, or adds it (-E2BIG beyond ESCROW_RECORDS_MAX). */
int protector_set_escrow(Protector *p, const EscrowRecord *e);
const EscrowRecord *protector_get_escrow(const Protector *p, const char *target);

typedef struct VolumeToken {
        unsigned version;
        char volume_uuid[VOLUME_UUID_STRING_MAX];
        Guid vmk_id;
        char hostname[VOLUME_HOSTNAME_MAX + 1];
        uint64_t created;
        uint64_t updated;
        Protector protectors[_PROTECTOR_TYPE_MAX];
        bool has[_PROTECTOR_TYPE_MAX];
        /* The journal of an unfinished change. */
        Protector pending;
        bool has_pending;
        int retiring[VOLUME_KEYSLOT_MAX];
        size_t n_retiring;
        /* Version 2: the VMK wrapped under the server recovery password, so the disks of a reinstalled
         * server open with that one password (docs/token-format.md). */
        bool has_server_wrap;
        Guid server_key_id;
        uint8_t server_wrap[VOLUME_SERVER_WRAP_SIZE];
        /* Version 2: HMAC-SHA256 over the whole token under a key derived from the VMK it names
         * (volume_token_mac()); what makes it the daemon's own writing. */
        uint8_t mac[VOLUME_TOKEN_MAC_SIZE];
        /* Version 1 only: it carried the VMK under this disk's recovery password. */
        bool had_v1_wrapped_vmk;
} VolumeToken;

void volume_token_done(VolumeToken *t);

/* Always the current version, t->mac as it is. */
int volume_token_to_json(const VolumeToken *t, char **ret);
/* Strict, version 1 or 2: unknown or missing fields, duplicate or out-of-range keyslots, a keyslot used
 * twice: -EBADMSG; a newer version: -EPROTONOSUPPORT; a token written for another volume (its UUID is
 * not header_uuid): -EXDEV. Nothing here says the token is genuine: volume_authenticate() does. */
int volume_token_from_json(const char *json, size_t size, const char *header_uuid, VolumeToken *ret);
/* The MAC of t (every field but the MAC itself, in a fixed binary order) under HKDF-SHA256 of vmk
 * with the volume's UUID as salt and "sealvol token mac v2" as info. */
int volume_token_mac(const VolumeToken *t, const uint8_t vmk[static VMK_SIZE], uint8_t ret[static VOLUME_TOKEN_MAC_SIZE]);

typedef struct Volume {
        struct crypt_device *cd;
        char *device;
        int token_id;
        VolumeToken token;
        /* Once volume_authenticate() has checked the token against it: the VMK the token names, in secure
         * memory, which every token write MACs with. Without it nothing is written. */
        uint8_t *vmk;
        /* The token was version 1 and volume_authenticate() wrote it as version 2. */
        bool upgraded;
} Volume;

/* The cost a recovery keyslot may have before it is refused unrun (process-wide; default
 * VOLUME_RECOVERY_PBKDF2_ITERATIONS_MAX). */
void volume_set_recovery_kdf_max(uint32_t iterations);

Volume *volume_free(Volume *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(Volume *, volume_free);

/* Loads the header and the token, believing nothing of it yet: a journalled change is finished by
 * volume_authenticate(). Errors: -EMEDIUMTYPE not LUKS2, -EUCLEAN a LUKS2 header too damaged to load
 * (truncated, failing its checksum or libcryptsetup's validation), -ENOMSG no sealvol token, -EBADMSG
 * a malformed token (or two), -EPROTONOSUPPORT a newer token, -EXDEV a token copied from another
 * volume. */
int volume_load(const char *device, Volume **ret);

/* Checks the token with the VMK it names: its MAC (version 2), or (version 1, which has none) that its
 * tpm keyslot opens with the VMK; and that the tpm keyslot's KDF is the one sealvol writes, before it
 * runs. Then finishes a journalled change (best effort: a device that cannot be written stays as it is
 * and changes are refused with -EBUSY) and writes a version 1 token as version 2 (v->upgraded). A
 * volume authenticated once stays so. -EREMOTE: the token names another VMK; -EBADE: the token or the
 * tpm keyslot is not what the daemon wrote (tampered, or planted): nothing was changed. */
int volume_authenticate(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id);

/* Called once a new recovery password is in place and verified, and before anything relies on it
 * (provisioning: before the token is written; rotation: before the old password is destroyed). It
 * records the outcome per target in p (protector_set_escrow()), which the token then keeps. A
 * negative return aborts: the new keyslot goes, the old state stays. */
typedef int (*VolumeEscrowFn)(Volume *v, Protector *p, const char *password, void *userdata);

typedef struct VolumeProvisionParams {
        const uint8_t *vmk; /* VMK_SIZE bytes */
        Guid vmk_id;
        /* The server recovery password's copy of the VMK for the token (NULL: none yet). */
        const Guid *server_key_id;
        const uint8_t *server_wrap; /* VOLUME_SERVER_WRAP_SIZE bytes */
        const char *hostname;
        X509 *dra_cert;                     /* NULL: no DRA protector */
        const char *const *dra_extra_ekus;  /* EKU OIDs accepted besides DESIGN.md's */
        uint32_t recovery_iterations;       /* 0: VOLUME_RECOVERY_PBKDF2_ITERATIONS */
        VolumeEscrowFn escrow;              /* NULL: none */
        void *userdata;
} VolumeProvisionParams;

/* Formats device (an image file or a block device holding no signature at all, or our own interrupted
 * provisioning: -EEXIST otherwise; -EUCLEAN for a LUKS header too damaged to load, which a crash
 * inside the formatting itself can leave: the operator wipes it, e.g. wipefs -a) as a new sealvol volume, and returns its recovery password (secure
 * memory, canonical form). A DRA certificate that fails dra_cert_check() is -EKEYREJECTED, before
 * anything is written. A crash leaves either a complete volume or one volume_load() calls -ENOMSG,
 * which may be provisioned again. */
int volume_provision(const char *device, const VolumeProvisionParams *p, char **ret_recovery_password,
                     Volume **ret);

/* The passphrase of the volume's "tpm" keyslot, derived from the VMK, once the volume is authenticated
 * with it (volume_authenticate(), whose errors these are too): -EREMOTE if the volume is bound to
 * another VMK (another server), -ENOENT if it has no tpm protector. */
int volume_vmk_passphrase(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id,
                          uint8_t **ret_passphrase);

/* Opens (name != NULL: maps through device-mapper) or only verifies (name == NULL) the volume key
 * with one protector; returns the keyslot that opened. -ENOENT: no such protector; -EPERM: the
 * keyslot refused the key; -EBADE: its KDF is not one sealvol writes (refused before it runs). */
int volume_open_vmk(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, const char *name,
                    uint32_t flags);
/* One volume of volume_open_many(): where it is and what to call it; what its load and opening gave. */
typedef struct VolumeOpenItem {
        const char *device;
        const char *uuid; /* the volume expected there (-EXDEV for another), or NULL */
        const char *name; /* to map it as, or NULL: the key is only verified */
        Volume *vol;      /* as loaded (NULL: the load failed), the caller's to free */
        int result;       /* of volume_load(), or -EXDEV, or -EBUSY (an in-place encryption is unfinished), or
                           * the key's, or of volume_open_vmk() (the keyslot that opened) */
} VolumeOpenItem;

/* The VMK a token names, or why there is none (-EREMOTE: another server's). Called from any of the
 * workers at once: it must be thread-safe (the daemon unseals there, once, under its own lock). */
typedef int (*VolumeKeyFn)(const Guid *vmk_id, const uint8_t **ret_vmk, void *userdata);

/* Loads and opens items with volume_open_vmk() on up to workers threads (the calling one included;
 * at most one per two volumes), each volume independent of the others: the header read, the token's checks and the keyslot's KDF run
 * in parallel, the device-mapper step one at a time. The results are in the items. */
void volume_open_many(VolumeOpenItem *items, size_t n, unsigned workers, VolumeKeyFn key, void *userdata);

/* A malformed password fails before any KDF runs: -EINVAL / -EDOM / -ERANGE with *ret_bad_block
 * (1-8, or 0 when no single block is at fault). */
int volume_open_recovery(Volume *v, const char *password, const char *name, uint32_t flags,
                         unsigned *ret_bad_block);
/* With the DRA's private key: -EKEYREJECTED when the key is not the DRA's the volume is wrapped to. */
int volume_open_dra(Volume *v, EVP_PKEY *key, const char *name, uint32_t flags);

/* The recovery password, read back with the VMK (for escrow and its retries; BitLocker keeps it the
 * same way): -ENODATA when the volume holds no copy (after an adoption without it: rotate), -EREMOTE
 * another VMK. */
int volume_read_recovery_password(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id,
                                  char **ret_password);

/* What a crypto-erase destroyed, for the record. */
typedef struct VolumeEraseRecord {
        char volume_uuid[VOLUME_UUID_STRING_MAX];
        Guid key_ids[_PROTECTOR_TYPE_MAX];
        bool has[_PROTECTOR_TYPE_MAX];
        unsigned keyslots_destroyed;
        uint64_t header_bytes; /* overwritten with random data: both header copies and the keyslots area */
} VolumeEraseRecord;

/* Crypto-erase (decommissioning): destroys every keyslot, then overwrites the whole LUKS2 header area
 * (both header copies and the keyslots area, up to the data offset) with random bytes and syncs. The
 * data area stays, encrypted under a volume key that no longer exists anywhere. Afterwards no LUKS
 * header loads from the device (checked). -EBUSY while an in-place encryption is unfinished (part of
 * the data would stay in clear). Consumes v. */
int volume_crypto_erase(Volume *v, VolumeEraseRecord *ret);

/* The changes. Each needs the volume authenticated (volume_authenticate(), or a function here that
 * takes the VMK): -ENOKEY otherwise. */
/* Records an escrow outcome for the recovery password key_id (one header write): -ESTALE when that is
 * no longer the volume's recovery password, -EBUSY while a change is journalled. */
int volume_set_escrow(Volume *v, const Guid *key_id, const EscrowRecord *e);
/* A new recovery password, authorised by (and wrapped with) the VMK the volume is bound to. */
int volume_rotate_recovery(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, uint32_t iterations,
                           VolumeEscrowFn escrow, void *userdata, char **ret_password);
/* Binds the volume to new_vmk (a VMK rotation on this server, or adoption by a reinstalled one):
 * a new tpm keyslot, added and verified before the old one goes; the recovery password's copy follows
 * the new VMK (read back with the old one, or given as recovery_password; dropped when neither: rotate
 * it then); the token names the server recovery password's copy server_wrap of server_key_id (NULL:
 * none). Authorised by the tpm keyslot of the VMK the volume is authenticated with. */
int volume_bind_vmk(Volume *v, const uint8_t new_vmk[static VMK_SIZE], const Guid *new_vmk_id,
                    const char *recovery_password, const Guid *server_key_id, const uint8_t *server_wrap);
/* The token names the server recovery password's copy of the VMK (one header write). */
int volume_set_server_wrap(Volume *v, const Guid *server_key_id, const uint8_t server_wrap[static VOLUME_SERVER_WRAP_SIZE]);
/* Replaces (or adds) the DRA protector, wrapped to cert (checked as at provisioning), authorised by
 * the tpm keyslot. */
int volume_set_dra(Volume *v, X509 *cert, const char *const *extra_ekus);
