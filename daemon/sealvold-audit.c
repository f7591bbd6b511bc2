/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-audit.c: the audit trail. Every sensitive operation (reading a recovery password,
 * unlocking with it or with the DRA key, resealing, exporting the VMK, provisioning) is one
 * structured journal record with a stable MESSAGE_ID, the caller, the volume and the result, and
 * also one line on stderr (SEALVOL_AUDIT ...) for systems and tests without a journal. Never a secret.
 */

#include <stdio.h>
#include <string.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "sealvold.h"

/* Generated once for sealvol's audit records; stable across versions (journalctl MESSAGE_ID=...). */
#define SEALVOL_AUDIT_MESSAGE_ID "5b7f0c1e9a4d4e2b8c3f6a1d2e9b7c40"

void audit_record(sd_bus_message *message, const char *operation, const ManagedVolume *v, int result,
                  const char *detail) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid = (uid_t) -1;
        pid_t pid = 0;
        const char *outcome = result >= 0 ? "success" : "failure";

        if (message && sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID, &creds) >= 0) {
                (void) sd_bus_creds_get_euid(creds, &uid);
                (void) sd_bus_creds_get_pid(creds, &pid);
        }

        (void) sd_journal_send("MESSAGE_ID=" SEALVOL_AUDIT_MESSAGE_ID, "MESSAGE=sealvol audit: %s of %s by uid %d: %s%s%s",
                               operation, v ? v->uuid : "-", (int) uid, outcome, detail ? ": " : "", strempty(detail),
                               "PRIORITY=%d", LOG_NOTICE, "SEALVOL_OPERATION=%s", operation,
                               "SEALVOL_VOLUME=%s", v ? v->uuid : "", "SEALVOL_CALLER_UID=%d", (int) uid,
                               "SEALVOL_CALLER_PID=%d", (int) pid, "SEALVOL_RESULT=%s", outcome,
                               "SEALVOL_ERRNO=%d", result < 0 ? -result : 0, NULL);
        fprintf(stderr, "SEALVOL_AUDIT MESSAGE_ID=%s OPERATION=%s VOLUME=%s UID=%d PID=%d RESULT=%s ERRNO=%d%s%s\n",
                SEALVOL_AUDIT_MESSAGE_ID, operation, v ? v->uuid : "-", (int) uid, (int) pid, outcome,
                result < 0 ? -result : 0, detail ? " DETAIL=" : "", strempty(detail));
}
