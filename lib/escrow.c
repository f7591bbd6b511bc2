/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* escrow.c: the escrow record, the spool and the hook (see escrow.h). */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dra.h"
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

int escrow_password_to_json(const EscrowPassword *e, char **ret, size_t *ret_size) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        static const char field[] = ",\"recovery_password\":\"";
        char key_id[GUID_STRING_MAX], vmk_id[GUID_STRING_MAX];
        _cleanup_free_ char *text = NULL;
        char *out;
        size_t n, size;
        int r;

        if (!o)
                return -ENOMEM;
        r = password_is_canonical(e->password);
        if (r < 0)
                return r;

        r = json_add_owned(o, "sealvol_escrow_version", json_object_new_int(ESCROW_RECORD_VERSION));
        if (r >= 0)
                r = json_add_string(o, "type", "recovery-password");
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

int escrow_vmk_to_json(const char *hostname, const char *machine_id, const Guid *vmk_id, const char *export_json,
                       char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *export = NULL;
        char id[GUID_STRING_MAX];
        char *text;
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
        if (r < 0)
                return r;
        text = json_format(o);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
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

/* ---- the hook ----------------------------------------------------------------------------------- */

int escrow_hook_run(const char *path, const char *verb, const void *data, size_t size, unsigned timeout_sec,
                    char **ret_output, char **ret_error) {
        char *const argv[] = { (char *) path, (char *) verb, NULL };

        if (!path || path[0] != '/' || !verb)
                return -EINVAL;
        return spawn_run(argv, data, size, timeout_sec ?: ESCROW_HOOK_TIMEOUT_SEC_DEFAULT, ret_output, ret_error);
}
