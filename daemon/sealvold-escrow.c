/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-escrow.c: every recovery password goes to the configured escrow targets (docs/escrow.md).
 *
 * At provisioning and at each rotation the library calls escrow_callback() once the new password
 * opens the volume and before anything relies on it; each target's outcome is recorded in the token.
 * A target the configuration requires vetoes the change when it fails: the volume is not provisioned,
 * the old password is not removed. Any other failure is recorded, reported, and retried with
 * exponential backoff until it succeeds; nothing is dropped silently.
 */

#include <string.h>
#include <time.h>
#include <unistd.h>

#include "escrow.h"
#include "fileio.h"
#include "log.h"
#include "sealvold.h"
#include "secmem.h"

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000u;
}

void escrow_errors_done(char *errors[static _ESCROW_TARGET_MAX]) {
        for (size_t t = 0; t < _ESCROW_TARGET_MAX; t++)
                errors[t] = mfree(errors[t]);
}

static int set_error(char **field, const char *format, ...) _printf_(2, 3);
static int set_error(char **field, const char *format, ...) {
        va_list ap;
        char *s;
        int k;

        va_start(ap, format);
        k = vasprintf(&s, format, ap);
        va_end(ap);
        free(*field);
        *field = k < 0 ? NULL : s;
        return 0;
}

static char *spool_directory(Manager *m) {
        char *s;

        if (m->config.escrow_spool_directory)
                return strdup(m->config.escrow_spool_directory);
        return asprintf(&s, "%s/escrow", m->state_dir) < 0 ? NULL : s;
}

static int escrow_one(Manager *m, EscrowTarget t, const EscrowPassword *e, const char *json, size_t size,
                      EscrowRecord *rec, char **error) {
        _cleanup_free_ char *location = NULL, *why = NULL;
        bool verified = false;
        int r;

        switch (t) {
        case ESCROW_TARGET_SPOOL: {
                _cleanup_free_ char *dir = spool_directory(m), *name = NULL;
                X509 *cert = NULL;

                if (!dir)
                        return -ENOMEM;
                r = manager_load_dra_cert(m, &cert);
                if (r < 0 && r != -ENOENT) {
                        set_error(error, "cannot load the DRA certificate: %s", strerror(-r));
                        return r;
                }
                /* Encrypted to the DRA when there is one; plain only without, which status shows. */
                r = escrow_spool_name(e->volume_uuid, &e->key_id, cert != NULL, &name);
                if (r >= 0)
                        r = escrow_spool_store(dir, name, cert, json, size, &location, &verified);
                X509_free(cert);
                if (r < 0)
                        set_error(error, "cannot write to the spool %s: %s", dir, strerror(-r));
                break;
        }
        case ESCROW_TARGET_HOOK:
                r = escrow_hook_run(m->config.escrow_hook, "store", json, size, m->config.escrow_hook_timeout_sec,
                                    &location, &why);
                if (r < 0) {
                        set_error(error, "hook %s: %s", m->config.escrow_hook, why ?: strerror(-r));
                        break;
                }
                if (isempty(location)) {
                        free(location);
                        location = strdup(m->config.escrow_hook);
                        if (!location)
                                return -ENOMEM;
                }
                /* A hook that can read records back says so by accepting "verify". */
                verified = escrow_hook_run(m->config.escrow_hook, "verify", json, size,
                                           m->config.escrow_hook_timeout_sec, NULL, NULL) >= 0;
                break;
        default:
                set_error(error, "the %s target is not available in this build", escrow_target_to_string(t));
                r = -EOPNOTSUPP;
                break;
        }

        *rec = (EscrowRecord) {
                .state = r < 0 ? ESCROW_FAILED : ESCROW_DONE,
                .time = (uint64_t) time(NULL),
                .verified = r >= 0 && verified,
        };
        snprintf(rec->target, sizeof(rec->target), "%s", escrow_target_to_string(t));
        snprintf(rec->location, sizeof(rec->location), "%s", strempty(location));
        if (r >= 0)
                *error = mfree(*error);
        return r;
}

static void escrow_password_init(Manager *m, Volume *vol, const Protector *p, const char *password,
                                 EscrowPassword *ret) {
        *ret = (EscrowPassword) {
                .hostname = m->hostname,
                .machine_id = m->machine_id,
                .volume_uuid = vol->token.volume_uuid,
                .device = vol->device,
                .key_id = p->key_id,
                .vmk_id = vol->token.vmk_id,
                .created = p->created,
                .password = password,
        };
}

/* Sends password to the targets in mask, records each outcome in p, and the reasons of failures in
 * errors. Returns -ECOMM if a required target failed. */
static int escrow_protector(Manager *m, Volume *vol, Protector *p, const char *password, uint32_t mask,
                            char *errors[static _ESCROW_TARGET_MAX]) {
        _cleanup_secure_ char *json = NULL;
        EscrowPassword e;
        size_t size;
        int r, ret = 0;

        escrow_password_init(m, vol, p, password, &e);
        r = escrow_password_to_json(&e, &json, &size);
        if (r < 0)
                return log_error_errno(r, "Failed to build the escrow record of %s: %m", vol->token.volume_uuid);

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                char key_id[GUID_STRING_MAX];
                EscrowRecord rec;

                if (!(mask & (1u << t)))
                        continue;
                r = escrow_one(m, t, &e, json, size, &rec, &errors[t]);
                if (protector_set_escrow(p, &rec) < 0)
                        log_warning("No room to record the escrow of %s to %s.", vol->token.volume_uuid, rec.target);
                guid_format(&p->key_id, key_id);
                if (r < 0) {
                        bool required = m->config.escrow_required & (1u << t);

                        log_error("Escrow of the recovery password %s of %s to %s failed%s: %s", key_id,
                                  vol->token.volume_uuid, rec.target, required ? " (required)" : ", will retry",
                                  strempty(errors[t]));
                        if (required && ret == 0)
                                ret = -ECOMM;
                } else
                        log_info("Recovery password %s of %s escrowed to %s (%s)%s.", key_id, vol->token.volume_uuid,
                                 rec.target, rec.location, rec.verified ? ", verified" : "");
        }
        return ret;
}

int escrow_callback(Volume *vol, Protector *p, const char *password, void *userdata) {
        EscrowContext *c = userdata;

        return escrow_protector(c->manager, vol, p, password, c->manager->config.escrow_targets, c->errors);
}

/* The targets a volume's current password still has to reach. */
static uint32_t escrow_outstanding(Manager *m, const ManagedVolume *v) {
        uint32_t mask = 0;

        if (!v->has[PROTECTOR_RECOVERY])
                return 0;
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                const char *name = escrow_target_to_string(t);
                bool done = false;

                if (!(m->config.escrow_targets & (1u << t)))
                        continue;
                for (size_t i = 0; i < v->n_escrow; i++)
                        if (streq(v->escrow[i].target, name))
                                done = v->escrow[i].state == ESCROW_DONE;
                if (!done)
                        mask |= 1u << t;
        }
        return mask;
}

int manager_escrow_volume(Manager *m, ManagedVolume *v, bool all, uint32_t *ret_failed) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        _cleanup_secure_ char *password = NULL;
        uint32_t mask, failed = 0;
        Protector *p;
        int r;

        r = manager_refresh_volume(v, &vol);
        if (r < 0)
                return r;
        mask = all ? m->config.escrow_targets : escrow_outstanding(m, v);
        if (mask == 0)
                return 0;
        r = manager_ensure_vmk(m, /* create= */ false);
        if (r < 0)
                return r;
        r = volume_read_recovery_password(vol, m->vmk, &m->vmk_id, &password);
        if (r < 0)
                return log_error_errno(r, "Failed to read the recovery password of %s for escrow: %m", v->uuid);

        p = &vol->token.protectors[PROTECTOR_RECOVERY];
        (void) escrow_protector(m, vol, p, password, mask, v->escrow_error);
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                const EscrowRecord *rec = protector_get_escrow(p, escrow_target_to_string(t));

                if (!(mask & (1u << t)) || !rec)
                        continue;
                if (rec->state != ESCROW_DONE)
                        failed |= 1u << t;
                r = volume_set_escrow(vol, &p->key_id, rec);
                if (r < 0)
                        log_warning_errno(r, "Failed to record the escrow of %s in its token: %m", v->uuid);
        }
        (void) manager_refresh_volume(v, NULL);
        if (ret_failed)
                *ret_failed = failed;
        return failed ? -ECOMM : 0;
}

/* ---- retries ------------------------------------------------------------------------------------ */

static int on_escrow_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) s;
        (void) usec;
        manager_escrow_retry(m);
        return 0;
}

void manager_escrow_retry(Manager *m) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;
        int r;

        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];
                uint64_t delay;

                if (escrow_outstanding(m, v) == 0) {
                        v->escrow_attempts = 0;
                        continue;
                }
                if (v->escrow_due_usec > now) {
                        next = MIN(next, v->escrow_due_usec);
                        continue;
                }
                /* Without the VMK (recovery required) the password cannot be read back: wait for it. */
                if (!m->vmk)
                        continue;
                r = manager_escrow_volume(m, v, /* all= */ false, NULL);
                if (r >= 0) {
                        v->escrow_attempts = 0;
                        continue;
                }
                delay = (uint64_t) m->config.escrow_retry_sec << MIN(v->escrow_attempts, 20u);
                delay = MIN(delay, (uint64_t) m->config.escrow_retry_max_sec) * UINT64_C(1000000);
                v->escrow_attempts++;
                v->escrow_due_usec = now + delay;
                next = MIN(next, v->escrow_due_usec);
                log_notice("Escrow of %s will be retried in %" PRIu64 " s (attempt %u failed).", v->uuid,
                           delay / UINT64_C(1000000), v->escrow_attempts);
        }

        if (!m->event)
                return;
        if (next == UINT64_MAX) {
                if (m->escrow_timer)
                        (void) sd_event_source_set_enabled(m->escrow_timer, SD_EVENT_OFF);
                return;
        }
        if (!m->escrow_timer) {
                r = sd_event_add_time(m->event, &m->escrow_timer, CLOCK_MONOTONIC, next, 0, on_escrow_timer, m);
                if (r < 0)
                        log_error_errno(r, "Failed to arm the escrow retry timer: %m");
                return;
        }
        (void) sd_event_source_set_time(m->escrow_timer, next);
        (void) sd_event_source_set_enabled(m->escrow_timer, SD_EVENT_ONESHOT);
}
