/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * escrow.h: where recovery passwords are sent, so that the person who needs one finds it on another
 * machine (docs/escrow.md).
 *
 *   spool  one file per recovery password in a directory, written atomically at mode 0600, CMS
 *          EnvelopedData to the DRA certificate when there is one (plain JSON only without)
 *   hook   an executable that receives the record as JSON on stdin; its exit status is the result
 *   ad     Active Directory, as Windows BitLocker does it (escrow-ad.h)
 *
 * The record is the same for every target that takes JSON (docs/escrow.md, "Record"). It holds a
 * secret, so it is built in secure memory: json-c formats everything but the password, which is
 * added to the secure copy only.
 */
#pragma once

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

/* The server's VMK export (vmk_export_dra(), docs/sealed-vmk.md) as an escrow record, malloc'd. Not
 * a secret: only the DRA's private key opens it. -EBADMSG if export_json is not a JSON object. */
int escrow_vmk_to_json(const char *hostname, const char *machine_id, const Guid *vmk_id, const char *export_json,
                       char **ret);

/* The file name a record gets in the spool: "<volume uuid>-<KEY ID>.json" (or ".cms"). */
int escrow_spool_name(const char *volume_uuid, const Guid *key_id, bool encrypted, char **ret);

/* Writes a record to dir/name atomically at mode 0600: CMS EnvelopedData (DER) to dra_cert, or data
 * itself when dra_cert is NULL. Then reads the file back and compares, so *ret_verified says the bytes
 * on disk are what was meant. The directory is created (0700) if missing; one that others can write
 * is refused (-EPERM). */
int escrow_spool_store(const char *dir, const char *name, X509 *dra_cert, const void *data, size_t size,
                       char **ret_path, bool *ret_verified);

/* Runs path with the single argument verb ("store" or "verify") and data on its stdin, as spawn_run()
 * does, with timeout_sec (0: ESCROW_HOOK_TIMEOUT_SEC_DEFAULT). The first line of its output names where
 * the record went. */
int escrow_hook_run(const char *path, const char *verb, const void *data, size_t size, unsigned timeout_sec,
                    char **ret_output, char **ret_error);
