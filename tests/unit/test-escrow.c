/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-escrow.c: the escrow record and its strict reader (round trips plain and through CMS, every
 * malformed field refused, wrong key, truncated CMS, the VMK record told apart), the spool (plain and
 * encrypted to the DRA, read back, refused in a directory others can write, its plain records
 * encrypted once there is a DRA), the hook's envelope (the password inside CMS, the Key ID in clear)
 * and the hook (its input, output, exit status, a hang killed at the time limit together with what it
 * started, one that does not read its input, one that cannot run).
 */

#include <dirent.h>
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
#include "encoding.h"
#include "escrow.h"
#include "fileio.h"
#include "json-util.h"
#include "openssl-util.h"
#include "recovery.h"
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

/* ---- reading records back ----------------------------------------------------------------------- */

static void assert_entry_is_sample(const EscrowEntry *got, const EscrowPassword *e) {
        char a[GUID_STRING_MAX], b[GUID_STRING_MAX];

        assert_int_equal(got->type, ESCROW_RECORD_PASSWORD);
        assert_string_equal(got->hostname, e->hostname);
        if (e->machine_id)
                assert_string_equal(got->machine_id, e->machine_id);
        else
                assert_null(got->machine_id);
        assert_string_equal(got->volume_uuid, e->volume_uuid);
        assert_string_equal(got->device, e->device);
        assert_string_equal(guid_format(&got->key_id, a), guid_format(&e->key_id, b));
        assert_string_equal(guid_format(&got->vmk_id, a), guid_format(&e->vmk_id, b));
        assert_int_equal(got->created, e->created);
        assert_non_null(got->password);
        assert_string_equal(got->password, e->password);
        /* In secure memory: secure_size() aborts on anything else. */
        assert_int_equal(secure_size(got->password), RECOVERY_PASSWORD_LEN + 1);
}

static void test_entry_round_trip(void **state) {
        EscrowPassword e = sample();
        _cleanup_secure_ char *json = NULL;
        size_t size;

        (void) state;
        for (int with_machine_id = 1; with_machine_id >= 0; with_machine_id--) {
                _cleanup_(escrow_entry_done) EscrowEntry got = {}, again = {};

                e.machine_id = with_machine_id ? "0123456789abcdef0123456789abcdef" : NULL;
                json = secure_free(json);
                assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
                assert_int_equal(escrow_entry_from_json(json, size, &got), ESCROW_RECORD_PASSWORD);
                assert_entry_is_sample(&got, &e);
                assert_false(got.encrypted);
                /* The same through the spool reader, which needs no key for a plain record. */
                assert_int_equal(escrow_entry_open(json, size, NULL, &again), ESCROW_RECORD_PASSWORD);
                assert_entry_is_sample(&again, &e);
                assert_false(again.encrypted);
        }

        /* Empty hostname and device are what the daemon writes when it knows neither. */
        {
                _cleanup_(escrow_entry_done) EscrowEntry got = {};

                e.hostname = "";
                e.device = "";
                json = secure_free(json);
                assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
                assert_int_equal(escrow_entry_from_json(json, size, &got), ESCROW_RECORD_PASSWORD);
                assert_entry_is_sample(&got, &e);
        }
}

/* json with from (which must occur exactly once) replaced by to, in secure memory. */
static char *mutate(const char *json, const char *from, const char *to, size_t *ret_size) {
        const char *at = strstr(json, from);
        size_t n;
        char *out;

        if (!at)
                fail_msg("\"%s\" not in the record", from);
        assert_null(strstr(at + 1, from));
        n = strlen(json) - strlen(from) + strlen(to);
        out = secure_alloc(n + 1);
        assert_non_null(out);
        memcpy(out, json, (size_t) (at - json));
        memcpy(out + (at - json), to, strlen(to));
        memcpy(out + (at - json) + strlen(to), at + strlen(from), strlen(at + strlen(from)));
        *ret_size = n;
        return out;
}

static void test_entry_malformed(void **state) {
        static const struct {
                const char *from, *to;
                int error;
        } cases[] = {
                /* version and type */
                { "\"sealvol_escrow_version\": 1", "\"sealvol_escrow_version\": 2", -EPROTONOSUPPORT },
                { "\"sealvol_escrow_version\": 1", "\"sealvol_escrow_version\": 0", -EBADMSG },
                { "\"sealvol_escrow_version\": 1", "\"sealvol_escrow_version\": \"1\"", -EBADMSG },
                { "\"sealvol_escrow_version\": 1", "\"sealvol_escrow_version\": 1.0", -EBADMSG },
                { "\"sealvol_escrow_version\": 1,", "", -EBADMSG },
                { "\"recovery-password\"", "\"recovery-key\"", -EBADMSG },
                { "\"recovery-password\"", "\"retired\"", -EBADMSG },
                { "\"recovery-password\"", "\"vmk\"", -EBADMSG },
                { "\"recovery-password\"", "null", -EBADMSG },
                /* hostname, machine id, device: printable, bounded */
                { "\"db1.example.com\"", "\"db1\\u001b[2Jexample\"", -EBADMSG },
                { "\"db1.example.com\"", "\"db1\\u0000x\"", -EBADMSG },
                { "\"db1.example.com\"", "42", -EBADMSG },
                { "\"0123456789abcdef0123456789abcdef\"", "\"0123456789ABCDEF0123456789ABCDEF\"", -EBADMSG },
                { "\"0123456789abcdef0123456789abcdef\"", "\"0123456789abcdef0123456789abcde\"", -EBADMSG },
                { "\"/dev/disk/by-id/\\\"quoted\\\"\\\\name\"", "\"/dev/sdb\\n\"", -EBADMSG },
                /* identifiers in exactly the spelling written */
                { "\"0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60\"", "\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\"", -EBADMSG },
                { "\"0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60\"", "\"0f5c4b227d364cf19a3e1b2c3d4e5f60\"", -EBADMSG },
                { "\"0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60\"", "\"0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f6\"", -EBADMSG },
                { "\"063EA4E1-220C-4293-BA01-4754620A96E7\"", "\"063ea4e1-220c-4293-ba01-4754620a96e7\"", -EBADMSG },
                { "\"063EA4E1-220C-4293-BA01-4754620A96E7\"", "\"{063EA4E1-220C-4293-BA01-4754620A96E7}\"", -EBADMSG },
                { "\"063EA4E1-220C-4293-BA01-4754620A96E7\"", "\"00000000-0000-0000-0000-000000000000\"", -EBADMSG },
                { "\"063EA4E1-220C-4293-BA01-4754620A96E7\"", "\"063EA4E1-220C-4293-BA01-4754620A96EG\"", -EBADMSG },
                { "\"5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11\"", "\"5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D1\"", -EBADMSG },
                { "\"2026-11-18T11:06:40Z\"", "\"2026-11-18 11:06:40\"", -EBADMSG },
                { "\"2026-11-18T11:06:40Z\"", "1795000000", -EBADMSG },
                /* the password: checksums, range, form, one raw string member */
                { "-459558\"", "-459559\"", -EBADMSG },           /* block 8 not a multiple of 11 */
                { "131648-", "720896-", -EBADMSG },              /* 11 * 65536: out of range */
                { "131648-338723-", "131648 338723-", -EBADMSG }, /* not canonical */
                { "-459558\"", "-45955\"", -EBADMSG },
                { "-459558\"", "-4595580\"", -EBADMSG },
                { "\"131648-", "\"\\u0031\\u0033\\u0031648-", -EBADMSG },
                { "\"recovery_password\":\"", "\"recovery_password\": \"", 0 }, /* JSON spacing is fine */
                { "\"recovery_password\":\"", "\"recovery_passwort\":\"", -EBADMSG },
                { "\"recovery_password\":\"", "\"recovery\\u005fpassword\":\"", -EBADMSG },
                { "\"recovery_password\":\"", "\"x\":\"\",\"recovery_password\":\"", -EBADMSG },
                { "\"recovery_password\":\"", "\"hostname\":\"\",\"recovery_password\":\"", 0 }, /* json-c: last wins */
                { "\"created\":", "\"recovery_password\":\"131648-338723-204908-284702-214797-556644-119295-459558\",\"created\":", -EBADMSG },
                { "\"created\":", "\"recovery_password\":\"x\",\"created\":", -EBADMSG },
                { "\"created\":", "\"hostname\":\"\\\"recovery_password\\\":\\\"\",\"created\":", -EBADMSG },
                /* structure */
                { "\"type\":", "\"extra\": true, \"type\":", -EBADMSG },
                { "\"type\":", "/* c */ \"type\":", -EBADMSG },
                { "\"}\n", "\",}\n", -EBADMSG },
                { "\"}\n", "\"}\n{}", -EBADMSG },
                { "\"}\n", "\"}\n\0", -EBADMSG },
                { "{", "[{", -EBADMSG },
        };
        EscrowPassword e = sample();
        _cleanup_secure_ char *json = NULL;
        size_t size;

        (void) state;
        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(escrow_entry_done) EscrowEntry got = {};
                _cleanup_secure_ char *bad = NULL;
                size_t n;
                int r;

                bad = mutate(json, cases[i].from, cases[i].to, &n);
                /* The NUL case: its replacement is cut short by strlen(), so count it in. */
                if (strstr(cases[i].from, "\"}\n") && !strcmp(cases[i].to, "\"}\n\0"))
                        n++;
                r = escrow_entry_from_json(bad, n, &got);
                if (r != cases[i].error)
                        fail_msg("case %zu (%s -> %s): %d, expected %d", i, cases[i].from, cases[i].to, r,
                                 cases[i].error);
                if (r >= 0)
                        assert_string_equal(got.password, PASSWORD);
                else
                        assert_null(got.password); /* ret untouched */
        }

        /* A second password hidden in a string the strict parser does not look into (json-c takes
         * single-quoted strings, in which '"' is not special), the real member's key escaped so that
         * only the hidden one is found in the text: refused, the hidden one is not the member. */
        {
                _cleanup_(escrow_entry_done) EscrowEntry got = {};
                _cleanup_secure_ char *step = NULL, *bad = NULL;
                size_t n;

                step = mutate(json, "\"db1.example.com\"",
                              "'\"recovery_password\":\"" PASSWORD "\"'", &n);
                bad = mutate(step, "\"recovery_password\":\"" PASSWORD "\"}",
                             "\"recovery\\u005fpassword\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                             &n);
                assert_int_equal(escrow_entry_from_json(bad, n, &got), -EBADMSG);
                assert_null(got.password);
        }

        /* Oversized: a record above what the writer writes, whatever is in it. */
        {
                _cleanup_(escrow_entry_done) EscrowEntry got = {};
                _cleanup_free_ char *device = malloc(ESCROW_RECORD_MAX);
                _cleanup_secure_ char *bad = NULL;
                size_t n;

                assert_non_null(device);
                memset(device, 'd', ESCROW_RECORD_MAX - 1);
                device[0] = '"';
                device[ESCROW_RECORD_MAX - 2] = '"';
                device[ESCROW_RECORD_MAX - 1] = '\0';
                bad = mutate(json, "\"/dev/disk/by-id/\\\"quoted\\\"\\\\name\"", device, &n);
                assert_int_equal(escrow_entry_from_json(bad, n, &got), -EBADMSG);
        }
        /* Truncated anywhere (but for the final newline, which is not part of the object). */
        assert_int_equal(json[size - 1], '\n');
        for (size_t n = 0; n < size; n++) {
                _cleanup_(escrow_entry_done) EscrowEntry got = {};

                assert_int_equal(escrow_entry_open(json, n, NULL, &got),
                                 n == size - 1 ? ESCROW_RECORD_PASSWORD : -EBADMSG);
        }
}

static void test_entry_cms(void **state) {
        static const char *const names[] = { "rsa2048", "ec256" };
        EscrowPassword e = sample();
        _cleanup_secure_ char *json = NULL;
        size_t size;

        (void) state;
        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_(X509_freep) X509 *cert = dra_fixture_cert(names[i]);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = dra_fixture_key(names[i]);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *other = dra_fixture_key(names[1 - i]);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *other_same_type = EVP_PKEY_is_a(key, "RSA")
                                                                      ? dra_fixture_key("rsa3072-noext")
                                                                      : dra_fixture_key("ec384");
                _cleanup_(escrow_entry_done) EscrowEntry got = {};
                _cleanup_free_ uint8_t *der = NULL;
                size_t der_size;

                assert_non_null(cert);
                assert_non_null(key);
                assert_non_null(other);
                assert_non_null(other_same_type);
                assert_int_equal(dra_wrap(cert, json, size, &der, &der_size), 0);

                assert_int_equal(escrow_entry_open(der, der_size, key, &got), ESCROW_RECORD_PASSWORD);
                assert_entry_is_sample(&got, &e);
                assert_true(got.encrypted);
                escrow_entry_done(&got);

                /* The wrong DRA key, of either type; no key at all. */
                assert_int_equal(escrow_entry_open(der, der_size, other, &got), -EKEYREJECTED);
                assert_int_equal(escrow_entry_open(der, der_size, other_same_type, &got), -EKEYREJECTED);
                assert_int_equal(escrow_entry_open(der, der_size, NULL, &got), -ENOKEY);
                assert_null(got.password);

                /* Truncated at every length, and trailing bytes. */
                for (size_t n = 1; n < der_size; n++)
                        assert_int_equal(escrow_entry_open(der, n, key, &got), -EBADMSG);
                {
                        _cleanup_free_ uint8_t *longer = malloc(der_size + 1);

                        assert_non_null(longer);
                        memcpy(longer, der, der_size);
                        longer[der_size] = 0;
                        assert_int_equal(escrow_entry_open(longer, der_size + 1, key, &got), -EBADMSG);
                }
                /* The last ciphertext byte flipped: the padding, or the JSON it gives, is refused. */
                der[der_size - 1] ^= 0x55;
                assert_int_equal(escrow_entry_open(der, der_size, key, &got), -EBADMSG);
                assert_null(got.password);
        }

        /* CMS of something that is not a record. */
        {
                _cleanup_(X509_freep) X509 *cert = dra_fixture_cert("rsa2048");
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = dra_fixture_key("rsa2048");
                _cleanup_(escrow_entry_done) EscrowEntry got = {};
                _cleanup_free_ uint8_t *der = NULL;
                size_t der_size;

                assert_int_equal(dra_wrap(cert, PASSWORD, strlen(PASSWORD), &der, &der_size), 0);
                assert_int_equal(escrow_entry_open(der, der_size, key, &got), -EBADMSG);
                assert_int_equal(escrow_entry_open("garbage", 7, key, &got), -EBADMSG);
                assert_int_equal(escrow_entry_open("", 0, key, &got), -EBADMSG);
        }
}

/* The password's first group of digits and all its digits in a row: what would give it away in any
 * layout. */
static void assert_no_password(const void *data, size_t size) {
        assert_null(memmem(data, size, "131648", 6));
        assert_null(memmem(data, size, "131648338723", 12));
}

/* The hook's record with a DRA: the Key ID and the rest in clear, the password only inside CMS, the
 * record inside the one the spool holds; read back with the DRA key, and only if the two agree. */
static void test_envelope(void **state) {
        _cleanup_(X509_freep) X509 *cert = dra_fixture_cert("rsa2048");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = dra_fixture_key("rsa2048"), *other = dra_fixture_key("ec256");
        _cleanup_(escrow_entry_done) EscrowEntry got = {}, inner = {};
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *envelope = NULL, *fp = dra_fixture_fingerprint("rsa2048");
        _cleanup_free_ void *der = NULL;
        _cleanup_secure_ void *plain = NULL;
        EscrowPassword e = sample();
        size_t der_size, plain_size;
        json_object *x;

        (void) state;
        assert_non_null(cert);
        assert_int_equal(escrow_password_to_envelope(&e, cert, &envelope), 0);
        assert_no_password(envelope, strlen(envelope));

        o = json_tokener_parse(envelope);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "type", &x));
        assert_string_equal(json_object_get_string(x), "recovery-password-cms");
        assert_true(json_object_object_get_ex(o, "key_id", &x));
        assert_string_equal(json_object_get_string(x), "063EA4E1-220C-4293-BA01-4754620A96E7");
        assert_true(json_object_object_get_ex(o, "hostname", &x));
        assert_string_equal(json_object_get_string(x), "db1.example.com");
        assert_true(json_object_object_get_ex(o, "dra_fingerprint", &x));
        assert_string_equal(json_object_get_string(x), fp);
        assert_false(json_object_object_get_ex(o, "recovery_password", NULL));
        /* Inside: the plain record, as the spool's .cms holds it. */
        assert_true(json_object_object_get_ex(o, "record_cms", &x));
        assert_int_equal(base64_decode(json_object_get_string(x), &der, &der_size), 0);
        assert_int_equal(dra_unwrap(key, der, der_size, &plain, &plain_size), 0);
        assert_int_equal(escrow_entry_from_json(plain, plain_size, &inner), ESCROW_RECORD_PASSWORD);
        assert_entry_is_sample(&inner, &e);

        /* Read back as the password record it carries, with the key only. */
        assert_int_equal(escrow_entry_open(envelope, strlen(envelope), key, &got), ESCROW_RECORD_PASSWORD);
        assert_entry_is_sample(&got, &e);
        assert_true(got.encrypted);
        escrow_entry_done(&got);
        assert_int_equal(escrow_entry_open(envelope, strlen(envelope), NULL, &got), -ENOKEY);
        assert_int_equal(escrow_entry_from_json(envelope, strlen(envelope), &got), -ENOKEY);
        assert_int_equal(escrow_entry_open(envelope, strlen(envelope), other, &got), -EKEYREJECTED);

        /* Clear members that disagree with the record inside: another Key ID or volume would send the
         * DRA holder to the wrong disk. */
        {
                static const struct {
                        const char *from, *to;
                } edits[] = {
                        { "063EA4E1-220C", "163EA4E1-220C" },
                        { "0f5c4b22-7d36", "1f5c4b22-7d36" },
                        { "db1.example.com", "db2.example.com" },
                        { "\"recovery-password-cms\"", "\"recovery-password\"" },
                };

                for (size_t i = 0; i < ELEMENTSOF(edits); i++) {
                        size_t n;
                        _cleanup_secure_ char *bad = mutate(envelope, edits[i].from, edits[i].to, &n);

                        assert_int_equal(escrow_entry_open(bad, n, key, &got), -EBADMSG);
                        assert_null(got.password);
                }
        }
        /* An envelope inside CMS is nothing sealvol writes. */
        {
                _cleanup_free_ uint8_t *wrapped = NULL;
                size_t wrapped_size;

                assert_int_equal(dra_wrap(cert, envelope, strlen(envelope), &wrapped, &wrapped_size), 0);
                assert_int_equal(escrow_entry_open(wrapped, wrapped_size, key, &got), -EBADMSG);
        }
}

/* A DRA set where records were written in plaintext before: each is encrypted to it, the plain file
 * removed; a .cms already there is kept; what does not read as a record is left; a crash's .shred is
 * finished; a second pass finds nothing to do. */
static void test_spool_encrypt_plain(void **state) {
        const char *dir = *state;
        _cleanup_(X509_freep) X509 *cert = dra_fixture_cert("rsa2048");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = dra_fixture_key("rsa2048");
        _cleanup_free_ char *spool = path_join(dir, "spool"), *retired = NULL, *name = NULL, *damaged = NULL;
        _cleanup_free_ char *shred = NULL, *vmk = NULL;
        EscrowPassword e = sample(), older = sample(), gone = sample();
        unsigned encrypted = 99, skipped = 99;
        const EscrowPassword *records[] = { &e, &older, &gone };

        assert_non_null(cert);
        assert_int_equal(guid_parse("11111111-2222-4333-8444-555555555555", &older.key_id), 0);
        older.password = "000000-000011-000022-000033-000044-000055-000066-000077";
        assert_int_equal(guid_parse("66666666-2222-4333-8444-555555555555", &gone.key_id), 0);
        gone.volume_uuid = "aaaaaaaa-7d36-4cf1-9a3e-1b2c3d4e5f60";
        retired = path_join(spool, "retired");

        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                _cleanup_secure_ char *json = NULL;
                _cleanup_free_ char *n = NULL;
                size_t size;

                assert_int_equal(escrow_password_to_json(records[i], &json, &size), 0);
                assert_int_equal(escrow_spool_name(records[i]->volume_uuid, &records[i]->key_id, false, &n), 0);
                assert_int_equal(escrow_spool_store(i == 2 ? retired : spool, n, NULL, json, size, NULL, NULL), 0);
                /* The current password was escrowed again with the DRA already: its .cms exists. */
                if (i == 0) {
                        free(n);
                        assert_int_equal(escrow_spool_name(records[i]->volume_uuid, &records[i]->key_id, true, &n), 0);
                        assert_int_equal(escrow_spool_store(spool, n, cert, json, size, NULL, NULL), 0);
                }
        }
        /* Named as a record, not one: left, counted. A VMK record: not a password, untouched. What a
         * crash between the rename and the removal left: finished. */
        damaged = path_join(spool, "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60-77777777-2222-4333-8444-555555555555.json");
        assert_int_equal(write_file_atomic(damaged, "{\"not\":\"a record\"}", 18, 0600), 0);
        vmk = path_join(spool, "vmk-5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11.json");
        assert_int_equal(write_file_atomic(vmk, "{}", 2, 0600), 0);
        shred = path_join(spool, ".0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60-88888888-2222-4333-8444-555555555555.json.shred");
        assert_int_equal(write_file_atomic(shred, PASSWORD, strlen(PASSWORD), 0600), 0);

        assert_int_equal(escrow_spool_encrypt_plain(spool, cert, &encrypted, &skipped), 0);
        assert_int_equal(encrypted, 3);
        assert_int_equal(skipped, 1);
        assert_int_equal(access(shred, F_OK), -1);
        assert_int_equal(access(damaged, F_OK), 0);
        assert_int_equal(access(vmk, F_OK), 0);

        for (size_t i = 0; i < ELEMENTSOF(records); i++) {
                _cleanup_(escrow_entry_done) EscrowEntry got = {};
                _cleanup_free_ char *plain = NULL, *cms = NULL, *n = NULL, *p = NULL, *data = NULL;
                const char *d = i == 2 ? retired : spool;
                size_t size;

                assert_int_equal(escrow_spool_name(records[i]->volume_uuid, &records[i]->key_id, false, &n), 0);
                plain = path_join(d, n);
                assert_int_equal(access(plain, F_OK), -1);
                free(n);
                assert_int_equal(escrow_spool_name(records[i]->volume_uuid, &records[i]->key_id, true, &n), 0);
                cms = path_join(d, n);
                assert_int_equal(escrow_entry_open_file(cms, key, &got), ESCROW_RECORD_PASSWORD);
                assert_string_equal(got.password, records[i]->password);
                assert_true(got.encrypted);
                assert_int_equal(read_file_full(cms, 65536, &data, &size), 0);
                assert_no_password(data, size);
        }
        /* Nothing left anywhere in the spool that shows a password. */
        {
                _cleanup_(closedirp) DIR *dd = opendir(spool);
                struct dirent *de;

                assert_non_null(dd);
                while ((de = readdir(dd))) {
                        _cleanup_free_ char *p = path_join(spool, de->d_name), *data = NULL;
                        size_t size;

                        if (de->d_type != DT_REG)
                                continue;
                        assert_int_equal(read_file_full(p, 65536, &data, &size), 0);
                        assert_no_password(data, size);
                        assert_null(memmem(data, size, "000000-000011", 13));
                }
        }

        encrypted = skipped = 99;
        assert_int_equal(escrow_spool_encrypt_plain(spool, cert, &encrypted, &skipped), 0);
        assert_int_equal(encrypted, 0);
        assert_int_equal(skipped, 1);
        /* No spool yet: nothing to do. */
        {
                _cleanup_free_ char *none = path_join(dir, "none");
                assert_int_equal(escrow_spool_encrypt_plain(none, cert, &encrypted, &skipped), 0);
                assert_int_equal(encrypted, 0);
        }
}

static void test_entry_vmk(void **state) {
        static const char export[] = "{\"sealvol_vmk_export_version\":1,\"vmk_id\":\"5E1D0F64-4A1B-4C37-9E1D-"
                                     "2B8F5A0C7D11\",\"dra_cms\":\"AAAA\"}";
        _cleanup_(escrow_entry_done) EscrowEntry got = {};
        _cleanup_free_ char *json = NULL;
        char id[GUID_STRING_MAX];
        Guid vmk_id;

        (void) state;
        assert_int_equal(guid_parse("5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11", &vmk_id), 0);
        assert_int_equal(escrow_vmk_to_json("db1.example.com", NULL, &vmk_id, export, &json), 0);
        /* Recognised for what it is: no password, no volume. */
        assert_int_equal(escrow_entry_open(json, strlen(json), NULL, &got), ESCROW_RECORD_VMK);
        assert_string_equal(got.hostname, "db1.example.com");
        assert_null(got.machine_id);
        assert_string_equal(guid_format(&got.vmk_id, id), "5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11");
        assert_null(got.password);
        assert_null(got.device);
        escrow_entry_done(&got);
        json = mfree(json);

        assert_int_equal(escrow_vmk_to_json("db1", "0123456789abcdef0123456789abcdef", &vmk_id, export, &json), 0);
        assert_int_equal(escrow_entry_from_json(json, strlen(json), &got), ESCROW_RECORD_VMK);
        assert_string_equal(got.machine_id, "0123456789abcdef0123456789abcdef");
        escrow_entry_done(&got);

        /* A VMK record is strict too. */
        {
                static const char *const bad[] = {
                        "{\"sealvol_escrow_version\":1,\"type\":\"vmk\",\"hostname\":\"h\","
                        "\"vmk_id\":\"5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11\",\"vmk_export\":\"x\"}",
                        "{\"sealvol_escrow_version\":1,\"type\":\"vmk\",\"hostname\":\"h\","
                        "\"vmk_id\":\"5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11\"}",
                        "{\"sealvol_escrow_version\":1,\"type\":\"vmk\",\"hostname\":\"h\",\"key_id\":\"x\","
                        "\"vmk_id\":\"5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11\",\"vmk_export\":{}}",
                        "{\"sealvol_escrow_version\":1,\"type\":\"vmk\",\"hostname\":\"h\","
                        "\"vmk_id\":\"5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11\",\"vmk_export\":{\"recovery_password\":"
                        "\"131648-338723-204908-284702-214797-556644-119295-459558\"}}",
                };

                for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                        assert_int_equal(escrow_entry_from_json(bad[i], strlen(bad[i]), &got), -EBADMSG);
        }
}

static void test_entry_files(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *big = path_join(dir, "big.cms"), *name = NULL, *path = NULL;
        _cleanup_(escrow_entry_done) EscrowEntry got = {};
        _cleanup_secure_ char *json = NULL;
        _cleanup_free_ char *filler = NULL;
        EscrowPassword e = sample();
        Guid volume, key_id;
        bool encrypted;
        size_t size;

        assert_int_equal(escrow_password_to_json(&e, &json, &size), 0);
        assert_int_equal(escrow_spool_name(e.volume_uuid, &e.key_id, false, &name), 0);
        assert_int_equal(escrow_spool_store(dir, name, NULL, json, size, &path, NULL), 0);
        assert_int_equal(escrow_entry_open_file(path, NULL, &got), ESCROW_RECORD_PASSWORD);
        assert_entry_is_sample(&got, &e);

        /* The name says what the record should be. */
        assert_int_equal(escrow_spool_name_parse(name, &volume, &key_id, &encrypted), 0);
        assert_true(guid_equal(&key_id, &e.key_id));
        assert_false(encrypted);
        assert_int_equal(escrow_spool_name_parse(
                                 "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60-063EA4E1-220C-4293-BA01-4754620A96E7.cms", NULL,
                                 NULL, &encrypted), 0);
        assert_true(encrypted);
        assert_int_equal(escrow_spool_name_parse("vmk-5E1D0F64-4A1B-4C37-9E1D-2B8F5A0C7D11.json", NULL, NULL, NULL),
                         -EINVAL);
        assert_int_equal(escrow_spool_name_parse(
                                 "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60-063ea4e1-220c-4293-ba01-4754620a96e7.json", NULL,
                                 NULL, NULL), -EINVAL);
        assert_int_equal(escrow_spool_name_parse(
                                 "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60-063EA4E1-220C-4293-BA01-4754620A96E7.txt", NULL,
                                 NULL, NULL), -EINVAL);

        /* Not a record file: too large, a directory, missing. */
        filler = calloc(1, ESCROW_RECORD_FILE_MAX + 1);
        assert_non_null(filler);
        filler[0] = 0x30;
        assert_int_equal(write_file_atomic(big, filler, ESCROW_RECORD_FILE_MAX + 1, 0600), 0);
        assert_int_equal(escrow_entry_open_file(big, NULL, &got), -EFBIG);
        assert_int_equal(escrow_entry_open_file(dir, NULL, &got), -EISDIR);
        assert_int_equal(escrow_entry_open_file("/nonexistent/x.cms", NULL, &got), -ENOENT);
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
        ok = test_write_script(dir, "ok.sh", body);
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
                _cleanup_free_ char *bad = test_write_script(dir, "bad.sh", "cat >/dev/null\necho first >&2\necho 'vault sealed' >&2\nexit 3");
                assert_int_equal(escrow_hook_run(bad, "store", json, size, 5, &output, &error), -EREMOTEIO);
                assert_string_equal(error, "exit status 3: vault sealed");
                free(error);
                error = NULL;
        }

        /* A hook that exits without reading its input: no SIGPIPE for us, just its status. */
        {
                _cleanup_free_ char *deaf = test_write_script(dir, "deaf.sh", "exit 0");
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
                hang = test_write_script(dir, "hang.sh", body);
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
                _cleanup_free_ char *sig = test_write_script(dir, "sig.sh", "kill -TERM $$");
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
                cmocka_unit_test(test_entry_round_trip),
                cmocka_unit_test(test_entry_malformed),
                cmocka_unit_test(test_entry_cms),
                cmocka_unit_test(test_entry_vmk),
                cmocka_unit_test(test_envelope),
                cmocka_unit_test_setup_teardown(test_spool_encrypt_plain, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_entry_files, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_spool_plain_and_encrypted, test_setup_tmpdir,
                                                test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_hook, test_setup_tmpdir, test_teardown_tmpdir),
        };

        test_require(getenv("SEALVOL_DRA_FIXTURES") != NULL, "the generated DRA fixtures");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
