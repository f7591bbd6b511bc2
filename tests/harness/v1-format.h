/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * v1-format.h: sealvol's version 1 on-disk formats, written exactly as sealvol wrote them up to
 * commit c270d29 (the last release with them): the sealed VMK file of version 1 and the version 1
 * token, with its recovery password's wrapped_vmk. The writer is that code, frozen here, so the
 * upgrade of a server and the attack on version 1 are tested against what real servers hold.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "vmk.h"
#include "volume.h"

/* The version 1 file of b (its version 2 fields are ignored). */
int v1_blob_to_json(const VmkBlob *b, char **ret);

/* Turns the freshly provisioned (version 2) volume at device into the version 1 volume the old code
 * made: the same keyslots and Key IDs, a version 1 token with wrapped_password and, under the v1 rule,
 * wrapped_vmk (the VMK under PBKDF2 of the recovery password at the keyslot's iteration count), and no
 * MAC or server copy. password is the volume's recovery password. */
int v1_volume_downgrade(const char *device, const uint8_t vmk[static VMK_SIZE], const char *password);

/* The version 1 attack: the VMK out of a token's wrapped_vmk with one disk's recovery password, as the
 * old code's volume_recover_vmk() did. token_json: the token as exported from any header copy.
 * -ENODATA when the token holds no such copy, -EPERM a wrong password. */
int v1_recover_vmk(const char *token_json, const char *password, uint8_t **ret_vmk);
