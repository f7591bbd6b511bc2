/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-escrow.c: sealvold escrows every recovery password it creates. The spool (encrypted to
 * the DRA; plain without one, and status says so; plain records encrypted once a DRA is set), the hook
 * (encrypted to the DRA too, unless configured otherwise, and the bus and status say which), a hook
 * that fails and is retried with backoff (across a daemon restart) until the record is there, and
 * "require escrow": a provisioning or a rotation whose required escrow fails (or hangs past the time
 * limit) changes nothing.
 */

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>
#include <systemd/sd-bus.h>

#include "daemon-fixture.h"
#include "dra-fixture.h"
#include "dra.h"
#include "escrow.h"
#include "fileio.h"
#include "luks-fixture.h"
#include "recovery.h"
#include "secmem.h"
#include "test-util.h"
#include "vmk.h"
#include "volume.h"

#define NOBODY 65534

typedef struct Fixture {
        char *dir;      /* the hook's world: its script, its flags, its records */
        char *hook;
        char *records;
        DaemonFixture *d;
        int silent_dc;  /* a listener that accepts and never answers (setup_everything_slow), or -1 */
} Fixture;

/* The hook stores each record as records/N.json and prints where; "down" makes it fail, "hang" makes
 * it hang, "echo" prints the record on one line (its password without dashes) on stdout and stderr and exits
 * with the status the file holds; "verify" succeeds when the record is among those stored. */
static int write_hook(Fixture *f) {
        _cleanup_free_ char *text = NULL;

        f->hook = path_join(f->dir, "hook.sh");
        f->records = path_join(f->dir, "records");
        if (!f->hook || !f->records || mkdir(f->records, 0700) < 0)
                return -1;
        if (asprintf(&text,
                     "#!/bin/sh\n"
                     "d='%s'\n"
                     "if [ -e \"$d/down\" ]; then cat >/dev/null; echo 'vault: connection refused' >&2; exit 7; fi\n"
                     "while [ -e \"$d/hang\" ]; do sleep 0.1; done\n"
                     "if [ -e \"$d/echo\" ]; then tr -d '\\n-' | tee /dev/stderr; exit \"$(cat \"$d/echo\")\"; fi\n"
                     "if [ -e \"$d/garbage\" ]; then cat >/dev/null; head -c 20000 /dev/urandom;\n"
                     "  head -c 20000 /dev/urandom >&2; exit \"$(cat \"$d/garbage\")\"; fi\n"
                     "case \"$1\" in\n"
                     "store) n=$(ls \"$d/records\" | wc -l); cat >\"$d/records/$n.json\"; echo \"file:$d/records/$n.json\" ;;\n"
                     "verify) cat >\"$d/verify.in\"; for r in \"$d\"/records/*.json; do cmp -s \"$r\" \"$d/verify.in\" && exit 0; done; exit 1 ;;\n"
                     "retire) cat >\"$d/retired.json\" ;;\n"
                     "*) exit 2 ;;\n"
                     "esac\n",
                     f->dir) < 0)
                return -1;
        return write_file_atomic(f->hook, text, strlen(text), 0755);
}

/* extra: configuration for the daemon; the [Escrow] section comes last and gets Hook= added. */
static int setup_with(void **state, const char *extra) {
        Fixture *f = calloc(1, sizeof(*f));
        _cleanup_free_ char *config = NULL;

        if (!f)
                return -1;
        f->silent_dc = -EBADF;
        if (test_tmpdir_new("test-daemon-escrow-hook", &f->dir) < 0 || write_hook(f) < 0)
                return -1;
        if (asprintf(&config, "%sHook=%s\n", extra, f->hook) < 0)
                return -1;
        if (daemon_fixture_new("test-daemon-escrow", config, &f->d) < 0)
                return -1;
        *state = f;
        return 0;
}

static int setup_spool(void **state) {
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt");
        _cleanup_free_ char *extra = NULL;

        if (!cert || asprintf(&extra, "[DRA]\nCertificate=%s\n[Escrow]\n", cert) < 0)
                return -1;
        return setup_with(state, extra);
}

/* A DRA certificate in force, the spool and the hook; HookPlaintext= as given. */
static int setup_dra_hook(void **state) {
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt"), *extra = NULL;

        if (!cert || asprintf(&extra, "[DRA]\nCertificate=%s\n[Escrow]\nTargets=spool hook\n", cert) < 0)
                return -1;
        return setup_with(state, extra);
}

static int setup_dra_hook_plaintext(void **state) {
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt"), *extra = NULL;

        if (!cert ||
            asprintf(&extra, "[DRA]\nCertificate=%s\n[Escrow]\nTargets=spool hook\nHookPlaintext=yes\n", cert) < 0)
                return -1;
        return setup_with(state, extra);
}

/* No DRA yet, but one that may be set over the bus. */
static int setup_dra_later(void **state) {
        _cleanup_free_ char *fp = dra_fixture_fingerprint("rsa2048"), *extra = NULL;

        if (!fp || asprintf(&extra, "[DRA]\nPinnedFingerprint=%s\n[Escrow]\nTargets=spool hook\n", fp) < 0)
                return -1;
        return setup_with(state, extra);
}

static int setup_plain(void **state) {
        return setup_with(state, "[Escrow]\nTargets=spool\n");
}

static int setup_hook(void **state) {
        return setup_with(state, "[Escrow]\nTargets=spool hook\nHookTimeoutSec=2\nRetrySec=1\nRetryMaxSec=2\n");
}

/* The hook that takes 30 s: what a vault behind a slow network does. */
static int setup_slow_hook(void **state) {
        return setup_with(state, "[Escrow]\nTargets=spool hook\nHookTimeoutSec=30\n");
}

static int setup_required(void **state) {
        return setup_with(state, "[Escrow]\nTargets=hook\nRequire=hook\nHookTimeoutSec=1\n");
}

static int teardown(void **state) {
        Fixture *f = *state;
        int r = daemon_fixture_stop(f->d);

        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);
                fprintf(stderr, "sealvold did not stop cleanly (%s); its log:\n%s\n", strerror(-r), strempty(log));
        }
        daemon_fixture_free(f->d);
        (void) rm_rf(f->dir);
        free(f->dir);
        free(f->hook);
        free(f->records);
        if (f->silent_dc >= 0)
                (void) close(f->silent_dc);
        free(f);
        return r < 0 ? -1 : 0;
}

static void flag(Fixture *f, const char *name, bool on) {
        _cleanup_free_ char *p = path_join(f->dir, name);

        if (on)
                assert_int_equal(write_file_atomic(p, "", 0, 0644), 0);
        else
                assert_int_equal(unlink(p), 0);
}

/* Provisions an image through sealvolctl; returns the exit status, the UUID, Key ID and password. */
static int provision(Fixture *f, const char *name, char **ret_image, char **ret_key_id, char **ret_password) {
        _cleanup_free_ char *out = NULL;
        char *p;
        int r;

        assert_int_equal(daemon_fixture_new_image(f->d, name, ret_image), 0);
        r = DAEMON_CTL(f->d, 0, NULL, &out, "provision", *ret_image);
        if (r != 0) {
                fprintf(stderr, "provision: %s", out);
                return r;
        }
        p = strstr(out, "Recovery Key ID: ");
        assert_non_null(p);
        *ret_key_id = strndup(p + strlen("Recovery Key ID: "), 36);
        p = strstr(out, "Recovery password: ");
        assert_non_null(p);
        *ret_password = strndup(p + strlen("Recovery password: "), RECOVERY_PASSWORD_LEN);
        return 0;
}

static char *volume_uuid(const char *image) {
        _cleanup_(volume_freep) Volume *v = NULL;

        assert_int_equal(volume_load(image, &v), 0);
        return strdup(v->token.volume_uuid);
}

/* The escrow record of target in the image's token (what survives a restart). */
static EscrowRecord token_escrow(const char *image, const char *target) {
        _cleanup_(volume_freep) Volume *v = NULL;
        const EscrowRecord *e;

        assert_int_equal(volume_load(image, &v), 0);
        e = protector_get_escrow(&v->token.protectors[PROTECTOR_RECOVERY], target);
        assert_non_null(e);
        return *e;
}

/* A record's fields, checked against what opens the volume. */
static void check_record(const char *json, size_t size, const char *image, const char *key_id, const char *password) {
        _cleanup_free_ char *uuid = volume_uuid(image);
        _cleanup_(volume_freep) Volume *v = NULL;
        json_object *o = json_tokener_parse(json), *x;

        (void) size;
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "key_id", &x));
        assert_string_equal(json_object_get_string(x), key_id);
        assert_true(json_object_object_get_ex(o, "volume_uuid", &x));
        assert_string_equal(json_object_get_string(x), uuid);
        assert_true(json_object_object_get_ex(o, "device", &x));
        assert_string_equal(json_object_get_string(x), image);
        assert_true(json_object_object_get_ex(o, "recovery_password", &x));
        assert_string_equal(json_object_get_string(x), password);
        /* And the password escrowed is one that opens the volume. */
        assert_int_equal(volume_load(image, &v), 0);
        assert_true(volume_open_recovery(v, json_object_get_string(x), NULL, 0, NULL) >= 0);
        json_object_put(o);
}

static size_t count_files(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        size_t n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

/* The path of the last record the hook stored that names key_id (the hook gets the server recovery
 * password's record too, at the first provisioning). */
static char *hook_record_of(Fixture *f, const char *key_id) {
        char *found = NULL;

        for (unsigned n = 0;; n++) {
                _cleanup_free_ char *name = NULL, *p = NULL, *text = NULL;

                assert_true(asprintf(&name, "%u.json", n) > 0);
                p = path_join(f->records, name);
                if (read_file_full(p, 65536, &text, NULL) < 0)
                        break;
                if (strstr(text, key_id)) {
                        free(found);
                        found = TAKE_PTR(p);
                }
        }
        assert_non_null(found);
        return found;
}

/* The server recovery password and its Key ID, as the daemon hands them out. */
static void server_password(Fixture *f, char **ret_password, char **ret_key_id) {
        _cleanup_free_ char *out = NULL;
        const char *p;

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "show-server"), 0);
        p = strstr(out, "Server recovery password: ");
        assert_non_null(p);
        *ret_password = strndup(p + strlen("Server recovery password: "), RECOVERY_PASSWORD_LEN);
        p = strstr(out, "Key ID: ");
        assert_non_null(p);
        *ret_key_id = strndup(p + strlen("Key ID: ") + strspn(p + strlen("Key ID: "), " "), 36);
}

static void test_spool_encrypted_to_dra(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *uuid = NULL, *out = NULL;
        _cleanup_free_ char *spool = path_join(f->d->state_dir, "escrow"), *file = NULL, *der = NULL;
        _cleanup_secure_ void *plain = NULL;
        EVP_PKEY *key = dra_fixture_key("rsa2048");
        size_t der_size, plain_size;
        EscrowRecord e;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        uuid = volume_uuid(image);

        /* One CMS file per password, which the DRA key opens to the record. */
        assert_true(asprintf(&file, "%s/%s-%s.cms", spool, uuid, key_id) > 0);
        assert_int_equal(read_file_full(file, 65536, &der, &der_size), 0);
        assert_null(memmem(der, der_size, password, strlen(password)));
        assert_int_equal(dra_unwrap(key, (uint8_t *) der, der_size, &plain, &plain_size), 0);
        check_record(plain, plain_size, image, key_id, password);

        e = token_escrow(image, "spool");
        assert_int_equal(e.state, ESCROW_DONE);
        assert_true(e.verified);
        assert_string_equal(e.location, file);

        /* Status shows it, to anyone. */
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "escrow: spool done (verified)"));
        assert_non_null(strstr(out, "encrypted to the DRA"));
        assert_non_null(strstr(out, "VMK export escrow: spool done (verified)"));
        free(out);

        /* The DRA holder finds it offline by the first 8 digits of its Key ID, the VMK export
         * record beside it passed over. */
        {
                _cleanup_free_ char *key_path = dra_fixture_path("rsa2048", ".key");
                char prefix[9];

                snprintf(prefix, sizeof(prefix), "%s", key_id);
                assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "-q", "recovery", "lookup", "--spool", spool,
                                            "--dra-key", key_path, prefix), 0);
                assert_non_null(strstr(out, password));
                free(out);
        }

        /* With a DRA, the server's VMK export went to the spool too: the DRA key opens it to the VMK
         * that opens the volume. */
        {
                _cleanup_free_ char *vmk_file = NULL, *text = NULL;
                _cleanup_secure_ uint8_t *vmk = NULL;
                _cleanup_(volume_freep) Volume *v = NULL;
                json_object *o, *x;
                char id[GUID_STRING_MAX];
                Guid vmk_id;

                /* Sent by the escrow pass that followed the provisioning, off the loop. */
                assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
                assert_int_equal(volume_load(image, &v), 0);
                assert_true(asprintf(&vmk_file, "%s/vmk-%s.json", spool, guid_format(&v->token.vmk_id, id)) > 0);
                assert_int_equal(read_file_full(vmk_file, 65536, &text, NULL), 0);
                o = json_tokener_parse(text);
                assert_non_null(o);
                assert_true(json_object_object_get_ex(o, "type", &x));
                assert_string_equal(json_object_get_string(x), "vmk");
                assert_true(json_object_object_get_ex(o, "vmk_export", &x));
                {
                        const char *export = json_object_to_json_string(x);
                        assert_int_equal(vmk_import_dra(export, strlen(export), key, &vmk, &vmk_id), 0);
                }
                json_object_put(o);
                assert_true(guid_equal(&vmk_id, &v->token.vmk_id));
                assert_true(volume_open_vmk(v, vmk, &vmk_id, NULL, 0) >= 0);
        }
        /* The server recovery password is in the spool too, by its Key ID and the VMK's identity where a
         * volume's would be; the DRA holder finds it by its Key ID as well. */
        {
                _cleanup_free_ char *spw = NULL, *skey = NULL, *key_path = dra_fixture_path("rsa2048", ".key");
                _cleanup_(volume_freep) Volume *v = NULL;
                char vmk_id[GUID_STRING_MAX], prefix[9];

                server_password(f, &spw, &skey);
                assert_int_equal(volume_load(image, &v), 0);
                guid_format(&v->token.vmk_id, vmk_id);
                for (char *c = vmk_id; *c; c++)
                        *c = (char) tolower((unsigned char) *c);
                free(file);
                assert_true(asprintf(&file, "%s/%s-%s.cms", spool, vmk_id, skey) > 0);
                assert_int_equal(access(file, F_OK), 0);
                snprintf(prefix, sizeof(prefix), "%s", skey);
                assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "-q", "recovery", "lookup", "--spool", spool,
                                            "--dra-key", key_path, prefix), 0);
                assert_non_null(strstr(out, spw));
                free(out);
                out = NULL;
                assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "status"), 0);
                assert_non_null(strstr(out, "escrow: spool done (verified)"));
                free(out);
                out = NULL;
        }
        EVP_PKEY_free(key);
        assert_int_equal(count_files(spool), 3);

        /* A rotation escrows the new password; the old record stays, as history. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "rotate", uuid), 0);
        free(out);
        assert_int_equal(count_files(spool), 4);

        /* On demand, for one volume or all; only with authorisation. */
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "recovery", "escrow", uuid), 3);
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "escrow", uuid), 0);
        assert_non_null(strstr(out, "spool done (verified)"));
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "escrow", "--all"), 0);
        assert_non_null(strstr(out, "1 escrowed, 0 failed"));
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--json", "status"), 0);
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--json", "status"), 0);
        assert_non_null(strstr(out, "\"escrow\":[{\"target\":\"spool\",\"state\":\"done\",\"verified\":true"));
        free(out);
        out = NULL;
        assert_int_equal(count_files(spool), 4);
}

/* ---- what goes out in plaintext, and what says so ----------------------------------------------- */

/* The first group of the password's digits, which any form of it shows. */
static bool shows_password(const char *data, size_t size, const char *password) {
        char group[7];

        snprintf(group, sizeof(group), "%s", password);
        return memmem(data, size, group, strlen(group)) != NULL;
}

static bool manager_bool(const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int b = -1;

        assert_int_equal(sd_bus_open_system(&bus), 0);
        assert_true(sd_bus_get_property_trivial(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", property,
                                                &error, 'b', &b) >= 0);
        sd_bus_flush_close_unref(bus);
        return b;
}

/* EscrowEncryption's entry for target: whether encrypted, and the words for it. */
static bool target_encryption(const char *target, char **ret_how) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *t, *how;
        sd_bus *bus = NULL;
        int encrypted, found = -1;

        assert_int_equal(sd_bus_open_system(&bus), 0);
        assert_true(sd_bus_get_property(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "EscrowEncryption",
                                        &error, &reply, "a(sbs)") >= 0);
        assert_true(sd_bus_message_enter_container(reply, 'a', "(sbs)") > 0);
        while (sd_bus_message_read(reply, "(sbs)", &t, &encrypted, &how) > 0)
                if (streq(t, target)) {
                        found = encrypted;
                        *ret_how = strdup(how);
                }
        sd_bus_message_unref(reply);
        sd_bus_flush_close_unref(bus);
        assert_true(found >= 0);
        return found;
}

/* The attack: with a DRA certificate set, the hook got the plaintext password while the bus and status
 * said escrow was encrypted. Now it gets the record inside CMS to the DRA, the Key ID in clear to file
 * it by; the DRA key opens what it stored (sealvolctl recovery lookup), and it verifies. */
static void test_hook_encrypted_with_dra(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL, *how = NULL;
        _cleanup_free_ char *stored = NULL, *text = NULL;
        _cleanup_free_ char *key_path = dra_fixture_path("rsa2048", ".key");
        json_object *o, *x;
        EscrowRecord e;
        size_t size;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        stored = hook_record_of(f, key_id);
        assert_int_equal(read_file_full(stored, 65536, &text, &size), 0);
        if (shows_password(text, size, password))
                fail_msg("the hook got the recovery password in plaintext:\n%s", text);
        /* Nor the server recovery password, which went to it the same way. */
        {
                _cleanup_free_ char *spw = NULL, *skey = NULL, *srecord = NULL, *stext = NULL;
                size_t ssize;

                server_password(f, &spw, &skey);
                srecord = hook_record_of(f, skey);
                assert_int_equal(read_file_full(srecord, 65536, &stext, &ssize), 0);
                if (shows_password(stext, ssize, spw))
                        fail_msg("the hook got the server recovery password in plaintext:\n%s", stext);
                assert_non_null(strstr(stext, "recovery-password-cms"));
        }
        o = json_tokener_parse(text);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "type", &x));
        assert_string_equal(json_object_get_string(x), "recovery-password-cms");
        assert_true(json_object_object_get_ex(o, "key_id", &x));
        assert_string_equal(json_object_get_string(x), key_id);
        assert_true(json_object_object_get_ex(o, "record_cms", &x));
        json_object_put(o);
        e = token_escrow(image, "hook");
        assert_int_equal(e.state, ESCROW_DONE);
        assert_true(e.verified); /* "verify" got the very bytes "store" did */

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "-q", "recovery", "lookup", "--dra-key", key_path, stored), 0);
        assert_non_null(strstr(out, password));
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "lookup", stored), 5); /* needs the key */
        free(out);

        /* And what is said about it is true. */
        assert_true(manager_bool("EscrowEncrypted"));
        assert_true(target_encryption("hook", &how));
        assert_string_equal(how, "encrypted to the DRA");
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "Escrow to: spool hook; spool encrypted to the DRA, hook encrypted to the DRA\n"));
}

/* [Escrow] HookPlaintext=yes: the hook gets the password in plaintext, and the bus and status say so. */
static void test_hook_plaintext_switch(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL, *how = NULL;
        _cleanup_free_ char *stored = NULL, *text = NULL;
        size_t size;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        stored = hook_record_of(f, key_id);
        assert_int_equal(read_file_full(stored, 65536, &text, &size), 0);
        check_record(text, size, image, key_id, password);

        assert_false(manager_bool("EscrowEncrypted"));
        assert_false(target_encryption("hook", &how));
        assert_string_equal(how, "NOT encrypted (HookPlaintext=yes)");
        free(how);
        assert_true(target_encryption("spool", &how));
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "spool encrypted to the DRA, hook NOT encrypted (HookPlaintext=yes)"));
}

/* Every password record in the spool (and retired/) is encrypted: no plain one, and no file that shows
 * one of passwords. */
static void assert_spool_encrypted(const char *spool, char *const *passwords, size_t n) {
        const char *const subdirs[] = { "", "/retired" };

        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *dir = NULL;
                DIR *d;
                struct dirent *de;

                assert_true(asprintf(&dir, "%s%s", spool, subdirs[i]) > 0);
                d = opendir(dir);
                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *p = path_join(dir, de->d_name), *data = NULL;
                        bool encrypted;
                        size_t size;

                        if (de->d_type != DT_REG)
                                continue;
                        if (escrow_spool_name_parse(de->d_name, NULL, NULL, &encrypted) >= 0 && !encrypted)
                                fail_msg("a plain record is left in the spool: %s", p);
                        assert_int_equal(read_file_full(p, 65536, &data, &size), 0);
                        for (size_t j = 0; j < n; j++)
                                if (shows_password(data, size, passwords[j]))
                                        fail_msg("%s shows a recovery password", p);
                }
                closedir(d);
        }
}

/* The DRA holder finds every password escrowed so far with the DRA key: the current ones, and one
 * rotated away before the DRA was set. */
static void assert_lookup_finds(Fixture *f, const char *spool, char *const *key_ids, char *const *passwords, size_t n) {
        _cleanup_free_ char *key_path = dra_fixture_path("rsa2048", ".key");

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *out = NULL;

                if (DAEMON_CTL(f->d, 0, NULL, &out, "-q", "recovery", "lookup", "--spool", spool, "--dra-key", key_path,
                               key_ids[i]) != 0 ||
                    !strstr(out, passwords[i]))
                        fail_msg("recovery lookup of %s: %s", key_ids[i], strempty(out));
        }
}

/* Records written in plaintext before a DRA was set over the bus: encrypted to it, the plain files
 * gone, every password still found with the DRA key; the hook got the current ones again, encrypted;
 * the tokens name the encrypted files. */
static void test_dra_set_encrypts_spool(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *spool = path_join(f->d->state_dir, "escrow"), *cert = dra_fixture_path("rsa2048", ".crt");
        _cleanup_free_ char *a = NULL, *b = NULL, *out = NULL, *uuid = NULL;
        char *key_ids[4] = {}, *passwords[4] = {};
        EscrowRecord e;

        assert_int_equal(provision(f, "a.img", &a, &key_ids[0], &passwords[0]), 0);
        assert_int_equal(provision(f, "b.img", &b, &key_ids[1], &passwords[1]), 0);
        /* The server recovery password went out plain with them (no DRA yet). */
        server_password(f, &passwords[3], &key_ids[3]);
        uuid = volume_uuid(a);
        /* A rotation: the old password's record stays in the spool, as history. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "rotate", uuid), 0);
        free(out);
        key_ids[2] = key_ids[0];
        passwords[2] = passwords[0];
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "show", uuid), 0);
        key_ids[0] = strndup(strstr(out, "Key ID: ") + strlen("Key ID: "), 36);
        passwords[0] = strndup(strstr(out, "Recovery password: ") + strlen("Recovery password: "), RECOVERY_PASSWORD_LEN);
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "spool NOT encrypted (no DRA certificate)"));
        free(out);
        assert_int_equal(count_files(f->records), 4);

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "dra", "set", cert), 0);
        free(out);
        out = NULL;
        /* The current passwords go to the new certificate in an escrow pass after the change. */
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        assert_spool_encrypted(spool, passwords, 4);
        assert_lookup_finds(f, spool, key_ids, passwords, 4);
        e = token_escrow(a, "spool");
        assert_int_equal(e.state, ESCROW_DONE);
        assert_non_null(strstr(e.location, ".cms"));

        /* The hook got the VMK export, both current passwords and the server's again, encrypted (a hook
         * filing by Key ID replaces its plain copy). */
        assert_int_equal(count_files(f->records), 8);
        for (unsigned i = 4, envelopes = 0; i < 8; i++) {
                _cleanup_free_ char *name = NULL, *p = NULL, *text = NULL;
                size_t size;

                assert_true(asprintf(&name, "%u.json", i) > 0);
                p = path_join(f->records, name);
                assert_int_equal(read_file_full(p, 65536, &text, &size), 0);
                envelopes += strstr(text, "recovery-password-cms") != NULL;
                for (size_t j = 0; j < 4; j++)
                        assert_false(shows_password(text, size, passwords[j]));
                if (i == 7)
                        assert_int_equal(envelopes, 3);
        }
        assert_true(manager_bool("EscrowEncrypted"));

        /* A restart finds nothing left to do. */
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        assert_spool_encrypted(spool, passwords, 4);
        assert_lookup_finds(f, spool, key_ids, passwords, 4);
        for (size_t i = 0; i < 4; i++) {
                free(key_ids[i]);
                free(passwords[i]);
        }
}

/* The same when the DRA certificate is configured where there was none: at the next start. */
static void test_dra_configured_encrypts_spool(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *spool = path_join(f->d->state_dir, "escrow"), *cert = dra_fixture_path("rsa2048", ".crt");
        _cleanup_free_ char *a = NULL, *config = NULL, *text = NULL, *out = NULL;
        char *key_ids[1] = {}, *passwords[1] = {};

        assert_int_equal(provision(f, "a.img", &a, &key_ids[0], &passwords[0]), 0);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        config = test_read_file(f->d->config_path);
        assert_true(asprintf(&text, "%s[DRA]\nCertificate=%s\n", config, cert) > 0);
        assert_int_equal(write_file_atomic(f->d->config_path, text, strlen(text), 0644), 0);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        /* The escrow pass after the boot sends the current password again, encrypted. */
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);

        assert_spool_encrypted(spool, passwords, 1);
        assert_lookup_finds(f, spool, key_ids, passwords, 1);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "spool encrypted to the DRA"));
        free(key_ids[0]);
        free(passwords[0]);
}

static void test_spool_plain_without_dra(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *uuid = NULL, *out = NULL;
        _cleanup_free_ char *file = NULL, *json = NULL;
        size_t size;
        struct stat st;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        uuid = volume_uuid(image);
        assert_true(asprintf(&file, "%s/escrow/%s-%s.json", f->d->state_dir, uuid, key_id) > 0);
        assert_int_equal(read_file_full(file, 65536, &json, &size), 0);
        check_record(json, size, image, key_id, password);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "NOT encrypted (no DRA certificate)"));
}

/* Waits until the token records target as done (the daemon retries on its own). */
static bool wait_escrow_done(const char *image, const char *target, unsigned seconds) {
        for (unsigned i = 0; i < seconds * 10; i++) {
                if (token_escrow(image, target).state == ESCROW_DONE)
                        return true;
                usleep(100 * 1000);
        }
        return false;
}

static void test_hook_fails_then_retried(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL, *record = NULL;
        _cleanup_free_ char *first = NULL, *location = NULL;
        size_t size;
        EscrowRecord e;

        /* The hook is down: provisioning goes ahead (escrow is not required), and says so. */
        flag(f, "down", true);
        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        e = token_escrow(image, "hook");
        assert_int_equal(e.state, ESCROW_FAILED);
        assert_int_equal(token_escrow(image, "spool").state, ESCROW_DONE);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "hook failed: hook"));
        assert_non_null(strstr(out, "exit status 7: vault: connection refused"));
        free(out);
        out = NULL;
        /* On demand while still down: exit 10, the reason. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "escrow", image), 10);
        assert_non_null(strstr(out, "vault: connection refused"));
        free(out);
        out = NULL;

        /* A restart does not forget it (it is in the token), and once the hook is back, the daemon
         * retries on its own. */
        assert_int_equal(daemon_fixture_reboot(f->d), 0);
        flag(f, "down", false);
        assert_true(wait_escrow_done(image, "hook", 15));
        e = token_escrow(image, "hook");
        assert_true(e.verified);
        first = hook_record_of(f, key_id);
        assert_true(asprintf(&location, "file:%s", first) > 0);
        assert_string_equal(e.location, location);
        assert_int_equal(read_file_full(first, 65536, &record, &size), 0);
        check_record(record, size, image, key_id, password);
}

/* Escrow owed from before a restart is retried only once the daemon is READY (and owns its name): a
 * hook that hangs holds neither the boot nor the bus name. Ordering, from the daemon's own log: the
 * boot's "Unlocked" line comes before the retry's failure. */
static void test_hanging_hook_holds_no_boot(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *log = NULL;
        const char *unlocked, *retried = NULL;
        size_t offset;

        flag(f, "down", true);
        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        assert_int_equal(token_escrow(image, "hook").state, ESCROW_FAILED);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        log = test_read_file(f->d->log_path);
        offset = log ? strlen(log) : 0;
        log = mfree(log);
        flag(f, "down", false);
        flag(f, "hang", true);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        for (unsigned i = 0; i < 200 && !retried; i++) {
                log = mfree(log);
                log = test_read_file(f->d->log_path);
                assert_non_null(log);
                assert_true(strlen(log) >= offset);
                retried = strstr(log + offset, "will be retried in");
                if (!retried)
                        usleep(100 * 1000);
        }
        assert_non_null(retried);
        unlocked = strstr(log + offset, "Unlocked ");
        assert_non_null(unlocked);
        if (unlocked > retried)
                fail_msg("the escrow retry ran before the boot was READY:\n%s", log + offset);
        flag(f, "hang", false);
}

/* `sealvolctl recovery escrow --all` in a child, held in the hook (flag "hang") until released:
 * returns once the pass is under way. */
static pid_t escrow_all_held(Fixture *f) {
        pid_t pid;

        flag(f, "hang", true);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char *o = NULL;
                int r = DAEMON_CTL(f->d, 0, NULL, &o, "recovery", "escrow", "--all");

                _exit(r < 0 ? 100 : r);
        }
        for (unsigned i = 0; i < 1500 && daemon_fixture_escrow_running(f->d) != 1; i++)
                usleep(20 * 1000);
        assert_int_equal(daemon_fixture_escrow_running(f->d), 1);
        return pid;
}

/* Lets the hook go on; the child's sealvolctl must succeed. */
static void escrow_all_release(Fixture *f, pid_t pid) {
        int status;

        flag(f, "hang", false);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

/* Escrow runs off the event loop: while EscrowAll waits for a hook that does not answer, the bus
 * answers status and property reads, and status says what is under way. Ordering only, no timing:
 * the status call returns while the escrow is still running and its caller still waits. */
static void test_bus_answers_during_escrow(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL;
        int status;
        pid_t pid;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        pid = escrow_all_held(f);

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "Under way: escrow"));
        free(out);
        out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "--json", "status"), 0);
        assert_non_null(strstr(out, "\"escrow\":[{\"target\":\"spool\",\"state\":\"done\""));
        free(out);
        out = NULL;
        /* Both answered while the escrow still runs and its caller still waits. */
        assert_int_equal(daemon_fixture_escrow_running(f->d), 1);
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0);

        escrow_all_release(f, pid);
        assert_int_equal(token_escrow(image, "hook").state, ESCROW_DONE);
}

/* Provisioning runs off the loop: while its escrow waits on a hook that does not answer, status
 * answers and shows it under way, and another volume's call is not held (ordering, no timing). */
/* The server's first provisioning makes its VMK and server recovery password (the SRK, the seal, the
 * password's KDF at production cost, its escrow to a hook that hangs) as an operation: the bus
 * answers meanwhile, and the provisioning goes on once the VMK is there. */
static void test_bus_answers_during_first_provisioning(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *a = NULL, *out = NULL, *server = path_join(f->d->state_dir, "server-recovery.json");
        int status;
        pid_t pid;

        assert_int_equal(daemon_fixture_new_image(f->d, "a.img", &a), 0);
        flag(f, "hang", true);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char *o = NULL;
                int r = DAEMON_CTL(f->d, 0, NULL, &o, "-q", "provision", a);

                _exit(r < 0 ? 100 : r);
        }
        for (unsigned i = 0; i < 1500 && daemon_fixture_operation_running(f->d, "prepare-vmk") != 1; i++)
                usleep(20 * 1000);
        assert_int_equal(daemon_fixture_operation_running(f->d, "prepare-vmk"), 1);

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "Under way: prepare-vmk"));
        free(out);
        out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "--json", "status"), 0);
        /* Still making the VMK's server recovery password (its escrow hangs) after the answers. */
        assert_int_equal(daemon_fixture_operation_running(f->d, "prepare-vmk"), 1);
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0);

        flag(f, "hang", false);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(token_escrow(a, "hook").state, ESCROW_DONE);
        /* The volume carries the server recovery password's copy: it was made before the volume. */
        assert_int_equal(access(server, F_OK), 0);
        {
                _cleanup_(volume_freep) Volume *v = NULL;

                assert_int_equal(volume_load(a, &v), 0);
                assert_true(v->token.has_server_wrap);
        }
}

static void test_bus_answers_during_provisioning(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *a = NULL, *key_id = NULL, *password = NULL, *out = NULL, *b = NULL, *uuid = NULL;
        int status;
        pid_t pid;

        assert_int_equal(provision(f, "a.img", &a, &key_id, &password), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        uuid = volume_uuid(a);
        assert_int_equal(daemon_fixture_new_image(f->d, "b.img", &b), 0);
        flag(f, "hang", true);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char *o = NULL;
                int r = DAEMON_CTL(f->d, 0, NULL, &o, "-q", "provision", b);

                _exit(r < 0 ? 100 : r);
        }
        for (unsigned i = 0; i < 1500 && daemon_fixture_operation_running(f->d, "provision") != 1; i++)
                usleep(20 * 1000);
        assert_int_equal(daemon_fixture_operation_running(f->d, "provision"), 1);

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "Under way: provision"));
        free(out);
        out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "--json", "status"), 0);
        free(out);
        out = NULL;
        /* The same device by another name is not formatted a second time under it. */
        {
                _cleanup_free_ char *link = path_join(f->dir, "b-link.img");

                assert_int_equal(symlink(b, link), 0);
                assert_int_not_equal(DAEMON_CTL(f->d, 0, NULL, &out, "provision", link), 0);
                assert_non_null(strstr(out, "is being provisioned already"));
                free(out);
                out = NULL;
        }
        /* The other volume's password is read back while the new one is being escrowed. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "show", uuid), 0);
        assert_non_null(strstr(out, password));
        assert_int_equal(daemon_fixture_operation_running(f->d, "provision"), 1);
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0);

        flag(f, "hang", false);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(token_escrow(b, "hook").state, ESCROW_DONE);
        uuid = mfree(uuid);
        uuid = volume_uuid(b);
        free(out);
        out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "list"), 0);
        assert_non_null(strstr(out, uuid));
}

/* SIGTERM while a pass waits on a hook that hangs: the pass is abandoned, the daemon exits cleanly
 * within the harness's stop bound (10 s, against the hook's 30 s), and nothing it had not finished
 * is recorded as done. */
static void test_stop_abandons_escrow(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL;
        EscrowRecord before, after;
        int status;
        pid_t pid;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        before = token_escrow(image, "hook");
        pid = escrow_all_held(f);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        /* Its caller learns the daemon went away. */
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_not_equal(WEXITSTATUS(status), 0);
        flag(f, "hang", false);
        after = token_escrow(image, "hook");
        assert_int_equal(after.state, before.state);
        assert_string_equal(after.location, before.location);
        assert_true(after.time == before.time);
}

/* A DRA certificate set while a pass sends plaintext: that pass's outcome does not count as the new
 * certificate's, the passwords go again, encrypted to it, in the pass after. */
static void test_dra_set_during_escrow_pass(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *cert = dra_fixture_path("rsa2048", ".crt"), *image = NULL, *key_id = NULL,
                            *password = NULL, *out = NULL, *server = NULL, *server_key_id = NULL;
        unsigned envelopes = 0, n;
        EscrowRecord e;
        pid_t pid;

        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        server_password(f, &server, &server_key_id);
        pid = escrow_all_held(f);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "dra", "set", cert), 0);
        escrow_all_release(f, pid);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);

        /* Both passwords went to the hook in envelopes after the plaintext ones of the pass, and the
         * spool holds the disk's encrypted. */
        n = count_files(f->records);
        for (unsigned i = 0; i < n; i++) {
                _cleanup_free_ char *name = NULL, *path = NULL, *text = NULL;
                size_t size;

                assert_true(asprintf(&name, "%u.json", i) > 0);
                path = path_join(f->records, name);
                assert_int_equal(read_file_full(path, 65536, &text, &size), 0);
                if (strstr(text, "recovery-password-cms")) {
                        envelopes++;
                        assert_false(shows_password(text, size, password));
                        assert_false(shows_password(text, size, server));
                }
        }
        assert_int_equal(envelopes, 2);
        e = token_escrow(image, "spool");
        assert_int_equal(e.state, ESCROW_DONE);
        assert_non_null(strstr(e.location, ".cms"));
        assert_int_equal(token_escrow(image, "hook").state, ESCROW_DONE);
}

/* A hook that answers with binary garbage, failing or not: reported in printable words, the bus and
 * status stay readable. */
static void test_hook_garbage(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL, *flagfile = NULL;
        EscrowRecord e;

        flagfile = path_join(f->dir, "garbage");
        assert_int_equal(write_file_atomic(flagfile, "5", 1, 0644), 0);
        assert_int_equal(provision(f, "g.img", &image, &key_id, &password), 0);
        e = token_escrow(image, "hook");
        assert_int_equal(e.state, ESCROW_FAILED);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "hook failed: hook"));
        assert_non_null(strstr(out, "exit status 5"));
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--json", "status"), 0);
        assert_non_null(strstr(out, "\"target\":\"hook\",\"state\":\"failed\""));
        free(out);
        out = NULL;

        /* Exit 0 with garbage on stdout: stored, and named after the hook itself. */
        assert_int_equal(write_file_atomic(flagfile, "0", 1, 0644), 0);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "escrow", image), 0);
        e = token_escrow(image, "hook");
        assert_int_equal(e.state, ESCROW_DONE);
        assert_string_equal(e.location, f->hook);
}

/* A hook that echoes the record, password and all, on stdout and stderr: its answer is not kept in
 * the token, not shown by status or on the bus, not logged; whether it then succeeds or fails. */
static void test_hook_echoing_the_password(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL, *flagfile = NULL;
        _cleanup_free_ char *log = NULL, *digits = NULL;
        EscrowRecord e;

        flagfile = path_join(f->dir, "echo");
        assert_int_equal(write_file_atomic(flagfile, "3", 1, 0644), 0);
        assert_int_equal(provision(f, "echo.img", &image, &key_id, &password), 0);
        digits = strdup(password);
        assert_non_null(digits);
        digits[strspn(digits, "0123456789")] = '\0'; /* the first group: present in every form */

        e = token_escrow(image, "hook");
        assert_int_equal(e.state, ESCROW_FAILED);
        assert_null(strstr(e.location, digits));
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "its error message showed the recovery password and was discarded"));
        assert_null(strstr(out, digits));
        free(out);
        out = NULL;

        /* Exit 0: stored, and named after the hook, not after what it printed. */
        assert_int_equal(write_file_atomic(flagfile, "0", 1, 0644), 0);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "escrow", image), 0);
        assert_null(strstr(out, digits));
        e = token_escrow(image, "hook");
        assert_int_equal(e.state, ESCROW_DONE);
        assert_string_equal(e.location, f->hook);
        free(out);
        out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--json", "status"), 0);
        assert_null(strstr(out, digits));

        assert_int_equal(read_file_full(f->d->log_path, 16 * 1024 * 1024, &log, NULL), 0);
        assert_non_null(strstr(log, "answered with the recovery password"));
        assert_null(strstr(log, digits));
}

static void test_required_escrow_vetoes(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *out = NULL, *uuid = NULL;
        _cleanup_free_ char *refused = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        struct timespec a, b;

        /* Required and down: not provisioned (no token: a fresh provisioning may follow), not listed. */
        flag(f, "down", true);
        assert_int_equal(provision(f, "a.img", &image, &key_id, &password), 10);
        assert_int_equal(volume_load(image, &v), -ENOMSG);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "list"), 0);
        assert_null(strstr(out, image));
        free(out);
        out = NULL;
        refused = TAKE_PTR(image);

        /* Required and hanging: the same, within the time limit. */
        flag(f, "down", false);
        flag(f, "hang", true);
        clock_gettime(CLOCK_MONOTONIC, &a);
        assert_int_equal(provision(f, "b.img", &image, &key_id, &password), 10);
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_true(b.tv_sec - a.tv_sec < 20);
        free(image);
        image = NULL;
        flag(f, "hang", false);

        /* Up: provisioned, escrowed. */
        assert_int_equal(provision(f, "c.img", &image, &key_id, &password), 0);
        assert_int_equal(token_escrow(image, "hook").state, ESCROW_DONE);
        uuid = volume_uuid(image);

        /* Down again: a rotation is refused and the old password stays the volume's. */
        flag(f, "down", true);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "rotate", uuid), 10);
        assert_non_null(strstr(out, "The old one stays"));
        free(out);
        out = NULL;
        volume_free(v);
        v = NULL;
        assert_int_equal(volume_load(image, &v), 0);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "recovery", "show", uuid), 0);
        assert_non_null(strstr(out, password));
        assert_non_null(strstr(out, key_id));

        free(out);
        out = NULL;

        /* The image of the refused provisioning can be provisioned once the hook is back. */
        flag(f, "down", false);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "provision", refused), 0);
}

/* An erase tells the hook its record is void, through the helper: while the hook hangs, the bus
 * answers, the erase is the volume's operation, and it ends when the hook does. */
static void test_bus_answers_during_erase(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *uuid = NULL, *out = NULL;
        int status;
        pid_t pid;

        assert_int_equal(provision(f, "e.img", &image, &key_id, &password), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        uuid = volume_uuid(image);
        flag(f, "hang", true);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                char *o = NULL;

                _exit(DAEMON_CTL(f->d, 0, NULL, &o, "erase", "--yes", uuid) == 0 ? 0 : 1);
        }
        for (unsigned i = 0;; i++) {
                assert_true(i < 1500);
                assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
                if (strstr(out, "Under way: erase"))
                        break;
                out = mfree(out);
                usleep(20 * 1000);
        }
        out = mfree(out);
        /* The header is gone already; the hook is still being told. */
        {
                _cleanup_(volume_freep) Volume *v = NULL;

                for (unsigned i = 0; i < 500 && volume_load(image, &v) != -EMEDIUMTYPE; i++) {
                        v = volume_free(v);
                        usleep(20 * 1000);
                }
                assert_int_equal(volume_load(image, &v), -EMEDIUMTYPE);
        }
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "--json", "status"), 0);
        assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
        flag(f, "hang", false);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "list"), 0);
        assert_null(strstr(out, uuid));
}

static void test_erase(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *image = NULL, *key_id = NULL, *password = NULL, *uuid = NULL, *out = NULL;
        _cleanup_free_ char *spooled = NULL, *retired = NULL, *record = NULL, *told = NULL, *hook_record = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        json_object *o, *x;

        assert_int_equal(provision(f, "e.img", &image, &key_id, &password), 0);
        uuid = volume_uuid(image);
        assert_true(asprintf(&spooled, "%s/escrow/%s-%s.json", f->d->state_dir, uuid, key_id) > 0);
        assert_true(asprintf(&retired, "%s/escrow/retired/%s-%s.json", f->d->state_dir, uuid, key_id) > 0);
        assert_int_equal(access(spooled, F_OK), 0);

        /* Nobody may; without --yes and no terminal, sealvolctl asks for confirmation (usage). */
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "erase", "--yes", uuid), 3);
        free(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "erase", uuid), 2);
        assert_non_null(strstr(out, "confirm with --yes"));
        free(out);
        assert_int_equal(volume_load(image, &v), 0);
        v = volume_free(v);

        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--json", "erase", "--yes", uuid), 0);
        o = json_tokener_parse(out);
        assert_non_null(o);
        assert_true(json_object_object_get_ex(o, "volume_uuid", &x));
        assert_string_equal(json_object_get_string(x), uuid);
        assert_true(json_object_object_get_ex(o, "keyslots_destroyed", &x));
        assert_int_equal(json_object_get_int(x), 2);
        assert_true(json_object_object_get_ex(o, "header_bytes_overwritten", &x));
        assert_true(json_object_get_int64(x) >= 16 * 1024 * 1024);
        json_object_put(o);
        free(out);
        out = NULL;

        /* Nothing opens it any more: no LUKS header, stock cryptsetup agrees, the password is void. */
        assert_int_equal(volume_load(image, &v), -EMEDIUMTYPE);
        {
                _cleanup_free_ char *cmd = NULL;

                assert_true(asprintf(&cmd, "cryptsetup isLuks '%s'", image) > 0);
                assert_true(system(cmd) != 0);
        }
        /* Its escrow records are retired: the spool file moved, the hook told which Key ID. */
        assert_int_equal(access(spooled, F_OK), -1);
        assert_int_equal(access(retired, F_OK), 0);
        hook_record = path_join(f->dir, "retired.json");
        told = test_read_file(hook_record);
        assert_non_null(told);
        assert_non_null(strstr(told, key_id));
        assert_null(strstr(told, password));
        json_object *told_json = json_tokener_parse(told); /* one JSON object, whatever the hostname */
        assert_non_null(told_json);
        assert_true(json_object_object_get_ex(told_json, "type", &x));
        assert_string_equal(json_object_get_string(x), "retired");
        assert_true(json_object_object_get_ex(told_json, "volume_uuid", &x));
        assert_string_equal(json_object_get_string(x), uuid);
        json_object_put(told_json);
        /* The daemon forgot it and kept a record. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "list"), 0);
        assert_null(strstr(out, uuid));
        assert_true(asprintf(&record, "%s/erased/%s.json", f->d->state_dir, uuid) > 0);
        assert_int_equal(access(record, F_OK), 0);
}

/* Recovery keyslots at the production KDF cost, escrow to the spool and the hook (30 s before it is
 * killed). The AD target, a DC that never answers, is added after the volume's provisioning
 * (configure_silent_dc()). */
static int setup_everything_slow(void **state) {
        return setup_with(state, "[Recovery]\nKDFIterations=1048576\n[Escrow]\nTargets=spool hook\nHookTimeoutSec=30\n");
}

static void configure_silent_dc(Fixture *f) {
        _cleanup_free_ char *config = NULL, *text = NULL, *secret = path_join(f->dir, "bind.secret");
        unsigned port = 0;

        f->silent_dc = test_silent_listener(&port);
        assert_true(f->silent_dc >= 0);
        assert_int_equal(write_file_atomic(secret, "secret\n", 7, 0600), 0);
        config = test_read_file(f->d->config_path);
        assert_non_null(config);
        assert_true(asprintf(&text,
                             "%s[ActiveDirectory]\nURI=ldaps://127.0.0.1:%u\nBindDN=CN=DB1,CN=Computers,DC=example,DC=com\n"
                             "PasswordFile=%s\nTimeoutSec=5\n[Escrow]\nTargets=spool hook ad\n",
                             config, port, secret) > 0);
        assert_int_equal(write_file_atomic(f->d->config_path, text, strlen(text), 0644), 0);
}

static int on_recovered(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        int *result = userdata;

        (void) error;
        *result = sd_bus_message_is_method_error(reply, NULL) ? -1 : 1;
        return 0;
}

static bool in_place_launched(Fixture *f) {
        _cleanup_free_ char *dir = path_join(f->d->state_dir, "inplace");
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;

        while (d && (de = readdir(d)))
                if (strstr(de->d_name, ".device"))
                        return true;
        return false;
}

static pid_t ctl_in_child(Fixture *f, const char *const *args) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                char *o = NULL;
                int r = daemon_fixture_ctl(f->d, 0, NULL, &o, args);

                _exit(r < 0 ? 100 : r);
        }
        return pid;
}

/* The case, all at once: a recovery unlock at the production KDF cost (and the replacement of
 * the used password it brings), escrow to a DC that never answers, a hook that takes 30 s, and an
 * in-place encryption. While every one of them is still under way, `sealvolctl status` (root and
 * unprivileged) and property reads are answered. Ordering, not timing: each is checked to be still
 * running after the answers came (the hook holds all of them until the test lets it go). */
static void test_status_answered_during_everything(void **state) {
        Fixture *f = *state;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *caller = NULL;
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
        _cleanup_free_ char *a = NULL, *key_id = NULL, *password = NULL, *out = NULL, *uuid = NULL, *object = NULL;
        _cleanup_free_ char *data = NULL, *state_value = NULL, *recover_op = NULL;
        char **ops = NULL;
        int recovered = 0, status;
        pid_t in_place;

        assert_int_equal(provision(f, "a.img", &a, &key_id, &password), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 30000), 0);
        uuid = volume_uuid(a);
        assert_true(sd_bus_path_encode("/org/sealvol1/volume", uuid, &object) >= 0);
        assert_int_equal(ext4_image_new(f->dir, "data.img", 96, 64, 16, &data), 0);

        /* The restart escrows the password to AD, which never answers, and to the hook, which hangs. */
        flag(f, "hang", true);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        configure_silent_dc(f);
        assert_int_equal(daemon_fixture_start(f->d), 0);
        for (unsigned i = 0; i < 1500 && daemon_fixture_escrow_running(f->d) != 1; i++)
                usleep(20 * 1000);
        assert_int_equal(daemon_fixture_escrow_running(f->d), 1);

        /* An in-place encryption: its new password's escrow hangs too. */
        in_place = ctl_in_child(f, (const char *const[]) { "-q", "provision", "--in-place", "--no-wait", data, NULL });
        for (unsigned i = 0; i < 1500 && !in_place_launched(f); i++)
                usleep(20 * 1000);
        assert_true(in_place_launched(f));

        /* A recovery unlock at the production KDF cost, then its password's replacement (escrowed to the
         * hook that hangs). */
        assert_true(sd_bus_open_system(&caller) >= 0);
        assert_true(sd_bus_call_method_async(caller, &slot, "org.sealvol1", object, "org.sealvol1.Volume",
                                             "UnlockWithRecoveryPassword", on_recovered, &recovered, "st", password,
                                             UINT64_C(0)) >= 0);
        assert_true(sd_bus_flush(caller) >= 0);
        for (unsigned i = 0; i < 1500; i++) {
                recover_op = mfree(recover_op);
                assert_true(sd_bus_get_property_string(caller, "org.sealvol1", object, "org.sealvol1.Volume",
                                                       "Operation", NULL, &recover_op) >= 0);
                if (!isempty(recover_op))
                        break;
                usleep(20 * 1000);
        }
        assert_false(isempty(recover_op));

        /* Everything is under way: the bus answers. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "Under way:"));
        assert_non_null(strstr(out, "escrow"));
        free(out);
        out = NULL;
        assert_int_equal(DAEMON_CTL(f->d, NOBODY, NULL, &out, "--json", "status"), 0);
        assert_non_null(strstr(out, uuid));
        assert_true(sd_bus_get_property_strv(caller, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                             "Operations", NULL, &ops) >= 0);
        {
                bool escrow = false;

                for (char **o = ops; o && *o; o++) {
                        escrow = escrow || streq(*o, "escrow");
                        free(*o);
                }
                free(ops);
                assert_true(escrow);
        }
        assert_true(sd_bus_get_property_string(caller, "org.sealvol1", object, "org.sealvol1.Volume", "State", NULL,
                                               &state_value) >= 0);

        /* ... and every one of them is still running after it answered. */
        assert_int_equal(daemon_fixture_escrow_running(f->d), 1);
        assert_int_equal(waitpid(in_place, &status, WNOHANG), 0);
        assert_true(sd_bus_process(caller, NULL) >= 0);
        assert_int_equal(recovered, 0);

        /* Let the hook go: each one ends as it should. */
        flag(f, "hang", false);
        while (recovered == 0) {
                assert_true(sd_bus_process(caller, NULL) >= 0);
                if (recovered == 0)
                        assert_true(sd_bus_wait(caller, UINT64_MAX) >= 0);
        }
        assert_int_equal(recovered, 1);
        assert_int_equal(waitpid(in_place, &status, 0), in_place);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(daemon_fixture_wait_escrow(f->d, 60000), 0);
        /* The DC never answered: AD is owed, the hook has it. */
        assert_int_equal(token_escrow(a, "ad").state, ESCROW_FAILED);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_spool_encrypted_to_dra, setup_spool, teardown),
                cmocka_unit_test_setup_teardown(test_spool_plain_without_dra, setup_plain, teardown),
                cmocka_unit_test_setup_teardown(test_hook_encrypted_with_dra, setup_dra_hook, teardown),
                cmocka_unit_test_setup_teardown(test_hook_plaintext_switch, setup_dra_hook_plaintext, teardown),
                cmocka_unit_test_setup_teardown(test_dra_set_encrypts_spool, setup_dra_later, teardown),
                cmocka_unit_test_setup_teardown(test_dra_configured_encrypts_spool, setup_dra_later, teardown),
                cmocka_unit_test_setup_teardown(test_hook_fails_then_retried, setup_hook, teardown),
                cmocka_unit_test_setup_teardown(test_hanging_hook_holds_no_boot, setup_hook, teardown),
                cmocka_unit_test_setup_teardown(test_bus_answers_during_escrow, setup_slow_hook, teardown),
                cmocka_unit_test_setup_teardown(test_dra_set_during_escrow_pass, setup_dra_later, teardown),
                cmocka_unit_test_setup_teardown(test_stop_abandons_escrow, setup_slow_hook, teardown),
                cmocka_unit_test_setup_teardown(test_bus_answers_during_provisioning, setup_slow_hook, teardown),
                cmocka_unit_test_setup_teardown(test_bus_answers_during_first_provisioning, setup_everything_slow,
                                                teardown),
                cmocka_unit_test_setup_teardown(test_required_escrow_vetoes, setup_required, teardown),
                cmocka_unit_test_setup_teardown(test_erase, setup_hook, teardown),
                cmocka_unit_test_setup_teardown(test_bus_answers_during_erase, setup_slow_hook, teardown),
                cmocka_unit_test_setup_teardown(test_hook_garbage, setup_hook, teardown),
                cmocka_unit_test_setup_teardown(test_hook_echoing_the_password, setup_hook, teardown),
                cmocka_unit_test_setup_teardown(test_status_answered_during_everything, setup_everything_slow, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(geteuid() == 0, "root (the test runs sealvolctl as an unprivileged user)");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
