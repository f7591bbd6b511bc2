/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-manager-bus.c: the Manager object, /org/sealvol1 (docs/bus-api.md): the server's
 * properties, provisioning, unlock of every volume, the sealed VMK (reseal, rotation, TPM
 * replacement), the DRA, the server recovery password, escrow of everything.
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

/* The operations running (sealvold-operation.c, and in-place encryptions): a volume's as "<name> <uuid>",
 * the server's by name. */
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
        /* An in-place encryption, its thread of its own (sealvold-inplace.c), is the volume's operation too. */
        for (size_t i = 0; r >= 0 && i < m->n_volumes; i++) {
                const ManagedVolume *v = m->volumes[i];
                char buf[64 + VOLUME_UUID_STRING_MAX];

                if (!v->job || v->operation)
                        continue;
                snprintf(buf, sizeof(buf), "encrypt %s", v->uuid);
                r = sd_bus_message_append_basic(reply, 's', buf);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        return r;
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
static int read_device_and_flags(sd_bus_message *message, uint64_t known, const char **ret_device,
                                 uint64_t *ret_flags, sd_bus_error *error) {
        const char *device;
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "st", &device, &flags);
        if (r < 0)
                return r;
        if (!device_path_valid(device))
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not an absolute device path: %s", device);
        r = check_flags_known(flags, known, error);
        if (r < 0)
                return r;
        *ret_device = device;
        if (ret_flags)
                *ret_flags = flags;
        return 0;
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

        r = read_device_and_flags(message, FLAGS_NONE, &device, NULL, error);
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
        uint64_t flags;
        int r;

        r = read_device_and_flags(message, SEALVOL_IN_PLACE_PAUSED, &device, &flags, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.provision", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Answered by the job once the device is a sealvol volume (or with why not). */
        r = manager_provision_in_place(m, device, flags & SEALVOL_IN_PLACE_PAUSED, message, &what);
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
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.unlock", false, error);
        if (r <= 0)
                return r < 0 ? r : 1;

        /* Answered by the pass that opens them. */
        r = manager_unlock_start(m, UNLOCK_ALL, NULL, message, reply_unlock_counts, NULL, NULL);
        return r < 0 ? r : 1;
}

static void resealed(Manager *m, sd_bus_message *request, int r) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *bank_name = NULL;

        audit_record(request, "reseal", NULL, r, NULL);
        if (r >= 0) {
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "ChangedPCRs", NULL);
                (void) sd_bus_reply_method_return(request, NULL);
                return;
        }
        if (r == -ENXIO)
                (void) sd_bus_error_setf(&error, BUS_ERROR_OTHER_TPM,
                                         "The TPM's storage root key is not the one the VMK is pinned to (another TPM, "
                                         "a cleared one, or a key planted at its handle): refusing to seal to it. If "
                                         "the TPM was replaced on purpose, run the TPM replacement (ReplaceTPM...).");
        else if (r == -EOPNOTSUPP) {
                /* The bank asked for, from the request (read again: it is the caller's message). */
                (void) sd_bus_message_rewind(request, true);
                (void) sd_bus_message_read(request, "s", &bank_name);
                (void) sd_bus_error_setf(&error, SD_BUS_ERROR_NOT_SUPPORTED, "The TPM has no %s PCR bank.",
                                         isempty(bank_name) ? "such" : bank_name);
        } else
                (void) volume_error(&error, r, NULL, "Reseal");
        (void) sd_bus_reply_method_error(request, &error);
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
         * resealed: a changed boot is accepted by proving a recovery, never by just asking. Answered
         * when the operation is done (resealed()). */
        r = manager_reseal_start(m, message, bank, mask, resealed);
        if (r < 0)
                resealed(m, message, r);
        return 1;
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

static void dra_set(Manager *m, sd_bus_message *request, int r, unsigned rewrapped, const char *detail) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;

        (void) m;
        audit_record(request, "set-dra-certificate", NULL, r, detail);
        if (r >= 0) {
                (void) sd_bus_reply_method_return(request, "u", (uint32_t) rewrapped);
                return;
        }
        (void) volume_error(&error, r, NULL, "Failed to set the DRA certificate");
        (void) sd_bus_reply_method_error(request, &error);
}

static int method_set_dra(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ void *data = NULL;
        _cleanup_free_ char *reason = NULL, *old_fp = NULL, *offered_fp = NULL, *detail = NULL;
        _cleanup_(X509_freep) X509 *offered = NULL;
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
        /* The VMK first, off the loop, when the daemon holds none (the call runs again then). */
        r = bus_need_vmk(m, message, "org.sealvol1.manage-dra", error);
        if (r != 0)
                return r;
        r = read_passed_file(fd, DRA_CERT_FILE_MAX, &data, &size, false);
        if (r < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The certificate must be passed as a regular file of at most %zu bytes.",
                                         DRA_CERT_FILE_MAX);
        /* Which certificate replaced which, or was refused: both fingerprints are in the audit trail. */
        old_fp = dra_fingerprint_in_force(m);
        if (dra_cert_load(data, size, &offered) >= 0)
                offered_fp = cert_fingerprint_string(offered);
        if (asprintf(&detail, "old %s, new %s", old_fp ?: "none", offered_fp ?: "(not a certificate)") < 0)
                detail = NULL;
        /* Answered when the volumes are re-wrapped (dra_set()); a refusal of the certificate at once. */
        r = manager_set_dra_start(m, message, data, size, dra_set, &detail, &reason);
        if (r == -EKEYREJECTED) {
                audit_record(message, "set-dra-certificate", NULL, r, detail);
                return sd_bus_error_setf(error, BUS_ERROR_CERTIFICATE_REJECTED, "Refused as a DRA certificate: %s",
                                         strempty(reason));
        }
        if (r < 0)
                dra_set(m, message, r, 0, detail);
        return 1;
}

static int method_export_vmk(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_free_ char *json = NULL;
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        r = polkit_check_alone(m, message, "org.sealvol1.export-vmk", true, error);
        if (r <= 0)
                return r < 0 ? r : 1;
        /* The VMK first, off the loop, when the daemon holds none (the call runs again then). */
        r = bus_need_vmk(m, message, "org.sealvol1.export-vmk", error);
        if (r != 0)
                return r;
        r = manager_export_vmk(m, &json);
        audit_record(message, "export-vmk", NULL, r, NULL);
        if (r == -ENOKEY)
                return sd_bus_error_setf(error, BUS_ERROR_NO_PROTECTOR, "No DRA certificate is configured.");
        if (r < 0)
                return volume_error(error, r, NULL, "Failed to export the VMK");
        /* Wrapped to the DRA certificate: not a secret, but only the DRA can open it. */
        return sd_bus_reply_method_return(message, "s", json);
}

/* A replacement TPM whose EK certificate does not hold ([TPM] EKCertificateCA=): nothing was sealed. */
static int untrusted_tpm_error(sd_bus_error *error, const char *why) {
        return sd_bus_error_setf(error, BUS_ERROR_UNTRUSTED_TPM,
                                 "The TPM in place is not one its maker certified: %s. Nothing was sealed to it.",
                                 why ?: "its EK certificate could not be checked");
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
        int r;

        r = read_flags(message, error);
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

/* The front of a call proven with the server recovery password: the password read (refused before
 * polkit when it is too long to be one), polkit asked for action, the server idle. 1 to go on, 0 when
 * polkit calls again, or -errno. */
static int read_server_password(Manager *m, sd_bus_message *message, const char *action, const char **ret_password,
                                sd_bus_error *error) {
        int r;

        r = read_password_and_flags(message, ret_password, error);
        if (r < 0)
                return r;
        return polkit_check_alone(m, message, action, /* all= */ true, error);
}

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
                reply_error(o->request, &error);
        }
}

static int method_unlock_server_password(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        ServerUnlockData *d;
        const char *password;
        int r;

        r = read_server_password(m, message, "org.sealvol1.recover", &password, error);
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
        reply_error(request, &error);
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

        r = read_server_password(m, message, "org.sealvol1.manage-tpm", &password, error);
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

        /* The VMK too, unsealed off the loop when the daemon holds none (the call runs again then). */
        r = polkit_check_vmk(m, message, "org.sealvol1.read-recovery-password", error);
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

static void escrow_all_reply(Manager *m, sd_bus_message *request, ManagedVolume *v, const EscrowPassResult *res) {
        (void) v;
        (void) sd_bus_reply_method_return(request, "uu", res->done, res->failed);
        (void) m;
}

static int method_escrow_all(sd_bus_message *message, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = read_flags(message, error);
        if (r < 0)
                return r;
        /* The VMK too, unsealed off the loop when the daemon holds none (the call runs again then). */
        r = polkit_check_vmk(m, message, "org.sealvol1.escrow", error);
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

int manager_bus_add(Manager *m) {
        int r;

        r = sd_bus_add_object_vtable(m->bus, NULL, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, manager_vtable, m);
        if (r < 0)
                return log_error_errno(r, "Failed to add the manager object: %m");
        return 0;
}
