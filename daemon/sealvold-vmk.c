/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-vmk.c: the server-scoped secrets around the VMK: the server recovery password (kept in
 * <state>/server-recovery.json, docs/sealed-vmk.md), the recovery of the VMK with it, and the note
 * that a server-scoped secret was used, which the VMK rotation answers.
 */

#include <string.h>
#include <unistd.h>

#include "fileio.h"
#include "log.h"
#include "recovery.h"
#include "sealvold.h"
#include "secmem.h"
#include "server-recovery.h"

int manager_load_server_recovery(Manager *m) {
        ServerRecovery s;
        int r;

        r = server_recovery_read(m->server_recovery_path, &s);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_warning_errno(r, "Failed to read %s, a new server recovery password will be made: %m",
                                         m->server_recovery_path);
        server_recovery_done(&m->server_recovery);
        m->server_recovery = s;
        m->have_server_recovery = true;
        return 0;
}

/* Iterations of the server password's wrap: a guess costs what one against a recovery keyslot costs. */
uint32_t manager_server_recovery_iterations(Manager *m) {
        uint64_t n = 2 * (uint64_t) (m->config.recovery_kdf_iterations ?: VOLUME_RECOVERY_PBKDF2_ITERATIONS);

        if (n < SERVER_RECOVERY_ITERATIONS_MIN)
                return SERVER_RECOVERY_ITERATIONS_MIN;
        return n > SERVER_RECOVERY_ITERATIONS_MAX ? SERVER_RECOVERY_ITERATIONS_MAX : (uint32_t) n;
}

int server_recovery_make(const uint8_t *vmk, const Guid *vmk_id, uint32_t iterations, const EscrowEnv *env,
                         const char *path, ServerRecovery *ret, char *errors[static _ESCROW_TARGET_MAX]) {
        _cleanup_secure_ char *password = NULL;
        ServerRecovery s;
        int r;

        r = server_recovery_new(vmk, vmk_id, iterations, &s, &password);
        if (r < 0)
                return log_error_errno(r, "Failed to make a server recovery password: %m");
        r = server_recovery_write(&s, path);
        if (r < 0) {
                server_recovery_done(&s);
                return log_error_errno(r, "Failed to write %s: %m", path);
        }
        /* To every target; a failure is retried (manager_escrow_retry()) and shown, not a veto: the disks
         * it would open each have their own escrowed password meanwhile. */
        (void) escrow_server_recovery(env, &s, password, errors);
        r = server_recovery_write(&s, path);
        if (r < 0)
                log_warning_errno(r, "Failed to record the escrow of the server recovery password: %m");
        *ret = s;
        return 0;
}

void manager_server_recovery_made(Manager *m, ServerRecovery *s, char *errors[static _ESCROW_TARGET_MAX]) {
        char id[GUID_STRING_MAX];

        server_recovery_done(&m->server_recovery);
        m->server_recovery = *s;
        *s = (ServerRecovery) {};
        m->have_server_recovery = true;
        manager_server_escrow_outcome(m, errors);
        log_notice("Server recovery password %s made for VMK %s.", guid_format(&m->server_recovery.key_id, id),
                   guid_format(&m->server_recovery.vmk_id, (char[GUID_STRING_MAX]) {}));
        manager_escrow_retry(m);
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                              "ServerRecoveryKeyId", NULL);
}

int manager_ensure_server_recovery(Manager *m) {
        _cleanup_(escrow_env_done) EscrowEnv env = {};
        char *errors[_ESCROW_TARGET_MAX] = {};
        ServerRecovery s;
        int r;

        if (!m->vmk)
                return -ENOPKG;
        if (m->have_server_recovery && guid_equal(&m->server_recovery.vmk_id, &m->vmk_id))
                return 0;
        r = manager_escrow_env(m, &env);
        if (r >= 0)
                r = server_recovery_make(m->vmk, &m->vmk_id, manager_server_recovery_iterations(m), &env,
                                         m->server_recovery_path, &s, errors);
        if (r < 0) {
                escrow_errors_done(errors);
                return r;
        }
        manager_server_recovery_made(m, &s, errors);
        return 0;
}

int manager_read_server_recovery_password(Manager *m, char **ret_password, Guid *ret_key_id) {
        int r;

        r = manager_ensure_vmk(m, /* create= */ false);
        if (r < 0)
                return r;
        r = manager_ensure_server_recovery(m);
        if (r < 0)
                return r;
        r = server_recovery_read_password(&m->server_recovery, m->vmk, ret_password);
        if (r < 0)
                return log_error_errno(r, "Failed to read the server recovery password back: %m");
        *ret_key_id = m->server_recovery.key_id;
        return 0;
}

/* A server-scoped secret opened the VMK: the VMK is rotated (and the server recovery password with it)
 * as soon as the daemon can (docs/sealed-vmk.md). The note keeps that across restarts. */
void manager_note_server_secret_used(Manager *m, const char *what) {
        int r;

        r = write_file_atomic(m->rotation_due_path, what, strlen(what), 0600);
        if (r < 0)
                log_warning_errno(r, "Failed to note that %s was used (the VMK is rotated only while the daemon "
                                     "runs): %m", what);
        m->rotation_due = true;
        log_notice("%s was used: the VMK will be rotated.", what);
}

int manager_take_server_vmk(Manager *m, uint8_t *vmk, const Guid *vmk_id) {
        _cleanup_secure_ uint8_t *key = vmk;

        if (m->vmk) {
                /* The daemon holds the VMK already: the password is right, and was used all the same. */
                if (!guid_equal(&m->vmk_id, vmk_id) || !memeq_secure(m->vmk, key, VMK_SIZE))
                        return -EKEYREJECTED;
                return 0;
        }
        return manager_accept_vmk(m, TAKE_PTR(key), vmk_id, "the server recovery password");
}

int manager_unlock_server_vmk(Manager *m, uint8_t *vmk, const Guid *vmk_id) {
        int r;

        r = manager_take_server_vmk(m, vmk, vmk_id);
        if (r < 0)
                return r;
        /* Used once, shown to a person: the VMK and this password are replaced once every volume is
         * open (the caller's unlock pass ends with the rotation, which seals the VMK to the boot as it
         * is: the recovery proved the change legitimate, as a reseal would). */
        manager_note_server_secret_used(m, "The server recovery password");
        return 0;
}

/* ---- VMK rotation ------------------------------------------------------------------------------- */

/* The selection the VMK is sealed to now (a reseal may have chosen another than the configuration's). */
static void sealed_selection(Manager *m, TPMI_ALG_HASH *ret_bank, uint32_t *ret_mask) {
        if (m->have_blob) {
                *ret_bank = m->blob.pcrs.bank;
                *ret_mask = m->blob.pcrs.mask;
        } else {
                *ret_bank = m->config.pcr_bank;
                *ret_mask = m->config.pcr_mask;
        }
}

/* Whether the volume may still be bound to the previous VMK: what it showed last, or nothing yet. */
static bool needs_previous(Manager *m, const ManagedVolume *v) {
        return guid_equal(&v->vmk_id, &m->previous_vmk_id) || guid_is_null(&v->vmk_id);
}

/* The re-binding's snapshot and what its worker did: the volumes as loaded, copies of both VMKs and of
 * the server recovery password's wrap, the DRA certificate when the export must follow, and where to
 * seal when no volume is left on the previous VMK. */
typedef struct VmkRebind {
        VmkRotatedFn done;
        OperationVolumes set;
        int *results;
        unsigned waiting; /* registered volumes that could not be loaded: the previous VMK stays */
        uint8_t *vmk, *previous; /* secure memory */
        Guid vmk_id, previous_id;
        bool have_server;
        Guid server_key_id;
        uint8_t server_wrap[SERVER_RECOVERY_WRAPPED_VMK_SIZE];
        const Config *config;
        X509 *cert; /* the export follows the VMK: to this certificate */
        char *export_path;
        int export_result;
        char *tcti, *vmk_path;
        TPMI_ALG_HASH bank;
        uint32_t mask;
        bool sealed;
        VmkBlob blob;
        TpmStatus tpm;
} VmkRebind;

static void vmk_rebind_free(void *p) {
        VmkRebind *d = p;

        if (!d)
                return;
        operation_volumes_done(&d->set);
        free(d->results);
        secure_free(d->vmk);
        secure_free(d->previous);
        explicit_bzero(d->server_wrap, sizeof(d->server_wrap));
        X509_free(d->cert);
        free(d->export_path);
        free(d->tcti);
        free(d->vmk_path);
        free(d);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(VmkRebind *, vmk_rebind_free);

static int vmk_rebind_new(Manager *m, VmkRotatedFn done, VmkRebind **ret) {
        _cleanup_(vmk_rebind_freep) VmkRebind *d = calloc(1, sizeof(*d));
        Guid export_id = {};

        if (!d)
                return -ENOMEM;
        d->done = done;
        if (operation_volumes_init(&d->set, m->n_volumes) < 0)
                return -ENOMEM;
        d->results = calloc(MAX(m->n_volumes, (size_t) 1), sizeof(*d->results));
        d->vmk = secure_memdup(m->vmk, VMK_SIZE);
        d->previous = secure_memdup(m->previous_vmk, VMK_SIZE);
        d->tcti = strdup(tpm2_tcti_select(m->config.tcti));
        d->vmk_path = strdup(m->vmk_path);
        if (!d->results || !d->vmk || !d->previous || !d->tcti || !d->vmk_path)
                return -ENOMEM;
        d->vmk_id = m->vmk_id;
        d->previous_id = m->previous_vmk_id;
        if (m->have_server_recovery) {
                d->have_server = true;
                d->server_key_id = m->server_recovery.key_id;
                memcpy(d->server_wrap, m->server_recovery.wrapped_vmk, sizeof(d->server_wrap));
        }
        d->config = &m->config;
        sealed_selection(m, &d->bank, &d->mask);
        /* The server-level copy for the DRA follows the VMK (and goes to escrow). */
        if (manager_read_vmk_export(m, NULL, &export_id, NULL) >= 0 && !guid_equal(&export_id, &m->vmk_id)) {
                int r = manager_load_dra_cert(m, &d->cert);

                if (r < 0)
                        log_warning_errno(r, "Failed to load the DRA certificate, the VMK export does not follow "
                                             "the new VMK: %m");
                else if (!(d->export_path = strdup(m->vmk_export_path)))
                        return -ENOMEM;
        }

        /* The volumes still on the previous VMK, each loaded now and busy until the end. */
        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];
                _cleanup_(volume_freep) Volume *vol = NULL;

                if (!needs_previous(m, v))
                        continue;
                if (v->rebind_failed || manager_refresh_volume(v, &vol) < 0) {
                        /* Absent, busy, or refused before: re-bound when it is back, or at the next start;
                         * the previous VMK stays sealed for it. */
                        d->waiting++;
                        continue;
                }
                if (!guid_equal(&vol->token.vmk_id, &m->previous_vmk_id))
                        continue;
                operation_volumes_add(&d->set, v, TAKE_PTR(vol));
        }
        *ret = TAKE_PTR(d);
        return 0;
}

/* On the worker. Each volume is authenticated with the previous VMK (its MAC), then bound to the
 * current one: the new tpm keyslot added and verified before the old one goes, the token's copies
 * following. The export follows the VMK before the previous VMK can go; only when no volume is left
 * on it is the VMK sealed alone. */
static int vmk_rebind_work(void *p) {
        VmkRebind *d = p;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        unsigned failed = 0;
        int r;

        for (size_t i = 0; i < d->set.n; i++) {
                r = volume_authenticate(d->set.vols[i], d->previous, &d->previous_id);
                if (r >= 0)
                        r = volume_bind_vmk(d->set.vols[i], d->vmk, &d->vmk_id, NULL,
                                            d->have_server ? &d->server_key_id : NULL,
                                            d->have_server ? d->server_wrap : NULL);
                d->results[i] = r;
                if (r < 0) {
                        log_error_errno(r, "Failed to bind volume %s to the new VMK, it keeps the previous one: %m",
                                        d->set.vols[i]->token.volume_uuid);
                        failed++;
                }
        }

        if (d->cert) {
                _cleanup_free_ char *json = NULL;

                r = vmk_export_dra(d->vmk, &d->vmk_id, d->cert, (const char *const *) d->config->dra_extra_ekus,
                                   &json);
                if (r >= 0)
                        r = write_file_atomic(d->export_path, json, strlen(json), 0600);
                d->export_result = r;
                if (r < 0)
                        log_warning_errno(r, "Failed to export the new VMK to the DRA, ignoring: %m");
        }

        if (failed > 0 || d->waiting > 0)
                return 0;
        /* No volume needs the previous VMK any more: it goes from the sealed state. */
        r = tpm2_context_new(d->tcti, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to open the TPM (%s): %m", d->tcti);
        r = vmk_seal(c, &(VmkSealParams) { .vmk = d->vmk, .vmk_id = &d->vmk_id, .bank = d->bank, .pcr_mask = d->mask },
                     d->vmk_path, &d->blob);
        if (r < 0)
                return log_error_errno(r, "Failed to seal the VMK: %m");
        tpm_status_read(c, &d->tpm);
        d->sealed = true;
        return 0;
}

/* On the loop: 0 when the rotation is complete, -EBUSY while a volume waits, else the seal's error. */
static int vmk_rebind_apply(Manager *m, VmkRebind *d, int r) {
        unsigned rebound = 0, waiting = d->waiting;

        for (size_t i = 0; i < d->set.n; i++) {
                ManagedVolume *v = d->set.volumes[i];

                if (d->results[i] < 0) {
                        v->rebind_failed = true;
                        waiting++;
                        continue;
                }
                (void) manager_refresh_volume(v, NULL);
                rebound++;
                log_info("Volume %s is bound to the new VMK %s.", v->uuid,
                         guid_format(&d->vmk_id, (char[GUID_STRING_MAX]) {}));
        }
        if (d->cert && d->export_result >= 0)
                manager_vmk_exported(m);
        else if (d->cert)
                /* Not tried again by every operation's end: at the next start. */
                m->rotation_failed = true;
        if (r < 0)
                return r;
        if (!d->sealed) {
                log_notice("VMK rotation: %u volumes bound to the new VMK, %u still on the previous one (it stays "
                           "sealed until they are re-bound).", rebound, waiting);
                return -EBUSY;
        }
        /* Manager-wide operations run alone: the VMKs are the ones the snapshot had. */
        m->blob = d->blob;
        m->have_blob = true;
        m->last_pcr_mismatch = 0;
        manager_sealed_refresh(m, &d->blob);
        manager_tpm_apply(m, &d->tpm);
        m->previous_vmk = secure_free(m->previous_vmk);
        m->previous_vmk_id = (Guid) {};
        log_notice("VMK rotation complete: every volume is bound to VMK %s.",
                   guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}));
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "VMKId",
                                              "VMKRotation", NULL);
        manager_rotate_used_passwords(m);
        return 0;
}

static void vmk_rebind_done(Operation *o, int r) {
        VmkRebind *d = o->data;
        Manager *m = o->manager;

        operation_volumes_release(m, &d->set, o);
        r = vmk_rebind_apply(m, d, r);
        m->vmk_rotation = NULL;
        if (r < 0 && r != -EBUSY)
                m->rotation_failed = true; /* not tried again after every operation: at the next start */
        /* Done as far as it can be while a volume waits: that is not an error of the rotation. */
        if (d->done)
                d->done(m, o->request, r == -EBUSY ? 0 : r, NULL);
        manager_unlock_answer_rotated(m);
}

/* 1 when the operation started (its end calls done), 0 when nothing is left to re-bind, -EBUSY while
 * an operation runs or every volume left waits. */
static int vmk_rebind_start(Manager *m, sd_bus_message *request, VmkRotatedFn done) {
        _cleanup_(vmk_rebind_freep) VmkRebind *d = NULL;
        int r;

        if (!m->vmk || !m->previous_vmk)
                return 0;
        /* A manager-wide operation seals meanwhile (a TPM replacement), or provisions with the VMK: its
         * end finishes this. */
        if (manager_vmk_operation(m) || m->rotation_failed)
                return -EBUSY;
        r = vmk_rebind_new(m, done, &d);
        if (r < 0)
                return log_error_errno(r, "Failed to start re-binding the volumes to the new VMK: %m");
        if (d->set.n == 0 && !d->cert && d->waiting > 0)
                return -EBUSY; /* nothing to do until a volume is back */
        r = operation_start_alone(m, request, "rebind-vmk", vmk_rebind_work, vmk_rebind_done, d, vmk_rebind_free,
                                  &m->vmk_rotation);
        if (r < 0) {
                TAKE_PTR(d); /* freed by operation_start_alone() */
                return log_error_errno(r, "Failed to start re-binding the volumes to the new VMK: %m");
        }
        operation_volumes_hold(m, &d->set, m->vmk_rotation);
        TAKE_PTR(d);
        return 1;
}

int manager_finish_rotation(Manager *m) {
        int r = vmk_rebind_start(m, NULL, NULL);

        return r > 0 ? -EBUSY : r;
}

/* A server recovery password for a VMK that is not sealed yet, kept beside the state directory's own
 * until the seal has happened: a crash before it leaves a file naming a VMK that exists nowhere
 * (removed at the next start), after it one that the start puts in place. */
void manager_rotation_recover(Manager *m) {
        ServerRecovery next;
        VmkBlob blob;
        int r;

        r = server_recovery_read(m->server_recovery_next_path, &next);
        if (r == -ENOENT)
                return;
        if (r >= 0 && vmk_blob_read(m->vmk_path, &blob) >= 0 && guid_equal(&blob.vmk_id, &next.vmk_id) &&
            rename(m->server_recovery_next_path, m->server_recovery_path) >= 0) {
                log_notice("A VMK rotation was interrupted after its seal; its server recovery password is in force.");
                server_recovery_done(&m->server_recovery);
                m->server_recovery = next;
                m->have_server_recovery = true;
                return;
        }
        if (r >= 0)
                server_recovery_done(&next);
        (void) unlink(m->server_recovery_next_path);
        log_notice("A VMK rotation was interrupted before its seal: nothing of it is in force.");
}

/* What a rotation's worker has and makes: a snapshot, never the Manager. */
typedef struct VmkRotation {
        Manager *manager; /* for the loop only */
        VmkRotatedFn done;
        char *tcti, *vmk_path, *next_path;
        uint8_t *current; /* the VMK in force (secure memory) */
        Guid current_id;
        TPMI_ALG_HASH bank;
        uint32_t mask;
        uint32_t iterations;
        EscrowEnv env;
        /* what it made */
        uint8_t *vmk; /* secure memory */
        Guid vmk_id;
        ServerRecovery next;
        bool have_next;
        char *errors[_ESCROW_TARGET_MAX];
        VmkBlob blob;
        TpmStatus tpm;
} VmkRotation;

static void vmk_rotation_free(void *p) {
        VmkRotation *d = p;

        if (!d)
                return;
        free(d->tcti);
        free(d->vmk_path);
        free(d->next_path);
        secure_free(d->current);
        secure_free(d->vmk);
        if (d->have_next)
                server_recovery_done(&d->next);
        escrow_errors_done(d->errors);
        escrow_env_done(&d->env);
        free(d);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(VmkRotation *, vmk_rotation_free);

static int vmk_rotation_new(Manager *m, VmkRotatedFn done, VmkRotation **ret) {
        _cleanup_(vmk_rotation_freep) VmkRotation *d = calloc(1, sizeof(*d));
        int r;

        if (!d)
                return -ENOMEM;
        d->manager = m;
        d->done = done;
        d->tcti = strdup(tpm2_tcti_select(m->config.tcti));
        d->vmk_path = strdup(m->vmk_path);
        d->next_path = strdup(m->server_recovery_next_path);
        d->current = secure_memdup(m->vmk, VMK_SIZE);
        if (!d->tcti || !d->vmk_path || !d->next_path || !d->current)
                return -ENOMEM;
        d->current_id = m->vmk_id;
        sealed_selection(m, &d->bank, &d->mask);
        d->iterations = manager_server_recovery_iterations(m);
        r = manager_escrow_env(m, &d->env);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

/* On the worker. The new server recovery password is escrowed before anything relies on it (a
 * required target that fails stops the rotation before any change), kept beside the one in force
 * (manager_rotation_recover() knows what a crash left), then both VMKs are sealed in one object:
 * every volume opens with one or the other from here on. */
static int vmk_rotation_work(void *p) {
        VmkRotation *d = p;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ char *password = NULL;
        int r;

        r = vmk_generate(&d->vmk);
        if (r >= 0)
                r = guid_generate(&d->vmk_id);
        if (r < 0)
                return log_error_errno(r, "Failed to generate a new VMK: %m");
        r = server_recovery_new(d->vmk, &d->vmk_id, d->iterations, &d->next, &password);
        if (r < 0)
                return log_error_errno(r, "Failed to make a server recovery password: %m");
        d->have_next = true;

        r = escrow_server_recovery(&d->env, &d->next, password, d->errors);
        if (r == -ECOMM)
                return r; /* the loop says which target */
        if (r >= 0)
                r = server_recovery_write(&d->next, d->next_path);
        if (r < 0) {
                (void) unlink(d->next_path);
                return log_error_errno(r, "Failed to keep the new server recovery password: %m");
        }

        r = tpm2_context_new(d->tcti, &c);
        if (r < 0)
                log_error_errno(r, "Failed to open the TPM (%s): %m", d->tcti);
        else {
                r = vmk_seal(c,
                             &(VmkSealParams) { .vmk = d->vmk, .vmk_id = &d->vmk_id, .previous = d->current,
                                                .previous_id = &d->current_id, .bank = d->bank, .pcr_mask = d->mask },
                             d->vmk_path, &d->blob);
                if (r < 0)
                        log_error_errno(r, "Failed to seal the VMK: %m");
        }
        if (r < 0) {
                (void) unlink(d->next_path);
                return r;
        }
        tpm_status_read(c, &d->tpm);
        return 0;
}

/* On the loop: the sealed VMKs in force, the new one the daemon's, the volumes re-bound. */
static int vmk_rotation_apply(Manager *m, VmkRotation *d, int r, char **ret_why) {
        char id[GUID_STRING_MAX];

        if (r == -ECOMM) {
                *ret_why = escrow_required_failure(&m->config, d->errors);
                return log_error_errno(r, "The VMK was not rotated: the new server recovery password could not be "
                                          "escrowed to a required target.");
        }
        if (r < 0)
                return r; /* logged by the worker */
        /* Manager-wide operations run alone, and nothing else replaces a VMK the daemon holds. */
        if (!m->vmk || !guid_equal(&m->vmk_id, &d->current_id))
                return log_error_errno(ESTALE, "The VMK changed while the rotation sealed its successor.");

        m->blob = d->blob;
        m->have_blob = true;
        m->last_pcr_mismatch = 0;
        manager_sealed_refresh(m, &d->blob);
        manager_tpm_apply(m, &d->tpm);
        secure_free(m->previous_vmk);
        m->previous_vmk = TAKE_PTR(m->vmk);
        m->previous_vmk_id = m->vmk_id;
        m->vmk = TAKE_PTR(d->vmk);
        m->vmk_id = d->vmk_id;
        if (rename(d->next_path, m->server_recovery_path) < 0)
                log_warning_errno(errno, "Failed to put the new server recovery password in place (the next start "
                                         "does): %m");
        server_recovery_done(&m->server_recovery);
        m->server_recovery = d->next;
        d->have_next = false;
        m->have_server_recovery = true;
        manager_server_escrow_outcome(m, d->errors);
        (void) unlink(m->rotation_due_path);
        m->rotation_due = false;
        m->rotation_failed = false;
        log_notice("VMK rotation: the new VMK %s is sealed beside the previous one; re-binding the volumes.",
                   guid_format(&m->vmk_id, id));
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "VMKId",
                                              "ServerRecoveryKeyId", "VMKRotation", NULL);
        return 0;
}

static void vmk_rotation_done(Operation *o, int r) {
        VmkRotation *d = o->data;
        Manager *m = o->manager;
        _cleanup_free_ char *why = NULL;

        r = vmk_rotation_apply(m, d, r, &why);
        m->vmk_rotation = NULL;
        if (r >= 0) {
                /* The volumes are re-bound next, by the operation that ends the rotation (and answers). A
                 * volume that is absent now is re-bound when it appears: not an error of the rotation. */
                r = vmk_rebind_start(m, o->request, d->done);
                if (r > 0)
                        return;
                if (r == -EBUSY)
                        r = 0;
        }
        /* Not started again by the end of this operation, nor by every one after it. */
        if (r < 0) {
                m->rotation_failed = true;
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "VMKRotation", NULL);
        }
        if (d->done)
                d->done(m, o->request, r, why);
        /* Those whose unlock brought the rotation are answered now that it is done. */
        manager_unlock_answer_rotated(m);
}

int manager_rotate_vmk_start(Manager *m, sd_bus_message *request, VmkRotatedFn done) {
        VmkRotation *d = NULL;
        int r;

        if (!m->vmk)
                return -ENOPKG;
        if (manager_vmk_operation(m))
                return -EBUSY;
        /* One rotation at a time: the one under way is finished first, and a volume it waits for holds
         * the next one back (three VMKs would have to be sealed). */
        r = manager_finish_rotation(m);
        if (r < 0)
                return r;
        r = vmk_rotation_new(m, done, &d);
        if (r < 0)
                return r;
        /* Alone: nothing else seals, changes the VMK or opens a volume meanwhile. */
        r = operation_start_alone(m, request, "rotate-vmk", vmk_rotation_work, vmk_rotation_done, d, vmk_rotation_free,
                                  &m->vmk_rotation);
        if (r < 0)
                return r;
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "VMKRotation",
                                              NULL);
        return 0;
}

static void rotated_when_due(Manager *m, sd_bus_message *request, int r, const char *why) {
        (void) request;
        if (r >= 0)
                return;
        m->rotation_failed = true;
        log_error_errno(r, "The VMK was due for rotation (a server-scoped secret was used), and the rotation "
                           "failed%s%s; it is tried again at the next start: %m",
                        why ? ": " : "", strempty(why));
}

/* After a server-scoped secret opened the VMK (or a version 1 token showed it), with the TPM in reach. */
void manager_rotate_if_due(Manager *m) {
        int r;

        if (!m->rotation_due || !m->vmk || m->rotation_failed)
                return;
        /* A manager-wide operation seals or changes the VMK meanwhile, or provisions a disk bound to
         * it: its end rotates. */
        if (manager_vmk_operation(m))
                return;
        r = manager_rotate_vmk_start(m, NULL, rotated_when_due);
        if (r < 0 && r != -EBUSY)
                rotated_when_due(m, NULL, r, NULL);
}
