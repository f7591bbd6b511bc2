/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * escrow.h: where recovery passwords are sent, so that the person who needs one finds it on another
 * machine (docs/escrow.md).
 *
 *   spool  one file per recovery password in a directory, written atomically at mode 0600, CMS
 *          EnvelopedData to the DRA certificate when there is one (plain JSON only without)
 *   hook   an executable that receives the record as JSON on stdin; its exit status is the result. With
 *          a DRA certificate the password goes inside CMS to it (escrow_password_to_envelope()), the
 *          Key ID and the rest in clear around it
 *   ad     Active Directory, as Windows BitLocker does it (escrow-ad.h)
 *
 * The record is the same for every target that takes JSON (docs/escrow.md, "Record"). It holds a
 * secret, so it is built in secure memory: json-c formats everything but the password, which is
 * added to the secure copy only.
 */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"

typedef enum EscrowTarget {
        ESCROW_TARGET_SPOOL,
        ESCROW_TARGET_HOOK,
        ESCROW_TARGET_AD,
        _ESCROW_TARGET_MAX,
        _ESCROW_TARGET_INVALID = -EINVAL,
} EscrowTarget;

#define ESCROW_TARGETS_ALL ((1u << _ESCROW_TARGET_MAX) - 1)
#define ESCROW_RECORD_VERSION 1
#define ESCROW_RECORD_MAX ((size_t) 4096)
/* A record file as the spool holds it: CMS around at most ESCROW_RECORD_MAX bytes (a recipient of a
 * 4096-bit RSA key adds about 1 KiB), or a plain VMK export record. */
#define ESCROW_RECORD_FILE_MAX ((size_t) 16 * 1024)
#define ESCROW_HOSTNAME_MAX 255
#define ESCROW_HOOK_TIMEOUT_SEC_DEFAULT 30u

const char *escrow_target_to_string(EscrowTarget t);
EscrowTarget escrow_target_from_string(const char *s);
/* "spool hook ad" (spaces or commas) to a mask of 1 << EscrowTarget; "" is 0. -EINVAL for an unknown
 * name. */
int escrow_targets_from_string(const char *s, uint32_t *ret_mask);
/* The mask as "spool hook ad", malloc'd ("" for 0). */
char *escrow_targets_to_string(uint32_t mask);

/* Whether text (what a hook or a server answered) shows the recovery password: its 48 digits in
 * order, whatever separates or surrounds them. Such text is never kept, logged or shown. */
bool escrow_text_reveals_password(const char *text, const char *password);

/* One recovery password and what it opens. */
typedef struct EscrowPassword {
        const char *hostname;
        const char *machine_id;  /* /etc/machine-id, or NULL */
        const char *volume_uuid;
        const char *device;
        Guid key_id;
        Guid vmk_id;
        uint64_t created;        /* seconds since the epoch */
        const char *password;    /* canonical form; secret */
} EscrowPassword;

/* The record as JSON (docs/escrow.md), in secure memory, NUL-terminated; *ret_size excludes the NUL.
 * -EINVAL if the password is not in canonical form. */
int escrow_password_to_json(const EscrowPassword *e, char **ret, size_t *ret_size);

/* The record for a target that must index what it stores but not see the password (a hook, with a
 * DRA certificate): JSON of type "recovery-password-cms" with the members of the plain record but the
 * password in clear, and "dra_fingerprint" and "record_cms", base64 of the DER CMS EnvelopedData to
 * dra_cert whose content is escrow_password_to_json()'s record (the bytes a spool's .cms file holds).
 * Not a secret; malloc'd. */
int escrow_password_to_envelope(const EscrowPassword *e, X509 *dra_cert, char **ret);

/* The server's VMK export (vmk_export_dra(), docs/sealed-vmk.md) as an escrow record, malloc'd. Not
 * a secret: only the DRA's private key opens it. -EBADMSG if export_json is not a JSON object. */
int escrow_vmk_to_json(const char *hostname, const char *machine_id, const Guid *vmk_id, const char *export_json,
                       char **ret);

/* ---- reading records back (the DRA holder's side) ---------------------------------------------- */

typedef enum EscrowRecordType {
        ESCROW_RECORD_PASSWORD, /* "recovery-password": escrow_password_to_json() */
        ESCROW_RECORD_VMK,      /* "vmk": escrow_vmk_to_json(), the server's VMK export */
        _ESCROW_RECORD_TYPE_MAX,
        _ESCROW_RECORD_TYPE_INVALID = -EINVAL,
} EscrowRecordType;

/* A record read back. For ESCROW_RECORD_VMK only type, encrypted, hostname, machine_id and vmk_id
 * are set: the export inside is opened by vmk_import_dra(), not here. Strings are malloc'd, except
 * password, which is canonical and in secure_alloc() memory. */
typedef struct EscrowEntry {
        EscrowRecordType type;
        bool encrypted; /* it came as CMS EnvelopedData to the DRA */
        char *hostname;
        char *machine_id; /* NULL when the record has none */
        Guid vmk_id;
        char volume_uuid[GUID_STRING_MAX];
        char *device;
        Guid key_id;
        uint64_t created;
        char *password;
} EscrowEntry;

void escrow_entry_done(EscrowEntry *e);

/* Parses a plain record strictly: exactly what escrow_password_to_json() or escrow_vmk_to_json()
 * writes for this version, every field checked (canonical GUIDs and UUID, a recovery password whose
 * every block is a multiple of 11 in range, printable hostname and device, bounded sizes), unknown
 * or missing keys refused. text may hold a secret: the password never reaches json-c, which copies
 * strings into memory it frees without wiping; the caller keeps text in secure memory. Returns the
 * record's EscrowRecordType. -EBADMSG when malformed (or any other type), -EPROTONOSUPPORT for a
 * newer sealvol_escrow_version, -ENOKEY for an envelope (escrow_password_to_envelope(): it takes the
 * DRA key, escrow_entry_open()). ret is written only on success. */
int escrow_entry_from_json(const char *text, size_t size, EscrowEntry *ret);

/* A record as the spool holds it: DER CMS (opened with dra_key through dra_unwrap(), into secure
 * memory) or plain JSON, told apart by the first byte; or an envelope as a hook gets it, whose clear
 * members must be those of the record inside (read as ESCROW_RECORD_PASSWORD, encrypted). Returns the
 * EscrowRecordType. Errors, besides
 * those of escrow_entry_from_json(): -ENOKEY for CMS without dra_key, -EKEYREJECTED when dra_key is
 * not its recipient, -EBADMSG for anything that is neither, or CMS that does not decrypt. */
int escrow_entry_open(const void *data, size_t size, EVP_PKEY *dra_key, EscrowEntry *ret);
/* The same from a regular file of at most ESCROW_RECORD_FILE_MAX bytes (-EFBIG beyond), read into
 * secure memory. */
int escrow_entry_open_file(const char *path, EVP_PKEY *dra_key, EscrowEntry *ret);

/* The file name a record gets in the spool: "<volume uuid>-<KEY ID>.json" (or ".cms"). */
int escrow_spool_name(const char *volume_uuid, const Guid *key_id, bool encrypted, char **ret);
/* The other way: whether name is such a file name, and what it says (not authenticated: the record
 * itself is the authority). -EINVAL when it is not one. */
int escrow_spool_name_parse(const char *name, Guid *ret_volume_uuid, Guid *ret_key_id, bool *ret_encrypted);

/* Writes a record to dir/name atomically at mode 0600: CMS EnvelopedData (DER) to dra_cert, or data
 * itself when dra_cert is NULL. Then reads the file back and compares, so *ret_verified says the bytes
 * on disk are what was meant. The directory is created (0700) if missing; one that others can write
 * is refused (-EPERM). */
int escrow_spool_store(const char *dir, const char *name, X509 *dra_cert, const void *data, size_t size,
                       char **ret_path, bool *ret_verified);

/* Once a DRA certificate is in force, the plain password records of dir and of dir/retired/ (from
 * before it) are encrypted to it: each "<uuid>-<KEY ID>.json" that parses as the record its name says
 * is written as the ".cms" of the same name (atomically, read back), unless that exists already, and
 * only then is the plain file renamed to a hidden ".<name>.shred", overwritten with zeros, synced and
 * removed. A crash leaves the plain file, or its .shred, beside a complete .cms; the next call finishes.
 * Overwriting is all a program can do: a journalling or copy-on-write file system, an SSD or a snapshot
 * may keep the old blocks (docs/escrow.md). Files that do not parse are left as they are and counted in
 * *ret_skipped. The number encrypted in *ret_encrypted; -errno of the first failure, having tried the
 * rest. */
int escrow_spool_encrypt_plain(const char *dir, X509 *dra_cert, unsigned *ret_encrypted, unsigned *ret_skipped);

/* Runs path with the single argument verb ("store" or "verify") and data on its stdin, as spawn_run()
 * does, with timeout_sec (0: ESCROW_HOOK_TIMEOUT_SEC_DEFAULT). The first line of its output names where
 * the record went. */
int escrow_hook_run(const char *path, const char *verb, const void *data, size_t size, unsigned timeout_sec,
                    char **ret_output, char **ret_error);
