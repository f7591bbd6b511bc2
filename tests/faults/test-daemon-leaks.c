/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-leaks.c: the secrets a session with sealvold handles (the recovery passwords, through a
 * provisioning, a rotation and a recovery; the VMK and its keyslot passphrase, recovered afterwards
 * so their values are known) never appear where they do not belong: not in the daemon's log, not in
 * its command line or environment, and on the bus (captured with dbus-monitor, as text and as pcap)
 * only in the calls and replies that carry them by design (UnlockWithRecoveryPassword,
 * GetRecoveryPassword's reply). The VMK never crosses the bus at all. And a crash of the daemon
 * writes no core file, where an ordinary process in its place does.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon-fixture.h"
#include "encoding.h"
#include "fileio.h"
#include "recovery.h"
#include "secmem.h"
#include "server-recovery.h"
#include "test-util.h"
#include "vmk.h"
#include "volume.h"

#define MAX_SECRETS 8

static char *password_from(const char *out) {
        const char *p = strstr(out, "Recovery password: ");

        assert_non_null(p);
        return strndup(p + strlen("Recovery password: "), RECOVERY_PASSWORD_LEN);
}

static char *undashed(const char *pw) {
        char *s = strdup(pw), *o = s;

        for (const char *p = pw; *p; p++)
                if (*p != '-')
                        *o++ = *p;
        *o = '\0';
        return s;
}

static bool contains(const char *hay, size_t n, const void *needle, size_t m) {
        return m > 0 && memmem(hay, n, needle, m) != NULL;
}

static char *read_all(const char *path, size_t *ret_n) {
        char *s = NULL;

        assert_int_equal(read_file_full(path, 64 * 1024 * 1024, &s, ret_n), 0);
        return s;
}

/* In dbus-monitor's text output, every message block holding a password must be a call of
 * UnlockWithRecoveryPassword or UnlockWithServerRecoveryPassword, or the reply to a
 * GetRecoveryPassword or GetServerRecoveryPassword call. */
static void check_bus_text(const char *text, char *const *passwords, size_t n_passwords) {
        unsigned long get_serials[256];
        size_t n_get = 0;
        const char *block = text;

        while (block && *block) {
                const char *next = block;
                _cleanup_free_ char *b = NULL;
                unsigned long serial = 0, reply = 0;
                bool holds = false;

                /* A block runs to the next line starting with a message type. */
                do {
                        next = strchr(next, '\n');
                        if (next)
                                next++;
                } while (next && *next && strncmp(next, "method ", 7) != 0 && strncmp(next, "signal ", 7) != 0 &&
                         strncmp(next, "error ", 6) != 0);
                b = next ? strndup(block, (size_t) (next - block)) : strdup(block);
                assert_non_null(b);

                if (strncmp(b, "method call", 11) == 0 &&
                    (strstr(b, "member=GetRecoveryPassword") || strstr(b, "member=GetServerRecoveryPassword")) &&
                    sscanf(strstr(b, " serial=") + 8, "%lu", &serial) == 1 && n_get < ELEMENTSOF(get_serials))
                        get_serials[n_get++] = serial;
                for (size_t i = 0; i < n_passwords; i++)
                        holds = holds || strstr(b, passwords[i]);
                if (holds) {
                        bool allowed = false;

                        if (strncmp(b, "method call", 11) == 0)
                                allowed = strstr(b, "member=UnlockWithRecoveryPassword") ||
                                          strstr(b, "member=UnlockWithServerRecoveryPassword");
                        else if (strncmp(b, "method return", 13) == 0 && strstr(b, "reply_serial=") &&
                                 sscanf(strstr(b, "reply_serial=") + 13, "%lu", &reply) == 1)
                                for (size_t i = 0; i < n_get; i++)
                                        allowed = allowed || get_serials[i] == reply;
                        if (!allowed)
                                fail_msg("a recovery password crossed the bus in a message that should not carry it:\n%s",
                                         b);
                }
                block = next;
        }
}

static void test_secrets_stay_where_they_belong(void **state) {
        _cleanup_(daemon_fixture_freep) DaemonFixture *d = NULL;
        _cleanup_free_ char *image = NULL, *out = NULL, *text_path = NULL, *pcap_path = NULL, *proc = NULL;
        _cleanup_free_ char *log = NULL, *text = NULL, *pcap = NULL, *cmdline = NULL, *environ_ = NULL;
        _cleanup_free_ char *server_password = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL, *pass = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        char *passwords[MAX_SECRETS] = {};
        size_t n_passwords = 0, n_log, n_text, n_pcap, n_cmd, n_env;
        pid_t text_pid, pcap_pid;
        Guid vmk_id;

        (void) state;
        assert_int_equal(daemon_fixture_new("test-daemon-leaks", NULL, &d), 0);
        text_path = path_join(d->dir, "bus.txt");
        pcap_path = path_join(d->dir, "bus.pcap");
        {
                char *const text_argv[] = { (char *) "dbus-monitor", (char *) "--address", d->bus->address,
                                            (char *) "--monitor", NULL };
                char *const pcap_argv[] = { (char *) "dbus-monitor", (char *) "--address", d->bus->address,
                                            (char *) "--pcap", NULL };

                assert_int_equal(test_spawn(text_argv, text_path, -1, &text_pid), 0);
                assert_int_equal(test_spawn(pcap_argv, pcap_path, -1, &pcap_pid), 0);
        }
        usleep(500 * 1000);

        /* A session: provision (the password is shown), read it, rotate, recover with it. */
        assert_int_equal(daemon_fixture_new_image(d, "a.img", &image), 0);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "provision", image), 0);
        passwords[n_passwords++] = password_from(out);
        free(out);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "rotate", image), 0);
        free(out);
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "show", image), 0);
        passwords[n_passwords++] = password_from(out);
        free(out);
        {
                _cleanup_free_ char *input = NULL;

                assert_true(asprintf(&input, "%s\n", passwords[1]) > 0);
                assert_int_equal(DAEMON_CTL(d, 0, input, &out, "recover", image), 0);
                free(out);
        }
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "show", image), 0);
        passwords[n_passwords++] = password_from(out);
        free(out);
        /* The server recovery password, shown too. */
        assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "recovery", "show-server"), 0);
        {
                const char *p = strstr(out, "Server recovery password: ");

                assert_non_null(p);
                server_password = strndup(p + strlen("Server recovery password: "), RECOVERY_PASSWORD_LEN);
                passwords[n_passwords++] = strdup(server_password);
        }
        free(out);
        out = NULL;
        for (size_t i = 0, n = n_passwords; i < n; i++)
                passwords[n_passwords++] = undashed(passwords[i]);

        /* Its command line and environment, while it runs. */
        assert_true(asprintf(&proc, "/proc/%d/cmdline", (int) d->pid) > 0);
        assert_int_equal(read_file_full(proc, 1024 * 1024, &cmdline, &n_cmd), 0);
        free(proc);
        assert_true(asprintf(&proc, "/proc/%d/environ", (int) d->pid) > 0);
        assert_int_equal(read_file_full(proc, 1024 * 1024, &environ_, &n_env), 0);

        (void) kill(text_pid, SIGTERM);
        (void) kill(pcap_pid, SIGTERM);
        (void) waitpid(text_pid, NULL, 0);
        (void) waitpid(pcap_pid, NULL, 0);
        assert_int_equal(daemon_fixture_stop(d), 0);

        /* The VMK and the keyslot passphrase it gives, known now: the server recovery password opens them. */
        assert_int_equal(volume_load(image, &v), 0);
        {
                _cleanup_free_ char *path = path_join(d->state_dir, "server-recovery.json");
                ServerRecovery sr;

                assert_int_equal(server_recovery_read(path, &sr), 0);
                assert_int_equal(server_recovery_unwrap(sr.wrapped_vmk, &sr.key_id, &sr.vmk_id, server_password, &vmk,
                                                        NULL),
                                 0);
                vmk_id = sr.vmk_id;
                server_recovery_done(&sr);
        }
        assert_int_equal(volume_vmk_passphrase(v, vmk, &vmk_id, &pass), 0);

        log = read_all(d->log_path, &n_log);
        text = read_all(text_path, &n_text);
        pcap = read_all(pcap_path, &n_pcap);
        assert_true(n_text > 0 && n_pcap > 0);
        if (!strstr(text, "member=UnlockWithRecoveryPassword")) /* the capture saw the session */
                fail_msg("dbus-monitor did not see the session:\n%.2000s", text);

        for (size_t i = 0; i < n_passwords; i++) {
                assert_false(contains(log, n_log, passwords[i], strlen(passwords[i])));
                assert_false(contains(cmdline, n_cmd, passwords[i], strlen(passwords[i])));
                assert_false(contains(environ_, n_env, passwords[i], strlen(passwords[i])));
        }
        /* The passwords did cross the bus (shown, typed): the check below is not vacuous. */
        assert_non_null(strstr(text, passwords[0]));
        assert_non_null(strstr(text, passwords[1]));
        check_bus_text(text, passwords, n_passwords);
        {
                const struct {
                        const void *data;
                        size_t size;
                } keys[] = { { vmk, VMK_SIZE }, { pass, VMK_KEYSLOT_PASSPHRASE_SIZE } };

                for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                        _cleanup_free_ char *hex = hex_encode(keys[i].data, keys[i].size);
                        _cleanup_free_ char *b64 = base64_encode(keys[i].data, keys[i].size);

                        assert_non_null(hex);
                        assert_non_null(b64);
                        /* Raw, as hex, as base64: nowhere in the log, nowhere on the bus. */
                        assert_false(contains(log, n_log, keys[i].data, keys[i].size));
                        assert_false(contains(log, n_log, hex, strlen(hex)));
                        assert_false(contains(log, n_log, b64, strlen(b64)));
                        assert_false(contains(pcap, n_pcap, keys[i].data, keys[i].size));
                        assert_false(contains(text, n_text, hex, strlen(hex)));
                        assert_false(contains(text, n_text, b64, strlen(b64)));
                }
        }
        for (size_t i = 0; i < n_passwords; i++)
                free(passwords[i]);
}

/* Whether dir holds a core file (core_pattern "core" or "core.<pid>"). */
static bool has_core(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        bool found = false;

        assert_non_null(d);
        while ((de = readdir(d)))
                found = found || strncmp(de->d_name, "core", 4) == 0;
        closedir(d);
        return found;
}

static void remove_cores(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;

        assert_non_null(d);
        while ((de = readdir(d)))
                if (strncmp(de->d_name, "core", 4) == 0) {
                        _cleanup_free_ char *p = path_join(dir, de->d_name);
                        (void) unlink(p);
                }
        closedir(d);
}

/* The daemon holds the VMK in memory: a crash must not write it to a core file. A dumpable process
 * crashing in the same place and with the same limits writes one, so the check is not vacuous. */
static void test_no_core_dump(void **state) {
        _cleanup_(daemon_fixture_freep) DaemonFixture *d = NULL;
        _cleanup_free_ char *dir = NULL, *cwd = get_current_dir_name(), *pattern = NULL;
        struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY }, old;
        int status;
        pid_t pid;

        (void) state;
        assert_int_equal(read_file_full("/proc/sys/kernel/core_pattern", 4096, &pattern, NULL), 0);
        if (strncmp(pattern, "core", 4) != 0)
                fail_msg("core_pattern is \"%s\": this test needs cores written to the working directory", pattern);
        assert_int_equal(test_tmpdir_new("test-daemon-leaks-core", &dir), 0);
        assert_int_equal(chdir(dir), 0);
        assert_int_equal(getrlimit(RLIMIT_CORE, &old), 0);
        assert_int_equal(setrlimit(RLIMIT_CORE, &unlimited), 0);

        /* The control: an ordinary process crashing here leaves a core. */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", "kill -SEGV $$", (char *) NULL);
                _exit(127);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WCOREDUMP(status));
        assert_true(has_core(dir));
        remove_cores(dir);

        /* sealvold, holding the VMK (it unsealed it to provision), crashes the same way: no core. */
        assert_int_equal(daemon_fixture_new("test-daemon-leaks", NULL, &d), 0);
        {
                _cleanup_free_ char *image = NULL, *out = NULL;

                assert_int_equal(daemon_fixture_new_image(d, "a.img", &image), 0);
                assert_int_equal(DAEMON_CTL(d, 0, NULL, &out, "-q", "provision", image), 0);
        }
        assert_int_equal(kill(d->pid, SIGSEGV), 0);
        assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
        d->pid = 0;
        assert_true(WIFSIGNALED(status));
        assert_false(WCOREDUMP(status));
        assert_false(has_core(dir));

        assert_int_equal(setrlimit(RLIMIT_CORE, &old), 0);
        assert_int_equal(chdir(cwd), 0);
        (void) rm_rf(dir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_secrets_stay_where_they_belong),
                cmocka_unit_test(test_no_core_dump),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(test_have_executable("dbus-monitor"), "dbus-monitor (Debian package dbus-bin)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(geteuid() == 0, "root (dbus-monitor on the system bus)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
