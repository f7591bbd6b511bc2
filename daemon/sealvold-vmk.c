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

int manager_unlock_server_password(Manager *m, const char *password, unsigned *ret_bad_block, unsigned *ret_opened,
                                   unsigned *ret_failed) {
        _cleanup_secure_ uint8_t *vmk = NULL;
        int r;

        if (!m->have_server_recovery)
                return -ENOKEY;
        r = server_recovery_unwrap(m->server_recovery.wrapped_vmk, &m->server_recovery.key_id,
                                   &m->server_recovery.vmk_id, password, &vmk, ret_bad_block);
        if (r < 0)
                return r;
        if (m->vmk) {
                /* The daemon holds the VMK already: the password is right, and was used all the same. */
                if (!guid_equal(&m->vmk_id, &m->server_recovery.vmk_id) || !memeq_secure(m->vmk, vmk, VMK_SIZE))
                        return -EKEYREJECTED;
        } else {
                r = manager_accept_vmk(m, TAKE_PTR(vmk), &m->server_recovery.vmk_id, "the server recovery password");
                if (r < 0)
                        return r;
        }
        manager_note_server_secret_used(m, "The server recovery password");
        (void) manager_unlock_all(m, ret_opened, ret_failed);
        return 0;
}
