/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* server-recovery.c: the server recovery password and its wrapped copies (see server-recovery.h). */

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

#include "aead.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "recovery.h"
#include "secmem.h"
#include "server-recovery.h"

#define SERVER_RECOVERY_FORMAT "sealvol-server-recovery"
#define SERVER_RECOVERY_WRAP_LABEL "sealvol server recovery password wrap v1"
#define SALT_SIZE 16
#define HEADER_SIZE (4 + SALT_SIZE)
/* "sealvol server recovery v1|" + GUID + "|" + GUID */
#define AAD_MAX 112

_Static_assert(SERVER_RECOVERY_WRAPPED_VMK_SIZE == HEADER_SIZE + AEAD_OVERHEAD + VMK_SIZE, "wrapped VMK layout");

/* Both copies are bound to this password's Key ID and this VMK: a copy moved to another server's state
 * or token, or left behind by a rotation, does not open. */
static void server_aad(const Guid *key_id, const Guid *vmk_id, char ret[static AAD_MAX]) {
        char k[GUID_STRING_MAX], v[GUID_STRING_MAX];

        snprintf(ret, AAD_MAX, "sealvol server recovery v1|%s|%s", guid_format(key_id, k), guid_format(vmk_id, v));
}

static int password_key(const char *canonical, const uint8_t salt[static SALT_SIZE], uint32_t iterations,
                        uint8_t **ret) {
        _cleanup_secure_ uint8_t *key = secure_alloc(AEAD_KEY_SIZE);

        if (!key)
                return negative_errno();
        if (PKCS5_PBKDF2_HMAC(canonical, (int) strlen(canonical), salt, SALT_SIZE, (int) iterations, EVP_sha256(),
                              AEAD_KEY_SIZE, key) != 1)
                return -EIO;
        *ret = TAKE_PTR(key);
        return 0;
}

void server_recovery_done(ServerRecovery *s) {
        free(s->wrapped_password);
        s->wrapped_password = NULL;
        s->wrapped_password_size = 0;
}

int server_recovery_new(const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, uint32_t iterations,
                        ServerRecovery *ret, char **ret_password) {
        _cleanup_secure_ uint8_t *pw_key = NULL, *vmk_key = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_free_ uint8_t *sealed = NULL, *wpw = NULL;
        ServerRecovery s = { .vmk_id = *vmk_id, .created = (uint64_t) time(NULL) };
        char aad[AAD_MAX], key_id[GUID_STRING_MAX];
        size_t sealed_size, wpw_size;
        int r;

        if (iterations == 0)
                iterations = SERVER_RECOVERY_ITERATIONS_DEFAULT;
        if (iterations < SERVER_RECOVERY_ITERATIONS_MIN || iterations > SERVER_RECOVERY_ITERATIONS_MAX ||
            guid_is_null(vmk_id))
                return -EINVAL;
        r = guid_generate(&s.key_id);
        if (r < 0)
                return r;
        r = recovery_password_generate(&password);
        if (r < 0)
                return r;
        server_aad(&s.key_id, vmk_id, aad);

        for (unsigned i = 0; i < 4; i++)
                s.wrapped_vmk[i] = (uint8_t) (iterations >> (8 * i));
        if (RAND_bytes(s.wrapped_vmk + 4, SALT_SIZE) != 1)
                return -EIO;
        r = password_key(password, s.wrapped_vmk + 4, iterations, &pw_key);
        if (r < 0)
                return r;
        r = aead_seal(pw_key, aad, strlen(aad), vmk, VMK_SIZE, &sealed, &sealed_size);
        if (r < 0)
                return r;
        if (sealed_size != SERVER_RECOVERY_WRAPPED_VMK_SIZE - HEADER_SIZE)
                return -EIO;
        memcpy(s.wrapped_vmk + HEADER_SIZE, sealed, sealed_size);

        r = vmk_derive_key(vmk, guid_format(&s.key_id, key_id), SERVER_RECOVERY_WRAP_LABEL, &vmk_key);
        if (r < 0)
                return r;
        r = aead_seal(vmk_key, aad, strlen(aad), password, strlen(password), &wpw, &wpw_size);
        if (r < 0)
                return r;
        s.wrapped_password = TAKE_PTR(wpw);
        s.wrapped_password_size = wpw_size;

        *ret = s;
        *ret_password = TAKE_PTR(password);
        return 0;
}

int server_recovery_read_password(const ServerRecovery *s, const uint8_t vmk[static VMK_SIZE], char **ret_password) {
        _cleanup_secure_ uint8_t *key = NULL, *check = NULL;
        _cleanup_secure_ void *plain = NULL;
        char aad[AAD_MAX], key_id[GUID_STRING_MAX];
        size_t size;
        int r;

        server_aad(&s->key_id, &s->vmk_id, aad);
        r = vmk_derive_key(vmk, guid_format(&s->key_id, key_id), SERVER_RECOVERY_WRAP_LABEL, &key);
        if (r < 0)
                return r;
        r = aead_open(key, aad, strlen(aad), s->wrapped_password, s->wrapped_password_size, &plain, &size);
        if (r == -EBADMSG)
                return -EREMOTE; /* the tag fails for another VMK as for damage; the VMK is the likelier */
        if (r < 0)
                return r;
        if (size != RECOVERY_PASSWORD_LEN || recovery_password_parse(plain, &check, NULL) < 0)
                return -EBADMSG;
        *ret_password = TAKE_PTR(plain);
        return 0;
}

int server_recovery_unwrap(const uint8_t wrapped[static SERVER_RECOVERY_WRAPPED_VMK_SIZE], const Guid *key_id,
                           const Guid *vmk_id, const char *password, uint8_t **ret_vmk, unsigned *ret_bad_block) {
        _cleanup_secure_ char *canonical = NULL;
        _cleanup_secure_ uint8_t *pw_key = NULL;
        _cleanup_secure_ void *vmk = NULL;
        uint32_t iterations = 0;
        char aad[AAD_MAX];
        size_t size;
        int r;

        /* A typo is named before any KDF runs. */
        r = recovery_password_canonicalize(password, &canonical, ret_bad_block);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < 4; i++)
                iterations |= (uint32_t) wrapped[i] << (8 * i);
        /* The cost comes with the copy, which may come from a disk: bounded, so a planted one cannot have
         * the daemon spin for hours. */
        if (iterations < SERVER_RECOVERY_ITERATIONS_MIN || iterations > SERVER_RECOVERY_ITERATIONS_MAX)
                return -EBADMSG;
        r = password_key(canonical, wrapped + 4, iterations, &pw_key);
        if (r < 0)
                return r;
        server_aad(key_id, vmk_id, aad);
        r = aead_open(pw_key, aad, strlen(aad), wrapped + HEADER_SIZE, SERVER_RECOVERY_WRAPPED_VMK_SIZE - HEADER_SIZE,
                      &vmk, &size);
        if (r == -EBADMSG)
                return -EPERM; /* the tag is what says the password is wrong */
        if (r < 0)
                return r;
        if (size != VMK_SIZE)
                return -EBADMSG;
        *ret_vmk = TAKE_PTR(vmk);
        return 0;
}

int server_recovery_set_escrow(ServerRecovery *s, const EscrowRecord *e) {
        return escrow_records_set(s->escrow, &s->n_escrow, e);
}

/* ---- the state file ----------------------------------------------------------------------------- */

int server_recovery_to_json(const ServerRecovery *s, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char key_id[GUID_STRING_MAX], vmk_id[GUID_STRING_MAX];
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "format", SERVER_RECOVERY_FORMAT)) < 0 ||
            (r = json_add_owned(o, "version", json_object_new_int(SERVER_RECOVERY_VERSION))) < 0 ||
            (r = json_add_string(o, "key_id", guid_format(&s->key_id, key_id))) < 0 ||
            (r = json_add_string(o, "vmk_id", guid_format(&s->vmk_id, vmk_id))) < 0 ||
            (r = json_add_time(o, "created", s->created)) < 0 ||
            (r = json_add_base64(o, "wrapped_vmk", s->wrapped_vmk, sizeof(s->wrapped_vmk))) < 0 ||
            (r = json_add_base64(o, "wrapped_password", s->wrapped_password, s->wrapped_password_size)) < 0 ||
            (r = escrow_records_to_json(s->escrow, s->n_escrow, o, "escrow")) < 0)
                return r;
        *ret = json_format(o);
        return *ret ? 0 : -ENOMEM;
}

int server_recovery_from_json(const char *json, size_t size, ServerRecovery *ret) {
        static const char *const keys[] = { "format", "version", "key_id", "vmk_id", "created", "wrapped_vmk",
                                            "wrapped_password", "escrow", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ void *wvmk = NULL, *wpw = NULL;
        ServerRecovery s = {};
        json_object *v;
        size_t n;
        int r;

        if (size > SERVER_RECOVERY_FILE_MAX)
                return -EBADMSG;
        /* object -> escrow -> record: 3 levels, and one for the parser. */
        r = json_parse_object_strict(json, size, 4, &o);
        if (r < 0)
                return r;
        if (!streq_ptr(json_get_string(o, "format"), SERVER_RECOVERY_FORMAT) ||
            !json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int) ||
            json_object_get_int64(v) < 1)
                return -EBADMSG;
        if (json_object_get_int64(v) > SERVER_RECOVERY_VERSION)
                return -EPROTONOSUPPORT;
        if (json_check_keys(o, keys) < 0 || guid_parse(json_get_string(o, "key_id"), &s.key_id) < 0 ||
            guid_parse(json_get_string(o, "vmk_id"), &s.vmk_id) < 0 || guid_is_null(&s.key_id) ||
            guid_is_null(&s.vmk_id) || json_get_time(o, "created", &s.created) < 0 ||
            base64_decode(json_get_string(o, "wrapped_vmk"), &wvmk, &n) < 0 || n != sizeof(s.wrapped_vmk) ||
            base64_decode(json_get_string(o, "wrapped_password"), &wpw, &s.wrapped_password_size) < 0 ||
            s.wrapped_password_size != AEAD_OVERHEAD + RECOVERY_PASSWORD_LEN ||
            escrow_records_from_json(o, "escrow", s.escrow, &s.n_escrow) < 0)
                return -EBADMSG;
        memcpy(s.wrapped_vmk, wvmk, n);
        s.wrapped_password = TAKE_PTR(wpw);
        *ret = s;
        return 0;
}

int server_recovery_read(const char *path, ServerRecovery *ret) {
        _cleanup_free_ char *json = NULL;
        size_t size;
        int r;

        r = read_file_full(path, SERVER_RECOVERY_FILE_MAX, &json, &size);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        return server_recovery_from_json(json, size, ret);
}

int server_recovery_write(const ServerRecovery *s, const char *path) {
        _cleanup_free_ char *json = NULL;
        int r;

        r = server_recovery_to_json(s, &json);
        if (r < 0)
                return r;
        return write_file_atomic(path, json, strlen(json), 0600);
}
