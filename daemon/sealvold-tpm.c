/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-tpm.c: what the Manager's TPM properties show (docs/bus-api.md), kept in the Manager so
 * that reading them never reaches the TPM: status is readable by anyone, and a root daemon that
 * opened the TPM for every Get would hand any local user a way to keep it busy.
 *
 * The TPM's identity (maker, vendor string, firmware, spec revision) does not change while the daemon
 * runs: it is asked once at start. Its dictionary-attack state is asked then too, and again whenever
 * the daemon talks to the TPM anyway (a reseal). What the VMK is sealed to comes from vmk.sealed,
 * read at start and again whenever that file is replaced, whoever replaced it (an inotify watch on
 * the state directory).
 */

#include <string.h>
#include <sys/inotify.h>

#include "log.h"
#include "pcr-floor.h"
#include "sealvold.h"
#include "tpm2.h"

void tpm_status_read(Tpm2Context *c, TpmStatus *s) {
        int r;

        /* Who made it and what it runs: the first time it answers (one GetCapability). */
        if (!s->present && tpm2_get_info(c, &s->info) >= 0)
                s->present = true;
        /* The dictionary-attack state: every time (one GetCapability). */
        r = tpm2_get_lockout_info(c, &s->lockout_counter, &s->lockout_max, &s->in_lockout);
        if (r < 0)
                log_debug_errno(r, "Failed to read the TPM's dictionary-attack state, ignoring: %m");
}

void manager_tpm_apply(Manager *m, const TpmStatus *s) {
        bool identity = s->present != m->tpm.present;
        bool lockout = s->lockout_counter != m->tpm.lockout_counter || s->lockout_max != m->tpm.lockout_max ||
                       s->in_lockout != m->tpm.in_lockout;

        m->tpm = *s;
        if (m->bus && identity)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "TPMPresent", "TPMManufacturer", "TPMFirmware",
                                                      "TPMLockout", NULL);
        else if (m->bus && lockout)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "TPMLockout", NULL);
        if (lockout && s->in_lockout)
                log_warning("The TPM is in dictionary-attack lockout (%u of %u failed authorisations); "
                            "the VMK is sealed noDA and still unseals.",
                            s->lockout_counter, s->lockout_max);
}

void manager_tpm_refresh(Manager *m, Tpm2Context *c) {
        _cleanup_(tpm2_context_freep) Tpm2Context *own = NULL;
        TpmStatus s = m->tpm;
        int r;

        if (!c) {
                r = tpm2_context_new(tpm2_tcti_select(m->config.tcti), &own);
                if (r < 0)
                        log_debug_errno(r, "No TPM behind %s for the status: %m",
                                        tpm2_tcti_select(m->config.tcti));
                c = own;
        }
        if (c)
                tpm_status_read(c, &s);
        manager_tpm_apply(m, &s);
}

void manager_sealed_refresh(Manager *m, const VmkBlob *b) {
        TPMI_ALG_HASH bank = 0;
        uint32_t mask = 0;
        VmkBlob blob;
        int r;

        if (!b) {
                r = vmk_blob_read(m->vmk_path, &blob);
                if (r < 0 && r != -ENOENT)
                        log_warning_errno(r, "Failed to read the sealed VMK %s for its PCR selection, "
                                             "ignoring: %m", m->vmk_path);
                b = r >= 0 ? &blob : NULL;
        }
        if (b) {
                bank = b->pcrs.bank;
                mask = b->pcrs.mask;
        }
        if (bank == m->sealed_bank && mask == m->sealed_mask)
                return;
        m->sealed_bank = bank;
        m->sealed_mask = mask;
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "SealedPCRs", NULL);

        /* Sealed by an older sealvol, or by hand, to PCRs the floor refuses: it still unseals, but an
         * operator should reseal (pcr-floor.h). */
        _cleanup_free_ char *reason = NULL;
        if (b && pcr_floor_check(mask, m->config.pcr_min_mask, &reason) == -EINVAL)
                log_warning("The VMK in %s is sealed below the PCR floor: %s. Reseal it "
                            "(sealvolctl tpm reseal).", m->vmk_path, strempty(reason));
}

static int on_state_dir_event(sd_event_source *s, const struct inotify_event *event, void *userdata) {
        Manager *m = userdata;
        const char *name = strrchr(m->vmk_path, '/');

        (void) s;
        /* Replaced (a rename onto it), written in place, removed; or events lost: look again. */
        if ((event->mask & IN_Q_OVERFLOW) || (event->len > 0 && name && streq(event->name, name + 1)))
                manager_sealed_refresh(m, NULL);
        return 0;
}

static int watch_state_dir(Manager *m) {
        _cleanup_(sd_event_source_unrefp) sd_event_source *s = NULL;
        int r;

        r = sd_event_add_inotify(m->event, &s, m->state_dir,
                                 IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE | IN_ONLYDIR,
                                 on_state_dir_event, m);
        if (r < 0)
                return r;
        /* Before the bus: a Get that follows a change of the file in the same turn of the loop sees it. */
        r = sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IMPORTANT);
        if (r < 0)
                return r;
        /* The event loop owns it from here and frees it with itself. */
        return sd_event_source_set_floating(s, true);
}

void manager_tpm_start(Manager *m) {
        int r;

        r = watch_state_dir(m);
        if (r < 0)
                log_warning_errno(r, "Failed to watch %s (SealedPCRs follows only the daemon's own reseals), "
                                     "ignoring: %m", m->state_dir);
        /* What the file says now: the start read it before, but something may have replaced it since. */
        manager_sealed_refresh(m, NULL);
        /* Once, with a connection of its own, unless whoever talked to the TPM before (the boot's
         * unseal, should it pass its connection to manager_tpm_refresh()) asked already. */
        if (!m->tpm.present)
                manager_tpm_refresh(m, NULL);
}
