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
static uint32_t server_recovery_iterations(Manager *m) {
        uint64_t n = 2 * (uint64_t) (m->config.recovery_kdf_iterations ?: VOLUME_RECOVERY_PBKDF2_ITERATIONS);

        if (n < SERVER_RECOVERY_ITERATIONS_MIN)
                return SERVER_RECOVERY_ITERATIONS_MIN;
        return n > SERVER_RECOVERY_ITERATIONS_MAX ? SERVER_RECOVERY_ITERATIONS_MAX : (uint32_t) n;
}

int manager_ensure_server_recovery(Manager *m) {
        _cleanup_secure_ char *password = NULL;
        ServerRecovery s;
        char id[GUID_STRING_MAX];
        int r;

        if (!m->vmk)
                return -ENOPKG;
        if (m->have_server_recovery && guid_equal(&m->server_recovery.vmk_id, &m->vmk_id))
                return 0;
        r = server_recovery_new(m->vmk, &m->vmk_id, server_recovery_iterations(m), &s, &password);
        if (r < 0)
                return log_error_errno(r, "Failed to make a server recovery password: %m");
        r = server_recovery_write(&s, m->server_recovery_path);
        if (r < 0) {
                server_recovery_done(&s);
                return log_error_errno(r, "Failed to write %s: %m", m->server_recovery_path);
        }
        server_recovery_done(&m->server_recovery);
        m->server_recovery = s;
        m->have_server_recovery = true;
        log_notice("Server recovery password %s made for VMK %s.", guid_format(&s.key_id, id),
                   guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}));
        /* To every target; a failure is retried (manager_escrow_retry()) and shown, not a veto: the disks
         * it would open each have their own escrowed password meanwhile. */
        (void) manager_escrow_server_recovery(m, &m->server_recovery, password, NULL);
        r = server_recovery_write(&m->server_recovery, m->server_recovery_path);
        if (r < 0)
                log_warning_errno(r, "Failed to record the escrow of the server recovery password: %m");
        manager_escrow_retry(m);
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                              "ServerRecoveryKeyId", NULL);
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

static int seal(Manager *m, const uint8_t *vmk, const Guid *vmk_id, const uint8_t *previous, const Guid *previous_id) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        TPMI_ALG_HASH bank;
        uint32_t mask;
        VmkBlob blob;
        int r;

        sealed_selection(m, &bank, &mask);
        r = tpm2_context_new(tpm2_tcti_select(m->config.tcti), &c);
        if (r < 0)
                return log_error_errno(r, "Failed to open the TPM (%s): %m", tpm2_tcti_select(m->config.tcti));
        r = vmk_seal(c,
                     &(VmkSealParams) { .vmk = vmk, .vmk_id = vmk_id, .previous = previous, .previous_id = previous_id,
                                        .bank = bank, .pcr_mask = mask },
                     m->vmk_path, &blob);
        if (r < 0)
                return log_error_errno(r, "Failed to seal the VMK: %m");
        m->blob = blob;
        m->have_blob = true;
        m->last_pcr_mismatch = 0;
        manager_sealed_refresh(m, &blob);
        manager_tpm_refresh(m, c);
        return 0;
}

/* Whether the volume may still be bound to the previous VMK: what it showed last, or nothing yet. */
static bool needs_previous(Manager *m, const ManagedVolume *v) {
        return guid_equal(&v->vmk_id, &m->previous_vmk_id) || guid_is_null(&v->vmk_id);
}

int manager_finish_rotation(Manager *m) {
        unsigned rebound = 0, waiting = 0;
        Guid export_id = {};
        int r;

        if (!m->vmk || !m->previous_vmk)
                return 0;
        /* A manager-wide operation seals meanwhile (a TPM replacement), or provisions with the VMK:
         * its end finishes this. */
        if (manager_vmk_operation(m))
                return -EBUSY;
        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];
                _cleanup_(volume_freep) Volume *vol = NULL;

                if (!needs_previous(m, v))
                        continue;
                r = manager_refresh_volume(v, &vol);
                if (r < 0) {
                        /* Absent (or busy): re-bound when it is back; the previous VMK stays sealed for it. */
                        waiting++;
                        continue;
                }
                if (!guid_equal(&vol->token.vmk_id, &m->previous_vmk_id))
                        continue;
                /* Authenticated with the previous VMK (its MAC), then bound to the current one: the new tpm
                 * keyslot added and verified before the old one goes, the token's copies following. */
                r = volume_authenticate(vol, m->previous_vmk, &m->previous_vmk_id);
                if (r >= 0)
                        r = volume_bind_vmk(vol, m->vmk, &m->vmk_id, NULL,
                                            m->have_server_recovery ? &m->server_recovery.key_id : NULL,
                                            m->have_server_recovery ? m->server_recovery.wrapped_vmk : NULL);
                if (r < 0) {
                        log_error_errno(r, "Failed to bind volume %s to the new VMK, it keeps the previous one: %m",
                                        v->uuid);
                        waiting++;
                        continue;
                }
                (void) manager_refresh_volume(v, NULL);
                rebound++;
                log_info("Volume %s is bound to the new VMK %s.", v->uuid,
                         guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}));
        }

        /* The server-level copy for the DRA follows the VMK (and goes to escrow). */
        if (manager_read_vmk_export(m, NULL, &export_id, NULL) >= 0 && !guid_equal(&export_id, &m->vmk_id)) {
                r = manager_export_vmk(m, NULL);
                if (r < 0)
                        log_warning_errno(r, "Failed to export the new VMK to the DRA, ignoring: %m");
        }

        if (waiting > 0) {
                log_notice("VMK rotation: %u volumes bound to the new VMK, %u still on the previous one (it stays "
                           "sealed until they are re-bound).", rebound, waiting);
                return -EBUSY;
        }
        /* No volume needs the previous VMK any more: it goes from the sealed state. */
        r = seal(m, m->vmk, &m->vmk_id, NULL, NULL);
        if (r < 0)
                return r;
        m->previous_vmk = secure_free(m->previous_vmk);
        m->previous_vmk_id = (Guid) {};
        log_notice("VMK rotation complete: every volume is bound to VMK %s.",
                   guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}));
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "VMKId",
                                              "VMKRotation", NULL);
        manager_rotate_used_passwords(m);
        return 0;
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

int manager_rotate_vmk(Manager *m, char **ret_error) {
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_secure_ char *password = NULL;
        ServerRecovery next = {};
        Guid vmk_id;
        char id[GUID_STRING_MAX];
        int r;

        if (!m->vmk)
                return -ENOPKG;
        /* One rotation at a time: the one under way is finished first, and a volume it waits for holds
         * the next one back (three VMKs would have to be sealed). */
        r = manager_finish_rotation(m);
        if (r < 0)
                return r;

        r = vmk_generate(&vmk);
        if (r >= 0)
                r = guid_generate(&vmk_id);
        if (r < 0)
                return log_error_errno(r, "Failed to generate a new VMK: %m");
        r = server_recovery_new(vmk, &vmk_id, server_recovery_iterations(m), &next, &password);
        if (r < 0)
                return log_error_errno(r, "Failed to make a server recovery password: %m");

        /* Escrowed before anything relies on it; a required target that fails stops the rotation here,
         * before any change. */
        r = manager_escrow_server_recovery(m, &next, password, ret_error);
        if (r >= 0)
                r = server_recovery_write(&next, m->server_recovery_next_path);
        if (r < 0) {
                (void) unlink(m->server_recovery_next_path);
                server_recovery_done(&next);
                return r == -ECOMM ? r : log_error_errno(r, "Failed to keep the new server recovery password: %m");
        }

        /* Both VMKs in one sealed object: every volume opens with one or the other from here on. */
        r = seal(m, vmk, &vmk_id, m->vmk, &m->vmk_id);
        if (r < 0) {
                (void) unlink(m->server_recovery_next_path);
                server_recovery_done(&next);
                return r;
        }
        secure_free(m->previous_vmk);
        m->previous_vmk = TAKE_PTR(m->vmk);
        m->previous_vmk_id = m->vmk_id;
        m->vmk = TAKE_PTR(vmk);
        m->vmk_id = vmk_id;
        r = rename(m->server_recovery_next_path, m->server_recovery_path) < 0 ? -errno : 0;
        if (r < 0)
                log_warning_errno(r, "Failed to put the new server recovery password in place (the next start does): %m");
        server_recovery_done(&m->server_recovery);
        m->server_recovery = next;
        m->have_server_recovery = true;
        (void) unlink(m->rotation_due_path);
        m->rotation_due = false;
        log_notice("VMK rotation: the new VMK %s is sealed beside the previous one; re-binding the volumes.",
                   guid_format(&vmk_id, id));
        (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "VMKId",
                                              "ServerRecoveryKeyId", "VMKRotation", NULL);

        /* A volume that is absent now is re-bound when it appears (-EBUSY: not an error of the rotation). */
        r = manager_finish_rotation(m);
        return r == -EBUSY ? 0 : r;
}

/* After a server-scoped secret opened the VMK (or a version 1 token showed it), with the TPM in reach. */
void manager_rotate_if_due(Manager *m) {
        _cleanup_free_ char *why = NULL;
        int r;

        if (!m->rotation_due || !m->vmk)
                return;
        /* A manager-wide operation seals or changes the VMK meanwhile, or provisions a disk bound to
         * it: its end rotates. */
        if (manager_vmk_operation(m))
                return;
        r = manager_rotate_vmk(m, &why);
        if (r < 0)
                log_error_errno(r, "The VMK was due for rotation (%s), and the rotation failed%s%s; it is tried again "
                                   "at the next start: %m",
                                "a server-scoped secret was used", why ? ": " : "", strempty(why));
}
