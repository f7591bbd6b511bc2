/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-inplace.c: `sealvolctl provision --in-place` through sealvold: an ext4 image full of
 * known data ends up a sealvol volume that decrypts (recovery password -> volume key -> AES-XTS) to
 * exactly the bytes it held; the daemon SIGKILLed in the middle resumes on restart; a pause survives a
 * restart and resume finishes it (cancel refused once data is encrypted); a job started paused is
 * cancelled, killed midway and finished by the next start, with the file system back byte for byte;
 * refusals (swap, too small, in use, already LUKS, the same device twice) are clear, with nothing
 * changed.
 */

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "daemon-fixture.h"
#include "fileio.h"
#include "luks-fixture.h"
#include "recovery.h"
#include "test-util.h"
#include "volume-inplace.h"

#define MiB (UINT64_C(1) << 20)

static int setup(void **state) {
        DaemonFixture *d = NULL;

        if (daemon_fixture_new("test-daemon-inplace", NULL, &d) < 0)
                return -1;
        *state = d;
        return 0;
}

static int teardown(void **state) {
        DaemonFixture *d = *state;
        int r = daemon_fixture_stop(d);

        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(d->log_path);
                fprintf(stderr, "sealvold did not stop cleanly (%s); its log:\n%s\n", strerror(-r), strempty(log));
        }
        daemon_fixture_free(d);
        return r < 0 ? -1 : 0;
}

static char *image_new(DaemonFixture *d, const char *name, unsigned size_mb, unsigned fs_mb, unsigned files_mb) {
        char *image = NULL;

        assert_int_equal(ext4_image_new(d->dir, name, size_mb, fs_mb, files_mb, &image), 0);
        return image;
}

static char *password_from(const char *out) {
        const char *p = strstr(out, "Recovery password: ");

        assert_non_null(p);
        return strndup(p + strlen("Recovery password: "), RECOVERY_PASSWORD_LEN);
}

static void assert_decrypts_to(const char *image, const char *password, const uint8_t *before, uint64_t size) {
        _cleanup_free_ uint8_t *after = NULL;

        assert_int_equal(luks_image_decrypt(image, password, strlen(password), size, &after), 0);
        assert_memory_equal(before, after, size);
}

/* Waits (bounded) until the volume's Encryption property is want, via sealvolctl. */
static void wait_encryption(DaemonFixture *d, const char *image, const char *want, unsigned seconds) {
        _cleanup_free_ char *out = NULL;

        for (unsigned i = 0; i < seconds * 10; i++) {
                out = mfree(out);
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "encryption", "status", image), 0);
                if (strstr(out, want))
                        return;
                usleep(100 * 1000);
        }
        fail_msg("the encryption of %s never reached \"%s\": %s", image, want, strempty(out));
}

static void test_in_place_through_daemon(void **state) {
        DaemonFixture *d = *state;
        _cleanup_free_ char *image = image_new(d, "a.img", 160, 128, 60), *out = NULL, *password = NULL;
        _cleanup_free_ uint8_t *before = NULL;

        assert_int_equal(read_file_range(image, 0, 128 * MiB, &before), 0);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", image), 0);
        /* Not a terminal: plain progress lines, the password, then the end. */
        assert_non_null(strstr(out, "Recovery Key ID: "));
        assert_non_null(strstr(out, "Encrypted."));
        password = password_from(out);
        assert_decrypts_to(image, password, before, 128 * MiB);
        free(out);
        /* Now an ordinary volume: unlock verifies it, status lists it. */
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "unlock", image), 0);
        free(out);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "encryption", "status", image), 0);
        assert_non_null(strstr(out, "no in-place encryption under way"));
}

/* Reads the image's first size bytes, starts its in-place encryption without following it, and
 * returns the recovery password shown. */
static char *start_in_place(DaemonFixture *d, const char *image, uint64_t size, uint8_t **ret_before) {
        _cleanup_free_ char *out = NULL;

        assert_int_equal(read_file_range(image, 0, size, ret_before), 0);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", "--no-wait", image), 0);
        return password_from(out);
}

static void test_killed_daemon_resumes(void **state) {
        DaemonFixture *d = *state;
        _cleanup_free_ char *image = image_new(d, "b.img", 544, 512, 200), *password = NULL;
        _cleanup_free_ uint8_t *before = NULL;

        password = start_in_place(d, image, 512 * MiB, &before);
        /* Under way, it is the volume's operation: status names it. */
        {
                _cleanup_free_ char *out = NULL;

                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "status"), 0);
                if (!strstr(out, "Under way: encrypt"))
                        fail_msg("status does not name the in-place encryption under way: %s", out);
        }
        /* Killed in the middle, as a crash would; the restart resumes from the metadata. */
        usleep(300 * 1000);
        assert_int_equal(daemon_fixture_kill(d), 0);
        assert_int_equal(daemon_fixture_start(d), 0);
        wait_encryption(d, image, "no in-place encryption under way", 300);
        assert_decrypts_to(image, password, before, 512 * MiB);
}

static void test_pause_survives_restart(void **state) {
        DaemonFixture *d = *state;
        _cleanup_free_ char *image = image_new(d, "c.img", 544, 512, 100), *out = NULL, *password = NULL;
        _cleanup_free_ uint8_t *before = NULL;

        password = start_in_place(d, image, 512 * MiB, &before);
        /* Paused once data is encrypted (a pause before the first step stops with none, which is
         * what a job started --paused does). */
        for (unsigned i = 0;; i++) {
                unsigned long done;
                const char *p;

                assert_true(i < 3000);
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "encryption", "status", image), 0);
                p = strstr(out, ": encrypting, ");
                if (p && sscanf(p, ": encrypting, %lu of", &done) == 1 && done > 0)
                        break;
                out = mfree(out);
                usleep(10 * 1000);
        }
        out = mfree(out);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "encryption", "pause", image), 0);
        free(out);
        out = NULL;
        wait_encryption(d, image, ": paused,", 60);
        /* A clean restart keeps it paused. */
        assert_int_equal(daemon_fixture_stop(d), 0);
        assert_int_equal(daemon_fixture_start(d), 0);
        assert_int_equal(volume_inplace_in_progress(image), 1);
        wait_encryption(d, image, ": paused,", 10);
        /* Data is encrypted already: cancel refuses, says what can be done, and changes nothing. */
        free(out);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "encryption", "cancel", image), 1);
        if (!strstr(out, "part of it is encrypted already") || !strstr(out, "sealvolctl encryption resume"))
                fail_msg("cancel of a job under way: %s", out);
        assert_int_equal(volume_inplace_in_progress(image), 1);
        free(out);
        /* Resume follows it to the end. */
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "encryption", "resume", image), 0);
        assert_non_null(strstr(out, "Encrypted."));
        assert_decrypts_to(image, password, before, 512 * MiB);
}

/* A hook that stores records in <hook dir>/records and, told to retire one while "hold-retire" exists,
 * says so ("retiring") and waits: the moment a cancellation has put the data back and not yet
 * forgotten the volume. */
typedef struct HookFixture {
        DaemonFixture *d;
        char *dir;
} HookFixture;

static int setup_hook(void **state) {
        HookFixture *h = calloc(1, sizeof(*h));
        _cleanup_free_ char *hook = NULL, *text = NULL, *config = NULL, *records = NULL;

        if (!h || test_tmpdir_new("test-daemon-inplace-hook", &h->dir) < 0)
                return -1;
        hook = path_join(h->dir, "hook.sh");
        records = path_join(h->dir, "records");
        if (!hook || !records || mkdir(records, 0700) < 0 ||
            asprintf(&text,
                     "#!/bin/sh\n"
                     "d='%s'\n"
                     "case \"$1\" in\n"
                     "store) n=$(ls \"$d/records\" | wc -l); cat >\"$d/records/$n.json\"; echo \"file:$d/records/$n.json\" ;;\n"
                     "retire) cat >\"$d/retired.json.new\"; touch \"$d/retiring\"\n"
                     "  while [ -e \"$d/hold-retire\" ]; do sleep 0.1; done; mv \"$d/retired.json.new\" \"$d/retired.json\" ;;\n"
                     "*) exit 2 ;;\n"
                     "esac\n",
                     h->dir) < 0 ||
            write_file_atomic(hook, text, strlen(text), 0755) < 0 ||
            asprintf(&config, "[Escrow]\nTargets=spool hook\nHookTimeoutSec=120\nHook=%s\n", hook) < 0 ||
            daemon_fixture_new("test-daemon-inplace", config, &h->d) < 0)
                return -1;
        *state = h;
        return 0;
}

static int teardown_hook(void **state) {
        HookFixture *h = *state;
        int r = teardown((void **) &h->d);

        (void) rm_rf(h->dir);
        free(h->dir);
        free(h);
        return r;
}

static bool listed(DaemonFixture *d, const char *image) {
        _cleanup_free_ char *out = NULL;

        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "list"), 0);
        return strstr(out, image) != NULL;
}

static void assert_file_system_back(const char *image, const uint8_t *before, uint64_t size) {
        _cleanup_free_ uint8_t *now = NULL;
        _cleanup_free_ char *cmd = NULL;

        assert_int_equal(read_file_range(image, 0, size, &now), 0);
        assert_memory_equal(before, now, size);
        assert_int_equal(volume_inplace_in_progress(image), 0);
        assert_true(asprintf(&cmd, "e2fsck -fn '%s' >/dev/null 2>&1", image) > 0);
        assert_int_equal(system(cmd), 0);
}

/* provision --in-place --paused sets the volume up and encrypts nothing, also across a restart;
 * encryption cancel puts the file system back as it was, forgets the volume and retires its escrow
 * records; killed after the data is back and before the volume is forgotten (the hook holds the
 * retirement), the next start finishes; and the device can be encrypted again. */
static void test_cancel_before_encrypting(void **state) {
        HookFixture *h = *state;
        DaemonFixture *d = h->d;
        _cleanup_free_ char *image = image_new(d, "e.img", 160, 128, 40), *out = NULL, *password = NULL;
        _cleanup_free_ char *hold = path_join(h->dir, "hold-retire"), *retiring = path_join(h->dir, "retiring");
        _cleanup_free_ char *retired = path_join(h->dir, "retired.json"), *inplace = path_join(d->state_dir, "inplace");
        _cleanup_free_ uint8_t *before = NULL;
        int status;
        pid_t pid;

        assert_int_equal(read_file_range(image, 0, 128 * MiB, &before), 0);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", "--paused", image), 0);
        assert_non_null(strstr(out, "Set up and paused before encrypting anything"));
        password = password_from(out);
        wait_encryption(d, image, ": paused, 0 of 144 MiB", 60);
        /* Nothing encrypted: the file system is where it was, but for its first 16 MiB, which wait in
         * the free tail while the header takes their place. */
        {
                _cleanup_free_ uint8_t *rest = NULL;

                assert_int_equal(read_file_range(image, 16 * MiB, 112 * MiB, &rest), 0);
                assert_memory_equal(before + 16 * MiB, rest, 112 * MiB);
        }
        assert_int_equal(daemon_fixture_stop(d), 0);
        assert_int_equal(daemon_fixture_start(d), 0);
        wait_encryption(d, image, ": paused, 0 of 144 MiB", 10);

        /* Cancelled, and killed while the hook is told its record is void. */
        assert_int_equal(write_file_atomic(hold, "", 0, 0644), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char *o = NULL;

                _exit(DAEMON_CTL(d, 0, NULL, &o, "encryption", "cancel", image) == 0 ? 0 : 1);
        }
        for (unsigned i = 0; i < 600 && access(retiring, F_OK) < 0; i++)
                usleep(100 * 1000);
        assert_int_equal(access(retiring, F_OK), 0);
        {
                _cleanup_free_ char *summary = NULL;

                assert_int_equal(DAEMON_CTL(d, 0, NULL, &summary, "status"), 0);
                if (!strstr(summary, "Under way: cancel-encryption"))
                        fail_msg("status does not name the cancellation under way: %s", summary);
        }
        assert_file_system_back(image, before, 128 * MiB);
        assert_true(listed(d, image));
        assert_int_equal(daemon_fixture_kill(d), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);

        /* The start finishes it: the copy again (the same bytes), the retirement, the forgetting. */
        assert_int_equal(unlink(hold), 0);
        assert_int_equal(unlink(retiring), 0);
        assert_int_equal(daemon_fixture_start(d), 0);
        assert_int_equal(daemon_fixture_wait_idle(d, 60000), 0);
        assert_false(listed(d, image));
        assert_file_system_back(image, before, 128 * MiB);
        assert_int_equal(access(retired, F_OK), 0);
        {
                _cleanup_(closedirp) DIR *dir = opendir(inplace);
                struct dirent *de;

                assert_non_null(dir);
                while ((de = readdir(dir)))
                        if (de->d_name[0] != '.')
                                fail_msg("%s is left in %s", de->d_name, inplace);
        }
        /* The password shown opens nothing any more: there is no header. */
        {
                _cleanup_free_ uint8_t *nothing = NULL;

                assert_int_not_equal(luks_image_decrypt(image, password, strlen(password), MiB, &nothing), 0);
        }

        /* Encrypted afresh, to the end. */
        free(out);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", image), 0);
        assert_non_null(strstr(out, "Encrypted."));
        free(password);
        password = password_from(out);
        assert_decrypts_to(image, password, before, 128 * MiB);
}

static void sha256_of(const char *path, uint8_t ret[static 32]) {
        _cleanup_free_ char *data = NULL;
        size_t n;

        assert_int_equal(read_file_full(path, 256 * MiB, &data, &n), 0);
        SHA256((const unsigned char *) data, n, ret);
}

static void expect_refused(DaemonFixture *d, const char *image, int code, const char *words) {
        _cleanup_free_ char *out = NULL;
        uint8_t a[32], b[32];

        sha256_of(image, a);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", image), code);
        if (!strstr(out, words))
                fail_msg("expected \"%s\" in: %s", words, out);
        sha256_of(image, b);
        assert_memory_equal(a, b, 32);
}

static void test_refusals(void **state) {
        DaemonFixture *d = *state;
        _cleanup_free_ char *swap = path_join(d->dir, "swap.img"), *small = image_new(d, "small.img", 48, 48, 1);
        _cleanup_free_ char *attached = image_new(d, "attached.img", 100, 64, 1), *cmd = NULL, *out = NULL;
        _cleanup_free_ char *done = image_new(d, "done.img", 100, 64, 4);
        char line[64] = "";
        FILE *f;

        assert_true(asprintf(&cmd, "truncate -s 100M '%s' && mkswap -q '%s' >/dev/null", swap, swap) > 0);
        assert_int_equal(system(cmd), 0);
        expect_refused(d, swap, 7, "holds swap, which sealvol does not encrypt in place");
        expect_refused(d, small, 1, "smaller than 64 MiB");

        free(cmd);
        assert_true(asprintf(&cmd, "losetup -f --show '%s'", attached) > 0);
        f = popen(cmd, "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof(line), f));
        assert_int_equal(pclose(f), 0);
        line[strcspn(line, "\n")] = '\0';
        expect_refused(d, attached, 1, "is attached to /dev/loop");
        free(cmd);
        assert_true(asprintf(&cmd, "losetup -d '%s'", line) > 0);
        assert_int_equal(system(cmd), 0);

        /* Too full to make room for the header: the job refuses with resize2fs's words, changes
         * nothing, leaves nothing that would refuse a retry, and its audit record says so. */
        {
                _cleanup_free_ char *full = image_new(d, "full.img", 100, 100, 86), *log = NULL, *needle = NULL;

                expect_refused(d, full, 1, "Cannot encrypt");
                expect_refused(d, full, 1, "Cannot encrypt");
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", full), 1);
                assert_null(strstr(out, "already being encrypted"));
                out = mfree(out);
                log = test_read_file(d->log_path);
                assert_non_null(log);
                assert_true(asprintf(&needle, "DETAIL=%s\n", full) > 0);
                unsigned records = 0;
                for (const char *p = log; (p = strstr(p, "OPERATION=provision-in-place ")); p++) {
                        const char *end = strchr(p, '\n');

                        assert_non_null(end);
                        if (!strstr(p, needle) || strstr(p, needle) > end)
                                continue;
                        records++;
                        if (!memmem(p, (size_t) (end - p), "RESULT=failure ERRNO=28", strlen("RESULT=failure ERRNO=28")))
                                fail_msg("the audit record of a refused job: %.*s", (int) (end - p), p);
                }
                assert_int_equal(records, 3);
        }

        /* Encrypted once; a second request finds LUKS. */
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", "--in-place", done), 0);
        expect_refused(d, done, 1, "is already LUKS");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_in_place_through_daemon, setup, teardown),
                cmocka_unit_test_setup_teardown(test_killed_daemon_resumes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pause_survives_restart, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_before_encrypting, setup_hook, teardown_hook),
                cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(test_have_executable("mke2fs"), "mke2fs (Debian package e2fsprogs)");
        test_require(test_have_executable("losetup"), "losetup (Debian package mount)");
        test_require(test_have_executable("mkswap"), "mkswap (Debian package util-linux)");
        test_require(geteuid() == 0, "root");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
