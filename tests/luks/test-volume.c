/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-volume.c: sealvol volumes on LUKS2 image files: provisioning, opening with every protector
 * (ours and stock cryptsetup), refusal of bad input with the header left untouched, and crash-safe
 * protector changes (SIGKILL at random moments never loses the volume).
 */

#include <fcntl.h>
#include <openssl/evp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/rand.h>

#include "dra-fixture.h"
#include "dra.h"
#include "kill-points.h"
#include "luks-fixture.h"
#include "recovery.h"
#include "encoding.h"
#include "json-util.h"
#include "secmem.h"
#include "server-recovery.h"
#include "test-util.h"
#include "v1-format.h"
#include "volume.h"

/* Tests use the cheapest KDF for recovery keyslots; production's cost has its own test below. */
#define FAST VOLUME_PBKDF2_ITERATIONS_MIN
#define KILL_ROUNDS 30

typedef struct Fixture {
        char *dir;
        char *image;
        uint8_t vmk[VMK_SIZE];
        Guid vmk_id;
} Fixture;

static int new_image(const char *dir, const char *name, char **ret) {
        return sparse_image_new(dir, name, LUKS_IMAGE_SIZE_DEFAULT, ret);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));

        if (!f || test_tmpdir_new("test-volume", &f->dir) < 0 || new_image(f->dir, "disk.img", &f->image) < 0)
                return -1;
        if (RAND_bytes(f->vmk, sizeof(f->vmk)) != 1 || guid_generate(&f->vmk_id) < 0)
                return -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        int r = rm_rf(f->dir);

        free(f->dir);
        free(f->image);
        free(f);
        return r < 0 ? -1 : 0;
}

static void provision(Fixture *f, const char *image, char **ret_password) {
        VolumeProvisionParams p = {
                .vmk = f->vmk,
                .vmk_id = f->vmk_id,
                .hostname = "server1.example.com",
                .recovery_iterations = FAST,
        };
        assert_int_equal(volume_provision(image, &p, ret_password, NULL), 0);
}

static Volume *load(const char *image) {
        Volume *v = NULL;

        assert_int_equal(volume_load(image, &v), 0);
        return v;
}

/* SHA-256 of the whole image: "nothing changed on disk" is checked, not assumed. */
static void image_digest(const char *path, uint8_t ret[static 32]) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        uint8_t buf[65536];
        size_t n;

        assert_non_null(f);
        assert_non_null(md);
        assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
                assert_int_equal(EVP_DigestUpdate(md, buf, n), 1);
        assert_int_equal(EVP_DigestFinal_ex(md, ret, NULL), 1);
        EVP_MD_CTX_free(md);
}

/* Runs a command with input on stdin; returns its exit status. */
static int run_with_stdin(char *const argv[], const void *input, size_t size) {
        int fds[2], status;
        pid_t pid;

        assert_int_equal(pipe(fds), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int devnull = open("/dev/null", O_WRONLY);
                if (dup2(fds[0], STDIN_FILENO) < 0 || dup2(devnull, STDOUT_FILENO) < 0 ||
                    dup2(devnull, STDERR_FILENO) < 0)
                        _exit(127);
                close(fds[1]);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(fds[0]);
        assert_true(write(fds[1], input, size) == (ssize_t) size);
        close(fds[1]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int stock_test_passphrase(const char *image, const void *pass, size_t size) {
        char *argv[] = { (char *) "cryptsetup", (char *) "open", (char *) "--test-passphrase",
                         (char *) "--key-file", (char *) "-", (char *) image, NULL };
        return run_with_stdin(argv, pass, size);
}

static void test_provision_and_open_every_way(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_secure_ uint8_t *pass = NULL;
        _cleanup_free_ char *dump = NULL;
        char spaced[RECOVERY_PASSWORD_LEN + 1], bare[RECOVERY_PASSWORD_BLOCKS * 6 + 1];
        size_t k = 0;

        provision(f, f->image, &password);
        assert_int_equal(secure_size(password), RECOVERY_PASSWORD_LEN + 1);
        assert_int_equal(strlen(password), RECOVERY_PASSWORD_LEN);

        v = load(f->image);
        assert_true(v->token.has[PROTECTOR_TPM]);
        assert_true(v->token.has[PROTECTOR_RECOVERY]);
        assert_false(v->token.has[PROTECTOR_DRA]);
        assert_false(v->token.has_pending);
        assert_true(guid_equal(&v->token.vmk_id, &f->vmk_id));
        assert_string_equal(v->token.volume_uuid, crypt_get_uuid(v->cd));
        assert_string_equal(v->token.hostname, "server1.example.com");
        assert_false(guid_equal(&v->token.protectors[PROTECTOR_TPM].key_id,
                                &v->token.protectors[PROTECTOR_RECOVERY].key_id));

        /* Ours: the VMK path and the recovery password as displayed, with spaces, and bare. */
        assert_int_equal(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0), v->token.protectors[PROTECTOR_TPM].keyslot);
        assert_int_equal(volume_open_recovery(v, password, NULL, 0, NULL),
                         v->token.protectors[PROTECTOR_RECOVERY].keyslot);
        snprintf(spaced, sizeof(spaced), "%s", password);
        for (char *c = spaced; *c; c++)
                if (*c == '-')
                        *c = ' ';
        assert_true(volume_open_recovery(v, spaced, NULL, 0, NULL) >= 0);
        for (const char *c = password; *c; c++)
                if (*c != '-')
                        bare[k++] = *c;
        bare[k] = '\0';
        assert_true(volume_open_recovery(v, bare, NULL, 0, NULL) >= 0);

        /* Stock cryptsetup: the recovery password as displayed, and the VMK-derived passphrase. */
        assert_int_equal(stock_test_passphrase(f->image, password, strlen(password)), 0);
        assert_int_equal(volume_vmk_passphrase(v, f->vmk, &f->vmk_id, &pass), 0);
        assert_int_equal(stock_test_passphrase(f->image, pass, VMK_KEYSLOT_PASSPHRASE_SIZE), 0);
        assert_int_not_equal(stock_test_passphrase(f->image, "nope", 4), 0);

        /* Stock luksDump shows the token. */
        _cleanup_free_ char *cmd = NULL, *out = path_join(f->dir, "dump.txt");
        assert_true(asprintf(&cmd, "cryptsetup luksDump '%s' > '%s' 2>&1", f->image, out) > 0);
        assert_int_equal(system(cmd), 0);
        dump = test_read_file(out);
        assert_non_null(dump);
        assert_non_null(strstr(dump, "sealvol"));
        assert_non_null(strstr(dump, "aes-xts-plain64"));
}

static void test_bad_input_changes_nothing(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        uint8_t before[32], after[32], other_vmk[VMK_SIZE];
        char typo[RECOVERY_PASSWORD_LEN + 1];
        unsigned block = 0;
        Guid other_id;

        provision(f, f->image, &password);
        v = load(f->image);
        image_digest(f->image, before);

        /* A typo in block 5: caught by the parser, with the block named. */
        snprintf(typo, sizeof(typo), "%s", password);
        typo[4 * 7 + 5] = typo[4 * 7 + 5] == '0' ? '1' : '0';
        assert_int_equal(volume_open_recovery(v, typo, NULL, 0, &block), -EDOM);
        assert_int_equal(block, 5);
        assert_int_equal(volume_open_recovery(v, "123", NULL, 0, &block), -EINVAL);

        /* Well-formed but wrong. */
        assert_int_equal(volume_open_recovery(v, "000000-000000-000000-000000-000000-000000-000000-000000", NULL, 0,
                                              NULL),
                         -EPERM);

        /* Another server's VMK, and the right identity with the wrong key. */
        assert_int_equal(RAND_bytes(other_vmk, sizeof(other_vmk)), 1);
        assert_int_equal(guid_generate(&other_id), 0);
        assert_int_equal(volume_open_vmk(v, other_vmk, &other_id, NULL, 0), -EREMOTE);
        /* The token's MAC does not verify under another key that claims its VMK's identity. */
        assert_int_equal(volume_open_vmk(v, other_vmk, &f->vmk_id, NULL, 0), -EBADE);
        assert_int_equal(volume_open_dra(v, NULL, NULL, 0), -ENOENT);

        v = volume_free(v);
        image_digest(f->image, after);
        assert_memory_equal(before, after, sizeof(before));
}

static void test_refuses_devices_with_data(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ char *password = NULL, *again = NULL;
        _cleanup_free_ char *plain = NULL;
        uint8_t before[32], after[32];
        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .recovery_iterations = FAST };
        Volume *v = NULL;

        provision(f, f->image, &password);
        image_digest(f->image, before);
        assert_int_equal(volume_provision(f->image, &p, &again, NULL), -EEXIST);
        image_digest(f->image, after);
        assert_memory_equal(before, after, sizeof(before));

        /* Plain LUKS2 without our token: not ours to open. */
        assert_int_equal(luks_image_new(f->dir, "plain.img", LUKS_IMAGE_SIZE_DEFAULT, "x", 1, &plain), 0);
        assert_int_equal(volume_load(plain, &v), -ENOMSG);
        /* Not LUKS at all. */
        _cleanup_free_ char *empty = NULL;
        assert_int_equal(new_image(f->dir, "empty.img", &empty), 0);
        assert_int_equal(volume_load(empty, &v), -EMEDIUMTYPE);
        _cleanup_free_ char *missing = path_join(f->dir, "no-such.img");
        assert_int_equal(volume_load(missing, &v), -ENOENT);
        assert_null(v);
}

static void set_token(const char *image, const char *json) {
        struct crypt_device *cd = NULL;

        assert_int_equal(crypt_init(&cd, image), 0);
        assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
        assert_true(crypt_token_json_set(cd, 0, json) >= 0);
        crypt_free(cd);
}

/* Loading a volume with a bad token fails with error and leaves the image byte-identical. */
static void expect_load_refused(const char *image, int error) {
        uint8_t before[32], after[32];
        Volume *v = NULL;

        image_digest(image, before);
        assert_int_equal(volume_load(image, &v), error);
        assert_null(v);
        image_digest(image, after);
        assert_memory_equal(before, after, sizeof(before));
}

static char *get_token(const char *image) {
        struct crypt_device *cd = NULL;
        const char *json;
        char *copy;

        assert_int_equal(crypt_init(&cd, image), 0);
        assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
        assert_int_equal(crypt_token_json_get(cd, 0, &json), 0);
        copy = strdup(json);
        crypt_free(cd);
        return copy;
}

static char *replace_once(const char *s, const char *from, const char *to) {
        const char *p = strstr(s, from);
        char *out;

        assert_non_null(p);
        assert_true(asprintf(&out, "%.*s%s%s", (int) (p - s), s, to, p + strlen(from)) > 0);
        return out;
}

static void test_damaged_and_foreign_tokens(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ char *password = NULL, *password2 = NULL;
        _cleanup_free_ char *other = NULL, *json = NULL, *json2 = NULL;
        Volume *v = NULL;

        provision(f, f->image, &password);
        assert_int_equal(new_image(f->dir, "other.img", &other), 0);
        provision(f, other, &password2);
        json = get_token(f->image);
        json2 = get_token(other);

        /* (libcryptsetup hands tokens back in compact JSON.) Another volume's token: refused as such,
         * even though it names the same VMK. */
        set_token(f->image, json2);
        expect_load_refused(f->image, -EXDEV);

        /* A newer version, an unknown field, a duplicate keyslot, an out-of-range keyslot. */
        _cleanup_free_ char *newer = replace_once(json, "\"sealvol_version\":2", "\"sealvol_version\":3");
        set_token(f->image, newer);
        expect_load_refused(f->image, -EPROTONOSUPPORT);

        _cleanup_free_ char *unknown = replace_once(json, "\"hostname\"", "\"colour\": \"red\", \"hostname\"");
        set_token(f->image, unknown);
        expect_load_refused(f->image, -EBADMSG);

        _cleanup_free_ char *dup = replace_once(json, "\"keyslot\":1", "\"keyslot\":0");
        set_token(f->image, dup);
        expect_load_refused(f->image, -EBADMSG);

        _cleanup_free_ char *range = replace_once(json, "\"keyslot\":1", "\"keyslot\":99");
        set_token(f->image, range);
        expect_load_refused(f->image, -EBADMSG);

        _cleanup_free_ char *bad_id = replace_once(json, "\"key_id\":\"", "\"key_id\":\"X");
        set_token(f->image, bad_id);
        expect_load_refused(f->image, -EBADMSG);

        /* The original token back: everything opens again. */
        set_token(f->image, json);
        v = load(f->image);
        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
        volume_free(v);
}

typedef struct EscrowCheck {
        const char *image;
        const char *old_password;
        char *seen;
        bool old_still_opened;
        int veto;
} EscrowCheck;

static int escrow_check(Volume *v, Protector *p, const char *password, void *userdata) {
        EscrowCheck *c = userdata;

        assert_int_equal(p->type, PROTECTOR_RECOVERY);
        c->seen = strdup(password);
        /* Escrow happens while the old password still works. */
        c->old_still_opened = volume_open_recovery(v, c->old_password, NULL, 0, NULL) >= 0;
        return c->veto;
}

static void test_rotate_recovery(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *old = NULL, *new = NULL;
        EscrowCheck check = {};
        Guid old_id;

        provision(f, f->image, &old);
        v = load(f->image);
        old_id = v->token.protectors[PROTECTOR_RECOVERY].key_id;

        /* Escrow vetoes: the old password stays, nothing is pending. */
        check = (EscrowCheck) { .old_password = old, .veto = -EHOSTUNREACH };
        assert_int_equal(volume_rotate_recovery(v, f->vmk, &f->vmk_id, FAST, escrow_check, &check, &new),
                         -EHOSTUNREACH);
        assert_null(new);
        v = volume_free(v);
        v = load(f->image);
        assert_true(volume_open_recovery(v, old, NULL, 0, NULL) >= 0);
        assert_int_equal(volume_open_recovery(v, check.seen, NULL, 0, NULL), -EPERM);
        assert_false(v->token.has_pending);
        free(check.seen);

        /* Escrow accepts: the new password opens, the old one no longer does. */
        check = (EscrowCheck) { .old_password = old };
        assert_int_equal(volume_rotate_recovery(v, f->vmk, &f->vmk_id, FAST, escrow_check, &check, &new), 0);
        assert_true(check.old_still_opened);
        assert_string_equal(check.seen, new);
        free(check.seen);
        v = volume_free(v);
        v = load(f->image);
        assert_true(volume_open_recovery(v, new, NULL, 0, NULL) >= 0);
        assert_int_equal(volume_open_recovery(v, old, NULL, 0, NULL), -EPERM);
        assert_false(guid_equal(&old_id, &v->token.protectors[PROTECTOR_RECOVERY].key_id));
        assert_int_equal(v->token.n_retiring, 0);
        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);

        /* Only with the VMK the volume is bound to; a failed attempt changes nothing. */
        _cleanup_secure_ char *third = NULL;
        uint8_t wrong[VMK_SIZE];
        Guid wrong_id;
        assert_int_equal(RAND_bytes(wrong, sizeof(wrong)), 1);
        assert_int_equal(guid_generate(&wrong_id), 0);
        assert_int_equal(volume_rotate_recovery(v, wrong, &f->vmk_id, FAST, NULL, NULL, &third), -EBADE);
        v = volume_free(v);
        v = load(f->image);
        assert_int_equal(volume_rotate_recovery(v, wrong, &f->vmk_id, FAST, NULL, NULL, &third), -EBADE);
        assert_int_equal(volume_rotate_recovery(v, wrong, &wrong_id, FAST, NULL, NULL, &third), -EREMOTE);
        assert_null(third);
        assert_true(volume_open_recovery(v, new, NULL, 0, NULL) >= 0);
        assert_false(v->token.has_pending);
}

static void test_read_password_and_rebind(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL, *read = NULL, *rotated = NULL;
        uint8_t new_vmk[VMK_SIZE], server_wrap[VOLUME_SERVER_WRAP_SIZE];
        Guid new_id, server_key_id;

        provision(f, f->image, &password);
        v = load(f->image);

        /* Read back with the VMK, as escrow (and its retries) will. */
        assert_int_equal(volume_read_recovery_password(v, f->vmk, &f->vmk_id, &read), 0);
        assert_string_equal(read, password);
        assert_int_equal(secure_size(read), RECOVERY_PASSWORD_LEN + 1);
        read = secure_free(read);
        assert_int_equal(RAND_bytes(new_vmk, sizeof(new_vmk)), 1);
        assert_int_equal(guid_generate(&new_id), 0);
        assert_int_equal(volume_read_recovery_password(v, new_vmk, &new_id, &read), -EREMOTE);

        /* Rotated: the new password reads back, the old one no longer opens. */
        assert_int_equal(volume_rotate_recovery(v, f->vmk, &f->vmk_id, FAST, NULL, NULL, &rotated), 0);
        assert_int_equal(volume_read_recovery_password(v, f->vmk, &f->vmk_id, &read), 0);
        assert_string_equal(read, rotated);
        read = secure_free(read);
        assert_int_equal(volume_open_recovery(v, password, NULL, 0, NULL), -EPERM);

        /* Re-bound to a new VMK (a rotation): the password's copy follows it, read back with the old
         * one; the token names the server recovery password's copy given. */
        assert_int_equal(RAND_bytes(server_wrap, sizeof(server_wrap)), 1);
        assert_int_equal(guid_generate(&server_key_id), 0);
        assert_int_equal(volume_bind_vmk(v, new_vmk, &new_id, NULL, &server_key_id, server_wrap), 0);
        assert_int_equal(volume_read_recovery_password(v, new_vmk, &new_id, &read), 0);
        assert_string_equal(read, rotated);
        read = secure_free(read);
        v = volume_free(v);
        v = load(f->image);
        assert_true(guid_equal(&v->token.vmk_id, &new_id));
        assert_true(v->token.has_server_wrap);
        assert_true(guid_equal(&v->token.server_key_id, &server_key_id));
        assert_memory_equal(v->token.server_wrap, server_wrap, sizeof(server_wrap));
        assert_int_equal(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0), -EREMOTE);
        assert_true(volume_open_vmk(v, new_vmk, &new_id, NULL, 0) >= 0);
        assert_true(volume_open_recovery(v, rotated, NULL, 0, NULL) >= 0);

        /* The old VMK is no use now: the token does not verify under it, whatever identity it claims. */
        v = volume_free(v);
        v = load(f->image);
        assert_int_equal(volume_authenticate(v, f->vmk, &new_id), -EBADE);
        assert_int_equal(volume_read_recovery_password(v, f->vmk, &new_id, &read), -EBADE);
}

/* A copy of s with the first character after the first "after" changed to another hex digit (a GUID or
 * hex field keeps its form). */
static char *flip_first_char(const char *s, const char *after) {
        char *copy = strdup(s), *p;

        assert_non_null(copy);
        p = strstr(copy, after);
        assert_non_null(p);
        p += strlen(after);
        *p = *p == 'a' || *p == 'A' ? '0' : *p == '0' ? '1' : (char) (*p >= 'a' ? 'a' : 'A');
        return copy;
}

/* Edits the token in ways that still parse; each is refused by the VMK, changes nothing, and finishes
 * no journal it names (a planted "retiring" entry would otherwise destroy a live keyslot). */
static void expect_tampered(Fixture *f, const char *json) {
        _cleanup_(volume_freep) Volume *v = NULL;
        uint8_t before[32], after[32];

        set_token(f->image, json);
        image_digest(f->image, before);
        v = load(f->image);
        assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), -EBADE);
        assert_null(v->vmk);
        assert_int_equal(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0), -EBADE);
        assert_int_equal(volume_set_escrow(v, &v->token.protectors[PROTECTOR_RECOVERY].key_id,
                                           &(EscrowRecord) { .target = "spool", .state = ESCROW_DONE }),
                         -ENOKEY);
        v = volume_free(v);
        image_digest(f->image, after);
        assert_memory_equal(before, after, sizeof(before));
}

static void test_token_mac(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_free_ char *json = NULL, *hostname = NULL, *escrow = NULL, *key_id = NULL, *retiring = NULL,
                            *mac = NULL, *created = NULL, *retiring_to = NULL;

        provision(f, f->image, &password);
        json = get_token(f->image);
        assert_non_null(strstr(json, "\"sealvol_version\":2"));
        assert_non_null(strstr(json, "\"mac\":\""));
        assert_null(strstr(json, "wrapped_vmk"));

        hostname = replace_once(json, "\"hostname\":\"", "\"hostname\":\"x");
        expect_tampered(f, hostname);
        created = replace_once(json, "\"created\":\"20", "\"created\":\"21");
        expect_tampered(f, created);
        escrow = replace_once(json, "\"escrow\":[]",
                              "\"escrow\":[{\"target\":\"spool\",\"state\":\"done\",\"time\":\"2026-01-01T00:00:00Z\","
                              "\"verified\":true,\"location\":\"elsewhere\"}]");
        expect_tampered(f, escrow);
        key_id = flip_first_char(json, "\"key_id\":\"");
        expect_tampered(f, key_id);
        mac = flip_first_char(json, "\"mac\":\"");
        expect_tampered(f, mac);

        /* A journal planted in the token would have the next authentication destroy a keyslot the token
         * does not own (another tool's, systemd-cryptenroll's say). */
        struct crypt_device *cd = NULL;
        int other;
        assert_int_equal(crypt_init(&cd, f->image), 0);
        assert_int_equal(crypt_load(cd, CRYPT_LUKS2, NULL), 0);
        assert_int_equal(crypt_set_pbkdf_type(cd, &(struct crypt_pbkdf_type) { .type = CRYPT_KDF_PBKDF2, .hash = "sha256",
                                                                               .iterations = 1000,
                                                                               .flags = CRYPT_PBKDF_NO_BENCHMARK }),
                         0);
        other = crypt_keyslot_add_by_passphrase(cd, CRYPT_ANY_SLOT, password, strlen(password), "other tool", 10);
        assert_true(other >= 0);
        crypt_free(cd);
        assert_true(asprintf(&retiring_to, "\"retiring\":[%d]", other) > 0);
        retiring = replace_once(json, "\"retiring\":[]", retiring_to);
        expect_tampered(f, retiring);
        v = load(f->image);
        assert_int_equal(crypt_keyslot_status(v->cd, other), CRYPT_SLOT_ACTIVE);
        v = volume_free(v);

        /* The token back as written: it verifies, and opens. */
        set_token(f->image, json);
        v = load(f->image);
        assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), 0);
        assert_false(v->upgraded);
        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
}

/* Every base64 string in a token, decoded, for the scan below. */
static size_t token_blobs(const char *json, uint8_t *blobs[], size_t sizes[], size_t max) {
        size_t n = 0;

        for (const char *p = json; (p = strchr(p, '"')) && n < max;) {
                const char *end = strchr(p + 1, '"');
                _cleanup_free_ char *s = NULL;
                void *data = NULL;

                if (!end)
                        break;
                s = strndup(p + 1, (size_t) (end - p - 1));
                if (strlen(s) >= 24 && base64_decode(s, &data, &sizes[n]) >= 0)
                        blobs[n++] = data;
                p = end + 1;
        }
        return n;
}

/* The version 1 attack (docs/threat-model.md): one disk's recovery password and any copy of its header
 * gave the server's VMK, which opens every other disk. After the upgrade, nothing in the token opens
 * with that password: neither the v1 way, nor as the server recovery password's copy, nor as any
 * PBKDF2-keyed AES-GCM blob at any offset sealvol ever used; the server's password still does. */
static void test_v1_upgrade_and_attack(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *other = NULL, *v1_json = NULL, *v2_json = NULL;
        _cleanup_secure_ char *password = NULL, *other_password = NULL, *server_password = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        ServerRecovery sr;
        uint8_t *blobs[32];
        size_t sizes[32], n;

        assert_int_equal(server_recovery_new(f->vmk, &f->vmk_id, SERVER_RECOVERY_ITERATIONS_MIN, &sr, &server_password), 0);
        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .recovery_iterations = FAST,
                                    .server_key_id = &sr.key_id, .server_wrap = sr.wrapped_vmk };
        assert_int_equal(volume_provision(f->image, &p, &password, NULL), 0);
        assert_int_equal(new_image(f->dir, "other.img", &other), 0);
        assert_int_equal(volume_provision(other, &p, &other_password, NULL), 0);

        /* The two disks as the version 1 code made them. */
        assert_int_equal(v1_volume_downgrade(f->image, f->vmk, password), 0);
        assert_int_equal(v1_volume_downgrade(other, f->vmk, other_password), 0);
        v1_json = get_token(f->image);
        assert_non_null(strstr(v1_json, "\"sealvol_version\":1"));

        /* The attack works on version 1: the first disk's password gives the VMK, the VMK the other disk. */
        assert_int_equal(v1_recover_vmk(v1_json, password, &vmk), 0);
        assert_memory_equal(vmk, f->vmk, VMK_SIZE);
        v = load(other);
        assert_true(volume_open_vmk(v, vmk, &f->vmk_id, NULL, 0) >= 0);
        v = volume_free(v);
        vmk = secure_free(vmk);

        /* Version 1 loads, authenticates by its tpm keyslot, and is written as version 2. */
        v = load(f->image);
        assert_int_equal(v->token.version, 1u);
        assert_true(v->token.had_v1_wrapped_vmk);
        assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), 0);
        assert_true(v->upgraded);
        v = volume_free(v);
        v2_json = get_token(f->image);
        assert_non_null(strstr(v2_json, "\"sealvol_version\":2"));
        {
                /* No VMK copy under the disk's password: the recovery protector has no wrapped_vmk. */
                _cleanup_(json_object_putp) json_object *o = NULL;
                json_object *protectors;

                assert_int_equal(json_parse_object(v2_json, strlen(v2_json), 8, &o), 0);
                assert_true(json_object_object_get_ex(o, "protectors", &protectors));
                for (size_t i = 0; i < json_object_array_length(protectors); i++)
                        assert_false(json_object_object_get_ex(json_object_array_get_idx(protectors, i), "wrapped_vmk",
                                                               NULL));
        }
        v = load(f->image);
        assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), 0);
        assert_false(v->upgraded);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
        v = volume_free(v);

        /* The v1 attack on the v2 token: nothing. */
        assert_int_equal(v1_recover_vmk(v2_json, password, &vmk), -ENODATA);
        n = token_blobs(v2_json, blobs, sizes, ELEMENTSOF(blobs));
        assert_true(n >= 2); /* wrapped_password and the server copy at least */
        for (size_t i = 0; i < n; i++) {
                /* As the server recovery password's copy, with this disk's password. */
                if (sizes[i] == VOLUME_SERVER_WRAP_SIZE) {
                        assert_int_equal(server_recovery_unwrap(blobs[i], &sr.key_id, &sr.vmk_id, password, &vmk, NULL),
                                         -EPERM);
                        assert_int_equal(server_recovery_unwrap(blobs[i], &sr.key_id, &sr.vmk_id, server_password,
                                                                &vmk, NULL),
                                         0);
                        assert_memory_equal(vmk, f->vmk, VMK_SIZE);
                        vmk = secure_free(vmk);
                }
                /* As v1's layout (iterations || salt || IV || ciphertext || tag), its cost set low. */
                _cleanup_free_ char *fake = NULL, *b64 = NULL;
                if (sizes[i] > 4 + 16)
                        blobs[i][0] = 0xe8, blobs[i][1] = 0x03, blobs[i][2] = blobs[i][3] = 0; /* 1000 iterations */
                b64 = base64_encode(blobs[i], sizes[i]);
                assert_true(asprintf(&fake,
                                     "{\"volume_uuid\":\"x\",\"vmk_id\":\"y\",\"protectors\":[{\"type\":\"recovery\","
                                     "\"key_id\":\"z\",\"wrapped_vmk\":\"%s\"}]}",
                                     b64) > 0);
                assert_int_not_equal(v1_recover_vmk(fake, password, &vmk), 0);
                assert_null(vmk);
                free(blobs[i]);
        }
        server_recovery_done(&sr);
}

static void test_bind_new_vmk(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        uint8_t new_vmk[VMK_SIZE];
        Guid new_id;

        provision(f, f->image, &password);
        v = load(f->image);
        assert_int_equal(RAND_bytes(new_vmk, sizeof(new_vmk)), 1);
        assert_int_equal(guid_generate(&new_id), 0);

        /* Only a volume authenticated with its VMK is re-bound. */
        assert_int_equal(volume_bind_vmk(v, new_vmk, &new_id, password, NULL, NULL), -ENOKEY);
        assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), 0);
        /* A well-formed password that is not the volume's is refused: it would be handed out as one. */
        assert_int_equal(volume_bind_vmk(v, new_vmk, &new_id, "000000-000000-000000-000000-000000-000000-000000-000000",
                                         NULL, NULL),
                         -EPERM);
        assert_int_equal(volume_bind_vmk(v, new_vmk, &new_id, password, NULL, NULL), 0);
        v = volume_free(v);
        v = load(f->image);
        assert_true(guid_equal(&v->token.vmk_id, &new_id));
        assert_false(v->token.has_server_wrap);
        assert_true(volume_open_vmk(v, new_vmk, &new_id, NULL, 0) >= 0);
        assert_int_equal(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0), -EREMOTE);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
}

/* The escrow callback of the child: publishes each new password before the swap, as escrow would. */
static int escrow_to_pipe(Volume *v, Protector *p, const char *password, void *userdata) {
        int fd = *(int *) userdata;
        char line[RECOVERY_PASSWORD_LEN + 2];

        (void) v;
        (void) p;
        snprintf(line, sizeof(line), "%s\n", password);
        return write(fd, line, strlen(line)) == (ssize_t) strlen(line) ? 0 : -EIO;
}

static void test_sigkill_during_changes(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ char *initial = NULL;
        char known[256][128];
        size_t n_known = 0;
        uint8_t vmks[2][VMK_SIZE];
        Guid ids[2];

        provision(f, f->image, &initial);
        snprintf(known[n_known++], sizeof(known[0]), "%s", initial);
        memcpy(vmks[0], f->vmk, VMK_SIZE);
        ids[0] = f->vmk_id;
        assert_int_equal(RAND_bytes(vmks[1], VMK_SIZE), 1);
        assert_int_equal(guid_generate(&ids[1]), 0);

        for (unsigned round = 0; round < KILL_ROUNDS; round++) {
                _cleanup_(volume_freep) Volume *v = NULL;
                _cleanup_fclose_ FILE *in = NULL;
                char line[128];
                unsigned delay_us;
                int fds[2], opened = 0;
                pid_t pid;

                assert_int_equal(pipe(fds), 0);
                assert_int_equal(RAND_bytes((unsigned char *) &delay_us, sizeof(delay_us)), 1);
                delay_us %= 60000;

                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        /* Rotate the recovery password and flip between two VMKs, forever. */
                        close(fds[0]);
                        for (unsigned i = 0;; i++) {
                                _cleanup_(volume_freep) Volume *cv = NULL;
                                _cleanup_secure_ char *pw = NULL;
                                unsigned cur;

                                if (volume_load(f->image, &cv) < 0)
                                        _exit(2);
                                cur = guid_equal(&cv->token.vmk_id, &ids[0]) ? 0 : 1;
                                if (volume_authenticate(cv, vmks[cur], &ids[cur]) < 0)
                                        _exit(3);
                                if (i % 2 == 0) {
                                        if (volume_rotate_recovery(cv, vmks[cur], &ids[cur], FAST, escrow_to_pipe,
                                                                   &fds[1], &pw) < 0)
                                                _exit(4);
                                } else if (volume_bind_vmk(cv, vmks[!cur], &ids[!cur], NULL, NULL, NULL) < 0)
                                        _exit(5);
                        }
                }
                close(fds[1]);
                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) delay_us * 1000 }, NULL);
                assert_int_equal(kill(pid, SIGKILL), 0);
                int status;
                assert_int_equal(waitpid(pid, &status, 0), pid);
                assert_true(WIFSIGNALED(status)); /* the child was killed, it did not fail */

                in = fdopen(fds[0], "r");
                assert_non_null(in);
                while (fgets(line, sizeof(line), in) && n_known < ELEMENTSOF(known)) {
                        line[strcspn(line, "\n")] = '\0';
                        snprintf(known[n_known++], sizeof(known[0]), "%s", line);
                }

                /* Authenticating finishes the journal; then the VMK it names and one known password open. */
                v = load(f->image);
                unsigned cur = guid_equal(&v->token.vmk_id, &ids[0]) ? 0 : 1;
                assert_int_equal(volume_authenticate(v, vmks[cur], &ids[cur]), 0);
                assert_false(v->token.has_pending);
                assert_int_equal(v->token.n_retiring, 0);
                assert_true(volume_open_vmk(v, vmks[cur], &ids[cur], NULL, 0) >= 0);
                for (size_t i = n_known; i > 0 && !opened; i--)
                        opened = volume_open_recovery(v, known[i - 1], NULL, 0, NULL) >= 0;
                assert_true(opened);
        }
}

static X509 *load_dra_cert(const char *name) {
        X509 *cert = dra_fixture_cert(name);

        assert_non_null(cert);
        return cert;
}

static EVP_PKEY *load_dra_key(const char *name) {
        EVP_PKEY *key = dra_fixture_key(name);

        assert_non_null(key);
        return key;
}

/* The operator's path with stock tools only: openssl cms -decrypt | cryptsetup open --test-passphrase. */
static int stock_dra_open(Fixture *f, Volume *v, const char *key_name) {
        _cleanup_free_ char *blob = path_join(f->dir, "dra.cms"), *cmd = NULL;
        _cleanup_fclose_ FILE *out = NULL;

        assert_non_null(blob);
        out = fopen(blob, "we");
        assert_non_null(out);
        assert_int_equal(fwrite(v->token.protectors[PROTECTOR_DRA].dra_cms, 1,
                                v->token.protectors[PROTECTOR_DRA].dra_cms_size, out),
                         v->token.protectors[PROTECTOR_DRA].dra_cms_size);
        out = safe_fclose(out);
        assert_true(asprintf(&cmd,
                             "openssl cms -decrypt -binary -inform DER -in '%s' -inkey '%s/dra-%s.key' 2>/dev/null | "
                             "cryptsetup open --test-passphrase --key-file - '%s' 2>/dev/null",
                             blob, getenv("SEALVOL_DRA_FIXTURES"), key_name, f->image) > 0);
        return system(cmd);
}

static void test_dra_protector(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        X509 *rsa = load_dra_cert("rsa2048"), *ec = load_dra_cert("ec256");
        EVP_PKEY *rsa_key = load_dra_key("rsa2048"), *ec_key = load_dra_key("ec256");
        VolumeProvisionParams p = {
                .vmk = f->vmk,
                .vmk_id = f->vmk_id,
                .dra_cert = rsa,
                .recovery_iterations = FAST,
        };
        uint8_t fp[DRA_FINGERPRINT_SIZE];

        assert_int_equal(volume_provision(f->image, &p, &password, NULL), 0);
        v = load(f->image);
        assert_true(v->token.has[PROTECTOR_DRA]);
        assert_int_equal(dra_cert_fingerprint(rsa, fp), 0);
        assert_memory_equal(v->token.protectors[PROTECTOR_DRA].dra_fingerprint, fp, sizeof(fp));
        assert_true(volume_open_dra(v, rsa_key, NULL, 0) >= 0);
        assert_int_equal(volume_open_dra(v, ec_key, NULL, 0), -EKEYREJECTED);
        assert_int_equal(stock_dra_open(f, v, "rsa2048"), 0);

        /* A renewed DRA certificate (here: an EC one): the old key no longer opens, the new one does. */
        assert_int_equal(volume_set_dra(v, ec, NULL), -ENOKEY);
        assert_int_equal(volume_authenticate(v, f->vmk, &f->vmk_id), 0);
        /* A certificate that may not serve as a DRA is refused, and nothing changes. */
        X509 *sign_only = load_dra_cert("rsa-ku-sign");
        uint8_t before[32], after[32];
        image_digest(f->image, before);
        assert_int_equal(volume_set_dra(v, sign_only, NULL), -EKEYREJECTED);
        image_digest(f->image, after);
        assert_memory_equal(before, after, sizeof(before));
        X509_free(sign_only);

        assert_int_equal(volume_set_dra(v, ec, NULL), 0);
        v = volume_free(v);
        v = load(f->image);
        assert_true(volume_open_dra(v, ec_key, NULL, 0) >= 0);
        assert_int_equal(volume_open_dra(v, rsa_key, NULL, 0), -EKEYREJECTED);
        assert_int_equal(stock_dra_open(f, v, "ec256"), 0);
        assert_int_not_equal(stock_dra_open(f, v, "rsa2048"), 0);
        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);

        X509_free(rsa);
        X509_free(ec);
        EVP_PKEY_free(rsa_key);
        EVP_PKEY_free(ec_key);
}

static void test_refused_dra_cert_at_provisioning(void **state) {
        Fixture *f = *state;
        _cleanup_secure_ char *password = NULL;
        X509 *cert = load_dra_cert("rsa-eku-server");
        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .dra_cert = cert, .recovery_iterations = FAST };
        uint8_t before[32], after[32];
        Volume *v = NULL;

        image_digest(f->image, before);
        assert_int_equal(volume_provision(f->image, &p, &password, NULL), -EKEYREJECTED);
        assert_null(password);
        image_digest(f->image, after);
        assert_memory_equal(before, after, sizeof(before));
        assert_int_equal(volume_load(f->image, &v), -EMEDIUMTYPE);
        X509_free(cert);
}

static int provision_escrow_check(Volume *v, Protector *p, const char *password, void *userdata) {
        /* Escrow runs on a volume whose protectors all open, before the token exists. */
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
        assert_int_equal(p->type, PROTECTOR_RECOVERY);
        return *(int *) userdata;
}

static void test_provisioning_escrow_and_sigkill(void **state) {
        Fixture *f = *state;
        int veto = -ECONNREFUSED, accept = 0;
        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .recovery_iterations = FAST,
                                    .escrow = provision_escrow_check, .userdata = &veto };
        _cleanup_secure_ char *password = NULL;
        Volume *v = NULL;

        /* Escrow refused ("require escrow"): no sealvol volume comes of it, and it can be redone. */
        assert_int_equal(volume_provision(f->image, &p, &password, NULL), -ECONNREFUSED);
        assert_int_equal(volume_load(f->image, &v), -ENOMSG);
        p.userdata = &accept;
        assert_int_equal(volume_provision(f->image, &p, &password, &v), 0);
        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
        v = volume_free(v);

        /* Killed at a random moment: either complete, or cleanly not a sealvol volume and provisioned
         * again; never anything in between. */
        p.escrow = NULL;
        unsigned complete = 0, interrupted = 0, damaged = 0;
        for (unsigned round = 0; round < KILL_ROUNDS; round++) {
                _cleanup_free_ char *image = NULL, *name = NULL;
                _cleanup_secure_ char *pw = NULL;
                unsigned delay_us;
                pid_t pid;
                int r;

                assert_true(asprintf(&name, "kill%u.img", round) > 0);
                assert_int_equal(new_image(f->dir, name, &image), 0);
                assert_int_equal(RAND_bytes((unsigned char *) &delay_us, sizeof(delay_us)), 1);
                delay_us %= 150000;

                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        _cleanup_secure_ char *cpw = NULL;
                        _exit(volume_provision(image, &p, &cpw, NULL) < 0 ? 1 : 0);
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) delay_us * 1000 }, NULL);
                (void) kill(pid, SIGKILL);
                assert_int_equal(waitpid(pid, NULL, 0), pid);

                r = volume_load(image, &v);
                if (r == 0) {
                        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
                        v = volume_free(v);
                        complete++;
                } else {
                        interrupted++;
                        /* Killed before the header (no LUKS2), inside its write (a damaged one), or after it
                 * and before the token. */
                assert_true(r == -ENOMSG || r == -EMEDIUMTYPE || r == -EUCLEAN);
                        r = volume_provision(image, &p, &pw, &v);
                        if (r == -EUCLEAN) {
                                /* Killed inside crypt_format(): a header too damaged to tell whose it
                                 * is. Refused, as it should be; the operator wipes it. */
                                damaged++;
                                assert_int_equal(truncate(image, 0), 0);
                                assert_int_equal(truncate(image, (off_t) LUKS_IMAGE_SIZE_DEFAULT), 0);
                                r = volume_provision(image, &p, &pw, &v);
                        }
                        assert_int_equal(r, 0);
                        assert_true(volume_open_vmk(v, f->vmk, &f->vmk_id, NULL, 0) >= 0);
                        assert_true(volume_open_recovery(v, pw, NULL, 0, NULL) >= 0);
                        v = volume_free(v);
                }
                (void) unlink(image);
        }
        print_message("provisioning killed %u times: %u complete, %u interrupted and redone (%u in the header "
                      "write)\n", KILL_ROUNDS, complete, interrupted, damaged);
}

/* Copies only the data segments of a sparse image, so restoring a provisioned image is cheap. */
static void copy_sparse(const char *from, const char *to) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC), out = -EBADF;
        off_t size, data = 0;

        assert_true(in >= 0);
        size = lseek(in, 0, SEEK_END);
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(out >= 0);
        assert_int_equal(ftruncate(out, size), 0);
        while ((data = lseek(in, data, SEEK_DATA)) >= 0) {
                off_t hole = lseek(in, data, SEEK_HOLE), off = data;

                assert_true(hole > data);
                while (off < hole) {
                        loff_t src = off, dst = off;
                        ssize_t n = copy_file_range(in, &src, out, &dst, (size_t) (hole - off), 0);
                        assert_true(n > 0);
                        off += n;
                }
                data = hole;
        }
}

typedef enum StepOp {
        STEP_PROVISION,
        STEP_ROTATE_RECOVERY,
        STEP_BIND_VMK,
        STEP_SET_DRA,
        _STEP_OP_MAX,
} StepOp;

typedef struct StepContext {
        Fixture *f;
        StepOp op;
        const char *image;
        uint8_t new_vmk[VMK_SIZE];
        Guid new_vmk_id;
        X509 *new_dra;
        int escrow_fd;
} StepContext;

/* Runs in the traced child. */
static int step_change(void *userdata) {
        StepContext *c = userdata;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *pw = NULL;
        int r;

        if (c->op == STEP_PROVISION) {
                VolumeProvisionParams p = { .vmk = c->f->vmk, .vmk_id = c->f->vmk_id, .recovery_iterations = FAST };
                return volume_provision(c->image, &p, &pw, NULL);
        }

        r = volume_load(c->image, &v);
        if (r < 0)
                return r;
        r = volume_authenticate(v, c->f->vmk, &c->f->vmk_id);
        if (r < 0)
                return r;
        switch (c->op) {
        case STEP_ROTATE_RECOVERY:
                return volume_rotate_recovery(v, c->f->vmk, &c->f->vmk_id, FAST, escrow_to_pipe, &c->escrow_fd, &pw);
        case STEP_BIND_VMK:
                return volume_bind_vmk(v, c->new_vmk, &c->new_vmk_id, NULL, NULL, NULL);
        case STEP_SET_DRA:
                return volume_set_dra(v, c->new_dra, NULL);
        default:
                return -EINVAL;
        }
}

/* What must hold after the change was killed at any step: the volume loads (finishing the journal)
 * and opens with its VMK (old, or new after a completed swap), a recovery password the operator was
 * given or that was escrowed, and the DRA key it is wrapped to. */
static void check_after_kill(StepContext *c, const char *initial_password, char escrowed[][128], size_t n_escrowed,
                             EVP_PKEY *old_dra_key, EVP_PKEY *new_dra_key, unsigned *ret_redone) {
        _cleanup_(volume_freep) Volume *v = NULL;
        int r, opened = 0;

        r = volume_load(c->image, &v);
        if (c->op == STEP_PROVISION && r < 0) {
                _cleanup_secure_ char *pw = NULL;
                VolumeProvisionParams p = { .vmk = c->f->vmk, .vmk_id = c->f->vmk_id, .recovery_iterations = FAST };

                /* Killed before the header (no LUKS2), inside its write (a damaged one), or after it
                 * and before the token. */
                assert_true(r == -ENOMSG || r == -EMEDIUMTYPE || r == -EUCLEAN);
                r = volume_provision(c->image, &p, &pw, &v);
                if (r == -EUCLEAN) { /* killed inside the LUKS2 header write itself */
                        assert_int_equal(truncate(c->image, 0), 0);
                        assert_int_equal(truncate(c->image, (off_t) LUKS_IMAGE_SIZE_DEFAULT), 0);
                        r = volume_provision(c->image, &p, &pw, &v);
                }
                assert_int_equal(r, 0);
                (*ret_redone)++;
                assert_true(volume_open_recovery(v, pw, NULL, 0, NULL) >= 0);
        }
        assert_int_equal(r, 0);
        const uint8_t *vmk = guid_equal(&v->token.vmk_id, &c->f->vmk_id) ? c->f->vmk : c->new_vmk;
        assert_int_equal(volume_authenticate(v, vmk, &v->token.vmk_id), 0);
        assert_false(v->token.has_pending);
        assert_int_equal(v->token.n_retiring, 0);
        assert_true(volume_open_vmk(v, vmk, &v->token.vmk_id, NULL, 0) >= 0);

        /* The wrapped copy of the password, when there is one, is the live password. */
        _cleanup_secure_ char *read = NULL;
        r = volume_read_recovery_password(v, vmk, &v->token.vmk_id, &read);
        assert_true(r == 0 || r == -ENODATA);
        if (r == 0)
                assert_true(volume_open_recovery(v, read, NULL, 0, NULL) >= 0);

        if (initial_password) {
                opened = volume_open_recovery(v, initial_password, NULL, 0, NULL) >= 0;
                for (size_t i = 0; i < n_escrowed && !opened; i++)
                        opened = volume_open_recovery(v, escrowed[i], NULL, 0, NULL) >= 0;
                assert_true(opened);
        }
        if (old_dra_key)
                assert_true(volume_open_dra(v, old_dra_key, NULL, 0) >= 0 ||
                            volume_open_dra(v, new_dra_key, NULL, 0) >= 0);
}

static void test_kill_at_every_step(void **state) {
        Fixture *f = *state;
        static const char *const names[_STEP_OP_MAX] = { "provisioning", "recovery rotation", "VMK rebind",
                                                         "DRA change" };
        X509 *rsa = load_dra_cert("rsa2048"), *ec = load_dra_cert("ec256");
        EVP_PKEY *rsa_key = load_dra_key("rsa2048"), *ec_key = load_dra_key("ec256");

        for (StepOp op = 0; op < _STEP_OP_MAX; op++) {
                StepContext c = { .f = f, .op = op, .new_dra = ec };
                _cleanup_free_ char *pristine = NULL, *pristine_name = NULL;
                _cleanup_secure_ char *initial = NULL;
                unsigned k, redone = 0;
                bool completed = false;

                assert_int_equal(RAND_bytes(c.new_vmk, VMK_SIZE), 1);
                assert_int_equal(guid_generate(&c.new_vmk_id), 0);

                /* One provisioned volume, restored before each kill. */
                assert_true(asprintf(&pristine_name, "pristine-%d.img", op) > 0);
                assert_int_equal(new_image(f->dir, pristine_name, &pristine), 0);
                if (op != STEP_PROVISION) {
                        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id, .dra_cert = rsa,
                                                    .recovery_iterations = FAST };
                        assert_int_equal(volume_provision(pristine, &p, &initial, NULL), 0);
                }

                for (k = 1; !completed; k++) {
                        _cleanup_free_ char *image = NULL, *name = NULL;
                        char escrowed[4][128];
                        size_t n_escrowed = 0;
                        int fds[2];

                        assert_true(k < 1000);
                        assert_true(asprintf(&name, "step-%d-%u.img", op, k) > 0);
                        image = path_join(f->dir, name);
                        assert_non_null(image);
                        copy_sparse(pristine, image);
                        c.image = image;

                        assert_int_equal(pipe(fds), 0);
                        c.escrow_fd = fds[1];
                        assert_int_equal(test_run_killed_at(step_change, &c, f->dir, k, &completed), 0);
                        close(fds[1]);
                        _cleanup_fclose_ FILE *in = fdopen(fds[0], "r");
                        assert_non_null(in);
                        while (n_escrowed < ELEMENTSOF(escrowed) && fgets(escrowed[n_escrowed], 128, in)) {
                                escrowed[n_escrowed][strcspn(escrowed[n_escrowed], "\n")] = '\0';
                                n_escrowed++;
                        }

                        check_after_kill(&c, initial, escrowed, n_escrowed, op == STEP_PROVISION ? NULL : rsa_key,
                                         ec_key, &redone);
                        (void) unlink(image);
                }
                print_message("%s: killed at each of its %u steps on disk, every time recoverable%s\n", names[op],
                              k - 2, op == STEP_PROVISION ? " (an interrupted one is provisioned again)" : "");
        }

        X509_free(rsa);
        X509_free(ec);
        EVP_PKEY_free(rsa_key);
        EVP_PKEY_free(ec_key);
}

static void test_production_recovery_kdf_cost(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = { .vmk = f->vmk, .vmk_id = f->vmk_id };
        struct crypt_pbkdf_type pbkdf;

        /* A cost test: under memcheck its 2^20-iteration KDFs take minutes and cover no code the
         * cheap recovery keyslots of the other tests do not. */
        if (!isempty(getenv("SEALVOL_VALGRIND")))
                skip();

        assert_int_equal(volume_provision(f->image, &p, &password, &v), 0);
        assert_int_equal(crypt_keyslot_get_pbkdf(v->cd, v->token.protectors[PROTECTOR_RECOVERY].keyslot, &pbkdf), 0);
        assert_string_equal(pbkdf.type, CRYPT_KDF_PBKDF2);
        assert_string_equal(pbkdf.hash, "sha256");
        assert_int_equal(pbkdf.iterations, VOLUME_RECOVERY_PBKDF2_ITERATIONS);
        assert_int_equal(crypt_keyslot_get_pbkdf(v->cd, v->token.protectors[PROTECTOR_TPM].keyslot, &pbkdf), 0);
        assert_int_equal(pbkdf.iterations, VOLUME_PBKDF2_ITERATIONS_MIN);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_provision_and_open_every_way, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refuses_devices_with_data, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_and_foreign_tokens, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_recovery, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_password_and_rebind, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bind_new_vmk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_token_mac, setup, teardown),
                cmocka_unit_test_setup_teardown(test_v1_upgrade_and_attack, setup, teardown),
                cmocka_unit_test_setup_teardown(test_sigkill_during_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dra_protector, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused_dra_cert_at_provisioning, setup, teardown),
                cmocka_unit_test_setup_teardown(test_provisioning_escrow_and_sigkill, setup, teardown),
                cmocka_unit_test_setup_teardown(test_kill_at_every_step, setup, teardown),
                cmocka_unit_test_setup_teardown(test_production_recovery_kdf_cost, setup, teardown),
        };

        test_require(test_have_executable("cryptsetup"), "cryptsetup (Debian package cryptsetup-bin)");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
