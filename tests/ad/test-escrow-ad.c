/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-escrow-ad.c: recovery passwords escrowed to a real Samba AD DC, as the machine account with
 * its keytab, and read back as the domain administrator with the stock ldapsearch over CA-verified
 * LDAPS, which is how an operator finds a key by its Key ID.
 *
 * The DC (tests/harness/ad-dc via ad-fixture.c) runs in this test's own network namespace, provisioned
 * once per run into the test's directory. Without Samba the test skips (fails with CI=true).
 */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "ad-fixture.h"
#include "encoding.h"
#include "escrow-ad.h"
#include "recovery.h"
#include "secmem.h"
#include "test-util.h"

/* UTC+01:30: an offset with a "+" that the DN must escape, and minutes that a whole-hour zone would
 * not exercise. POSIX counts offsets west of UTC as positive, hence the minus. */
#define TEST_TZ "TST-01:30"
#define TEST_TIMEOUT_SEC 3U

typedef struct Fixture {
        char *dir;
        AdDc *dc;
} Fixture;

static Fixture fixture;

typedef struct Record {
        AdRecoveryRecord r;
        char *password; /* secure memory */
        uint8_t key_package[64];
} Record;

static int group_setup(void **state) {
        int r;

        (void) state;
        if (test_tmpdir_new("test-escrow-ad", &fixture.dir) < 0)
                return -1;
        r = ad_dc_start(fixture.dir, &fixture.dc);
        if (r < 0) {
                fprintf(stderr, "Cannot start the AD DC: %s\n", strerror(-r));
                return -1;
        }
        return 0;
}

static int group_teardown(void **state) {
        int r;

        (void) state;
        fixture.dc = ad_dc_stop(fixture.dc);
        r = fixture.dir ? rm_rf(fixture.dir) : 0;
        free(fixture.dir);
        fixture.dir = NULL;
        return r < 0 ? -1 : 0;
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        assert_int_equal(clock_gettime(clock, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void record_new(Record *rec, const Guid *volume) {
        _cleanup_secure_ uint8_t *key = NULL;

        *rec = (Record) {};
        assert_int_equal(guid_generate(&rec->r.recovery_guid), 0);
        if (volume)
                rec->r.volume_guid = *volume;
        else
                assert_int_equal(guid_generate(&rec->r.volume_guid), 0);
        assert_int_equal(recovery_key_generate(&key), 0);
        assert_int_equal(recovery_password_format(key, &rec->password), 0);
        assert_int_equal(RAND_bytes(rec->key_package, sizeof(rec->key_package)), 1);
        rec->r.password = rec->password;
        rec->r.created_usec = now_usec(CLOCK_REALTIME);
        rec->r.key_package = rec->key_package;
        rec->r.key_package_size = sizeof(rec->key_package);
}

static void record_done(Record *rec) {
        rec->password = secure_free(rec->password);
}

static void config_machine(AdConfig *c, const char *keytab, const char *principal) {
        ad_config_init(c);
        c->uri = strdup(AD_FIXTURE_URI);
        c->keytab = strdup(keytab);
        c->sam_account_name = strdup("LNX1$");
        c->principal = principal ? strdup(principal) : NULL;
        c->timeout_sec = TEST_TIMEOUT_SEC;
        assert_non_null(c->uri);
        assert_non_null(c->keytab);
        assert_non_null(c->sam_account_name);
}

static void config_admin(AdConfig *c, const char *uri) {
        ad_config_init(c);
        c->uri = strdup(uri);
        c->bind_dn = strdup(AD_FIXTURE_ADMIN);
        c->password_file = strdup(fixture.dc->admin_password_file);
        c->ca_file = strdup(fixture.dc->ca_file);
        c->sam_account_name = strdup("LNX1$");
        c->timeout_sec = TEST_TIMEOUT_SEC;
        assert_non_null(c->uri);
        assert_non_null(c->bind_dn);
        assert_non_null(c->password_file);
        assert_non_null(c->ca_file);
}

/* Runs the stock ldapsearch as the domain administrator under LNX1's computer object. */
static void admin_ldapsearch(const char *filter, Entry **ret, size_t *ret_n) {
        _cleanup_free_ char *error = NULL;

        if (ad_dc_admin_search(fixture.dc, AD_FIXTURE_LNX1_DN, filter, ret, ret_n, &error) < 0)
                fail_msg("ldapsearch failed:\n%s", strempty(error));
}

/* The administrator's search by Key ID, as docs/escrow-ad.md tells an operator to do it: the first
 * 8 hex digits of the Key ID, in the cn. */
static void admin_find_by_key_id(const Guid *g, Entry **ret, size_t *ret_n) {
        char gs[GUID_STRING_MAX], filter[AD_KEY_ID_FILTER_MAX];

        guid_format(g, gs);
        assert_int_equal(ad_key_id_filter(gs, filter), 0);
        admin_ldapsearch(filter, ret, ret_n);
}

/* What Windows writes, byte for byte: the cn, the password, both GUIDs in AD's byte order. */
static void assert_entry_is(const Entry *e, const Record *rec, const char *dn) {
        _cleanup_free_ char *cn = NULL;
        uint8_t rg[GUID_SIZE], vg[GUID_SIZE];
        char gs[GUID_STRING_MAX], pattern[160];
        regex_t re;

        assert_int_equal(ad_recovery_cn(rec->r.created_usec, &rec->r.recovery_guid, &cn), 0);
        assert_non_null(e->cn);
        assert_string_equal(e->cn, cn);
        /* "2026-11-23T10:27:01+01:30{A494C89A-CCDF-431A-A049-EB5B420D04A2}": local time and offset. */
        assert_true(snprintf(pattern, sizeof(pattern),
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\+01:30\\{%s\\}$",
                             guid_format(&rec->r.recovery_guid, gs)) < (int) sizeof(pattern));
        assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
        assert_int_equal(regexec(&re, e->cn, 0, NULL, 0), 0);
        regfree(&re);
        /* The "+" escaped in the DN, as Samba and AD write it. */
        assert_non_null(strstr(e->dn, "\\+01:30{"));
        if (dn)
                assert_string_equal(e->dn, dn);

        assert_non_null(e->password);
        assert_string_equal(e->password, rec->password);
        guid_to_ms_bytes(&rec->r.recovery_guid, rg);
        guid_to_ms_bytes(&rec->r.volume_guid, vg);
        assert_int_equal(e->recovery_guid_size, GUID_SIZE);
        assert_memory_equal(e->recovery_guid, rg, GUID_SIZE);
        assert_int_equal(e->volume_guid_size, GUID_SIZE);
        assert_memory_equal(e->volume_guid, vg, GUID_SIZE);
}

static unsigned elapsed_ms(uint64_t since) {
        return (unsigned) ((now_usec(CLOCK_MONOTONIC) - since) / 1000);
}

static size_t count_guid(const Guid *guids, size_t n, const Guid *g) {
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                k += guid_equal(&guids[i], g);
        return k;
}

static void test_machine_escrows_admin_reads(void **state) {
        _cleanup_(ad_config_done) AdConfig c;
        _cleanup_free_ char *dn = NULL, *dn2 = NULL, *error = NULL;
        _cleanup_free_ Guid *guids = NULL;
        Entry *entries = NULL;
        size_t n = 0;
        AdVerify verify = 4242;
        Record rec;
        uint64_t t;
        unsigned ms;

        (void) state;
        config_machine(&c, fixture.dc->lnx1_keytab, NULL);
        record_new(&rec, NULL);

        t = now_usec(CLOCK_MONOTONIC);
        if (ad_escrow(&c, &rec.r, &dn, &verify, &error) != 0)
                fail_msg("escrow as LNX1$: %s", strempty(error));
        ms = elapsed_ms(t);
        assert_non_null(dn);
        /* The machine may not read confidential attributes, nor the object's: it sees the DN. */
        assert_int_equal(verify, AD_VERIFY_OBJECT);
        print_message("escrow as LNX1$ (keytab, GSSAPI, sealed): %u ms for rootDSE, AS+TGS, bind, lookup, "
                      "list, add, read-back\n", ms);

        admin_find_by_key_id(&rec.r.recovery_guid, &entries, &n);
        assert_int_equal(n, 1);
        assert_entry_is(&entries[0], &rec, dn);
        ad_entries_free(entries, n);

        /* Again: nothing added, the same DN. */
        t = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(ad_escrow(&c, &rec.r, &dn2, &verify, &error), 0);
        print_message("the same escrow again (found, not added): %u ms\n", elapsed_ms(t));
        assert_string_equal(dn2, dn);
        assert_int_equal(verify, AD_VERIFY_OBJECT);
        admin_find_by_key_id(&rec.r.recovery_guid, &entries, &n);
        assert_int_equal(n, 1);
        ad_entries_free(entries, n);

        /* A later record with another Key ID made in the same second is still its own object. */
        assert_int_equal(ad_escrow_list(&c, &guids, &n, &error), 0);
        assert_int_equal(count_guid(guids, n, &rec.r.recovery_guid), 1);

        record_done(&rec);
}

static void test_history_kept(void **state) {
        _cleanup_(ad_config_done) AdConfig c;
        _cleanup_free_ char *dn1 = NULL, *dn2 = NULL, *error = NULL;
        _cleanup_free_ Guid *guids = NULL;
        uint8_t vg[GUID_SIZE];
        char filter[128], *f;
        Entry *entries = NULL;
        size_t n = 0;
        AdVerify verify;
        Record a, b;

        (void) state;
        config_machine(&c, fixture.dc->lnx1_keytab, NULL);
        record_new(&a, NULL);
        record_new(&b, &a.r.volume_guid);
        b.r.created_usec = a.r.created_usec + 1000000;

        assert_int_equal(ad_escrow(&c, &a.r, &dn1, &verify, &error), 0);
        assert_int_equal(ad_escrow(&c, &b.r, &dn2, &verify, &error), 0);
        assert_string_not_equal(dn1, dn2);

        /* Both under the one volume, found by its GUID as AD stores it (indexed, octet string). */
        guid_to_ms_bytes(&a.r.volume_guid, vg);
        f = filter + sprintf(filter, "(msFVE-VolumeGuid=");
        for (size_t i = 0; i < GUID_SIZE; i++)
                f += sprintf(f, "\\%02x", vg[i]);
        strcpy(f, ")");
        admin_ldapsearch(filter, &entries, &n);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                assert_entry_is(&entries[i], strstr(entries[i].cn, guid_format(&a.r.recovery_guid, (char[GUID_STRING_MAX]) {})) ? &a : &b, NULL);
        ad_entries_free(entries, n);

        assert_int_equal(ad_escrow_list(&c, &guids, &n, &error), 0);
        assert_int_equal(count_guid(guids, n, &a.r.recovery_guid), 1);
        assert_int_equal(count_guid(guids, n, &b.r.recovery_guid), 1);

        record_done(&a);
        record_done(&b);
}

static void test_admin_simple_bind_verifies_fully(void **state) {
        static const char *const uris[] = { AD_FIXTURE_LDAPS_URI, AD_FIXTURE_URI /* StartTLS */ };
        _cleanup_(ad_config_done) AdConfig machine;
        _cleanup_free_ char *machine_dn = NULL;
        Record rec;

        (void) state;
        config_machine(&machine, fixture.dc->lnx1_keytab, NULL);
        record_new(&rec, NULL);
        assert_int_equal(ad_escrow(&machine, &rec.r, &machine_dn, NULL, NULL), 0);

        for (size_t i = 0; i < ELEMENTSOF(uris); i++) {
                _cleanup_(ad_config_done) AdConfig c;
                _cleanup_free_ char *dn = NULL, *dn2 = NULL, *error = NULL;
                Entry *entries = NULL;
                size_t n = 0;
                AdVerify verify = AD_VERIFY_NONE;
                Record own;
                uint64_t t;

                config_admin(&c, uris[i]);
                record_new(&own, NULL);
                t = now_usec(CLOCK_MONOTONIC);
                if (ad_escrow(&c, &own.r, &dn, &verify, &error) != 0)
                        fail_msg("escrow as Administrator over %s: %s", uris[i], strempty(error));
                print_message("escrow as Administrator (simple bind, %s): %u ms\n",
                              i == 0 ? "LDAPS" : "StartTLS", elapsed_ms(t));
                assert_int_equal(verify, AD_VERIFY_FULL);
                admin_find_by_key_id(&own.r.recovery_guid, &entries, &n);
                assert_int_equal(n, 1);
                assert_entry_is(&entries[0], &own, dn);
                ad_entries_free(entries, n);

                /* The machine's record, found and read back in full by the administrator. */
                assert_int_equal(ad_escrow(&c, &rec.r, &dn2, &verify, &error), 0);
                assert_string_equal(dn2, machine_dn);
                assert_int_equal(verify, AD_VERIFY_FULL);
                record_done(&own);
        }

        /* The same Key ID with another password: the administrator can see that it differs. */
        {
                _cleanup_(ad_config_done) AdConfig c;
                _cleanup_free_ char *dn = NULL, *error = NULL;
                Record other;

                config_admin(&c, AD_FIXTURE_LDAPS_URI);
                record_new(&other, NULL);
                other.r.recovery_guid = rec.r.recovery_guid;
                assert_int_equal(ad_escrow(&c, &other.r, &dn, NULL, &error), -EEXIST);
                assert_non_null(error);
                assert_null(strstr(error, other.password));
                assert_null(strstr(error, rec.password));
                record_done(&other);
        }
        record_done(&rec);
}

static void test_other_machine_refused(void **state) {
        _cleanup_(ad_config_done) AdConfig c;
        _cleanup_free_ char *dn = NULL, *error = NULL;
        Record rec;

        (void) state;
        /* LNX2$, with its own good keytab, writing under LNX1's object. */
        config_machine(&c, fixture.dc->lnx2_keytab, "LNX2$");
        record_new(&rec, NULL);
        assert_int_equal(ad_escrow(&c, &rec.r, &dn, NULL, &error), -EACCES);
        assert_null(dn);
        assert_non_null(error);
        print_message("LNX2$ under LNX1: %s\n", error);
        assert_non_null(strstr(error, "LNX2$"));
        assert_non_null(strstr(error, AD_FIXTURE_LNX1_DN));
        assert_non_null(strstr(error, "Insufficient access"));
        assert_null(strstr(error, rec.password));
        assert_null(strchr(error, '\n'));
        record_done(&rec);
}

static void test_unknown_account(void **state) {
        _cleanup_(ad_config_done) AdConfig c;
        _cleanup_free_ char *error = NULL;
        _cleanup_free_ Guid *guids = NULL;
        size_t n;
        Record rec;

        (void) state;
        config_machine(&c, fixture.dc->lnx1_keytab, "LNX1$");
        free(c.sam_account_name);
        c.sam_account_name = strdup("NOSUCH$");
        record_new(&rec, NULL);
        assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -ESRCH);
        assert_non_null(strstr(error, "NOSUCH$"));
        free(error);
        error = NULL;
        assert_int_equal(ad_escrow_list(&c, &guids, &n, &error), -ESRCH);

        /* An explicit DN that is not there. */
        free(c.sam_account_name);
        c.sam_account_name = NULL;
        c.computer_dn = strdup("CN=NOSUCH,CN=Computers," AD_FIXTURE_BASE);
        free(error);
        error = NULL;
        assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -ESRCH);
        record_done(&rec);
}

static void test_explicit_computer_dn(void **state) {
        _cleanup_(ad_config_done) AdConfig c;
        _cleanup_free_ char *dn = NULL, *error = NULL;
        AdVerify verify;
        Record rec;

        (void) state;
        config_machine(&c, fixture.dc->lnx1_keytab, "LNX1$");
        free(c.sam_account_name);
        c.sam_account_name = NULL;
        /* Any spelling of the DN: lower-case types, spaces after the commas. */
        c.computer_dn = strdup("cn=LNX1, cn=Computers, dc=sealvol, dc=test");
        record_new(&rec, NULL);
        assert_int_equal(ad_escrow(&c, &rec.r, &dn, &verify, &error), 0);
        assert_int_equal(verify, AD_VERIFY_OBJECT);
        record_done(&rec);
}

static void test_bad_credentials(void **state) {
        _cleanup_free_ char *missing = path_join(fixture.dir, "missing.keytab");
        _cleanup_free_ char *wrong_pw = path_join(fixture.dir, "wrong.password");
        Record rec;

        (void) state;
        record_new(&rec, NULL);

        /* A keytab with no key for the principal; a keytab that is not there. */
        for (size_t i = 0; i < 2; i++) {
                _cleanup_(ad_config_done) AdConfig c;
                _cleanup_free_ char *error = NULL;

                config_machine(&c, i == 0 ? fixture.dc->lnx2_keytab : missing, "LNX1$");
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -ENOKEY);
                print_message("%s: %s\n", i == 0 ? "LNX1$ with LNX2's keytab" : "missing keytab", error);
                assert_non_null(error);
        }

        /* The administrator with a wrong password, and with no password file. */
        {
                _cleanup_(ad_config_done) AdConfig c;
                _cleanup_free_ char *error = NULL;
                _cleanup_close_ int fd = open(wrong_pw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                assert_true(fd >= 0);
                assert_int_equal(write(fd, "Wrong-Passw0rd!\n", 16), 16);
                config_admin(&c, AD_FIXTURE_LDAPS_URI);
                free(c.password_file);
                c.password_file = strdup(wrong_pw);
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -ENOKEY);
                assert_null(strstr(error, "Wrong-Passw0rd"));
                free(error);
                error = NULL;
                free(c.password_file);
                c.password_file = strdup(missing);
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -ENOKEY);
        }
        record_done(&rec);
}

static void test_unreachable(void **state) {
        static const char *const uris[] = { "ldap://127.0.0.1:1", "ldaps://127.0.0.1:1" };
        Record rec;

        (void) state;
        record_new(&rec, NULL);
        for (size_t i = 0; i < ELEMENTSOF(uris); i++) {
                _cleanup_(ad_config_done) AdConfig c;
                _cleanup_free_ char *error = NULL;
                uint64_t t;

                if (i == 0)
                        config_machine(&c, fixture.dc->lnx1_keytab, NULL);
                else
                        config_admin(&c, uris[i]);
                free(c.uri);
                c.uri = strdup(uris[i]);
                t = now_usec(CLOCK_MONOTONIC);
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -EHOSTUNREACH);
                assert_true(elapsed_ms(t) < TEST_TIMEOUT_SEC * 1000);
                assert_non_null(error);
        }
        record_done(&rec);
}

/* A server that accepts connections and never answers. */
static void test_timeout(void **state) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        Record rec;

        (void) state;
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        record_new(&rec, NULL);

        for (size_t i = 0; i < 2; i++) {
                _cleanup_(ad_config_done) AdConfig c;
                _cleanup_free_ char *error = NULL;
                uint64_t t;
                unsigned ms;

                if (i == 0)
                        config_machine(&c, fixture.dc->lnx1_keytab, NULL);
                else
                        config_admin(&c, AD_FIXTURE_LDAPS_URI);
                free(c.uri);
                assert_true(asprintf(&c.uri, "%s://127.0.0.1:%u", i == 0 ? "ldap" : "ldaps", ntohs(sa.sin_port)) > 0);
                c.timeout_sec = 1;
                t = now_usec(CLOCK_MONOTONIC);
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -ETIMEDOUT);
                ms = elapsed_ms(t);
                print_message("silent server on %s: %s after %u ms\n", c.uri, error, ms);
                assert_true(ms >= 900 && ms < 3000);
        }
        record_done(&rec);
}

static void test_rejected_record(void **state) {
        _cleanup_(ad_config_done) AdConfig c;
        _cleanup_free_ char *error = NULL;
        Record rec;

        (void) state;
        /* msFVE-RecoveryInformation may only live under a computer (systemPossSuperiors). */
        config_admin(&c, AD_FIXTURE_LDAPS_URI);
        free(c.sam_account_name);
        c.sam_account_name = NULL;
        c.computer_dn = strdup("CN=Computers," AD_FIXTURE_BASE);
        record_new(&rec, NULL);
        assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -EREMOTEIO);
        print_message("under CN=Computers: %s\n", error);
        assert_null(strstr(error, rec.password));
        record_done(&rec);
}

/* Refused before anything is sent: the URI is a closed port, so reaching it would say -EHOSTUNREACH. */
static void test_bad_config_and_records(void **state) {
        static const char *const bad_passwords[] = {
                "",
                "002816-008470-014124-019778-025432-031086-036740",               /* 7 blocks */
                "002816-008470-014124-019778-025432-031086-036740-042394-",       /* trailing dash */
                "002816 008470 014124 019778 025432 031086 036740 042394",        /* not canonical */
                "002816008470014124019778025432031086036740042394",               /* no dashes */
                "002817-008470-014124-019778-025432-031086-036740-042394",        /* typo: not x 11 */
                "720896-008470-014124-019778-025432-031086-036740-042394",        /* 11 * 65536 */
                "00281a-008470-014124-019778-025432-031086-036740-042394",
        };
        _cleanup_(ad_config_done) AdConfig c;
        Record rec;

        (void) state;
        config_machine(&c, fixture.dc->lnx1_keytab, NULL);
        free(c.uri);
        c.uri = strdup("ldap://127.0.0.1:1");
        record_new(&rec, NULL);

        for (size_t i = 0; i < ELEMENTSOF(bad_passwords); i++) {
                AdRecoveryRecord r = rec.r;
                _cleanup_free_ char *error = NULL;

                r.password = bad_passwords[i];
                assert_int_equal(ad_escrow(&c, &r, NULL, NULL, &error), -EINVAL);
                assert_false(ad_recovery_password_is_canonical(bad_passwords[i]));
        }
        {
                AdRecoveryRecord r = rec.r;
                _cleanup_free_ char *error = NULL;

                r.password = NULL;
                assert_int_equal(ad_escrow(&c, &r, NULL, NULL, &error), -EINVAL);
                r = rec.r;
                r.recovery_guid = (Guid) {};
                assert_int_equal(ad_escrow(&c, &r, NULL, NULL, NULL), -EINVAL);
                r = rec.r;
                r.key_package_size = AD_KEY_PACKAGE_MAX + 1;
                assert_int_equal(ad_escrow(&c, &r, NULL, NULL, NULL), -EINVAL);
                r = rec.r;
                r.created_usec = 0;
                assert_int_equal(ad_escrow(&c, &r, NULL, NULL, NULL), -EINVAL);
        }

        /* Kerberos over LDAPS (Samba refuses SASL sealing inside TLS), other schemes, half a simple bind. */
        {
                _cleanup_free_ char *error = NULL;

                free(c.uri);
                c.uri = strdup("ldaps://127.0.0.1:1");
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, &error), -EINVAL);
                assert_non_null(error);
                free(c.uri);
                c.uri = strdup("http://127.0.0.1");
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, NULL), -EINVAL);
                free(c.uri);
                c.uri = strdup("ldap://127.0.0.1:1 ldap://127.0.0.2:1");
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, NULL), -EINVAL);
                free(c.uri);
                c.uri = strdup("ldap://127.0.0.1:1");
                c.bind_dn = strdup(AD_FIXTURE_ADMIN);
                assert_int_equal(ad_escrow(&c, &rec.r, NULL, NULL, NULL), -EINVAL);
        }
        record_done(&rec);
}

/* The object name, in three zones: the offset's sign and minutes, and midnight rolling the date. */
static void test_cn_format(void **state) {
        static const struct {
                const char *tz;
                const char *want;
        } cases[] = {
                { "UTC0", "2026-11-23T08:27:01+00:00{A494C89A-CCDF-431A-A049-EB5B420D04A2}" },
                { "TST-01:30", "2026-11-23T09:57:01+01:30{A494C89A-CCDF-431A-A049-EB5B420D04A2}" },
                { "PST8", "2026-11-23T00:27:01-08:00{A494C89A-CCDF-431A-A049-EB5B420D04A2}" },
                { "TST9", "2026-11-22T23:27:01-09:00{A494C89A-CCDF-431A-A049-EB5B420D04A2}" },
        };
        Guid g;

        (void) state;
        assert_int_equal(guid_parse("a494c89a-ccdf-431a-a049-eb5b420d04a2", &g), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *cn = NULL;

                assert_int_equal(setenv("TZ", cases[i].tz, 1), 0);
                tzset();
                /* 2026-11-23T08:27:01Z, and some microseconds that do not show */
                assert_int_equal(ad_recovery_cn(UINT64_C(1795422421) * 1000000 + 999999, &g, &cn), 0);
                assert_string_equal(cn, cases[i].want);
        }
        assert_int_equal(setenv("TZ", TEST_TZ, 1), 0);
        tzset();
        assert_true(ad_recovery_password_is_canonical("002816-008470-014124-019778-025432-031086-036740-042394"));
        assert_true(ad_recovery_password_is_canonical("720885-000000-014124-019778-025432-031086-036740-042394"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cn_format),
                cmocka_unit_test(test_machine_escrows_admin_reads),
                cmocka_unit_test(test_history_kept),
                cmocka_unit_test(test_admin_simple_bind_verifies_fully),
                cmocka_unit_test(test_other_machine_refused),
                cmocka_unit_test(test_unknown_account),
                cmocka_unit_test(test_explicit_computer_dn),
                cmocka_unit_test(test_bad_credentials),
                cmocka_unit_test(test_unreachable),
                cmocka_unit_test(test_timeout),
                cmocka_unit_test(test_rejected_record),
                cmocka_unit_test(test_bad_config_and_records),
        };
        const char *missing = NULL;
        int r;

        test_require(ad_fixture_available(&missing), missing ?: "Samba");
        test_require(geteuid() == 0, "root (a network namespace, and the DC's ports 88, 389 and 636)");
        r = ad_fixture_enter_netns();
        if (r < 0)
                test_require(false, "a network namespace of our own (unshare(CLONE_NEWNET))");

        assert_int_equal(setenv("TZ", TEST_TZ, 1), 0);
        tzset();
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
