/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-escrow.c: the escrow record, the spool (plain and encrypted to the DRA, read back, refused in
 * a directory others can write) and the hook (its input, output, exit status, a hang killed at the
 * time limit together with what it started, one that does not read its input, one that cannot run).
 */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "dra-fixture.h"
#include "dra.h"
#include "escrow.h"
#include "fileio.h"
#include "secmem.h"
#include "test-util.h"

#define PASSWORD "131648-338723-204908-284702-214797-556644-119295-459558"

static EscrowPassword sample(void) {
        EscrowPassword e = {
                .hostname = "db1.example.com",
                .machine_id = "0123456789abcdef0123456789abcdef",
                .volume_uuid = "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60",
                .device = "/dev/disk/by-id/\"quoted\"\\name",
                .created = 1795000000,
                .password = PASSWORD,
        };
        assert_int_equal(guid_parse("063EA4E1-220C-4293-BA01-4754620A96E7", &e.key_id), 0);
        assert_int_equal(guid_parse("5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11", &e.vmk_id), 0);
        return e;
}

static void test_targets(void **state) {
        _cleanup_free_ char *s = NULL;
        uint32_t mask;

        (void) state;
        assert_int_equal(escrow_targets_from_string("spool, hook ad", &mask), 0);
        assert_int_equal(mask, ESCROW_TARGETS_ALL);
        assert_int_equal(escrow_targets_from_string("", &mask), 0);
        assert_int_equal(mask, 0);
        assert_int_equal(escrow_targets_from_string("spool vault", &mask), -EINVAL);
        s = escrow_targets_to_string((1u << ESCROW_TARGET_AD) | (1u << ESCROW_TARGET_SPOOL));
        assert_string_equal(s, "spool ad");
}

/* What a hook or a server answers is checked for the password in any layout before it is kept. */
static void test_text_reveals_password(void **state) {
        static const char *const pw = "131648-338723-204908-284702-214797-556644-119295-459558";

        (void) state;
        assert_true(escrow_text_reveals_password(pw, pw));
        assert_true(escrow_text_reveals_password("stored {\"recovery_password\":\"131648-338723-204908-284702-214797-"
                                                 "556644-119295-459558\"}", pw));
        assert_true(escrow_text_reveals_password("131648338723204908284702214797556644119295459558", pw));
        assert_true(escrow_text_reveals_password("131648 338723 204908 284702 214797 556644 119295 459558 ok", pw));
        assert_true(escrow_text_reveals_password("x1316483387232049082847022147975566441192954595589", pw));
        /* A part, other digits, nothing: kept. */
        assert_false(escrow_text_reveals_password("131648-338723-204908-284702", pw));
        assert_false(escrow_text_reveals_password("131648-338723-204908-284702-214797-556644-119295-459559", pw));
        assert_false(escrow_text_reveals_password("file:/var/spool/escrow/0f5c4b22.json", pw));
        assert_false(escrow_text_reveals_password("", pw));
        assert_false(escrow_text_reveals_password(NULL, pw));
        assert_false(escrow_text_reveals_password(pw, NULL));
}

static void test_record(void **state) {
        EscrowPassword e = sample();
        _cleanup_secure_ char *json = NULL;
        json_object *o, *v;
        size_t size;

        (void) state;
        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
        assert_int_equal(strlen(json), size);
        o = json_tokener_parse(json);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "recovery_password", &v));
        assert_string_equal(json_object_get_string(v), PASSWORD);
        assert_true(json_object_object_get_ex(o, "key_id", &v));
        assert_string_equal(json_object_get_string(v), "063EA4E1-220C-4293-BA01-4754620A96E7");
        assert_true(json_object_object_get_ex(o, "device", &v));
        assert_string_equal(json_object_get_string(v), "/dev/disk/by-id/\"quoted\"\\name");
        assert_true(json_object_object_get_ex(o, "created", &v));
        assert_string_equal(json_object_get_string(v), "2026-11-18T11:06:40Z");
        assert_true(json_object_object_get_ex(o, "sealvol_escrow_version", &v));
        assert_int_equal(json_object_get_int(v), 1);
        json_object_put(o);

        /* Only the canonical password is ever sent. */
        e.password = "131648338723204908284702214797556644119295459558";
        assert_int_equal(escrow_password_to_json(&e, &json, &size), -EINVAL);
        e.password = "131648-338723-204908-284702-214797-556644-119295-459559";
        assert_int_equal(escrow_password_to_json(&e, &json, &size), -EINVAL);
        e.password = NULL;
        assert_int_equal(escrow_password_to_json(&e, &json, &size), -EINVAL);
}

static void test_spool_plain_and_encrypted(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *spool = path_join(dir, "spool"), *name = NULL, *path = NULL, *back = NULL;
        _cleanup_secure_ char *json = NULL;
        EscrowPassword e = sample();
        bool verified = false;
        struct stat st;
        size_t size, n;

        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);

        /* Plain, without a DRA: the record as it is, 0600, in a 0700 directory created for it. */
        assert_int_equal(escrow_spool_name(e.volume_uuid, &e.key_id, false, &name), 0);
        assert_string_equal(name, "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60-063EA4E1-220C-4293-BA01-4754620A96E7.json");
        assert_int_equal(escrow_spool_store(spool, name, NULL, json, size, &path, &verified), 0);
        assert_true(verified);
        assert_int_equal(stat(spool, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(read_file_full(path, 65536, &back, &n), 0);
        assert_int_equal(n, size);
        assert_memory_equal(back, json, size);
        free(name);
        free(path);
        path = NULL;

        /* Encrypted to the DRA: only the DRA key opens it, and what it opens is the record. */
        {
                X509 *cert = dra_fixture_cert("rsa2048");
                EVP_PKEY *key = dra_fixture_key("rsa2048");
                _cleanup_free_ char *der = NULL;
                _cleanup_secure_ void *plain = NULL;
                size_t der_size, plain_size;

                assert_non_null(cert);
                assert_non_null(key);
                assert_int_equal(escrow_spool_name(e.volume_uuid, &e.key_id, true, &name), 0);
                assert_int_equal(escrow_spool_store(spool, name, cert, json, size, &path, &verified), 0);
                assert_true(verified);
                assert_int_equal(read_file_full(path, 65536, &der, &der_size), 0);
                assert_null(memmem(der, der_size, PASSWORD, strlen(PASSWORD)));
                assert_int_equal(dra_unwrap(key, (uint8_t *) der, der_size, &plain, &plain_size), 0);
                assert_int_equal(plain_size, size);
                assert_memory_equal(plain, json, size);
                X509_free(cert);
                EVP_PKEY_free(key);
        }

        /* A directory others could write into is refused: records would be swapped under us. */
        assert_int_equal(chmod(spool, 0777), 0);
        assert_int_equal(escrow_spool_store(spool, "x.json", NULL, json, size, NULL, NULL), -EPERM);
        assert_int_equal(chmod(spool, 0700), 0);
        /* Names that would leave the directory. */
        assert_int_equal(escrow_spool_store(spool, "../x.json", NULL, json, size, NULL, NULL), -EINVAL);
        assert_int_equal(escrow_spool_name("../etc", &e.key_id, false, &name), -EINVAL);
}

/* Writes an executable shell script into dir. */
static char *write_hook(const char *dir, const char *name, const char *body) {
        char *path = path_join(dir, name);
        _cleanup_free_ char *text = NULL;

        assert_non_null(path);
        assert_true(asprintf(&text, "#!/bin/sh\n%s\n", body) > 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), 0700), 0);
        return path;
}

static void test_hook(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *out_path = path_join(dir, "hook.out"), *body = NULL, *ok = NULL, *got = NULL;
        _cleanup_free_ char *output = NULL, *error = NULL;
        _cleanup_secure_ char *json = NULL;
        EscrowPassword e = sample();
        size_t size;

        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);

        /* Its input is the record, its argument the verb, its first line of output the location; it
         * inherits nothing but stdin, stdout and stderr, and a bare environment. */
        assert_true(asprintf(&body,
                             "cat >'%s'\n"
                             "echo \"$1\" >>'%s'\n"
                             "ls /proc/self/fd | wc -l >>'%s'\n"
                             "env | grep -c . >>'%s'\n"
                             "echo 'vault:secret/escrow/abc'\necho second line", out_path, out_path, out_path,
                             out_path) > 0);
        ok = write_hook(dir, "ok.sh", body);
        assert_int_equal(escrow_hook_run(ok, "store", json, size, 5, &output, &error), 0);
        assert_string_equal(output, "vault:secret/escrow/abc");
        got = test_read_file(out_path);
        assert_non_null(got);
        assert_memory_equal(got, json, size);
        /* verb, then 4 descriptors (0, 1, 2, and the one ls reads /proc/self/fd with), then 3
         * environment variables (PATH, LANG, and the shell's own PWD). */
        assert_string_equal(got + size, "store\n4\n3\n");
        free(output);
        output = NULL;

        /* A failing hook: its status and last line of stderr. */
        {
                _cleanup_free_ char *bad = write_hook(dir, "bad.sh", "cat >/dev/null\necho first >&2\necho 'vault sealed' >&2\nexit 3");
                assert_int_equal(escrow_hook_run(bad, "store", json, size, 5, &output, &error), -EREMOTEIO);
                assert_string_equal(error, "exit status 3: vault sealed");
                free(error);
                error = NULL;
        }

        /* A hook that exits without reading its input: no SIGPIPE for us, just its status. */
        {
                _cleanup_free_ char *deaf = write_hook(dir, "deaf.sh", "exit 0");
                _cleanup_free_ char *big = malloc(ESCROW_RECORD_MAX);

                memset(big, 'x', ESCROW_RECORD_MAX);
                for (int i = 0; i < 20; i++)
                        assert_int_equal(escrow_hook_run(deaf, "store", big, ESCROW_RECORD_MAX, 5, NULL, NULL), 0);
        }

        /* A hook that hangs, and leaves a child behind: killed at the limit, child and all. */
        {
                _cleanup_free_ char *pidfile = path_join(dir, "child.pid"), *hang = NULL, *pid_text = NULL;
                struct timespec a, b;
                double elapsed;

                free(body);
                assert_true(asprintf(&body, "sleep 600 & echo $! >'%s'\nsleep 600", pidfile) > 0);
                hang = write_hook(dir, "hang.sh", body);
                clock_gettime(CLOCK_MONOTONIC, &a);
                assert_int_equal(escrow_hook_run(hang, "store", json, size, 1, NULL, &error), -ETIMEDOUT);
                clock_gettime(CLOCK_MONOTONIC, &b);
                elapsed = (double) (b.tv_sec - a.tv_sec) + (double) (b.tv_nsec - a.tv_nsec) / 1e9;
                assert_true(elapsed >= 0.9 && elapsed < 10);
                assert_string_equal(error, "killed after 1 s");
                pid_text = test_read_file(pidfile);
                assert_non_null(pid_text);
                /* The child, in the hook's process group, went with it (reaped by init or a zombie). */
                for (int i = 0; i < 100 && test_process_running((pid_t) atoi(pid_text)); i++)
                        usleep(10000);
                assert_false(test_process_running((pid_t) atoi(pid_text)));
                free(error);
                error = NULL;
        }

        /* Killed by a signal. */
        {
                _cleanup_free_ char *sig = write_hook(dir, "sig.sh", "kill -TERM $$");
                assert_int_equal(escrow_hook_run(sig, "store", json, size, 5, NULL, &error), -EREMOTEIO);
                assert_non_null(strstr(error, "killed by signal"));
        }

        /* Not there, not executable, not absolute. */
        {
                _cleanup_free_ char *missing = path_join(dir, "missing.sh"), *plain = path_join(dir, "plain.sh");

                assert_int_equal(escrow_hook_run(missing, "store", json, size, 5, NULL, NULL), -ENOENT);
                assert_int_equal(write_file_atomic(plain, "#!/bin/sh\n", 10, 0600), 0);
                assert_int_equal(escrow_hook_run(plain, "store", json, size, 5, NULL, NULL), -EACCES);
                assert_int_equal(escrow_hook_run("hook.sh", "store", json, size, 5, NULL, NULL), -EINVAL);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_targets),
                cmocka_unit_test(test_text_reveals_password),
                cmocka_unit_test(test_record),
                cmocka_unit_test_setup_teardown(test_spool_plain_and_encrypted, test_setup_tmpdir,
                                                test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_hook, test_setup_tmpdir, test_teardown_tmpdir),
        };

        test_require(getenv("SEALVOL_DRA_FIXTURES") != NULL, "the generated DRA fixtures");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
