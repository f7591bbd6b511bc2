/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-guid.c: Key ID GUIDs: text forms, prefix lookup, Active Directory byte order, generation. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "guid.h"

/* One known value in both layouts: the text form is RFC 4122 order, the MS bytes are what AD holds
 * in msFVE-RecoveryGuid for it. */
#define KNOWN_TEXT "063EA4E1-220C-4293-BA01-4754620A96E7"
static const uint8_t known_rfc[GUID_SIZE] = { 0x06, 0x3E, 0xA4, 0xE1, 0x22, 0x0C, 0x42, 0x93,
                                              0xBA, 0x01, 0x47, 0x54, 0x62, 0x0A, 0x96, 0xE7 };
static const uint8_t known_ms[GUID_SIZE] = { 0xE1, 0xA4, 0x3E, 0x06, 0x0C, 0x22, 0x93, 0x42,
                                             0xBA, 0x01, 0x47, 0x54, 0x62, 0x0A, 0x96, 0xE7 };

static Guid known_guid(void) {
        Guid g;

        memcpy(g.bytes, known_rfc, GUID_SIZE);
        return g;
}

static void test_format_known(void **state) {
        Guid g = known_guid();
        char s[GUID_STRING_MAX];

        (void) state;
        assert_ptr_equal(guid_format(&g, s), s);
        assert_string_equal(s, KNOWN_TEXT);
        assert_int_equal(strlen(s), GUID_STRING_MAX - 1);
}

static void test_parse_spellings(void **state) {
        static const char *const spellings[] = {
                KNOWN_TEXT,
                "063ea4e1-220c-4293-ba01-4754620a96e7",
                "063Ea4E1-220c-4293-bA01-4754620A96e7",
                "{063EA4E1-220C-4293-BA01-4754620A96E7}",
                "{063ea4e1-220c-4293-ba01-4754620a96e7}",
                "063EA4E1220C4293BA014754620A96E7",
                "063ea4e1220c4293ba014754620a96e7",
                "{063EA4E1220C4293BA014754620A96E7}",
        };
        Guid want = known_guid();

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(spellings); i++) {
                Guid g;

                memset(&g, 0xAA, sizeof(g));
                assert_int_equal(guid_parse(spellings[i], &g), 0);
                assert_memory_equal(g.bytes, want.bytes, GUID_SIZE);
        }
}

static void test_parse_rejects(void **state) {
        static const char *const bad[] = {
                "",
                "{}",
                "063EA4E1220C4293BA014754620A96E",     /* 31 hex digits */
                "063EA4E1220C4293BA014754620A96E7A",   /* 33 */
                "063EA4E1-220C-4293-BA01-4754620A96E", /* 35 in dashed form */
                "063EA4E1-220C-4293-BA01-4754620A96E7A",
                "063EA4E1-220C-4293-BA01-4754620A96G7", /* non-hex */
                "063EA4E1-220C-4293-BA01-4754620A96 7",
                "063EA4E1220C4293BA014754620A96EZ",
                "063EA4E12-20C-4293-BA01-4754620A96E7", /* misplaced dashes */
                "063EA4E1-220C4-293-BA01-4754620A96E7",
                "063EA4E1-220C-4293-BA014754620A96E7-",
                "-063EA4E1220C4293BA014754620A96E7-----",
                "063EA4E1-220C4293BA014754620A96E7", /* some dashes, not all */
                "063EA4E1-220C-4293-BA01+4754620A96E7",
                "{063EA4E1-220C-4293-BA01-4754620A96E7", /* lone braces */
                "063EA4E1-220C-4293-BA01-4754620A96E7}",
                "{{063EA4E1-220C-4293-BA01-4754620A96E7}}",
                "(063EA4E1-220C-4293-BA01-4754620A96E7)",
                " 063EA4E1-220C-4293-BA01-4754620A96E7", /* whitespace */
                "063EA4E1-220C-4293-BA01-4754620A96E7\n",
                "0x063EA4E1220C4293BA014754620A96",
        };
        Guid g, before;

        (void) state;
        memset(&g, 0x5C, sizeof(g));
        before = g;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(guid_parse(bad[i], &g), -EINVAL);
                /* ret is an output only on success. */
                assert_memory_equal(&g, &before, sizeof(g));
        }
        assert_int_equal(guid_parse(NULL, &g), -EINVAL);
        assert_int_equal(guid_parse(KNOWN_TEXT, NULL), -EINVAL);
}

static void test_round_trip(void **state) {
        (void) state;
        for (unsigned i = 0; i < 1000; i++) {
                Guid g, h;
                char s[GUID_STRING_MAX];

                assert_int_equal(guid_generate(&g), 0);
                assert_int_equal(guid_parse(guid_format(&g, s), &h), 0);
                assert_true(guid_equal(&g, &h));
        }
}

static void test_prefix(void **state) {
        Guid g = known_guid();

        (void) state;
        /* The operator's usual lookup: the first 8 hex digits, in either case. */
        assert_true(guid_matches_prefix(&g, "063EA4E1"));
        assert_true(guid_matches_prefix(&g, "063ea4e1"));
        assert_true(guid_matches_prefix(&g, "0"));
        assert_true(guid_matches_prefix(&g, "063EA4E1-"));
        assert_true(guid_matches_prefix(&g, "063EA4E1-220c"));
        assert_true(guid_matches_prefix(&g, "063EA4E1220C42"));
        assert_true(guid_matches_prefix(&g, "063E-A4E1")); /* dashes anywhere are ignored */
        assert_true(guid_matches_prefix(&g, KNOWN_TEXT));
        assert_true(guid_matches_prefix(&g, "063ea4e1220c4293ba014754620a96e7"));

        assert_false(guid_matches_prefix(&g, "063EA4E2"));
        assert_false(guid_matches_prefix(&g, "163EA4E1"));
        assert_false(guid_matches_prefix(&g, "63EA4E1")); /* a prefix, not a substring */
        assert_false(guid_matches_prefix(&g, KNOWN_TEXT "0"));
        assert_false(guid_matches_prefix(&g, "063EA4E1 "));
        assert_false(guid_matches_prefix(&g, "063EA4EX"));
        assert_false(guid_matches_prefix(&g, "{063EA4E1"));
        /* No hex digit, no match: an empty argument must not select every key. */
        assert_false(guid_matches_prefix(&g, ""));
        assert_false(guid_matches_prefix(&g, "---"));
        assert_false(guid_matches_prefix(&g, NULL));
}

static void test_ms_bytes(void **state) {
        Guid g = known_guid(), h;
        uint8_t ms[GUID_SIZE];

        (void) state;
        guid_to_ms_bytes(&g, ms);
        assert_memory_equal(ms, known_ms, GUID_SIZE);

        guid_from_ms_bytes(known_ms, &h);
        assert_true(guid_equal(&g, &h));

        /* Converting in place gives the same result as through a copy. */
        memcpy(h.bytes, known_ms, GUID_SIZE);
        guid_from_ms_bytes(h.bytes, &h);
        assert_true(guid_equal(&g, &h));

        for (unsigned i = 0; i < 100; i++) {
                assert_int_equal(guid_generate(&g), 0);
                guid_to_ms_bytes(&g, ms);
                guid_from_ms_bytes(ms, &h);
                assert_true(guid_equal(&g, &h));
                /* Data4 is not swapped. */
                assert_memory_equal(ms + 8, g.bytes + 8, 8);
        }
}

static void test_generate(void **state) {
        Guid a, b;
        char s[GUID_STRING_MAX];

        (void) state;
        assert_int_equal(guid_generate(&a), 0);
        assert_int_equal(guid_generate(&b), 0);
        assert_false(guid_equal(&a, &b));
        assert_false(guid_is_null(&a));

        for (unsigned i = 0; i < 1000; i++) {
                assert_int_equal(guid_generate(&a), 0);
                assert_int_equal(a.bytes[6] >> 4, 4);      /* version 4 */
                assert_int_equal(a.bytes[8] & 0xC0, 0x80); /* RFC 4122 variant */
                /* The same seen in the text form: xxxxxxxx-xxxx-4xxx-[89AB]xxx-xxxxxxxxxxxx */
                guid_format(&a, s);
                assert_int_equal(s[14], '4');
                assert_non_null(strchr("89AB", s[19]));
        }
        assert_int_equal(guid_generate(NULL), -EINVAL);
}

static void test_null_and_equal(void **state) {
        Guid null = {}, g = known_guid(), h = known_guid();
        char s[GUID_STRING_MAX];

        (void) state;
        assert_true(guid_is_null(&null));
        assert_false(guid_is_null(&g));
        assert_string_equal(guid_format(&null, s), "00000000-0000-0000-0000-000000000000");

        assert_true(guid_equal(&g, &h));
        h.bytes[15] ^= 1;
        assert_false(guid_equal(&g, &h));
        h = g;
        h.bytes[0] ^= 0x80;
        assert_false(guid_equal(&g, &h));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_known),
                cmocka_unit_test(test_parse_spellings),
                cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_prefix),
                cmocka_unit_test(test_ms_bytes),
                cmocka_unit_test(test_generate),
                cmocka_unit_test(test_null_and_equal),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
