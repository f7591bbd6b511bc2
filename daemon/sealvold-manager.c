/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-manager.c: the daemon's start and stop, and its operations on the VMK (unsealed once,
 * kept in secure memory) and the volumes: provisioning, unlocking, recovery, erase, the DRA.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dra.h"
#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "openssl-util.h"
#include "pcr-floor.h"
#include "recovery.h"
#include "sealvold.h"
#include "secmem.h"
#include "tpm-identity.h"
#include "tpm2.h"
#include "volume-probe.h"

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;
        polkit_queries_free(m);
        for (size_t i = 0; i < m->n_vmk_waiters; i++)
                sd_bus_message_unref(m->vmk_waiters[i]);
        free(m->vmk_waiters);
        if (m->stop_fd >= 0 && eventfd_write(m->stop_fd, 1) < 0)
                log_warning_errno(errno, "Failed to abandon the escrow under way (it finishes first): %m");
        manager_stop_jobs(m);
        manager_stop_operations(m);
        manager_unlock_waiters_free(m);
        manager_escrow_queue_free(m);
        sd_event_source_unref(m->escrow_timer);
        sd_event_source_unref(m->boot_timer);
        sd_device_monitor_unref(m->device_monitor);
        manager_refused_clear(m);
        free(m->machine_id);
        for (size_t i = 0; i < m->n_volumes; i++)
                managed_volume_free(m->volumes[i]);
        free(m->volumes);
        secure_free(m->vmk);
        secure_free(m->previous_vmk);
        sd_bus_flush_close_unref(m->bus);
        sd_event_unref(m->event);
        config_done(&m->config);
        free(m->config_path);
        free(m->state_dir);
        free(m->vmk_path);
        free(m->escrow_socket_path);
        free(m->escrow_helper_path);
        free(m->volumes_dir);
        free(m->dra_cert_path);
        free(m->vmk_export_path);
        free(m->vmk_escrow_path);
        free(m->server_recovery_path);
        free(m->server_recovery_next_path);
        free(m->rotation_due_path);
        server_recovery_done(&m->server_recovery);
        escrow_errors_done(m->server_escrow_error);
        escrow_errors_done(m->vmk_escrow_error);
        if (m->stop_fd >= 0)
                (void) close(m->stop_fd);
        free(m);
        return NULL;
}

static int compare_volumes(const void *a, const void *b) {
        const ManagedVolume *x = *(ManagedVolume *const *) a, *y = *(ManagedVolume *const *) b;
        return strcmp(x->device, y->device);
}

static void used_password_load(Manager *m, ManagedVolume *v);

static int registry_load(Manager *m) {
        _cleanup_(closedirp) DIR *d = opendir(m->volumes_dir);
        struct dirent *de;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_(managed_volume_freep) ManagedVolume *v = NULL;
                _cleanup_free_ char *path = NULL, *device = NULL;
                int r;

                if (de->d_name[0] == '.' || strlen(de->d_name) != VOLUME_UUID_STRING_MAX - 1)
                        continue;
                if (asprintf(&path, "%s/%s", m->volumes_dir, de->d_name) < 0)
                        return -ENOMEM;
                r = read_file_full(path, DEVICE_PATH_MAX, &device, NULL);
                if (r < 0) {
                        log_warning_errno(r, "Failed to read %s, ignoring: %m", path);
                        continue;
                }
                device[strcspn(device, "\n")] = '\0';
                if (device[0] != '/') {
                        log_warning("%s does not name a device, ignoring.", path);
                        continue;
                }
                r = managed_volume_new(m, de->d_name, device, &v);
                if (r < 0)
                        return r;
                (void) manager_refresh_volume(v, NULL);
                used_password_load(m, v);
                r = manager_add_volume(m, v);
                if (r < 0)
                        return r;
                TAKE_PTR(v);
        }
        /* A stable order for people and scripts: by device. (qsort() takes no NULL, even for none.) */
        if (m->n_volumes > 1)
                qsort(m->volumes, m->n_volumes, sizeof(*m->volumes), compare_volumes);
        return 0;
}

/* The kernel's device-mapper registers the misc device "device-mapper"; /dev/mapper/control can
 * exist without it (a container, a package's tmpfiles), so the node proves nothing. */
static bool device_mapper_available(void) {
        _cleanup_fclose_ FILE *f = fopen("/proc/misc", "re");
        char line[128];

        while (f && fgets(line, sizeof(line), f))
                if (strstr(line, " device-mapper"))
                        return true;
        return false;
}

/* A crash between a temporary file and its rename leaves the temporary: gone at the next start (one
 * may hold a plain spool record, a password). */
static void manager_sweep_temporaries(Manager *m) {
        static const char *const subdirs[] = { "", "/volumes", "/used-passwords", "/erased", "/inplace", "/escrow" };

        for (size_t i = 0; i <= ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *dir = NULL;
                int r;

                if (i < ELEMENTSOF(subdirs))
                        dir = asprintf(&dir, "%s%s", m->state_dir, subdirs[i]) < 0 ? NULL : dir;
                else if (m->config.escrow_spool_directory) /* a spool of its own */
                        dir = strdup(m->config.escrow_spool_directory);
                else
                        break;
                if (!dir)
                        return;
                r = sweep_stale_temporaries(dir);
                if (r < 0)
                        log_warning_errno(r, "Failed to remove unfinished temporary files from %s, ignoring: %m", dir);
                else if (r > 0)
                        log_info("Removed %d unfinished temporary files from %s (a crash while writing).", r, dir);
        }
}

int manager_new(const char *config_path, Manager **ret) {
        _cleanup_(manager_freep) Manager *m = calloc(1, sizeof(Manager));
        _cleanup_free_ char *error = NULL;
        int r;

        if (!m)
                return log_oom();
        m->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->stop_fd < 0)
                return log_error_errno(errno, "Failed to make an eventfd: %m");
        m->hooks.volume_forgotten = manager_unlock_forget;
        config_init(&m->config);
        r = config_load(config_path, &m->config, &error);
        if (r == -EBADMSG)
                return log_error_errno(r, "Invalid configuration: %s", strempty(error));
        if (r < 0)
                return log_error_errno(r, "Failed to load the configuration: %m");

        /* What a disk's recovery keyslot may ask for before its KDF runs. */
        volume_set_recovery_kdf_max(m->config.recovery_kdf_iterations_max);

        /* systemd's StateDirectory= says where (STATE_DIRECTORY), unless the configuration does. */
        m->state_dir = strdup(m->config.state_directory ?: getenv("STATE_DIRECTORY") ?: SEALVOL_STATEDIR);
        if (!m->state_dir || asprintf(&m->vmk_path, "%s/vmk.sealed", m->state_dir) < 0 ||
            asprintf(&m->volumes_dir, "%s/volumes", m->state_dir) < 0 ||
            asprintf(&m->dra_cert_path, "%s/dra.pem", m->state_dir) < 0 ||
            asprintf(&m->vmk_export_path, "%s/vmk-export.json", m->state_dir) < 0 ||
            asprintf(&m->vmk_escrow_path, "%s/vmk-escrow.json", m->state_dir) < 0 ||
            asprintf(&m->server_recovery_path, "%s/server-recovery.json", m->state_dir) < 0 ||
            asprintf(&m->server_recovery_next_path, "%s/server-recovery.next.json", m->state_dir) < 0 ||
            asprintf(&m->rotation_due_path, "%s/vmk-rotation-due", m->state_dir) < 0)
                return log_oom();
        if (mkdir(m->state_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Failed to create %s: %m", m->state_dir);

        r = manager_find_escrow_helper(m);
        if (r < 0)
                return r;

        /* Who this server is, in every escrow record. */
        (void) gethostname(m->hostname, sizeof(m->hostname) - 1);
        if (read_file_full("/etc/machine-id", 64, &m->machine_id, NULL) >= 0) {
                m->machine_id[strcspn(m->machine_id, "\n")] = '\0';
                if (strlen(m->machine_id) != 32 || strspn(m->machine_id, "0123456789abcdef") != 32)
                        m->machine_id = mfree(m->machine_id);
        }

        /* No device-mapper (a container, these build machines): unlocking verifies every key and
         * says why nothing was mapped. */
        m->device_mapper = device_mapper_available();

        manager_sweep_temporaries(m);
        (void) manager_load_vmk_escrow(m);
        manager_rotation_recover(m);
        (void) manager_load_server_recovery(m);
        m->rotation_due = access(m->rotation_due_path, F_OK) >= 0;
        /* SealedPCRs from here on, without the file being read for every Get. */
        manager_sealed_refresh(m, NULL);

        r = registry_load(m);
        if (r < 0)
                return log_error_errno(r, "Failed to load the volume registry %s: %m", m->volumes_dir);

        *ret = TAKE_PTR(m);
        return 0;
}

/* ---- the VMK ---------------------------------------------------------------------------------- */

/* What identifies a TPM the VMK is sealed to: the SRK it is pinned to, who made the TPM and which
 * firmware it runs, and its EK certificate when that was checked (ek: NULL otherwise). */
json_object *tpm_identity_json(const TPM2B_NAME *srk, const Tpm2Info *info, const TpmIdentity *ek) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        _cleanup_free_ char *firmware = NULL;

        if (!o || asprintf(&firmware, "%u.%u.%u.%u", info->firmware[0] >> 16, info->firmware[0] & 0xffff,
                           info->firmware[1] >> 16, info->firmware[1] & 0xffff) < 0)
                return NULL;
        if (json_add_hex(o, "srk_name", srk->name, srk->size) < 0 ||
            json_add_string(o, "manufacturer", info->manufacturer) < 0 ||
            json_add_string(o, "vendor", info->vendor) < 0 || json_add_string(o, "firmware", firmware) < 0)
                return NULL;
        if (ek && ek->have_ek_cert &&
            (json_add_hex(o, "ek_certificate_sha256", ek->ek_cert_fingerprint, sizeof(ek->ek_cert_fingerprint)) < 0 ||
             json_add_string(o, "ek_certificate_subject", ek->ek_cert_subject) < 0 ||
             json_add_string(o, "ek_certificate_issuer", ek->ek_cert_issuer) < 0 ||
             json_add_hex(o, "ek_name", ek->ek_name.name, ek->ek_name.size) < 0))
                return NULL;
        return TAKE_PTR(o);
}

/* <state>/tpm-identity.json: the TPM the VMK is sealed to now, written when it is first sealed and at
 * each replacement, so that the next replacement can say which TPM it replaced. A record for people
 * (the sealed state's srk_name is what counts): failures are logged, never fatal. */
void tpm_identity_write(Manager *m, json_object *identity) {
        _cleanup_free_ char *path = NULL, *text = json_format(identity);
        int r;

        if (!text || asprintf(&path, "%s/tpm-identity.json", m->state_dir) < 0) {
                log_oom();
                return;
        }
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                log_warning_errno(r, "Failed to write %s, ignoring: %m", path);
}

/* The TPM this server's VMK was first sealed to. */
static void tpm_identity_note_first(Manager *m, const Tpm2Info *info, const VmkBlob *blob) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        o = tpm_identity_json(&blob->sealed.srk_name, info, NULL);
        if (o)
                tpm_identity_write(m, o);
}

void vmk_unseal_done(VmkUnseal *u) {
        free(u->tcti);
        free(u->path);
        free(u->server_path);
        u->vmk = secure_free(u->vmk);
        u->previous = secure_free(u->previous);
        escrow_env_done(&u->env);
        if (u->server_made)
                server_recovery_done(&u->server);
        escrow_errors_done(u->server_errors);
}

int vmk_unseal_init(Manager *m, VmkUnsealFlags flags, VmkUnseal *ret) {
        int r;

        *ret = (VmkUnseal) {
                .tcti = strdup(tpm2_tcti_select(m->config.tcti)),
                .path = strdup(m->vmk_path),
                .tpm = m->tpm,
                .result = 1,
                .create = flags & VMK_UNSEAL_CREATE,
                .make_server = flags & VMK_UNSEAL_SERVER_RECOVERY,
                .bank = m->config.pcr_bank,
                .mask = m->config.pcr_mask,
                .server_vmk_id = m->have_server_recovery ? m->server_recovery.vmk_id : (Guid) {},
                .server_iterations = manager_server_recovery_iterations(m),
                .server_path = strdup(m->server_recovery_path),
        };
        r = !ret->tcti || !ret->path || !ret->server_path ? -ENOMEM :
            ret->make_server                          ? manager_escrow_env(m, &ret->env) :
                                                        0;
        if (r < 0) {
                vmk_unseal_done(ret);
                return r;
        }
        return 0;
}

/* The server's first VMK, sealed to the configuration's PCRs. */
static int vmk_create_sealed(VmkUnseal *u, Tpm2Context *c) {
        int r;

        r = vmk_generate(&u->vmk);
        if (r < 0)
                return log_error_errno(r, "Failed to generate the VMK: %m");
        r = vmk_seal_to_file(c, u->vmk, NULL, u->bank, u->mask, u->path, &u->blob);
        if (r < 0)
                return log_error_errno(r, "Failed to seal the new VMK to the TPM: %m");
        log_info("Created the server's VMK %s.", guid_format(&u->blob.vmk_id, (char[GUID_STRING_MAX]) {}));
        u->have_info = tpm2_get_info(c, &u->info) >= 0;
        return 0;
}

int vmk_unseal_run(VmkUnseal *u) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;

        u->result = tpm2_context_new(u->tcti, &c);
        if (u->result < 0) {
                u->open_failed = true;
                return u->result;
        }
        u->result = u->create ? vmk_create_sealed(u, c) :
                                vmk_unseal_from_file_full(c, u->path, &u->vmk, &u->previous, &u->blob, &u->changed);
        if (u->result < 0)
                return u->result;
        /* The TPM's state is asked on this connection, not another. */
        tpm_status_read(c, &u->tpm);
        /* The server-scoped way back in exists from the VMK's first day. A failure is the loop's to
         * retry (manager_ensure_server_recovery()), not the unseal's. */
        if (u->make_server && !guid_equal(&u->server_vmk_id, &u->blob.vmk_id) &&
            server_recovery_make(u->vmk, &u->blob.vmk_id, u->server_iterations, &u->env, u->server_path, &u->server,
                                 u->server_errors) >= 0)
                u->server_made = true;
        return u->result;
}

/* The daemon holds vmk (and previous, secure memory, both taken) as the sealed state blob names them;
 * what the bus shows follows. */
static void vmk_install(Manager *m, uint8_t *vmk, uint8_t *previous, const VmkBlob *blob) {
        secure_free(m->vmk);
        m->vmk = vmk;
        m->vmk_id = blob->vmk_id;
        secure_free(m->previous_vmk);
        m->previous_vmk = previous;
        m->previous_vmk_id = blob->has_previous ? blob->previous_id : (Guid) {};
        m->blob = *blob;
        m->have_blob = true;
        m->last_pcr_mismatch = 0;
        manager_sealed_refresh(m, blob);
}

int manager_vmk_unsealed(Manager *m, VmkUnseal *u) {
        int r = u->result;

        if (u->open_failed)
                return log_error_errno(r, "Failed to open the TPM (%s): %m", u->tcti);
        if (r == -ESTALE) {
                char pcrs[128];

                m->last_pcr_mismatch = u->changed;
                return log_error_errno(r, "The TPM refuses the VMK: PCR %s changed since it was sealed.",
                                       tpm2_pcr_mask_to_string(u->changed, pcrs, sizeof(pcrs)));
        }
        if (r == -ENOENT)
                return log_error_errno(ENOPKG, "No VMK on this server yet (%s).", u->path);
        if (r < 0)
                return log_error_errno(r, "Failed to unseal the VMK from %s: %m", u->path);
        /* A sealed state from before key check values: it gets the one of the key the TPM gave, from
         * now on the measure of any VMK a recovery brings. A server of version 1 kept its VMK under
         * every disk's recovery password (in any copy of those headers): it is rotated, noted before
         * the upgrade so that a crash in between cannot forget it. */
        if (u->blob.version < VMK_BLOB_VERSION) {
                if (!m->rotation_due)
                        manager_note_server_secret_used(m, "A server of version 1 (its VMK was kept under each "
                                                           "disk's recovery password)");
                r = vmk_blob_write(&u->blob, m->vmk_path);
                if (r < 0)
                        log_warning_errno(r, "Failed to upgrade %s to version %u, ignoring: %m", m->vmk_path,
                                          VMK_BLOB_VERSION);
                else
                        log_info("Sealed state %s upgraded to version %u.", m->vmk_path, VMK_BLOB_VERSION);
        }
        if (u->create && u->have_info)
                tpm_identity_note_first(m, &u->info, &u->blob);
        vmk_install(m, TAKE_PTR(u->vmk), TAKE_PTR(u->previous), &u->blob);
        manager_tpm_apply(m, &u->tpm);
        if (u->server_made) {
                manager_server_recovery_made(m, &u->server, u->server_errors);
                u->server_made = false;
        }
        /* The server-scoped way back in exists from the VMK's first day (made here if the worker
         * could not). */
        (void) manager_ensure_server_recovery(m);
        return 0;
}

static int vmk_load(Manager *m, bool create) {
        VmkUnseal u;
        int r;

        r = vmk_unseal_init(m,
                            VMK_UNSEAL_SERVER_RECOVERY |
                                    (create && access(m->vmk_path, F_OK) < 0 && errno == ENOENT ? VMK_UNSEAL_CREATE : 0),
                            &u);
        if (r < 0)
                return log_oom();
        (void) vmk_unseal_run(&u);
        r = manager_vmk_unsealed(m, &u);
        vmk_unseal_done(&u);
        return r;
}

/* The key check value of the VMK id names, from the sealed state (version 2), else from the server's
 * VMK export (a version 1 sealed state the TPM has not opened since the upgrade). Both are in the
 * root-only state directory; nothing on a disk is asked. */
static int vmk_expected_check(Manager *m, const Guid *id, uint8_t ret[static VMK_KEY_CHECK_SIZE]) {
        _cleanup_free_ char *json = NULL;
        VmkBlob blob;
        Guid export_id;
        int r;

        r = vmk_blob_read(m->vmk_path, &blob);
        if (r >= 0 && blob.version >= 2 && guid_equal(&blob.vmk_id, id)) {
                memcpy(ret, blob.key_check, VMK_KEY_CHECK_SIZE);
                return 0;
        }
        if (r >= 0 && blob.version >= 2)
                return -EKEYREJECTED; /* not this server's current VMK */
        if (r < 0 && r != -ENOENT)
                return r;
        r = manager_read_vmk_export(m, &json, &export_id, NULL);
        if (r < 0 || !guid_equal(&export_id, id))
                return -ENOPKG;
        return vmk_export_key_check(json, strlen(json), ret);
}

int manager_accept_vmk(Manager *m, uint8_t *vmk, const Guid *vmk_id, const char *what) {
        _cleanup_secure_ uint8_t *key = vmk;
        uint8_t expected[VMK_KEY_CHECK_SIZE], kcv[VMK_KEY_CHECK_SIZE];
        char id[GUID_STRING_MAX];
        int r;

        guid_format(vmk_id, id);
        if (m->vmk)
                return guid_equal(&m->vmk_id, vmk_id) && memeq_secure(m->vmk, vmk, VMK_SIZE) ? 0 : -EKEYREJECTED;
        r = vmk_expected_check(m, vmk_id, expected);
        if (r >= 0)
                r = vmk_key_check_value(key, kcv);
        if (r >= 0 && !memeq_secure(kcv, expected, sizeof(kcv)))
                r = -EKEYREJECTED;
        if (r == -EKEYREJECTED)
                return log_error_errno(r, "Refusing the VMK from %s: it is not the VMK %s this server's sealed state names.",
                                       what, id);
        if (r < 0)
                return log_error_errno(r, "Refusing the VMK from %s: there is no sealed state to check it against: %m",
                                       what);
        m->vmk = TAKE_PTR(key);
        m->vmk_id = *vmk_id;
        m->have_blob = vmk_blob_read(m->vmk_path, &m->blob) >= 0;
        log_info("VMK %s recovered with %s.", id, what);
        (void) manager_ensure_server_recovery(m);
        return 0;
}

int manager_ensure_vmk(Manager *m, bool create) {
        int r;

        if (m->vmk)
                return 0;
        /* Asked and refused in this pass: the TPM's answer does not change from one volume to the
         * next, and each attempt costs TPM commands (and the journal a line). */
        if (m->pass_unseal_error < 0)
                return m->pass_unseal_error;
        r = vmk_load(m, create);
        if (r < 0 && m->pass_depth > 0)
                m->pass_unseal_error = r;
        return r;
}

void manager_pass_begin(Manager *m) {
        if (m->pass_depth++ == 0)
                m->pass_unseal_error = 0;
}

void manager_pass_end(Manager *m) {
        if (m->pass_depth > 0 && --m->pass_depth == 0)
                m->pass_unseal_error = 0;
}

/* The reseal's snapshot (the VMKs the daemon holds, where and to what to seal) and what it sealed. */
typedef struct Reseal {
        ResealedFn done;
        char *tcti, *path;
        uint8_t *vmk, *previous; /* secure memory */
        Guid vmk_id, previous_id;
        TPMI_ALG_HASH bank;
        uint32_t mask;
        VmkBlob blob;
        TpmStatus tpm;
} Reseal;

static void reseal_free(void *p) {
        Reseal *d = p;

        if (!d)
                return;
        free(d->tcti);
        free(d->path);
        secure_free(d->vmk);
        secure_free(d->previous);
        free(d);
}

/* On the worker. A rotation under way keeps the previous VMK sealed beside the current one. The SRK
 * stays the one the sealed state is pinned to (vmk_seal()). */
static int reseal_work(void *p) {
        Reseal *d = p;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        int r;

        r = tpm2_context_new(d->tcti, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to open the TPM (%s): %m", d->tcti);
        r = vmk_seal(c,
                     &(VmkSealParams) { .vmk = d->vmk, .vmk_id = &d->vmk_id, .previous = d->previous,
                                        .previous_id = d->previous ? &d->previous_id : NULL, .bank = d->bank,
                                        .pcr_mask = d->mask },
                     d->path, &d->blob);
        if (r < 0)
                return log_error_errno(r, "Failed to reseal the VMK: %m");
        /* The TPM is at hand for its lockout state too. */
        tpm_status_read(c, &d->tpm);
        return 0;
}

static void reseal_done(Operation *o, int r) {
        Reseal *d = o->data;
        Manager *m = o->manager;

        if (r >= 0) {
                /* Manager-wide operations run alone: the VMKs are still the ones it sealed. */
                m->blob = d->blob;
                m->have_blob = true;
                m->last_pcr_mismatch = 0;
                manager_sealed_refresh(m, &d->blob);
                manager_tpm_apply(m, &d->tpm);
                /* Now the passwords used during the recovery can be replaced safely. */
                manager_rotate_used_passwords(m);
                manager_escrow_retry(m);
        }
        d->done(m, o->request, r);
}

int manager_reseal_start(Manager *m, sd_bus_message *request, TPMI_ALG_HASH bank, uint32_t mask, ResealedFn done) {
        _cleanup_free_ char *floor = NULL;
        Reseal *d;
        int r;

        if (!m->vmk)
                return -ENOPKG;
        /* The bus checks this for its message; here it holds for every caller. */
        r = pcr_floor_check(mask ?: m->config.pcr_mask, m->config.pcr_min_mask, &floor);
        if (r < 0)
                return log_error_errno(r, "Refusing to reseal the VMK: %s", strempty(floor));
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        *d = (Reseal) {
                .done = done,
                .tcti = strdup(tpm2_tcti_select(m->config.tcti)),
                .path = strdup(m->vmk_path),
                .vmk = secure_memdup(m->vmk, VMK_SIZE),
                .previous = m->previous_vmk ? secure_memdup(m->previous_vmk, VMK_SIZE) : NULL,
                .vmk_id = m->vmk_id,
                .previous_id = m->previous_vmk_id,
                .bank = bank ?: m->config.pcr_bank,
                .mask = mask ?: m->config.pcr_mask,
        };
        if (!d->tcti || !d->path || !d->vmk || (m->previous_vmk && !d->previous)) {
                reseal_free(d);
                return -ENOMEM;
        }
        return operation_start_alone(m, request, "reseal", reseal_work, reseal_done, d, reseal_free, NULL);
}

/* A recovery password a person used while the TPM refused the VMK is replaced after the reseal; until
 * then a note in <state>/used-passwords/<uuid> (its Key ID) keeps that across restarts, so a reboot
 * between the recovery and the reseal cannot leave a seen password valid for good. */
static char *used_password_path(Manager *m, const char *uuid) {
        char *p;

        return asprintf(&p, "%s/used-passwords/%s", m->state_dir, uuid) < 0 ? NULL : p;
}

static void used_password_note(Manager *m, ManagedVolume *v, bool used) {
        _cleanup_free_ char *path = used_password_path(m, v->uuid), *dir = NULL;
        char id[GUID_STRING_MAX];
        int r = 0;

        v->rotate_after_reseal = used;
        if (!path)
                return;
        if (!used) {
                if (unlink(path) < 0 && errno != ENOENT)
                        log_warning_errno(errno, "Failed to remove %s: %m", path);
                return;
        }
        if (asprintf(&dir, "%s/used-passwords", m->state_dir) < 0)
                return;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                r = -errno;
        if (r >= 0) {
                guid_format(&v->key_ids[PROTECTOR_RECOVERY], id);
                r = write_file_atomic(path, id, strlen(id), 0600);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to note that the recovery password of %s was used (it is replaced at "
                                     "the reseal only while the daemon runs): %m", v->uuid);
}

/* At start: the notes of used passwords that are still the volumes' passwords. */
static void used_password_load(Manager *m, ManagedVolume *v) {
        _cleanup_free_ char *path = used_password_path(m, v->uuid), *id = NULL;
        Guid g;

        if (!path || read_file_full(path, 64, &id, NULL) < 0)
                return;
        if (guid_parse(id, &g) >= 0 && v->has[PROTECTOR_RECOVERY] && guid_equal(&g, &v->key_ids[PROTECTOR_RECOVERY]))
                v->rotate_after_reseal = true;
        else
                (void) unlink(path); /* replaced since, by a rotation this note did not hear of */
}

static void used_rotation_done(Operation *o, int r) {
        Manager *m = o->manager;

        /* Logged there; a failure leaves the note, and the next start tries again. */
        (void) manager_rotate_recovery_finish(m, o->volume, o->data, r, NULL, NULL);
        m->used_rotations--;
        manager_unlock_answer_rotated(m);
}

void manager_rotate_used_passwords(Manager *m) {
        if (!m->vmk)
                return;
        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];
                int r;

                /* A volume busy now keeps its note: the next start, or the next change of the VMK's
                 * state, replaces the password. */
                if (!v->rotate_after_reseal || v->operation || v->job)
                        continue;
                /* Each one an operation of its volume: the new keyslot's KDF and the escrow off the loop. */
                r = manager_rotate_recovery_start(m, v, NULL, used_rotation_done);
                if (r < 0) {
                        log_error_errno(r, "Failed to replace the used recovery password of %s, ignoring: %m",
                                        v->uuid);
                        continue;
                }
                m->used_rotations++;
        }
}

/* ---- operations ------------------------------------------------------------------------------ */

/* A provisioning of device that was interrupted (a crash, a kill) after the token was written, which
 * volume_provision() does last, once the keyslots are verified and the password escrowed: the volume
 * is complete, but the registry, written next, does not know it, and provisioning again would refuse
 * the device as not empty. Doing the provisioning again finishes that one instead: the volume is
 * registered as it would have been. 1 if so, 0 if device holds no such volume. A volume the daemon
 * knows, or another server's, is left to volume_provision() to refuse. */
static int provision_resume(Manager *m, const char *device, ManagedVolume **ret) {
        _cleanup_(volume_token_done) VolumeToken t = {};
        _cleanup_(volume_freep) Volume *vol = NULL;
        ManagedVolume *v;
        int r;

        if (volume_probe(device, &t) < 0 || !guid_equal(&t.vmk_id, &m->vmk_id) ||
            manager_find_volume(m, t.volume_uuid))
                return 0;
        /* Naming this server's VMK is no proof (its id is public): the token must be the daemon's own
         * writing. A planted one is refused as the device it is, not registered. */
        if (volume_load(device, &vol) < 0 || volume_authenticate(vol, m->vmk, &m->vmk_id) < 0)
                return 0;
        r = manager_register_volume(m, t.volume_uuid, device, &v);
        if (r < 0)
                return log_error_errno(r, "Failed to register volume %s: %m", t.volume_uuid);
        (void) manager_refresh_volume(v, NULL);
        log_notice("Volume %s on %s was provisioned by a call that did not finish; registered now.", v->uuid, device);
        *ret = v;
        return 1;
}

/* What follows every provisioning, once the volume is registered. */
static void provision_finish(Manager *m) {
        X509 *cert = NULL;

        /* With a DRA, the server keeps its VMK wrapped to it from the first volume on (a TPM or a main
         * board can be replaced without a recovery password), and escrows that copy. */
        if (access(m->vmk_export_path, F_OK) < 0 && manager_load_dra_cert(m, &cert) >= 0) {
                X509_free(cert);
                (void) manager_export_vmk(m, NULL);
        }
        manager_escrow_retry(m);
}

/* Provisioning as a shared manager-wide operation (sealvold-operation.c): the loop checks the device
 * is not an interrupted provisioning of this server, takes the VMK (a first one sealed if there is
 * none), the server recovery password's copy of it and the escrow environment; the worker formats the
 * device, runs the keyslots' KDFs and escrows the password through the escrow helper (a hook or a DC
 * that hangs holds only this call); the loop registers the new volume and answers. */
typedef struct ProvisionWork {
        char *device;
        uint8_t *vmk; /* secure */
        Guid vmk_id;
        bool has_server_wrap;
        Guid server_key_id;
        uint8_t server_wrap[VOLUME_SERVER_WRAP_SIZE];
        EscrowEnv env;
        EscrowContext escrow;
        ProvisionReply reply;
        Volume *vol; /* the outcome */
} ProvisionWork;

static void provision_work_free(void *data) {
        ProvisionWork *w = data;

        if (!w)
                return;
        free(w->device);
        secure_free(w->vmk);
        escrow_errors_done(w->escrow.errors);
        escrow_env_done(&w->env);
        volume_free(w->vol);
        free(w);
}

static void provision_work_freep(ProvisionWork **w) {
        provision_work_free(*w);
}

static int provision_work(void *data) {
        ProvisionWork *w = data;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = {
                .vmk = w->vmk,
                .vmk_id = w->vmk_id,
                .server_key_id = w->has_server_wrap ? &w->server_key_id : NULL,
                .server_wrap = w->has_server_wrap ? w->server_wrap : NULL,
                .hostname = w->env.hostname,
                .dra_cert = w->env.cert,
                .dra_extra_ekus = (const char *const *) w->env.config->dra_extra_ekus,
                .recovery_iterations = w->env.config->recovery_kdf_iterations,
                .escrow = escrow_callback,
                .userdata = &w->escrow,
        };

        /* The password is read back with the VMK when asked for; this copy goes. */
        return volume_provision(w->device, &p, &password, &w->vol);
}

static int provision_register(Manager *m, ProvisionWork *w, ManagedVolume **ret) {
        _cleanup_(managed_volume_freep) ManagedVolume *v = NULL;
        int r;

        r = managed_volume_new(m, w->vol->token.volume_uuid, w->device, &v);
        if (r < 0)
                return r;
        memcpy(v->escrow_error, w->escrow.errors, sizeof(v->escrow_error));
        memset(w->escrow.errors, 0, sizeof(w->escrow.errors));
        r = registry_add(m, v->uuid, w->device);
        if (r < 0)
                return log_error_errno(r, "Failed to register volume %s: %m", v->uuid);
        (void) manager_refresh_volume(v, NULL);
        r = manager_add_volume(m, v);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

static void provision_done(Operation *o, int result) {
        Manager *m = o->manager;
        ProvisionWork *w = o->data;
        _cleanup_free_ char *why = NULL;
        ManagedVolume *v = NULL;
        int r = result;

        if (r == -ECOMM)
                /* A required escrow failed: the volume was not provisioned. The reasons were logged;
                 * the caller gets them with the error. */
                why = escrow_required_failure(&m->config, w->escrow.errors);
        else if (r < 0)
                log_error_errno(r, "Failed to provision %s: %m", w->device);
        else {
                r = provision_register(m, w, &v);
                if (r >= 0)
                        provision_finish(m);
        }
        w->reply(m, o->request, w->device, r, v, why);
}

/* Two names of one device (a /dev/disk/by-id link and the node, an image by two paths). */
static bool same_device(const char *a, const char *b) {
        struct stat sa, sb;

        if (streq(a, b))
                return true;
        if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
                return false;
        if (S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode))
                return sa.st_rdev == sb.st_rdev;
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool manager_provisioning(Manager *m, const char *device) {
        for (size_t i = 0; i < m->n_operations; i++) {
                const Operation *o = m->operations[i];

                if (o->shared && o->work == provision_work && same_device(((ProvisionWork *) o->data)->device, device))
                        return true;
        }
        return false;
}

/* The VMK a call needs when the daemon holds none yet (manager_vmk_prepare_start()). */
typedef struct VmkPrepare {
        VmkUnseal unseal;
        VmkPreparedFn then;
        void *data;
        void (*free_data)(void *data);
} VmkPrepare;

static void vmk_prepare_free(void *p) {
        VmkPrepare *d = p;

        if (!d)
                return;
        vmk_unseal_done(&d->unseal);
        if (d->free_data)
                d->free_data(d->data);
        free(d);
}

static int vmk_prepare_work(void *p) {
        VmkPrepare *d = p;

        return vmk_unseal_run(&d->unseal);
}

static void vmk_prepare_done(Operation *o, int r) {
        VmkPrepare *d = o->data;
        Manager *m = o->manager;

        (void) r; /* in d->unseal, which manager_vmk_unsealed() reads */
        r = m->vmk ? 0 : manager_vmk_unsealed(m, &d->unseal);
        d->then(m, o->request, r, d->data);
}

static int vmk_prepare_start(Manager *m, sd_bus_message *request, bool create, VmkPreparedFn then, void *data,
                             void (*free_data)(void *data)) {
        VmkPrepare *d = calloc(1, sizeof(*d));
        int r;

        r = d ? vmk_unseal_init(m, VMK_UNSEAL_SERVER_RECOVERY | (create ? VMK_UNSEAL_CREATE : 0), &d->unseal) : -ENOMEM;
        if (r < 0) {
                free(d);
                if (free_data)
                        free_data(data);
                return r;
        }
        d->then = then;
        d->data = data;
        d->free_data = free_data;
        return operation_start_alone(m, request, "prepare-vmk", vmk_prepare_work, vmk_prepare_done, d,
                                     vmk_prepare_free, NULL);
}

int manager_vmk_prepare_start(Manager *m, sd_bus_message *request, VmkPreparedFn then, void *data,
                              void (*free_data)(void *data)) {
        bool create = access(m->vmk_path, F_OK) < 0 && errno == ENOENT;

        return vmk_prepare_start(m, request, create, then, data, free_data);
}

int manager_vmk_unseal_start(Manager *m, sd_bus_message *request, VmkPreparedFn then, void *data,
                             void (*free_data)(void *data)) {
        return vmk_prepare_start(m, request, /* create= */ false, then, data, free_data);
}

typedef struct ProvisionAfterVmk {
        char *device;
        ProvisionReply reply;
} ProvisionAfterVmk;

static void provision_after_vmk_free(void *p) {
        ProvisionAfterVmk *d = p;

        if (d)
                free(d->device);
        free(d);
}

static void provision_after_vmk(Manager *m, sd_bus_message *request, int r, void *data) {
        ProvisionAfterVmk *d = data;

        if (r >= 0)
                r = manager_provision_start(m, request, d->device, d->reply);
        if (r < 0)
                d->reply(m, request, d->device, r, NULL, NULL);
}

static int provision_vmk_start(Manager *m, sd_bus_message *request, const char *device, ProvisionReply reply) {
        ProvisionAfterVmk *d = calloc(1, sizeof(*d));

        if (!d || !(d->device = strdup(device))) {
                free(d);
                return -ENOMEM;
        }
        d->reply = reply;
        /* The data is freed by the operation, also when it cannot start. */
        return manager_vmk_prepare_start(m, request, provision_after_vmk, d, provision_after_vmk_free);
}

int manager_provision_start(Manager *m, sd_bus_message *request, const char *device, ProvisionReply reply) {
        _cleanup_(provision_work_freep) ProvisionWork *w = NULL;
        ManagedVolume *v = NULL;
        int r;

        /* The same device twice at once: the second is refused, not formatted over the first. */
        if (manager_provisioning(m, device))
                return -EALREADY;
        if (!m->vmk)
                return provision_vmk_start(m, request, device, reply);
        r = provision_resume(m, device, &v);
        if (r < 0)
                return r;
        if (r > 0) {
                provision_finish(m);
                reply(m, request, device, 0, v, NULL);
                return 0;
        }
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->reply = reply;
        w->escrow.env = &w->env;
        w->device = strdup(device);
        w->vmk = secure_memdup(m->vmk, VMK_SIZE);
        w->vmk_id = m->vmk_id;
        if (!w->device || !w->vmk)
                return -ENOMEM;
        /* The DRA certificate in force protects the volume and its escrow records alike. */
        r = manager_escrow_env(m, &w->env);
        if (r < 0)
                return r;
        if (w->env.dra_error < 0)
                return log_error_errno(w->env.dra_error, "Failed to load the DRA certificate: %m");
        /* Every disk carries the server recovery password's copy of the VMK (a reinstalled server has
         * only its disks). */
        (void) manager_ensure_server_recovery(m);
        if (m->have_server_recovery) {
                w->has_server_wrap = true;
                w->server_key_id = m->server_recovery.key_id;
                memcpy(w->server_wrap, m->server_recovery.wrapped_vmk, sizeof(w->server_wrap));
        }
        return operation_start_shared(m, request, "provision", provision_work, provision_done, TAKE_PTR(w),
                                      provision_work_free, NULL);
}

static int open_with(ManagedVolume *v, Volume *vol, int (*open)(Volume *, const void *, const char *, uint32_t),
                     const void *key) {
        Manager *m = v->manager;
        int r;

        if (!m->device_mapper) {
                r = open(vol, key, NULL, 0);
                if (r >= 0)
                        volume_set_state(v, VOLUME_VERIFIED,
                                         "device-mapper is not available here: every key was verified, nothing mapped");
                return r;
        }
        r = open(vol, key, v->mapped_name, 0);
        if (r >= 0)
                volume_set_state(v, VOLUME_UNLOCKED, NULL);
        return r;
}

/* What follows a volume's authenticated opening: a version 1 token was just written as version 2 (its
 * VMK copy under a disk's password is gone from this header, but any older copy of the header still
 * has it: the VMK is rotated); the token gets the server recovery password's copy of the VMK. */
static void volume_opened(Manager *m, ManagedVolume *v, Volume *vol) {
        int r;

        if (vol->upgraded) {
                log_notice("Volume %s: its token is now version %u.", v->uuid, VOLUME_TOKEN_VERSION);
                if (vol->token.had_v1_wrapped_vmk && !m->rotation_due)
                        manager_note_server_secret_used(m, "A version 1 token (the VMK under a disk's recovery password)");
        }
        if (m->have_server_recovery && guid_equal(&vol->token.vmk_id, &m->server_recovery.vmk_id) &&
            (!vol->token.has_server_wrap || !guid_equal(&vol->token.server_key_id, &m->server_recovery.key_id))) {
                r = volume_set_server_wrap(vol, &m->server_recovery.key_id, m->server_recovery.wrapped_vmk);
                if (r < 0)
                        log_warning_errno(r, "Volume %s: failed to store the server recovery password's copy of the "
                                             "VMK in its token, ignoring: %m", v->uuid);
        }
}

void manager_unlock_apply(Manager *m, ManagedVolume *v, const VolumeOpenItem *it) {
        char key_id[GUID_STRING_MAX], pcrs[128], reason[256];
        int r = it->result;

        if (!it->vol) {
                if (r == -ENOENT || r == -ENOTBLK)
                        r = -ENOMEDIUM;
                volume_set_state(v, VOLUME_UNAVAILABLE, strerror(-r));
                v->unlock_result = r;
                return;
        }
        v->unlock_result = r < 0 ? r : 0;
        if (r == -EXDEV) {
                volume_set_state(v, VOLUME_UNAVAILABLE, "the device now holds another volume");
                return;
        }
        managed_volume_update(v, it->vol);
        /* Half encrypted: it is not mapped (the encryption is offline) until its job has finished. */
        if (r == -EBUSY) {
                volume_set_state(v, VOLUME_LOCKED, "being encrypted in place");
                return;
        }
        if (r >= 0) {
                /* Mapped now, or mapped before and its key checked again. */
                if (it->name || v->state == VOLUME_UNLOCKED)
                        volume_set_state(v, VOLUME_UNLOCKED, NULL);
                else
                        volume_set_state(v, VOLUME_VERIFIED,
                                         "device-mapper is not available here: every key was verified, nothing mapped");
                volume_opened(m, v, it->vol);
                return;
        }
        if (r == -EBADE) {
                /* Not the daemon's writing: reported with its device, and nothing of it is changed. */
                volume_set_state(v, VOLUME_TAMPERED, "its token does not verify under this server's VMK, or a "
                                                     "keyslot is not one sealvol writes; not opened, not changed");
                log_error("Volume %s on %s is tampered: its token does not verify under this server's VMK, or a "
                          "keyslot is not one sealvol writes. Nothing of it was used or changed.",
                          v->uuid, v->device);
                return;
        }

        /* The TPM path failed: a person must recover this volume. Say with which Key ID and why. */
        guid_format(&v->key_ids[PROTECTOR_RECOVERY], key_id);
        if (r == -ESTALE)
                snprintf(reason, sizeof(reason), "PCR %s changed since the VMK was sealed",
                         tpm2_pcr_mask_to_string(m->last_pcr_mismatch, pcrs, sizeof(pcrs)));
        else if (r == -ENODEV)
                snprintf(reason, sizeof(reason), "no TPM (%s)", tpm2_tcti_select(m->config.tcti));
        else
                snprintf(reason, sizeof(reason), "%s", strerror(-r));
        volume_set_state(v, VOLUME_RECOVERY_REQUIRED, reason);
        log_error("Volume %s needs recovery (recovery Key ID %s): %s.", v->uuid, key_id, reason);
        (void) sd_bus_emit_signal(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "RecoveryRequired", "osss",
                                  v->object_path, v->uuid, key_id, reason);
}

int manager_lock(Manager *m, ManagedVolume *v) {
        int r;

        if (m->device_mapper && v->state == VOLUME_UNLOCKED) {
                r = crypt_deactivate(NULL, v->mapped_name);
                if (r < 0)
                        return log_error_errno(r, "Failed to close %s: %m", v->mapped_name);
        }
        volume_set_state(v, VOLUME_LOCKED, NULL);
        return 0;
}

RecoveryRotation *recovery_rotation_free(RecoveryRotation *d) {
        if (!d)
                return NULL;
        volume_free(d->vol);
        secure_free(d->vmk);
        secure_free(d->password);
        escrow_errors_done(d->escrow.errors);
        escrow_env_done(&d->env);
        free(d);
        return NULL;
}

/* Takes vol (loaded just now). */
static int rotation_new(Manager *m, Volume *vol, RecoveryRotation **ret) {
        _cleanup_(recovery_rotation_freep) RecoveryRotation *d = calloc(1, sizeof(*d));
        int r;

        if (!d) {
                volume_free(vol);
                return -ENOMEM;
        }
        d->vol = vol;
        d->vmk = secure_memdup(m->vmk, VMK_SIZE);
        if (!d->vmk)
                return -ENOMEM;
        d->vmk_id = m->vmk_id;
        d->iterations = m->config.recovery_kdf_iterations;
        r = manager_escrow_env(m, &d->env);
        if (r < 0)
                return r;
        d->escrow.env = &d->env;
        *ret = TAKE_PTR(d);
        return 0;
}

static int recovery_rotation_work(void *p) {
        RecoveryRotation *d = p;

        return volume_rotate_recovery(d->vol, d->vmk, &d->vmk_id, d->iterations, escrow_callback, &d->escrow,
                                      &d->password);
}

static void recovery_rotation_destroy(void *p) {
        recovery_rotation_free(p);
}

int manager_rotate_recovery_finish(Manager *m, ManagedVolume *v, RecoveryRotation *d, int r,
                                   Guid *ret_new_key_id, char **ret_error) {
        if (r < 0) {
                if (r == -ECOMM && ret_error)
                        *ret_error = escrow_required_failure(&m->config, d->escrow.errors);
                if (r == -ECOMM)
                        return log_error_errno(r, "The recovery password of %s was not replaced: a required escrow failed.",
                                               v->uuid);
                return log_error_errno(r, "Failed to rotate the recovery password of %s: %m", v->uuid);
        }
        escrow_errors_done(v->escrow_error);
        memcpy(v->escrow_error, d->escrow.errors, sizeof(v->escrow_error));
        memset(d->escrow.errors, 0, sizeof(d->escrow.errors));
        v->escrow_attempts = 0;
        v->escrow_due_usec = 0;
        /* Whatever password was used before, it is gone now. */
        used_password_note(m, v, false);
        (void) manager_refresh_volume(v, NULL);
        manager_escrow_retry(m);
        /* From the header the rotation wrote, whether or not the refresh could read it again. */
        if (ret_new_key_id)
                *ret_new_key_id = d->vol->token.protectors[PROTECTOR_RECOVERY].key_id;
        return 0;
}

int manager_recover_finish(Manager *m, ManagedVolume *v, Volume *vol, int r) {
        if (r < 0)
                return r == -ENOENT ? -ENOKEY : r;
        if (m->device_mapper)
                volume_set_state(v, VOLUME_UNLOCKED, NULL);
        else
                volume_set_state(v, VOLUME_VERIFIED,
                                 "device-mapper is not available here: every key was verified, nothing mapped");

        /* A disk's password opens that disk and nothing else: no server-scoped secret is wrapped under
         * it (docs/threat-model.md). Used once, shown to a person, it must be replaced (DESIGN.md,
         * "Rotate after use"), which needs the VMK: at once if the daemon holds it, else once a
         * server-scoped secret or the TPM gives it back (a note keeps that across restarts). */
        if (!m->vmk || !guid_equal(&m->vmk_id, &vol->token.vmk_id)) {
                used_password_note(m, v, true);
                log_notice("Volume %s opened with its recovery password; the password will be replaced once the "
                           "daemon holds the VMK again (the server recovery password, or a reseal).", v->uuid);
                return 0;
        }

        /* The TPM opens the VMK: the password is replaced now, by the caller's rotate-recovery
         * operation (its KDF and escrow off the loop), and the new one stays readable. */
        return 1;
}

int manager_read_recovery_password(Manager *m, ManagedVolume *v, char **ret_password) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        int r;

        if (v->job)
                return volume_encryption_password(v, ret_password);

        r = manager_refresh_volume(v, &vol);
        if (r < 0)
                return r;
        r = manager_ensure_vmk(m, /* create= */ false);
        if (r < 0)
                return r;
        r = volume_read_recovery_password(vol, m->vmk, &m->vmk_id, ret_password);
        return r == -ENOENT ? -ENOKEY : r;
}

int manager_rotate_recovery_start(Manager *m, ManagedVolume *v, sd_bus_message *request, OperationDoneFn done) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        RecoveryRotation *d = NULL;
        int r;

        r = manager_refresh_volume(v, &vol);
        if (r < 0)
                return r;
        r = manager_ensure_vmk(m, /* create= */ false);
        if (r < 0)
                return r;
        r = rotation_new(m, TAKE_PTR(vol), &d);
        if (r < 0)
                return r;
        return operation_start(m, v, request, "rotate-recovery", recovery_rotation_work, done, d,
                               recovery_rotation_destroy);
}

/* ---- decommissioning ---------------------------------------------------------------------------- */

/* What an erase did, kept in <state>/erased/<uuid>.json and returned; written by the worker. */
typedef struct Erase {
        Volume *vol;       /* loaded on the loop, consumed by the erase */
        char *device, *state_dir, *hostname;
        char uuid[VOLUME_UUID_STRING_MAX];
        ErasedFn done;
        uid_t caller;
        EscrowEnv env;
        VolumeEraseRecord rec;
        char *record;
} Erase;

static void erase_free(void *data) {
        Erase *e = data;

        if (!e)
                return;
        volume_free(e->vol);
        free(e->device);
        free(e->state_dir);
        free(e->hostname);
        escrow_env_done(&e->env);
        free(e->record);
        free(e);
}

static int erase_record(const Erase *e, const char *escrow, char **ret) {
        const VolumeEraseRecord *rec = &e->rec;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *a = json_object_new_array();
        _cleanup_free_ char *dir = NULL, *path = NULL, *text = NULL;
        int r;

        if (!o || !a)
                return -ENOMEM;
        for (ProtectorType t = 0; t < _PROTECTOR_TYPE_MAX; t++) {
                json_object *p;
                char id[GUID_STRING_MAX];

                if (!rec->has[t])
                        continue;
                p = json_object_new_object();
                if (!p || json_object_array_add(a, p) < 0) {
                        json_object_put(p);
                        return -ENOMEM;
                }
                r = json_add_string(p, "type", protector_type_to_string(t));
                if (r >= 0)
                        r = json_add_string(p, "key_id", guid_format(&rec->key_ids[t], id));
                if (r < 0)
                        return r;
        }
        r = json_add_owned(o, "sealvol_erase_version", json_object_new_int(1));
        if (r >= 0)
                r = json_add_string(o, "volume_uuid", rec->volume_uuid);
        if (r >= 0)
                r = json_add_string(o, "device", e->device);
        if (r >= 0)
                r = json_add_string(o, "hostname", e->hostname);
        if (r >= 0)
                r = json_add_time(o, "erased", (uint64_t) time(NULL));
        if (r >= 0)
                r = json_add_owned(o, "caller_uid",
                                   json_object_new_int64(e->caller == (uid_t) -1 ? -1 : (int64_t) e->caller));
        if (r >= 0)
                r = json_add_owned(o, "keyslots_destroyed", json_object_new_int((int) rec->keyslots_destroyed));
        if (r >= 0)
                r = json_add_owned(o, "header_bytes_overwritten", json_object_new_int64((int64_t) rec->header_bytes));
        if (r >= 0)
                r = json_add_owned(o, "protectors", TAKE_PTR(a));
        if (r >= 0)
                r = json_add_string(o, "escrow", escrow);
        if (r < 0)
                return r;
        text = json_format(o);
        if (!text || asprintf(&dir, "%s/erased", e->state_dir) < 0 ||
            asprintf(&path, "%s/%s.json", dir, rec->volume_uuid) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(text);
        return 0;
}

/* On the worker: the header destroyed, the escrow records retired (a hook told through the helper),
 * the record written. */
static int erase_work(void *data) {
        _cleanup_free_ char *escrow = NULL;
        Erase *e = data;
        int r;

        r = volume_crypto_erase(e->vol, &e->rec);
        e->vol = volume_free(e->vol);
        if (r < 0)
                return log_error_errno(r, "Failed to erase %s (%s): %m", e->uuid, e->device);
        log_notice("Volume %s (%s) crypto-erased: %u keyslots destroyed, %" PRIu64 " header bytes overwritten.",
                   e->uuid, e->device, e->rec.keyslots_destroyed, e->rec.header_bytes);
        r = escrow_retire(&e->env, &e->rec, &escrow);
        if (r < 0)
                log_warning_errno(r, "Failed to retire the escrow records of %s: %m", e->uuid);
        r = erase_record(e, strempty(escrow), &e->record);
        if (r < 0)
                return log_error_errno(r, "Volume erased, but its record could not be written: %m");
        return 0;
}

static void erase_done(Operation *o, int result) {
        Erase *e = o->data;
        ManagedVolume *v = manager_find_volume(o->manager, e->uuid);

        /* Once the header is gone the volume is, whatever the record's fate. */
        if (v && (result >= 0 || e->rec.header_bytes > 0))
                manager_forget_volume(o->manager, v);
        e->done(o->manager, o->request, e->uuid, result, e->record);
}

int manager_erase_start(Manager *m, ManagedVolume *v, uid_t caller, sd_bus_message *request, ErasedFn done) {
        Erase *e;
        int r;

        if (v->job || v->operation)
                return -EBUSY;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        e->caller = caller;
        e->done = done;
        snprintf(e->uuid, sizeof(e->uuid), "%s", v->uuid);
        e->hostname = strdup(m->hostname);
        e->device = strdup(v->device);
        e->state_dir = strdup(m->state_dir);
        r = e->device && e->state_dir && e->hostname ? 0 : -ENOMEM;
        if (r >= 0)
                r = manager_refresh_volume(v, &e->vol);
        if (r >= 0 && v->state == VOLUME_UNLOCKED)
                r = -EBUSY; /* mapped: lock it first */
        if (r >= 0)
                r = manager_escrow_env(m, &e->env);
        if (r < 0) {
                erase_free(e);
                return r;
        }
        return operation_start(m, v, request, "erase", erase_work, erase_done, e, erase_free);
}

/* ---- the Data Recovery Agent ------------------------------------------------------------------ */

int manager_load_dra_cert(Manager *m, X509 **ret) {
        const char *path = access(m->dra_cert_path, F_OK) == 0 ? m->dra_cert_path : m->config.dra_certificate;
        int r;

        if (!path)
                return -ENOENT;
        /* Callers report it: a status read must not fill the journal. */
        r = dra_cert_load_file(path, ret);
        if (r < 0)
                return log_debug_errno(r, "Failed to load the DRA certificate %s: %m", path);
        return 0;
}

/* Wraps the volume's DRA protector to cert (adding one if it has none). */
static int dra_rewrap(Manager *m, ManagedVolume *v, Volume *vol, X509 *cert) {
        int r;

        r = volume_authenticate(vol, m->vmk, &m->vmk_id);
        if (r >= 0)
                r = volume_set_dra(vol, cert, (const char *const *) m->config.dra_extra_ekus);
        if (r >= 0)
                (void) manager_refresh_volume(v, NULL);
        return r;
}

/* What the trust anchor file's load error means, for the caller and the journal. */
static const char *anchor_error_string(int r, const char *why) {
        switch (-r) {
        case EPERM:
                return why ?: "it can be changed by others than root";
        case EBADMSG:
                return "it holds something other than PEM certificates, or none";
        case E2BIG:
                return "it holds too many certificates";
        case EFBIG:
                return "it is too large";
        default:
                return strerror(-r);
        }
}

/* Whether cert may become the DRA over the bus, as root's configuration says (docs/dra.md, "Trust"):
 * -EKEYREJECTED with why in *ret_reason if not. */
static int dra_trust_check(Manager *m, X509 *cert, char **ret_reason) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *anchors = NULL;
        _cleanup_free_ char *why = NULL, *anchor_error = NULL, *untrusted = NULL;
        const Config *c = &m->config;
        int r;

        if (c->dra_trust_anchor) {
                r = dra_trust_anchors_load_file(c->dra_trust_anchor, &anchors, &why);
                if (r == -ENOMEM)
                        return r;
                /* What only the anchors could vouch for is refused; a pinned certificate still passes. */
                if (r < 0) {
                        if (asprintf(&anchor_error, "the trust anchor file %s cannot be used: %s",
                                     c->dra_trust_anchor, anchor_error_string(r, why)) < 0)
                                return -ENOMEM;
                        log_warning("[DRA] TrustAnchor=%s is not used: %s.", c->dra_trust_anchor,
                                    anchor_error_string(r, why));
                }
        }

        r = dra_cert_verify_trust(cert, anchors, (const uint8_t (*)[DRA_FINGERPRINT_SIZE]) c->dra_pinned,
                                  c->n_dra_pinned, time(NULL), &untrusted);
        if (r >= 0)
                return 0;
        if (r == -ENOKEY) {
                /* Nothing to trust: refuse every certificate rather than any (the attack this closes). */
                if (anchor_error)
                        *ret_reason = TAKE_PTR(anchor_error);
                else
                        *ret_reason = strdup("no trust anchor is configured for DRA certificates set over the "
                                             "bus: name the CA in [DRA] TrustAnchor= or the certificate's SHA-256 "
                                             "in [DRA] PinnedFingerprint= (sealvol.conf), or set the certificate "
                                             "itself with [DRA] Certificate=");
                return *ret_reason ? -EKEYREJECTED : -ENOMEM;
        }
        if (r != -EKEYREJECTED)
                return r;
        if (anchor_error) {
                char *joined;

                if (asprintf(&joined, "%s; %s", strempty(untrusted), anchor_error) < 0)
                        return -ENOMEM;
                free(untrusted);
                untrusted = joined;
        }
        *ret_reason = TAKE_PTR(untrusted);
        return -EKEYREJECTED;
}

/* A DRA certificate's change, as an operation: the volumes as loaded (busy until the end), a copy of
 * the VMK, the certificate; each volume's new DRA keyslot and the new export on a worker. */
typedef struct DraChange {
        DraSetFn done;
        char *detail;
        X509 *cert;
        const Config *config;
        uint8_t *vmk; /* secure memory */
        Guid vmk_id;
        OperationVolumes set;
        size_t done_n; /* re-wrapped, in order, before a failure stopped it */
        char *export_path;
        int export_result;
} DraChange;

static void dra_change_free(void *p) {
        DraChange *d = p;

        if (!d)
                return;
        operation_volumes_done(&d->set);
        free(d->detail);
        X509_free(d->cert);
        secure_free(d->vmk);
        free(d->export_path);
        free(d);
}

static int dra_change_new(Manager *m, X509 *cert, DraSetFn done, char *detail, DraChange **ret) {
        DraChange *d = calloc(1, sizeof(*d));

        if (!d) {
                free(detail);
                return -ENOMEM;
        }
        d->done = done;
        d->detail = detail;
        d->config = &m->config;
        d->vmk_id = m->vmk_id;
        d->vmk = secure_memdup(m->vmk, VMK_SIZE);
        d->export_path = strdup(m->vmk_export_path);
        if (!d->vmk || !d->export_path || operation_volumes_init(&d->set, m->n_volumes) < 0 ||
            X509_up_ref(cert) != 1) {
                dra_change_free(d);
                return -ENOMEM;
        }
        d->cert = cert;
        for (size_t i = 0; i < m->n_volumes; i++) {
                Volume *vol = NULL;

                if (manager_refresh_volume(m->volumes[i], &vol) < 0)
                        continue; /* a missing disk is re-wrapped when it is back */
                operation_volumes_add(&d->set, m->volumes[i], vol);
        }
        *ret = d;
        return 0;
}

/* On the worker. Renewing the certificate re-wraps every volume of the server (DESIGN.md). Each
 * volume gets its new DRA keyslot, verified, before the old one goes (volume_set_dra(): the token's
 * journal), so the old key opens it until the new one does. The server-level copy follows. */
static int dra_change_work(void *p) {
        DraChange *d = p;
        _cleanup_free_ char *json = NULL;
        int r;

        for (; d->done_n < d->set.n; d->done_n++) {
                Volume *vol = d->set.vols[d->done_n];

                r = volume_authenticate(vol, d->vmk, &d->vmk_id);
                if (r >= 0)
                        r = volume_set_dra(vol, d->cert, (const char *const *) d->config->dra_extra_ekus);
                if (r < 0)
                        return log_error_errno(r, "Failed to wrap volume %s to the new DRA certificate: %m",
                                               vol->token.volume_uuid);
        }
        r = vmk_export_dra(d->vmk, &d->vmk_id, d->cert, (const char *const *) d->config->dra_extra_ekus, &json);
        if (r >= 0)
                r = write_file_atomic(d->export_path, json, strlen(json), 0600);
        d->export_result = r;
        return 0;
}

static void dra_change_done(Operation *o, int r) {
        DraChange *d = o->data;
        Manager *m = o->manager;

        operation_volumes_release(m, &d->set, o);
        for (size_t i = 0; i < d->done_n; i++)
                (void) manager_refresh_volume(d->set.volumes[i], NULL);
        if (r >= 0) {
                /* The export goes to escrow, and so do the recovery passwords: the current ones go
                 * again, and plain records of before are encrypted. */
                if (d->export_result >= 0)
                        manager_vmk_exported(m);
                manager_escrow_follow_dra(m, d->cert, /* changed= */ true);
        }
        d->done(m, o->request, r, (unsigned) d->done_n, d->detail);
}

int manager_set_dra_start(Manager *m, sd_bus_message *request, const void *data, size_t size, DraSetFn done,
                          char **detail, char **ret_reason) {
        _cleanup_free_ char *untrusted = NULL, *unfit = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        DraChange *d = NULL;
        Operation *o = NULL;
        int r, k;

        r = dra_cert_load(data, size, &cert);
        if (IN_SET(r, -EBADMSG, -ENOTUNIQ)) {
                *ret_reason = strdup(r == -EBADMSG
                                             ? "not one certificate (PEM or DER), or more than a certificate in it"
                                             : "more than one certificate: pass the DRA certificate alone (its CA "
                                               "belongs in the [DRA] TrustAnchor= file)");
                return *ret_reason ? -EKEYREJECTED : -ENOMEM;
        }
        if (r < 0)
                return r;
        /* The organisation's certificate, and fit for the job: when both fail, both are said. */
        r = dra_trust_check(m, cert, &untrusted);
        k = dra_cert_check(cert, (const char *const *) m->config.dra_extra_ekus, time(NULL), &unfit);
        if (r < 0 && r != -EKEYREJECTED)
                return r;
        if (k < 0 && k != -EKEYREJECTED)
                return k;
        if (r < 0 || k < 0) {
                if (asprintf(ret_reason, "%s%s%s", strempty(untrusted), untrusted && unfit ? "; " : "",
                             strempty(unfit)) < 0) {
                        *ret_reason = NULL;
                        return -ENOMEM;
                }
                return -EKEYREJECTED;
        }

        r = manager_ensure_vmk(m, /* create= */ false);
        if (r < 0)
                return r;
        r = dra_change_new(m, cert, done, TAKE_PTR(*detail), &d);
        if (r < 0)
                return r;
        /* The certificate first: a change killed after this is finished at the next start
         * (manager_finish_dra()), one killed before it never happened. */
        r = write_file_atomic(m->dra_cert_path, data, size, 0644);
        if (r < 0) {
                *detail = TAKE_PTR(d->detail); /* the caller's audit record still says which */
                dra_change_free(d);
                return r;
        }
        r = operation_start_alone(m, request, "set-dra", dra_change_work, dra_change_done, d, dra_change_free,
                                  &o);
        if (r < 0)
                return r;
        operation_volumes_hold(m, &d->set, o);
        return 0;
}

void manager_vmk_exported(Manager *m) {
        /* A new export goes to the spool and the hook; a failure there is retried, not the export's. */
        m->vmk_escrow_attempts = 0;
        m->vmk_escrow_due_usec = 0;
        m->vmk_escrow_force = true;
        m->vmk_export_generation++;
        manager_escrow_retry(m);
}

int manager_export_vmk(Manager *m, char **ret_json) {
        _cleanup_free_ char *json = NULL;
        X509 *cert = NULL;
        int r;

        r = manager_ensure_vmk(m, /* create= */ false);
        if (r < 0)
                return r;
        r = manager_load_dra_cert(m, &cert);
        if (r < 0)
                return r == -ENOENT ? -ENOKEY : r;
        r = vmk_export_dra(m->vmk, &m->vmk_id, cert, (const char *const *) m->config.dra_extra_ekus, &json);
        X509_free(cert);
        if (r < 0)
                return r;
        r = write_file_atomic(m->vmk_export_path, json, strlen(json), 0600);
        if (r < 0)
                return r;
        manager_vmk_exported(m);
        if (ret_json)
                *ret_json = TAKE_PTR(json);
        return 0;
}

void manager_finish_dra(Manager *m) {
        uint8_t fp[DRA_FINGERPRINT_SIZE], exported[DRA_FINGERPRINT_SIZE];
        _cleanup_(X509_freep) X509 *cert = NULL;
        int r;

        if (manager_load_dra_cert(m, &cert) < 0 || dra_cert_fingerprint(cert, fp) < 0)
                return;
        /* Escrow records written in plaintext before the certificate (a certificate newly configured,
         * or a change killed before it got there) are encrypted to it; the plain files need no VMK. */
        manager_escrow_follow_dra(m, cert, /* changed= */ false);
        if (!m->vmk)
                return;
        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];
                _cleanup_(volume_freep) Volume *vol = NULL;
                const Protector *p;

                /* What the boot's unlock just read says whether there is anything to do: at every
                 * start but the one after an interrupted change, no header is read again. */
                if (!guid_equal(&v->vmk_id, &m->vmk_id) ||
                    (v->has[PROTECTOR_DRA] && memcmp(v->dra_fingerprint, fp, sizeof(fp)) == 0))
                        continue;
                if (manager_refresh_volume(v, &vol) < 0 || !guid_equal(&vol->token.vmk_id, &m->vmk_id))
                        continue;
                p = &vol->token.protectors[PROTECTOR_DRA];
                if (vol->token.has[PROTECTOR_DRA] && memcmp(p->dra_fingerprint, fp, sizeof(fp)) == 0)
                        continue;
                r = dra_rewrap(m, m->volumes[i], vol, cert);
                if (r < 0)
                        log_warning_errno(r, "Failed to wrap volume %s to the DRA certificate in force, ignoring: %m",
                                          m->volumes[i]->uuid);
                else
                        log_notice("Volume %s wrapped to the DRA certificate in force (a change of it had not "
                                   "finished).", m->volumes[i]->uuid);
        }
        r = manager_read_vmk_export(m, NULL, NULL, exported);
        if (r >= 0 && memcmp(exported, fp, sizeof(fp)) == 0)
                return;
        r = manager_export_vmk(m, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to export the VMK to the DRA certificate in force, ignoring: %m");
        else
                log_notice("VMK export written for the DRA certificate in force (a change of it had not finished).");
}

static int open_dra(Volume *vol, const void *key, const char *name, uint32_t flags) {
        return volume_open_dra(vol, (EVP_PKEY *) key, name, flags);
}

int manager_unlock_dra(Manager *m, ManagedVolume *v, EVP_PKEY *key) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        int r;

        r = manager_refresh_volume(v, &vol);
        if (r < 0)
                return r;
        r = open_with(v, vol, open_dra, key);
        if (r < 0)
                return r == -ENOENT ? -ENOKEY : r;

        /* A new TPM or main board: the server-level export gives the VMK back with the same key. */
        if (!m->vmk && access(m->vmk_export_path, F_OK) == 0) {
                _cleanup_free_ char *json = NULL;
                _cleanup_secure_ uint8_t *vmk = NULL;
                size_t n;
                Guid id;

                if (read_file_full(m->vmk_export_path, VMK_BLOB_SIZE_MAX, &json, &n) >= 0 &&
                    vmk_import_dra(json, n, key, &vmk, &id) >= 0 &&
                    manager_accept_vmk(m, TAKE_PTR(vmk), &id, "the DRA key") >= 0) {
                        manager_note_server_secret_used(m, "The DRA key (the VMK export)");
                        /* The caller opens every other volume with it; that pass's end seals the VMK
                         * anew (to the TPM there now, if it is the same) as a new VMK. */
                        return 1;
                }
        }
        return 0;
}
