/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* json-util.h: the few json-c helpers sealvol's strict formats (sealed VMK, token) share. */
#pragma once

#include <json.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(json_object *, json_object_put);

/* Adds value under key; value NULL (a failed allocation upstream) is -ENOMEM. */
int json_add_string(json_object *o, const char *key, const char *value);
/* Takes ownership of v in every case. */
int json_add_owned(json_object *o, const char *key, json_object *v);
int json_add_hex(json_object *o, const char *key, const void *data, size_t size);
int json_add_base64(json_object *o, const char *key, const void *data, size_t size);
/* ISO 8601 UTC, "2026-11-23T18:00:00Z". */
int json_add_time(json_object *o, const char *key, uint64_t seconds);

/* NULL unless o has key with a string value. */
const char *json_get_string(json_object *o, const char *key);
int json_get_time(json_object *o, const char *key, uint64_t *ret);
/* A 64-bit number spelled as a decimal string (LUKS2's way: JSON numbers lose precision above 2^53):
 * digits only, no sign, no leading zero, no overflow; -EBADMSG otherwise. */
int json_get_u64_string(json_object *o, const char *key, uint64_t *ret);

/* Parses exactly size bytes as one JSON object no deeper than max_depth; -EBADMSG otherwise. */
int json_parse_object(const char *text, size_t size, int max_depth, json_object **ret);
/* The same, refusing what RFC 8259 refuses and json-c otherwise lets through (comments, single quotes,
 * trailing commas, raw control characters in strings) and invalid UTF-8. */
int json_parse_object_strict(const char *text, size_t size, int max_depth, json_object **ret);
/* -EBADMSG unless o has exactly the keys in the NULL-terminated list. */
int json_check_keys(json_object *o, const char *const *keys);
/* Pretty, spaced, no escaped slashes: what we write to disk and into headers. */
char *json_format(json_object *o);
