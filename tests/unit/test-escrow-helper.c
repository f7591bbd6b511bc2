/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-escrow-helper.c: the batch sealvold hands to sealvol-escrow (built, sealed, read back; every
 * malformed part refused), the results it gets back, and the helper itself, spawned on a socketpair
 * and reached through a socket as systemd's Accept=yes would hand it a connection: hooks that answer,
 * fail, echo the password or hang; a directory that never answers; a batch that is not sealed.
 */

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "escrow-helper.h"
#include "fileio.h"
#include "process-util.h"
#include "secmem.h"
#include "test-util.h"

#define PASSWORD "131648-338723-204908-284702-214797-556644-119295-459558"

static const char *helper_path(void) {
        return getenv("SEALVOL_ESCROW_HELPER");
}

static void *read_fd(int fd, size_t *ret_size) {
        struct stat st;
        void *buf;

        assert_int_equal(fstat(fd, &st), 0);
        buf = secure_alloc((size_t) st.st_size);
        assert_non_null(buf);
        assert_int_equal(pread(fd, buf, (size_t) st.st_size, 0), st.st_size);
        *ret_size = (size_t) st.st_size;
        return buf;
}

static AdConfig sample_ad(void) {
        AdConfig ad;

        ad_config_init(&ad);
        ad.uri = (char *) "ldap://dc1.example.com";
        ad.keytab = (char *) "/etc/krb5.keytab";
        ad.timeout_sec = 2;
        return ad;
}

static void test_batch_round_trip(void **state) {
        AdConfig ad = sample_ad();
        EscrowHelperConfig c = { .hook = "/usr/libexec/hook", .hook_timeout_sec = 7, .ad = &ad };
        static const char record[] = "{\"record\": 1}";
        EscrowJob jobs[3] = {
                { .target = ESCROW_TARGET_HOOK, .verb = "store", .verify = true, .data = record,
                  .size = sizeof(record) - 1, .password = PASSWORD },
                { .target = ESCROW_TARGET_AD, .created_usec = 1795000000000000, .password = PASSWORD },
                { .target = ESCROW_TARGET_HOOK, .verb = "retire", .data = "", .size = 0 },
        };
        _cleanup_(escrow_batch_done) EscrowBatch b = {};
        _cleanup_secure_ void *buf = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t size;

        (void) state;
        assert_int_equal(guid_parse("063EA4E1-220C-4293-BA01-4754620A96E7", &jobs[1].recovery_guid), 0);
        assert_int_equal(guid_parse("0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60", &jobs[1].volume_guid), 0);
        assert_int_equal(escrow_batch_build(&c, jobs, 3, &fd), 0);

        /* Sealed: neither written nor resized once built. */
        assert_int_equal(fcntl(fd, F_GET_SEALS) & (F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL),
                         F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
        assert_true(pwrite(fd, "x", 1, 0) < 0);
        assert_int_equal(errno, EPERM);

        buf = read_fd(fd, &size);
        /* The password is in the blob area, never inside the JSON a parser copies. */
        {
                size_t header = (size_t) ((uint8_t *) buf)[0] | (size_t) ((uint8_t *) buf)[1] << 8;
                assert_null(memmem((char *) buf + 4, header, "131648", 6));
        }
        assert_int_equal(escrow_batch_parse(buf, size, &b), 0);
        assert_int_equal(b.n_jobs, 3);
        assert_string_equal(b.hook, "/usr/libexec/hook");
        assert_int_equal(b.hook_timeout_sec, 7);
        assert_true(b.have_ad);
        assert_string_equal(b.ad.uri, "ldap://dc1.example.com");
        assert_string_equal(b.ad.keytab, "/etc/krb5.keytab");
        assert_null(b.ad.bind_dn);
        assert_int_equal(b.ad.timeout_sec, 2);
        assert_true(b.ad.sasl_nocanon);
        /* hook 2 x 7 (store, verify) + AD 4 x 2 + hook 7 */
        assert_int_equal(b.deadline_sec, 14 + 8 + 7);
        assert_int_equal(b.jobs[0].target, ESCROW_TARGET_HOOK);
        assert_string_equal(b.jobs[0].verb, "store");
        assert_true(b.jobs[0].verify);
        assert_int_equal(b.jobs[0].size, sizeof(record) - 1);
        assert_memory_equal(b.jobs[0].data, record, sizeof(record) - 1);
        assert_string_equal(b.jobs[0].password, PASSWORD);
        assert_int_equal(b.jobs[1].target, ESCROW_TARGET_AD);
        assert_true(guid_equal(&b.jobs[1].recovery_guid, &jobs[1].recovery_guid));
        assert_true(guid_equal(&b.jobs[1].volume_guid, &jobs[1].volume_guid));
        assert_int_equal(b.jobs[1].created_usec, 1795000000000000);
        assert_string_equal(b.jobs[1].password, PASSWORD);
        assert_string_equal(b.jobs[2].verb, "retire");
        assert_false(b.jobs[2].verify);
        assert_int_equal(b.jobs[2].size, 0);
        assert_null(b.jobs[2].password);

        /* What cannot be run is not built. */
        {
                int bad = -EBADF;
                EscrowHelperConfig none = {};
                EscrowJob verb = { .target = ESCROW_TARGET_HOOK, .verb = "verify", .data = "", .size = 0 };
                EscrowJob nopw = { .target = ESCROW_TARGET_AD };

                assert_int_equal(escrow_batch_build(&none, jobs, 1, &bad), -EINVAL);
                assert_int_equal(escrow_batch_build(&none, &jobs[1], 1, &bad), -EINVAL);
                assert_int_equal(escrow_batch_build(&c, &verb, 1, &bad), -EINVAL);
                assert_int_equal(escrow_batch_build(&c, &nopw, 1, &bad), -EINVAL);
                assert_int_equal(escrow_batch_build(&c, jobs, 0, &bad), -EINVAL);
                assert_int_equal(bad, -EBADF);
        }
}

/* A batch of header text and blobs, as an attacker with the socket could send it. */
static int parse_crafted(const char *header, const void *blobs, size_t blobs_size) {
        size_t h = strlen(header), size = 4 + h + blobs_size;
        _cleanup_secure_ uint8_t *buf = secure_alloc(size);
        _cleanup_(escrow_batch_done) EscrowBatch b = {};

        assert_non_null(buf);
        for (size_t i = 0; i < 4; i++)
                buf[i] = (uint8_t) (h >> (8 * i));
        memcpy(buf + 4, header, h);
        if (blobs_size)
                memcpy(buf + 4 + h, blobs, blobs_size);
        return escrow_batch_parse(buf, size, &b);
}

static void test_batch_malformed(void **state) {
        static const char pw[] = PASSWORD "\0";
        static const char *const hook = "\"hook\":{\"path\":\"/h\",\"timeout_sec\":5}";
        char *good;

        (void) state;
        assert_true(asprintf(&good, "{\"version\":1,\"deadline_sec\":10,%s,\"jobs\":[{\"target\":\"hook\",\"verb\":"
                             "\"store\",\"verify\":true,\"data\":[0,55]}]}", hook) > 0);
        assert_int_equal(parse_crafted(good, pw, sizeof(pw) - 1), 0);
        free(good);

        struct {
                const char *jobs;
                const char *rest;
                int expected;
        } cases[] = {
                /* the data must end with a NUL inside the area */
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[0,56]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[1,55]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[-1,5]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[0,5]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[0,9999999999]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[0]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":\"0,55\"}", "", -EBADMSG },
                /* verbs the hook protocol does not have */
                { "{\"target\":\"hook\",\"verb\":\"verify\",\"verify\":true,\"data\":[0,55]}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store;rm\",\"verify\":true,\"data\":[0,55]}", "", -EBADMSG },
                /* unknown and missing keys */
                { "{\"target\":\"hook\",\"verb\":\"store\",\"verify\":true,\"data\":[0,55],\"x\":1}", "", -EBADMSG },
                { "{\"target\":\"hook\",\"verb\":\"store\",\"data\":[0,55]}", "", -EBADMSG },
                { "{\"target\":\"spool\",\"verb\":\"store\",\"verify\":true,\"data\":[0,55]}", "", -EBADMSG },
                /* an AD job without an [ActiveDirectory] configuration, or without its password */
                { "{\"target\":\"ad\",\"volume_guid\":\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1,\"password\":[0,55]}", "", -EBADMSG },
                { "{\"target\":\"ad\",\"volume_guid\":\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1}",
                  ",\"ad\":{\"uri\":\"ldap://x\",\"sasl_nocanon\":true,\"timeout_sec\":1}", -EBADMSG },
                { "{\"target\":\"ad\",\"volume_guid\":\"not-a-guid\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1,\"password\":[0,55]}",
                  ",\"ad\":{\"uri\":\"ldap://x\",\"sasl_nocanon\":true,\"timeout_sec\":1}", -EBADMSG },
                /* a relative keytab, a control character in the URI */
                { "{\"target\":\"ad\",\"volume_guid\":\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1,\"password\":[0,55]}",
                  ",\"ad\":{\"uri\":\"ldap://x\",\"keytab\":\"krb5.keytab\",\"sasl_nocanon\":true,\"timeout_sec\":1}",
                  -EBADMSG },
                { "{\"target\":\"ad\",\"volume_guid\":\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1,\"password\":[0,55]}",
                  ",\"ad\":{\"uri\":\"ldap://x\\u0001\",\"sasl_nocanon\":true,\"timeout_sec\":1}", -EBADMSG },
                /* the same AD job, well formed, deadline 10 >= 4 x 1 */
                { "{\"target\":\"ad\",\"volume_guid\":\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1,\"password\":[0,55]}",
                  ",\"ad\":{\"uri\":\"ldap://x\",\"sasl_nocanon\":true,\"timeout_sec\":1}", 0 },
                /* a deadline shorter than its jobs' bounds: 3 x 4 > 10 */
                { "{\"target\":\"ad\",\"volume_guid\":\"0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60\",\"recovery_guid\":"
                  "\"063EA4E1-220C-4293-BA01-4754620A96E7\",\"created_usec\":1,\"password\":[0,55]}",
                  ",\"ad\":{\"uri\":\"ldap://x\",\"sasl_nocanon\":true,\"timeout_sec\":3}", -EBADMSG },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *h = NULL;

                assert_true(asprintf(&h, "{\"version\":1,\"deadline_sec\":10,%s%s,\"jobs\":[%s]}", hook, cases[i].rest,
                                     cases[i].jobs) > 0);
                if (parse_crafted(h, pw, sizeof(pw) - 1) != cases[i].expected)
                        fail_msg("case %zu: %s", i, h);
        }

        /* The frame: lengths beyond the buffer, another version, no jobs, too many jobs. */
        assert_int_equal(parse_crafted("{\"version\":2,\"deadline_sec\":10,\"jobs\":[]}", NULL, 0), -EPROTONOSUPPORT);
        assert_int_equal(parse_crafted("{\"version\":1,\"deadline_sec\":10,\"jobs\":[]}", NULL, 0), -EBADMSG);
        assert_int_equal(parse_crafted("{\"version\":1,\"deadline_sec\":0,\"jobs\":[]}", NULL, 0), -EBADMSG);
        assert_int_equal(parse_crafted("{\"version\":1,\"deadline_sec\":10,\"jobs\":[],}", NULL, 0), -EBADMSG);
        {
                _cleanup_secure_ uint8_t *buf = secure_alloc(16);
                EscrowBatch b = {};

                buf[0] = 200;
                assert_int_equal(escrow_batch_parse(buf, 16, &b), -EBADMSG);
                assert_int_equal(escrow_batch_parse(buf, 3, &b), -EBADMSG);
                buf[0] = 0;
                assert_int_equal(escrow_batch_parse(buf, 16, &b), -EBADMSG);
        }
}

static void test_results(void **state) {
        EscrowJobResult in[2] = {
                { .location = (char *) "vault:abc", .verified = true },
                { .error = -ETIMEDOUT, .message = (char *) "hook /h: killed after 1 s" },
        };
        EscrowJobResult out[2] = {};
        _cleanup_free_ char *text = NULL;

        (void) state;
        assert_int_equal(escrow_results_format(in, 2, &text), 0);
        assert_int_equal(escrow_results_parse(text, strlen(text), out, 1), -EBADMSG);
        assert_int_equal(escrow_results_parse(text, strlen(text), out, 2), 0);
        assert_int_equal(out[0].error, 0);
        assert_string_equal(out[0].location, "vault:abc");
        assert_true(out[0].verified);
        assert_int_equal(out[1].error, -ETIMEDOUT);
        assert_string_equal(out[1].message, "hook /h: killed after 1 s");
        assert_null(out[1].location);
        escrow_job_results_done(out, 2);

        static const char *const bad[] = {
                "{\"version\":1,\"results\":[{\"error\":5,\"message\":\"x\"}]}",
                "{\"version\":1,\"results\":[{\"error\":0}]}",
                "{\"version\":1,\"results\":[{\"error\":0,\"verified\":true,\"message\":\"x\"}]}",
                "{\"version\":1,\"results\":[{\"error\":0,\"verified\":true,\"location\":\"a\\u0007b\"}]}",
                "{\"version\":1,\"results\":[{\"error\":-5,\"message\":\"\"}]}",
                "{\"version\":1,\"results\":{}}",
                "{\"version\":1}",
                "[]",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (escrow_results_parse(bad[i], strlen(bad[i]), out, 1) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
        assert_int_equal(escrow_results_parse("{\"version\":2,\"results\":[]}", 26, out, 0), -EPROTONOSUPPORT);
}

static void test_helper_hooks(void **state) {
        const char *dir = *state;
        EscrowHelper h = { .helper_path = helper_path() };
        _cleanup_free_ char *log = path_join(dir, "hook.log"), *body = NULL, *ok = NULL, *echo = NULL, *bad = NULL,
                            *hang = NULL, *got = NULL, *error = NULL;
#define HOOK_RECORD "{\"recovery_password\": \"" PASSWORD "\"}"
        static const char record[] = HOOK_RECORD;
        EscrowJobResult res[4] = {};

        (void) state;
        /* It stores, is asked to verify what it stored, and names where it went. */
        assert_true(asprintf(&body, "cat >>'%s'\necho \" $1\" >>'%s'\n[ \"$1\" = store ] && echo 'vault:kv/abc'\n"
                             "exit 0", log, log) > 0);
        ok = test_write_script(dir, "ok.sh", body);
        echo = test_write_script(dir, "echo.sh", "cat; echo 'refused' >&2; cat >&2 </dev/null; exit 0");
        bad = test_write_script(dir, "bad.sh", "cat >/dev/null; echo 'the vault is sealed' >&2; exit 4");
        hang = test_write_script(dir, "hang.sh", "sleep 600");

        EscrowJob job = { .target = ESCROW_TARGET_HOOK, .verb = "store", .verify = true, .data = record,
                          .size = sizeof(record) - 1, .password = PASSWORD };
        EscrowHelperConfig c = { .hook = ok, .hook_timeout_sec = 5 };
        assert_int_equal(escrow_helper_run(&h, &c, &job, 1, res, &error), 0);
        assert_int_equal(res[0].error, 0);
        assert_string_equal(res[0].location, "vault:kv/abc");
        assert_true(res[0].verified);
        got = test_read_file(log);
        assert_non_null(got);
        assert_string_equal(got, HOOK_RECORD " store\n" HOOK_RECORD " verify\n");
        escrow_job_results_done(res, 1);

        /* A hook that echoes its input: the password never comes back. */
        c.hook = echo;
        assert_int_equal(escrow_helper_run(&h, &c, &job, 1, res, &error), 0);
        assert_int_equal(res[0].error, 0);
        assert_null(res[0].location);
        escrow_job_results_done(res, 1);

        /* Failure, with the hook's last line of stderr; a hang, killed at its time limit; both in one
         * batch, results in order, and the helper's own bound is what the jobs need, not more. */
        EscrowJob two[2] = { job, job };
        struct timespec a, b;
        two[1].verify = false;
        c.hook = bad;
        assert_int_equal(escrow_helper_run(&h, &c, two, 2, res, &error), 0);
        assert_int_equal(res[0].error, -EREMOTEIO);
        assert_non_null(strstr(res[0].message, "exit status 4: the vault is sealed"));
        assert_int_equal(res[1].error, -EREMOTEIO);
        escrow_job_results_done(res, 2);
        c.hook = hang;
        c.hook_timeout_sec = 1;
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(escrow_helper_run(&h, &c, two, 2, res, &error), 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_int_equal(res[0].error, -ETIMEDOUT);
        assert_non_null(strstr(res[0].message, "killed after 1 s"));
        assert_int_equal(res[1].error, -ETIMEDOUT);
        escrow_job_results_done(res, 2);
        assert_true(b.tv_sec - a.tv_sec < 10);

        /* A helper that is not there. */
        {
                EscrowHelper missing = { .helper_path = "/nonexistent/sealvol-escrow" };

                assert_true(escrow_helper_run(&missing, &c, &job, 1, res, &error) < 0);
                assert_non_null(strstr(error, "cannot run the escrow helper"));
                error = mfree(error);
        }
}

static void test_helper_directory_silent(void **state) {
        const char *dir = *state;
        EscrowHelper h = { .helper_path = helper_path() };
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        _cleanup_close_ int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        _cleanup_free_ char *uri = NULL, *error = NULL, *keytab = path_join(dir, "none.keytab");
        EscrowJobResult res = {};
        AdConfig ad;

        /* A DC that accepts connections (the kernel does) and never says a word. */
        assert_true(listener >= 0);
        assert_int_equal(bind(listener, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(listener, 16), 0);
        assert_int_equal(getsockname(listener, (struct sockaddr *) &sa, &len), 0);
        assert_true(asprintf(&uri, "ldaps://127.0.0.1:%u", (unsigned) ntohs(sa.sin_port)) > 0);
        ad_config_init(&ad);
        ad.uri = uri;
        ad.bind_dn = (char *) "CN=db1,CN=Computers,DC=example,DC=com";
        ad.password_file = keytab;
        ad.timeout_sec = 1;
        assert_int_equal(write_file_atomic(keytab, "secret\n", 7, 0600), 0);

        EscrowJob job = { .target = ESCROW_TARGET_AD, .created_usec = 1795000000000000, .password = PASSWORD };
        assert_int_equal(guid_parse("063EA4E1-220C-4293-BA01-4754620A96E7", &job.recovery_guid), 0);
        assert_int_equal(guid_parse("0F5C4B22-7D36-4CF1-9A3E-1B2C3D4E5F60", &job.volume_guid), 0);
        EscrowHelperConfig c = { .ad = &ad };
        assert_int_equal(escrow_helper_run(&h, &c, &job, 1, &res, &error), 0);
        assert_true(res.error < 0);
        assert_non_null(res.message);
        assert_null(strstr(res.message, "131648"));
        escrow_job_results_done(&res, 1);
}

/* Accept=yes as systemd does it: one helper per connection, the connection its stdin and stdout. */
static pid_t serve_one(const char *path, int *ret_listener) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        pid_t pid;

        assert_true(listener >= 0);
        strcpy(sa.sun_path, path);
        assert_int_equal(bind(listener, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(listener, 4), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int conn = accept4(listener, NULL, NULL, 0);

                if (conn < 0 || dup2(conn, 0) < 0 || dup2(conn, 1) < 0)
                        _exit(100);
                execl(helper_path(), helper_path(), (char *) NULL);
                _exit(101);
        }
        *ret_listener = listener;
        return pid;
}

static void test_helper_socket(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *sock = path_join(dir, "escrow.socket"), *stale = path_join(dir, "stale.socket"),
                            *body = NULL, *hook = NULL, *error = NULL;
        static const char record[] = "{\"type\": \"retired\"}";
        EscrowJobResult res = {};
        int listener, status;
        pid_t pid;

        hook = test_write_script(dir, "retire.sh", "cat >/dev/null; echo \"retired by $1\"");
        EscrowJob job = { .target = ESCROW_TARGET_HOOK, .verb = "retire", .data = record, .size = sizeof(record) - 1 };
        EscrowHelperConfig c = { .hook = hook, .hook_timeout_sec = 5 };

        pid = serve_one(sock, &listener);
        EscrowHelper h = { .socket_path = sock, .helper_path = "/nonexistent/not-used" };
        assert_int_equal(escrow_helper_run(&h, &c, &job, 1, &res, &error), 0);
        assert_int_equal(res.error, 0);
        assert_string_equal(res.location, "retired by retire");
        escrow_job_results_done(&res, 1);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        safe_close(listener);

        /* A socket file nobody listens on: an error that says so, not a helper of our own (which would
         * run without the network the unit gives it). */
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                int fd = socket(AF_UNIX, SOCK_STREAM, 0);

                strcpy(sa.sun_path, stale);
                assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
                safe_close(fd);
                h.socket_path = stale;
                assert_int_equal(escrow_helper_run(&h, &c, &job, 1, &res, &error), -ECONNREFUSED);
                assert_non_null(strstr(error, "cannot reach the escrow helper"));
                error = mfree(error);
        }
        /* No socket at all: the helper beside us. */
        h = (EscrowHelper) { .socket_path = "/nonexistent/escrow.socket", .helper_path = helper_path() };
        assert_int_equal(escrow_helper_run(&h, &c, &job, 1, &res, &error), 0);
        assert_int_equal(res.error, 0);
        escrow_job_results_done(&res, 1);
}

/* The helper refuses what is not a sealed memfd, and anything but one byte with one descriptor. */
static void test_helper_refuses_unsealed(void **state) {
        char *const argv[] = { (char *) helper_path(), NULL };
        int pair[2], status;
        pid_t pid;

        (void) state;
        for (int variant = 0; variant < 3; variant++) {
                _cleanup_close_ int memfd = memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                char byte = 'B', buf[64];
                union {
                        struct cmsghdr h;
                        uint8_t b[CMSG_SPACE(sizeof(int))];
                } control = {};
                struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

                assert_true(memfd >= 0);
                assert_int_equal(write(memfd, "\x02\0\0\0{}", 6), 6);
                if (variant == 1)
                        assert_int_equal(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
                if (variant < 2) {
                        mh.msg_control = &control;
                        mh.msg_controllen = sizeof(control);
                        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
                        cmsg->cmsg_level = SOL_SOCKET;
                        cmsg->cmsg_type = SCM_RIGHTS;
                        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
                        memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
                }
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
                assert_int_equal(spawn_on_fd(argv, pair[1], NULL, &pid), 0);
                safe_close(pair[1]);
                assert_int_equal(sendmsg(pair[0], &mh, MSG_NOSIGNAL), 1);
                assert_int_equal(shutdown(pair[0], SHUT_WR), 0);
                assert_int_equal(read(pair[0], buf, sizeof(buf)), 0);
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
                safe_close(pair[0]);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_batch_round_trip),
                cmocka_unit_test(test_batch_malformed),
                cmocka_unit_test(test_results),
                cmocka_unit_test_setup_teardown(test_helper_hooks, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_helper_directory_silent, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_helper_socket, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test(test_helper_refuses_unsealed),
        };

        test_require(!isempty(helper_path()), "SEALVOL_ESCROW_HELPER (the sealvol-escrow under test)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
