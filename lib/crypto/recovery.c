/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* recovery.c: generating, formatting and checking BitLocker-format recovery passwords (see recovery.h). */

#include <string.h>

#include <openssl/rand.h>

#include "recovery.h"
#include "secmem.h"

/* The factor that turns each 16-bit key word into a self-checking 6-digit block. */
#define RECOVERY_BLOCK_FACTOR 11u

int recovery_key_generate(uint8_t **ret_key) {
        _cleanup_secure_ uint8_t *key = NULL;

        if (!ret_key)
                return -EINVAL;

        key = secure_alloc(RECOVERY_KEY_SIZE);
        if (!key)
                return negative_errno();

        /* The private generator instance: its output is never seen by anyone, unlike the public
         * one that also serves GUIDs and nonces. */
        if (RAND_priv_bytes(key, RECOVERY_KEY_SIZE) != 1)
                return -EIO;

        *ret_key = TAKE_PTR(key);
        return 0;
}

int recovery_password_format(const uint8_t key[static RECOVERY_KEY_SIZE], char **ret_password) {
        _cleanup_secure_ char *password = NULL;
        char *p;
        /* Holds one block of the password at a time. */
        uint32_t value = 0;
        CLEANUP_ERASE(value);

        if (!ret_password)
                return -EINVAL;

        /* Zero-filled, so the NUL is already there. */
        password = secure_alloc(RECOVERY_PASSWORD_LEN + 1);
        if (!password)
                return negative_errno();

        /* Digits are written straight into secure memory: snprintf() would stage them in its own
         * stack buffers, which nobody wipes. */
        p = password;
        for (size_t b = 0; b < RECOVERY_PASSWORD_BLOCKS; b++) {
                if (b > 0)
                        *p++ = '-';

                value = ((uint32_t) key[2 * b] | (uint32_t) key[2 * b + 1] << 8) * RECOVERY_BLOCK_FACTOR;
                for (size_t i = RECOVERY_BLOCK_DIGITS; i > 0; i--) {
                        p[i - 1] = (char) ('0' + value % 10);
                        value /= 10;
                }
                p += RECOVERY_BLOCK_DIGITS;
        }

        *ret_password = TAKE_PTR(password);
        return 0;
}

/* Around the whole input: what a paste or a terminal may add. */
static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Between blocks: what people type when copying from a screen or a printout. */
static bool is_separator(char c) {
        return c == ' ' || c == '-';
}

static int parse_fail(int error, unsigned block, unsigned *ret_bad_block) {
        if (ret_bad_block)
                *ret_bad_block = block;
        return error;
}

int recovery_password_parse(const char *input, uint8_t **ret_key, unsigned *ret_bad_block) {
        /* Where each block sits in the input: positions only, never the digits themselves. */
        const char *block_start[RECOVERY_PASSWORD_BLOCKS];
        size_t block_len[RECOVERY_PASSWORD_BLOCKS];
        _cleanup_secure_ uint8_t *key = NULL;
        size_t n_groups = 0;
        const char *p, *end;
        /* Holds one block of the password at a time. */
        uint32_t value = 0;
        CLEANUP_ERASE(value);

        if (!input || !ret_key)
                return parse_fail(-EINVAL, 0, ret_bad_block);

        p = input;
        end = input + strlen(input);
        while (p < end && is_blank(*p))
                p++;
        while (end > p && is_blank(end[-1]))
                end--;

        /* A dash at either end is not "between blocks"; leaving it out of the grammar keeps every
         * group below non-empty. */
        if (p == end || *p == '-' || end[-1] == '-')
                return parse_fail(-EINVAL, 0, ret_bad_block);

        /* Split into groups at runs of separators. Keep counting past 8 so that a ninth block is
         * noticed, but remember only the first 8. */
        while (p < end) {
                const char *g = p;

                while (p < end && !is_separator(*p))
                        p++;
                if (n_groups < RECOVERY_PASSWORD_BLOCKS) {
                        block_start[n_groups] = g;
                        block_len[n_groups] = (size_t) (p - g);
                }
                n_groups++;

                while (p < end && is_separator(*p))
                        p++;
        }

        if (n_groups == 1 && block_len[0] == RECOVERY_PASSWORD_BLOCKS * RECOVERY_BLOCK_DIGITS) {
                /* 48 in a row: the blocks are fixed by position. Backwards, so block_start[0] is
                 * still the start of the run when it is used. */
                for (size_t b = RECOVERY_PASSWORD_BLOCKS; b > 0; b--) {
                        block_start[b - 1] = block_start[0] + (b - 1) * RECOVERY_BLOCK_DIGITS;
                        block_len[b - 1] = RECOVERY_BLOCK_DIGITS;
                }
        } else if (n_groups != RECOVERY_PASSWORD_BLOCKS)
                /* A block too many or too few, or a run of digits of the wrong length: we cannot
                 * tell which block is wrong, and numbering them would point the operator at the
                 * wrong one. */
                return parse_fail(-EINVAL, 0, ret_bad_block);

        key = secure_alloc(RECOVERY_KEY_SIZE);
        if (!key)
                return negative_errno();

        /* One pass, in order, so that the first bad block is the one reported, whatever is wrong
         * with it. */
        for (size_t b = 0; b < RECOVERY_PASSWORD_BLOCKS; b++) {
                unsigned block = (unsigned) b + 1;

                if (block_len[b] != RECOVERY_BLOCK_DIGITS)
                        return parse_fail(-EINVAL, block, ret_bad_block);

                value = 0;
                for (size_t i = 0; i < RECOVERY_BLOCK_DIGITS; i++) {
                        if (block_start[b][i] < '0' || block_start[b][i] > '9')
                                return parse_fail(-EINVAL, block, ret_bad_block);
                        value = value * 10 + (uint32_t) (block_start[b][i] - '0');
                }

                /* Divisibility first: it is what a typo breaks (the checksum role of the factor);
                 * a block above the maximum that is a multiple of 11 is a wrong block, not a typo. */
                if (value % RECOVERY_BLOCK_FACTOR != 0)
                        return parse_fail(-EDOM, block, ret_bad_block);
                if (value > RECOVERY_BLOCK_MAX)
                        return parse_fail(-ERANGE, block, ret_bad_block);

                value /= RECOVERY_BLOCK_FACTOR;
                key[2 * b] = (uint8_t) (value & 0xFF);
                key[2 * b + 1] = (uint8_t) (value >> 8);
        }

        *ret_key = TAKE_PTR(key);
        return 0;
}

const char *recovery_parse_error_to_string(int error) {
        switch (error) {
        case -EDOM:
        case EDOM:
                return "is not a multiple of 11 (typo?)";
        case -ERANGE:
        case ERANGE:
                return "is above 720885";
        case -EINVAL:
        case EINVAL:
                return "must be 8 blocks of 6 digits";
        default:
                return NULL;
        }
}

int recovery_password_canonicalize(const char *input, char **ret_password, unsigned *ret_bad_block) {
        _cleanup_secure_ uint8_t *key = NULL;
        int r;

        r = recovery_password_parse(input, &key, ret_bad_block);
        if (r < 0)
                return r;
        return recovery_password_format(key, ret_password);
}

int recovery_password_generate(char **ret_password) {
        _cleanup_secure_ uint8_t *key = NULL;
        int r;

        r = recovery_key_generate(&key);
        if (r < 0)
                return r;
        return recovery_password_format(key, ret_password);
}
