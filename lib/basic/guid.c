/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* guid.c: generating, formatting, parsing and matching GUIDs (see guid.h). */

#include <string.h>

#include <openssl/rand.h>

#include "encoding.h"
#include "guid.h"

/* Text positions of the dashes in the 8-4-4-4-12 form, and the byte indexes they precede. */
static bool guid_text_dash_at(size_t i) {
        return i == 8 || i == 13 || i == 18 || i == 23;
}
static bool guid_byte_dash_before(size_t i) {
        return i == 4 || i == 6 || i == 8 || i == 10;
}

/* The i-th of the 32 hex digits, most significant nibble of each byte first. */
static int guid_nibble(const Guid *g, size_t i) {
        uint8_t b = g->bytes[i / 2];

        return i % 2 == 0 ? b >> 4 : b & 0x0F;
}

int guid_generate(Guid *ret) {
        Guid g;

        if (!ret)
                return -EINVAL;

        /* Key IDs are public names, not secrets: the public generator is the right one. */
        if (RAND_bytes(g.bytes, sizeof(g.bytes)) != 1)
                return -EIO;

        /* RFC 4122, 4.4: version 4 in the high nibble of time_hi_and_version, variant 10xx in
         * clock_seq_hi_and_reserved. */
        g.bytes[6] = (g.bytes[6] & 0x0F) | 0x40;
        g.bytes[8] = (g.bytes[8] & 0x3F) | 0x80;

        *ret = g;
        return 0;
}

char *guid_format(const Guid *g, char ret[static GUID_STRING_MAX]) {
        static const char hex[] = "0123456789ABCDEF";
        char *p = ret;

        for (size_t i = 0; i < GUID_SIZE; i++) {
                if (guid_byte_dash_before(i))
                        *p++ = '-';
                *p++ = hex[g->bytes[i] >> 4];
                *p++ = hex[g->bytes[i] & 0x0F];
        }
        *p = '\0';

        return ret;
}

int guid_parse(const char *s, Guid *ret) {
        Guid g = {};
        size_t n, digits = 0;
        bool dashed;

        if (!s || !ret)
                return -EINVAL;

        n = strlen(s);
        /* Registry and AD tools write GUIDs in braces; accept exactly one matching pair. */
        if (n >= 2 && s[0] == '{' && s[n - 1] == '}') {
                s++;
                n -= 2;
        }

        if (n == GUID_STRING_MAX - 1)
                dashed = true;
        else if (n == GUID_HEX_DIGITS)
                dashed = false;
        else
                return -EINVAL;

        for (size_t i = 0; i < n; i++) {
                int v;

                if (dashed && guid_text_dash_at(i)) {
                        if (s[i] != '-')
                                return -EINVAL;
                        continue;
                }

                v = unhexchar(s[i]);
                if (v < 0)
                        return v;

                g.bytes[digits / 2] |= digits % 2 == 0 ? v << 4 : v;
                digits++;
        }

        *ret = g;
        return 0;
}

bool guid_matches_prefix(const Guid *g, const char *prefix) {
        size_t digits = 0;

        if (!g || !prefix)
                return false;

        for (const char *p = prefix; *p != '\0'; p++) {
                int v;

                /* Operators type "063EA4E1-220C" or "063ea4e1220c" alike. */
                if (*p == '-')
                        continue;

                if (digits >= GUID_HEX_DIGITS)
                        return false;

                v = unhexchar(*p);
                if (v < 0 || v != guid_nibble(g, digits))
                        return false;
                digits++;
        }

        return digits > 0;
}

/* Microsoft's layout differs from RFC 4122 order only by byte-swapping the first three fields, so
 * the conversion is its own inverse. A temporary keeps in == out safe. */
static void guid_swap_fields(const uint8_t in[static GUID_SIZE], uint8_t out[static GUID_SIZE]) {
        uint8_t t[GUID_SIZE];

        t[0] = in[3];
        t[1] = in[2];
        t[2] = in[1];
        t[3] = in[0];
        t[4] = in[5];
        t[5] = in[4];
        t[6] = in[7];
        t[7] = in[6];
        memcpy(t + 8, in + 8, 8);

        memcpy(out, t, GUID_SIZE);
}

void guid_to_ms_bytes(const Guid *g, uint8_t ret[static GUID_SIZE]) {
        guid_swap_fields(g->bytes, ret);
}

void guid_from_ms_bytes(const uint8_t b[static GUID_SIZE], Guid *ret) {
        guid_swap_fields(b, ret->bytes);
}

bool guid_is_null(const Guid *g) {
        static const Guid null = {};

        return guid_equal(g, &null);
}

bool guid_equal(const Guid *a, const Guid *b) {
        return memcmp(a->bytes, b->bytes, GUID_SIZE) == 0;
}
