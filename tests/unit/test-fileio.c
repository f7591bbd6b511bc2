/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-fileio.c: atomic replacement survives SIGKILL at any moment (the file always holds the old or
 * the new content in full), bounded reads, and the strict hex/base64 codecs.
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
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "encoding.h"
#include "fileio.h"
#include "test-util.h"

#define CONTENT_SIZE (256 * 1024)
#define KILL_ROUNDS 40

static void test_atomic_write_survives_sigkill(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *path = path_join(dir, "state.json");
        _cleanup_free_ char *a = malloc(CONTENT_SIZE), *b = malloc(CONTENT_SIZE);

        assert_non_null(path);
        assert_non_null(a);
        assert_non_null(b);
        memset(a, 'a', CONTENT_SIZE);
        memset(b, 'b', CONTENT_SIZE);
        assert_int_equal(write_file_atomic(path, a, CONTENT_SIZE, 0600), 0);

        for (unsigned round = 0; round < KILL_ROUNDS; round++) {
                _cleanup_free_ char *got = NULL;
                unsigned delay_us;
                struct stat st;
                size_t n;
                pid_t pid;

                assert_int_equal(RAND_bytes((unsigned char *) &delay_us, sizeof(delay_us)), 1);
                delay_us %= 20000;

                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0)
                        /* Replace the file over and over, alternating contents, until killed. */
                        for (unsigned i = 0;; i++)
                                if (write_file_atomic(path, i % 2 ? a : b, CONTENT_SIZE, 0600) < 0)
                                        _exit(1);

                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) delay_us * 1000 }, NULL);
                assert_int_equal(kill(pid, SIGKILL), 0);
                assert_int_equal(waitpid(pid, NULL, 0), pid);

                assert_int_equal(read_file_full(path, CONTENT_SIZE, &got, &n), 0);
                assert_int_equal(n, CONTENT_SIZE);
                assert_true(memcmp(got, a, n) == 0 || memcmp(got, b, n) == 0);
                assert_int_equal(stat(path, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0600);
        }
}

static void test_atomic_write_mode_and_errors(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *path = path_join(dir, "f"), *got = NULL;
        _cleanup_free_ char *missing = path_join(dir, "no-such-dir/f");
        struct stat st;
        size_t n;

        assert_int_equal(write_file_atomic(path, "x", 1, 0640), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        assert_int_equal(write_file_atomic(path, "hello", 5, 0600), 0);
        assert_int_equal(read_file_full(path, 5, &got, &n), 0);
        assert_int_equal(n, 5);
        assert_string_equal(got, "hello");
        free(got);
        got = NULL;
        assert_int_equal(read_file_full(path, 4, &got, &n), -EFBIG);
        assert_null(got);
        assert_int_equal(write_file_atomic(missing, "x", 1, 0600), -ENOENT);
        assert_int_equal(read_file_full(dir, 100, &got, &n), -EBADFD);
}

/* What a killed write_file_atomic() leaves, and only that, is swept. */
static void test_sweep_stale_temporaries(void **state) {
        const char *dir = *state;
        static const char *const stale[] = { "vmk.sealed.tmp.a1B2c3", "x.json.tmp.ZZZZZZ" };
        static const char *const kept[] = { "vmk.sealed", "x.tmp.short", "x.tmp.abcdefg", "x.tmp.ab-def", ".tmp.abcdef" };
        _cleanup_free_ char *sub = path_join(dir, "d.tmp.Abcdef"), *link = path_join(dir, "l.tmp.Abcdef");
        _cleanup_free_ char *missing = path_join(dir, "missing");

        for (size_t i = 0; i < ELEMENTSOF(stale); i++) {
                _cleanup_free_ char *p = path_join(dir, stale[i]);
                assert_int_equal(write_file_atomic(p, "x", 1, 0600), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(kept); i++) {
                _cleanup_free_ char *p = path_join(dir, kept[i]);
                assert_int_equal(write_file_atomic(p, "x", 1, 0600), 0);
        }
        assert_int_equal(mkdir(sub, 0700), 0);          /* not a file: somebody else's */
        assert_int_equal(symlink("vmk.sealed", link), 0);

        assert_int_equal(sweep_stale_temporaries(dir), (int) ELEMENTSOF(stale));
        for (size_t i = 0; i < ELEMENTSOF(stale); i++) {
                _cleanup_free_ char *p = path_join(dir, stale[i]);
                assert_int_equal(access(p, F_OK), -1);
        }
        for (size_t i = 0; i < ELEMENTSOF(kept); i++) {
                _cleanup_free_ char *p = path_join(dir, kept[i]);
                assert_int_equal(access(p, F_OK), 0);
        }
        assert_int_equal(access(sub, F_OK), 0);
        assert_int_equal(faccessat(AT_FDCWD, link, F_OK, AT_SYMLINK_NOFOLLOW), 0);
        assert_int_equal(sweep_stale_temporaries(dir), 0);
        assert_int_equal(sweep_stale_temporaries(missing), 0);
}

static void test_hex(void **state) {
        _cleanup_free_ char *s = NULL;
        _cleanup_free_ void *d = NULL;
        uint8_t fixed[3];
        size_t n;

        (void) state;
        s = hex_encode("\x00\x01\xab\xff", 4);
        assert_string_equal(s, "0001abff");
        assert_int_equal(hex_decode("0001ABff", &d, &n), 0);
        assert_int_equal(n, 4);
        assert_memory_equal(d, "\x00\x01\xab\xff", 4);
        assert_int_equal(hex_decode("abc", &d, &n), -EINVAL);
        assert_int_equal(hex_decode("zz", &d, &n), -EINVAL);
        assert_int_equal(hex_decode_fixed("0a0b0c", fixed, 3), 0);
        assert_memory_equal(fixed, "\x0a\x0b\x0c", 3);
        assert_int_equal(hex_decode_fixed("0a0b", fixed, 3), -EINVAL);
}

static void test_base64(void **state) {
        static const struct {
                const char *plain, *encoded;
        } vectors[] = {
                /* RFC 4648, section 10. */
                { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },         { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
        };
        static const char *const bad[] = { "Zg=", "Zg", "Z===", " Zm9v", "Zm9v\n", "Zm9!", "Zh==", "Zm9vYmFy====" };

        (void) state;
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                _cleanup_free_ char *e = base64_encode(vectors[i].plain, strlen(vectors[i].plain));
                _cleanup_free_ void *d = NULL;
                size_t n;

                assert_string_equal(e, vectors[i].encoded);
                assert_int_equal(base64_decode(vectors[i].encoded, &d, &n), 0);
                assert_int_equal(n, strlen(vectors[i].plain));
                assert_memory_equal(d, vectors[i].plain, n);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                void *d = NULL;
                size_t n;

                assert_int_equal(base64_decode(bad[i], &d, &n), -EINVAL);
                assert_null(d);
        }
}

static void test_utf8(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL;

        (void) state;
        assert_true(utf8_is_printable("CN=2026-11-23T08:27:01\\+00:00{A494C89A},CN=Łódź,DC=test"));
        assert_true(utf8_is_printable(""));
        assert_false(utf8_is_printable("line\nbreak"));
        assert_false(utf8_is_printable("\x7f"));
        assert_false(utf8_is_printable("\xc3"));             /* truncated */
        assert_false(utf8_is_printable("\xc0\xaf"));         /* overlong */
        assert_false(utf8_is_printable("\xed\xa0\x80"));     /* surrogate */
        assert_false(utf8_is_printable("\xf4\x90\x80\x80")); /* above U+10FFFF */
        a = utf8_sanitize("ok \x01\xff\xc3\xa9 end\n");
        assert_string_equal(a, "ok ??\xc3\xa9 end?");
        b = utf8_sanitize("");
        assert_string_equal(b, "");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_utf8),
                cmocka_unit_test_setup_teardown(test_atomic_write_survives_sigkill, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_atomic_write_mode_and_errors, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_sweep_stale_temporaries, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_base64),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
