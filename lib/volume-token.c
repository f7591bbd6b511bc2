/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volume-token.c: the "sealvol" LUKS2 token, to and from JSON (docs/token-format.md).
 *
 * The parser is strict: it accepts exactly what volume_token_to_json() writes for this version, so
 * a damaged or forged token is refused instead of half-understood.
 */

#include <string.h>

#include "encoding.h"
#include "json-util.h"
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
        free(p->wrapped_vmk);
        p->dra_cms = p->wrapped_password = p->wrapped_vmk = NULL;
        p->dra_cms_size = p->wrapped_password_size = p->wrapped_vmk_size = 0;
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
                /* Empty strings when absent. */
                if ((r = json_add_base64(o, "wrapped_password", p->wrapped_password, p->wrapped_password_size)) < 0 ||
                    (r = json_add_base64(o, "wrapped_vmk", p->wrapped_vmk, p->wrapped_vmk_size)) < 0)
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
        json_object *keyslots, *protectors, *pending, *retiring;
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

        if ((r = json_add_owned(o, "sealvol_version", json_object_new_int((int32_t) t->version))) < 0 ||
            (r = json_add_string(o, "volume_uuid", t->volume_uuid)) < 0 ||
            (r = json_add_string(o, "vmk_id", guid_format(&t->vmk_id, id))) < 0 ||
            (r = json_add_string(o, "hostname", t->hostname)) < 0 ||
            (r = json_add_time(o, "created", t->created)) < 0 ||
            (r = json_add_time(o, "updated", t->updated)) < 0 ||
            (r = json_add_owned(o, "protectors", protectors = json_object_new_array())) < 0 ||
            (r = json_add_owned(o, "pending", pending = json_object_new_array())) < 0 ||
            (r = json_add_owned(o, "retiring", retiring = json_object_new_array())) < 0)
                return r;

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

static int protector_from_json(json_object *o, Protector *ret) {
        static const char *const keys_tpm[] = { "type", "keyslot", "key_id", "created", NULL };
        static const char *const keys_recovery[] = { "type",   "keyslot",          "key_id",      "created",
                                                     "escrow", "wrapped_password", "wrapped_vmk", NULL };
        static const char *const keys_dra[] = { "type",    "keyslot",         "key_id",
                                                "created", "dra_fingerprint", "dra_cms", NULL };
        _cleanup_free_ void *cms = NULL, *wpw = NULL, *wvmk = NULL;
        Protector p = {};
        int64_t slot;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        p.type = protector_type_from_string(json_get_string(o, "type"));
        if (p.type < 0)
                return -EBADMSG;
        r = json_check_keys(o, p.type == PROTECTOR_TPM        ? keys_tpm :
                               p.type == PROTECTOR_RECOVERY ? keys_recovery :
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
                if (base64_decode(json_get_string(o, "wrapped_password"), &wpw, &p.wrapped_password_size) < 0 ||
                    base64_decode(json_get_string(o, "wrapped_vmk"), &wvmk, &p.wrapped_vmk_size) < 0)
                        return -EBADMSG;
                p.wrapped_password = p.wrapped_password_size > 0 ? TAKE_PTR(wpw) : NULL;
                p.wrapped_vmk = p.wrapped_vmk_size > 0 ? TAKE_PTR(wvmk) : NULL;
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

static int token_parse(json_object *o, VolumeToken *t) {
        static const char *const keys[] = { "type",     "keyslots", "sealvol_version", "volume_uuid",
                                            "vmk_id",   "hostname", "created",         "updated",
                                            "protectors", "pending", "retiring",       NULL };
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
        if (json_check_keys(o, keys) < 0)
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

                if (protector_from_json(json_object_array_get_idx(protectors, i), &p) < 0)
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
                if (protector_from_json(json_object_array_get_idx(pending, 0), &t->pending) < 0)
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
