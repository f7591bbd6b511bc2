/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvol-escrow: runs one batch of escrow jobs for sealvold (lib/escrow/escrow-helper.h) and exits.
 *
 * Its stdin is a connected unix stream socket: the connection systemd accepted on
 * sealvol-escrow.socket, or one end of the socketpair sealvold spawned it on. It receives the batch
 * as a sealed memfd, runs each job in order (a hook's "store" and "verify", or "retire"; a recovery
 * password to Active Directory), writes the results as one JSON object on the same socket, and exits.
 * Here, not in sealvold, are the LDAP, SASL and Kerberos parsers and the administrator's hook; the
 * VMK never is.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "encoding.h"
#include "escrow-ad.h"
#include "escrow-helper.h"
#include "escrow.h"
#include "fileio.h"
#include "log.h"
#include "secmem.h"

static const char *ad_error_class(int r) {
        switch (-r) {
        case EHOSTUNREACH:
                return "directory unreachable";
        case ETIMEDOUT:
                return "directory timed out";
        case ENOKEY:
                return "authentication failed";
        case EACCES:
                return "insufficient access";
        case ESRCH:
                return "computer object not found";
        case EPROTONOSUPPORT:
                return "schema has no msFVE classes";
        case EREMOTEIO:
                return "record rejected";
        case EEXIST:
                return "a different record holds this Key ID";
        case EINVAL:
                return "bad configuration or record";
        default:
                return "failed";
        }
}

/* What a hook or a server said when it failed, as the result carries it: printable, and never when it
 * shows the job's password (a hook that echoes its input, a server quoting the value it refused). */
static char *failure_text(const EscrowJob *j, const char *text) {
        if (j->password && escrow_text_reveals_password(text, j->password)) {
                log_warning("The escrow target %s failed and answered with the recovery password; the answer is not "
                            "kept.", escrow_target_to_string(j->target));
                return strdup("its error message showed the recovery password and was discarded");
        }
        return utf8_sanitize(text);
}

/* Where the record went, as the target named it: only printable text that does not show the
 * password; otherwise none, and sealvold names the target itself. */
static char *location_text(const EscrowJob *j, const char *text) {
        if (j->password && escrow_text_reveals_password(text, j->password)) {
                log_warning("The escrow target %s answered with the recovery password; the answer is not kept.",
                            escrow_target_to_string(j->target));
                return NULL;
        }
        if (isempty(text) || !utf8_is_printable(text))
                return NULL;
        return strdup(text);
}

static void run_hook(const EscrowBatch *b, const EscrowJob *j, EscrowJobResult *ret) {
        _cleanup_erase_and_free_ char *location = NULL, *why = NULL;
        int r;

        r = escrow_hook_run(b->hook, j->verb, j->data, j->size, b->hook_timeout_sec, &location, &why);
        if (r < 0) {
                _cleanup_free_ char *text = failure_text(j, why ?: strerror(-r));

                ret->error = r;
                if (asprintf(&ret->message, "hook %s: %s", b->hook, strempty(text)) < 0)
                        ret->message = NULL;
                return;
        }
        /* A hook that can read records back says so by accepting "verify" of the very input it
         * stored (CMS is different each time it is made). */
        ret->verified = j->verify && escrow_hook_run(b->hook, "verify", j->data, j->size, b->hook_timeout_sec,
                                                     NULL, NULL) >= 0;
        /* Its first line names where the record went. */
        ret->location = location_text(j, location);
}

static void run_ad(const EscrowBatch *b, const EscrowJob *j, EscrowJobResult *ret) {
        _cleanup_erase_and_free_ char *why = NULL;
        _cleanup_free_ char *dn = NULL;
        AdVerify verify = AD_VERIFY_NONE;
        AdRecoveryRecord rec = {
                .recovery_guid = j->recovery_guid,
                .volume_guid = j->volume_guid,
                .password = j->password,
                .created_usec = j->created_usec,
        };
        int r;

        r = ad_escrow(&b->ad, &rec, &dn, &verify, &why);
        if (r < 0) {
                _cleanup_free_ char *text = failure_text(j, why ?: strerror(-r));

                ret->error = r;
                if (asprintf(&ret->message, "%s: %s", ad_error_class(r), strempty(text)) < 0)
                        ret->message = NULL;
                return;
        }
        ret->location = location_text(j, dn);
        ret->verified = verify != AD_VERIFY_NONE;
}

/* Only root (sealvold) hands batches over: the socket is 0600, and this says so again. */
static int check_peer(int fd) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return log_error_errno(errno, "Failed to read who sent the batch (stdin is not a socket?): %m");
        if (cred.uid != 0 && cred.uid != getuid())
                return log_error_errno(EPERM, "Refusing a batch from uid %u.", (unsigned) cred.uid);
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_(escrow_batch_done) EscrowBatch batch = {};
        _cleanup_secure_ void *buf = NULL;
        _cleanup_free_ EscrowJobResult *results = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        (void) argv;
        log_parse_environment();
        if (argc > 1) {
                log_error("%s takes no arguments: it is started by sealvold or sealvol-escrow.socket.",
                          ESCROW_HELPER_NAME);
                return EXIT_FAILURE;
        }
        if (check_peer(STDIN_FILENO) < 0)
                return EXIT_FAILURE;
        r = escrow_batch_receive(STDIN_FILENO, &buf, &batch);
        if (r < 0) {
                log_error_errno(r, "Failed to read the escrow batch: %m");
                return EXIT_FAILURE;
        }
        /* The whole batch within what sealvold waits for, even if a library's wait is unbounded. */
        alarm(batch.deadline_sec);
        /* The socket closed by sealvold must not kill this process before its hook has been reaped. */
        (void) signal(SIGPIPE, SIG_IGN);

        results = calloc(batch.n_jobs, sizeof(EscrowJobResult));
        if (!results) {
                log_oom();
                return EXIT_FAILURE;
        }
        for (size_t i = 0; i < batch.n_jobs; i++) {
                if (batch.jobs[i].target == ESCROW_TARGET_HOOK)
                        run_hook(&batch, &batch.jobs[i], &results[i]);
                else
                        run_ad(&batch, &batch.jobs[i], &results[i]);
        }

        r = escrow_results_format(results, batch.n_jobs, &text);
        escrow_job_results_done(results, batch.n_jobs);
        if (r < 0) {
                log_error_errno(r, "Failed to format the escrow results: %m");
                return EXIT_FAILURE;
        }
        r = write_all(STDOUT_FILENO, text, strlen(text));
        if (r < 0) {
                log_error_errno(r, "Failed to send the escrow results: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
