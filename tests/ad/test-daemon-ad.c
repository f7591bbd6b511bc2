/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-ad.c: sealvold escrows to a real Samba AD DC (in this test's own network namespace) as
 * the machine account LNX1$ with its keytab. Volumes provisioned through sealvolctl are then found as
 * the domain administrator with the stock ldapsearch, by the first 8 hex digits of their Key ID, with
 * the password that opens the volume; a rotation adds a record and keeps the old one; with escrow
 * required, a daemon holding another computer's keytab (LNX2$) is refused under LNX1's object, says
 * so clearly, and provisions nothing.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ad-fixture.h"
#include "daemon-fixture.h"
#include "recovery.h"
#include "test-util.h"
#include "volume.h"

static char *dir;
static AdDc *dc;

static int group_setup(void **state) {
        (void) state;
        if (test_tmpdir_new("test-daemon-ad", &dir) < 0)
                return -1;
        return ad_dc_start(dir, &dc) < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
        (void) state;
        dc = ad_dc_stop(dc);
        if (dir)
                (void) rm_rf(dir);
        free(dir);
        return 0;
}

/* sealvold escrowing to the DC as the machine whose keytab it holds, under computer_dn. */
static DaemonFixture *daemon_for(const char *keytab, const char *sam, const char *computer_dn) {
        _cleanup_free_ char *config = NULL;
        DaemonFixture *d = NULL;

        assert_true(asprintf(&config,
                             "[Escrow]\nTargets=ad spool\nRequire=ad\n"
                             "[ActiveDirectory]\nURI=%s\nKeytab=%s\nSAMAccountName=%s\n%s%s%sTimeoutSec=10\n",
                             AD_FIXTURE_URI, keytab, sam, computer_dn ? "ComputerDN=" : "", strempty(computer_dn),
                             computer_dn ? "\n" : "") > 0);
        assert_int_equal(daemon_fixture_new("test-daemon-ad", config, &d), 0);
        return d;
}

static void stop(DaemonFixture *d) {
        int r = daemon_fixture_stop(d);

        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(d->log_path);
                fail_msg("sealvold did not stop cleanly (%s); its log:\n%s", strerror(-r), strempty(log));
        }
        daemon_fixture_free(d);
}

static char *value_after(const char *out, const char *label, size_t n) {
        const char *p = strstr(out, label);

        assert_non_null(p);
        return strndup(p + strlen(label), n);
}

/* The administrator's lookup, as an operator at a recovery prompt does it: the first 8 hex digits of
 * the Key ID. Returns the one password found. */
static char *admin_password_for(const char *key_id) {
        char filter[AD_KEY_ID_FILTER_MAX];
        _cleanup_free_ char *error = NULL;
        Entry *e = NULL;
        size_t n = 0;
        char *pw;

        assert_int_equal(ad_key_id_filter(key_id, filter), 0);
        if (ad_dc_admin_search(dc, AD_FIXTURE_LNX1_DN, filter, &e, &n, &error) < 0)
                fail_msg("ldapsearch: %s", strempty(error));
        assert_int_equal(n, 1);
        assert_non_null(e[0].password);
        assert_non_null(strstr(e[0].cn, key_id));
        pw = strdup(e[0].password);
        ad_entries_free(e, n);
        return pw;
}

static void test_provisioned_volumes_are_in_ad(void **state) {
        DaemonFixture *d = daemon_for(dc->lnx1_keytab, "LNX1$", NULL);
        char *key_ids[2] = {}, *passwords[2] = {}, *images[2] = {};

        (void) state;
        for (size_t i = 0; i < 2; i++) {
                _cleanup_free_ char *out = NULL, *found = NULL;
                _cleanup_(volume_freep) Volume *v = NULL;
                char name[16];

                snprintf(name, sizeof(name), "d%zu.img", i);
                assert_int_equal(daemon_fixture_new_image(d, name, &images[i]), 0);
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", images[i]), 0);
                key_ids[i] = value_after(out, "Recovery Key ID: ", 36);
                passwords[i] = value_after(out, "Recovery password: ", RECOVERY_PASSWORD_LEN);

                /* Found by the administrator by its Key ID, and it is the password that opens it. */
                found = admin_password_for(key_ids[i]);
                assert_string_equal(found, passwords[i]);
                assert_int_equal(volume_load(images[i], &v), 0);
                assert_true(volume_open_recovery(v, found, NULL, 0, NULL) >= 0);
        }

        /* sealvolctl status shows where each went. */
        {
                _cleanup_free_ char *out = NULL;

                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "status"), 0);
                assert_non_null(strstr(out, "ad done (verified)"));
                assert_non_null(strstr(out, "required: ad"));
        }

        /* A rotation adds the new password; the old record stays, as in AD with Windows. */
        {
                _cleanup_free_ char *out = NULL, *new_id = NULL, *old = NULL, *new_pw = NULL;

                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "rotate", images[0]), 0);
                new_id = value_after(out, "new recovery Key ID ", 36);
                free(out);
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "show", images[0]), 0);
                new_pw = value_after(out, "Recovery password: ", RECOVERY_PASSWORD_LEN);
                old = admin_password_for(key_ids[0]);
                assert_string_equal(old, passwords[0]);
                free(old);
                old = admin_password_for(new_id);
                assert_string_equal(old, new_pw);
                free(out);
                /* On demand again: idempotent, still one record per password. */
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "escrow", "--all"), 0);
                free(old);
                old = admin_password_for(new_id);
                assert_string_equal(old, new_pw);
        }
        for (size_t i = 0; i < 2; i++) {
                free(key_ids[i]);
                free(passwords[i]);
                free(images[i]);
        }
        stop(d);
}

static void test_other_computer_refused(void **state) {
        /* LNX2$ holds its own keytab but is pointed at LNX1's object: AD refuses the write. */
        DaemonFixture *d = daemon_for(dc->lnx2_keytab, "LNX2$", AD_FIXTURE_LNX1_DN);
        _cleanup_free_ char *image = NULL, *out = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;

        (void) state;
        assert_int_equal(daemon_fixture_new_image(d, "x.img", &image), 0);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", image), 10);
        if (!strstr(out, "insufficient access"))
                fail_msg("expected a clear refusal, got: %s", out);
        assert_non_null(strstr(out, "was not provisioned"));
        assert_int_equal(volume_load(image, &v), -ENOMSG);
        stop(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_provisioned_volumes_are_in_ad),
                cmocka_unit_test(test_other_computer_refused),
        };
        const char *missing = NULL;

        test_require(geteuid() == 0, "root (a network namespace, and Samba's ports)");
        test_require(ad_fixture_available(&missing), missing ?: "Samba");
        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        if (ad_fixture_enter_netns() < 0) {
                fprintf(stderr, "Cannot enter a network namespace of our own.\n");
                return 1;
        }
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
