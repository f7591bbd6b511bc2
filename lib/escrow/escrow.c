/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* escrow.c: the escrow record, the spool and the hook (see escrow.h). */

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dra.h"
#include "encoding.h"
#include "escrow.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "recovery.h"
#include "secmem.h"
#include "process-util.h"

static const char *const escrow_target_table[_ESCROW_TARGET_MAX] = {
        [ESCROW_TARGET_SPOOL] = "spool",
        [ESCROW_TARGET_HOOK] = "hook",
        [ESCROW_TARGET_AD] = "ad",
};

const char *escrow_target_to_string(EscrowTarget t) {
        return t >= 0 && t < _ESCROW_TARGET_MAX ? escrow_target_table[t] : NULL;
}

EscrowTarget escrow_target_from_string(const char *s) {
        for (EscrowTarget t = 0; s && t < _ESCROW_TARGET_MAX; t++)
                if (streq(s, escrow_target_table[t]))
                        return t;
        return _ESCROW_TARGET_INVALID;
}

int escrow_targets_from_string(const char *s, uint32_t *ret_mask) {
        _cleanup_free_ char *copy = strdup(s);
        char *save = NULL;
        uint32_t mask = 0;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                EscrowTarget t = escrow_target_from_string(w);

                if (t < 0)
                        return -EINVAL;
                mask |= 1u << t;
        }
        *ret_mask = mask;
        return 0;
}

char *escrow_targets_to_string(uint32_t mask) {
        char buf[64] = "";

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if (mask & (1u << t)) {
                        if (buf[0])
                                strcat(buf, " ");
                        strcat(buf, escrow_target_table[t]);
                }
        return strdup(buf);
}

bool escrow_text_reveals_password(const char *text, const char *password) {
        _cleanup_secure_ char *digits = NULL, *text_digits = NULL;
        size_t n = 0, m = 0, len;

        if (isempty(text) || isempty(password))
                return false;
        /* Both without separators, in locked memory: the copy of a text that holds the password
         * is as secret as the password. */
        len = strlen(text);
        digits = secure_alloc(strlen(password) + 1);
        text_digits = secure_alloc(len + 1);
        if (!digits || !text_digits)
                return true; /* cannot tell: treat it as a leak, which only drops the text */
        for (const char *p = password; *p; p++)
                if (*p >= '0' && *p <= '9')
                        digits[n++] = *p;
        for (const char *p = text; *p; p++)
                if (*p >= '0' && *p <= '9')
                        text_digits[m++] = *p;
        if (n == 0)
                return false;
        return memmem(text_digits, m, digits, n) != NULL;
}

/* ---- the record --------------------------------------------------------------------------------- */

/* The type of a password record's envelope, where the record itself is CMS to the DRA (the hook's, with a
 * DRA certificate): read back as the ESCROW_RECORD_PASSWORD inside it. */
#define ENVELOPE_TYPE "recovery-password-cms"

static const char *const escrow_record_type_table[_ESCROW_RECORD_TYPE_MAX] = {
        [ESCROW_RECORD_PASSWORD] = "recovery-password",
        [ESCROW_RECORD_VMK] = "vmk",
};

static int password_is_canonical(const char *password) {
        _cleanup_secure_ uint8_t *key = NULL;
        _cleanup_secure_ char *again = NULL;
        int r;

        if (!password || strlen(password) != RECOVERY_PASSWORD_LEN)
                return -EINVAL;
        r = recovery_password_parse(password, &key, NULL);
        if (r < 0)
                return -EINVAL;
        r = recovery_password_format(key, &again);
        if (r < 0)
                return r;
        return memeq_secure(again, password, RECOVERY_PASSWORD_LEN) ? 0 : -EINVAL;
}

/* What a password record says in clear, before the password itself: the same members, in the same
 * order, in the plain record and in the envelope of an encrypted one. */
static int password_add_metadata(json_object *o, const char *type, const EscrowPassword *e) {
        char key_id[GUID_STRING_MAX], vmk_id[GUID_STRING_MAX];
        int r;

        r = json_add_owned(o, "sealvol_escrow_version", json_object_new_int(ESCROW_RECORD_VERSION));
        if (r >= 0)
                r = json_add_string(o, "type", type);
        if (r >= 0)
                r = json_add_string(o, "hostname", strempty(e->hostname));
        if (r >= 0 && e->machine_id)
                r = json_add_string(o, "machine_id", e->machine_id);
        if (r >= 0)
                r = json_add_string(o, "volume_uuid", e->volume_uuid);
        if (r >= 0)
                r = json_add_string(o, "device", strempty(e->device));
        if (r >= 0)
                r = json_add_string(o, "key_id", guid_format(&e->key_id, key_id));
        if (r >= 0)
                r = json_add_string(o, "vmk_id", guid_format(&e->vmk_id, vmk_id));
        if (r >= 0)
                r = json_add_time(o, "created", e->created);
        return r;
}

int escrow_password_to_json(const EscrowPassword *e, char **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        static const char field[] = ",\"recovery_password\":\"";
        _cleanup_free_ char *text = NULL;
        char *out;
        size_t n, size;
        int r;

        if (!o)
                return -ENOMEM;
        r = password_is_canonical(e->password);
        if (r < 0)
                return r;
        r = password_add_metadata(o, escrow_record_type_table[ESCROW_RECORD_PASSWORD], e);
        if (r < 0)
                return r;

        /* json-c copies strings into memory it frees without wiping, so it never sees the password:
         * it is appended to the secure copy as the last member. It is digits and dashes only. */
        text = json_format(o);
        if (!text)
                return -ENOMEM;
        n = strlen(text);
        if (n < 2 || text[n - 1] != '}')
                return -EINVAL;
        size = n - 1 + strlen(field) + RECOVERY_PASSWORD_LEN + strlen("\"}\n");
        if (size > ESCROW_RECORD_MAX)
                return -E2BIG;
        out = secure_alloc(size + 1);
        if (!out)
                return -ENOMEM;
        memcpy(out, text, n - 1);
        memcpy(out + n - 1, field, strlen(field));
        memcpy(out + n - 1 + strlen(field), e->password, RECOVERY_PASSWORD_LEN);
        memcpy(out + n - 1 + strlen(field) + RECOVERY_PASSWORD_LEN, "\"}\n", 4);
        *ret = out;
        if (ret_size)
                *ret_size = size;
        return 0;
}

/* A record with no secret in it, as text, malloc'd. */
static int format_record(json_object *o, char **ret) {
        char *text = json_format(o);

        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

int escrow_password_to_envelope(const EscrowPassword *e, X509 *dra_cert, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ char *fp_hex = NULL, *b64 = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        _cleanup_secure_ char *plain = NULL;
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        size_t plain_size, der_size;
        int r;

        if (!e || !dra_cert || !ret)
                return -EINVAL;
        if (!o)
                return -ENOMEM;
        /* Inside: the record the spool would hold, byte for byte. */
        r = escrow_password_to_json(e, &plain, &plain_size);
        if (r < 0)
                return r;
        r = dra_wrap(dra_cert, plain, plain_size, &der, &der_size);
        if (r < 0)
                return log_debug_errno(r, "Cannot encrypt the escrow record to the DRA certificate: %m");
        r = dra_cert_fingerprint(dra_cert, fp);
        if (r < 0)
                return r;
        fp_hex = dra_fingerprint_to_string(fp);
        b64 = base64_encode(der, der_size);
        if (!fp_hex || !b64)
                return -ENOMEM;

        r = password_add_metadata(o, ENVELOPE_TYPE, e);
        if (r >= 0)
                r = json_add_string(o, "dra_fingerprint", fp_hex);
        if (r >= 0)
                r = json_add_string(o, "record_cms", b64);
        return r < 0 ? r : format_record(o, ret);
}

int escrow_vmk_to_json(const char *hostname, const char *machine_id, const Guid *vmk_id, const char *export_json,
                       char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *export = NULL;
        char id[GUID_STRING_MAX];
        int r;

        if (!o)
                return -ENOMEM;
        r = json_parse_object(export_json, strlen(export_json), 8, &export);
        if (r < 0)
                return -EBADMSG;
        r = json_add_owned(o, "sealvol_escrow_version", json_object_new_int(ESCROW_RECORD_VERSION));
        if (r >= 0)
                r = json_add_string(o, "type", "vmk");
        if (r >= 0)
                r = json_add_string(o, "hostname", strempty(hostname));
        if (r >= 0 && machine_id)
                r = json_add_string(o, "machine_id", machine_id);
        if (r >= 0)
                r = json_add_string(o, "vmk_id", guid_format(vmk_id, id));
        if (r >= 0)
                r = json_add_owned(o, "vmk_export", TAKE_PTR(export));
        return r < 0 ? r : format_record(o, ret);
}

/* ---- reading records back ----------------------------------------------------------------------- */

/* A password record is flat; a VMK record holds the export document (docs/sealed-vmk.md). */
#define RECORD_DEPTH_MAX 8
#define PASSWORD_KEY "\"recovery_password\""
/* What json-c is shown instead of the password: same length, and not digits and dashes, so that it
 * can never be mistaken for one. */
#define PASSWORD_PLACEHOLDER_CHAR 'x'


void escrow_entry_done(EscrowEntry *e) {
        if (!e)
                return;
        free(e->hostname);
        free(e->machine_id);
        free(e->device);
        secure_free(e->password);
        *e = (EscrowEntry) {};
}

static bool is_json_space(char c) {
        return IN_SET(c, ' ', '\t', '\n', '\r');
}

/* json-c copies every string it parses into heap memory that it frees without wiping, so the password
 * must never reach it. The writer puts it in a member of its own as raw digits and dashes: that
 * member is found in the text, the password copied out into secure memory, and json-c is given a copy
 * of the text (secure memory too: it is the caller's secret) in which the value is a placeholder of
 * the same length. json-c therefore sees the writer's structure unchanged. Since the text must then
 * be strict JSON with exactly the writer's keys and no nested value, a '"recovery_password"' followed
 * by ':' can only be the top-level key (inside a string its closing quote would end that string);
 * the caller checks that json-c found the placeholder there. Without such a member, *ret_masked and
 * *ret_password are NULL. */
static int password_cut_out(const char *text, size_t size, char **ret_masked, char **ret_password) {
        _cleanup_secure_ char *masked = NULL, *password = NULL;
        const char *key = NULL, *end = text + size, *p;
        size_t value;

        for (p = text; (p = memmem(p, (size_t) (end - p), PASSWORD_KEY, strlen(PASSWORD_KEY))); p++) {
                if (key)
                        return log_debug_errno(EBADMSG, "Escrow record names recovery_password twice.");
                key = p;
        }
        if (!key) {
                *ret_masked = *ret_password = NULL;
                return 0;
        }

        p = key + strlen(PASSWORD_KEY);
        while (p < end && is_json_space(*p))
                p++;
        if (p >= end || *p != ':')
                return log_debug_errno(EBADMSG, "Escrow record: recovery_password is not a member.");
        p++;
        while (p < end && is_json_space(*p))
                p++;
        if ((size_t) (end - p) < RECOVERY_PASSWORD_LEN + 2 || p[0] != '"' || p[RECOVERY_PASSWORD_LEN + 1] != '"')
                return log_debug_errno(EBADMSG, "Escrow record: recovery_password is not a string of %d characters.",
                                       RECOVERY_PASSWORD_LEN);
        value = (size_t) (p + 1 - text);
        for (size_t i = 0; i < RECOVERY_PASSWORD_LEN; i++)
                if (!IN_SET(text[value + i], '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))
                        return log_debug_errno(EBADMSG, "Escrow record: recovery_password is not digits and dashes.");

        masked = secure_memdup(text, size);
        password = secure_alloc(RECOVERY_PASSWORD_LEN + 1);
        if (!masked || !password)
                return negative_errno();
        memcpy(password, text + value, RECOVERY_PASSWORD_LEN);
        memset(masked + value, PASSWORD_PLACEHOLDER_CHAR, RECOVERY_PASSWORD_LEN);
        *ret_masked = TAKE_PTR(masked);
        *ret_password = TAKE_PTR(password);
        return 0;
}

/* A string member of at most max bytes, printable UTF-8 (it is shown on terminals), maybe empty. */
static int dup_printable(json_object *o, const char *key, size_t max, char **ret) {
        const char *s = json_get_string(o, key);
        char *copy;

        if (!s || strlen(s) > max || !utf8_is_printable(s))
                return -EBADMSG;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

/* Exactly the spelling guid_format() writes (upper case, dashed). */
static int get_guid(json_object *o, const char *key, Guid *ret) {
        const char *s = json_get_string(o, key);
        char again[GUID_STRING_MAX];
        Guid g;

        if (!s || guid_parse(s, &g) < 0 || !streq(guid_format(&g, again), s))
                return -EBADMSG;
        *ret = g;
        return 0;
}

/* A LUKS2 UUID as libcryptsetup writes it: lower case, dashed. */
static int get_volume_uuid(json_object *o, const char *key, char ret[static GUID_STRING_MAX]) {
        const char *s = json_get_string(o, key);
        char again[GUID_STRING_MAX];
        Guid g;

        if (!s || guid_parse(s, &g) < 0)
                return -EBADMSG;
        guid_format(&g, again);
        for (char *c = again; *c; c++)
                if (*c >= 'A' && *c <= 'F')
                        *c = (char) (*c - 'A' + 'a');
        if (!streq(again, s))
                return -EBADMSG;
        memcpy(ret, again, GUID_STRING_MAX);
        return 0;
}

/* /etc/machine-id: 32 lower-case hex digits. */
static int get_machine_id(json_object *o, const char *key, char **ret) {
        const char *s = json_get_string(o, key);

        if (!s || strlen(s) != 32 || strspn(s, "0123456789abcdef") != 32)
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* The members password_add_metadata() writes. */
static int entry_parse_metadata(json_object *o, bool has_machine_id, EscrowEntry *e) {
        if (dup_printable(o, "hostname", ESCROW_HOSTNAME_MAX, &e->hostname) < 0)
                return log_debug_errno(EBADMSG, "Escrow record: bad hostname.");
        if (has_machine_id && get_machine_id(o, "machine_id", &e->machine_id) < 0)
                return log_debug_errno(EBADMSG, "Escrow record: bad machine_id.");
        if (get_volume_uuid(o, "volume_uuid", e->volume_uuid) < 0)
                return log_debug_errno(EBADMSG, "Escrow record: bad volume_uuid.");
        if (dup_printable(o, "device", PATH_MAX - 1, &e->device) < 0)
                return log_debug_errno(EBADMSG, "Escrow record: bad device.");
        if (get_guid(o, "key_id", &e->key_id) < 0 || guid_is_null(&e->key_id))
                return log_debug_errno(EBADMSG, "Escrow record: bad key_id.");
        if (get_guid(o, "vmk_id", &e->vmk_id) < 0)
                return log_debug_errno(EBADMSG, "Escrow record: bad vmk_id.");
        if (json_get_time(o, "created", &e->created) < 0)
                return log_debug_errno(EBADMSG, "Escrow record: bad created time.");
        return 0;
}

static int entry_parse_password(json_object *o, size_t size, char **password, EscrowEntry *e) {
        static const char *const keys[] = { "sealvol_escrow_version", "type", "hostname", "machine_id",
                                            "volume_uuid", "device", "key_id", "vmk_id", "created",
                                            "recovery_password", NULL };
        /* machine_id is absent when the server had none. */
        static const char *const keys_no_machine_id[] = { "sealvol_escrow_version", "type", "hostname",
                                                          "volume_uuid", "device", "key_id", "vmk_id",
                                                          "created", "recovery_password", NULL };
        bool has_machine_id = json_object_object_get_ex(o, "machine_id", NULL);
        const char *placeholder;
        int r;

        if (size > ESCROW_RECORD_MAX)
                return log_debug_errno(EBADMSG, "Escrow record of %zu bytes, larger than any we write.", size);
        if (json_check_keys(o, has_machine_id ? keys : keys_no_machine_id) < 0)
                return log_debug_errno(EBADMSG, "Escrow record has missing or unknown keys.");
        r = entry_parse_metadata(o, has_machine_id, e);
        if (r < 0)
                return r;

        /* The member json-c saw is the one that was cut out (see password_cut_out()). json-c also
         * takes single-quoted strings, in which '"' is not special: the text cut out could have been
         * inside one of the two free-form strings, so they must not name the member. */
        if (strstr(e->hostname, "recovery_password") || strstr(e->device, "recovery_password"))
                return log_debug_errno(EBADMSG, "Escrow record: recovery_password inside another member.");
        placeholder = json_get_string(o, "recovery_password");
        if (!*password || !placeholder || strlen(placeholder) != RECOVERY_PASSWORD_LEN ||
            strspn(placeholder, (char[]) { PASSWORD_PLACEHOLDER_CHAR, 0 }) != RECOVERY_PASSWORD_LEN)
                return log_debug_errno(EBADMSG, "Escrow record: recovery_password is not a raw string.");
        /* Every block a multiple of 11 and in range, and in the canonical form. */
        r = password_is_canonical(*password);
        if (r < 0)
                return log_debug_errno(EBADMSG, "Escrow record: the recovery password is not valid.");
        e->password = TAKE_PTR(*password);
        return 0;
}

static int entry_parse_vmk(json_object *o, const char *password, EscrowEntry *e) {
        static const char *const keys[] = { "sealvol_escrow_version", "type", "hostname", "machine_id", "vmk_id",
                                            "vmk_export", NULL };
        static const char *const keys_no_machine_id[] = { "sealvol_escrow_version", "type", "hostname", "vmk_id",
                                                          "vmk_export", NULL };
        bool has_machine_id = json_object_object_get_ex(o, "machine_id", NULL);
        json_object *v;

        if (password)
                return log_debug_errno(EBADMSG, "Escrow record of the VMK with a recovery password in it.");
        if (json_check_keys(o, has_machine_id ? keys : keys_no_machine_id) < 0)
                return log_debug_errno(EBADMSG, "VMK escrow record has missing or unknown keys.");
        if (dup_printable(o, "hostname", ESCROW_HOSTNAME_MAX, &e->hostname) < 0 ||
            (has_machine_id && get_machine_id(o, "machine_id", &e->machine_id) < 0) ||
            get_guid(o, "vmk_id", &e->vmk_id) < 0)
                return log_debug_errno(EBADMSG, "VMK escrow record: bad hostname, machine_id or vmk_id.");
        /* The export itself is vmk_import_dra()'s to check, with the key that opens it. */
        if (!json_object_object_get_ex(o, "vmk_export", &v) || !json_object_is_type(v, json_type_object))
                return log_debug_errno(EBADMSG, "VMK escrow record: vmk_export is not an object.");
        return 0;
}

static int entry_from_json(const char *text, size_t size, EVP_PKEY *dra_key, bool inside_cms, EscrowEntry *ret);

/* What the clear members of an envelope say is what the record inside says: anything else is damage
 * (or a forgery that would send the DRA holder to the wrong volume). */
static bool entry_metadata_equal(const EscrowEntry *a, const EscrowEntry *b) {
        return streq(a->hostname, b->hostname) && streq_ptr(a->machine_id, b->machine_id) &&
               streq(a->volume_uuid, b->volume_uuid) && streq(a->device, b->device) &&
               guid_equal(&a->key_id, &b->key_id) && guid_equal(&a->vmk_id, &b->vmk_id) &&
               a->created == b->created;
}

static int entry_parse_envelope(json_object *o, const char *password, EVP_PKEY *dra_key, EscrowEntry *e) {
        static const char *const keys[] = { "sealvol_escrow_version", "type", "hostname", "machine_id",
                                            "volume_uuid", "device", "key_id", "vmk_id", "created",
                                            "dra_fingerprint", "record_cms", NULL };
        static const char *const keys_no_machine_id[] = { "sealvol_escrow_version", "type", "hostname",
                                                          "volume_uuid", "device", "key_id", "vmk_id", "created",
                                                          "dra_fingerprint", "record_cms", NULL };
        bool has_machine_id = json_object_object_get_ex(o, "machine_id", NULL);
        _cleanup_(escrow_entry_done) EscrowEntry inner = {};
        _cleanup_secure_ void *plain = NULL;
        _cleanup_free_ void *der = NULL;
        _cleanup_free_ char *again = NULL;
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        const char *fp_hex, *b64;
        size_t der_size, plain_size;
        int r;

        if (password)
                return log_debug_errno(EBADMSG, "Encrypted escrow record with a recovery password in clear.");
        if (json_check_keys(o, has_machine_id ? keys : keys_no_machine_id) < 0)
                return log_debug_errno(EBADMSG, "Encrypted escrow record has missing or unknown keys.");
        r = entry_parse_metadata(o, has_machine_id, e);
        if (r < 0)
                return r;
        fp_hex = json_get_string(o, "dra_fingerprint");
        if (dra_fingerprint_from_string(fp_hex, fp) < 0 || !(again = dra_fingerprint_to_string(fp)) ||
            !streq(again, fp_hex))
                return log_debug_errno(EBADMSG, "Encrypted escrow record: bad dra_fingerprint.");
        b64 = json_get_string(o, "record_cms");
        if (!b64 || strlen(b64) > ESCROW_RECORD_FILE_MAX || base64_decode(b64, &der, &der_size) < 0 ||
            der_size == 0)
                return log_debug_errno(EBADMSG, "Encrypted escrow record: record_cms is not base64.");
        if (!dra_key)
                return log_debug_errno(ENOKEY, "Escrow record is encrypted to the DRA, and no DRA key was given.");

        r = dra_unwrap(dra_key, der, der_size, &plain, &plain_size);
        if (r < 0) /* dra_unwrap() said why */
                return r == -E2BIG ? -EBADMSG : r;
        r = entry_from_json(plain, plain_size, NULL, /* inside_cms= */ true, &inner);
        if (r < 0)
                return r;
        if (r != ESCROW_RECORD_PASSWORD || !entry_metadata_equal(e, &inner))
                return log_debug_errno(EBADMSG, "Encrypted escrow record: its clear members disagree with the "
                                       "record inside.");
        e->password = TAKE_PTR(inner.password);
        e->encrypted = true;
        return 0;
}

static int entry_from_json(const char *text, size_t size, EVP_PKEY *dra_key, bool inside_cms, EscrowEntry *ret) {
        _cleanup_(escrow_entry_done) EscrowEntry e = {};
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_secure_ char *masked = NULL, *password = NULL;
        const char *type;
        json_object *v;
        int64_t version;
        int r;

        if (!text || !ret)
                return -EINVAL;
        if (size == 0 || size > ESCROW_RECORD_FILE_MAX)
                return log_debug_errno(EBADMSG, "Escrow record of %zu bytes, refusing.", size);
        r = password_cut_out(text, size, &masked, &password);
        if (r < 0)
                return r;
        r = json_parse_object_strict(masked ?: text, size, RECORD_DEPTH_MAX, &o);
        if (r < 0)
                return log_debug_errno(r, "Escrow record is not one JSON object.");

        if (!json_object_object_get_ex(o, "sealvol_escrow_version", &v) || !json_object_is_type(v, json_type_int))
                return log_debug_errno(EBADMSG, "Escrow record without sealvol_escrow_version.");
        version = json_object_get_int64(v);
        if (version > ESCROW_RECORD_VERSION)
                return log_debug_errno(EPROTONOSUPPORT, "Escrow record of version %" PRIi64 ", newer than ours.",
                                       version);
        if (version != ESCROW_RECORD_VERSION)
                return log_debug_errno(EBADMSG, "Escrow record of version %" PRIi64 ".", version);

        type = json_get_string(o, "type");
        if (streq_ptr(type, ENVELOPE_TYPE)) {
                /* The envelope is for a hook; CMS inside CMS is nothing we write. */
                if (inside_cms)
                        return log_debug_errno(EBADMSG, "Encrypted escrow record inside an encrypted one.");
                r = entry_parse_envelope(o, password, dra_key, &e);
                if (r < 0)
                        return r;
                e.type = ESCROW_RECORD_PASSWORD;
                *ret = e;
                e = (EscrowEntry) {};
                return ret->type;
        }
        for (e.type = 0; e.type < _ESCROW_RECORD_TYPE_MAX; e.type++)
                if (streq_ptr(type, escrow_record_type_table[e.type]))
                        break;
        switch (e.type) {
        case ESCROW_RECORD_PASSWORD:
                r = entry_parse_password(o, size, &password, &e);
                break;
        case ESCROW_RECORD_VMK:
                r = entry_parse_vmk(o, password, &e);
                break;
        default:
                return log_debug_errno(EBADMSG, "Escrow record of an unknown type.");
        }
        if (r < 0)
                return r;

        *ret = e;
        e = (EscrowEntry) {};
        return ret->type;
}

int escrow_entry_from_json(const char *text, size_t size, EscrowEntry *ret) {
        return entry_from_json(text, size, /* dra_key= */ NULL, /* inside_cms= */ false, ret);
}

int escrow_entry_open(const void *data, size_t size, EVP_PKEY *dra_key, EscrowEntry *ret) {
        _cleanup_secure_ void *plain = NULL;
        size_t plain_size;
        int r;

        if ((!data && size > 0) || !ret)
                return -EINVAL;
        if (size == 0)
                return log_debug_errno(EBADMSG, "Empty escrow record.");
        /* DER starts with a SEQUENCE (0x30), our JSON with its object. */
        if (((const uint8_t *) data)[0] == '{')
                return entry_from_json(data, size, dra_key, /* inside_cms= */ false, ret);
        if (((const uint8_t *) data)[0] != 0x30)
                return log_debug_errno(EBADMSG, "Escrow record is neither CMS nor JSON.");
        if (!dra_key)
                return log_debug_errno(ENOKEY, "Escrow record is encrypted to the DRA, and no DRA key was given.");
        r = dra_unwrap(dra_key, data, size, &plain, &plain_size);
        if (r < 0) /* dra_unwrap() said why */
                return r == -E2BIG ? -EBADMSG : r;
        r = entry_from_json(plain, plain_size, /* dra_key= */ NULL, /* inside_cms= */ true, ret);
        if (r >= 0)
                ret->encrypted = true;
        return r;
}

int escrow_entry_open_file(const char *path, EVP_PKEY *dra_key, EscrowEntry *ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_secure_ uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (!path || !ret)
                return -EINVAL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_debug_errno(errno, "Cannot open %s: %m", path);
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return log_debug_errno(EISDIR, "%s is not a regular file.", path);
        if ((uintmax_t) st.st_size > ESCROW_RECORD_FILE_MAX)
                return log_debug_errno(EFBIG, "%s is larger than any escrow record.", path);

        /* A plain record is a secret. One byte more than allowed tells a file that grew. */
        buf = secure_alloc(ESCROW_RECORD_FILE_MAX + 1);
        if (!buf)
                return negative_errno();
        for (;;) {
                ssize_t k = read(fd, buf + n, ESCROW_RECORD_FILE_MAX + 1 - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return log_debug_errno(errno, "Cannot read %s: %m", path);
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > ESCROW_RECORD_FILE_MAX)
                        return log_debug_errno(EFBIG, "%s is larger than any escrow record.", path);
        }
        return escrow_entry_open(buf, n, dra_key, ret);
}

/* ---- the spool ---------------------------------------------------------------------------------- */

int escrow_spool_name(const char *volume_uuid, const Guid *key_id, bool encrypted, char **ret) {
        char g[GUID_STRING_MAX];

        if (!volume_uuid || strchr(volume_uuid, '/') || volume_uuid[0] == '.')
                return -EINVAL;
        if (asprintf(ret, "%s-%s.%s", volume_uuid, guid_format(key_id, g), encrypted ? "cms" : "json") < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int escrow_spool_name_parse(const char *name, Guid *ret_volume_uuid, Guid *ret_key_id, bool *ret_encrypted) {
        char uuid[GUID_STRING_MAX], key[GUID_STRING_MAX], again[GUID_STRING_MAX];
        const char *suffix;
        Guid u, k;

        /* "<volume uuid>-<KEY ID>.cms" or ".json", both 36 characters. */
        if (!name || strlen(name) < 2 * (GUID_STRING_MAX - 1) + 1 || name[GUID_STRING_MAX - 1] != '-')
                return -EINVAL;
        suffix = name + 2 * (GUID_STRING_MAX - 1) + 1;
        if (!streq(suffix, ".cms") && !streq(suffix, ".json"))
                return -EINVAL;
        memcpy(uuid, name, GUID_STRING_MAX - 1);
        uuid[GUID_STRING_MAX - 1] = '\0';
        memcpy(key, name + GUID_STRING_MAX, GUID_STRING_MAX - 1);
        key[GUID_STRING_MAX - 1] = '\0';
        if (guid_parse(uuid, &u) < 0 || guid_parse(key, &k) < 0 || !streq(guid_format(&k, again), key))
                return -EINVAL;
        if (ret_volume_uuid)
                *ret_volume_uuid = u;
        if (ret_key_id)
                *ret_key_id = k;
        if (ret_encrypted)
                *ret_encrypted = streq(suffix, ".cms");
        return 0;
}

static int spool_open_dir(const char *dir) {
        struct stat st;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_debug_errno(errno, "Cannot create the escrow spool %s: %m", dir);
        if (stat(dir, &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        /* Records are encrypted or the directory is the only thing between them and other users. */
        if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
                return log_debug_errno(EPERM, "The escrow spool %s is writable by others, refusing.", dir);
        return 0;
}

int escrow_spool_store(const char *dir, const char *name, X509 *dra_cert, const void *data, size_t size,
                       char **ret_path, bool *ret_verified) {
        _cleanup_free_ uint8_t *cms = NULL;
        _cleanup_free_ char *path = NULL;
        _cleanup_secure_ char *back = NULL;
        _cleanup_free_ char *plain_back = NULL;
        const void *content = data;
        size_t content_size = size, back_size = 0;
        int r;

        if (!dir || dir[0] != '/' || !name || strchr(name, '/') || size == 0 || size > ESCROW_RECORD_MAX)
                return -EINVAL;
        r = spool_open_dir(dir);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
                path = NULL;
                return -ENOMEM;
        }
        if (dra_cert) {
                r = dra_wrap(dra_cert, data, size, &cms, &content_size);
                if (r < 0)
                        return log_debug_errno(r, "Cannot encrypt the escrow record to the DRA certificate: %m");
                content = cms;
        }
        r = write_file_atomic(path, content, content_size, 0600);
        if (r < 0)
                return log_debug_errno(r, "Cannot write %s: %m", path);

        /* Read back what the disk holds: a full disk or a broken file system shows here, not on the
         * day the password is needed. A plain record is a secret: it is read into secure memory. */
        if (dra_cert) {
                r = read_file_full(path, ESCROW_RECORD_MAX * 4, &plain_back, &back_size);
                if (r >= 0)
                        r = back_size == content_size && memcmp(plain_back, content, back_size) == 0;
        } else {
                _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                ssize_t n;

                back = secure_alloc(size + 1);
                if (!back)
                        return -ENOMEM;
                if (fd < 0)
                        r = -errno;
                else {
                        n = read(fd, back, size + 1);
                        r = n < 0 ? -errno : (size_t) n == size && memeq_secure(back, data, size);
                }
        }
        if (r < 0)
                return log_debug_errno(r, "Cannot read back %s: %m", path);
        if (ret_verified)
                *ret_verified = r > 0;
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}

/* ---- encrypting what was written before the DRA ------------------------------------------------- */

#define SHRED_SUFFIX ".shred"

static bool is_shred_name(const char *name) {
        size_t n = strlen(name);

        return name[0] == '.' && n > strlen(SHRED_SUFFIX) + 1 && streq(name + n - strlen(SHRED_SUFFIX), SHRED_SUFFIX);
}

/* Overwrites the regular file name in dir_fd with zeros, syncs it, removes it and syncs the directory.
 * Gone already is fine: the last call got that far. */
static int shred_unlink(int dir_fd, const char *name) {
        static const uint8_t zeros[4096];
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        off_t left;

        fd = openat(dir_fd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        for (left = st.st_size; left > 0;) {
                ssize_t k = write(fd, zeros, MIN((size_t) left, sizeof(zeros)));

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                left -= k;
        }
        if (fdatasync(fd) < 0)
                return -errno;
        if (unlinkat(dir_fd, name, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync(dir_fd) < 0 ? -errno : 0;
}

/* One plain record: 1 encrypted, 0 left as it is (not a record its name says), or -errno. */
static int spool_encrypt_one(const char *dir, int dir_fd, const char *name, X509 *cert) {
        _cleanup_(escrow_entry_done) EscrowEntry e = {};
        _cleanup_free_ char *path = NULL, *cms_name = NULL, *shred = NULL;
        _cleanup_secure_ char *json = NULL;
        bool verified = false;
        Guid name_uuid, name_key_id, uuid;
        size_t size;
        int r;

        if (escrow_spool_name_parse(name, &name_uuid, &name_key_id, NULL) < 0 || asprintf(&path, "%s/%s", dir, name) < 0)
                return -ENOMEM;
        r = escrow_entry_open_file(path, /* dra_key= */ NULL, &e);
        if (r == -ENOMEM)
                return r;
        if (r != ESCROW_RECORD_PASSWORD || e.encrypted || guid_parse(e.volume_uuid, &uuid) < 0 ||
            !guid_equal(&uuid, &name_uuid) || !guid_equal(&e.key_id, &name_key_id))
                return log_debug_errno(0, "%s is not the plain record its name says, left as it is.", path);

        /* The record as the writer writes it: what was read is exactly that (escrow_entry_from_json()). */
        r = escrow_password_to_json(&(EscrowPassword) { .hostname = e.hostname,
                                                         .machine_id = e.machine_id,
                                                         .volume_uuid = e.volume_uuid,
                                                         .device = e.device,
                                                         .key_id = e.key_id,
                                                         .vmk_id = e.vmk_id,
                                                         .created = e.created,
                                                         .password = e.password },
                                    &json, &size);
        if (r < 0)
                return r;
        r = escrow_spool_name(e.volume_uuid, &e.key_id, /* encrypted= */ true, &cms_name);
        if (r < 0)
                return r;
        /* The Key ID names one password: a .cms of that name holds it already (escrowed again since). */
        if (faccessat(dir_fd, cms_name, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
                if (errno != ENOENT)
                        return -errno;
                r = escrow_spool_store(dir, cms_name, cert, json, size, NULL, &verified);
                if (r < 0)
                        return r;
                if (!verified)
                        return log_debug_errno(EIO, "%s/%s does not read back as written; the plain record stays.", dir,
                                               cms_name);
        }

        /* The plain name goes at once; the content, under a name of its own the next call finds. */
        if (asprintf(&shred, ".%s" SHRED_SUFFIX, name) < 0)
                return -ENOMEM;
        if (renameat(dir_fd, name, dir_fd, shred) < 0 || fsync(dir_fd) < 0)
                return -errno;
        r = shred_unlink(dir_fd, shred);
        if (r < 0)
                return r;
        return 1;
}

static int spool_encrypt_dir(const char *dir, X509 *cert, unsigned *n_encrypted, unsigned *n_skipped) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        int r, ret = 0;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((errno = 0, de = readdir(d))) {
                bool encrypted;

                if (is_shred_name(de->d_name))
                        r = shred_unlink(dirfd(d), de->d_name);
                else if (escrow_spool_name_parse(de->d_name, NULL, NULL, &encrypted) >= 0 && !encrypted)
                        r = spool_encrypt_one(dir, dirfd(d), de->d_name, cert);
                else
                        continue;
                if (r > 0)
                        (*n_encrypted)++;
                else if (r == 0 && !is_shred_name(de->d_name))
                        (*n_skipped)++;
                else if (r < 0 && ret == 0)
                        ret = r;
        }
        if (errno != 0 && ret == 0)
                ret = -errno;
        return ret;
}

int escrow_spool_encrypt_plain(const char *dir, X509 *dra_cert, unsigned *ret_encrypted, unsigned *ret_skipped) {
        _cleanup_free_ char *retired = NULL;
        unsigned encrypted = 0, skipped = 0;
        int r, k;

        if (!dir || dir[0] != '/' || !dra_cert)
                return -EINVAL;
        if (asprintf(&retired, "%s/retired", dir) < 0)
                return -ENOMEM;
        /* Retired records too: their volumes are gone, but a copy of a header may not be. */
        r = spool_encrypt_dir(dir, dra_cert, &encrypted, &skipped);
        k = spool_encrypt_dir(retired, dra_cert, &encrypted, &skipped);
        if (ret_encrypted)
                *ret_encrypted = encrypted;
        if (ret_skipped)
                *ret_skipped = skipped;
        return r < 0 ? r : k < 0 ? k : 0;
}

/* ---- the hook ----------------------------------------------------------------------------------- */

int escrow_hook_run(const char *path, const char *verb, const void *data, size_t size, unsigned timeout_sec,
                    char **ret_output, char **ret_error) {
        char *const argv[] = { (char *) path, (char *) verb, NULL };

        if (!path || path[0] != '/' || !verb)
                return -EINVAL;
        return spawn_run(argv, data, size, timeout_sec ?: ESCROW_HOOK_TIMEOUT_SEC_DEFAULT, ret_output, ret_error);
}
