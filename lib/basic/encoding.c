/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* encoding.c: hex and base64 (see encoding.h). */

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "encoding.h"
#include "macro.h"

char *hex_encode(const void *data, size_t size) {
        static const char digits[] = "0123456789abcdef";
        const uint8_t *p = data;
        char *s;

        s = malloc(size * 2 + 1);
        if (!s)
                return NULL;
        for (size_t i = 0; i < size; i++) {
                s[2 * i] = digits[p[i] >> 4];
                s[2 * i + 1] = digits[p[i] & 15];
        }
        s[size * 2] = '\0';
        return s;
}

int unhexchar(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -EINVAL;
}

static int hex_decode_into(const char *s, size_t n, uint8_t *out) {
        for (size_t i = 0; i < n; i++) {
                int hi = unhexchar(s[2 * i]), lo = unhexchar(s[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

int hex_decode(const char *s, void **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        size_t len;
        int r;

        if (!s)
                return -EINVAL;
        len = strlen(s);
        if (len % 2 != 0)
                return -EINVAL;
        out = malloc(len / 2 + 1);
        if (!out)
                return -ENOMEM;
        r = hex_decode_into(s, len / 2, out);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        *ret_size = len / 2;
        return 0;
}

int hex_decode_fixed(const char *s, void *ret, size_t size) {
        if (!s || strlen(s) != 2 * size)
                return -EINVAL;
        return hex_decode_into(s, size, ret);
}

char *base64_encode(const void *data, size_t size) {
        char *s;

        if (size > INT32_MAX / 2)
                return NULL;
        s = malloc((size + 2) / 3 * 4 + 1);
        if (!s)
                return NULL;
        (void) EVP_EncodeBlock((unsigned char *) s, data, (int) size);
        return s;
}

int base64_decode(const char *s, void **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *out = NULL;
        _cleanup_free_ char *again = NULL;
        size_t len, pad = 0;
        int n;

        if (!s)
                return -EINVAL;
        len = strlen(s);
        if (len % 4 != 0 || len > INT32_MAX / 2)
                return -EINVAL;
        if (len > 0 && s[len - 1] == '=')
                pad++;
        if (len > 1 && s[len - 2] == '=')
                pad++;

        out = malloc(len / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        /* EVP_DecodeBlock() skips leading blanks and counts padding as zero bytes; re-encoding the
         * result and comparing makes the decoder exactly as strict as the encoder. */
        n = EVP_DecodeBlock(out, (const unsigned char *) s, (int) len);
        if (n < 0 || (size_t) n < pad)
                return -EINVAL;
        n -= (int) pad;
        again = base64_encode(out, (size_t) n);
        if (!again)
                return -ENOMEM;
        if (!streq(again, s))
                return -EINVAL;

        *ret = TAKE_PTR(out);
        *ret_size = (size_t) n;
        return 0;
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0; no overlongs, surrogates or > U+10FFFF. */
static size_t utf8_sequence(const unsigned char *s) {
        size_t n;
        uint32_t c;

        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, c = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, c = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, c = s[0] & 0x07;
        else
                return 0;
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (s[i] & 0x3f);
        }
        if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) || (n == 4 && (c < 0x10000 || c > 0x10ffff)))
                return 0;
        return n;
}

static bool is_control(const unsigned char *s, size_t n) {
        return n == 1 && (s[0] < 0x20 || s[0] == 0x7f);
}

bool utf8_is_printable(const char *s) {
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                size_t n = utf8_sequence(p);

                if (n == 0 || is_control(p, n))
                        return false;
                p += n;
        }
        return true;
}

char *utf8_sanitize(const char *s) {
        char *out = malloc(strlen(s) + 1), *o = out;

        if (!out)
                return NULL;
        for (const unsigned char *p = (const unsigned char *) s; *p;) {
                size_t n = utf8_sequence(p);

                if (n == 0 || is_control(p, n)) {
                        *o++ = '?';
                        p++;
                        continue;
                }
                memcpy(o, p, n);
                o += n;
                p += n;
        }
        *o = '\0';
        return out;
}
