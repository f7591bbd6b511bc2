/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volume-internal.h: what volume.c shares with volume-inplace.c, and nobody else.
 */
#pragma once

#include "volume.h"

/* A Volume on device; with header, its LUKS2 header lives in that file (detached) instead. */
int volume_new(const char *header, const char *device, Volume **ret);
int provision_check_params(const VolumeProvisionParams *p);
/* Formats v (data_offset in 512-byte sectors; 0: libcryptsetup's default), adds and verifies every
 * protector, escrows the recovery password, and writes the token last. */
int provision_format(Volume *v, const VolumeProvisionParams *p, uint64_t data_offset, char **ret_recovery_password);
/* The one "sealvol" token of a loaded header: its id and JSON (owned by cd). -ENOMSG none, -EBADMSG
 * two, or one that cannot be read. */
int volume_find_token(struct crypt_device *cd, int *ret_id, const char **ret_json);
