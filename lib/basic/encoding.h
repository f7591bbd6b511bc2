/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* encoding.h: hex and base64 for the JSON fields of tokens and sealed blobs. Strict decoders: what
 * they accept is exactly what the encoders produce. */
#pragma once

#include <stdbool.h>

#include <stddef.h>
#include <stdint.h>

/* The value of one hex digit (either case), or -EINVAL. */
int unhexchar(char c);

/* Lowercase hex, NUL-terminated. */
char *hex_encode(const void *data, size_t size);
/* Exactly 2*n hex digits (either case); -EINVAL otherwise. */
int hex_decode(const char *s, void **ret, size_t *ret_size);
int hex_decode_fixed(const char *s, void *ret, size_t size);

/* RFC 4648 base64 with padding, no line breaks. */
char *base64_encode(const void *data, size_t size);
int base64_decode(const char *s, void **ret, size_t *ret_size);

/* Whether s is valid UTF-8 with no control characters: fit for a bus string, a log line, a token. */
bool utf8_is_printable(const char *s);
/* A copy of s with every invalid UTF-8 byte and every control character replaced by '?', malloc'd. */
char *utf8_sanitize(const char *s);
