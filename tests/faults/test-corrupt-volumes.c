/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-corrupt-volumes.c: every broken variant tests/generate-corrupt-volumes.sh makes of a valid
 * provisioned volume (a damaged or truncated LUKS2 header, LUKS1, not LUKS, a token that is newer,
 * malformed, oversized, duplicated, copied from another volume, naming keyslots that are out of
 * range or gone) is refused by the library with its own error, by volume_load() or, for the few
 * that load, by the protector that relies on the broken part; provisioning over it is refused too;
 * and the image is byte-identical afterwards.
 */

#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "dra-fixture.h"
#include "luks-fixture.h"
#include "openssl-util.h"
#include "secmem.h"
#include "test-util.h"
#include "volume.h"

#define FAST VOLUME_PBKDF2_ITERATIONS_MIN
#define VARIANTS_MAX 64

typedef struct Fixture {
        char *dir;
        char *source, *other, *variants;
        uint8_t vmk[VMK_SIZE];
        Guid vmk_id;
        char *password;
} Fixture;

static const struct {
        const char *name;
        int error;
} errno_names[] = {
        { "EMEDIUMTYPE", EMEDIUMTYPE }, { "ENOMSG", ENOMSG }, { "EBADMSG", EBADMSG },
        { "EPROTONOSUPPORT", EPROTONOSUPPORT }, { "EXDEV", EXDEV }, { "EUCLEAN", EUCLEAN }, { "EBADE", EBADE },
};

static int errno_from_name(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(errno_names); i++)
                if (streq(name, errno_names[i].name))
                        return errno_names[i].error;
        return 0;
}

static int provision(Fixture *f, const char *name, char **ret_path, char **ret_password) {
        _cleanup_(X509_freep) X509 *cert = dra_fixture_cert("rsa2048");
        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .hostname = "server1", .dra_cert = cert,
                                    .recovery_iterations = FAST };
        _cleanup_secure_ char *password = NULL;
        int r;

        if (!cert)
                return -ENOENT;
        r = sparse_image_new(f->dir, name, LUKS_IMAGE_SIZE_DEFAULT, ret_path);
        if (r < 0)
                return r;
        r = volume_provision(*ret_path, &p, &password, NULL);
        if (r < 0)
                return r;
        if (ret_password)
                *ret_password = strdup(password);
        return 0;
}

/* Provisions SOURCE and OTHER and has the generator break SOURCE in every way it knows. */
static int setup(void **state) {
        _cleanup_free_ char *cmd = NULL;
        Fixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        *state = f;
        if (test_tmpdir_new("test-corrupt-volumes", &f->dir) < 0 || RAND_bytes(f->vmk, VMK_SIZE) != 1 ||
            guid_generate(&f->vmk_id) < 0)
                return -1;
        if (provision(f, "source.img", &f->source, &f->password) < 0 || provision(f, "other.img", &f->other, NULL) < 0)
                return -1;
        f->variants = path_join(f->dir, "variants");
        if (!f->variants || asprintf(&cmd, "'%s' '%s' '%s' '%s'", getenv("SEALVOL_CORRUPT_GENERATOR"), f->source,
                                     f->other, f->variants) < 0)
                return -1;
        return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        Fixture *f = *state;
        int r = f->dir ? rm_rf(f->dir) : 0;

        explicit_bzero(f->vmk, sizeof(f->vmk));
        free(f->dir);
        free(f->source);
        free(f->other);
        free(f->variants);
        free(f->password);
        free(f);
        return r < 0 ? -1 : 0;
}

static void image_digest(const char *path, uint8_t ret[static 32]) {
        _cleanup_fclose_ FILE *in = fopen(path, "re");
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t buf[65536];
        size_t n;

        assert_non_null(in);
        assert_non_null(md);
        assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
                assert_int_equal(EVP_DigestUpdate(md, buf, n), 1);
        assert_int_equal(EVP_DigestFinal_ex(md, ret, NULL), 1);
        EVP_MD_CTX_free(md);
}

/* The variants whose token loads: the part that is broken refuses, before anything of it is used or its
 * KDF runs, and the rest opens as far as it can without trusting the broken part. */
static void check_loaded_variant(Fixture *f, const char *name, Volume *v, int error) {
        if (streq(name, "dra-cms-damaged")) {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = dra_fixture_key("rsa2048");

                assert_non_null(key);
                assert_int_equal(volume_open_dra(v, key, NULL, 0), -error);
                /* The token was edited, so the VMK does not authenticate it either. */
                assert_int_equal(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0), -EBADE);
        } else if (IN_SET(true, streq(name, "token-mac-wrong"), streq(name, "token-edited"),
                          streq(name, "tpm-kdf-huge"), streq(name, "tpm-kdf-argon2"))) {
                assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), -error);
                assert_int_equal(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0), -error);
                assert_null(v->vmk);
        } else if (streq(name, "recovery-kdf-huge") || streq(name, "recovery-kdf-argon2")) {
                assert_int_equal(volume_open_recovery(v, f->password, NULL, 0, NULL), -error);
                assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
                return;
        } else
                fail_msg("%s: loaded, and no check for it", name);
        assert_true(volume_open_recovery(v, f->password, NULL, 0, NULL) >= 0);
}

static void test_every_variant_refused(void **state) {
        Fixture *f = *state;
        _cleanup_fclose_ FILE *index = NULL;
        _cleanup_free_ char *index_path = path_join(f->variants, "index");
        char line[256];
        unsigned n = 0, bad = 0;

        assert_non_null(index_path);
        index = fopen(index_path, "re");
        assert_non_null(index);

        while (fgets(line, sizeof(line), index)) {
                _cleanup_free_ char *image = NULL, *file = NULL;
                _cleanup_secure_ char *password = NULL;
                _cleanup_(volume_freep) Volume *v = NULL;
                VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .recovery_iterations = FAST };
                char name[64], error_name[32];
                uint8_t before[32], after[32];
                int error, r;

                assert_int_equal(sscanf(line, "%63s %31s", name, error_name), 2);
                error = errno_from_name(error_name);
                assert_true(error > 0);
                assert_true(asprintf(&file, "%s.img", name) > 0);
                image = path_join(f->variants, file);
                assert_non_null(image);

                image_digest(image, before);
                r = volume_load(image, &v);
                if (r >= 0)
                        check_loaded_variant(f, name, v, error);
                else {
                        if (r != -error) {
                                print_error("%s: volume_load() says %s, expected %s\n", name, strerror(-r),
                                            strerror(error));
                                bad++;
                        }
                        assert_null(v);
                        /* Nor is it provisioned over: it is somebody's (or our damaged) volume, except a
                         * sealvol header without a token, which is an interrupted provisioning. */
                        r = volume_provision(image, &p, &password, NULL);
                        if (streq(name, "no-token"))
                                assert_int_equal(r, 0);
                        else if (!IN_SET(r, -EEXIST, -EUCLEAN)) {
                                print_error("%s: provisioning over it says %s\n", name, strerror(-r));
                                bad++;
                        }
                }
                v = volume_free(v);
                if (streq(name, "no-token"))
                        continue; /* provisioned again, on purpose */
                image_digest(image, after);
                if (memcmp(before, after, sizeof(before)) != 0) {
                        print_error("%s: the image changed\n", name);
                        bad++;
                }
                print_message("%-24s refused: %s\n", name, strerror(error));
                n++;
        }
        assert_int_equal(bad, 0);
        assert_true(n >= 20);

        /* The source itself was not harmed by any of it. */
        _cleanup_(volume_freep) Volume *v = NULL;
        assert_int_equal(volume_load(f->source, &v), 0);
        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_every_variant_refused, setup, teardown),
        };

        test_require(test_have_executable("cryptsetup"), "cryptsetup (Debian package cryptsetup-bin)");
        test_require(test_have_executable("python3"), "python3");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        test_require(!isempty(getenv("SEALVOL_CORRUPT_GENERATOR")), "SEALVOL_CORRUPT_GENERATOR");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
