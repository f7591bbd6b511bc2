/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volume-probe.h: is this block device a sealvol volume, and whose? Read-only: the boot scans every
 * block device of the server with it, other servers' disks included, and must change none of them.
 */
#pragma once

#include "volume.h"

/* 0 with *ret filled (volume_token_done() it): a LUKS2 volume with subsystem "sealvol" and a valid
 * token. -EMEDIUMTYPE: not LUKS2 (libblkid says so before libcryptsetup is asked); -ENOMSG: LUKS2 but
 * another subsystem, or ours without a token yet (an interrupted provisioning); the token's own
 * errors (volume_token_from_json()); -errno when the device cannot be read. */
int volume_probe(const char *device, VolumeToken *ret);
