/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-secmem.c: the key-material allocator locks, hides from core dumps, and wipes on free. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "secmem.h"

/* secmem.c is linked with -Wl,--wrap=munmap: every unmap of a secure region passes through here
 * first, so we can look at the bytes the kernel is about to take back. */
int __real_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len);

static const uint8_t *watched;
static size_t watched_len;
static bool watched_was_wiped;
static bool watched_was_unmapped;

int __wrap_munmap(void *addr, size_t len) {
        const uint8_t *a = addr;

        if (watched && watched >= a && watched + watched_len <= a + len) {
                watched_was_unmapped = true;
                watched_was_wiped = true;
                for (size_t i = 0; i < len; i++)
                        if (a[i] != 0)
                                watched_was_wiped = false;
        }
        return __real_munmap(addr, len);
}

/* The VmFlags line of the /proc/self/smaps entry that contains p. */
static bool mapping_flags(const void *p, char *ret, size_t size) {
        _cleanup_fclose_ FILE *f = fopen("/proc/self/smaps", "re");
        char line[512];
        bool in = false;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;

                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
                        in = (uintptr_t) p >= lo && (uintptr_t) p < hi;
                        continue;
                }
                if (in && strncmp(line, "VmFlags:", 8) == 0) {
                        snprintf(ret, size, "%s", line + 8);
                        return true;
                }
        }
        return false;
}

static bool has_flag(const char *flags, const char *flag) {
        char padded[8];

        snprintf(padded, sizeof(padded), " %s", flag);
        return strstr(flags, padded) != NULL;
}

static void test_alloc_is_zeroed_and_sized(void **state) {
        _cleanup_secure_ uint8_t *p = NULL;

        (void) state;
        p = secure_alloc(100);
        assert_non_null(p);
        assert_int_equal(secure_size(p), 100);
        for (size_t i = 0; i < 100; i++)
                assert_int_equal(p[i], 0);
        /* 16-byte alignment, for any key type a caller puts there. */
        assert_int_equal((uintptr_t) p % 16, 0);
}

static void test_alloc_refuses_bad_sizes(void **state) {
        (void) state;
        errno = 0;
        assert_null(secure_alloc(0));
        assert_int_equal(errno, EINVAL);
        errno = 0;
        assert_null(secure_alloc(SECURE_ALLOC_MAX + 1));
        assert_int_equal(errno, EINVAL);
        assert_null(secure_free(NULL));
        assert_int_equal(secure_size(NULL), 0);
}

static void test_mapping_is_locked_undumpable_wiped_on_fork(void **state) {
        _cleanup_secure_ uint8_t *p = NULL;
        char flags[512];

        (void) state;
        p = secure_alloc(64);
        assert_non_null(p);
        assert_true(mapping_flags(p, flags, sizeof(flags)));
        assert_true(has_flag(flags, "lo")); /* mlock()ed */
        assert_true(has_flag(flags, "dd")); /* MADV_DONTDUMP */
        assert_true(has_flag(flags, "wf")); /* MADV_WIPEONFORK */
}

static void test_free_wipes_before_unmap(void **state) {
        uint8_t *p;

        (void) state;
        p = secure_alloc(4000);
        assert_non_null(p);
        memset(p, 0xA5, 4000);

        watched = p;
        watched_len = 4000;
        watched_was_wiped = watched_was_unmapped = false;
        assert_null(secure_free(p));
        watched = NULL;

        assert_true(watched_was_unmapped);
        assert_true(watched_was_wiped);
}

static void test_memdup(void **state) {
        const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
        _cleanup_secure_ uint8_t *p = NULL;

        (void) state;
        p = secure_memdup(key, sizeof(key));
        assert_non_null(p);
        assert_memory_equal(p, key, sizeof(key));
        assert_int_equal(secure_size(p), sizeof(key));
}

static void test_memeq_secure(void **state) {
        uint8_t a[33], b[33];

        (void) state;
        memset(a, 7, sizeof(a));
        memset(b, 7, sizeof(b));
        assert_true(memeq_secure(a, b, sizeof(a)));
        b[32] ^= 1;
        assert_false(memeq_secure(a, b, sizeof(a)));
        assert_true(memeq_secure(a, b, 32));
        assert_true(memeq_secure(a, b, 0));
}

static void test_cleanup_erase_scope(void **state) {
        /* The variable's storage outlives its scope only in the enclosing struct, where we can look. */
        struct {
                uint8_t secret[16];
        } box;

        (void) state;
        {
                _cleanup_(erase_regionp) _unused_ struct erase_region wipe = { .p = box.secret,
                                                                                .n = sizeof(box.secret) };
                memset(box.secret, 0x5A, sizeof(box.secret));
        }
        for (size_t i = 0; i < sizeof(box.secret); i++)
                assert_int_equal(box.secret[i], 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_alloc_is_zeroed_and_sized),
                cmocka_unit_test(test_alloc_refuses_bad_sizes),
                cmocka_unit_test(test_mapping_is_locked_undumpable_wiped_on_fork),
                cmocka_unit_test(test_free_wipes_before_unmap),
                cmocka_unit_test(test_memdup),
                cmocka_unit_test(test_memeq_secure),
                cmocka_unit_test(test_cleanup_erase_scope),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
