/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * guid.h: 16-byte GUIDs, as BitLocker uses them to name recovery passwords ("Key ID") and volumes.
 *
 * A Guid holds its bytes in RFC 4122 order, the order in which the text form is written, so
 * formatting, parsing and prefix lookups never reorder anything. Microsoft's binary layout (first
 * three fields little-endian), in which Active Directory stores msFVE-RecoveryGuid and
 * msFVE-VolumeGuid, exists only at that boundary: guid_to_ms_bytes() / guid_from_ms_bytes().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"

#define GUID_SIZE 16
/* Canonical text form, "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", plus the NUL. */
#define GUID_STRING_MAX 37
/* Hex digits in a GUID, which is also the longest prefix guid_matches_prefix() can match. */
#define GUID_HEX_DIGITS 32

typedef struct Guid {
        uint8_t bytes[GUID_SIZE];
} Guid;

/* A random (version 4, RFC 4122 variant) GUID. -EIO when OpenSSL's generator fails. */
int guid_generate(Guid *ret);

/* Uppercase with dashes, as manage-bde shows BitLocker Key IDs. Returns ret. */
char *guid_format(const Guid *g, char ret[static GUID_STRING_MAX]);

/* Accepts 32 hex digits in either case, either in the 8-4-4-4-12 dashed form or with no dashes at
 * all, optionally enclosed in one pair of braces. Anything else (other dash positions, whitespace,
 * a lone brace) is -EINVAL. ret is written only on success. */
int guid_parse(const char *s, Guid *ret);

/* Whether prefix, compared case-insensitively with dashes ignored, is a prefix of the 32 hex digits
 * of g. A prefix with a character that is neither a hex digit nor a dash, with more than 32 hex
 * digits, or with no hex digit at all matches nothing: an empty argument never selects a key. */
bool guid_matches_prefix(const Guid *g, const char *prefix);

/* Microsoft's GUID structure layout (Data1 u32, Data2 u16, Data3 u16 little-endian, then Data4's
 * 8 bytes as they are), as stored in Active Directory's octet-string GUID attributes. */
void guid_to_ms_bytes(const Guid *g, uint8_t ret[static GUID_SIZE]);
void guid_from_ms_bytes(const uint8_t b[static GUID_SIZE], Guid *ret);

bool guid_is_null(const Guid *g);
bool guid_equal(const Guid *a, const Guid *b);
