/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-pcr-floor.c: the PCR floor: what a selection must bind the VMK to, and what the refusal says. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pcr-floor.h"
#include "tpm2.h"

#define PCR(i) (UINT32_C(1) << (i))

static void expect_refused(uint32_t mask, uint32_t min_mask, const char *reason) {
        _cleanup_free_ char *why = NULL;

        assert_int_equal(pcr_floor_check(mask, min_mask, &why), -EINVAL);
        assert_non_null(why);
        if (!strstr(why, reason))
                fail_msg("0x%06x (minimum 0x%06x): \"%s\" does not say \"%s\"", (unsigned) mask,
                         (unsigned) min_mask, why, reason);
}

static void test_accepted(void **state) {
        _cleanup_free_ char *why = NULL;

        (void) state;
        assert_int_equal(pcr_floor_check(PCR(7), PCR_FLOOR_MIN_MASK_DEFAULT, &why), 0);
        assert_int_equal(pcr_floor_check(PCR(0) | PCR(7), PCR_FLOOR_MIN_MASK_DEFAULT, &why), 0);
        assert_int_equal(pcr_floor_check(PCR(0) | PCR(2) | PCR(4) | PCR(7), PCR(0) | PCR(7), &why), 0);
        /* Without a minimum, any boot PCR will do (an operator who binds to PCR 11 alone). */
        assert_int_equal(pcr_floor_check(PCR(11), 0, &why), 0);
        /* PCRs 17-22 are reset only by a dynamic launch (locality 4), never by software. */
        assert_int_equal(pcr_floor_check(PCR(7) | PCR(17) | PCR(22), PCR(7), &why), 0);
        assert_null(why);
        assert_int_equal(pcr_floor_check(PCR(7), PCR(7), NULL), 0);
}

static void test_resettable_refused(void **state) {
        (void) state;
        expect_refused(PCR(23), 0, "PCR 23 can be reset by software");
        expect_refused(PCR(16), 0, "PCR 16 can be reset by software");
        expect_refused(PCR(16) | PCR(23), 0, "PCRs 16,23 can be reset by software");
        /* Alongside a boot PCR too: a selection is refused as soon as it holds one. */
        expect_refused(PCR(7) | PCR(23), PCR(7), "PCR 23 can be reset by software");
        expect_refused(PCR(0) | PCR(7) | PCR(16), PCR(7), "PCR 16 can be reset by software");
        /* Before the minimum is looked at: the reason is the worse one. */
        expect_refused(PCR(23), PCR(7), "PCR 23 can be reset by software");
        assert_int_equal(pcr_floor_check(PCR(23), 0, NULL), -EINVAL);
}

static void test_empty_and_nonexistent_refused(void **state) {
        (void) state;
        expect_refused(0, 0, "no PCR is selected");
        expect_refused(0, PCR(7), "no PCR is selected");
        expect_refused(PCR(24), 0, "PCR 24 does not exist");
        expect_refused(PCR(7) | PCR(31), PCR(7), "PCR 31 does not exist");
}

static void test_minimum_required(void **state) {
        (void) state;
        expect_refused(PCR(0), PCR(7), "PCR 7 is missing");
        expect_refused(PCR(4), PCR(0) | PCR(7), "PCRs 0,7 are missing");
        expect_refused(PCR(0) | PCR(4), PCR(0) | PCR(7), "PCR 7 is missing: every selection must include");
        assert_int_equal(pcr_floor_check(PCR(0), PCR(7), NULL), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepted),
                cmocka_unit_test(test_resettable_refused),
                cmocka_unit_test(test_empty_and_nonexistent_refused),
                cmocka_unit_test(test_minimum_required),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
