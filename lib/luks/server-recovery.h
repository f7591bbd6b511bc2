/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * server-recovery.h: the server recovery password, a server-scoped secret (docs/sealed-vmk.md).
 *
 * A disk's recovery password opens that disk only. The server recovery password has the same
 * BitLocker format and a Key ID of its own, but opens no keyslot: it wraps the server's VMK, so one
 * password recovers every disk of the server after a firmware change, a TPM replacement or a
 * reinstallation. Using it rotates the VMK, and with it this password.
 *
 *   wrapped_vmk       the VMK under PBKDF2-SHA256(password as displayed, salt, iterations): the same
 *                     cost per guess as a recovery keyslot; kept in the state directory and, copied, in
 *                     every disk's token (a reinstalled server has only the disks)
 *   wrapped_password  the password under a key derived from the VMK, so that the daemon holding the
 *                     VMK can escrow it again; only in the state directory
 *
 * Both are AES-256-GCM bound to the password's Key ID and the VMK's id.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"
#include "vmk.h"
#include "volume.h"

#define SERVER_RECOVERY_VERSION 1
#define SERVER_RECOVERY_FILE_MAX (64u * 1024u)
/* Per guess, as a recovery keyslot: its 64-byte key is two PBKDF2-SHA256 blocks at the keyslot's
 * count, this 32-byte key one block at twice the count. */
#define SERVER_RECOVERY_ITERATIONS_DEFAULT (2 * VOLUME_RECOVERY_PBKDF2_ITERATIONS)
/* What a wrap read from a disk (untrusted) may ask for before a KDF runs. */
#define SERVER_RECOVERY_ITERATIONS_MIN (2 * VOLUME_PBKDF2_ITERATIONS_MIN)
#define SERVER_RECOVERY_ITERATIONS_MAX (2 * VOLUME_RECOVERY_PBKDF2_ITERATIONS_MAX)
/* iterations (u32 LE) || salt (16) || IV (12) || AES-256-GCM(VMK) (32) || tag (16) */
#define SERVER_RECOVERY_WRAPPED_VMK_SIZE (4 + 16 + 12 + VMK_SIZE + 16)

typedef struct ServerRecovery {
        Guid key_id;
        Guid vmk_id;
        uint64_t created;
        uint8_t wrapped_vmk[SERVER_RECOVERY_WRAPPED_VMK_SIZE];
        uint8_t *wrapped_password; /* malloc'd; not secret (AES-GCM under a VMK-derived key) */
        size_t wrapped_password_size;
        /* Where the password went (escrow.h), one record per target. */
        EscrowRecord escrow[ESCROW_RECORDS_MAX];
        size_t n_escrow;
} ServerRecovery;

void server_recovery_done(ServerRecovery *s);

/* A new password for the VMK (iterations 0: SERVER_RECOVERY_ITERATIONS_DEFAULT), returned canonical in
 * secure memory. */
int server_recovery_new(const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, uint32_t iterations,
                        ServerRecovery *ret, char **ret_password);

/* The password back, with the VMK it belongs to: -EREMOTE another VMK, -EBADMSG damaged. */
int server_recovery_read_password(const ServerRecovery *s, const uint8_t vmk[static VMK_SIZE], char **ret_password);

/* The VMK out of a wrapped copy (the state directory's or a disk's: untrusted either way), with what an
 * operator typed. The password is checked for typos and the cost bounded before the KDF runs.
 * -EINVAL/-EDOM/-ERANGE a malformed password (*ret_bad_block as recovery_password_parse()), -EBADMSG
 * a copy that is not one, -EPERM the wrong password (or a copy for another Key ID or VMK). The caller
 * checks the VMK against the sealed state before it trusts it. */
int server_recovery_unwrap(const uint8_t wrapped[static SERVER_RECOVERY_WRAPPED_VMK_SIZE], const Guid *key_id,
                           const Guid *vmk_id, const char *password, uint8_t **ret_vmk, unsigned *ret_bad_block);

/* <state>/server-recovery.json, strictly (docs/sealed-vmk.md). */
int server_recovery_to_json(const ServerRecovery *s, char **ret);
int server_recovery_from_json(const char *json, size_t size, ServerRecovery *ret);
int server_recovery_read(const char *path, ServerRecovery *ret);
int server_recovery_write(const ServerRecovery *s, const char *path);
/* Replaces s's record for e->target, or adds it (-E2BIG beyond ESCROW_RECORDS_MAX). */
int server_recovery_set_escrow(ServerRecovery *s, const EscrowRecord *e);
