/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-bus.c: the org.sealvol1 bus API (docs/bus-api.md): the Manager object, one object per
 * volume (a fallback vtable under /org/sealvol1/volume), the ObjectManager.
 *
 * Every handler runs in the same order: parse, validate, polkit (asynchronous; the handler runs
 * again when polkit answers), change, signal, reply. Methods that carry a secret are SENSITIVE, so
 * sd-bus wipes their messages.
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
#include "sealvold.h"
#include "secmem.h"
#include "tpm2.h"

#define FLAGS_NONE UINT64_C(0)

static int volume_error(sd_bus_error *error, int r, const ManagedVolume *v, const char *what) {
        if (r == -ENOPKG)
                return sd_bus_error_setf(error, BUS_ERROR_NO_VMK, "%s: the server's VMK is not available (%s).", what,
                                         v ? v->uuid : "no volume");
        return bus_error_set(error, r, "%s%s%s", what, v ? " " : "", v ? v->uuid : "");
}

/* Every flags argument is reserved for now: anything set is a caller from the future, refused. */
static int check_flags(uint64_t flags, sd_bus_error *error) {
        if (flags != FLAGS_NONE)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown flags 0x%" PRIx64, flags);
        return 0;
}

/* The password and flags of a method that takes a recovery password: too long to be one is refused
 * before polkit is asked. */
static int read_password_and_flags(sd_bus_message *message, const char **ret_password, sd_bus_error *error) {
        const char *password;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "st", &password, &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        if (strlen(password) > 4 * RECOVERY_PASSWORD_LEN)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not a recovery password.");
        *ret_password = password;
        return 0;
}

/* The fingerprint of a DRA certificate, as sealvol shows it; NULL when there is none to show. */
static char *cert_fingerprint_string(X509 *cert) {
        uint8_t fp[DRA_FINGERPRINT_SIZE];

        return cert && dra_cert_fingerprint(cert, fp) >= 0 ? dra_fingerprint_to_string(fp) : NULL;
}

static char *dra_fingerprint_in_force(Manager *m) {
        _cleanup_(X509_freep) X509 *cert = NULL;

        return manager_load_dra_cert(m, &cert) < 0 ? NULL : cert_fingerprint_string(cert);
}

/* ---- properties -------------------------------------------------------------------------------- */

/* The operations running (sealvold-operation.c): a volume's as "<name> <uuid>", the server's by name. */
static int property_get_operations(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        r = sd_bus_message_open_container(reply, 'a', "s");
        for (size_t i = 0; r >= 0 && i < m->n_operations; i++) {
                const Operation *o = m->operations[i];
                char buf[64 + VOLUME_UUID_STRING_MAX];

                snprintf(buf, sizeof(buf), "%s%s%s", o->name, o->volume ? " " : "", o->volume ? o->volume->uuid : "");
                r = sd_bus_message_append_basic(reply, 's', buf);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

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
                s = v->operation ? v->operation->name : "";
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

static int property_get_manager(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        char buf[128];

        (void) bus;
        (void) path;
        (void) interface;
        (void) error;
        if (streq(property, "Version"))
                return sd_bus_message_append(reply, "s", PACKAGE_VERSION);
        if (streq(property, "PCRBank"))
                return sd_bus_message_append(reply, "s", tpm2_hash_alg_to_string(m->config.pcr_bank));
        if (streq(property, "PCRs"))
                return sd_bus_message_append(reply, "s", tpm2_pcr_mask_to_string(m->config.pcr_mask, buf, sizeof(buf)));
        if (streq(property, "MinimumPCRs"))
                return sd_bus_message_append(reply, "s",
                                             tpm2_pcr_mask_to_string(m->config.pcr_min_mask, buf, sizeof(buf)));
        if (streq(property, "ChangedPCRs"))
                return sd_bus_message_append(reply, "s",
                                             tpm2_pcr_mask_to_string(m->last_pcr_mismatch, buf, sizeof(buf)));
        if (streq(property, "VMKAvailable"))
                return sd_bus_message_append(reply, "b", m->vmk != NULL);
        if (streq(property, "VMKId"))
                return sd_bus_message_append(reply, "s",
                                             m->vmk ? guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}) : "");
        if (streq(property, "VMKRotation")) {
                /* Whether the VMK is being rotated, is due for rotation, or one waits for volumes still on
                 * the previous VMK. */
                if (m->vmk_rotation)
                        snprintf(buf, sizeof(buf), "rotating");
                else if (m->previous_vmk)
                        snprintf(buf, sizeof(buf), "re-binding from %s",
                                 guid_format(&m->previous_vmk_id, (char[GUID_STRING_MAX]) {}));
                else
                        snprintf(buf, sizeof(buf), "%s", m->rotation_due ? "due" : "");
                return sd_bus_message_append(reply, "s", buf);
        }
        if (streq(property, "ServerRecoveryKeyId"))
                return sd_bus_message_append(reply, "s",
                                             m->have_server_recovery ?
                                                     guid_format(&m->server_recovery.key_id, (char[GUID_STRING_MAX]) {}) :
                                                     "");
        if (streq(property, "DeviceMapper"))
                return sd_bus_message_append(reply, "b", m->device_mapper);
        /* From what the daemon last saw (sealvold-tpm.c): a Get never reaches the TPM nor reads a file. */
        if (streq(property, "TPMPresent"))
                return sd_bus_message_append(reply, "b", m->tpm.present);
        if (streq(property, "TPMManufacturer")) {
                const Tpm2Info *info = &m->tpm.info;

                snprintf(buf, sizeof(buf), "%s%s%s", info->manufacturer, info->vendor[0] ? " " : "", info->vendor);
                return sd_bus_message_append(reply, "s", buf);
        }
        if (streq(property, "TPMFirmware")) {
                const uint32_t *fw = m->tpm.info.firmware;

                if (!m->tpm.present)
                        return sd_bus_message_append(reply, "s", "");
                snprintf(buf, sizeof(buf), "%u.%u.%u.%u", fw[0] >> 16, fw[0] & 0xffff, fw[1] >> 16,
                         fw[1] & 0xffff);
                return sd_bus_message_append(reply, "s", buf);
        }
        if (streq(property, "TPMLockout"))
                /* The dictionary-attack state: failed authorisations so far, the limit, and whether the
                 * TPM refuses until it recovers. The VMK is sealed noDA, so a lockout does not stop
                 * unlocking, but it is worth an operator's look. */
                return sd_bus_message_append(reply, "(uub)", m->tpm.lockout_counter, m->tpm.lockout_max,
                                             m->tpm.in_lockout);
        if (streq(property, "SealedPCRs")) {
                /* What the VMK is sealed to now, from its blob (the configuration is for new seals). */
                char pcrs[96];

                if (m->sealed_bank == 0)
                        return sd_bus_message_append(reply, "s", "");
                snprintf(buf, sizeof(buf), "%s:%s", strempty(tpm2_hash_alg_to_string(m->sealed_bank)),
                         tpm2_pcr_mask_to_string(m->sealed_mask, pcrs, sizeof(pcrs)));
                return sd_bus_message_append(reply, "s", buf);
        }
        if (streq(property, "DRAFingerprint")) {
                _cleanup_free_ char *hex = dra_fingerprint_in_force(m);

                return sd_bus_message_append(reply, "s", strempty(hex));
        }
        if (streq(property, "EscrowTargets") || streq(property, "EscrowRequired")) {
                _cleanup_free_ char *t = escrow_targets_to_string(streq(property, "EscrowTargets") ?
                                                                  m->config.escrow_targets : m->config.escrow_required);
                if (!t)
                        return -ENOMEM;
                return sd_bus_message_append(reply, "s", t);
        }
        if (streq(property, "EscrowEncrypted")) {
                /* Whether no configured spool or hook gets a plaintext password: the one answer status
                 * used to give for both, now true of each. */
                _cleanup_(X509_freep) X509 *cert = NULL;
                bool have_dra = manager_load_dra_cert(m, &cert) >= 0, encrypted = true;

                for (EscrowTarget t = ESCROW_TARGET_SPOOL; t <= ESCROW_TARGET_HOOK; t++)
                        if (m->config.escrow_targets & (1u << t))
                                encrypted = encrypted && escrow_target_encrypted(&m->config, t, have_dra);
                return sd_bus_message_append(reply, "b", encrypted);
        }
        if (streq(property, "RefusedDevices")) {
                /* Devices that carry a volume's UUID and are not taken for it (sealvold-boot.c). */
                int r = sd_bus_message_open_container(reply, 'a', "(sss)");

                for (size_t i = 0; r >= 0 && i < m->n_refused; i++)
                        r = sd_bus_message_append(reply, "(sss)", m->refused[i].device, m->refused[i].uuid,
                                                  m->refused[i].reason);
                return r < 0 ? r : sd_bus_message_close_container(reply);
        }
        if (streq(property, "VolumeCount"))
                return sd_bus_message_append(reply, "u", (uint32_t) m->n_volumes);
        if (streq(property, "BootState"))
                return sd_bus_message_append(reply, "s", manager_boot_state(m));
        if (streq(property, "RecoveryRequiredCount")) {
                uint32_t n = 0;
                for (size_t i = 0; i < m->n_volumes; i++)
                        n += m->volumes[i]->state == VOLUME_RECOVERY_REQUIRED;
                return sd_bus_message_append(reply, "u", n);
        }
        return -ENOENT;
}

/* ---- Manager methods ---------------------------------------------------------------------------- */

static int method_list_volumes(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Manager *m = userdata;
        int r;

        (void) error;
        r = sd_bus_message_new_method_return(message, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "(ssso)");
        for (size_t i = 0; r >= 0 && i < m->n_volumes; i++)
                r = sd_bus_message_append(reply, "(ssso)", m->volumes[i]->uuid, m->volumes[i]->device,
                                          volume_state_to_string(m->volumes[i]->state), m->volumes[i]->object_path);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int method_get_volume(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        ManagedVolume *v;
        const char *uuid;
        int r;

        r = sd_bus_message_read(message, "s", &uuid);
        if (r < 0)
                return r;
        v = manager_find_volume(m, uuid);
        if (!v)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SUCH_VOLUME, "No volume %s on this server.", uuid);
        return sd_bus_reply_method_return(message, "o", v->object_path);
}

static bool device_path_valid(const char *s) {
        return s[0] == '/' && strlen(s) < DEVICE_PATH_MAX && !strstr(s, "/../") && !strchr(s, '\n');
}

/* The arguments of the provisioning methods: "st", an absolute device path and flags (none known). */
static int read_device_and_flags(sd_bus_message *message, const char **ret_device, sd_bus_error *error) {
        const char *device;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "st", &device, &flags);
        if (r < 0)
                return r;
        if (!device_path_valid(device))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not an absolute device path: %s", device);
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        *ret_device = device;
        return 0;
}

/* A manager-wide operation (the VMK, the sealed state or the server's secrets change) runs alone: a
 * call that would unseal, seal or change them meanwhile is refused at once, naming it. A manager-wide
 * change (all) also waits for every volume's operation: a rotation escrowing to the DRA certificate it
 * started with, say, must not meet a change of that certificate or of the VMK. */
static int manager_check_idle(Manager *m, bool all, sd_bus_error *error) {
        const Operation *o = manager_exclusive_operation(m);

        for (size_t i = 0; !o && all && i < m->n_operations; i++)
                if (!m->operations[i]->background)
                        o = m->operations[i];
        if (o)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "The server is busy: %s is under way; try again when "
                                         "it is done.", o->name);
        return 0;
}

/* polkit_check() of a call that must not run beside a manager-wide operation (all: beside any). Asked
 * once polkit answered, never before: a call refused on its way back from polkit would strand the
 * stored query. */
static int polkit_check_alone(Manager *m, sd_bus_message *message, const char *action, bool all,
                              sd_bus_error *error) {
        int r;

        r = polkit_check(m, message, action, error);
        if (r <= 0)
                return r;
        r = manager_check_idle(m, all, error);
        return r < 0 ? r : 1;
}

static void provision_reply(Manager *m, sd_bus_message *request, const char *device, int r, ManagedVolume *v,
                            const char *why) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char id[GUID_STRING_MAX];

        (void) m;
        audit_record(request, "provision", v, r, device);
        if (r >= 0) {
                (void) sd_bus_reply_method_return(request, "os", v->object_path,
                                                  guid_format(&v->key_ids[PROTECTOR_RECOVERY], id));
                return;
        }
        if (r == -ECOMM)
                (void) sd_bus_error_setf(&error, BUS_ERROR_ESCROW_FAILED,
                                         "%s was not provisioned: its recovery password could not be escrowed to a "
                                         "required target (%s).", device, strempty(why));
        else if (r == -EALREADY)
                (void) sd_bus_error_setf(&error, BUS_ERROR_BUSY, "%s is being provisioned already; try again when "
                                         "that is done.", device);
        else
                (void) bus_error_set(&error, r, "Cannot provision %s", device);
        (void) sd_bus_reply_method_error(request, &error);
}

static int method_provision(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *device;
        int r;

        r = read_device_and_flags(message, &device, error);
        if (r < 0)
                return r;

        r = polkit_check_alone(m, message, "org.sealvol1.provision", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Answered by the operation (or at once, when it cannot start). */
        r = manager_provision_start(m, message, device, provision_reply);
        if (r < 0)
                provision_reply(m, message, device, r, NULL, NULL);
        return 1;
}

static int method_provision_in_place(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *what = NULL;
        const char *device;
        int r;

        r = read_device_and_flags(message, &device, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.provision", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Answered by the job once the device is a sealvol volume (or with why not). */
        r = manager_provision_in_place(m, device, message, &what);
        /* A job that started writes the audit record when it knows the outcome (job_started(),
         * job_finished()): a refusal of the job is no success. */
        if (r < 0)
                audit_record(message, "provision-in-place", NULL, r, device);
        if (IN_SET(r, -EMEDIUMTYPE, -ENODATA))
                return sd_bus_error_setf(error, BUS_ERROR_UNSUPPORTED_CONTENT, "Cannot encrypt in place: %s.",
                                         strempty(what));
        if (r == -ENOSPC)
                return sd_bus_error_setf(error, BUS_ERROR_NO_SPACE, "Cannot encrypt in place: %s.", strempty(what));
        if (r == -EBUSY)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "Cannot encrypt in place: %s.", strempty(what));
        if (r == -EEXIST)
                return sd_bus_error_setf(error, BUS_ERROR_DEVICE_NOT_EMPTY, "Cannot encrypt in place: %s.",
                                         strempty(what));
        if (r < 0)
                return bus_error_set(error, r, "Cannot encrypt %s in place", device);
        return 1;
}

/* The answer of the calls that open every volume: how many are open now, how many are not. */
static void reply_unlock_counts(Manager *m, UnlockWaiter *w) {
        unsigned opened, failed;

        manager_unlock_counts(m, &opened, &failed);
        (void) sd_bus_reply_method_return(w->request, "uu", opened, failed);
}

static int method_unlock_all(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.unlock", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Answered by the pass that opens them. */
        r = manager_unlock_start(m, UNLOCK_ALL, NULL, message, reply_unlock_counts, NULL, NULL);
        return r < 0 ? r : 1;
}

static int method_reseal(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *floor = NULL;
        const char *bank_name, *pcrs;
        TPMI_ALG_HASH bank = 0;
        uint32_t mask = 0;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "sst", &bank_name, &pcrs, &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        if (!isempty(bank_name) && tpm2_hash_alg_from_string(bank_name, &bank) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown PCR bank: %s", bank_name);
        if (!isempty(pcrs) && tpm2_pcr_mask_from_string(pcrs, &mask) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not a PCR list (0-23, comma-separated): %s",
                                         pcrs);
        /* Never below the floor: no PCR software can reset, the configured minimum included. */
        r = pcr_floor_check(mask ?: m->config.pcr_mask, m->config.pcr_min_mask, &floor);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not sealing the VMK to PCR %s: %s.",
                                         isempty(pcrs) ? "(configured)" : pcrs, floor);
        r = polkit_check_alone(m, message, "org.sealvol1.manage-tpm", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Only a VMK we hold (unsealed, or recovered with a recovery password or the DRA key) can be
         * resealed: a changed boot is accepted by proving a recovery, never by just asking. */
        r = manager_reseal(m, bank, mask);
        audit_record(message, "reseal", NULL, r, NULL);
        if (r == -ENXIO)
                return sd_bus_error_setf(error, BUS_ERROR_OTHER_TPM,
                                         "The TPM's storage root key is not the one the VMK is pinned to (another TPM, "
                                         "a cleared one, or a key planted at its handle): refusing to seal to it. If "
                                         "the TPM was replaced on purpose, run the TPM replacement (ReplaceTPM...).");
        if (r == -EOPNOTSUPP)
                return sd_bus_error_setf(error, SD_BUS_ERROR_NOT_SUPPORTED, "The TPM has no %s PCR bank.",
                                         isempty(bank_name) ? "such" : bank_name);
        if (r < 0)
                return volume_error(error, r, NULL, "Reseal");
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "ChangedPCRs",
                                              NULL);
        return sd_bus_reply_method_return(message, NULL);
}

/* Reads a file the caller passed as a descriptor. Only a regular file (or memfd): a pipe or socket
 * could stall the event loop, and the daemon never opens paths on a caller's behalf. */
static int read_passed_file(int fd, size_t max, void **ret, size_t *ret_size, bool secret) {
        struct stat st;
        uint8_t *buf;
        size_t n = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADF;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        buf = secret ? secure_alloc((size_t) st.st_size + 1) : malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = pread(fd, buf + n, (size_t) st.st_size - n, (off_t) n);
                if (k <= 0) {
                        int r = k < 0 ? -errno : -EIO;
                        if (secret)
                                secure_free(buf);
                        else
                                free(buf);
                        return r;
                }
                n += (size_t) k;
        }
        *ret = buf;
        *ret_size = n;
        return 0;
}

static int method_set_dra(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ void *data = NULL;
        _cleanup_free_ char *reason = NULL, *old_fp = NULL, *offered_fp = NULL, *detail = NULL;
        _cleanup_(X509_freep) X509 *offered = NULL;
        unsigned rewrapped = 0;
        uint64_t flags;
        size_t size = 0;
        int fd, r;

        r = sd_bus_message_read(message, "ht", &fd, &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.manage-dra", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = read_passed_file(fd, DRA_CERT_FILE_MAX, &data, &size, false);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The certificate must be passed as a regular file of at most %zu bytes.",
                                         DRA_CERT_FILE_MAX);
        /* Which certificate replaced which, or was refused: both fingerprints are in the audit trail. */
        old_fp = dra_fingerprint_in_force(m);
        if (dra_cert_load(data, size, &offered) >= 0)
                offered_fp = cert_fingerprint_string(offered);
        r = manager_set_dra(m, data, size, &rewrapped, &reason);
        if (asprintf(&detail, "old %s, new %s", old_fp ?: "none", offered_fp ?: "(not a certificate)") < 0)
                detail = NULL;
        audit_record(message, "set-dra-certificate", NULL, r, detail);
        if (r == -EKEYREJECTED)
                return sd_bus_error_setf(error, BUS_ERROR_CERTIFICATE_REJECTED, "Refused as a DRA certificate: %s",
                                         strempty(reason));
        if (r < 0)
                return volume_error(error, r, NULL, "Failed to set the DRA certificate");
        return sd_bus_reply_method_return(message, "u", (uint32_t) rewrapped);
}

static int method_export_vmk(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *json = NULL;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.export-vmk", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = manager_export_vmk(m, &json);
        audit_record(message, "export-vmk", NULL, r, NULL);
        if (r == -ENOKEY)
                return sd_bus_error_setf(error, BUS_ERROR_NO_PROTECTOR, "No DRA certificate is configured.");
        if (r < 0)
                return volume_error(error, r, NULL, "Failed to export the VMK");
        /* Wrapped to the DRA certificate: not a secret, but only the DRA can open it. */
        return sd_bus_reply_method_return(message, "s", json);
}

/* The DRA private key a caller passed as a descriptor: the daemon never opens a path for the caller nor
 * takes key bytes in a message. Checked after polkit: what the caller's file holds may change between
 * the two passes of a handler, and a check that fails only on the second pass would strand the polkit
 * query. */
static int read_passed_dra_key(int fd, EVP_PKEY **ret, sd_bus_error *error) {
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > DRA_KEY_FILE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The DRA key must be passed as a regular file of at most %zu bytes.",
                                         DRA_KEY_FILE_MAX);
        if (lseek(fd, 0, SEEK_SET) < 0 || dra_key_load_fd(fd, ret) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not an unencrypted private key (PEM or DER).");
        return 0;
}

/* A replacement TPM whose EK certificate does not hold ([TPM] EKCertificateCA=): nothing was sealed. */
static int untrusted_tpm_error(sd_bus_error *error, const char *why) {
        return sd_bus_error_setf(error, BUS_ERROR_UNTRUSTED_TPM,
                                 "The TPM in place is not one its maker certified: %s. Nothing was sealed to it.",
                                 why ?: "its EK certificate could not be checked");
}

/* The answer to a recovery password that did not parse: which block, and what is wrong with it. */
static int recovery_typo_error(sd_bus_error *error, int r, unsigned block) {
        const char *name = r == -EDOM ? BUS_ERROR_RECOVERY_PASSWORD_TYPO :
                           r == -ERANGE ? BUS_ERROR_RECOVERY_PASSWORD_RANGE : SD_BUS_ERROR_INVALID_ARGS;

        if (block > 0)
                return sd_bus_error_setf(error, name, "Block %u of the recovery password %s.", block,
                                         recovery_parse_error_to_string(r));
        return sd_bus_error_setf(error, name, "The recovery password %s.", recovery_parse_error_to_string(r));
}

static void rotate_vmk_reply(Manager *m, sd_bus_message *request, int r, const char *why) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        audit_record(request, "rotate-vmk", NULL, r, NULL);
        if (r >= 0) {
                (void) sd_bus_reply_method_return(request, "ss", guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}),
                                                  guid_format(&m->server_recovery.key_id, (char[GUID_STRING_MAX]) {}));
                return;
        }
        if (r == -ECOMM)
                (void) sd_bus_error_setf(&error, BUS_ERROR_ESCROW_FAILED,
                                         "The VMK was not rotated: the new server recovery password could not be "
                                         "escrowed to a required target (%s).", strempty(why));
        else if (r == -EBUSY)
                (void) sd_bus_error_setf(&error, BUS_ERROR_BUSY,
                                         "A rotation under way still waits for volumes on the previous VMK (their "
                                         "disks are missing); it finishes when they appear.");
        else
                (void) volume_error(&error, r, NULL, "Failed to rotate the VMK");
        (void) sd_bus_reply_method_error(request, &error);
}

static int method_rotate_vmk(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.manage-tpm", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Answered when it is done (rotate_vmk_reply()). */
        r = manager_rotate_vmk_start(m, message, rotate_vmk_reply);
        if (r < 0)
                rotate_vmk_reply(m, message, r, NULL);
        return 1;
}

/* The server recovery password's record as an operation sees it: what it unwraps, never the daemon's. */
typedef struct ServerWrap {
        bool have;
        uint8_t wrapped_vmk[SERVER_RECOVERY_WRAPPED_VMK_SIZE];
        Guid key_id, vmk_id;
        uint8_t *vmk; /* secure memory: what the password opened */
} ServerWrap;

static void server_wrap_snapshot(Manager *m, ServerWrap *ret) {
        *ret = (ServerWrap) { .have = m->have_server_recovery };
        if (!m->have_server_recovery)
                return;
        memcpy(ret->wrapped_vmk, m->server_recovery.wrapped_vmk, sizeof(ret->wrapped_vmk));
        ret->key_id = m->server_recovery.key_id;
        ret->vmk_id = m->server_recovery.vmk_id;
}

/* On a worker: the server recovery password's KDF. */
static int server_wrap_open(ServerWrap *w, const char *password, unsigned *ret_bad_block) {
        if (!w->have)
                return -ENOKEY;
        return server_recovery_unwrap(w->wrapped_vmk, &w->key_id, &w->vmk_id, password, &w->vmk, ret_bad_block);
}

/* What a server recovery password that did not open the VMK gets for an answer. */
static int server_password_error(Manager *m, sd_bus_error *error, int r, unsigned block, const char *what) {
        if (IN_SET(r, -EINVAL, -EDOM, -ERANGE))
                return recovery_typo_error(error, r, block);
        if (r == -ENOKEY)
                return sd_bus_error_setf(error, BUS_ERROR_NO_PROTECTOR, "This server has no server recovery password.");
        if (r == -EPERM)
                return sd_bus_error_setf(error, BUS_ERROR_WRONG_KEY,
                                         "This is not the server recovery password (Key ID %s).",
                                         guid_format(&m->server_recovery.key_id, (char[GUID_STRING_MAX]) {}));
        if (r == -EKEYREJECTED)
                return sd_bus_error_setf(error, BUS_ERROR_WRONG_KEY,
                                         "The server recovery password opened a VMK that is not this server's: refused.");
        return volume_error(error, r, NULL, what);
}

/* What an operation needs to open the VMK with the server recovery password: the record's snapshot,
 * a secure copy of the password; and what it found. */
typedef struct ServerUnlockData {
        ServerWrap server;
        char *password; /* secure memory */
        unsigned bad_block;
} ServerUnlockData;

static int server_unlock_data_init(Manager *m, ServerUnlockData *d, const char *password) {
        d->password = secure_memdup(password, strlen(password) + 1);
        if (!d->password)
                return -ENOMEM;
        server_wrap_snapshot(m, &d->server);
        return 0;
}

static void server_unlock_data_clear(ServerUnlockData *d) {
        d->password = secure_free(d->password);
        d->server.vmk = secure_free(d->server.vmk);
}

static void server_unlock_data_free(void *p) {
        ServerUnlockData *d = p;

        if (!d)
                return;
        server_unlock_data_clear(d);
        free(d);
}

static int server_unlock_open(ServerUnlockData *d) {
        return server_wrap_open(&d->server, d->password, &d->bad_block);
}

static int server_unlock_work(void *p) {
        return server_unlock_open(p);
}

static void server_unlock_done(Operation *o, int r) {
        ServerUnlockData *d = o->data;
        Manager *m = o->manager;
        sd_bus_error error = SD_BUS_ERROR_NULL;

        if (r >= 0)
                r = manager_unlock_server_vmk(m, TAKE_PTR(d->server.vmk), &d->server.vmk_id);
        audit_record(o->request, "unlock-server-recovery-password", NULL, r, NULL);
        if (r >= 0)
                r = manager_unlock_start_rotated(m, NULL, o->request, reply_unlock_counts, NULL, NULL);
        if (r < 0) {
                (void) server_password_error(m, &error, r, d->bad_block, "Failed to recover the server");
                (void) sd_bus_reply_method_error(o->request, &error);
                sd_bus_error_free(&error);
        }
}

static int method_unlock_server_password(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        ServerUnlockData *d;
        const char *password;
        int r;

        r = read_password_and_flags(message, &password, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.recover", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Its KDF (twice a recovery keyslot's) runs as an operation; then an unlock pass opens every
         * volume, and its end rotates the VMK. */
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        r = server_unlock_data_init(m, d, password);
        if (r < 0) {
                server_unlock_data_free(d);
                return r;
        }
        r = operation_start(m, NULL, message, "recover-server", server_unlock_work, server_unlock_done, d,
                            server_unlock_data_free);
        if (r < 0) {
                audit_record(message, "unlock-server-recovery-password", NULL, r, NULL);
                return volume_error(error, r, NULL, "Failed to recover the server");
        }
        return 1;
}

/* ---- replacing the TPM ------------------------------------------------------------------------ */

/* A TPM replacement: proven on the loop (the DRA key) or by an operation (the server recovery
 * password's KDF), then sealed by another (the TPM's work). */
typedef struct ReplaceData {
        const char *credential; /* "dra-key", "server-recovery-password": the record's */
        ServerUnlockData unlock; /* with the server recovery password; dropped once it opened the VMK */
        TpmReplacement *tpm;
} ReplaceData;

static void replace_data_free(void *p) {
        ReplaceData *d = p;

        if (!d)
                return;
        server_unlock_data_clear(&d->unlock);
        tpm_replacement_free(d->tpm);
        free(d);
}

static void replace_reply(Manager *m, sd_bus_message *request, const char *record) {
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "ChangedPCRs",
                                              NULL);
        (void) sd_bus_reply_method_return(request, "s", strempty(record));
}

static void replace_reply_record(Manager *m, UnlockWaiter *w) {
        replace_reply(m, w->request, w->data);
}

static void replace_answer(Manager *m, sd_bus_message *request, ReplaceData *d, int r, const char *record) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        audit_record(request, "replace-tpm", NULL, r, d->credential);
        if (r >= 0) {
                replace_reply(m, request, record);
                return;
        }
        if (r == -EKEYREVOKED)
                (void) untrusted_tpm_error(&error, d->tpm ? d->tpm->reason : NULL);
        else if (streq(d->credential, "server-recovery-password"))
                (void) server_password_error(m, &error, r, d->unlock.bad_block, "Failed to replace the TPM");
        else if (r == -EKEYREJECTED)
                (void) sd_bus_error_setf(&error, BUS_ERROR_WRONG_KEY,
                                         "The DRA key does not open this server's VMK export, or the export holds "
                                         "another VMK than the sealed state names.");
        else if (r == -ENOKEY)
                (void) sd_bus_error_setf(&error, BUS_ERROR_NO_PROTECTOR, "This server has no VMK export to open.");
        else
                (void) volume_error(&error, r, NULL, "Failed to replace the TPM");
        (void) sd_bus_reply_method_error(request, &error);
        sd_bus_error_free(&error);
}

static int replace_seal_work(void *p) {
        ReplaceData *d = p;

        return tpm_replacement_seal(d->tpm);
}

static void replace_sealed_done(Operation *o, int r) {
        ReplaceData *d = o->data;
        Manager *m = o->manager;
        _cleanup_free_ char *record = NULL;

        if (r >= 0)
                r = manager_tpm_replaced(m, d->tpm, d->credential, &record);
        if (r < 0) {
                replace_answer(m, o->request, d, r, NULL);
                return;
        }
        audit_record(o->request, "replace-tpm", NULL, r, d->credential);
        /* Answered once every volume is open; the pass's end rotates the VMK. */
        r = manager_unlock_start_rotated(m, NULL, o->request, replace_reply_record, record, free);
        if (r >= 0)
                TAKE_PTR(record);
        else
                replace_reply(m, o->request, record);
}

/* The VMK is the daemon's and the secret's use noted: seal it, as an operation (consumes d). */
static int replace_seal_start(Manager *m, sd_bus_message *request, ReplaceData *d) {
        int r;

        server_unlock_data_clear(&d->unlock);
        r = manager_tpm_replacement_new(m, &d->tpm);
        if (r < 0) {
                replace_data_free(d);
                return r;
        }
        return operation_start(m, NULL, request, "replace-tpm", replace_seal_work, replace_sealed_done, d,
                               replace_data_free);
}

static int replace_unwrap_work(void *p) {
        ReplaceData *d = p;

        return server_unlock_open(&d->unlock);
}

static void replace_unwrapped_done(Operation *o, int r) {
        ReplaceData *d = TAKE_PTR(o->data);
        Manager *m = o->manager;

        /* Proven in this call, like the DRA key: a daemon that holds the VMK already (the old TPM still
         * answered at boot) still needs the server-scoped secret to re-pin. */
        if (r >= 0)
                r = manager_take_server_vmk(m, TAKE_PTR(d->unlock.server.vmk), &d->unlock.server.vmk_id);
        if (r >= 0) {
                manager_note_server_secret_used(m, "The server recovery password");
                r = replace_seal_start(m, o->request, d);
                if (r >= 0)
                        return;
                d = NULL;
                replace_answer(m, o->request, &(ReplaceData) { .credential = "server-recovery-password" }, r, NULL);
                return;
        }
        replace_answer(m, o->request, d, r, NULL);
        replace_data_free(d);
}

static int method_replace_tpm_dra(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        ReplaceData *d;
        uint64_t flags;
        int fd, r;

        r = sd_bus_message_read(message, "ht", &fd, &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.manage-tpm", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = read_passed_dra_key(fd, &key, error);
        if (r < 0)
                return r;

        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->credential = "dra-key";
        /* The export's CMS opens in milliseconds, on the loop; the TPM's work is the operation. */
        r = manager_replace_tpm_prove_dra(m, key);
        if (r >= 0) {
                r = replace_seal_start(m, message, TAKE_PTR(d));
                if (r >= 0)
                        return 1;
                d = NULL;
        }
        replace_answer(m, message, d ?: &(ReplaceData) { .credential = "dra-key" }, r, NULL);
        replace_data_free(d);
        return 1;
}

static int method_replace_tpm_server_password(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        ReplaceData *d;
        const char *password;
        int r;

        r = read_password_and_flags(message, &password, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.manage-tpm", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Its KDF (twice a recovery keyslot's) is the first operation, the TPM's work the second. */
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->credential = "server-recovery-password";
        r = server_unlock_data_init(m, &d->unlock, password);
        if (r < 0) {
                replace_data_free(d);
                return r;
        }
        r = operation_start(m, NULL, message, "replace-tpm", replace_unwrap_work, replace_unwrapped_done, d,
                            replace_data_free);
        if (r < 0) {
                audit_record(message, "replace-tpm", NULL, r, "server-recovery-password");
                return volume_error(error, r, NULL, "Failed to replace the TPM");
        }
        return 1;
}

static int method_get_server_password(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_secure_ char *password = NULL;
        Manager *m = userdata;
        Guid key_id;
        int r;

        r = polkit_check(m, message, "org.sealvol1.read-recovery-password", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        r = manager_read_server_recovery_password(m, &password, &key_id);
        audit_record(message, "read-server-recovery-password", NULL, r, NULL);
        if (r < 0)
                return volume_error(error, r, NULL, "Failed to read the server recovery password");
        r = sd_bus_message_new_method_return(message, &reply);
        if (r < 0)
                return r;
        /* The reply carries the secret: wiped when freed, here and in the bus library's buffers. */
        r = sd_bus_message_sensitive(reply);
        if (r >= 0)
                r = sd_bus_message_append(reply, "ss", password, guid_format(&key_id, (char[GUID_STRING_MAX]) {}));
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- Volume methods ---------------------------------------------------------------------------- */

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
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
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
        if (v->operation)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "Volume %s is busy: %s is under way; try again when it is done.",
                                         v->uuid, v->operation->name);
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
                (void) sd_bus_reply_method_error(o->request, &error);
                sd_bus_error_free(&error);
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
        (void) sd_bus_reply_method_error(o->request, &error);
        sd_bus_error_free(&error);
}

static int method_volume_rotate_recovery(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        ManagedVolume *v = userdata;
        int r;

        r = polkit_check_alone(v->manager, message, "org.sealvol1.rotate", /* all= */ false, error);
        if (r <= 0)
                return r < 0 ? r : 1;
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

static int method_volume_erase(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_free_ char *record = NULL;
        ManagedVolume *v = userdata;
        Manager *m = v->manager;
        char uuid[VOLUME_UUID_STRING_MAX];
        uid_t uid = (uid_t) -1;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check(m, message, "org.sealvol1.erase", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        if (sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID, &creds) >= 0)
                (void) sd_bus_creds_get_euid(creds, &uid);
        snprintf(uuid, sizeof(uuid), "%s", v->uuid);
        r = manager_erase(m, v, uid, &record); /* frees v */
        audit_record(message, "erase", NULL, r, uuid);
        if (r == -EBUSY)
                return sd_bus_error_setf(error, BUS_ERROR_BUSY, "%s is being encrypted in place; pause it and decrypt, or "
                                         "let it finish, before erasing.", uuid);
        if (r < 0)
                return bus_error_set(error, r, "Failed to erase %s", uuid);
        return sd_bus_reply_method_return(message, "s", record);
}

static int append_escrow_records(sd_bus_message *reply, const EscrowRecord *records, size_t n,
                                 char *const errors[static _ESCROW_TARGET_MAX]) {
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(ssbtss)");
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const EscrowRecord *e = &records[i];
                EscrowTarget t = escrow_target_from_string(e->target);

                r = sd_bus_message_append(reply, "(ssbtss)", e->target, escrow_state_to_string(e->state), e->verified,
                                          e->time, e->location,
                                          t >= 0 && e->state != ESCROW_DONE ? strempty(errors[t]) : "");
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
}

static int append_escrow(sd_bus_message *reply, const ManagedVolume *v) {
        return append_escrow_records(reply, v->escrow, v->n_escrow, v->escrow_error);
}

/* How each configured target keeps its recovery passwords: encrypted to the DRA, and in words. */
static int property_get_escrow_encryption(sd_bus *bus, const char *path, const char *interface,
                                          const char *property, sd_bus_message *reply, void *userdata,
                                          sd_bus_error *error) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        Manager *m = userdata;
        bool have_dra;
        int r, load;

        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        load = manager_load_dra_cert(m, &cert);
        have_dra = load >= 0;
        r = sd_bus_message_open_container(reply, 'a', "(sbs)");
        for (EscrowTarget t = 0; r >= 0 && t < _ESCROW_TARGET_MAX; t++) {
                bool encrypted = escrow_target_encrypted(&m->config, t, have_dra);
                const char *how;

                if (!(m->config.escrow_targets & (1u << t)))
                        continue;
                if (t == ESCROW_TARGET_AD)
                        how = "protected by the directory's access control";
                else if (encrypted)
                        how = "encrypted to the DRA";
                else if (load < 0 && load != -ENOENT)
                        how = "not sent: the DRA certificate cannot be loaded";
                else if (!have_dra)
                        how = "NOT encrypted (no DRA certificate)";
                else
                        how = "NOT encrypted (HookPlaintext=yes)";
                r = sd_bus_message_append(reply, "(sbs)", escrow_target_to_string(t), encrypted, how);
        }
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static int property_get_vmk_escrow(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        return append_escrow_records(reply, m->vmk_escrow, m->n_vmk_escrow, m->vmk_escrow_error);
}

static int property_get_server_escrow(sd_bus *bus, const char *path, const char *interface, const char *property,
                                      sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        (void) bus;
        (void) path;
        (void) interface;
        (void) property;
        (void) error;
        return append_escrow_records(reply, m->server_recovery.escrow,
                                     m->have_server_recovery ? m->server_recovery.n_escrow : 0, m->server_escrow_error);
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
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check(v->manager, message, "org.sealvol1.escrow", error);
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

static void escrow_all_reply(Manager *m, sd_bus_message *request, ManagedVolume *v, const EscrowPassResult *res) {
        (void) v;
        (void) sd_bus_reply_method_return(request, "uu", res->done, res->failed);
        (void) m;
}

static int method_escrow_all(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        r = check_flags(flags, error);
        if (r < 0)
                return r;
        r = polkit_check(m, message, "org.sealvol1.escrow", error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* Every volume's password, and the server's own secrets: its recovery password, and the VMK
         * export if there is one. The pass writes an audit record for each and answers when done. */
        r = manager_escrow_start(m, message, NULL, /* all= */ true, escrow_all_reply);
        if (r == -EBUSY)
                return sd_bus_error_set(error, BUS_ERROR_BUSY,
                                        "Too many escrow calls wait for the pass under way; try again when it is done.");
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to start the escrow: %m");
        return 1;
}

/* ---- vtables and objects ------------------------------------------------------------------------ */

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PCRBank", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("PCRs", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("MinimumPCRs", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("ChangedPCRs", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("SealedPCRs", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TPMPresent", "b", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TPMManufacturer", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TPMFirmware", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("TPMLockout", "(uub)", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DRAFingerprint", "s", property_get_manager, 0, 0),
        SD_BUS_PROPERTY("VMKAvailable", "b", property_get_manager, 0, 0),
        SD_BUS_PROPERTY("VMKId", "s", property_get_manager, 0, 0),
        SD_BUS_PROPERTY("ServerRecoveryKeyId", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VMKRotation", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Operations", "as", property_get_operations, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ServerRecoveryEscrow", "a(ssbtss)", property_get_server_escrow, 0,
                        SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("DeviceMapper", "b", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("EscrowTargets", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("EscrowRequired", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("EscrowEncrypted", "b", property_get_manager, 0, 0),
        SD_BUS_PROPERTY("EscrowEncryption", "a(sbs)", property_get_escrow_encryption, 0, 0),
        SD_BUS_PROPERTY("VMKEscrow", "a(ssbtss)", property_get_vmk_escrow, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("BootState", "s", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("VolumeCount", "u", property_get_manager, 0, 0),
        SD_BUS_PROPERTY("RecoveryRequiredCount", "u", property_get_manager, 0, 0),
        SD_BUS_PROPERTY("RefusedDevices", "a(sss)", property_get_manager, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListVolumes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(ssso)", volumes), method_list_volumes,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetVolume", SD_BUS_ARGS("s", uuid), SD_BUS_RESULT("o", volume), method_get_volume,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ProvisionVolume", SD_BUS_ARGS("s", device, "t", flags),
                                SD_BUS_RESULT("o", volume, "s", recovery_key_id), method_provision,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ProvisionInPlace", SD_BUS_ARGS("s", device, "t", flags),
                                SD_BUS_RESULT("o", volume, "s", recovery_key_id), method_provision_in_place,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnlockAll", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("u", opened, "u", failed),
                                method_unlock_all, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResealVMK", SD_BUS_ARGS("s", pcr_bank, "s", pcrs, "t", flags), SD_BUS_NO_RESULT,
                                method_reseal, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RotateVMK", SD_BUS_ARGS("t", flags),
                                SD_BUS_RESULT("s", vmk_id, "s", server_recovery_key_id), method_rotate_vmk,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("UnlockWithServerRecoveryPassword", SD_BUS_ARGS("s", password, "t", flags),
                                SD_BUS_RESULT("u", opened, "u", failed), method_unlock_server_password,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("GetServerRecoveryPassword", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", password, "s", key_id),
                                method_get_server_password, SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("ReplaceTPMWithDRAKey", SD_BUS_ARGS("h", private_key, "t", flags),
                                SD_BUS_RESULT("s", record), method_replace_tpm_dra,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("ReplaceTPMWithServerRecoveryPassword", SD_BUS_ARGS("s", password, "t", flags),
                                SD_BUS_RESULT("s", record), method_replace_tpm_server_password,
                                SD_BUS_VTABLE_UNPRIVILEGED | SD_BUS_VTABLE_SENSITIVE),
        SD_BUS_METHOD_WITH_ARGS("SetDRACertificate", SD_BUS_ARGS("h", certificate, "t", flags),
                                SD_BUS_RESULT("u", rewrapped), method_set_dra, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ExportVMK", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("s", wrapped_json),
                                method_export_vmk, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EscrowAll", SD_BUS_ARGS("t", flags), SD_BUS_RESULT("u", escrowed, "u", failed),
                                method_escrow_all, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("RecoveryRequired", SD_BUS_ARGS("o", volume, "s", uuid, "s", recovery_key_id, "s", reason),
                                0),
        SD_BUS_VTABLE_END,
};

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

int manager_bus_setup(Manager *m) {
        int r;

        r = sd_bus_error_add_map(sealvol_bus_errors);
        if (r < 0)
                return log_error_errno(r, "Failed to register the error names: %m");
        r = sd_bus_add_object_vtable(m->bus, NULL, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the manager object: %m");
        r = sd_bus_add_fallback_vtable(m->bus, NULL, SEALVOL_VOLUME_PATH_PREFIX, SEALVOL_VOLUME_INTERFACE, volume_vtable,
                                       volume_object_find, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the volume objects: %m");
        r = sd_bus_add_node_enumerator(m->bus, NULL, SEALVOL_VOLUME_PATH_PREFIX, volume_node_enumerator, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the volume enumerator: %m");
        r = sd_bus_add_object_manager(m->bus, NULL, SEALVOL_MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add the object manager: %m");
        return 0;
}
