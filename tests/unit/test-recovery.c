/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-recovery.c: recovery passwords: known answers, accepted spellings, typos named by block. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "recovery.h"
#include "secmem.h"

/* DESIGN.md "Recovery password": key bytes 00 01 .. 0f, and all zeroes. All 0xff is the top of the
 * range in every block. */
#define SEQ_PASSWORD "002816-008470-014124-019778-025432-031086-036740-042394"
#define ZERO_PASSWORD "000000-000000-000000-000000-000000-000000-000000-000000"
#define FF_PASSWORD "720885-720885-720885-720885-720885-720885-720885-720885"

static const uint8_t seq_key[RECOVERY_KEY_SIZE] = { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
                                                    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };
static const uint8_t zero_key[RECOVERY_KEY_SIZE] = {};
static const uint8_t ff_key[RECOVERY_KEY_SIZE] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                   0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static const struct {
        const uint8_t *key;
        const char *password;
} known[] = {
        { seq_key, SEQ_PASSWORD },
        { zero_key, ZERO_PASSWORD },
        { ff_key, FF_PASSWORD },
};

/* Parses input, which must succeed, and checks the key it gives and where that key lives. */
static void assert_parses_to(const char *input, const uint8_t want[static RECOVERY_KEY_SIZE]) {
        _cleanup_secure_ uint8_t *key = NULL;
        unsigned bad_block = 4242;
        int r;

        r = recovery_password_parse(input, &key, &bad_block);
        if (r != 0)
                fail_msg("\"%s\": %d (block %u)", input, r, bad_block);
        assert_non_null(key);
        /* secure_size() aborts on memory that secure_alloc() did not hand out. */
        assert_int_equal(secure_size(key), RECOVERY_KEY_SIZE);
        assert_memory_equal(key, want, RECOVERY_KEY_SIZE);
        /* An error output, not touched on success. */
        assert_int_equal(bad_block, 4242);
}

/* Parses input, which must fail with error at block, and leave the key output alone. */
static void assert_parse_fails(const char *input, int error, unsigned block) {
        uint8_t sentinel;
        uint8_t *key = &sentinel;
        unsigned bad_block = 4242;
        int r;

        r = recovery_password_parse(input, &key, &bad_block);
        if (r != error || bad_block != block)
                fail_msg("\"%s\": got %d block %u, want %d block %u", input, r, bad_block, error, block);
        assert_ptr_equal(key, &sentinel);

        /* The block number is optional. */
        assert_int_equal(recovery_password_parse(input, &key, NULL), error);
        assert_ptr_equal(key, &sentinel);
}

static void replace_char(char *s, char from, char to) {
        for (; *s != '\0'; s++)
                if (*s == from)
                        *s = to;
}

static void remove_char(char *s, char c) {
        char *w = s;

        for (; *s != '\0'; s++)
                if (*s != c)
                        *w++ = *s;
        *w = '\0';
}

static void test_format_known(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(known); i++) {
                _cleanup_secure_ char *password = NULL;

                assert_int_equal(recovery_password_format(known[i].key, &password), 0);
                assert_int_equal(secure_size(password), RECOVERY_PASSWORD_LEN + 1);
                assert_string_equal(password, known[i].password);
                assert_int_equal(strlen(password), RECOVERY_PASSWORD_LEN);
        }
        assert_int_equal(recovery_password_format(seq_key, NULL), -EINVAL);
}

static void test_parse_known(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(known); i++)
                assert_parses_to(known[i].password, known[i].key);
}

static void test_generate(void **state) {
        _cleanup_secure_ uint8_t *a = NULL, *b = NULL;

        (void) state;
        assert_int_equal(recovery_key_generate(&a), 0);
        assert_int_equal(recovery_key_generate(&b), 0);
        assert_int_equal(secure_size(a), RECOVERY_KEY_SIZE);
        assert_int_equal(secure_size(b), RECOVERY_KEY_SIZE);
        assert_memory_not_equal(a, b, RECOVERY_KEY_SIZE);
        assert_int_equal(recovery_key_generate(NULL), -EINVAL);
}

static void test_round_trip(void **state) {
        (void) state;
        for (unsigned n = 0; n < 1000; n++) {
                _cleanup_secure_ uint8_t *key = NULL;
                _cleanup_secure_ char *password = NULL, *variant = NULL;

                assert_int_equal(recovery_key_generate(&key), 0);
                assert_int_equal(recovery_password_format(key, &password), 0);
                assert_int_equal(strlen(password), RECOVERY_PASSWORD_LEN);
                for (size_t i = 0; i < RECOVERY_PASSWORD_LEN; i++)
                        if (i % (RECOVERY_BLOCK_DIGITS + 1) == RECOVERY_BLOCK_DIGITS)
                                assert_int_equal(password[i], '-');
                        else
                                assert_in_range(password[i], '0', '9');

                assert_parses_to(password, key);

                variant = secure_memdup(password, RECOVERY_PASSWORD_LEN + 1);
                assert_non_null(variant);
                replace_char(variant, '-', ' ');
                assert_parses_to(variant, key);
                remove_char(variant, ' ');
                assert_int_equal(strlen(variant), RECOVERY_PASSWORD_BLOCKS * RECOVERY_BLOCK_DIGITS);
                assert_parses_to(variant, key);
        }
}

static void test_parse_spellings(void **state) {
        static const char *const spellings[] = {
                SEQ_PASSWORD,
                "002816 008470 014124 019778 025432 031086 036740 042394",
                "002816008470014124019778025432031086036740042394",
                "002816-008470 014124-019778 025432-031086 036740-042394",
                "002816 - 008470--014124  019778 -025432- 031086---036740 042394",
                "002816 -- - 008470 014124 019778 025432 031086 036740 042394",
                "  " SEQ_PASSWORD,
                SEQ_PASSWORD "  ",
                "\t " SEQ_PASSWORD " \r\n",
                "\n002816008470014124019778025432031086036740042394\n",
                "\v\f002816 008470 014124 019778 025432 031086 036740 042394\t",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(spellings); i++)
                assert_parses_to(spellings[i], seq_key);
}

static void test_parse_errors(void **state) {
        static const struct {
                const char *input;
                int error;
                unsigned block;
        } cases[] = {
                /* Not 8 blocks of 6 digits, and no single block to blame. */
                { "", -EINVAL, 0 },
                { " \t\n", -EINVAL, 0 },
                { "-", -EINVAL, 0 },
                { "00281600847001412401977802543203108603674004239", -EINVAL, 0 },   /* 47 digits */
                { "0028160084700141240197780254320310860367400423940", -EINVAL, 0 }, /* 49 */
                { SEQ_PASSWORD "-000000", -EINVAL, 0 },                              /* 9 blocks */
                { "002816-008470-014124-019778-025432-031086-036740", -EINVAL, 0 },  /* 7 blocks */
                { "002816008470-014124-019778-025432-031086-036740-042394", -EINVAL, 0 },
                { "-" SEQ_PASSWORD, -EINVAL, 0 },
                { SEQ_PASSWORD "-", -EINVAL, 0 },
                { "002816\t008470-014124-019778-025432-031086-036740-042394", -EINVAL, 0 },
                /* The block structure is visible: name the block. */
                { "002816-008470-01412-019778-025432-031086-036740-042394", -EINVAL, 3 },
                { "002816-008470-0141240-019778-025432-031086-036740-042394", -EINVAL, 3 },
                { "002816-008470-014124-019778-025432-031086-036740-04239", -EINVAL, 8 },
                { "002816-008470-014124-0197a8-025432-031086-036740-042394", -EINVAL, 4 },
                { "002816-008470-014124-019778-025432-031086-036740-04239O", -EINVAL, 8 },
                { "+02816-008470-014124-019778-025432-031086-036740-042394", -EINVAL, 1 },
                { "002816-008470-014124-019778-025432-031086-036740-042394\xc2\xa0", -EINVAL, 8 },
                { "002816008x70014124019778025432031086036740042394", -EINVAL, 2 },
                { "00281600847001412401977802543203108603674004239\x01", -EINVAL, 8 },
                /* A typo: one digit of block 5 changed. */
                { "002816-008470-014124-019778-025433-031086-036740-042394", -EDOM, 5 },
                { "002816 008470 014124 019778 025433 031086 036740 042394", -EDOM, 5 },
                { "002816008470014124019778025433031086036740042394", -EDOM, 5 },
                { "000000-000000-000000-000000-000000-000000-000000-000001", -EDOM, 8 },
                { "999998-008470-014124-019778-025432-031086-036740-042394", -EDOM, 1 },
                /* Multiples of 11 above 11 * 65535. */
                { "002816-720896-014124-019778-025432-031086-036740-042394", -ERANGE, 2 },
                { "002816-008470-014124-019778-025432-031086-036740-999999", -ERANGE, 8 },
                { "720896720896720896720896720896720896720896720896", -ERANGE, 1 },
                /* Several bad blocks: the first one is reported, whatever is wrong with it. */
                { "002816-008471-014124-019778-025432-720896-036740-042394", -EDOM, 2 },
                { "002816-008470-720896-019778-02543-031086-036740-042394", -ERANGE, 3 },
                { "00281x-008471-014124-019778-025432-031086-036740-042394", -EINVAL, 1 },
                { "002816-008470-014124-019778-025432-031086-036741-04239", -EDOM, 7 },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_parse_fails(cases[i].input, cases[i].error, cases[i].block);

        assert_parse_fails(NULL, -EINVAL, 0);
        assert_int_equal(recovery_password_parse(SEQ_PASSWORD, NULL, NULL), -EINVAL);
}

/* The factor 11 at work: every single-digit change and every swap of two different adjacent digits
 * in a block is caught, in that block, as -EDOM. */
static void test_typos_are_caught(void **state) {
        (void) state;
        for (size_t k = 0; k < ELEMENTSOF(known); k++) {
                char input[RECOVERY_PASSWORD_LEN + 1];

                for (size_t pos = 0; pos < RECOVERY_PASSWORD_LEN; pos++) {
                        unsigned block = (unsigned) (pos / (RECOVERY_BLOCK_DIGITS + 1)) + 1;
                        char *c = input + pos;

                        if (known[k].password[pos] == '-')
                                continue;

                        for (char d = '0'; d <= '9'; d++) {
                                strcpy(input, known[k].password);
                                if (*c == d)
                                        continue;
                                *c = d;
                                assert_parse_fails(input, -EDOM, block);
                        }

                        strcpy(input, known[k].password);
                        if (pos + 1 < RECOVERY_PASSWORD_LEN && c[1] != '-' && c[0] != c[1]) {
                                char t = c[0];

                                c[0] = c[1];
                                c[1] = t;
                                assert_parse_fails(input, -EDOM, block);
                        }
                }
        }
}

static void test_error_strings(void **state) {
        char message[128];

        (void) state;
        assert_string_equal(recovery_parse_error_to_string(-EDOM), "is not a multiple of 11 (typo?)");
        assert_string_equal(recovery_parse_error_to_string(EDOM), "is not a multiple of 11 (typo?)");
        assert_string_equal(recovery_parse_error_to_string(-ERANGE), "is above 720885");
        assert_string_equal(recovery_parse_error_to_string(-EINVAL), "must be 8 blocks of 6 digits");
        assert_null(recovery_parse_error_to_string(-ENOMEM));
        assert_null(recovery_parse_error_to_string(0));

        snprintf(message, sizeof(message), "Block %u %s", 5u, recovery_parse_error_to_string(-EDOM));
        assert_string_equal(message, "Block 5 is not a multiple of 11 (typo?)");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_format_known),
                cmocka_unit_test(test_parse_known),
                cmocka_unit_test(test_generate),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_parse_spellings),
                cmocka_unit_test(test_parse_errors),
                cmocka_unit_test(test_typos_are_caught),
                cmocka_unit_test(test_error_strings),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
