/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volume-token.c: the "sealvol" LUKS2 token, to and from JSON (docs/token-format.md).
 *
 * The parser is strict: it accepts exactly what volume_token_to_json() writes for this version, so
 * a damaged or forged token is refused instead of half-understood.
 */

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <string.h>

#include "encoding.h"
#include "json-util.h"
#include "secmem.h"
#include "volume.h"

static const char *const protector_type_table[_PROTECTOR_TYPE_MAX] = {
        [PROTECTOR_TPM] = "tpm",
        [PROTECTOR_RECOVERY] = "recovery",
        [PROTECTOR_DRA] = "dra",
};

static const char *const escrow_state_table[_ESCROW_STATE_MAX] = {
        [ESCROW_PENDING] = "pending",
        [ESCROW_DONE] = "done",
        [ESCROW_FAILED] = "failed",
};

const char *protector_type_to_string(ProtectorType t) {
        return t >= 0 && t < _PROTECTOR_TYPE_MAX ? protector_type_table[t] : NULL;
}

ProtectorType protector_type_from_string(const char *s) {
        for (int i = 0; i < _PROTECTOR_TYPE_MAX; i++)
                if (streq_ptr(s, protector_type_table[i]))
                        return i;
        return _PROTECTOR_TYPE_INVALID;
}

const char *escrow_state_to_string(EscrowState s) {
        return s >= 0 && s < _ESCROW_STATE_MAX ? escrow_state_table[s] : NULL;
}

static EscrowState escrow_state_from_string(const char *s) {
        for (int i = 0; i < _ESCROW_STATE_MAX; i++)
                if (streq_ptr(s, escrow_state_table[i]))
                        return i;
        return _ESCROW_STATE_INVALID;
}

void protector_done(Protector *p) {
        free(p->dra_cms);
        free(p->wrapped_password);
        p->dra_cms = p->wrapped_password = NULL;
        p->dra_cms_size = p->wrapped_password_size = 0;
}

const EscrowRecord *protector_get_escrow(const Protector *p, const char *target) {
        for (size_t i = 0; i < p->n_escrow; i++)
                if (streq(p->escrow[i].target, target))
                        return &p->escrow[i];
        return NULL;
}

int escrow_records_set(EscrowRecord records[static ESCROW_RECORDS_MAX], size_t *n, const EscrowRecord *e) {
        if (strlen(e->target) == 0 || e->state < 0 || e->state >= _ESCROW_STATE_MAX)
                return -EINVAL;
        for (size_t i = 0; i < *n; i++)
                if (streq(records[i].target, e->target)) {
                        records[i] = *e;
                        return 0;
                }
        if (*n >= ESCROW_RECORDS_MAX)
                return -E2BIG;
        records[(*n)++] = *e;
        return 0;
}

int protector_set_escrow(Protector *p, const EscrowRecord *e) {
        return escrow_records_set(p->escrow, &p->n_escrow, e);
}

void volume_token_done(VolumeToken *t) {
        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++)
                protector_done(&t->protectors[i]);
        protector_done(&t->pending);
}

/* ---- writing ------------------------------------------------------------------------------------ */

int escrow_record_to_json(const EscrowRecord *e, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "target", e->target)) < 0 ||
            (r = json_add_string(o, "state", escrow_state_table[e->state])) < 0 ||
            (r = json_add_time(o, "time", e->time)) < 0 ||
            (r = json_add_owned(o, "verified", json_object_new_boolean(e->verified))) < 0 ||
            (r = json_add_string(o, "location", e->location)) < 0)
                return r;
        *ret = TAKE_PTR(o);
        return 0;
}

int escrow_records_to_json(const EscrowRecord *records, size_t n, json_object *o, const char *key) {
        json_object *a;
        int r;

        r = json_add_owned(o, key, a = json_object_new_array());
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                json_object *e;

                r = escrow_record_to_json(&records[i], &e);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }
        return 0;
}

static int protector_to_json(const Protector *p, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char id[GUID_STRING_MAX];
        int r;

        if (!o)
                return -ENOMEM;
        if ((r = json_add_string(o, "type", protector_type_to_string(p->type))) < 0 ||
            (r = json_add_owned(o, "keyslot", json_object_new_int(p->keyslot))) < 0 ||
            (r = json_add_string(o, "key_id", guid_format(&p->key_id, id))) < 0 ||
            (r = json_add_time(o, "created", p->created)) < 0)
                return r;

        if (p->type == PROTECTOR_RECOVERY) {
                r = escrow_records_to_json(p->escrow, p->n_escrow, o, "escrow");
                if (r < 0)
                        return r;
                /* An empty string when absent. */
                r = json_add_base64(o, "wrapped_password", p->wrapped_password, p->wrapped_password_size);
                if (r < 0)
                        return r;
        } else if (p->type == PROTECTOR_DRA) {
                if ((r = json_add_hex(o, "dra_fingerprint", p->dra_fingerprint, sizeof(p->dra_fingerprint))) < 0 ||
                    (r = json_add_base64(o, "dra_cms", p->dra_cms, p->dra_cms_size)) < 0)
                        return r;
        }

        *ret = TAKE_PTR(o);
        return 0;
}

static int array_add_protector(json_object *a, const Protector *p) {
        json_object *o;
        int r;

        r = protector_to_json(p, &o);
        if (r < 0)
                return r;
        if (json_object_array_add(a, o) < 0) {
                json_object_put(o);
                return -ENOMEM;
        }
        return 0;
}

int volume_token_to_json(const VolumeToken *t, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *keyslots, *protectors, *pending, *retiring, *server;
        char id[GUID_STRING_MAX];
        char *s;
        int r;

        if (!o)
                return -ENOMEM;

        /* LUKS2's own fields first: the token type and the keyslots it describes (LUKS2 on-disk
         * format, "tokens"). Only live protectors: a pending keyslot is not trusted yet. */
        if ((r = json_add_string(o, "type", VOLUME_TOKEN_TYPE)) < 0 ||
            (r = json_add_owned(o, "keyslots", keyslots = json_object_new_array())) < 0)
                return r;
        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++) {
                char slot[16];

                if (!t->has[i])
                        continue;
                snprintf(slot, sizeof(slot), "%d", t->protectors[i].keyslot);
                if (json_object_array_add(keyslots, json_object_new_string(slot)) < 0)
                        return -ENOMEM;
        }

        if ((r = json_add_owned(o, "sealvol_version", json_object_new_int(VOLUME_TOKEN_VERSION))) < 0 ||
            (r = json_add_string(o, "volume_uuid", t->volume_uuid)) < 0 ||
            (r = json_add_string(o, "vmk_id", guid_format(&t->vmk_id, id))) < 0 ||
            (r = json_add_string(o, "hostname", t->hostname)) < 0 ||
            (r = json_add_time(o, "created", t->created)) < 0 ||
            (r = json_add_time(o, "updated", t->updated)) < 0 ||
            (r = json_add_owned(o, "protectors", protectors = json_object_new_array())) < 0 ||
            (r = json_add_owned(o, "pending", pending = json_object_new_array())) < 0 ||
            (r = json_add_owned(o, "retiring", retiring = json_object_new_array())) < 0 ||
            (r = json_add_owned(o, "server_recovery", server = json_object_new_array())) < 0 ||
            (r = json_add_hex(o, "mac", t->mac, sizeof(t->mac))) < 0)
                return r;
        if (t->has_server_wrap) {
                json_object *w = json_object_new_object();

                if (!w || json_object_array_add(server, w) < 0) {
                        json_object_put(w);
                        return -ENOMEM;
                }
                if ((r = json_add_string(w, "key_id", guid_format(&t->server_key_id, id))) < 0 ||
                    (r = json_add_base64(w, "wrapped_vmk", t->server_wrap, sizeof(t->server_wrap))) < 0)
                        return r;
        }

        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++)
                if (t->has[i] && (r = array_add_protector(protectors, &t->protectors[i])) < 0)
                        return r;
        if (t->has_pending && (r = array_add_protector(pending, &t->pending)) < 0)
                return r;
        for (size_t i = 0; i < t->n_retiring; i++)
                if (json_object_array_add(retiring, json_object_new_int(t->retiring[i])) < 0)
                        return -ENOMEM;

        s = json_format(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* ---- reading ------------------------------------------------------------------------------------ */

static int get_int(json_object *o, const char *key, int64_t min, int64_t max, int64_t *ret) {
        json_object *v;
        int64_t i;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        i = json_object_get_int64(v);
        if (i < min || i > max)
                return -EBADMSG;
        *ret = i;
        return 0;
}

static int get_array(json_object *o, const char *key, size_t max, json_object **ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array) ||
            json_object_array_length(v) > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int copy_string(json_object *o, const char *key, char *buf, size_t size, bool allow_empty) {
        const char *s = json_get_string(o, key);
        size_t n;

        if (!s)
                return -EBADMSG;
        n = strlen(s);
        if (n >= size || (n == 0 && !allow_empty))
                return -EBADMSG;
        memcpy(buf, s, n + 1);
        return 0;
}

int escrow_record_from_json(json_object *o, EscrowRecord *ret) {
        static const char *const keys[] = { "target", "state", "time", "verified", "location", NULL };
        EscrowRecord e = {};
        json_object *v;

        if (!json_object_is_type(o, json_type_object) || json_check_keys(o, keys) < 0)
                return -EBADMSG;
        if (copy_string(o, "target", e.target, sizeof(e.target), false) < 0 ||
            !IN_SET(true, streq(e.target, "ad"), streq(e.target, "spool"), streq(e.target, "hook")) ||
            copy_string(o, "location", e.location, sizeof(e.location), true) < 0 ||
            json_get_time(o, "time", &e.time) < 0)
                return -EBADMSG;
        e.state = escrow_state_from_string(json_get_string(o, "state"));
        if (e.state < 0)
                return -EBADMSG;
        if (!json_object_object_get_ex(o, "verified", &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        e.verified = json_object_get_boolean(v);
        *ret = e;
        return 0;
}

int escrow_records_from_json(json_object *o, const char *key, EscrowRecord records[static ESCROW_RECORDS_MAX],
                             size_t *ret_n) {
        json_object *a;
        size_t n;

        if (get_array(o, key, ESCROW_RECORDS_MAX, &a) < 0)
                return -EBADMSG;
        n = json_object_array_length(a);
        for (size_t i = 0; i < n; i++) {
                if (escrow_record_from_json(json_object_array_get_idx(a, i), &records[i]) < 0)
                        return -EBADMSG;
                /* One record per target. */
                for (size_t j = 0; j < i; j++)
                        if (streq(records[j].target, records[i].target))
                                return -EBADMSG;
        }
        *ret_n = n;
        return 0;
}

static int protector_from_json(json_object *o, unsigned version, Protector *ret, bool *ret_had_wrapped_vmk) {
        static const char *const keys_tpm[] = { "type", "keyslot", "key_id", "created", NULL };
        static const char *const keys_recovery[] = { "type",   "keyslot",          "key_id", "created",
                                                     "escrow", "wrapped_password", NULL };
        static const char *const keys_recovery_v1[] = { "type",   "keyslot",          "key_id",      "created",
                                                        "escrow", "wrapped_password", "wrapped_vmk", NULL };
        static const char *const keys_dra[] = { "type",    "keyslot",         "key_id",
                                                "created", "dra_fingerprint", "dra_cms", NULL };
        _cleanup_free_ void *cms = NULL, *wpw = NULL, *wvmk = NULL;
        Protector p = {};
        size_t wvmk_size;
        int64_t slot;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        p.type = protector_type_from_string(json_get_string(o, "type"));
        if (p.type < 0)
                return -EBADMSG;
        r = json_check_keys(o, p.type == PROTECTOR_TPM                       ? keys_tpm :
                               p.type == PROTECTOR_RECOVERY && version < 2 ? keys_recovery_v1 :
                               p.type == PROTECTOR_RECOVERY                ? keys_recovery :
                                                                             keys_dra);
        if (r < 0)
                return r;
        if (get_int(o, "keyslot", 0, VOLUME_KEYSLOT_MAX - 1, &slot) < 0 ||
            guid_parse(json_get_string(o, "key_id"), &p.key_id) < 0 || json_get_time(o, "created", &p.created) < 0)
                return -EBADMSG;
        p.keyslot = (int) slot;

        if (p.type == PROTECTOR_RECOVERY) {
                if (escrow_records_from_json(o, "escrow", p.escrow, &p.n_escrow) < 0)
                        return -EBADMSG;
                if (base64_decode(json_get_string(o, "wrapped_password"), &wpw, &p.wrapped_password_size) < 0)
                        return -EBADMSG;
                p.wrapped_password = p.wrapped_password_size > 0 ? TAKE_PTR(wpw) : NULL;
                /* Version 1's copy of the VMK under this disk's password is read to be dropped: the
                 * upgrade writes a token without it. */
                if (version < 2) {
                        if (base64_decode(json_get_string(o, "wrapped_vmk"), &wvmk, &wvmk_size) < 0) {
                                protector_done(&p);
                                return -EBADMSG;
                        }
                        if (ret_had_wrapped_vmk && wvmk_size > 0)
                                *ret_had_wrapped_vmk = true;
                }
        } else if (p.type == PROTECTOR_DRA) {
                if (hex_decode_fixed(json_get_string(o, "dra_fingerprint"), p.dra_fingerprint,
                                     sizeof(p.dra_fingerprint)) < 0 ||
                    base64_decode(json_get_string(o, "dra_cms"), &cms, &p.dra_cms_size) < 0 ||
                    p.dra_cms_size == 0)
                        return -EBADMSG;
                p.dra_cms = TAKE_PTR(cms);
        }

        *ret = p;
        return 0;
}

static bool is_canonical_uuid(const char *s) {
        if (strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++)
                if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' :
                                                              !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

/* "server_recovery": [] or [ { "key_id": GUID, "wrapped_vmk": base64 of VOLUME_SERVER_WRAP_SIZE bytes } ] */
static int server_wrap_parse(json_object *o, VolumeToken *t) {
        static const char *const keys[] = { "key_id", "wrapped_vmk", NULL };
        _cleanup_free_ void *w = NULL;
        json_object *a, *e;
        size_t n;

        if (get_array(o, "server_recovery", 1, &a) < 0)
                return -EBADMSG;
        if (json_object_array_length(a) == 0)
                return 0;
        e = json_object_array_get_idx(a, 0);
        if (!json_object_is_type(e, json_type_object) || json_check_keys(e, keys) < 0 ||
            guid_parse(json_get_string(e, "key_id"), &t->server_key_id) < 0 || guid_is_null(&t->server_key_id) ||
            base64_decode(json_get_string(e, "wrapped_vmk"), &w, &n) < 0 || n != sizeof(t->server_wrap))
                return -EBADMSG;
        memcpy(t->server_wrap, w, n);
        t->has_server_wrap = true;
        return 0;
}

static int token_parse(json_object *o, VolumeToken *t) {
        static const char *const keys_v1[] = { "type",     "keyslots", "sealvol_version", "volume_uuid",
                                               "vmk_id",   "hostname", "created",         "updated",
                                               "protectors", "pending", "retiring",       NULL };
        static const char *const keys[] = { "type",       "keyslots", "sealvol_version", "volume_uuid",
                                            "vmk_id",     "hostname", "created",         "updated",
                                            "protectors", "pending",  "retiring",        "server_recovery",
                                            "mac",        NULL };
        json_object *keyslots, *protectors, *pending, *retiring;
        uint32_t used = 0, listed = 0;
        int64_t version;

        if (!streq_ptr(json_get_string(o, "type"), VOLUME_TOKEN_TYPE))
                return -EBADMSG;
        if (get_int(o, "sealvol_version", 1, INT32_MAX, &version) < 0)
                return -EBADMSG;
        if (version > VOLUME_TOKEN_VERSION)
                return -EPROTONOSUPPORT;
        t->version = (unsigned) version;
        if (json_check_keys(o, version < 2 ? keys_v1 : keys) < 0)
                return -EBADMSG;
        if (version >= 2 && (server_wrap_parse(o, t) < 0 ||
                             hex_decode_fixed(json_get_string(o, "mac"), t->mac, sizeof(t->mac)) < 0))
                return -EBADMSG;

        if (copy_string(o, "volume_uuid", t->volume_uuid, sizeof(t->volume_uuid), false) < 0 ||
            !is_canonical_uuid(t->volume_uuid) || guid_parse(json_get_string(o, "vmk_id"), &t->vmk_id) < 0 ||
            copy_string(o, "hostname", t->hostname, sizeof(t->hostname), true) < 0 ||
            json_get_time(o, "created", &t->created) < 0 || json_get_time(o, "updated", &t->updated) < 0)
                return -EBADMSG;

        if (get_array(o, "protectors", _PROTECTOR_TYPE_MAX, &protectors) < 0 ||
            get_array(o, "pending", 1, &pending) < 0 || get_array(o, "retiring", VOLUME_KEYSLOT_MAX, &retiring) < 0 ||
            get_array(o, "keyslots", _PROTECTOR_TYPE_MAX, &keyslots) < 0)
                return -EBADMSG;

        for (size_t i = 0; i < json_object_array_length(protectors); i++) {
                Protector p;

                if (protector_from_json(json_object_array_get_idx(protectors, i), t->version, &p,
                                        &t->had_v1_wrapped_vmk) < 0)
                        return -EBADMSG;
                /* One protector of each type, one protector per keyslot. */
                if (t->has[p.type] || (used & (UINT32_C(1) << p.keyslot))) {
                        protector_done(&p);
                        return -EBADMSG;
                }
                used |= UINT32_C(1) << p.keyslot;
                t->protectors[p.type] = p;
                t->has[p.type] = true;
        }
        if (!t->has[PROTECTOR_TPM] && !t->has[PROTECTOR_RECOVERY] && !t->has[PROTECTOR_DRA])
                return -EBADMSG;

        if (json_object_array_length(pending) == 1) {
                if (protector_from_json(json_object_array_get_idx(pending, 0), t->version, &t->pending,
                                        &t->had_v1_wrapped_vmk) < 0)
                        return -EBADMSG;
                t->has_pending = true;
                if (used & (UINT32_C(1) << t->pending.keyslot))
                        return -EBADMSG;
                used |= UINT32_C(1) << t->pending.keyslot;
        }

        t->n_retiring = json_object_array_length(retiring);
        for (size_t i = 0; i < t->n_retiring; i++) {
                json_object *v = json_object_array_get_idx(retiring, i);
                int64_t slot;

                if (!json_object_is_type(v, json_type_int))
                        return -EBADMSG;
                slot = json_object_get_int64(v);
                if (slot < 0 || slot >= VOLUME_KEYSLOT_MAX || (used & (UINT32_C(1) << slot)))
                        return -EBADMSG;
                used |= UINT32_C(1) << slot;
                t->retiring[i] = (int) slot;
        }

        /* LUKS2's keyslot list must name exactly the live protectors' keyslots. */
        for (size_t i = 0; i < json_object_array_length(keyslots); i++) {
                const char *s = json_object_get_string(json_object_array_get_idx(keyslots, i));
                char *end;
                long slot;

                if (!json_object_is_type(json_object_array_get_idx(keyslots, i), json_type_string) || isempty(s))
                        return -EBADMSG;
                errno = 0;
                slot = strtol(s, &end, 10);
                if (errno != 0 || *end != '\0' || slot < 0 || slot >= VOLUME_KEYSLOT_MAX ||
                    (listed & (UINT32_C(1) << slot)))
                        return -EBADMSG;
                listed |= UINT32_C(1) << slot;
        }
        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++)
                if (t->has[i])
                        listed ^= UINT32_C(1) << t->protectors[i].keyslot;
        if (listed != 0)
                return -EBADMSG;

        return 0;
}

int volume_token_from_json(const char *json, size_t size, const char *header_uuid, VolumeToken *ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        VolumeToken t = {};
        int r;

        if (size > VOLUME_TOKEN_SIZE_MAX)
                return -EBADMSG;
        /* token -> protectors -> protector -> escrow -> record: 5 levels, and one for the parser. */
        r = json_parse_object(json, size, 6, &o);
        if (r < 0)
                return r;
        r = token_parse(o, &t);
        if (r < 0) {
                volume_token_done(&t);
                return r;
        }
        /* A token copied from another volume: its protectors open nothing here, and trusting its
         * metadata would misreport the volume. */
        if (header_uuid && !streq(header_uuid, t.volume_uuid)) {
                volume_token_done(&t);
                return -EXDEV;
        }
        *ret = t;
        return 0;
}

/* ---- the MAC ------------------------------------------------------------------------------------ */

#define TOKEN_MAC_LABEL "sealvol token mac v2"

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MAC *, EVP_MAC_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MAC_CTX *, EVP_MAC_CTX_free);

/* The fields go in one fixed binary order, each length-prefixed, so no two tokens share an encoding
 * and nothing depends on how json-c spells JSON. Little-endian throughout. */
static bool mac_u64(EVP_MAC_CTX *c, uint64_t v, size_t width) {
        uint8_t b[8];

        for (size_t i = 0; i < width; i++)
                b[i] = (uint8_t) (v >> (8 * i));
        return EVP_MAC_update(c, b, width) == 1;
}

static bool mac_bytes(EVP_MAC_CTX *c, const void *p, size_t n) {
        return mac_u64(c, n, 4) && (n == 0 || EVP_MAC_update(c, p, n) == 1);
}

static bool mac_string(EVP_MAC_CTX *c, const char *s) {
        return mac_bytes(c, s, strlen(s));
}

static bool mac_protector(EVP_MAC_CTX *c, const Protector *p) {
        bool ok = mac_u64(c, (uint64_t) p->type, 4) && mac_u64(c, (uint64_t) p->keyslot, 4) &&
                  EVP_MAC_update(c, p->key_id.bytes, sizeof(p->key_id.bytes)) == 1 && mac_u64(c, p->created, 8);

        if (ok && p->type == PROTECTOR_RECOVERY) {
                ok = mac_u64(c, p->n_escrow, 4);
                for (size_t i = 0; ok && i < p->n_escrow; i++)
                        ok = mac_string(c, p->escrow[i].target) && mac_u64(c, (uint64_t) p->escrow[i].state, 4) &&
                             mac_u64(c, p->escrow[i].time, 8) && mac_u64(c, p->escrow[i].verified, 1) &&
                             mac_string(c, p->escrow[i].location);
                ok = ok && mac_bytes(c, p->wrapped_password, p->wrapped_password_size);
        } else if (ok && p->type == PROTECTOR_DRA)
                ok = EVP_MAC_update(c, p->dra_fingerprint, sizeof(p->dra_fingerprint)) == 1 &&
                     mac_bytes(c, p->dra_cms, p->dra_cms_size);
        return ok;
}

int volume_token_mac(const VolumeToken *t, const uint8_t vmk[static VMK_SIZE], uint8_t ret[static VOLUME_TOKEN_MAC_SIZE]) {
        _cleanup_(EVP_MAC_freep) EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        _cleanup_(EVP_MAC_CTX_freep) EVP_MAC_CTX *c = NULL;
        _cleanup_secure_ uint8_t *key = NULL;
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
                OSSL_PARAM_construct_end(),
        };
        size_t n = 0;
        bool ok;
        int r;

        if (!mac)
                return -EOPNOTSUPP;
        c = EVP_MAC_CTX_new(mac);
        if (!c)
                return -ENOMEM;
        /* Per volume: the UUID is the salt, as for the tpm keyslot's passphrase. */
        r = vmk_derive_key(vmk, t->volume_uuid, TOKEN_MAC_LABEL, &key);
        if (r < 0)
                return r;
        if (EVP_MAC_init(c, key, 32, params) != 1)
                return -EIO;

        ok = mac_bytes(c, TOKEN_MAC_LABEL, sizeof(TOKEN_MAC_LABEL)) && mac_u64(c, VOLUME_TOKEN_VERSION, 4) &&
             mac_string(c, t->volume_uuid) && EVP_MAC_update(c, t->vmk_id.bytes, sizeof(t->vmk_id.bytes)) == 1 &&
             mac_string(c, t->hostname) && mac_u64(c, t->created, 8) && mac_u64(c, t->updated, 8);
        for (size_t i = 0; ok && i < _PROTECTOR_TYPE_MAX; i++)
                ok = mac_u64(c, t->has[i], 1) && (!t->has[i] || mac_protector(c, &t->protectors[i]));
        ok = ok && mac_u64(c, t->has_pending, 1) && (!t->has_pending || mac_protector(c, &t->pending)) &&
             mac_u64(c, t->n_retiring, 4);
        for (size_t i = 0; ok && i < t->n_retiring; i++)
                ok = mac_u64(c, (uint64_t) t->retiring[i], 4);
        ok = ok && mac_u64(c, t->has_server_wrap, 1) &&
             (!t->has_server_wrap || (EVP_MAC_update(c, t->server_key_id.bytes, sizeof(t->server_key_id.bytes)) == 1 &&
                                      mac_bytes(c, t->server_wrap, sizeof(t->server_wrap))));
        if (!ok || EVP_MAC_final(c, ret, &n, VOLUME_TOKEN_MAC_SIZE) != 1 || n != VOLUME_TOKEN_MAC_SIZE)
                return -EIO;
        return 0;
}
