/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* aead.h: AES-256-GCM (NIST SP 800-38D) for the small secrets sealvol keeps wrapped in a token. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define AEAD_KEY_SIZE 32
#define AEAD_IV_SIZE 12
#define AEAD_TAG_SIZE 16
#define AEAD_OVERHEAD (AEAD_IV_SIZE + AEAD_TAG_SIZE)

/* out = random IV || ciphertext || tag, in ordinary memory (it is not secret). */
int aead_seal(const uint8_t key[static AEAD_KEY_SIZE], const void *aad, size_t aad_size, const void *plain,
              size_t plain_size, uint8_t **ret, size_t *ret_size);
/* The plaintext, in secure memory (NUL-terminated, not counted). -EBADMSG when the tag does not
 * verify: a wrong key, other associated data, or a damaged blob. */
int aead_open(const uint8_t key[static AEAD_KEY_SIZE], const void *aad, size_t aad_size, const uint8_t *in,
              size_t in_size, void **ret, size_t *ret_size);
