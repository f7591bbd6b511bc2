/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* aead.c: AES-256-GCM seal and open through OpenSSL's EVP interface (see aead.h). */

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "aead.h"
#include "openssl-util.h"
#include "secmem.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_CIPHER_CTX *, EVP_CIPHER_CTX_free);

int aead_seal(const uint8_t key[static AEAD_KEY_SIZE], const void *aad, size_t aad_size, const void *plain,
              size_t plain_size, uint8_t **ret, size_t *ret_size) {
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        _cleanup_free_ uint8_t *out = NULL;
        int n = 0, m = 0;

        if (!ctx)
                return -ENOMEM;
        if (plain_size > INT32_MAX - AEAD_OVERHEAD || aad_size > INT32_MAX)
                return -EINVAL;
        out = malloc(AEAD_OVERHEAD + plain_size);
        if (!out)
                return -ENOMEM;
        /* A random 96-bit IV per message; each key here wraps a handful of messages in its life. */
        if (RAND_bytes(out, AEAD_IV_SIZE) != 1)
                return -EIO;
        if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, out) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &n, aad, (int) aad_size) != 1 ||
            EVP_EncryptUpdate(ctx, out + AEAD_IV_SIZE, &n, plain, (int) plain_size) != 1 ||
            EVP_EncryptFinal_ex(ctx, out + AEAD_IV_SIZE + n, &m) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_SIZE, out + AEAD_IV_SIZE + plain_size) != 1)
                return log_openssl_errors(-EIO, "AES-GCM seal");

        *ret = TAKE_PTR(out);
        *ret_size = AEAD_OVERHEAD + plain_size;
        return 0;
}

int aead_open(const uint8_t key[static AEAD_KEY_SIZE], const void *aad, size_t aad_size, const uint8_t *in,
              size_t in_size, void **ret, size_t *ret_size) {
        _cleanup_(EVP_CIPHER_CTX_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        _cleanup_secure_ uint8_t *out = NULL;
        size_t size;
        int n = 0, m = 0;

        if (!ctx)
                return -ENOMEM;
        if (in_size < AEAD_OVERHEAD || in_size > INT32_MAX || aad_size > INT32_MAX)
                return -EBADMSG;
        size = in_size - AEAD_OVERHEAD;
        out = secure_alloc(size + 1);
        if (!out)
                return negative_errno();

        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, in) != 1 ||
            EVP_DecryptUpdate(ctx, NULL, &n, aad, (int) aad_size) != 1 ||
            EVP_DecryptUpdate(ctx, out, &n, in + AEAD_IV_SIZE, (int) size) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_SIZE, (void *) (in + AEAD_IV_SIZE + size)) != 1)
                return log_openssl_errors(-EIO, "AES-GCM open");
        /* Nothing decrypted counts until the tag verifies. */
        if (EVP_DecryptFinal_ex(ctx, out + n, &m) != 1)
                return log_openssl_errors(-EBADMSG, "AES-GCM tag");

        *ret = TAKE_PTR(out);
        *ret_size = size;
        return 0;
}
