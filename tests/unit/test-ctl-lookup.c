/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-ctl-lookup.c: `sealvolctl recovery lookup`, offline, on a spool written by escrow_spool_store():
 * records plain and encrypted to a DRA fixture, found by the first 8 hex digits of their Key ID in
 * either case and with dashes, a damaged record among them reported and skipped, another DRA's record,
 * an ambiguous prefix, the VMK export record, record files given directly, --json and -q, and the
 * exit code of each. No bus: the system bus address points nowhere. Under `--setup valgrind` every
 * sealvolctl runs under memcheck too.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "dra-fixture.h"
#include "escrow.h"
#include "fileio.h"
#include "openssl-util.h"
#include "recovery.h"
#include "secmem.h"
#include "test-util.h"

#define VALGRIND_ERROR_EXIT 99

/* Key IDs: two share their first 8 hex digits, as two volumes can. */
#define KEY_PLAIN "063EA4E1-220C-4293-BA01-4754620A96E7"
#define KEY_CMS_1 "7A3C55D0-0B1E-4C4D-8F00-112233445566"
#define KEY_CMS_2 "7A3C55D0-9999-4C4D-8F00-665544332211"
#define KEY_OTHER_DRA "E0E0E0E0-1234-4321-8000-0000000000AA"
#define KEY_DAMAGED_ONLY "D4A4A4A4-1234-4321-8000-0000000000BB"
#define VOLUME_1 "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60"
#define VOLUME_2 "1f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f61"
#define VOLUME_3 "2f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f62"

typedef struct Fixture {
        char *dir, *spool, *key, *other_key, *not_key, *config;
        char *passwords[5]; /* secure memory: plain, cms 1, cms 2, other DRA, (unused) */
        char *plain_path, *cms_path, *damaged_path, *vmk_path;
} Fixture;

static char *new_password(void) {
        _cleanup_secure_ uint8_t *key = NULL;
        char *password = NULL;

        assert_int_equal(recovery_key_generate(&key), 0);
        assert_int_equal(recovery_password_format(key, &password), 0);
        return password;
}

/* Escrows password as the daemon does; returns the spool file's path. */
static char *store(Fixture *f, const char *volume, const char *key_id, const char *password, X509 *cert,
                   const char *device) {
        EscrowPassword e = {
                .hostname = "db1.example.com",
                .volume_uuid = volume,
                .device = device,
                .created = 1795000000,
                .password = password,
        };
        _cleanup_secure_ char *json = NULL;
        _cleanup_free_ char *name = NULL;
        char *path = NULL;
        bool verified = false;
        size_t size;

        assert_int_equal(guid_parse(key_id, &e.key_id), 0);
        assert_int_equal(guid_parse("5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11", &e.vmk_id), 0);
        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
        assert_int_equal(escrow_spool_name(volume, &e.key_id, cert != NULL, &name), 0);
        assert_int_equal(escrow_spool_store(f->spool, name, cert, json, size, &path, &verified), 0);
        assert_true(verified);
        return path;
}

static int setup(void **state) {
        _cleanup_(X509_freep) X509 *rsa = dra_fixture_cert("rsa2048"), *ec = dra_fixture_cert("ec256");
        _cleanup_free_ char *p = NULL, *vmk_json = NULL, *conf = NULL;
        Fixture *f = calloc(1, sizeof(Fixture));
        Guid vmk_id;

        if (!f || !rsa || !ec || test_tmpdir_new("test-ctl-lookup", &f->dir) < 0)
                return -1;
        f->spool = path_join(f->dir, "spool");
        f->key = dra_fixture_path("rsa2048", ".key");
        f->other_key = dra_fixture_path("ec256", ".key");
        f->not_key = dra_fixture_path("rsa2048", ".crt");
        f->config = path_join(f->dir, "sealvol.conf");
        for (size_t i = 0; i < 4; i++)
                f->passwords[i] = new_password();
        *state = f;

        f->plain_path = store(f, VOLUME_1, KEY_PLAIN, f->passwords[0], NULL, "/dev/sdb");
        f->cms_path = store(f, VOLUME_2, KEY_CMS_1, f->passwords[1], rsa, "/dev/disk/by-id/virtio-data2");
        p = store(f, VOLUME_3, KEY_CMS_2, f->passwords[2], rsa, "/dev/sdd");
        p = mfree(p);
        p = store(f, VOLUME_3, KEY_OTHER_DRA, f->passwords[3], ec, "/dev/sdd");

        /* Damaged: named for a Key ID with the first 8 digits of the plain one, and one alone. */
        f->damaged_path = path_join(f->spool, VOLUME_3 "-063EA4E1-0000-4000-8000-000000000000.cms");
        assert_int_equal(write_file_atomic(f->damaged_path, "\x30\x82\x01\x00garbage", 12, 0600), 0);
        free(p);
        p = path_join(f->spool, VOLUME_3 "-" KEY_DAMAGED_ONLY ".json");
        assert_int_equal(write_file_atomic(p, "{\"sealvol_escrow_version\":1}", 28, 0600), 0);

        /* The VMK export as the daemon spools it: no password in it, skipped by a search. */
        assert_int_equal(guid_parse("5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11", &vmk_id), 0);
        assert_int_equal(escrow_vmk_to_json("db1.example.com", NULL, &vmk_id, "{\"sealvol_vmk_export_version\":1}",
                                            &vmk_json), 0);
        f->vmk_path = path_join(f->spool, "vmk-5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11.json");
        assert_int_equal(write_file_atomic(f->vmk_path, vmk_json, strlen(vmk_json), 0600), 0);
        /* Not records at all: ignored. */
        free(p);
        p = path_join(f->spool, "README");
        assert_int_equal(write_file_atomic(p, "x", 1, 0600), 0);

        assert_true(asprintf(&conf, "[Escrow]\nSpoolDirectory=%s\n", f->spool) > 0);
        assert_int_equal(write_file_atomic(f->config, conf, strlen(conf), 0600), 0);
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        if (f->dir)
                (void) rm_rf(f->dir);
        for (size_t i = 0; i < ELEMENTSOF(f->passwords); i++)
                secure_free(f->passwords[i]);
        free(f->dir);
        free(f->spool);
        free(f->key);
        free(f->other_key);
        free(f->not_key);
        free(f->config);
        free(f->plain_path);
        free(f->cms_path);
        free(f->damaged_path);
        free(f->vmk_path);
        free(f);
        return 0;
}

/* Runs sealvolctl with args; its exit code, stdout and stderr. */
static int ctl(Fixture *f, char **ret_out, char **ret_err, const char *const *args) {
        _cleanup_free_ char *out = path_join(f->dir, "ctl.out"), *err = path_join(f->dir, "ctl.err");
        _cleanup_free_ char *supp = NULL, *exit_arg = NULL;
        bool valgrind = getenv("SEALVOL_VALGRIND") && test_have_executable("valgrind");
        char *argv[32];
        size_t n = 0;
        int status;
        pid_t pid;

        if (valgrind) {
                assert_true(asprintf(&supp, "--suppressions=%s", getenv("SEALVOL_VALGRIND_SUPPRESSIONS")) > 0);
                assert_true(asprintf(&exit_arg, "--error-exitcode=%d", VALGRIND_ERROR_EXIT) > 0);
                argv[n++] = (char *) "valgrind";
                argv[n++] = (char *) "--tool=memcheck";
                argv[n++] = (char *) "--quiet";
                argv[n++] = (char *) "--leak-check=full";
                argv[n++] = (char *) "--show-leak-kinds=definite,indirect";
                argv[n++] = (char *) "--errors-for-leak-kinds=definite,indirect";
                argv[n++] = exit_arg;
                argv[n++] = supp;
        }
        argv[n++] = getenv("SEALVOLCTL");
        for (size_t i = 0; args[i]; i++) {
                assert_true(n < ELEMENTSOF(argv) - 1);
                argv[n++] = (char *) args[i];
        }
        argv[n] = NULL;

        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                int e = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                int in = open("/dev/null", O_RDONLY | O_CLOEXEC);

                if (o < 0 || e < 0 || in < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(o, STDOUT_FILENO) < 0 ||
                    dup2(e, STDERR_FILENO) < 0)
                        _exit(120);
                /* Offline: any attempt to reach a daemon would fail. */
                setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus", 1);
                setenv("SEALVOL_CONFIG", f->config, 1);
                execvp(argv[0], argv);
                _exit(122);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        *ret_out = test_read_file(out);
        *ret_err = test_read_file(err);
        assert_non_null(*ret_out);
        assert_non_null(*ret_err);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void expect(Fixture *f, int code, char **ret_out, char **ret_err, const char *const *args) {
        _cleanup_free_ char *out = NULL, *err = NULL;
        int r = ctl(f, &out, &err, args);

        if (r != code)
                fail_msg("sealvolctl recovery lookup ... %s: exit %d, expected %d:\n%s%s", args[2], r, code, out, err);
        if (ret_out)
                *ret_out = TAKE_PTR(out);
        if (ret_err)
                *ret_err = TAKE_PTR(err);
}

#define EXPECT(f, code, out, err, ...) expect(f, code, out, err, (const char *const[]) { __VA_ARGS__, NULL })

static void test_lookup_by_prefix(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *out = NULL, *err = NULL;

        /* The 8 digits of the recovery screen, in lower case: the plain record, and the damaged file
         * named like it reported and skipped. */
        EXPECT(f, 0, &out, &err, "recovery", "lookup", "--spool", f->spool, "--dra-key", f->key, "063ea4e1");
        assert_non_null(strstr(out, f->passwords[0]));
        assert_non_null(strstr(out, "Key ID:            " KEY_PLAIN "\n"));
        assert_non_null(strstr(out, "Volume:            " VOLUME_1 "\n"));
        assert_non_null(strstr(out, "Device:            /dev/sdb\n"));
        assert_non_null(strstr(out, "Host:              db1.example.com\n"));
        assert_non_null(strstr(out, "Created:           2026-11-18T11:06:40Z\n"));
        assert_non_null(strstr(out, f->plain_path));
        assert_null(strstr(out, f->passwords[1]));
        assert_non_null(strstr(err, f->damaged_path));
        assert_non_null(strstr(err, "skipped"));
        out = mfree(out);
        err = mfree(err);

        /* With dashes anywhere; the encrypted one by its full Key ID; without a key the plain one
         * needs none. The spool by default is the configured one. */
        EXPECT(f, 0, &out, NULL, "recovery", "lookup", "--spool", f->spool, "063E-A4E1");
        assert_non_null(strstr(out, f->passwords[0]));
        out = mfree(out);
        EXPECT(f, 0, &out, NULL, "recovery", "lookup", "--dra-key", f->key, KEY_CMS_1);
        assert_non_null(strstr(out, f->passwords[1]));
        assert_null(strstr(out, f->passwords[2]));
        assert_non_null(strstr(out, f->cms_path));
        out = mfree(out);

        /* Two volumes behind one prefix: both printed, and told apart by the exit code. */
        EXPECT(f, 11, &out, &err, "recovery", "lookup", "--spool", f->spool, "--dra-key", f->key, "7A3C55D0");
        assert_non_null(strstr(out, f->passwords[1]));
        assert_non_null(strstr(out, f->passwords[2]));
        assert_non_null(strstr(out, VOLUME_2));
        assert_non_null(strstr(out, VOLUME_3));
        assert_non_null(strstr(err, "matches 2"));
}

static void test_lookup_failures(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *out = NULL, *err = NULL;

        /* Nothing by that Key ID. */
        EXPECT(f, 4, &out, &err, "recovery", "lookup", "--spool", f->spool, "--dra-key", f->key, "FFFFFFFF");
        assert_string_equal(out, "");
        assert_non_null(strstr(err, "No recovery password with Key ID FFFFFFFF"));
        out = mfree(out);
        err = mfree(err);

        /* Only another DRA's record: the wrong key, or none, is exit code 5. */
        EXPECT(f, 5, &out, &err, "recovery", "lookup", "--spool", f->spool, "--dra-key", f->key, "e0e0e0e0");
        assert_string_equal(out, "");
        assert_non_null(strstr(err, "not encrypted to this DRA key"));
        out = mfree(out);
        err = mfree(err);
        EXPECT(f, 5, NULL, &err, "recovery", "lookup", "--spool", f->spool, "7A3C55D0");
        assert_non_null(strstr(err, "--dra-key"));
        err = mfree(err);
        EXPECT(f, 0, &out, NULL, "recovery", "lookup", "--spool", f->spool, "--dra-key", f->other_key, KEY_OTHER_DRA);
        assert_non_null(strstr(out, f->passwords[3]));
        out = mfree(out);

        /* Only a damaged record: which file, and why. */
        EXPECT(f, 7, &out, &err, "recovery", "lookup", "--spool", f->spool, "D4A4A4A4");
        assert_string_equal(out, "");
        assert_non_null(strstr(err, KEY_DAMAGED_ONLY ".json: not a valid sealvol escrow record, skipped"));
        out = mfree(out);
        err = mfree(err);

        /* Usage: nothing to look up, a key file that is missing or no key, too few digits. */
        EXPECT(f, 2, NULL, NULL, "recovery", "lookup");
        EXPECT(f, 2, NULL, NULL, "recovery", "lookup", "--dra-key", "/nonexistent/key", "063EA4E1");
        EXPECT(f, 5, NULL, NULL, "recovery", "lookup", "--dra-key", f->not_key, "063EA4E1");
        EXPECT(f, 2, NULL, &err, "recovery", "lookup", "063EA4");
        assert_non_null(strstr(err, "8"));
        err = mfree(err);
        EXPECT(f, 4, NULL, NULL, "recovery", "lookup", "--spool", "/nonexistent/spool", "063EA4E1");
}

static void test_lookup_files(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *out = NULL, *err = NULL;

        /* Records named on the command line, in order; the first failure's code. */
        EXPECT(f, 0, &out, NULL, "recovery", "lookup", "--dra-key", f->key, f->cms_path, f->plain_path);
        assert_non_null(strstr(out, f->passwords[0]));
        assert_non_null(strstr(out, f->passwords[1]));
        assert_true(strstr(out, f->passwords[1]) < strstr(out, f->passwords[0]));
        out = mfree(out);
        EXPECT(f, 7, &out, &err, "recovery", "lookup", "--dra-key", f->key, f->damaged_path, f->plain_path);
        assert_non_null(strstr(out, f->passwords[0]));
        assert_non_null(strstr(err, f->damaged_path));
        out = mfree(out);
        err = mfree(err);
        EXPECT(f, 5, NULL, NULL, "recovery", "lookup", f->cms_path);
        EXPECT(f, 5, NULL, NULL, "recovery", "lookup", "--dra-key", f->other_key, f->cms_path);
        EXPECT(f, 4, NULL, &err, "recovery", "lookup", f->vmk_path);
        assert_non_null(strstr(err, "VMK export"));
        err = mfree(err);
        EXPECT(f, 4, NULL, NULL, "recovery", "lookup", "./no-such-record.cms");
}

static void test_lookup_output(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *out = NULL, *expected = NULL;
        json_object *a, *o, *v;

        EXPECT(f, 0, &out, NULL, "recovery", "lookup", "-q", "--spool", f->spool, "063EA4E1");
        assert_true(asprintf(&expected, "%s\n", f->passwords[0]) > 0);
        assert_string_equal(out, expected);
        out = mfree(out);

        EXPECT(f, 11, &out, NULL, "--json", "recovery", "lookup", "--spool", f->spool, "--dra-key", f->key,
               "7a3c55d0");
        a = json_tokener_parse(out);
        assert_non_null(a);
        assert_true(json_object_is_type(a, json_type_array));
        assert_int_equal(json_object_array_length(a), 2);
        o = json_object_array_get_idx(a, 0);
        assert_true(json_object_object_get_ex(o, "key_id", &v));
        assert_string_equal(json_object_get_string(v), KEY_CMS_1);
        assert_true(json_object_object_get_ex(o, "recovery_password", &v));
        assert_string_equal(json_object_get_string(v), f->passwords[1]);
        assert_true(json_object_object_get_ex(o, "volume_uuid", &v));
        assert_string_equal(json_object_get_string(v), VOLUME_2);
        assert_true(json_object_object_get_ex(o, "device", &v));
        assert_string_equal(json_object_get_string(v), "/dev/disk/by-id/virtio-data2");
        assert_true(json_object_object_get_ex(o, "encrypted", &v));
        assert_true(json_object_get_boolean(v));
        assert_true(json_object_object_get_ex(o, "records", &v));
        assert_int_equal(json_object_array_length(v), 1);
        json_object_put(a);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup_by_prefix),
                cmocka_unit_test(test_lookup_failures),
                cmocka_unit_test(test_lookup_files),
                cmocka_unit_test(test_lookup_output),
        };

        test_require(getenv("SEALVOL_DRA_FIXTURES") != NULL, "the generated DRA fixtures");
        test_require(getenv("SEALVOLCTL") != NULL, "sealvolctl ($SEALVOLCTL)");
        return cmocka_run_group_tests(tests, setup, teardown);
}
