/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-volume-bus.c: one object per volume, /org/sealvol1/volume/<uuid> (a fallback vtable and a
 * node enumerator; docs/bus-api.md): its properties, unlock (TPM, recovery password, DRA key), lock,
 * its recovery password, in-place encryption, escrow and erase.
 */

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bus-errors.h"
#include "dra.h"
#include "log.h"
#include "pcr-floor.h"
#include "openssl-util.h"
#include "recovery.h"
#include "sealvold-bus.h"
#include "secmem.h"
#include "tpm2.h"

static int property_get_volume_string(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        char id[GUID_STRING_MAX];
        const char *s = "";

        (void) bus;
        (void) path;
        (void) interface;
        (void) error;
        if (streq(property, "UUID"))
                s = v->uuid;
        else if (streq(property, "Device"))
                s = v->device;
        else if (streq(property, "MappedName"))
                s = v->mapped_name;
        else if (streq(property, "State"))
                s = volume_state_to_string(v->state);
        else if (streq(property, "StateReason"))
                s = strempty(v->state_reason);
        else if (streq(property, "VMKId"))
                s = guid_is_null(&v->vmk_id) ? "" : guid_format(&v->vmk_id, id);
        else if (streq(property, "RecoveryKeyId"))
                s = v->has[PROTECTOR_RECOVERY] ? guid_format(&v->key_ids[PROTECTOR_RECOVERY], id) : "";
        else if (streq(property, "Operation"))
                s = v->operation ? v->operation->name : v->job ? "encrypt" : "";
        return sd_bus_message_append(reply, "s", s);
}

static int property_get_dra_fingerprint(sd_bus *bus, const char *path, const char *interface, const char *property,
                                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        char hex[65] = "";

        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        if (v->has[PROTECTOR_DRA])
                for (size_t i = 0; i < 32; i++)
                        snprintf(hex + 2 * i, 3, "%02x", v->dra_fingerprint[i]);
        return sd_bus_message_append(reply, "s", hex);
}

static int property_get_protectors(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        r = sd_bus_message_open_container(reply, 'a', "(ss)");
        if (r < 0)
                return r;
        for (int t = 0; t < _PROTECTOR_TYPE_MAX; t++) {
                char id[GUID_STRING_MAX];

                if (!v->has[t])
                        continue;
                r = sd_bus_message_append(reply, "(ss)", protector_type_to_string(t), guid_format(&v->key_ids[t], id));
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static void reply_volume_state(Manager *m, UnlockWaiter *w) {
        (void) m;
        (void) sd_bus_reply_method_return(w->request, "s", volume_state_to_string(w->only->state));
}

static int method_volume_unlock_dra(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        EVP_PKEY *key = NULL;
        uint64_t flags;
        int fd, r;

        r = sd_bus_message_read(message, "ht", &fd, &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        /* The file is checked after polkit: what the caller's file holds may change between the two
         * passes of the handler, and a check that fails only on the second pass would strand the
         * polkit query. */
        r = polkit_check_alone(v->manager, message, "org.sealvol1.recover", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = read_passed_dra_key(fd, &key, error);
        if (r < 0)
                return r;
        r = manager_unlock_dra(v->manager, v, key);
        EVP_PKEY_free(key);
        audit_record(message, "unlock-dra", v, r, NULL);
        if (r == -EKEYREJECTED)
                return sd_bus_error_setf(error, BUS_ERROR_WRONG_KEY, "Volume %s is not wrapped to this DRA key.", v->uuid);
        if (r < 0)
                return volume_error(error, r, v, "Failed to unlock with the DRA key");
        /* The server's VMK came with it: answered once every volume is open. */
        if (r > 0 && manager_unlock_start_rotated(v->manager, v, message, reply_volume_state, NULL, NULL) >= 0)
                return 1;
        return sd_bus_reply_method_return(message, "s", volume_state_to_string(v->state));
}

static void reply_volume_unlocked(Manager *m, UnlockWaiter *w) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        ManagedVolume *v = w->only;

        (void) m;
        if (v->unlock_result < 0) {
                (void) volume_error(&error, v->unlock_result, v, "Failed to unlock");
                (void) sd_bus_reply_method_error(w->request, &error);
                return;
        }
        (void) sd_bus_reply_method_return(w->request, "s", volume_state_to_string(v->state));
}

static int method_volume_unlock(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(v->manager, message, "org.sealvol1.unlock", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Another operation on it (an unlock pass under way serves this call too). */
        if (v->job || (v->operation && v->operation != v->manager->unlock_operation))
                return volume_error(error, -EBUSY, v, "Failed to unlock");
        r = manager_unlock_start(v->manager, UNLOCK_ONE, v, message, reply_volume_unlocked, NULL, NULL);
        return r < 0 ? r : 1;
}

static int method_volume_lock(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        r = polkit_check(v->manager, message, "org.sealvol1.unlock", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = manager_lock(v->manager, v);
        if (r < 0)
                return volume_error(error, r, v, "Failed to lock");
        return sd_bus_reply_method_return(message, NULL);
}

/* A conflicting call on a volume an operation is working on: refused at once, naming the operation. */
static int volume_check_idle(ManagedVolume *v, sd_bus_error *error) {
        if (v->operation || v->job)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "Volume %s is busy: %s is under way; try again when it is done.",
                                         v->uuid, v->operation ? v->operation->name : "encrypt");
        return 0;
}

/* The recovery unlock's snapshot: the volume as loaded, a secure copy of the password, where to map
 * it, the server recovery password's record; and what the worker found. */
typedef struct RecoverData {
        Volume *vol;
        char *password;
        char *mapped_name; /* NULL: no device-mapper, verify only */
        ServerWrap server;
        int server_result; /* the server recovery password tried: its result; else 1 */
        unsigned bad_block;
} RecoverData;

static void recover_data_free(void *p) {
        RecoverData *d = p;

        if (!d)
                return;
        volume_free(d->vol);
        secure_free(d->password);
        secure_free(d->server.vmk);
        free(d->mapped_name);
        free(d);
}

/* On the worker: the recovery keyslot's KDF (a typo is found before it, with its block); a password
 * the disk refuses may be the server recovery password, which opens every disk (the operator may hold
 * either, and the prompt names both Key IDs). */
static int recover_work(void *p) {
        RecoverData *d = p;
        int r;

        /* Checked first, unmapped: whether it is this disk's password decides, before the mapping's
         * own errors (a volume mapped already) could hide that. */
        r = volume_open_recovery(d->vol, d->password, NULL, 0, &d->bad_block);
        d->server_result = 1;
        if (r == -EPERM && d->server.have)
                d->server_result = server_wrap_open(&d->server, d->password, NULL);
        if (r >= 0 && d->mapped_name)
                r = volume_open_recovery(d->vol, d->password, d->mapped_name, 0, NULL);
        return r;
}

static int recover_error(ManagedVolume *v, int r, unsigned block, sd_bus_error *error) {
        char id[GUID_STRING_MAX];

        if (IN_SET(r, -EINVAL, -EDOM, -ERANGE))
                return recovery_typo_error(error, r, block);
        if (r == -EPERM && v->manager->have_server_recovery)
                return sd_bus_error_setf(error, BUS_ERROR_WRONG_KEY,
                                         "This is neither the recovery password of %s (Key ID %s) nor the server "
                                         "recovery password (Key ID %s).",
                                         v->uuid, guid_format(&v->key_ids[PROTECTOR_RECOVERY], id),
                                         guid_format(&v->manager->server_recovery.key_id, (char[GUID_STRING_MAX]) {}));
        if (r == -EPERM)
                return sd_bus_error_setf(error, BUS_ERROR_WRONG_KEY, "This is not the recovery password of %s (Key ID %s).",
                                         v->uuid, guid_format(&v->key_ids[PROTECTOR_RECOVERY], id));
        if (r == -EKEYREJECTED)
                return sd_bus_error_setf(error, BUS_ERROR_WRONG_KEY,
                                         "The server recovery password opened a VMK that is not this server's: refused.");
        return volume_error(error, r, v, "Failed to recover");
}

static void reply_recovered_by_server(Manager *m, UnlockWaiter *w) {
        (void) m;
        (void) sd_bus_reply_method_return(w->request, "ss", volume_state_to_string(w->only->state), "");
}

/* The used password's replacement after a recovery, done: the recovery's caller is answered with the
 * volume's state and the new Key ID (empty when the replacement failed: it is logged, and the volume
 * is open either way; a required escrow target that fails leaves the used password in place,
 * escrowed). */
static void recovered_rotation_done(Operation *o, int r) {
        ManagedVolume *v = o->volume;
        char id[GUID_STRING_MAX];
        Guid new_id = {};

        r = manager_rotate_recovery_finish(o->manager, v, o->data, r, &new_id, NULL);
        (void) sd_bus_reply_method_return(o->request, "ss", volume_state_to_string(v->state),
                                          r >= 0 && !guid_is_null(&new_id) ? guid_format(&new_id, id) : "");
}

static int recovered_rotation_start(ManagedVolume *v, sd_bus_message *request) {
        int r;

        r = manager_rotate_recovery_start(v->manager, v, request, recovered_rotation_done);
        if (r < 0)
                log_error_errno(r, "Failed to replace the used recovery password of %s: %m", v->uuid);
        return r;
}

/* On the loop: the result applied (the server recovery password tried, the used password's
 * replacement started), audited, answered (by what it started, if anything). */
static void recover_done(Operation *o, int r) {
        RecoverData *d = o->data;
        ManagedVolume *v = o->volume;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (d->server_result <= 0) {
                r = d->server_result;
                if (r >= 0)
                        r = manager_unlock_server_vmk(v->manager, TAKE_PTR(d->server.vmk), &d->server.vmk_id);
                if (r < 0 && r != -EPERM)
                        log_error_errno(r, "Failed to recover with the server recovery password: %m");
                audit_record(o->request, "unlock-recovery-password", v, r, NULL);
                /* Answered with this volume's state once the pass that opens every volume is done. */
                if (r >= 0 && manager_unlock_start_rotated(v->manager, v, o->request, reply_recovered_by_server,
                                                   NULL, NULL) >= 0)
                        return;
        } else {
                if (!IN_SET(r, -EINVAL, -EDOM, -ERANGE))
                        r = manager_recover_finish(v->manager, v, d->vol, r);
                audit_record(o->request, "unlock-recovery-password", v, r, NULL);
                /* Opened, and the daemon holds the VMK: the used password is replaced before the answer. */
                if (r > 0 && recovered_rotation_start(v, o->request) >= 0)
                        return;
        }
        if (r < 0 && r != -ENOPKG) {
                (void) recover_error(v, r, d->bad_block, &error);
                reply_error(o->request, &error);
                return;
        }
        (void) sd_bus_reply_method_return(o->request, "ss", volume_state_to_string(v->state), "");
}

static int method_volume_unlock_recovery(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        Manager *m = v->manager;
        RecoverData *d = NULL;
        const char *password;
        int r;

        r = read_password_and_flags(message, &password, error);
        if (r < 0)
                return r;
        /* Asked once polkit answered (as polkit_check_alone()): the volume, and the server. */
        r = polkit_check_alone(m, message, "org.sealvol1.recover", /* all= */ false, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = volume_check_idle(v, error);
        if (r < 0)
                return r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->password = secure_memdup(password, strlen(password) + 1);
        d->mapped_name = m->device_mapper ? strdup(v->mapped_name) : NULL;
        server_wrap_snapshot(m, &d->server);
        if (!d->password || (m->device_mapper && !d->mapped_name)) {
                recover_data_free(d);
                return -ENOMEM;
        }
        r = manager_refresh_volume(v, &d->vol);
        if (r < 0) {
                recover_data_free(d);
                audit_record(message, "unlock-recovery-password", v, r, NULL);
                return recover_error(v, r, 0, error);
        }
        r = operation_start(m, v, message, "recover", recover_work, recover_done, d, recover_data_free);
        if (r < 0) {
                audit_record(message, "unlock-recovery-password", v, r, NULL);
                return volume_error(error, r, v, "Failed to recover");
        }
        return 1;
}

static int method_volume_get_recovery_password(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        ManagedVolume *v = userdata;
        _cleanup_secure_ char *password = NULL;
        int r;

        r = polkit_check(v->manager, message, "org.sealvol1.read-recovery-password", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* The VMK first, off the loop, when the daemon holds none (the call runs again then). */
        r = v->job ? 0 : bus_need_vmk(v->manager, message, "org.sealvol1.read-recovery-password", error);
        if (r != 0)
                return r;
        r = manager_read_recovery_password(v->manager, v, &password);
        audit_record(message, "read-recovery-password", v, r, NULL);
        if (r < 0)
                return volume_error(error, r, v, "Failed to read the recovery password of");

        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        /* The reply carries the secret: wiped when freed, here and in the bus library's buffers. */
        r = sd_bus_message_sensitive(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "ss", password,
                                          guid_format(&v->key_ids[PROTECTOR_RECOVERY], (char[GUID_STRING_MAX]) {}));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* The new keyslot's KDF (production cost) and the new password's escrow (a hook, a DC) run as an
 * operation: the volume is busy meanwhile, the bus answers. */
static void rotate_recovery_done(Operation *o, int r) {
        RecoveryRotation *d = o->data;
        ManagedVolume *v = o->volume;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *why = NULL;
        char id[GUID_STRING_MAX];
        Guid new_id = {};

        r = manager_rotate_recovery_finish(o->manager, v, d, r, &new_id, &why);
        audit_record(o->request, "rotate-recovery-password", v, r, NULL);
        if (r >= 0) {
                (void) sd_bus_reply_method_return(o->request, "s", guid_format(&new_id, id));
                return;
        }
        if (r == -ECOMM)
                (void) sd_bus_error_setf(&error, BUS_ERROR_ESCROW_FAILED,
                                         "The recovery password of %s was not replaced: the new one could not be "
                                         "escrowed to a required target (%s). The old one stays.",
                                         v->uuid, strempty(why));
        else
                (void) volume_error(&error, r, v, "Failed to rotate the recovery password of");
        reply_error(o->request, &error);
}

static int method_volume_rotate_recovery(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        r = polkit_check_alone(v->manager, message, "org.sealvol1.rotate", /* all= */ false, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* The VMK first, off the loop, when the daemon holds none (the call runs again then). */
        r = bus_need_vmk(v->manager, message, "org.sealvol1.rotate", error);
        if (r != 0)
                return r;
        r = volume_check_idle(v, error);
        if (r < 0)
                return r;
        r = manager_rotate_recovery_start(v->manager, v, message, rotate_recovery_done);
        if (r < 0) {
                audit_record(message, "rotate-recovery-password", v, r, NULL);
                return volume_error(error, r, v, "Failed to rotate the recovery password of");
        }
        return 1;
}

static int property_get_encryption(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        uint64_t done, total, rate, eta;

        (void) bus;
        (void) path;
        (void) interface;
        (void) error;
        if (streq(property, "Encryption"))
                return sd_bus_message_append(reply, "s", strempty(v->encryption));
        (void) volume_encryption_progress(v, &done, &total, &rate, &eta);
        return sd_bus_message_append(reply, "(tttt)", done, total, rate, eta);
}

static int method_volume_encryption(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        bool pause = streq(sd_bus_message_get_member(message), "PauseEncryption");
        int r;

        r = polkit_check(v->manager, message, "org.sealvol1.provision", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* The VMK first, off the loop, when the daemon holds none (the call runs again then). */
        r = pause ? 0 : bus_need_vmk(v->manager, message, "org.sealvol1.provision", error);
        if (r != 0)
                return r;
        r = pause ? manager_pause_encryption(v->manager, v) : manager_resume_encryption(v->manager, v);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_VOLUME, "%s is not being encrypted in place%s.",
                                         v->uuid, pause ? " (nothing to pause)" : " (nothing to resume)");
        if (r == -EBUSY)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "The encryption of %s is running.", v->uuid);
        if (r < 0)
                return volume_error(error, r, v, pause ? "Failed to pause" : "Failed to resume");
        return sd_bus_reply_method_return(message, NULL);
}

static int method_volume_cancel_encryption(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        /* The VMK too, unsealed off the loop when the daemon holds none (the call runs again then). */
        r = polkit_check_vmk(v->manager, message, "org.sealvol1.provision", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Answered by the operation once the device holds its file system again (or with why not). */
        r = manager_cancel_encryption(v->manager, v, message);
        if (r >= 0)
                return 1;
        audit_record(message, "cancel-encryption", v, r, NULL);
        if (r == -ENOENT)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_VOLUME,
                                         "%s is not being encrypted in place (nothing to cancel).", v->uuid);
        if (r == -EBUSY && v->job)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY,
                                         "The encryption of %s is running: pause it; only a job that has encrypted "
                                         "nothing yet can be cancelled.", v->uuid);
        return volume_error(error, r, v, "Failed to cancel the encryption of");
}

static void erased(Manager *m, sd_bus_message *request, const char *uuid, int result, const char *record) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        (void) m;
        audit_record(request, "erase", NULL, result, uuid);
        if (result >= 0) {
                (void) sd_bus_reply_method_return(request, "s", record);
                return;
        }
        (void) bus_error_set(&error, result, "Failed to erase %s", uuid);
        reply_error(request, &error);
}

static int method_volume_erase(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        ManagedVolume *v = userdata;
        Manager *m = v->manager;
        uid_t uid = (uid_t) -1;
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        r = polkit_check(m, message, "org.sealvol1.erase", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        if (sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID, &creds) >= 0)
                (void) sd_bus_creds_get_euid(creds, &uid);
        /* Answered by the operation, with the record of what was done. */
        r = manager_erase_start(m, v, uid, message, erased);
        if (r >= 0)
                return 1;
        audit_record(message, "erase", NULL, r, v->uuid);
        if (r == -EBUSY && v->job)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "%s is being encrypted in place; let it finish (or "
                                         "cancel it if it has encrypted nothing) before erasing.", v->uuid);
        if (r == -EBUSY && volume_is_open(v))
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "%s is unlocked; lock it before erasing.", v->uuid);
        return bus_error_set(error, r, "Failed to erase %s", v->uuid);
}

static int append_escrow(sd_bus_message *reply, const ManagedVolume *v) {
        return append_escrow_records(reply, v->escrow, v->n_escrow, v->escrow_error);
}

static int property_get_escrow(sd_bus *bus, const char *path, const char *interface, const char *property,
                               sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        return append_escrow(reply, userdata);
}

static int escrow_error(sd_bus_error *error, int r, ManagedVolume *v, uint32_t failed) {
        char buf[512] = "";

        if (r != -ECOMM)
                return volume_error(error, r, v, "Failed to escrow the recovery password of");
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if (failed & (1u << t))
                        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "%s%s: %s", buf[0] ? "; " : "",
                                 escrow_target_to_string(t), strempty(v->escrow_error[t]));
        return sd_bus_error_setf(error, BUS_ERROR_ESCROW_FAILED, "Escrow of the recovery password of %s failed: %s",
                                 v->uuid, buf);
}

static void volume_escrow_reply(Manager *m, sd_bus_message *request, ManagedVolume *v, const EscrowPassResult *res) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        (void) m;
        if (!v)
                r = sd_bus_error_setf(&error, BUS_ERROR_NO_SUCH_VOLUME, "The volume was removed during its escrow.");
        else if (res->volume_result < 0)
                r = escrow_error(&error, res->volume_result, v, res->volume_failed);
        else {
                r = sd_bus_message_new_method_return(request, &reply);
                if (r >= 0)
                        r = append_escrow(reply, v);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                if (r >= 0)
                        return;
                (void) sd_bus_error_set_errno(&error, r);
        }
        (void) sd_bus_reply_method_error(request, &error);
}

static int method_volume_escrow(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        /* The VMK too, unsealed off the loop when the daemon holds none (the call runs again then). */
        r = polkit_check_vmk(v->manager, message, "org.sealvol1.escrow", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* The pass writes the audit record and answers when it is done. */
        r = manager_escrow_start(v->manager, message, v, /* all= */ true, volume_escrow_reply);
        if (r < 0) {
                audit_record(message, "escrow-recovery-password", v, r, NULL);
                return escrow_error(error, r, v, 0);
        }
        return 1;
}

static const sd_bus_vtable volume_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("UUID", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("Device", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("MappedName", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("StateReason", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VMKId", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("RecoveryKeyId", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Protectors", "a(ss)", property_get_protectors, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DRAFingerprint", "s", property_get_dra_fingerprint, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Escrow", "a(ssbtss)", property_get_escrow, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Operation", "s", property_get_volume_string, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Encryption", "s", property_get_encryption, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("EncryptionProgress", "(tttt)", property_get_encryption, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Unlock", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("s", state), method_volume_unlock,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Lock", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_volume_lock, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnlockWithRecoveryPassword", SD_BUS_ARGS("s", password, "t", flags),
                                SD_BUS_RESULT("s", state, "s", new_recovery_key_id), method_volume_unlock_recovery,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("UnlockWithDRAKey", SD_BUS_ARGS("h", private_key, "t", flags), SD_BUS_RESULT("s", state),
                                method_volume_unlock_dra, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("GetRecoveryPassword", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", password, "s", key_id),
                                method_volume_get_recovery_password,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("RotateRecoveryPassword", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", new_recovery_key_id),
                                method_volume_rotate_recovery, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EscrowRecoveryPassword", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("a(ssbtss)", escrow),
                                method_volume_escrow, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Erase", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("s", record), method_volume_erase,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PauseEncryption", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_volume_encryption,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResumeEncryption", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_volume_encryption,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CancelEncryption", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("s", escrow),
                                method_volume_cancel_encryption, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

static int volume_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata, void **found,
                              sd_bus_error *error) {
        Manager *m = userdata;
        ManagedVolume *v;

        (void) bus;
        (void) interface;
        (void) error;
        v = manager_find_volume_by_path(m, path);
        if (!v)
                return 0;
        *found = v;
        return 1;
}

static int volume_node_enumerator(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        Manager *m = userdata;
        char **l;

        (void) bus;
        (void) path;
        (void) error;
        l = calloc(m->n_volumes + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_volumes; i++) {
                l[i] = strdup(m->volumes[i]->object_path);
                if (!l[i]) {
                        for (size_t j = 0; j < i; j++)
                                free(l[j]);
                        free(l);
                        return -ENOMEM;
                }
        }
        *nodes = l;
        return 1;
}

int volume_bus_emit_changed(ManagedVolume *v) {
        if (!v->manager || !v->manager->bus)
                return 0;
        return sd_bus_emit_properties_changed(v->manager->bus, v->object_path, SEALVOL_VOLUME_INTERFACE, "State",
                                              "StateReason", "VMKId", "RecoveryKeyId", "Protectors", "DRAFingerprint",
                                              "Escrow", NULL);
}

int volume_bus_emit_added(ManagedVolume *v) {
        if (!v->manager->bus)
                return 0;
        return sd_bus_emit_interfaces_added(v->manager->bus, v->object_path, SEALVOL_VOLUME_INTERFACE, NULL);
}

int volume_bus_emit_removed(ManagedVolume *v) {
        if (!v->manager->bus)
                return 0;
        return sd_bus_emit_interfaces_removed(v->manager->bus, v->object_path, SEALVOL_VOLUME_INTERFACE, NULL);
}

int volume_bus_add(Manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, NULL, SEALVOL_VOLUME_PATH_PREFIX, SEALVOL_VOLUME_INTERFACE, volume_vtable,
                                       volume_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the volume objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, SEALVOL_VOLUME_PATH_PREFIX, volume_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the volume enumerator: %m");
        return 0;
}
