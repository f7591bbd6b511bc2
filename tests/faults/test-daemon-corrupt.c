/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-corrupt.c: the corrupt volumes of tests/generate-corrupt-volumes.sh, end to end. A
 * volume provisioned by sealvold has its device replaced by each broken variant in turn, as a disk
 * that rots or is tampered with under a running server: unlocking it through sealvolctl fails with
 * exit code 7 and, on the bus, with the error name that says what is wrong; the status shows it
 * unavailable with the reason; provisioning over a variant is refused; sealvold survives a start with
 * a broken volume and exits cleanly; and no image changes by a byte.
 */

#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>

#include <cmocka.h>

#include "bus-errors.h"
#include "daemon-fixture.h"
#include "dra-fixture.h"
#include "fileio.h"
#include "test-util.h"
#include "volume.h"

#define IMAGE_SIZE_MAX (64u * 1024u * 1024u)

typedef struct Fixture {
        DaemonFixture *d;
        sd_bus *bus;
        char *source, *other, *variants, *ctl;
        char uuid[VOLUME_UUID_STRING_MAX];
        char *object;
} Fixture;

/* The generator's index names the library's errno; the bus says it with its own name. */
static const struct {
        const char *errno_name;
        int error;
        const char *bus_error;
} expected_errors[] = {
        { "EMEDIUMTYPE", EMEDIUMTYPE, BUS_ERROR_NOT_LUKS2 },
        { "EUCLEAN", EUCLEAN, BUS_ERROR_DAMAGED_HEADER },
        { "ENOMSG", ENOMSG, BUS_ERROR_NOT_SEALVOL },
        { "EBADMSG", EBADMSG, BUS_ERROR_DAMAGED },
        { "EPROTONOSUPPORT", EPROTONOSUPPORT, BUS_ERROR_NEWER_FORMAT },
        { "EXDEV", EXDEV, BUS_ERROR_TOKEN_FROM_OTHER_VOLUME },
        { "EBADE", EBADE, BUS_ERROR_TAMPERED },
};

static const char *bus_error_for(const char *errno_name) {
        for (size_t i = 0; i < ELEMENTSOF(expected_errors); i++)
                if (streq(errno_name, expected_errors[i].errno_name))
                        return expected_errors[i].bus_error;
        return NULL;
}

static int errno_from_name(const char *errno_name) {
        for (size_t i = 0; i < ELEMENTSOF(expected_errors); i++)
                if (streq(errno_name, expected_errors[i].errno_name))
                        return expected_errors[i].error;
        return 0;
}

/* Runs sealvolctl (as root) with args; returns its exit code, stdout+stderr in *ret_output. */
static int ctl(Fixture *f, char **ret_output, const char *const *args) {
        _cleanup_free_ char *out = path_join(f->d->dir, "ctl.out");
        char *argv[16] = { f->ctl };
        int status;
        size_t n = 1;
        pid_t pid;

        assert_non_null(out);
        for (; args[n - 1] && n < ELEMENTSOF(argv) - 1; n++)
                argv[n] = (char *) args[n - 1];
        argv[n] = NULL;
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

                if (o < 0 || in < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(o, STDOUT_FILENO) < 0 ||
                    dup2(o, STDERR_FILENO) < 0)
                        _exit(120);
                execv(argv[0], argv);
                _exit(122);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        *ret_output = test_read_file(out);
        assert_non_null(*ret_output);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#define CTL(f, out, ...) ctl(f, out, (const char *const[]) { __VA_ARGS__, NULL })

static int provision(Fixture *f, const char *name, char **ret_image) {
        _cleanup_free_ char *out = NULL;
        int r;

        r = daemon_fixture_new_image(f->d, name, ret_image);
        if (r < 0)
                return r;
        return CTL(f, &out, "-q", "provision", *ret_image) == 0 ? 0 : -EIO;
}

/* sealvold with a DRA certificate (so volumes get every protector), two volumes it provisioned, and
 * the generator's variants of the first. */
static int setup(void **state) {
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt"), *out = NULL, *cmd = NULL, *data = NULL;
        _cleanup_free_ char *fp = dra_fixture_fingerprint("rsa2048"), *config = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        Fixture *f = calloc(1, sizeof(*f));
        size_t n;

        if (!f)
                return -1;
        *state = f;
        /* The certificate is set over the bus, so the configuration pins it. */
        if (!fp || asprintf(&config, "[DRA]\nPinnedFingerprint=%s\n", fp) < 0)
                return -1;
        if (daemon_fixture_new("test-daemon-corrupt", config, &f->d) < 0 || sd_bus_open_system(&f->bus) < 0) {
                fprintf(stderr, "Failed to start sealvold and its bus.\n");
                return -1;
        }
        /* A copy of sealvolctl next to the fixture, as test-daemon does. */
        f->ctl = path_join(f->d->dir, "sealvolctl");
        if (!f->ctl || read_file_full(getenv("SEALVOLCTL"), 64 * 1024 * 1024, &data, &n) < 0 ||
            write_file_atomic(f->ctl, data, n, 0755) < 0)
                return -1;

        /* The certificate after the first volume (which makes the VMK); it adds a DRA protector to each. */
        if (provision(f, "source.img", &f->source) < 0 || provision(f, "other.img", &f->other) < 0)
                return -1;
        if (!cert || CTL(f, &out, "dra", "set", cert) != 0) {
                fprintf(stderr, "sealvolctl dra set: %s\n", strempty(out));
                return -1;
        }
        if (volume_load(f->source, &v) < 0)
                return -1;
        snprintf(f->uuid, sizeof(f->uuid), "%s", v->token.volume_uuid);
        if (sd_bus_path_encode("/org/sealvol1/volume", f->uuid, &f->object) < 0)
                return -1;

        f->variants = path_join(f->d->dir, "variants");
        if (!f->variants || asprintf(&cmd, "'%s' '%s' '%s' '%s'", getenv("SEALVOL_CORRUPT_GENERATOR"), f->source,
                                     f->other, f->variants) < 0)
                return -1;
        return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state) {
        Fixture *f = *state;
        pid_t pid = f->d ? f->d->pid : 0;
        int r = 0;

        sd_bus_flush_close_unref(f->bus);
        if (f->d) {
                r = daemon_fixture_stop(f->d);
                if (r < 0) {
                        _cleanup_free_ char *log = test_read_file(f->d->log_path);
                        fprintf(stderr, "sealvold did not stop cleanly (%s); its log:\n%s\n", strerror(-r),
                                strempty(log));
                }
        }
        daemon_fixture_free(f->d);
        free(f->source);
        free(f->other);
        free(f->variants);
        free(f->ctl);
        free(f->object);
        free(f);
        return r < 0 || (pid > 0 && kill(pid, 0) == 0) ? -1 : 0;
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

/* Replaces the content of the volume's device (in place: the daemon knows it by path). */
static void copy_image(const char *from, const char *to) {
        _cleanup_free_ char *cmd = NULL;

        assert_true(asprintf(&cmd, "cp --sparse=always '%s' '%s'", from, to) > 0);
        assert_int_equal(system(cmd), 0);
}

static char *volume_state(Fixture *f, char **ret_reason) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", f->object, "org.sealvol1.Volume", "State",
                                               &error, &s) >= 0);
        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", f->object, "org.sealvol1.Volume",
                                               "StateReason", &error, ret_reason) >= 0);
        return s;
}

static void test_every_variant_refused_end_to_end(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *index_path = path_join(f->variants, "index"), *pristine = NULL, *out = NULL;
        _cleanup_fclose_ FILE *index = NULL;
        uint8_t original[32];
        char line[256];
        unsigned n = 0, bad = 0;

        /* The volume unlocks before anything is broken. */
        assert_int_equal(CTL(f, &out, "unlock", f->uuid), 0);
        free(out);
        pristine = path_join(f->d->dir, "pristine.img");
        assert_non_null(pristine);
        copy_image(f->source, pristine);
        image_digest(f->source, original);

        index = fopen(index_path, "re");
        assert_non_null(index);
        while (fgets(line, sizeof(line), index)) {
                _cleanup_free_ char *file = NULL, *variant = NULL, *state_name = NULL, *reason = NULL;
                sd_bus_error error = SD_BUS_ERROR_NULL;
                char name[64], errno_name[32];
                uint8_t before[32], after[32], variant_before[32], variant_after[32];
                const char *bus_error;
                int r;

                assert_int_equal(sscanf(line, "%63s %31s", name, errno_name), 2);
                bus_error = bus_error_for(errno_name);
                assert_non_null(bus_error);
                assert_true(asprintf(&file, "%s.img", name) > 0);
                variant = path_join(f->variants, file);
                assert_non_null(variant);
                /* These load and open with the VMK; their recovery keyslot is refused before its KDF
                 * runs, whatever password is tried (a KDF of 2^24 iterations, or Argon2 with 4 GiB, would
                 * hold the daemon for seconds, or exhaust it). */
                if (streq(name, "recovery-kdf-huge") || streq(name, "recovery-kdf-argon2")) {
                        copy_image(variant, f->source);
                        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->object, "org.sealvol1.Volume",
                                                       "UnlockWithRecoveryPassword", &error, NULL, "st",
                                                       "000000-000000-000000-000000-000000-000000-000000-000000",
                                                       UINT64_C(0)) < 0);
                        if (!sd_bus_error_has_name(&error, BUS_ERROR_TAMPERED)) {
                                print_error("%s: UnlockWithRecoveryPassword failed with %s (%s), expected %s\n", name,
                                            error.name, error.message, BUS_ERROR_TAMPERED);
                                bad++;
                        }
                        sd_bus_error_free(&error);
                        print_message("%-24s refused by sealvold (%s)\n", name, BUS_ERROR_TAMPERED);
                        n++;
                        continue;
                }

                copy_image(variant, f->source);
                image_digest(f->source, before);
                image_digest(variant, variant_before);

                if (streq(name, "dra-cms-damaged")) {
                        _cleanup_free_ char *key = dra_fixture_path("rsa2048", ".key");

                        r = CTL(f, &out, "--dra-key", key, "recover", f->uuid);
                } else {
                        r = CTL(f, &out, "unlock", f->uuid);
                        /* Over the bus: the error name says which damage it is. */
                        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", f->object, "org.sealvol1.Volume",
                                                       "Unlock", &error, NULL, "t", UINT64_C(0)) < 0);
                        if (!sd_bus_error_has_name(&error, bus_error)) {
                                print_error("%s: Unlock failed with %s (%s), expected %s\n", name, error.name,
                                            error.message, bus_error);
                                bad++;
                        }
                        sd_bus_error_free(&error);

                        state_name = volume_state(f, &reason);
                        /* A token that loads but is not the daemon's writing is tampered, not unreadable. */
                        if (streq(errno_name, "EBADE") ? !streq(state_name, "tampered") || !strstr(reason, "not changed") :
                                                         !streq(state_name, "unavailable") ||
                                                                 !streq(reason, strerror(errno_from_name(errno_name)))) {
                                print_error("%s: state %s (%s)\n", name, state_name, reason);
                                bad++;
                        }
                }
                if (r != 7) {
                        print_error("%s: sealvolctl exited %d: %s\n", name, r, out);
                        bad++;
                }
                free(out);
                out = NULL;

                /* Nor is the variant (at its own path) provisioned over, except a header without a
                 * token: an interrupted provisioning. */
                if (!streq(name, "no-token")) {
                        r = CTL(f, &out, "provision", variant);
                        if (r == 0) {
                                print_error("%s: provisioned over it: %s\n", name, out);
                                bad++;
                        }
                        free(out);
                        out = NULL;
                        image_digest(variant, variant_after);
                        if (memcmp(variant_before, variant_after, sizeof(variant_before)) != 0) {
                                print_error("%s: provisioning over it changed it\n", name);
                                bad++;
                        }
                }

                image_digest(f->source, after);
                if (memcmp(before, after, sizeof(before)) != 0) {
                        print_error("%s: the image changed\n", name);
                        bad++;
                }
                print_message("%-24s refused by sealvold (%s)\n", name, bus_error);
                n++;
        }
        assert_int_equal(bad, 0);
        assert_true(n >= 20);

        /* A start with a broken volume: the daemon comes up, says why, and stops cleanly. */
        _cleanup_free_ char *truncated = path_join(f->variants, "truncated-header.img");
        _cleanup_free_ char *state_name = NULL, *reason = NULL;
        assert_non_null(truncated);
        copy_image(truncated, f->source);
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        f->bus = sd_bus_flush_close_unref(f->bus);
        assert_int_equal(sd_bus_open_system(&f->bus), 0);
        state_name = volume_state(f, &reason);
        assert_string_equal(state_name, "unavailable");
        assert_string_equal(reason, strerror(EUCLEAN));
        assert_int_equal(CTL(f, &out, "status"), 0);
        assert_non_null(strstr(out, "unavailable"));
        free(out);
        out = NULL;

        /* And the volume back as it was: it unlocks again, nothing was lost. */
        copy_image(pristine, f->source);
        assert_int_equal(CTL(f, &out, "unlock", f->uuid), 0);
        uint8_t restored[32];
        image_digest(f->source, restored);
        assert_memory_equal(original, restored, sizeof(original));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_every_variant_refused_end_to_end, setup, teardown),
        };

        test_require(getuid() == 0, "root (the daemon owns org.sealvol1 on the private bus)");
        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon");
        test_require(test_have_executable("cryptsetup"), "cryptsetup (Debian package cryptsetup-bin)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        test_require(!isempty(getenv("SEALVOL_CORRUPT_GENERATOR")), "SEALVOL_CORRUPT_GENERATOR");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
