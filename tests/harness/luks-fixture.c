/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* luks-fixture.c: LUKS2 image files for tests (see luks-fixture.h). */

#include <fcntl.h>
#include <libcryptsetup.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fileio.h"

#include "luks-fixture.h"
#include "secmem.h"
#include "test-util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

static void quiet_log(int level, const char *msg, void *usrptr) {
        (void) level;
        (void) msg;
        (void) usrptr;
}

int sparse_image_new(const char *dir, const char *name, uint64_t size, char **ret_path) {
        _cleanup_free_ char *path = path_join(dir, name);
        _cleanup_close_ int fd = -EBADF;

        if (!path)
                return -ENOMEM;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (ftruncate(fd, (off_t) size) < 0)
                return -errno;
        *ret_path = TAKE_PTR(path);
        return 0;
}

int luks_image_new(const char *dir, const char *name, uint64_t size, const void *passphrase, size_t len,
                   char **ret_path) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_free_ char *path = NULL;
        struct crypt_pbkdf_type fast = {
                .type = CRYPT_KDF_PBKDF2,
                .hash = "sha256",
                .iterations = 1000,
                .flags = CRYPT_PBKDF_NO_BENCHMARK,
        };
        struct crypt_params_luks2 params = { .sector_size = 512 };
        int r;

        r = sparse_image_new(dir, name, size, &path);
        if (r < 0)
                return r;

        crypt_set_log_callback(NULL, quiet_log, NULL);
        r = crypt_init(&cd, path);
        if (r < 0)
                return r;
        r = crypt_set_pbkdf_type(cd, &fast);
        if (r < 0)
                return r;
        r = crypt_format(cd, CRYPT_LUKS2, "aes", "xts-plain64", /* uuid= */ NULL, /* volume_key= */ NULL,
                         /* volume_key_size= */ 64, &params);
        if (r < 0)
                return r;
        r = crypt_keyslot_add_by_volume_key(cd, CRYPT_ANY_SLOT, NULL, 0, passphrase, len);
        if (r < 0)
                return r;

        *ret_path = TAKE_PTR(path);
        return 0;
}

int luks_image_test_passphrase(const char *path, const void *passphrase, size_t len) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        int r;

        crypt_set_log_callback(NULL, quiet_log, NULL);
        r = crypt_init(&cd, path);
        if (r < 0)
                return r;
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return r;
        /* A NULL name verifies the key against the keyslot and maps nothing. */
        return crypt_activate_by_passphrase(cd, /* name= */ NULL, CRYPT_ANY_SLOT, passphrase, len, 0);
}

int ext4_image_new(const char *dir, const char *name, unsigned size_mb, unsigned fs_mb, unsigned files_mb,
                   char **ret_path) {
        _cleanup_free_ char *image = path_join(dir, name), *src = NULL, *cmd = NULL;
        _cleanup_free_ uint8_t *data = malloc(1024 * 1024);
        int status;

        if (!image || !data || asprintf(&src, "%s.src", image) < 0)
                return -ENOMEM;
        if (mkdir(src, 0755) < 0)
                return -errno;
        for (unsigned i = 0; i < files_mb; i++) {
                _cleanup_free_ char *f = NULL;
                int r;

                if (asprintf(&f, "%s/file%u", src, i) < 0)
                        return -ENOMEM;
                if (RAND_bytes(data, 1024 * 1024) != 1)
                        return -EIO;
                r = write_file_atomic(f, data, 1024 * 1024, 0644);
                if (r < 0)
                        return r;
        }
        if (asprintf(&cmd, "truncate -s %uM '%s' && mke2fs -q -F -t ext4 -d '%s' '%s' %uM", size_mb, image, src, image,
                     fs_mb) < 0)
                return -ENOMEM;
        status = system(cmd);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return -EIO;
        *ret_path = TAKE_PTR(image);
        return 0;
}

int read_file_range(const char *path, uint64_t offset, uint64_t size, uint8_t **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ uint8_t *buf = malloc(size);

        if (fd < 0)
                return -errno;
        if (!buf)
                return -ENOMEM;
        if (pread(fd, buf, size, (off_t) offset) != (ssize_t) size)
                return -EIO;
        *ret = TAKE_PTR(buf);
        return 0;
}

int luks_image_decrypt(const char *path, const void *passphrase, size_t len, uint64_t size, uint8_t **ret) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        _cleanup_free_ uint8_t *cipher = NULL, *plain = malloc(size);
        char key[64];
        size_t key_size = sizeof(key);
        EVP_CIPHER_CTX *ctx;
        int r;

        if (!plain || size % 512 != 0)
                return -EINVAL;
        crypt_set_log_callback(NULL, quiet_log, NULL);
        r = crypt_init(&cd, path);
        if (r >= 0)
                r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return r;
        if (crypt_reencrypt_status(cd, NULL) != CRYPT_REENCRYPT_NONE)
                return -EBUSY;
        if (!streq_ptr(crypt_get_cipher(cd), "aes") || !streq_ptr(crypt_get_cipher_mode(cd), "xts-plain64"))
                return -EOPNOTSUPP;
        r = crypt_volume_key_get(cd, CRYPT_ANY_SLOT, key, &key_size, passphrase, len);
        if (r < 0)
                return r;
        if (key_size != 64)
                return -EOPNOTSUPP;
        r = read_file_range(path, crypt_get_data_offset(cd) * 512, size, &cipher);
        if (r < 0)
                return r;
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx)
                return -ENOMEM;
        for (uint64_t s = 0; r >= 0 && s < size / 512; s++) {
                uint8_t iv[16] = {};
                int n = 0;

                for (int i = 0; i < 8; i++)
                        iv[i] = (uint8_t) (s >> (8 * i));
                if (EVP_DecryptInit_ex(ctx, EVP_aes_256_xts(), NULL, (uint8_t *) key, iv) != 1 ||
                    EVP_DecryptUpdate(ctx, plain + s * 512, &n, cipher + s * 512, 512) != 1 || n != 512)
                        r = -EIO;
        }
        EVP_CIPHER_CTX_free(ctx);
        OPENSSL_cleanse(key, sizeof(key));
        if (r < 0)
                return r;
        *ret = TAKE_PTR(plain);
        return 0;
}
