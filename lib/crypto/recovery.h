/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * recovery.h: BitLocker-format recovery passwords, 48 digits in 8 dash-separated blocks of 6.
 *
 * The 128-bit recovery key is read as 8 little-endian uint16 values k, and each block is 11 * k
 * printed with 6 digits (0 .. 720885). The factor 11 makes every block its own check: changing
 * one digit, or swapping two different adjacent ones, never leaves a multiple of 11, so a typo is
 * caught and named by its block before any key derivation runs. This is the format of
 * manage-bde and of Windows' recovery screen, so operators and their tools recognise it.
 *
 * Keys and passwords returned here live in secure_alloc() memory: release them with secure_free()
 * (or _cleanup_secure_).
 */
#pragma once

#include <stdint.h>

#include "macro.h"

#define RECOVERY_KEY_SIZE 16
#define RECOVERY_PASSWORD_BLOCKS 8
#define RECOVERY_BLOCK_DIGITS 6
/* The canonical dashed form, without the NUL. */
#define RECOVERY_PASSWORD_LEN 55
/* 11 * UINT16_MAX */
#define RECOVERY_BLOCK_MAX 720885

_Static_assert(RECOVERY_PASSWORD_LEN == RECOVERY_PASSWORD_BLOCKS * (RECOVERY_BLOCK_DIGITS + 1) - 1,
               "dashed form length");
_Static_assert(RECOVERY_KEY_SIZE == RECOVERY_PASSWORD_BLOCKS * 2, "one uint16 per block");
_Static_assert(RECOVERY_BLOCK_MAX == 11 * UINT16_MAX, "largest block");

/* 16 bytes from OpenSSL's private generator, in secure memory. -EIO when the generator fails. */
int recovery_key_generate(uint8_t **ret_key);

/* The canonical form "NNNNNN-NNNNNN-...-NNNNNN", NUL-terminated, in secure memory
 * (RECOVERY_PASSWORD_LEN + 1 bytes). */
int recovery_password_format(const uint8_t key[static RECOVERY_KEY_SIZE], char **ret_password);

/* Turns what an operator typed back into the key, in secure memory. Accepted: 8 blocks of 6 digits
 * separated by any run of spaces and dashes, or 48 digits with no separator at all; whitespace
 * around the whole is ignored. Nothing else is (no dash before the first or after the last block,
 * no tabs or other characters between blocks). The input is only read, never copied, and no key
 * derivation runs here.
 *
 * Errors, each with the 1-based number of the first bad block in *ret_bad_block (when non-NULL),
 * or 0 when no single block is to blame (wrong number of blocks, wrong total of digits):
 *   -EINVAL  not 8 blocks of 6 digits: a block of another length or with a non-digit
 *   -EDOM    a block that is not a multiple of 11 (a typo); checked before the range
 *   -ERANGE  a block above RECOVERY_BLOCK_MAX
 * *ret_bad_block is written for these three errors only; *ret_key only on success. */
int recovery_password_parse(const char *input, uint8_t **ret_key, unsigned *ret_bad_block);

/* recovery_password_parse() then recovery_password_format(): what an operator typed, in the canonical
 * form that keyslots and wrapping keys are made from (secure memory). Errors as the parser's. */
int recovery_password_canonicalize(const char *input, char **ret_password, unsigned *ret_bad_block);
/* A new password from recovery_key_generate(), canonical, in secure memory. */
int recovery_password_generate(char **ret_password);

/* What is wrong, for a message such as "Block 5 is not a multiple of 11 (typo?)": for -EDOM, -ERANGE
 * and -EINVAL (either sign). NULL for any other error. */
const char *recovery_parse_error_to_string(int error);
