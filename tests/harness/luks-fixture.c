/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* luks-fixture.c: LUKS2 image files for tests (see luks-fixture.h). */

#include <fcntl.h>
#include <libcryptsetup.h>
#include <string.h>
#include <sys/stat.h>

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
