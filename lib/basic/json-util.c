/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* json-util.c: json-c helpers shared by the strict on-disk formats (see json-util.h). */

#include <string.h>
#include <time.h>

#include "encoding.h"
#include "json-util.h"

int json_add_owned(json_object *o, const char *key, json_object *v) {
        if (!v)
                return -ENOMEM;
        if (json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

int json_add_string(json_object *o, const char *key, const char *value) {
        if (!value)
                return -ENOMEM;
        return json_add_owned(o, key, json_object_new_string(value));
}

int json_add_hex(json_object *o, const char *key, const void *data, size_t size) {
        _cleanup_free_ char *hex = hex_encode(data, size);
        return json_add_string(o, key, hex);
}

int json_add_base64(json_object *o, const char *key, const void *data, size_t size) {
        _cleanup_free_ char *b64 = base64_encode(data, size);
        return json_add_string(o, key, b64);
}

int json_add_time(json_object *o, const char *key, uint64_t seconds) {
        char buf[sizeof("YYYY-MM-DDTHH:MM:SSZ") + 16];
        time_t t = (time_t) seconds;
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                return -EINVAL;
        return json_add_string(o, key, buf);
}

const char *json_get_string(json_object *o, const char *key) {
        const char *s;
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        s = json_object_get_string(v);
        /* A \u0000 inside would silently cut the string short for every C consumer: refused. */
        if ((size_t) json_object_get_string_len(v) != strlen(s))
                return NULL;
        return s;
}

int json_get_time(json_object *o, const char *key, uint64_t *ret) {
        const char *s = json_get_string(o, key), *end;
        struct tm tm = {};
        time_t t;

        if (!s)
                return -EBADMSG;
        end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end != '\0')
                return -EBADMSG;
        t = timegm(&tm);
        if (t < 0)
                return -EBADMSG;
        /* Only the one spelling we write: strptime() also takes "2026-1-3T1:2:3Z" and "02-30". */
        char again[sizeof("YYYY-MM-DDTHH:MM:SSZ") + 16];
        struct tm back;
        if (!gmtime_r(&t, &back) || strftime(again, sizeof(again), "%Y-%m-%dT%H:%M:%SZ", &back) == 0 ||
            !streq(again, s))
                return -EBADMSG;
        *ret = (uint64_t) t;
        return 0;
}

int json_get_u64_string(json_object *o, const char *key, uint64_t *ret) {
        const char *s = json_get_string(o, key);
        uint64_t v = 0;

        if (!s || !*s || (s[0] == '0' && s[1]) || strlen(s) > 20)
                return -EBADMSG;
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t) (*s - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (*s - '0');
        }
        *ret = v;
        return 0;
}

static int parse_object(const char *text, size_t size, int max_depth, int flags, json_object **ret) {
        json_tokener *tok;
        json_object *o;
        bool ok;

        if (size > INT32_MAX)
                return -EBADMSG;
        tok = json_tokener_new_ex(max_depth);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, flags);
        o = json_tokener_parse_ex(tok, text, (int) size);
        ok = json_tokener_get_error(tok) == json_tokener_success && (size_t) json_tokener_get_parse_end(tok) == size;
        json_tokener_free(tok);
        if (!ok || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int json_parse_object(const char *text, size_t size, int max_depth, json_object **ret) {
        return parse_object(text, size, max_depth, /* flags= */ 0, ret);
}

int json_parse_object_strict(const char *text, size_t size, int max_depth, json_object **ret) {
        return parse_object(text, size, max_depth, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8, ret);
}

int json_check_keys(json_object *o, const char *const *keys) {
        size_t n = 0;

        for (; keys[n]; n++)
                if (!json_object_object_get_ex(o, keys[n], NULL))
                        return -EBADMSG;
        return json_object_object_length(o) == (int) n ? 0 : -EBADMSG;
}

char *json_format(json_object *o) {
        const char *s = json_object_to_json_string_ext(
                o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
        return s ? strdup(s) : NULL;
}
