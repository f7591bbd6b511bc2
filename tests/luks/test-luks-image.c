/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-luks-image.c: LUKS2 image files and key checks without device-mapper. */

#include <libcryptsetup.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "luks-fixture.h"
#include "test-util.h"

#define N_IMAGES 3

static void test_images_open_with_their_own_key_only(void **state) {
        const char *dir = *state;
        char *paths[N_IMAGES] = {};
        char keys[N_IMAGES][32];

        for (unsigned i = 0; i < N_IMAGES; i++) {
                char name[32];

                snprintf(name, sizeof(name), "disk%u.img", i);
                snprintf(keys[i], sizeof(keys[i]), "passphrase-of-disk-%u", i);
                assert_int_equal(luks_image_new(dir, name, LUKS_IMAGE_SIZE_DEFAULT, keys[i], strlen(keys[i]),
                                                &paths[i]),
                                 0);
        }

        for (unsigned i = 0; i < N_IMAGES; i++)
                for (unsigned j = 0; j < N_IMAGES; j++)
                        assert_int_equal(luks_image_test_passphrase(paths[i], keys[j], strlen(keys[j])),
                                         i == j ? 0 : -EPERM);

        for (unsigned i = 0; i < N_IMAGES; i++)
                free(paths[i]);
}

static void test_image_has_production_parameters(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *path = NULL;
        struct crypt_device *cd = NULL;

        assert_int_equal(luks_image_new(dir, "params.img", LUKS_IMAGE_SIZE_DEFAULT, "k", 1, &path), 0);
        assert_int_equal(crypt_init(&cd, path), 0);
        assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
        assert_string_equal(crypt_get_type(cd), CRYPT_LUKS2);
        assert_string_equal(crypt_get_cipher(cd), "aes");
        assert_string_equal(crypt_get_cipher_mode(cd), "xts-plain64");
        assert_int_equal(crypt_get_volume_key_size(cd), 64);
        assert_non_null(crypt_get_uuid(cd));
        crypt_free(cd);
}

static void test_not_luks(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *path = path_join(dir, "plain.img");
        FILE *f;

        assert_non_null(path);
        f = fopen(path, "we");
        assert_non_null(f);
        assert_int_equal(fputs("not a LUKS header\n", f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        assert_true(luks_image_test_passphrase(path, "k", 1) < 0);
        assert_int_not_equal(luks_image_test_passphrase(path, "k", 1), -EPERM);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_images_open_with_their_own_key_only, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_image_has_production_parameters, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_not_luks, test_setup_tmpdir, test_teardown_tmpdir),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
