/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-bus.c: the org.sealvol1 bus API (docs/bus-api.md): what its two kinds of object share, and
 * their setup. The Manager object is sealvold-manager-bus.c, one object per volume (a fallback vtable
 * under /org/sealvol1/volume) sealvold-volume-bus.c; the ObjectManager is here.
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
#include "sealvold-bus.h"
#include "secmem.h"
#include "tpm2.h"

int volume_error(sd_bus_error *error, int r, const ManagedVolume *v, const char *what) {
        if (r == -ENOPKG)
                return sd_bus_error_setf(error, BUS_ERROR_NO_VMK, "%s: the server's VMK is not available (%s).", what,
                                         v ? v->uuid : "no volume");
        return bus_error_set(error, r, "%s%s%s", what, v ? " " : "", v ? v->uuid : "");
}

/* A flag the method does not know is a caller from the future: refused. */
int check_flags_known(uint64_t flags, uint64_t known, sd_bus_error *error) {
        if (flags & ~known)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Unknown flags 0x%" PRIx64, flags & ~known);
        return 0;
}

/* Most flags arguments are reserved for now. */
int check_flags(uint64_t flags, sd_bus_error *error) {
        return check_flags_known(flags, FLAGS_NONE, error);
}

int read_flags(sd_bus_message *message, sd_bus_error *error) {
        uint64_t flags;
        int r;

        r = sd_bus_message_read(message, "t", &flags);
        if (r < 0)
                return r;
        return check_flags(flags, error);
}

void reply_error(sd_bus_message *request, sd_bus_error *error) {
        (void) sd_bus_reply_method_error(request, error);
        sd_bus_error_free(error);
}

/* The password and flags of a method that takes a recovery password: too long to be one is refused
 * before polkit is asked. */
int read_password_and_flags(sd_bus_message *message, const char **ret_password, sd_bus_error *error) {
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
char *cert_fingerprint_string(X509 *cert) {
        uint8_t fp[DRA_FINGERPRINT_SIZE];

        return cert && dra_cert_fingerprint(cert, fp) >= 0 ? dra_fingerprint_to_string(fp) : NULL;
}

char *dra_fingerprint_in_force(Manager *m) {
        _cleanup_(X509_freep) X509 *cert = NULL;

        return manager_load_dra_cert(m, &cert) < 0 ? NULL : cert_fingerprint_string(cert);
}

/* A manager-wide operation (the VMK, the sealed state or the server's secrets change) runs alone: a
 * call that would unseal, seal or change them meanwhile is refused at once, naming it. A manager-wide
 * change (all) also waits for every volume's operation: a rotation escrowing to the DRA certificate it
 * started with, say, must not meet a change of that certificate or of the VMK. */
int manager_check_idle(Manager *m, bool all, sd_bus_error *error) {
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
int polkit_check_alone(Manager *m, sd_bus_message *message, const char *action, bool all, sd_bus_error *error) {
        int r;

        r = polkit_check(m, message, action, error);
        if (r <= 0)
                return r;
        r = manager_check_idle(m, all, error);
        return r < 0 ? r : 1;
}

/* The unseal is done: every call that waited for it runs again from the bus's read queue (polkit's
 * way), or is told why there is no VMK. */
static void vmk_waiters_release(Manager *m, sd_bus_message *request, int r, void *data) {
        sd_bus_message **waiters = m->vmk_waiters;
        size_t n = m->n_vmk_waiters;

        (void) request;
        (void) data;
        m->vmk_waiters = NULL;
        m->n_vmk_waiters = 0;
        m->vmk_unsealing = false;
        if (r >= 0 && !m->vmk)
                r = -ENOPKG;
        for (size_t i = 0; i < n; i++) {
                sd_bus_error error = SD_BUS_ERROR_NULL;
                int k = r;

                if (k >= 0)
                        k = sd_bus_enqueue_for_read(sd_bus_message_get_bus(waiters[i]), waiters[i]);
                if (k < 0) {
                        polkit_forget(m, waiters[i]);
                        (void) bus_error_set(&error, k, "The server's VMK could not be unsealed");
                        reply_error(waiters[i], &error);
                }
                sd_bus_message_unref(waiters[i]);
        }
        free(waiters);
}

int bus_need_vmk(Manager *m, sd_bus_message *message, const char *action, sd_bus_error *error) {
        sd_bus_message **a;
        int r;

        if (m->vmk)
                return 0;
        if (!m->vmk_unsealing) {
                /* An operation that unseals or changes the VMK itself (the unlock pass) is waited for by
                 * no one here: Busy, as every call that meets it. */
                const Operation *o = manager_vmk_operation(m);

                if (o)
                        return sd_bus_error_setf(error, BUS_ERROR_BUSY, "The server is busy: %s is under way; try "
                                                 "again when it is done.", o->name);
        }
        a = reallocarray(m->vmk_waiters, m->n_vmk_waiters + 1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        m->vmk_waiters = a;
        /* polkit said yes on this pass: the next one is not asked again (a person authenticating
         * twice for one call). */
        r = polkit_keep(m, message, action);
        if (r < 0)
                return r;
        m->vmk_waiters[m->n_vmk_waiters++] = sd_bus_message_ref(message);
        if (m->vmk_unsealing)
                return 1;
        r = manager_vmk_unseal_start(m, NULL, vmk_waiters_release, NULL, NULL);
        if (r < 0) {
                polkit_forget(m, message);
                sd_bus_message_unref(m->vmk_waiters[--m->n_vmk_waiters]);
                return bus_error_set(error, r, "Cannot unseal the server's VMK");
        }
        m->vmk_unsealing = true;
        return 1;
}

int polkit_check_vmk(Manager *m, sd_bus_message *message, const char *action, sd_bus_error *error) {
        int r;

        r = polkit_check(m, message, action, error);
        if (r <= 0)
                return r;
        r = bus_need_vmk(m, message, action, error);
        return r < 0 ? r : r == 0;
}

/* The DRA private key a caller passed as a descriptor: the daemon never opens a path for the caller nor
 * takes key bytes in a message. Checked after polkit: what the caller's file holds may change between
 * the two passes of a handler, and a check that fails only on the second pass would strand the polkit
 * query. */
int read_passed_dra_key(int fd, EVP_PKEY **ret, sd_bus_error *error) {
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t) st.st_size > DRA_KEY_FILE_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS,
                                         "The DRA key must be passed as a regular file of at most %zu bytes.",
                                         DRA_KEY_FILE_MAX);
        if (lseek(fd, 0, SEEK_SET) < 0 || dra_key_load_fd(fd, ret) < 0)
                return sd_bus_error_setf(error, SD_BUS_ERROR_INVALID_ARGS, "Not an unencrypted private key (PEM or DER).");
        return 0;
}

/* The answer to a recovery password that did not parse: which block, and what is wrong with it. */
int recovery_typo_error(sd_bus_error *error, int r, unsigned block) {
        const char *name = r == -EDOM ? BUS_ERROR_RECOVERY_PASSWORD_TYPO :
                           r == -ERANGE ? BUS_ERROR_RECOVERY_PASSWORD_RANGE : SD_BUS_ERROR_INVALID_ARGS;

        if (block > 0)
                return sd_bus_error_setf(error, name, "Block %u of the recovery password %s.", block,
                                         recovery_parse_error_to_string(r));
        return sd_bus_error_setf(error, name, "The recovery password %s.", recovery_parse_error_to_string(r));
}

void server_wrap_snapshot(Manager *m, ServerWrap *ret) {
        *ret = (ServerWrap) { .have = m->have_server_recovery };
        if (!m->have_server_recovery)
                return;
        memcpy(ret->wrapped_vmk, m->server_recovery.wrapped_vmk, sizeof(ret->wrapped_vmk));
        ret->key_id = m->server_recovery.key_id;
        ret->vmk_id = m->server_recovery.vmk_id;
}

/* On a worker: the server recovery password's KDF. */
int server_wrap_open(ServerWrap *w, const char *password, unsigned *ret_bad_block) {
        if (!w->have)
                return -ENOKEY;
        return server_recovery_unwrap(w->wrapped_vmk, &w->key_id, &w->vmk_id, password, &w->vmk, ret_bad_block);
}

int append_escrow_records(sd_bus_message *reply, const EscrowRecord *records, size_t n,
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

static void emit_volume_added(ManagedVolume *v) {
        (void) volume_bus_emit_added(v);
}

static void emit_volume_changed(ManagedVolume *v) {
        (void) volume_bus_emit_changed(v);
}

static void emit_volume_removed(ManagedVolume *v) {
        (void) volume_bus_emit_removed(v);
}

int manager_bus_setup(Manager *m) {
        int r;

        r = sd_bus_error_add_map(sealvol_bus_errors);
        if (r < 0)
                return log_error_errno(r, "Failed to register the error names: %m");
        r = manager_bus_add(m);
        if (r >= 0)
                r = volume_bus_add(m);
        if (r < 0)
                return r;
        /* From here the core's changes are signals. */
        m->hooks.volume_added = emit_volume_added;
        m->hooks.volume_changed = emit_volume_changed;
        m->hooks.volume_removed = emit_volume_removed;
        r = sd_bus_add_object_manager(m->bus, NULL, SEALVOL_MANAGER_PATH);
        if (r < 0)
                return log_error_errno(r, "Failed to add the object manager: %m");
        return 0;
}
