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
