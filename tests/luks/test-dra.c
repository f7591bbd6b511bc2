/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-dra.c: the Data Recovery Agent protector: certificate policy, fingerprints, and secrets
 * wrapped to the certificate, checked against the stock `openssl cms` and `cryptsetup` in both
 * directions, since those are what an operator recovers a disk with.
 *
 * Fixtures come from tests/generate-dra-certs.sh, built by meson into $SEALVOL_DRA_FIXTURES.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "dra.h"
#include "fileio.h"
#include "luks-fixture.h"
#include "openssl-util.h"
#include "secmem.h"
#include "test-util.h"

static const char *fixtures;

typedef struct Test {
        char *dir;
        char *log; /* stdout and stderr of the tools we run */
} Test;

static int setup(void **state) {
        Test *t = calloc(1, sizeof(Test));

        if (!t || test_tmpdir_new("test-dra", &t->dir) < 0)
                return -1;
        t->log = path_join(t->dir, "tools.log");
        if (!t->log)
                return -1;
        *state = t;
        return 0;
}

static int teardown(void **state) {
        Test *t = *state;
        int r = rm_rf(t->dir);

        free(t->dir);
        free(t->log);
        free(t);
        return r < 0 ? -1 : 0;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static char *fixture_path(const char *name, const char *suffix) {
        char *p;

        assert_true(asprintf(&p, "%s/dra-%s%s", fixtures, name, suffix) >= 0);
        return p;
}

static X509 *cert_fixture(const char *name) {
        _cleanup_free_ char *path = fixture_path(name, ".crt");
        X509 *cert = NULL;

        assert_int_equal(dra_cert_load_file(path, &cert), 0);
        assert_non_null(cert);
        return cert;
}

static int key_load_path(const char *path, EVP_PKEY **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        return dra_key_load_fd(fd, ret);
}

static EVP_PKEY *key_fixture(const char *name) {
        _cleanup_free_ char *path = fixture_path(name, ".key");
        EVP_PKEY *key = NULL;

        assert_int_equal(key_load_path(path, &key), 0);
        assert_non_null(key);
        return key;
}

static void write_file(const char *path, const void *data, size_t size) {
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, size), (ssize_t) size);
}

static void read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        uint8_t *buf;
        long size;

        assert_non_null(f);
        assert_int_equal(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        assert_true(size >= 0);
        rewind(f);
        buf = malloc(size + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, size, f), (size_t) size);
        buf[size] = '\0';
        *ret = buf;
        *ret_size = (size_t) size;
}

/* Runs argv to its end, its output in t->log (replaced); returns the exit status. */
static int run(const Test *t, char *const argv[]) {
        pid_t pid;
        int status;

        (void) unlink(t->log);
        assert_int_equal(test_spawn(argv, t->log, /* pass_fd= */ -1, &pid), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* As run(), for a command that must succeed: its output goes to the test log when it does not. */
static void run_ok(const Test *t, char *const argv[]) {
        int r = run(t, argv);

        if (r != 0) {
                _cleanup_free_ char *log = test_read_file(t->log);

                fprintf(stderr, "%s exited with %d:\n%s\n", argv[0], r, strempty(log));
        }
        assert_int_equal(r, 0);
}

static void random_bytes(void *p, size_t n) {
        assert_int_equal(RAND_bytes(p, (int) n), 1);
}

static const char *const accepted[] = { "rsa2048", "rsa3072-noext", "rsa-ku-data", "ec256", "ec384" };
/* The recipients of the round-trip tests: RSA and both EC curves. */
static const char *const recipients[] = { "rsa2048", "rsa3072-noext", "ec256", "ec384" };

/* ---- policy ----------------------------------------------------------------------------------- */

static void test_accepted_certs(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(accepted); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(accepted[i]);
                char *reason = NULL;

                print_message("accepted: %s\n", accepted[i]);
                assert_int_equal(dra_cert_check(cert, NULL, time(NULL), &reason), 0);
                assert_null(reason);
        }
}

static void test_refused_certs(void **state) {
        static const struct {
                const char *name;
                const char *expect[2];
        } cases[] = {
                { "rsa1024", { "RSA key of 1024 bits, at least 2048 required" } },
                { "ec-secp256k1", { "EC key on curve secp256k1", "only P-256" } },
                { "ec-ku-keyenc", { "key usage keyEncipherment only", "an EC key needs keyAgreement" } },
                { "rsa-ku-sign",
                  { "key usage digitalSignature only",
                    "an RSA key needs keyEncipherment or dataEncipherment" } },
                { "rsa-eku-server", { "extended key usage serverAuth does not allow data recovery" } },
                { "rsa-eku-custom",
                  { "extended key usage 1.3.6.1.4.1.99999.1 does not allow data recovery" } },
                { "ed25519", { "key type ED25519 is not supported" } },
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(cases[i].name);
                _cleanup_free_ char *reason = NULL;

                assert_int_equal(dra_cert_check(cert, NULL, time(NULL), &reason), -EKEYREJECTED);
                assert_non_null(reason);
                print_message("refused: %s: %s\n", cases[i].name, reason);
                for (size_t j = 0; j < ELEMENTSOF(cases[i].expect) && cases[i].expect[j]; j++)
                        assert_non_null(strstr(reason, cases[i].expect[j]));
                /* Each fixture has exactly one thing wrong, and only that is reported. */
                assert_null(strstr(reason, "; "));
                /* The reason is optional. */
                assert_int_equal(dra_cert_check(cert, NULL, time(NULL), NULL), -EKEYREJECTED);
        }
}

static void test_extra_ekus(void **state) {
        static const char *const extra[] = { "1.2.3.4", "1.3.6.1.4.1.99999.1", NULL };
        static const char *const leading_zero[] = { "1.3.6.1.4.1.099999.1", NULL };
        static const char *const other[] = { "1.3.6.1.4.1.99999.2", NULL };
        static const char *const bad[] = { "serverAuth or so", NULL };
        _cleanup_(X509_freep) X509 *custom = cert_fixture("rsa-eku-custom");
        _cleanup_(X509_freep) X509 *server = cert_fixture("rsa-eku-server");
        _cleanup_free_ char *reason = NULL;
        char *untouched = NULL;

        (void) state;
        assert_int_equal(dra_cert_check(custom, extra, time(NULL), &untouched), 0);
        assert_null(untouched);
        /* Compared as OIDs, not as text. */
        assert_int_equal(dra_cert_check(custom, leading_zero, time(NULL), &untouched), 0);
        assert_null(untouched);

        assert_int_equal(dra_cert_check(custom, other, time(NULL), &reason), -EKEYREJECTED);
        /* The operator is told which OIDs would have been accepted, configured ones included. */
        assert_non_null(strstr(reason, "accepted: anyExtendedKeyUsage, 1.3.6.1.4.1.311.67.1.1, "
                                       "1.3.6.1.4.1.99999.2"));

        assert_int_equal(dra_cert_check(server, extra, time(NULL), &untouched), -EKEYREJECTED);
        free(untouched);
        untouched = NULL;

        /* A broken configuration is an error of its own, whatever the certificate. */
        assert_int_equal(dra_cert_check(custom, bad, time(NULL), &untouched), -EINVAL);
        assert_null(untouched);
}

static time_t asn1_time_to_time_t(const ASN1_TIME *a) {
        struct tm tm = {};

        assert_int_equal(ASN1_TIME_to_tm(a, &tm), 1);
        return timegm(&tm);
}

static void test_validity(void **state) {
        _cleanup_(X509_freep) X509 *cert = cert_fixture("ec256");
        _cleanup_(X509_freep) X509 *small = cert_fixture("rsa1024");
        time_t not_before = asn1_time_to_time_t(X509_get0_notBefore(cert));
        time_t not_after = asn1_time_to_time_t(X509_get0_notAfter(cert));
        char *reason = NULL, expect[128];
        struct tm tm;

        (void) state;
        /* Both ends belong to the validity period. */
        assert_int_equal(dra_cert_check(cert, NULL, not_before, &reason), 0);
        assert_int_equal(dra_cert_check(cert, NULL, not_after, &reason), 0);
        assert_null(reason);

        assert_int_equal(dra_cert_check(cert, NULL, not_before - 1, &reason), -EKEYREJECTED);
        strftime(expect, sizeof(expect), "not valid before %Y-%m-%d %H:%M:%S UTC",
                 gmtime_r(&not_before, &tm));
        assert_string_equal(reason, expect);
        free(reason);
        reason = NULL;

        assert_int_equal(dra_cert_check(cert, NULL, not_after + 1, &reason), -EKEYREJECTED);
        strftime(expect, sizeof(expect), "expired on %Y-%m-%d %H:%M:%S UTC", gmtime_r(&not_after, &tm));
        assert_string_equal(reason, expect);
        free(reason);
        reason = NULL;

        /* Every problem is named, not only the first. */
        assert_int_equal(
                dra_cert_check(small, NULL, asn1_time_to_time_t(X509_get0_notAfter(small)) + 86400, &reason),
                -EKEYREJECTED);
        assert_non_null(strstr(reason, "RSA key of 1024 bits"));
        assert_non_null(strstr(reason, "; expired on "));
        free(reason);
}

/* ---- trust ------------------------------------------------------------------------------------ */

static STACK_OF(X509) *anchors_of(const char *const *names) {
        STACK_OF(X509) *sk = sk_X509_new_null();

        assert_non_null(sk);
        for (const char *const *n = names; *n; n++)
                assert_true(sk_X509_push(sk, cert_fixture(*n)) > 0);
        return sk;
}

/* dra_cert_verify_trust() of fixture name against the anchors named, at now: its result, and the
 * reason in *ret_reason (NULL when trusted). */
static int verify_with(const char *name, const char *const *anchor_names, const uint8_t (*pinned)[DRA_FINGERPRINT_SIZE],
                       size_t n_pinned, time_t now, char **ret_reason) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *anchors = anchor_names ? anchors_of(anchor_names) : NULL;
        _cleanup_(X509_freep) X509 *cert = cert_fixture(name);
        char *reason = NULL;
        int r;

        r = dra_cert_verify_trust(cert, anchors, pinned, n_pinned, now, &reason);
        if (r == 0)
                assert_null(reason);
        if (r == -EKEYREJECTED)
                assert_non_null(reason);
        *ret_reason = reason;
        return r;
}

#define ANCHORS(...) ((const char *const[]) { __VA_ARGS__, NULL })

static void test_trust_chains(void **state) {
        time_t now = time(NULL);
        char *reason = NULL;

        (void) state;
        /* Signed by the anchor, directly or through an intermediate the anchor file holds. */
        assert_int_equal(verify_with("signed", ANCHORS("ca"), NULL, 0, now, &reason), 0);
        assert_int_equal(verify_with("signed-intermediate", ANCHORS("ca", "ca-intermediate"), NULL, 0, now, &reason), 0);
        /* The intermediate alone is an anchor too (partial chain): trust can stop at the CA that
         * issues DRA certificates, and then the root's other children are not trusted. */
        assert_int_equal(verify_with("signed-intermediate", ANCHORS("ca-intermediate"), NULL, 0, now, &reason), 0);
        assert_int_equal(verify_with("signed", ANCHORS("ca-intermediate"), NULL, 0, now, &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "not trusted: it does not chain to a trust anchor: unable to get local issuer"));
        free(reason);
        /* The intermediate is not taken from anywhere else. */
        assert_int_equal(verify_with("signed-intermediate", ANCHORS("ca"), NULL, 0, now, &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "unable to get local issuer certificate (the certificate itself: "
                                       "CN=sealvol test DRA signed-intermediate)"));
        free(reason);

        /* The attack: a self-signed certificate that meets every key rule. */
        assert_int_equal(verify_with("rsa2048", ANCHORS("ca"), NULL, 0, now, &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "self-signed certificate"));
        free(reason);
        /* Another organisation's CA. */
        assert_int_equal(verify_with("signed-other", ANCHORS("ca", "ca-intermediate"), NULL, 0, now, &reason),
                         -EKEYREJECTED);
        free(reason);
        /* Signed by a certificate that is no CA, even one in the anchor file. */
        assert_int_equal(verify_with("signed-by-leaf", ANCHORS("ca"), NULL, 0, now, &reason), -EKEYREJECTED);
        free(reason);
        assert_int_equal(verify_with("signed-by-leaf", ANCHORS("ca", "signed"), NULL, 0, now, &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "(its issuer: CN=sealvol test DRA signed)"));
        free(reason);
        /* The DRA certificate itself in the anchor file: trusted as it is. */
        assert_int_equal(verify_with("rsa2048", ANCHORS("rsa2048"), NULL, 0, now, &reason), 0);
}

static void test_trust_time(void **state) {
        _cleanup_(X509_freep) X509 *ca = cert_fixture("ca");
        time_t in_2020 = 1590969600; /* 2020-06-01 */
        time_t ca_after = asn1_time_to_time_t(X509_get0_notAfter(ca));
        char *reason = NULL;

        (void) state;
        assert_int_equal(verify_with("signed-expired", ANCHORS("ca"), NULL, 0, time(NULL), &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "certificate has expired (the certificate itself: "));
        free(reason);
        /* The time is the caller's: in 2020 the certificate was valid, though its CA was not yet. */
        assert_int_equal(verify_with("signed-expired", ANCHORS("ca"), NULL, 0, in_2020, &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "certificate is not yet valid (its issuer: CN=sealvol test DRA ca)"));
        free(reason);
        /* An expired anchor vouches for nothing. */
        assert_int_equal(verify_with("signed", ANCHORS("ca"), NULL, 0, ca_after + 86400, &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "certificate has expired"));
        free(reason);
}

static void test_trust_pinned(void **state) {
        _cleanup_(X509_freep) X509 *cert = cert_fixture("rsa2048"), *other = cert_fixture("ec256");
        uint8_t pinned[2][DRA_FINGERPRINT_SIZE];
        _cleanup_free_ char *hex = NULL, *expect = NULL;
        char *reason = NULL;

        (void) state;
        assert_int_equal(dra_cert_fingerprint(other, pinned[0]), 0);
        assert_int_equal(dra_cert_fingerprint(cert, pinned[1]), 0);
        hex = dra_fingerprint_to_string(pinned[1]);

        /* A pin is the certificate itself: self-signed, no chain, no anchor needed. */
        assert_int_equal(verify_with("rsa2048", NULL, (const uint8_t (*)[DRA_FINGERPRINT_SIZE]) pinned, 2, time(NULL),
                                     &reason), 0);
        assert_int_equal(verify_with("rsa2048", NULL, (const uint8_t (*)[DRA_FINGERPRINT_SIZE]) pinned, 1, time(NULL),
                                     &reason), -EKEYREJECTED);
        assert_true(asprintf(&expect, "not trusted: its fingerprint %s is not pinned", hex) > 0);
        assert_string_equal(reason, expect);
        free(reason);
        /* Either kind of trust is enough; both are named when neither holds. */
        assert_int_equal(verify_with("signed", ANCHORS("ca"), (const uint8_t (*)[DRA_FINGERPRINT_SIZE]) pinned, 1,
                                     time(NULL), &reason), 0);
        assert_int_equal(verify_with("signed-other", ANCHORS("ca"), (const uint8_t (*)[DRA_FINGERPRINT_SIZE]) pinned, 1,
                                     time(NULL), &reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "is not pinned, and it does not chain to a trust anchor: "));
        free(reason);

        /* Nothing configured: nothing is trusted, and that is an answer of its own. */
        reason = NULL;
        assert_int_equal(dra_cert_verify_trust(cert, NULL, NULL, 0, time(NULL), &reason), -ENOKEY);
        assert_null(reason);
        {
                _cleanup_(x509_stack_freep) STACK_OF(X509) *empty = sk_X509_new_null();
                assert_int_equal(dra_cert_verify_trust(cert, empty, NULL, 0, time(NULL), &reason), -ENOKEY);
        }
}

static void test_fingerprint_from_string(void **state) {
        _cleanup_(X509_freep) X509 *cert = cert_fixture("ec256");
        _cleanup_free_ char *fp_path = fixture_path("ec256", ".fp"), *colons = NULL, *hex = NULL;
        _cleanup_free_ uint8_t *text = NULL;
        uint8_t fp[DRA_FINGERPRINT_SIZE], got[DRA_FINGERPRINT_SIZE];
        size_t n;

        (void) state;
        assert_int_equal(dra_cert_fingerprint(cert, fp), 0);
        read_file(fp_path, &text, &n);
        text[64] = '\0';
        assert_int_equal(dra_fingerprint_from_string((char *) text, got), 0);
        assert_memory_equal(got, fp, sizeof(fp));

        /* As `openssl x509 -fingerprint -sha256` prints it: upper case, colons. */
        colons = malloc(3 * DRA_FINGERPRINT_SIZE);
        assert_non_null(colons);
        for (size_t i = 0; i < DRA_FINGERPRINT_SIZE; i++)
                snprintf(colons + 3 * i, 4, "%02X%s", fp[i], i + 1 < DRA_FINGERPRINT_SIZE ? ":" : "");
        memset(got, 0, sizeof(got));
        assert_int_equal(dra_fingerprint_from_string(colons, got), 0);
        assert_memory_equal(got, fp, sizeof(fp));

        colons[2] = '-';
        assert_int_equal(dra_fingerprint_from_string(colons, got), -EINVAL);
        text[10] = 'g';
        assert_int_equal(dra_fingerprint_from_string((char *) text, got), -EINVAL);
        text[63] = '\0';
        assert_int_equal(dra_fingerprint_from_string((char *) text, got), -EINVAL);
        assert_int_equal(dra_fingerprint_from_string("", got), -EINVAL);
        assert_int_equal(dra_fingerprint_from_string(NULL, got), -EINVAL);
        hex = dra_fingerprint_to_string(fp);
        assert_int_equal(dra_fingerprint_from_string(hex, got), 0);
}

/* Copies fixture name's certificate to dir/file, mode 0644, root's. */
static char *anchor_copy(const char *dir, const char *file, const char *name) {
        _cleanup_free_ char *from = fixture_path(name, ".crt");
        _cleanup_free_ uint8_t *data = NULL;
        char *to = path_join(dir, file);
        size_t n;

        assert_non_null(to);
        read_file(from, &data, &n);
        write_file(to, data, n);
        assert_int_equal(chmod(to, 0644), 0);
        return to;
}

static void expect_anchor_refused(const char *path, const char *why) {
        STACK_OF(X509) *anchors = NULL;
        char *reason = NULL;

        assert_int_equal(dra_trust_anchors_load_file(path, &anchors, &reason), -EPERM);
        assert_null(anchors);
        assert_non_null(reason);
        if (!strstr(reason, why))
                fail_msg("%s refused with \"%s\", not \"%s\"", path, reason, why);
        free(reason);
}

static void test_trust_anchor_file(void **state) {
        Test *t = *state;
        _cleanup_(x509_stack_freep) STACK_OF(X509) *anchors = NULL;
        _cleanup_free_ char *bundle = fixture_path("ca-bundle", ".crt"), *one = NULL, *open_dir = NULL;
        _cleanup_free_ char *sticky = NULL, *in_open = NULL, *in_sticky = NULL, *link = NULL, *reason = NULL;
        _cleanup_free_ char *with_key = NULL, *key = fixture_path("ca", ".key"), *expect = NULL;

        assert_int_equal(geteuid(), 0);
        /* The fixtures as the build wrote them: root's, 0644, in root's directories. */
        assert_int_equal(dra_trust_anchors_load_file(bundle, &anchors, &reason), 0);
        assert_int_equal(sk_X509_num(anchors), 2);
        anchors = (sk_X509_pop_free(anchors, X509_free), NULL);

        one = anchor_copy(t->dir, "anchor.pem", "ca");
        assert_int_equal(dra_trust_anchors_load_file(one, &anchors, NULL), 0);
        assert_int_equal(sk_X509_num(anchors), 1);
        anchors = (sk_X509_pop_free(anchors, X509_free), NULL);

        /* Whoever may change the file may take over the DRA. */
        assert_int_equal(chmod(one, 0664), 0);
        assert_true(asprintf(&expect, "%s is writable by group or others (mode 0664)", one) > 0);
        expect_anchor_refused(one, expect);
        assert_int_equal(chmod(one, 0646), 0);
        expect_anchor_refused(one, "is writable by group or others");
        assert_int_equal(chmod(one, 0644), 0);
        assert_int_equal(chown(one, 65534, 0), 0);
        expect_anchor_refused(one, "is owned by uid 65534, not root");
        assert_int_equal(chown(one, 0, 0), 0);

        /* And so may whoever can write a directory on the way to it. */
        open_dir = path_join(t->dir, "open");
        assert_int_equal(mkdir(open_dir, 0755), 0);
        assert_int_equal(chmod(open_dir, 0777), 0);
        in_open = anchor_copy(open_dir, "anchor.pem", "ca");
        expect_anchor_refused(in_open, "/open is a directory writable by group or others (mode 0777)");
        /* Unless it is sticky (as /tmp): others cannot rename or remove what root has there. */
        sticky = path_join(t->dir, "sticky");
        assert_int_equal(mkdir(sticky, 0755), 0);
        assert_int_equal(chmod(sticky, 01777), 0);
        in_sticky = anchor_copy(sticky, "anchor.pem", "ca");
        assert_int_equal(dra_trust_anchors_load_file(in_sticky, &anchors, NULL), 0);
        anchors = (sk_X509_pop_free(anchors, X509_free), NULL);

        /* Through a link: root's link in a sticky directory is fine; another user's is not, nor a
         * link to a file in an open directory. */
        link = path_join(sticky, "link.pem");
        assert_int_equal(symlink(one, link), 0);
        assert_int_equal(dra_trust_anchors_load_file(link, &anchors, NULL), 0);
        anchors = (sk_X509_pop_free(anchors, X509_free), NULL);
        assert_int_equal(lchown(link, 65534, 65534), 0);
        expect_anchor_refused(link, "is a symbolic link owned by uid 65534, not root");
        assert_int_equal(unlink(link), 0);
        assert_int_equal(symlink(in_open, link), 0);
        expect_anchor_refused(link, "/open is a directory writable by group or others");
        assert_int_equal(unlink(link), 0);
        assert_int_equal(symlink("../anchor.pem", link), 0); /* relative, from sticky/ */
        assert_int_equal(dra_trust_anchors_load_file(link, &anchors, NULL), 0);
        anchors = (sk_X509_pop_free(anchors, X509_free), NULL);

        /* Not a regular file; not there; not absolute. */
        expect_anchor_refused(sticky, "is not a regular file");
        {
                _cleanup_free_ char *missing = path_join(t->dir, "missing.pem");
                assert_int_equal(dra_trust_anchors_load_file(missing, &anchors, NULL), -ENOENT);
        }
        assert_int_equal(dra_trust_anchors_load_file("anchor.pem", &anchors, NULL), -EINVAL);

        /* Certificates only: a private key in it, or nothing, is refused. */
        {
                _cleanup_free_ uint8_t *a = NULL, *b = NULL;
                _cleanup_free_ char *ca = fixture_path("ca", ".crt");
                size_t na, nb;

                read_file(ca, &a, &na);
                read_file(key, &b, &nb);
                with_key = path_join(t->dir, "with-key.pem");
                write_file(with_key, a, na);
                {
                        _cleanup_fclose_ FILE *f = fopen(with_key, "ae");
                        assert_non_null(f);
                        assert_int_equal(fwrite(b, 1, nb, f), nb);
                }
                assert_int_equal(dra_trust_anchors_load_file(with_key, &anchors, NULL), -EBADMSG);
                write_file(with_key, "", 0);
                assert_int_equal(dra_trust_anchors_load_file(with_key, &anchors, NULL), -EBADMSG);
                write_file(with_key, "not a certificate\n", 18);
                assert_int_equal(dra_trust_anchors_load_file(with_key, &anchors, NULL), -EBADMSG);
        }
        assert_null(anchors);
}

/* ---- fingerprints and loading ------------------------------------------------------------------ */

static void test_fingerprints(void **state) {
        static const char *const names[] = {
                "rsa2048", "rsa3072-noext", "rsa-ku-data", "ec256", "ec384", "rsa-eku-custom",
                "rsa1024", "ec-secp256k1", "ec-ku-keyenc", "rsa-ku-sign", "rsa-eku-server", "ed25519",
        };

        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(names[i]);
                _cleanup_free_ char *fp_path = fixture_path(names[i], ".fp"), *s = NULL;
                _cleanup_free_ uint8_t *expect = NULL;
                uint8_t fp[DRA_FINGERPRINT_SIZE];
                size_t n;

                read_file(fp_path, &expect, &n);
                assert_int_equal(n, 65); /* 64 hex digits and a newline */
                expect[64] = '\0';

                assert_int_equal(dra_cert_fingerprint(cert, fp), 0);
                s = dra_fingerprint_to_string(fp);
                assert_non_null(s);
                assert_string_equal(s, (char *) expect);
        }
}

static void test_cert_load_formats(void **state) {
        Test *t = *state;
        _cleanup_free_ char *pem_path = fixture_path("rsa2048", ".crt"),
                            *der_path = fixture_path("rsa2048", ".crt.der"),
                            *key_path = fixture_path("rsa2048", ".key"), *big = path_join(t->dir, "big.pem");
        _cleanup_free_ uint8_t *pem = NULL, *der = NULL, *key = NULL, *buf = NULL;
        _cleanup_(X509_freep) X509 *a = NULL, *b = NULL, *c = NULL;
        uint8_t fa[DRA_FINGERPRINT_SIZE], fb[DRA_FINGERPRINT_SIZE], fc[DRA_FINGERPRINT_SIZE];
        size_t pem_size, der_size, key_size, n;
        X509 *x = NULL;

        read_file(pem_path, &pem, &pem_size);
        read_file(der_path, &der, &der_size);
        read_file(key_path, &key, &key_size);

        /* PEM, DER, and PEM after explanatory text all give the same certificate. */
        assert_int_equal(dra_cert_load(pem, pem_size, &a), 0);
        assert_int_equal(dra_cert_load(der, der_size, &b), 0);
        buf = malloc(pem_size + 64);
        assert_non_null(buf);
        n = (size_t) sprintf((char *) buf, "Certificate:\n    Data: (text)\n");
        memcpy(buf + n, pem, pem_size);
        n += pem_size;
        assert_int_equal(dra_cert_load(buf, n, &c), 0);
        assert_int_equal(dra_cert_fingerprint(a, fa), 0);
        assert_int_equal(dra_cert_fingerprint(b, fb), 0);
        assert_int_equal(dra_cert_fingerprint(c, fc), 0);
        assert_memory_equal(fa, fb, sizeof(fa));
        assert_memory_equal(fa, fc, sizeof(fa));
        free(buf);

        /* Two certificates: ambiguous, in either encoding. */
        buf = malloc(2 * (pem_size + der_size + key_size));
        assert_non_null(buf);
        memcpy(buf, pem, pem_size);
        memcpy(buf + pem_size, pem, pem_size);
        assert_int_equal(dra_cert_load(buf, 2 * pem_size, &x), -ENOTUNIQ);
        memcpy(buf, der, der_size);
        memcpy(buf + der_size, der, der_size);
        assert_int_equal(dra_cert_load(buf, 2 * der_size, &x), -ENOTUNIQ);

        /* A private key next to the certificate is refused, before or after it. */
        memcpy(buf, pem, pem_size);
        memcpy(buf + pem_size, key, key_size);
        assert_int_equal(dra_cert_load(buf, pem_size + key_size, &x), -EBADMSG);
        memcpy(buf, key, key_size);
        memcpy(buf + key_size, pem, pem_size);
        assert_int_equal(dra_cert_load(buf, pem_size + key_size, &x), -EBADMSG);

        /* Garbage, truncation, trailing bytes. */
        assert_int_equal(dra_cert_load("hello", 5, &x), -EBADMSG);
        assert_int_equal(dra_cert_load("", 0, &x), -EBADMSG);
        assert_int_equal(dra_cert_load(key, key_size, &x), -EBADMSG);
        for (size_t len = 1; len < der_size; len += 7)
                assert_int_equal(dra_cert_load(der, len, &x), -EBADMSG);
        assert_int_equal(dra_cert_load(pem, pem_size / 2, &x), -EBADMSG);
        memcpy(buf, der, der_size);
        buf[der_size] = 0;
        assert_int_equal(dra_cert_load(buf, der_size + 1, &x), -EBADMSG);
        assert_null(x);

        /* Files: missing, too large. */
        assert_int_equal(dra_cert_load_file("/nonexistent/dra.crt", &x), -ENOENT);
        free(buf);
        buf = calloc(1, DRA_CERT_FILE_MAX + 1);
        assert_non_null(buf);
        memset(buf, 'A', DRA_CERT_FILE_MAX + 1);
        write_file(big, buf, DRA_CERT_FILE_MAX + 1);
        assert_int_equal(dra_cert_load_file(big, &x), -EFBIG);
        assert_null(x);
        assert_int_equal(ERR_peek_error(), 0);
}

static void test_key_load(void **state) {
        Test *t = *state;
        static const struct {
                const char *cert, *key_suffix;
        } cases[] = {
                { "rsa2048", ".key" },          /* PKCS #8 PEM */
                { "ec384", ".key.trad" },       /* "EC PRIVATE KEY" PEM */
                { "ec256", ".key.der" },        /* PKCS #8 DER */
                { "rsa2048", ".key.trad.der" }, /* RSAPrivateKey DER */
        };
        _cleanup_free_ char *enc = fixture_path("ec256", ".key.enc"),
                            *enc_der = fixture_path("ec256", ".key.enc.der"),
                            *crt = fixture_path("ec256", ".crt"), *pem_path = fixture_path("ec256", ".key"),
                            *empty = path_join(t->dir, "empty"), *big = path_join(t->dir, "big.key");
        _cleanup_free_ uint8_t *pem = NULL, *buf = NULL;
        EVP_PKEY *key = NULL;
        size_t pem_size;
        int fds[2];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = fixture_path(cases[i].cert, cases[i].key_suffix);
                _cleanup_(X509_freep) X509 *cert = cert_fixture(cases[i].cert);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;

                assert_int_equal(key_load_path(path, &k), 0);
                assert_int_equal(EVP_PKEY_eq(k, X509_get0_pubkey(cert)), 1);
        }

        /* From a pipe, as the daemon will get it; the fd stays open, it is the caller's. */
        read_file(pem_path, &pem, &pem_size);
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        assert_int_equal(write(fds[1], pem, pem_size), (ssize_t) pem_size);
        assert_int_equal(close(fds[1]), 0);
        assert_int_equal(dra_key_load_fd(fds[0], &key), 0);
        assert_true(fcntl(fds[0], F_GETFD) >= 0);
        assert_int_equal(close(fds[0]), 0);
        {
                _cleanup_(X509_freep) X509 *cert = cert_fixture("ec256");
                assert_int_equal(EVP_PKEY_eq(key, X509_get0_pubkey(cert)), 1);
        }
        EVP_PKEY_free(key);
        key = NULL;

        /* Passphrase-protected: refused without prompting anyone. */
        assert_int_equal(key_load_path(enc, &key), -EOPNOTSUPP);
        assert_int_equal(key_load_path(enc_der, &key), -EOPNOTSUPP);
        /* Not a key, nothing, too much. */
        assert_int_equal(key_load_path(crt, &key), -EBADMSG);
        write_file(empty, "", 0);
        assert_int_equal(key_load_path(empty, &key), -EBADMSG);
        buf = malloc(DRA_KEY_FILE_MAX + 1);
        assert_non_null(buf);
        memset(buf, '\n', DRA_KEY_FILE_MAX + 1);
        memcpy(buf, pem, pem_size);
        write_file(big, buf, DRA_KEY_FILE_MAX + 1);
        assert_int_equal(key_load_path(big, &key), -EFBIG);
        /* ... but exactly the maximum is fine. */
        write_file(big, buf, DRA_KEY_FILE_MAX);
        assert_int_equal(key_load_path(big, &key), 0);
        EVP_PKEY_free(key);
        key = NULL;

        assert_int_equal(dra_key_load_fd(-1, &key), -EINVAL);
        assert_null(key);
        assert_int_equal(ERR_peek_error(), 0);
}

/* ---- wrapping --------------------------------------------------------------------------------- */

static void test_round_trip(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(recipients); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(recipients[i]);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture(recipients[i]);
                _cleanup_free_ uint8_t *blob = NULL, *blob2 = NULL;
                _cleanup_secure_ void *out = NULL;
                uint8_t secret[32];
                size_t blob_size, blob2_size, out_size;

                print_message("round trip: %s\n", recipients[i]);
                random_bytes(secret, sizeof(secret));
                assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob, &blob_size), 0);
                assert_int_equal(dra_unwrap(key, blob, blob_size, &out, &out_size), 0);
                assert_int_equal(out_size, sizeof(secret));
                assert_memory_equal(out, secret, sizeof(secret));
                /* In secure memory: secure_size() aborts on any other pointer. */
                assert_int_equal(secure_size(out), sizeof(secret));

                /* Fresh content key and IV every time. */
                assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob2, &blob2_size), 0);
                assert_false(blob_size == blob2_size && memcmp(blob, blob2, blob_size) == 0);
        }
}

static void test_wrap_sizes(void **state) {
        _cleanup_(X509_freep) X509 *cert = cert_fixture("ec256");
        _cleanup_(X509_freep) X509 *ed = cert_fixture("ed25519");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture("ec256");
        _cleanup_free_ uint8_t *big = malloc(DRA_SECRET_MAX + 1);
        uint8_t *blob = NULL;
        size_t sizes[] = { 1, 15, 16, 17, DRA_SECRET_MAX };
        size_t blob_size;

        (void) state;
        assert_non_null(big);
        random_bytes(big, DRA_SECRET_MAX + 1);
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                _cleanup_secure_ void *out = NULL;
                size_t out_size;

                assert_int_equal(dra_wrap(cert, big, sizes[i], &blob, &blob_size), 0);
                assert_int_equal(dra_unwrap(key, blob, blob_size, &out, &out_size), 0);
                free(blob);
                blob = NULL;
                assert_int_equal(out_size, sizes[i]);
                assert_int_equal(secure_size(out), sizes[i]);
                assert_memory_equal(out, big, sizes[i]);
        }

        assert_int_equal(dra_wrap(cert, big, 0, &blob, &blob_size), -EINVAL);
        assert_int_equal(dra_wrap(cert, big, DRA_SECRET_MAX + 1, &blob, &blob_size), -EINVAL);
        /* Policy is the caller's, but the mechanism needs RSA or EC. */
        assert_int_equal(dra_wrap(ed, big, 32, &blob, &blob_size), -EOPNOTSUPP);
        assert_null(blob);
}

/* The blob's algorithms, as `openssl cms -cmsout -print` shows them. */
static void test_blob_format(void **state) {
        Test *t = *state;
        static const struct {
                const char *name;
                const char *expect[4];
        } cases[] = {
                { "rsa2048", { "rsaesOaep", "sha256", "mgf1" } },
                { "ec256", { "dhSinglePass-stdDH-sha256kdf-scheme", "id-aes256-wrap" } },
                { "ec384", { "dhSinglePass-stdDH-sha384kdf-scheme", "id-aes256-wrap" } },
        };
        _cleanup_free_ char *blob_path = path_join(t->dir, "blob.der");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(cases[i].name);
                _cleanup_free_ uint8_t *blob = NULL;
                _cleanup_free_ char *printed = NULL;
                uint8_t secret[32];
                size_t blob_size;

                random_bytes(secret, sizeof(secret));
                assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob, &blob_size), 0);
                write_file(blob_path, blob, blob_size);
                run_ok(t, (char *[]) { "openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in",
                                       blob_path, NULL });
                printed = test_read_file(t->log);
                assert_non_null(printed);
                assert_non_null(strstr(printed, "contentType: pkcs7-envelopedData"));
                assert_non_null(strstr(printed, "contentType: pkcs7-data"));
                assert_non_null(strstr(printed, "algorithm: aes-256-cbc"));
                for (size_t j = 0; j < ELEMENTSOF(cases[i].expect) && cases[i].expect[j]; j++)
                        assert_non_null(strstr(printed, cases[i].expect[j]));
                assert_null(strstr(printed, "sha1"));
        }
}

/* What an operator runs: `openssl cms -decrypt` gives back the secret, raw, with or without
 * -binary. */
static void test_openssl_decrypts_our_blobs(void **state) {
        Test *t = *state;
        _cleanup_free_ char *blob_path = path_join(t->dir, "blob.der"), *out_path = path_join(t->dir, "out");

        for (size_t i = 0; i < ELEMENTSOF(recipients); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(recipients[i]);
                _cleanup_free_ char *key_path = fixture_path(recipients[i], ".key");
                _cleanup_free_ uint8_t *blob = NULL;
                uint8_t secret[32];
                size_t blob_size;

                print_message("openssl cms -decrypt: %s\n", recipients[i]);
                random_bytes(secret, sizeof(secret));
                /* Make sure the bytes text processing would touch are there. */
                secret[0] = '\n';
                secret[1] = '\r';
                assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob, &blob_size), 0);
                write_file(blob_path, blob, blob_size);

                for (int binary = 0; binary <= 1; binary++) {
                        _cleanup_free_ uint8_t *out = NULL;
                        size_t out_size;

                        (void) unlink(out_path);
                        run_ok(t, (char *[]) { "openssl", "cms", "-decrypt", "-inform", "DER", "-in",
                                               blob_path, "-inkey", key_path, "-out", out_path,
                                               binary ? "-binary" : NULL, NULL });
                        read_file(out_path, &out, &out_size);
                        assert_int_equal(out_size, sizeof(secret));
                        assert_memory_equal(out, secret, sizeof(secret));
                }
        }
}

/* And the other way: blobs made by `openssl cms -encrypt` open with dra_unwrap(). */
static void test_we_decrypt_openssl_blobs(void **state) {
        Test *t = *state;
        static const struct {
                const char *name;
                const char *cipher;
                const char *keyopt[2];
        } cases[] = {
                { "rsa2048", "-aes256", { "rsa_padding_mode:oaep", "rsa_oaep_md:sha256" } },
                { "rsa3072-noext", "-aes256", {} }, /* PKCS #1 v1.5, OpenSSL's default */
                { "ec256", "-aes256", {} },         /* ECDH with the SHA-1 KDF, OpenSSL's default */
                { "ec384", "-aes256", { "ecdh_kdf_md:sha384" } },
                { "ec256", "-aes-256-gcm", {} }, /* AuthEnvelopedData */
                { "rsa2048", "-aes-256-gcm", { "rsa_padding_mode:oaep", "rsa_oaep_md:sha256" } },
        };
        _cleanup_free_ char *in_path = path_join(t->dir, "secret"),
                            *blob_path = path_join(t->dir, "blob.der");

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(cases[i].name);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture(cases[i].name);
                _cleanup_free_ char *cert_path = fixture_path(cases[i].name, ".crt");
                _cleanup_free_ uint8_t *blob = NULL;
                _cleanup_secure_ void *out = NULL;
                char *argv[20] = { "openssl", "cms", "-encrypt", "-binary", "-outform", "DER",
                                   (char *) cases[i].cipher, "-in", in_path, "-out", blob_path,
                                   "-recip", cert_path };
                size_t n = 13, blob_size, out_size;
                uint8_t secret[32];

                print_message("openssl cms -encrypt %s: %s\n", cases[i].cipher, cases[i].name);
                for (size_t j = 0; j < ELEMENTSOF(cases[i].keyopt) && cases[i].keyopt[j]; j++) {
                        argv[n++] = "-keyopt";
                        argv[n++] = (char *) cases[i].keyopt[j];
                }
                argv[n] = NULL;

                random_bytes(secret, sizeof(secret));
                write_file(in_path, secret, sizeof(secret));
                run_ok(t, argv);
                read_file(blob_path, &blob, &blob_size);
                assert_int_equal(dra_unwrap(key, blob, blob_size, &out, &out_size), 0);
                assert_int_equal(out_size, sizeof(secret));
                assert_memory_equal(out, secret, sizeof(secret));
                assert_int_equal(secure_size(out), sizeof(secret));
        }
}

static void test_unwrap_too_big(void **state) {
        Test *t = *state;
        _cleanup_free_ char *in_path = path_join(t->dir, "big"), *blob_path = path_join(t->dir, "blob.der"),
                            *cert_path = fixture_path("ec256", ".crt");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture("ec256");
        _cleanup_free_ uint8_t *big = calloc(1, DRA_SECRET_MAX + 1), *blob = NULL;
        void *out = NULL;
        size_t blob_size, out_size;

        assert_non_null(big);
        write_file(in_path, big, DRA_SECRET_MAX + 1);
        run_ok(t, (char *[]) { "openssl", "cms", "-encrypt", "-binary", "-outform", "DER", "-aes256", "-in",
                               in_path, "-out", blob_path, "-recip", cert_path, NULL });
        read_file(blob_path, &blob, &blob_size);
        assert_int_equal(dra_unwrap(key, blob, blob_size, &out, &out_size), -E2BIG);
        assert_null(out);
}

static void test_unwrap_wrong_key(void **state) {
        static const struct {
                const char *blob_for, *key;
        } cases[] = {
                { "rsa2048", "rsa3072-noext" }, { "rsa2048", "ec256" }, { "ec256", "ec384" },
                { "ec384", "ec256" },           { "ec256", "rsa2048" }, { "ec256", "ed25519" },
        };
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *other_p256 = EVP_EC_gen("P-256");

        (void) state;
        assert_non_null(other_p256);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(cases[i].blob_for);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture(cases[i].key);
                _cleanup_free_ uint8_t *blob = NULL;
                uint8_t secret[32];
                void *out = NULL;
                size_t blob_size, out_size;

                random_bytes(secret, sizeof(secret));
                assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob, &blob_size), 0);
                assert_int_equal(dra_unwrap(key, blob, blob_size, &out, &out_size), -EKEYREJECTED);
                assert_null(out);
                if (streq(cases[i].blob_for, "ec256"))
                        assert_int_equal(dra_unwrap(other_p256, blob, blob_size, &out, &out_size),
                                         -EKEYREJECTED);
        }

        /* OpenSSL's default for a failed RSA key transport is to go on with a random content key,
         * which passes the CBC padding check once in 256 tries: a wrong key must fail every time. */
        {
                _cleanup_(X509_freep) X509 *cert = cert_fixture("rsa2048");
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture("rsa-ku-data");

                for (unsigned i = 0; i < 64; i++) {
                        _cleanup_free_ uint8_t *blob = NULL;
                        uint8_t secret[32];
                        void *out = NULL;
                        size_t blob_size, out_size;

                        random_bytes(secret, sizeof(secret));
                        assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob, &blob_size), 0);
                        assert_int_equal(dra_unwrap(key, blob, blob_size, &out, &out_size), -EKEYREJECTED);
                }
        }
        assert_int_equal(ERR_peek_error(), 0);
}

static void test_unwrap_corrupted(void **state) {
        (void) state;
        for (size_t i = 0; i < ELEMENTSOF(recipients); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(recipients[i]);
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture(recipients[i]);
                _cleanup_free_ uint8_t *blob = NULL, *copy = NULL;
                unsigned counts[3] = {};
                uint8_t secret[32];
                void *out = NULL;
                size_t blob_size, out_size;

                random_bytes(secret, sizeof(secret));
                assert_int_equal(dra_wrap(cert, secret, sizeof(secret), &blob, &blob_size), 0);
                copy = malloc(blob_size + 1);
                assert_non_null(copy);

                /* Every truncation, and a byte too many: not DER of one CMS object. */
                for (size_t len = 0; len < blob_size; len++)
                        assert_int_equal(dra_unwrap(key, blob, len, &out, &out_size), -EBADMSG);
                memcpy(copy, blob, blob_size);
                copy[blob_size] = 0;
                assert_int_equal(dra_unwrap(key, copy, blob_size + 1, &out, &out_size), -EBADMSG);

                /* The encrypted content is last. Flipping the last bit of the next-to-last
                 * ciphertext block flips the last byte of the last plaintext block, its padding
                 * length (0x10 for 32 bytes of secret), which becomes invalid (CBC, RFC 5652 6.3). */
                memcpy(copy, blob, blob_size);
                copy[blob_size - 17] ^= 0x01;
                assert_int_equal(dra_unwrap(key, copy, blob_size, &out, &out_size), -EBADMSG);

                /* Every single byte changed: an error, or (inside the IV or the ciphertext, which
                 * CBC does not protect) some secret; never a crash. */
                for (size_t pos = 0; pos < blob_size; pos++) {
                        int r;

                        memcpy(copy, blob, blob_size);
                        copy[pos] ^= 0xA5;
                        r = dra_unwrap(key, copy, blob_size, &out, &out_size);
                        assert_true(r == 0 || r == -EBADMSG || r == -EKEYREJECTED);
                        if (r == 0) {
                                assert_int_equal(secure_size(out), out_size);
                                out = secure_free(out);
                        }
                        counts[r == 0 ? 0 : r == -EBADMSG ? 1 : 2]++;
                }
                print_message("%s: %zu byte blob, corruptions: %u decrypted, %u EBADMSG, %u EKEYREJECTED\n",
                              recipients[i], blob_size, counts[0], counts[1], counts[2]);
                assert_true(counts[1] > 0);
                assert_null(out);
        }
        assert_int_equal(ERR_peek_error(), 0);
}

static void test_unwrap_not_enveloped(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = key_fixture("ec256");
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *data = NULL;
        _cleanup_(BIO_free_allp) BIO *in = BIO_new_mem_buf("not a secret", -1);
        _cleanup_(openssl_freep) uint8_t *der = NULL;
        uint8_t garbage[256];
        void *out = NULL;
        size_t out_size;
        int n;

        (void) state;
        /* Well-formed CMS, but id-data rather than EnvelopedData. */
        assert_non_null(in);
        data = CMS_data_create(in, CMS_BINARY);
        assert_non_null(data);
        n = i2d_CMS_ContentInfo(data, &der);
        assert_true(n > 0);
        assert_int_equal(dra_unwrap(key, der, (size_t) n, &out, &out_size), -EBADMSG);

        random_bytes(garbage, sizeof(garbage));
        assert_int_equal(dra_unwrap(key, garbage, sizeof(garbage), &out, &out_size), -EBADMSG);
        garbage[0] = 0x30;
        assert_int_equal(dra_unwrap(key, garbage, sizeof(garbage), &out, &out_size), -EBADMSG);
        assert_int_equal(dra_unwrap(key, NULL, 0, &out, &out_size), -EBADMSG);
        assert_null(out);
        assert_int_equal(ERR_peek_error(), 0);
}

/* The whole recovery path of DESIGN.md, with stock tools only: the "dra" keyslot's passphrase,
 * wrapped by us, opens the volume through `openssl cms -decrypt | cryptsetup open --key-file -`. */
static void test_recovery_with_stock_tools(void **state) {
        Test *t = *state;
        static const char *const names[] = { "rsa2048", "ec384" };

        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                _cleanup_(X509_freep) X509 *cert = cert_fixture(names[i]);
                _cleanup_free_ char *key_path = fixture_path(names[i], ".key"), *image = NULL,
                                    *blob_path = path_join(t->dir, "blob.der"), *script = NULL,
                                    *image_name = NULL;
                _cleanup_free_ uint8_t *blob = NULL;
                uint8_t passphrase[32], other[32];
                size_t blob_size;

                random_bytes(passphrase, sizeof(passphrase));
                assert_true(asprintf(&image_name, "disk-%zu.img", i) >= 0);
                assert_int_equal(luks_image_new(t->dir, image_name, LUKS_IMAGE_SIZE_DEFAULT, passphrase,
                                                sizeof(passphrase), &image),
                                 0);
                assert_int_equal(dra_wrap(cert, passphrase, sizeof(passphrase), &blob, &blob_size), 0);
                write_file(blob_path, blob, blob_size);

                /* Our paths only, no quoting needed. */
                assert_true(asprintf(&script,
                                     "set -o pipefail; openssl cms -decrypt -inform DER -in %s -inkey %s | "
                                     "cryptsetup open --test-passphrase --key-file - %s",
                                     blob_path, key_path, image) >= 0);
                run_ok(t, (char *[]) { "bash", "-c", script, NULL });

                /* And the check means something: another blob's secret does not open it. */
                free(blob);
                blob = NULL;
                random_bytes(other, sizeof(other));
                assert_int_equal(dra_wrap(cert, other, sizeof(other), &blob, &blob_size), 0);
                write_file(blob_path, blob, blob_size);
                assert_int_not_equal(run(t, (char *[]) { "bash", "-c", script, NULL }), 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_accepted_certs),
                cmocka_unit_test(test_refused_certs),
                cmocka_unit_test(test_extra_ekus),
                cmocka_unit_test(test_validity),
                cmocka_unit_test(test_fingerprints),
                cmocka_unit_test(test_trust_chains),
                cmocka_unit_test(test_trust_time),
                cmocka_unit_test(test_trust_pinned),
                cmocka_unit_test(test_fingerprint_from_string),
                cmocka_unit_test_setup_teardown(test_trust_anchor_file, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cert_load_formats, setup, teardown),
                cmocka_unit_test_setup_teardown(test_key_load, setup, teardown),
                cmocka_unit_test(test_round_trip),
                cmocka_unit_test(test_wrap_sizes),
                cmocka_unit_test_setup_teardown(test_blob_format, setup, teardown),
                cmocka_unit_test_setup_teardown(test_openssl_decrypts_our_blobs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_we_decrypt_openssl_blobs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unwrap_too_big, setup, teardown),
                cmocka_unit_test(test_unwrap_wrong_key),
                cmocka_unit_test(test_unwrap_corrupted),
                cmocka_unit_test(test_unwrap_not_enveloped),
                cmocka_unit_test_setup_teardown(test_recovery_with_stock_tools, setup, teardown),
        };

        fixtures = getenv("SEALVOL_DRA_FIXTURES");
        test_require(!isempty(fixtures), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        test_require(test_have_executable("openssl"), "openssl");
        test_require(test_have_executable("cryptsetup"), "cryptsetup");
        test_require(test_have_executable("bash"), "bash");

        return cmocka_run_group_tests(tests, NULL, NULL);
}
