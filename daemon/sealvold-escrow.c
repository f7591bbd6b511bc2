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

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "escrow-ad.h"
#include "bus-errors.h"
#include "encoding.h"
#include "escrow.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "openssl-util.h"
#include "sealvold.h"
#include "secmem.h"

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000u;
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
        /* What a hook or a server said goes to the bus and the journal: printable text only. */
        *field = k < 0 ? NULL : utf8_sanitize(s);
        if (k >= 0)
                erase_and_free(s); /* until escrow_send() has looked, it may quote a password */
        return 0;
}

static char *spool_directory(Manager *m) {
        char *s;

        if (m->config.escrow_spool_directory)
                return strdup(m->config.escrow_spool_directory);
        return asprintf(&s, "%s/escrow", m->state_dir) < 0 ? NULL : s;
}

/* The environment without a DRA certificate: for records that are wrapped to it already. */
static int escrow_env_base(Manager *m, EscrowEnv *ret) {
        *ret = (EscrowEnv) {
                .config = &m->config,
                .hostname = m->hostname,
                .machine_id = m->machine_id,
                .spool_dir = spool_directory(m),
                .helper = { .socket_path = m->escrow_socket_path, .helper_path = m->escrow_helper_path,
                            .cancel_fd = &m->stop_fd },
        };
        return ret->spool_dir ? 0 : -ENOMEM;
}

int manager_escrow_env(Manager *m, EscrowEnv *ret) {
        int r;

        r = escrow_env_base(m, ret);
        if (r < 0)
                return r;
        /* Spool and hook records are encrypted to the DRA when there is one; plain only without, which
         * status shows. A DRA certificate that is set but does not load sends them nowhere: they
         * fail (escrow_send() says why), and are retried, rather than go out in plaintext. */
        r = manager_load_dra_cert(m, &ret->cert);
        if (r < 0 && r != -ENOENT)
                ret->dra_error = r;
        return 0;
}

void escrow_env_done(EscrowEnv *e) {
        free(e->spool_dir);
        X509_free(e->cert);
        *e = (EscrowEnv) {};
}

bool escrow_target_encrypted(const Config *c, EscrowTarget t, bool have_dra) {
        switch (t) {
        case ESCROW_TARGET_SPOOL:
                return have_dra;
        case ESCROW_TARGET_HOOK:
                return have_dra && !c->escrow_hook_plaintext;
        default:
                return false; /* Active Directory: its access control, as for Windows */
        }
}

/* Where the helper is: its unit's socket (SEALVOL_ESCROW_SOCKET names another, "" none, for tests),
 * and the program installed beside sealvold, found through /proc/self/exe so that the build tree and
 * an installation both have it by construction. */
int manager_find_escrow_helper(Manager *m) {
        _cleanup_free_ char *exe = NULL;
        const char *socket_path = getenv("SEALVOL_ESCROW_SOCKET");
        char *slash;
        ssize_t k;

        exe = malloc(PATH_MAX);
        if (!exe)
                return log_oom();
        k = readlink("/proc/self/exe", exe, PATH_MAX - 1);
        if (k < 0)
                return log_error_errno(errno, "Failed to find where sealvold runs from: %m");
        exe[k] = '\0';
        slash = strrchr(exe, '/');
        if (!slash)
                return log_error_errno(EINVAL, "sealvold runs from a relative path: %s", exe);
        *slash = '\0';
        if (asprintf(&m->escrow_helper_path, "%s/" ESCROW_HELPER_NAME, exe) < 0)
                return log_oom();
        if (!socket_path)
                socket_path = ESCROW_HELPER_SOCKET_DEFAULT;
        if (!isempty(socket_path) && !(m->escrow_socket_path = strdup(socket_path)))
                return log_oom();
        return 0;
}

/* The outcome of sending to t, as the token keeps it; location and *error as the target answered,
 * checked once more here: what the token, the bus and the journal get never shows the password. */
static int escrow_outcome(const EscrowEnv *env, EscrowTarget t, const EscrowPassword *e, int r, const char *location,
                          bool verified, EscrowRecord *rec, char **error) {
        const Config *c = env->config;
        const char *name = t == ESCROW_TARGET_HOOK ? c->escrow_hook : escrow_target_to_string(t);

        if (e && escrow_text_reveals_password(location, e->password)) {
                log_warning("The escrow target %s answered with the recovery password of %s; the answer is not kept.",
                            escrow_target_to_string(t), e->volume_uuid);
                location = NULL;
        }
        if (e && escrow_text_reveals_password(*error, e->password)) {
                log_warning("The escrow target %s failed with a message showing the recovery password of %s; the "
                            "message is not kept.", escrow_target_to_string(t), e->volume_uuid);
                *error = erase_and_free(*error);
                set_error(error, "%s: its error message showed the recovery password and was discarded", name);
        }
        /* A hook printing nothing, or nothing printable, is named itself. */
        if (isempty(location) || !utf8_is_printable(location))
                location = t == ESCROW_TARGET_SPOOL ? "" : name;

        *rec = (EscrowRecord) {
                .state = r < 0 ? ESCROW_FAILED : ESCROW_DONE,
                .time = (uint64_t) time(NULL),
                .verified = r >= 0 && verified,
        };
        snprintf(rec->target, sizeof(rec->target), "%s", escrow_target_to_string(t));
        snprintf(rec->location, sizeof(rec->location), "%s", strempty(location));
        if (r >= 0)
                *error = mfree(*error);
        else if (!*error)
                set_error(error, "%s", strerror(-r));
        return r;
}

/* Sends one record to the targets of mask: the spool here, the hook and Active Directory in one batch
 * of the escrow helper. Each target's outcome goes to recs[t] and result[t], the reason of a failure
 * to errors[t]. e is the password the record holds (NULL: a record without one, the VMK export);
 * spool_name its file in the spool. With env's DRA certificate a password record is encrypted to it
 * for the targets escrow_target_encrypted() names; a DRA certificate that is set but did not load
 * (env->dra_error) sends a password to neither the spool nor the hook. Reads nothing but env. */
static void escrow_send(const EscrowEnv *env, uint32_t mask, const EscrowPassword *e, const char *spool_name,
                        const char *json, size_t size, EscrowRecord recs[static _ESCROW_TARGET_MAX],
                        int result[static _ESCROW_TARGET_MAX], char *errors[static _ESCROW_TARGET_MAX]) {
        const Config *c = env->config;
        _cleanup_free_ char *envelope = NULL, *batch_error = NULL;
        EscrowJobResult answers[_ESCROW_TARGET_MAX] = {};
        EscrowJob jobs[_ESCROW_TARGET_MAX];
        EscrowTarget job_target[_ESCROW_TARGET_MAX];
        size_t n = 0;
        int r;

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                _cleanup_free_ char *location = NULL;
                bool verified = false;

                if (!(mask & (1u << t)))
                        continue;
                if (e && env->dra_error < 0 && IN_SET(t, ESCROW_TARGET_SPOOL, ESCROW_TARGET_HOOK)) {
                        set_error(&errors[t], "the DRA certificate cannot be loaded (%s); the record is not sent in "
                                  "plaintext", strerror(-env->dra_error));
                        result[t] = escrow_outcome(env, t, e, env->dra_error, NULL, false, &recs[t], &errors[t]);
                        continue;
                }
                switch (t) {
                case ESCROW_TARGET_SPOOL:
                        r = escrow_spool_store(env->spool_dir, spool_name, env->cert, json, size, &location, &verified);
                        if (r < 0)
                                set_error(&errors[t], "cannot write to the spool %s: %s", env->spool_dir, strerror(-r));
                        result[t] = escrow_outcome(env, t, e, r, location, verified, &recs[t], &errors[t]);
                        continue;
                case ESCROW_TARGET_HOOK:
                        jobs[n] = (EscrowJob) { .target = t, .verb = "store", .verify = true, .data = json, .size = size,
                                                .password = e ? e->password : NULL };
                        /* With a DRA the hook gets the password as CMS to it, as the spool does, and what
                         * it needs to index the record in clear; plaintext only if the configuration says
                         * so, and then status says so too. Never plaintext because the encryption failed. */
                        if (e && escrow_target_encrypted(c, t, env->cert != NULL)) {
                                r = escrow_password_to_envelope(e, env->cert, &envelope);
                                if (r < 0) {
                                        set_error(&errors[t], "cannot encrypt the record to the DRA certificate: %s",
                                                  strerror(-r));
                                        result[t] = escrow_outcome(env, t, e, r, NULL, false, &recs[t], &errors[t]);
                                        continue;
                                }
                                jobs[n].data = envelope;
                                jobs[n].size = strlen(envelope);
                        }
                        break;
                case ESCROW_TARGET_AD: {
                        Guid volume_guid;

                        if (!e || guid_parse(e->volume_uuid, &volume_guid) < 0) {
                                set_error(&errors[t], "Active Directory takes recovery passwords only");
                                result[t] = escrow_outcome(env, t, e, -EOPNOTSUPP, NULL, false, &recs[t], &errors[t]);
                                continue;
                        }
                        jobs[n] = (EscrowJob) { .target = t, .volume_guid = volume_guid, .recovery_guid = e->key_id,
                                                .created_usec = e->created * UINT64_C(1000000),
                                                .password = e->password };
                        break;
                }
                default:
                        set_error(&errors[t], "the %s target is not available in this build", escrow_target_to_string(t));
                        result[t] = escrow_outcome(env, t, e, -EOPNOTSUPP, NULL, false, &recs[t], &errors[t]);
                        continue;
                }
                job_target[n++] = t;
        }
        if (n == 0)
                return;

        EscrowHelperConfig hc = {
                .hook = c->escrow_hook,
                .hook_timeout_sec = c->escrow_hook_timeout_sec,
                .ad = (mask & (1u << ESCROW_TARGET_AD)) ? &c->ad : NULL,
        };
        r = escrow_helper_run(&env->helper, &hc, jobs, n, answers, &batch_error);
        for (size_t i = 0; i < n; i++) {
                EscrowTarget t = job_target[i];

                if (r < 0)
                        set_error(&errors[t], "%s", batch_error ?: strerror(-r));
                else if (answers[i].error < 0)
                        set_error(&errors[t], "%s", answers[i].message ?: strerror(-answers[i].error));
                result[t] = escrow_outcome(env, t, e, r < 0 ? r : answers[i].error, r < 0 ? NULL : answers[i].location,
                                           r >= 0 && answers[i].verified, &recs[t], &errors[t]);
        }
        if (r >= 0)
                escrow_job_results_done(answers, n);
}

static void escrow_password_init(const EscrowEnv *env, Volume *vol, const Protector *p, const char *password,
                                 EscrowPassword *ret) {
        *ret = (EscrowPassword) {
                .hostname = env->hostname,
                .machine_id = env->machine_id,
                .volume_uuid = vol->token.volume_uuid,
                .device = vol->device,
                .key_id = p->key_id,
                .vmk_id = vol->token.vmk_id,
                .created = p->created,
                .password = password,
        };
}

/* Sends the record of e to the targets in mask: each outcome in recs[t] and result[t], the reason of a
 * failure in errors[t]; what names the password's owner in the log ("of <uuid>", "of the server").
 * Returns -ECOMM if a required target failed, other errors when nothing could be sent (recs untouched
 * then, every result[t] that error). Reads nothing but env: an operation's worker or the in-place
 * thread may call it. */
static int escrow_password_send_to(const EscrowEnv *env, const EscrowPassword *e, const char *what, uint32_t mask,
                                   EscrowRecord recs[static _ESCROW_TARGET_MAX], int result[static _ESCROW_TARGET_MAX],
                                   char *errors[static _ESCROW_TARGET_MAX]) {
        _cleanup_secure_ char *json = NULL;
        _cleanup_free_ char *spool_name = NULL;
        char key_id[GUID_STRING_MAX];
        size_t size;
        int r, ret = 0;

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                result[t] = -ENOMEM;
        r = escrow_password_to_json(e, &json, &size);
        if (r < 0)
                return log_error_errno(r, "Failed to build the escrow record %s: %m", what);
        r = escrow_spool_name(e->volume_uuid, &e->key_id, env->cert != NULL, &spool_name);
        if (r < 0)
                return r;

        guid_format(&e->key_id, key_id);
        escrow_send(env, mask, e, spool_name, json, size, recs, result, errors);
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                const EscrowRecord *rec = &recs[t];

                if (!(mask & (1u << t)))
                        continue;
                if (result[t] < 0) {
                        bool required = env->config->escrow_required & (1u << t);

                        log_error("Escrow of the recovery password %s %s to %s failed%s: %s", key_id, what, rec->target,
                                  required ? " (required)" : ", will retry", strempty(errors[t]));
                        if (required && ret == 0)
                                ret = -ECOMM;
                } else
                        log_info("Recovery password %s %s escrowed to %s (%s)%s.", key_id, what, rec->target,
                                 rec->location, rec->verified ? ", verified" : "");
        }
        return ret;
}

/* The same, each outcome kept in records (at most one per target). */
static int escrow_password_send(const EscrowEnv *env, const EscrowPassword *e, const char *what, uint32_t mask,
                                EscrowRecord records[static ESCROW_RECORDS_MAX], size_t *n_records,
                                char *errors[static _ESCROW_TARGET_MAX]) {
        EscrowRecord recs[_ESCROW_TARGET_MAX];
        int result[_ESCROW_TARGET_MAX], r;

        r = escrow_password_send_to(env, e, what, mask, recs, result, errors);
        if (r < 0 && r != -ECOMM)
                return r;
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if ((mask & (1u << t)) && escrow_records_set(records, n_records, &recs[t]) < 0)
                        log_warning("No room to record the escrow %s to %s.", what, recs[t].target);
        return r;
}

static int escrow_protector(const EscrowEnv *env, Volume *vol, Protector *p, const char *password, uint32_t mask,
                            char *errors[static _ESCROW_TARGET_MAX]) {
        _cleanup_free_ char *what = NULL;
        EscrowPassword e;

        escrow_password_init(env, vol, p, password, &e);
        if (asprintf(&what, "of %s", vol->token.volume_uuid) < 0)
                return -ENOMEM;
        return escrow_password_send(env, &e, what, mask, p->escrow, &p->n_escrow, errors);
}

/* Escrowed as Windows escrows a volume's numerical password, with the VMK's identity where a volume's
 * would be (AD: msFVE-VolumeGuid is the VMK id): the volume it opens is the VMK. */
static void server_escrow_password(const EscrowEnv *env, const ServerRecovery *s, const char *password,
                                   char vmk_volume[static GUID_STRING_MAX], EscrowPassword *ret) {
        guid_format(&s->vmk_id, vmk_volume);
        for (char *c = vmk_volume; *c; c++)
                if (*c >= 'A' && *c <= 'F')
                        *c = (char) (*c - 'A' + 'a');
        *ret = (EscrowPassword) {
                .hostname = env->hostname,
                .machine_id = env->machine_id,
                .volume_uuid = vmk_volume,
                .device = "",
                .key_id = s->key_id,
                .vmk_id = s->vmk_id,
                .created = s->created,
                .password = password,
        };
}

int escrow_server_recovery(const EscrowEnv *env, ServerRecovery *s, const char *password,
                           char *errors[static _ESCROW_TARGET_MAX]) {
        char vmk_volume[GUID_STRING_MAX];
        EscrowPassword e;

        server_escrow_password(env, s, password, vmk_volume, &e);
        return escrow_password_send(env, &e, "of the server", env->config->escrow_targets, s->escrow, &s->n_escrow,
                                    errors);
}

void manager_server_escrow_outcome(Manager *m, char *errors[static _ESCROW_TARGET_MAX]) {
        escrow_errors_done(m->server_escrow_error);
        memcpy(m->server_escrow_error, errors, sizeof(m->server_escrow_error));
        memset(errors, 0, sizeof(m->server_escrow_error));
        m->server_escrow_attempts = 0;
        m->server_escrow_due_usec = 0;
}

char *escrow_required_failure(const Config *c, char *const errors[static _ESCROW_TARGET_MAX]) {
        char *s;

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if (errors[t] && (c->escrow_required & (1u << t)))
                        return asprintf(&s, "%s: %s", escrow_target_to_string(t), errors[t]) < 0 ? NULL : s;
        return NULL;
}

int escrow_callback(Volume *vol, Protector *p, const char *password, void *userdata) {
        EscrowContext *c = userdata;

        return escrow_protector(c->env, vol, p, password, c->env->config->escrow_targets, c->errors);
}

/* The targets of mask that records do not show done. */
static uint32_t records_outstanding(uint32_t mask, const EscrowRecord *records, size_t n) {
        uint32_t out = 0;

        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                bool done = false;

                if (!(mask & (1u << t)))
                        continue;
                for (size_t i = 0; i < n; i++)
                        if (streq(records[i].target, escrow_target_to_string(t)))
                                done = records[i].state == ESCROW_DONE;
                if (!done)
                        out |= 1u << t;
        }
        return out;
}

/* The targets a volume's current password still has to reach. */
static uint32_t escrow_outstanding(Manager *m, const ManagedVolume *v) {
        if (!v->has[PROTECTOR_RECOVERY])
                return 0;
        return records_outstanding(m->config.escrow_targets, v->escrow, v->n_escrow);
}

/* ---- a DRA certificate set where records went out without it ------------------------------------ */

/* Whether v's current password is in the spool as a plain record (written before any DRA). */
static bool spool_record_plain(const ManagedVolume *v) {
        for (size_t i = 0; i < v->n_escrow; i++) {
                const EscrowRecord *e = &v->escrow[i];
                const char *name = strrchr(e->location, '/');
                bool encrypted;

                if (streq(e->target, escrow_target_to_string(ESCROW_TARGET_SPOOL)) && e->state == ESCROW_DONE &&
                    name && escrow_spool_name_parse(name + 1, NULL, NULL, &encrypted) >= 0)
                        return !encrypted;
        }
        return false;
}

void manager_escrow_follow_dra(Manager *m, X509 *cert, bool changed) {
        _cleanup_free_ char *dir = spool_directory(m);
        unsigned encrypted = 0, skipped = 0;
        uint32_t mask = 0;
        int r;

        /* The current passwords, to the certificate in force: after a change, to the spool and to a
         * hook that gets records encrypted (a hook that files them by Key ID replaces its copy); at a
         * start, to the spool where its record is still plain (a change killed before this). */
        for (EscrowTarget t = ESCROW_TARGET_SPOOL; t <= ESCROW_TARGET_HOOK; t++)
                if ((m->config.escrow_targets & (1u << t)) && escrow_target_encrypted(&m->config, t, true) &&
                    (changed || t == ESCROW_TARGET_SPOOL))
                        mask |= 1u << t;
        /* By the next escrow pass, off the loop; a failure is recorded in the token and retried, as any
         * escrow's. A pass under way sent to the certificate of before: it leaves these forced. */
        if (mask != 0)
                m->escrow_dra_generation++;
        for (size_t i = 0; mask != 0 && i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];

                if (v->has[PROTECTOR_RECOVERY] && (changed || spool_record_plain(v))) {
                        v->escrow_force |= mask;
                        v->escrow_attempts = 0;
                        v->escrow_due_usec = 0;
                }
        }
        /* And the server recovery password, whose plain spool record the loop below encrypts. */
        if (changed && m->have_server_recovery) {
                m->server_escrow_force |= mask;
                m->server_escrow_attempts = 0;
                m->server_escrow_due_usec = 0;
        }

        /* Every plain record still in the spool, current or older, whatever the targets are now. */
        if (!dir) {
                log_oom();
                return;
        }
        r = escrow_spool_encrypt_plain(dir, cert, &encrypted, &skipped);
        if (r < 0)
                log_warning_errno(r, "Failed to encrypt the plaintext escrow records in %s to the DRA "
                                  "certificate (done again at the next start or change of it): %m", dir);
        if (encrypted > 0)
                log_notice("Encrypted %u plaintext escrow records in %s to the DRA certificate; the plain files "
                           "were overwritten and removed (rotate their passwords if the disk may keep old "
                           "blocks).", encrypted, dir);
        if (skipped > 0)
                log_warning("%u files in %s are named as plaintext escrow records but do not read as such; left "
                            "as they are.", skipped, dir);
}

/* ---- retirement, after a crypto-erase ------------------------------------------------------------ */

/* The spool's records of the volume (every password it ever had) move to <spool>/retired/. */
static int spool_retire(const char *dir, const char *uuid, unsigned *ret_moved) {
        _cleanup_free_ char *retired = NULL;
        struct dirent *de;
        unsigned moved = 0;
        DIR *d;
        int r = 0;

        if (asprintf(&retired, "%s/retired", dir) < 0)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((de = readdir(d))) {
                _cleanup_free_ char *from = NULL, *to = NULL;

                if (strncmp(de->d_name, uuid, strlen(uuid)) != 0 || de->d_name[strlen(uuid)] != '-')
                        continue;
                if (mkdir(retired, 0700) < 0 && errno != EEXIST) {
                        r = -errno;
                        break;
                }
                if (asprintf(&from, "%s/%s", dir, de->d_name) < 0 || asprintf(&to, "%s/%s", retired, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (rename(from, to) < 0) {
                        r = -errno;
                        break;
                }
                moved++;
        }
        closedir(d);
        *ret_moved = moved;
        return r;
}

int escrow_retire(const EscrowEnv *env, const VolumeEraseRecord *rec, char **ret_summary) {
        _cleanup_free_ char *summary = NULL;
        char key_id[GUID_STRING_MAX];
        int r;

        guid_format(&rec->key_ids[PROTECTOR_RECOVERY], key_id);
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                _cleanup_free_ char *line = NULL;

                if (!(env->config->escrow_targets & (1u << t)))
                        continue;
                if (t == ESCROW_TARGET_SPOOL) {
                        unsigned moved = 0;

                        r = spool_retire(env->spool_dir, rec->volume_uuid, &moved);
                        r = r < 0 ? asprintf(&line, "spool: %s", strerror(-r)) :
                                    asprintf(&line, "spool: %u record(s) moved to retired/", moved);
                } else if (t == ESCROW_TARGET_HOOK) {
                        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                        _cleanup_free_ char *json = NULL, *why = NULL;

                        /* Not a secret: which password of which volume is void now. Built with
                         * json-c: the hostname is whatever the administrator set. */
                        if (!o || json_object_object_add(o, "sealvol_escrow_version",
                                                         json_object_new_int(ESCROW_RECORD_VERSION)) < 0 ||
                            json_add_string(o, "type", "retired") < 0 || json_add_string(o, "hostname", env->hostname) < 0 ||
                            json_add_string(o, "volume_uuid", rec->volume_uuid) < 0 ||
                            json_add_string(o, "key_id", key_id) < 0 ||
                            json_object_object_add(o, "time", json_object_new_int64((int64_t) time(NULL))) < 0)
                                return -ENOMEM;
                        json = json_format(o);
                        if (!json)
                                return -ENOMEM;
                        EscrowJob job = { .target = ESCROW_TARGET_HOOK, .verb = "retire", .data = json,
                                          .size = strlen(json) };
                        EscrowJobResult answer = {};
                        EscrowHelperConfig hc = { .hook = env->config->escrow_hook,
                                                  .hook_timeout_sec = env->config->escrow_hook_timeout_sec };

                        r = escrow_helper_run(&env->helper, &hc, &job, 1, &answer, &why);
                        if (r >= 0 && answer.error < 0) {
                                why = TAKE_PTR(answer.message);
                                r = answer.error;
                        }
                        escrow_job_results_done(&answer, 1);
                        r = r < 0 ? asprintf(&line, "hook: told, it answered %s", why ?: strerror(-r)) :
                                    asprintf(&line, "hook: retired");
                } else
                        /* As with Windows: the object stays, and opens nothing any more. */
                        r = asprintf(&line, "ad: the record stays in the directory (its key is gone)");
                if (r < 0)
                        return -ENOMEM;
                log_info("Escrow of %s after its erasure: %s.", rec->volume_uuid, line);
                if (summary) {
                        char *joined;

                        if (asprintf(&joined, "%s; %s", summary, line) < 0)
                                return -ENOMEM;
                        free(summary);
                        summary = joined;
                } else
                        summary = TAKE_PTR(line);
        }
        *ret_summary = summary ? TAKE_PTR(summary) : strdup("no escrow targets");
        return *ret_summary ? 0 : -ENOMEM;
}

int manager_escrow_retire(Manager *m, const VolumeEraseRecord *rec, char **ret_summary) {
        EscrowEnv env;
        int r;

        r = escrow_env_base(m, &env);
        if (r >= 0)
                r = escrow_retire(&env, rec, ret_summary);
        escrow_env_done(&env);
        return r;
}

/* ---- the server's VMK export --------------------------------------------------------------------- */

/* The VMK export (wrapped to the DRA) goes to the spool and the hook; AD has no attribute for it. Its
 * escrow state lives in <state>/vmk-escrow.json: {"vmk_id": ..., "escrow": [records as in the token]}. */
#define VMK_ESCROW_TARGETS ((1u << ESCROW_TARGET_SPOOL) | (1u << ESCROW_TARGET_HOOK))

static void vmk_escrow_set(Manager *m, const EscrowRecord *e) {
        for (size_t i = 0; i < m->n_vmk_escrow; i++)
                if (streq(m->vmk_escrow[i].target, e->target)) {
                        m->vmk_escrow[i] = *e;
                        return;
                }
        if (m->n_vmk_escrow < ELEMENTSOF(m->vmk_escrow))
                m->vmk_escrow[m->n_vmk_escrow++] = *e;
}

static int vmk_escrow_save(Manager *m) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object(), *a = json_object_new_array();
        _cleanup_free_ char *text = NULL;
        char id[GUID_STRING_MAX];
        int r;

        if (!o || !a)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_vmk_escrow; i++) {
                json_object *e;

                r = escrow_record_to_json(&m->vmk_escrow[i], &e);
                if (r < 0)
                        return r;
                if (json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
        }
        r = json_add_string(o, "vmk_id", guid_format(&m->vmk_escrow_id, id));
        if (r >= 0)
                r = json_add_owned(o, "escrow", TAKE_PTR(a));
        if (r < 0)
                return r;
        text = json_format(o);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(m->vmk_escrow_path, text, strlen(text), 0600);
}

int manager_load_vmk_escrow(Manager *m) {
        static const char *const keys[] = { "vmk_id", "escrow", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        json_object *a;
        size_t size, n;
        int r;

        r = read_file_full(m->vmk_escrow_path, 64 * 1024, &text, &size);
        if (r == -ENOENT)
                return 0;
        if (r >= 0)
                r = json_parse_object(text, size, 4, &o);
        if (r >= 0 && (json_check_keys(o, keys) < 0 || guid_parse(json_get_string(o, "vmk_id"), &m->vmk_escrow_id) < 0 ||
                       !json_object_object_get_ex(o, "escrow", &a) || !json_object_is_type(a, json_type_array) ||
                       (n = json_object_array_length(a)) > ELEMENTSOF(m->vmk_escrow)))
                r = -EBADMSG;
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = escrow_record_from_json(json_object_array_get_idx(a, i), &m->vmk_escrow[i]);
        if (r < 0) {
                /* Only a record of what was sent: sent again, nothing is lost. */
                m->n_vmk_escrow = 0;
                return log_warning_errno(r, "Ignoring %s, the VMK export will be escrowed again: %m", m->vmk_escrow_path);
        }
        m->n_vmk_escrow = n;
        return 0;
}

int manager_read_vmk_export(Manager *m, char **ret_json, Guid *ret_id, uint8_t ret_fingerprint[DRA_FINGERPRINT_SIZE]) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size;
        Guid id;
        int r;

        r = read_file_full(m->vmk_export_path, VMK_BLOB_SIZE_MAX, &text, &size);
        if (r < 0)
                return r;
        r = json_parse_object(text, size, 4, &o);
        if (r < 0 || guid_parse(json_get_string(o, "vmk_id"), &id) < 0)
                return -EBADMSG;
        if (ret_fingerprint &&
            hex_decode_fixed(strempty(json_get_string(o, "dra_fingerprint")), ret_fingerprint, DRA_FINGERPRINT_SIZE) < 0)
                return -EBADMSG;
        if (ret_id)
                *ret_id = id;
        if (ret_json)
                *ret_json = TAKE_PTR(text);
        return 0;
}

static uint32_t vmk_escrow_outstanding(Manager *m) {
        uint32_t mask = m->config.escrow_targets & VMK_ESCROW_TARGETS;
        _cleanup_free_ char *json = NULL;
        Guid id;

        if (mask == 0 || manager_read_vmk_export(m, &json, &id, NULL) < 0)
                return 0;
        if (!guid_equal(&id, &m->vmk_escrow_id))
                return mask;
        return records_outstanding(mask, m->vmk_escrow, m->n_vmk_escrow);
}


/* ---- the escrow pass ------------------------------------------------------------------------------- */

/* One escrow pass is one background operation (sealvold-operation.c): on the loop, what is due is read
 * (each password with the VMK, the VMK export as it is) into a snapshot; on a worker it goes to the
 * spool and, in a batch per password, to the escrow helper; back on the loop each outcome is applied
 * if what was sent is still current (the same Key ID on the same volume, the same export), and what
 * failed is retried with backoff. The bus answers throughout, and nothing else waits for it. */

typedef enum EscrowItemKind {
        ESCROW_ITEM_VOLUME,
        ESCROW_ITEM_SERVER,
        ESCROW_ITEM_VMK,
} EscrowItemKind;

typedef struct EscrowItem {
        EscrowItemKind kind;
        uint32_t mask;
        char uuid[VOLUME_UUID_STRING_MAX]; /* a volume's; the VMK id (lower case) for the server's */
        char *device;
        Guid key_id;                      /* the password's Key ID; for the VMK export, the VMK id */
        Guid vmk_id;
        uint64_t created;
        char *password;                   /* secure */
        char *record, *spool_name;        /* the VMK export's record */
        /* the outcome */
        int r;
        EscrowRecord recs[_ESCROW_TARGET_MAX];
        int result[_ESCROW_TARGET_MAX];
        char *errors[_ESCROW_TARGET_MAX];
} EscrowItem;

typedef struct EscrowPass {
        EscrowEnv env;
        EscrowItem *items;
        size_t n_items;
        EscrowPassReply reply; /* how the caller is answered, when there is one */
        char only[VOLUME_UUID_STRING_MAX];
        unsigned dra_generation, export_generation; /* the Manager's, when the snapshot was taken */
} EscrowPass;

static void escrow_pass_free(void *data) {
        EscrowPass *p = data;

        if (!p)
                return;
        for (size_t i = 0; i < p->n_items; i++) {
                EscrowItem *it = &p->items[i];

                free(it->device);
                secure_free(it->password);
                free(it->record);
                free(it->spool_name);
                escrow_errors_done(it->errors);
        }
        free(p->items);
        escrow_env_done(&p->env);
        free(p);
}

static EscrowItem *pass_add(EscrowPass *p, EscrowItemKind kind, uint32_t mask) {
        EscrowItem *items = reallocarray(p->items, p->n_items + 1, sizeof(EscrowItem));

        if (!items)
                return NULL;
        p->items = items;
        items[p->n_items] = (EscrowItem) { .kind = kind, .mask = mask };
        return &items[p->n_items++];
}

static int escrow_pass_work(void *data) {
        EscrowPass *p = data;

        for (size_t i = 0; i < p->n_items; i++) {
                EscrowItem *it = &p->items[i];
                _cleanup_free_ char *what = NULL;
                char id[GUID_STRING_MAX];

                if (it->kind == ESCROW_ITEM_VMK) {
                        /* Already wrapped to the DRA: the spool and the hook get it as it is. */
                        EscrowEnv plain = p->env;

                        plain.cert = NULL;
                        plain.dra_error = 0;
                        escrow_send(&plain, it->mask, NULL, it->spool_name, it->record, strlen(it->record), it->recs,
                                    it->result, it->errors);
                        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++) {
                                if (!(it->mask & (1u << t)))
                                        continue;
                                if (it->result[t] < 0) {
                                        log_error("Escrow of the VMK export %s to %s failed, will retry: %s",
                                                  guid_format(&it->key_id, id), escrow_target_to_string(t),
                                                  strempty(it->errors[t]));
                                        it->r = -ECOMM;
                                } else
                                        log_info("VMK export %s escrowed to %s (%s).", guid_format(&it->key_id, id),
                                                 escrow_target_to_string(t), it->recs[t].location);
                        }
                        continue;
                }
                EscrowPassword e = {
                        .hostname = p->env.hostname,
                        .machine_id = p->env.machine_id,
                        .volume_uuid = it->uuid,
                        .device = it->kind == ESCROW_ITEM_VOLUME ? it->device : "",
                        .key_id = it->key_id,
                        .vmk_id = it->vmk_id,
                        .created = it->created,
                        .password = it->password,
                };
                if (it->kind == ESCROW_ITEM_VOLUME ? asprintf(&what, "of %s", it->uuid) < 0 :
                                                     !(what = strdup("of the server"))) {
                        it->r = -ENOMEM;
                        continue;
                }
                it->r = escrow_password_send_to(&p->env, &e, what, it->mask, it->recs, it->result, it->errors);
                /* Any failure is retried, not only a required target's. */
                for (EscrowTarget t = 0; it->r >= 0 && t < _ESCROW_TARGET_MAX; t++)
                        if ((it->mask & (1u << t)) && it->result[t] < 0)
                                it->r = -ECOMM;
        }
        return 0;
}

static void backoff(Manager *m, bool failed, unsigned *attempts, uint64_t *due, const char *what) {
        uint64_t delay;

        if (!failed) {
                *attempts = 0;
                *due = 0;
                return;
        }
        delay = (uint64_t) m->config.escrow_retry_sec << MIN(*attempts, 20u);
        delay = MIN(delay, (uint64_t) m->config.escrow_retry_max_sec) * UINT64_C(1000000);
        (*attempts)++;
        *due = now_usec(CLOCK_MONOTONIC) + delay;
        log_notice("Escrow %s will be retried in %" PRIu64 " s (attempt %u failed).", what, delay / UINT64_C(1000000),
                   *attempts);
}

/* The failed targets of an item, as a mask; every target of it when nothing could be sent. */
static uint32_t item_failed(const EscrowItem *it) {
        uint32_t failed = 0;

        if (it->r < 0 && it->r != -ECOMM)
                return it->mask;
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if ((it->mask & (1u << t)) && it->result[t] < 0)
                        failed |= 1u << t;
        return failed;
}

static void take_errors(char *to[static _ESCROW_TARGET_MAX], EscrowItem *it) {
        for (EscrowTarget t = 0; t < _ESCROW_TARGET_MAX; t++)
                if (it->mask & (1u << t)) {
                        free(to[t]);
                        to[t] = TAKE_PTR(it->errors[t]);
                        if (!to[t] && it->r < 0 && it->r != -ECOMM)
                                set_error(&to[t], "%s", strerror(-it->r));
                }
}

/* Applies a volume's outcome, if its password is still the one that was sent. */
static int pass_apply_volume(Manager *m, EscrowItem *it, bool current, uint32_t *ret_failed) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        ManagedVolume *v = manager_find_volume(m, it->uuid);
        uint32_t failed = item_failed(it);
        const Protector *p;
        int r;

        *ret_failed = failed;
        if (!v)
                return -ENODEV; /* erased meanwhile */
        r = manager_refresh_volume(v, &vol);
        /* Writing its token takes the VMK that MACs it (a check, not a KDF). */
        if (r >= 0)
                r = m->vmk ? volume_authenticate(vol, m->vmk, &m->vmk_id) : -ENOKEY;
        if (r >= 0) {
                p = &vol->token.protectors[PROTECTOR_RECOVERY];
                if (!v->has[PROTECTOR_RECOVERY] || !guid_equal(&p->key_id, &it->key_id))
                        return -ESTALE; /* a new password, which its own change escrowed */
                for (EscrowTarget t = 0; (it->r >= 0 || it->r == -ECOMM) && t < _ESCROW_TARGET_MAX; t++) {
                        if (!(it->mask & (1u << t)))
                                continue;
                        r = volume_set_escrow(vol, &it->key_id, &it->recs[t]);
                        if (r < 0)
                                log_warning_errno(r, "Failed to record the escrow of %s in its token: %m", v->uuid);
                }
                (void) manager_refresh_volume(v, NULL);
        } else
                /* Busy (its own change will escrow) or gone: retried like a failure. */
                failed = it->mask;
        take_errors(v->escrow_error, it);
        if (current)
                v->escrow_force &= failed;
        backoff(m, failed != 0, &v->escrow_attempts, &v->escrow_due_usec, v->uuid);
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, v->object_path, SEALVOL_VOLUME_INTERFACE, "Escrow", NULL);
        *ret_failed = failed;
        return failed ? -ECOMM : 0;
}

static int pass_apply_server(Manager *m, EscrowItem *it, bool current) {
        uint32_t failed = item_failed(it);
        int r;

        if (!m->have_server_recovery || !guid_equal(&m->server_recovery.key_id, &it->key_id))
                return -ESTALE; /* rotated meanwhile: the new one was escrowed by the rotation */
        for (EscrowTarget t = 0; (it->r >= 0 || it->r == -ECOMM) && t < _ESCROW_TARGET_MAX; t++)
                if ((it->mask & (1u << t)) &&
                    escrow_records_set(m->server_recovery.escrow, &m->server_recovery.n_escrow, &it->recs[t]) < 0)
                        log_warning("No room to record the escrow of the server recovery password.");
        r = server_recovery_write(&m->server_recovery, m->server_recovery_path);
        if (r < 0)
                log_warning_errno(r, "Failed to record the escrow of the server recovery password: %m");
        take_errors(m->server_escrow_error, it);
        if (current)
                m->server_escrow_force &= failed;
        backoff(m, failed != 0, &m->server_escrow_attempts, &m->server_escrow_due_usec, "of the server recovery password");
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "ServerRecoveryEscrow", NULL);
        return failed ? -ECOMM : 0;
}

static int pass_apply_vmk(Manager *m, EscrowItem *it, bool current) {
        uint32_t failed = item_failed(it);
        Guid id;
        int r;

        if (manager_read_vmk_export(m, NULL, &id, NULL) < 0 || !guid_equal(&id, &it->key_id))
                return -ESTALE; /* a new export, sent by the next pass */
        if (!guid_equal(&id, &m->vmk_escrow_id)) {
                /* A new VMK or a new export: what was recorded is of the old one. */
                m->vmk_escrow_id = id;
                m->n_vmk_escrow = 0;
        }
        for (EscrowTarget t = 0; (it->r >= 0 || it->r == -ECOMM) && t < _ESCROW_TARGET_MAX; t++)
                if (it->mask & (1u << t))
                        vmk_escrow_set(m, &it->recs[t]);
        r = vmk_escrow_save(m);
        if (r < 0)
                log_warning_errno(r, "Failed to write %s: %m", m->vmk_escrow_path);
        take_errors(m->vmk_escrow_error, it);
        if (current && !failed)
                m->vmk_escrow_force = 0;
        backoff(m, failed != 0, &m->vmk_escrow_attempts, &m->vmk_escrow_due_usec, "of the VMK export");
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "VMKEscrow", NULL);
        return failed ? -ECOMM : 0;
}

typedef struct EscrowQueued {
        sd_bus_message *request;
        char only[VOLUME_UUID_STRING_MAX];
        bool all;
        EscrowPassReply reply;
} EscrowQueued;

void manager_escrow_queue_free(Manager *m) {
        for (size_t i = 0; i < m->n_escrow_queue; i++)
                sd_bus_message_unref(m->escrow_queue[i].request);
        m->escrow_queue = mfree(m->escrow_queue);
        m->n_escrow_queue = 0;
}

/* Calls that may wait for the pass under way; one more is Busy (only administrators may call). */
#define ESCROW_QUEUE_MAX 64u

static int escrow_enqueue(Manager *m, sd_bus_message *request, ManagedVolume *only, bool all, EscrowPassReply reply) {
        EscrowQueued *q;

        if (m->n_escrow_queue >= ESCROW_QUEUE_MAX)
                return -EBUSY;
        q = reallocarray(m->escrow_queue, m->n_escrow_queue + 1, sizeof(EscrowQueued));
        if (!q)
                return -ENOMEM;
        m->escrow_queue = q;
        q[m->n_escrow_queue] = (EscrowQueued) { .request = sd_bus_message_ref(request), .all = all, .reply = reply };
        if (only)
                snprintf(q[m->n_escrow_queue].only, sizeof(q->only), "%s", only->uuid);
        m->n_escrow_queue++;
        return 0;
}

/* The first call that waited, started now; the retries when none did. */
static void escrow_next(Manager *m) {
        while (m->n_escrow_queue > 0 && !m->escrow_running) {
                EscrowQueued q = m->escrow_queue[0];
                ManagedVolume *only = q.only[0] ? manager_find_volume(m, q.only) : NULL;
                int r;

                memmove(m->escrow_queue, m->escrow_queue + 1, (m->n_escrow_queue - 1) * sizeof(EscrowQueued));
                m->n_escrow_queue--;
                if (q.only[0] && !only)
                        (void) sd_bus_reply_method_errorf(q.request, BUS_ERROR_NO_SUCH_VOLUME,
                                                          "The volume %s was removed before its escrow.", q.only);
                else {
                        r = manager_escrow_start(m, q.request, only, q.all, q.reply);
                        if (r < 0)
                                (void) sd_bus_reply_method_errnof(q.request, r, "Failed to start the escrow: %m");
                }
                sd_bus_message_unref(q.request);
        }
        if (!m->escrow_running)
                manager_escrow_retry(m);
}

static void escrow_pass_done(Operation *o, int result) {
        Manager *m = o->manager;
        EscrowPass *p = o->data;
        EscrowPassResult res = {};
        bool current = p->dra_generation == m->escrow_dra_generation;

        (void) result;
        m->escrow_running = false;
        for (size_t i = 0; i < p->n_items; i++) {
                EscrowItem *it = &p->items[i];
                uint32_t failed = 0;
                int r;

                switch (it->kind) {
                case ESCROW_ITEM_VOLUME:
                        r = pass_apply_volume(m, it, current, &failed);
                        if (o->request && r != -ESTALE && r != -ENODEV)
                                audit_record(o->request, "escrow-recovery-password", manager_find_volume(m, it->uuid),
                                             r, NULL);
                        if (streq(it->uuid, p->only)) {
                                res.volume_result = r;
                                res.volume_failed = failed;
                        }
                        break;
                case ESCROW_ITEM_SERVER:
                        r = pass_apply_server(m, it, current);
                        if (o->request && r != -ESTALE)
                                audit_record(o->request, "escrow-server-recovery-password", NULL, r, NULL);
                        break;
                default:
                        r = pass_apply_vmk(m, it, p->export_generation == m->vmk_export_generation);
                        break;
                }
                if (r == -ESTALE || r == -ENODEV)
                        continue;
                /* Volumes are counted, and the server's two secrets when they fail (docs/bus-api.md). */
                if (r < 0)
                        res.failed++;
                else if (it->kind == ESCROW_ITEM_VOLUME)
                        res.done++;
        }
        if (!current) {
                _cleanup_(X509_freep) X509 *cert = NULL;

                /* The DRA changed while this pass ran: a record it wrote to the spool in plaintext
                 * (before there was a certificate) is encrypted to the new one now. */
                if (manager_load_dra_cert(m, &cert) >= 0)
                        manager_escrow_follow_dra(m, cert, /* changed= */ false);
        }
        if (o->request && p->reply)
                p->reply(m, o->request, p->only[0] ? manager_find_volume(m, p->only) : NULL, &res);
        /* The calls that waited, what fell due meanwhile, and the next retry. */
        escrow_next(m);
}

/* Adds v's current password to the pass, for the targets of mask. */
static int pass_add_volume(Manager *m, EscrowPass *p, ManagedVolume *v, uint32_t mask) {
        _cleanup_(volume_freep) Volume *vol = NULL;
        const Protector *pr;
        EscrowItem *it;
        int r;

        r = manager_refresh_volume(v, &vol);
        if (r < 0)
                return r;
        pr = &vol->token.protectors[PROTECTOR_RECOVERY];
        it = pass_add(p, ESCROW_ITEM_VOLUME, mask);
        if (!it)
                return -ENOMEM;
        snprintf(it->uuid, sizeof(it->uuid), "%s", vol->token.volume_uuid);
        it->key_id = pr->key_id;
        it->vmk_id = vol->token.vmk_id;
        it->created = pr->created;
        it->device = strdup(vol->device);
        if (!it->device)
                return -ENOMEM;
        r = volume_read_recovery_password(vol, m->vmk, &m->vmk_id, &it->password);
        if (r < 0) {
                p->n_items--;
                free(it->device);
                return log_error_errno(r, "Failed to read the recovery password of %s for escrow: %m", v->uuid);
        }
        return 0;
}

static int pass_add_server(Manager *m, EscrowPass *p, uint32_t mask) {
        EscrowItem *it = pass_add(p, ESCROW_ITEM_SERVER, mask);
        int r;

        if (!it)
                return -ENOMEM;
        r = server_recovery_read_password(&m->server_recovery, m->vmk, &it->password);
        if (r < 0) {
                p->n_items--;
                return log_error_errno(r, "Failed to read the server recovery password back for escrow: %m");
        }
        /* Escrowed as Windows escrows a volume's numerical password, with the VMK's identity where a
         * volume's would be (server_escrow_password()). */
        guid_format(&m->server_recovery.vmk_id, it->uuid);
        for (char *c = it->uuid; *c; c++)
                if (*c >= 'A' && *c <= 'F')
                        *c = (char) (*c - 'A' + 'a');
        it->key_id = m->server_recovery.key_id;
        it->vmk_id = m->server_recovery.vmk_id;
        it->created = m->server_recovery.created;
        return 0;
}

static int pass_add_vmk(Manager *m, EscrowPass *p, uint32_t mask) {
        _cleanup_free_ char *export = NULL;
        char id[GUID_STRING_MAX];
        EscrowItem *it;
        Guid vmk_id;
        int r;

        r = manager_read_vmk_export(m, &export, &vmk_id, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", m->vmk_export_path);
        it = pass_add(p, ESCROW_ITEM_VMK, mask);
        if (!it)
                return -ENOMEM;
        it->key_id = vmk_id;
        r = escrow_vmk_to_json(m->hostname, m->machine_id, &vmk_id, export, &it->record);
        if (r >= 0 && asprintf(&it->spool_name, "vmk-%s.json", guid_format(&vmk_id, id)) < 0)
                r = -ENOMEM;
        if (r < 0) {
                free(it->record);
                p->n_items--;
                return log_error_errno(r, "Failed to build the escrow record of the VMK export: %m");
        }
        return 0;
}

/* What a volume's current password still has to reach: the targets not done, and those forced. */
static uint32_t volume_due_mask(Manager *m, const ManagedVolume *v, bool all) {
        if (!v->has[PROTECTOR_RECOVERY])
                return 0;
        return all ? m->config.escrow_targets : (escrow_outstanding(m, v) | (v->escrow_force & m->config.escrow_targets));
}

static uint32_t server_due_mask(Manager *m, bool all) {
        if (!m->have_server_recovery || !m->vmk || !guid_equal(&m->server_recovery.vmk_id, &m->vmk_id))
                return 0;
        return all ? m->config.escrow_targets :
                     records_outstanding(m->config.escrow_targets, m->server_recovery.escrow, m->server_recovery.n_escrow) |
                             (m->server_escrow_force & m->config.escrow_targets);
}

static uint32_t vmk_due_mask(Manager *m, bool all) {
        uint32_t mask = m->config.escrow_targets & VMK_ESCROW_TARGETS;

        if (all || m->vmk_escrow_force)
                return mask;
        return vmk_escrow_outstanding(m);
}

static int on_escrow_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        manager_escrow_retry(userdata);
        return 0;
}

static void arm_timer(Manager *m, uint64_t next) {
        int r;

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

int manager_escrow_start(Manager *m, sd_bus_message *request, ManagedVolume *only, bool all, EscrowPassReply reply) {
        EscrowPass *p = NULL;
        uint64_t now = now_usec(CLOCK_MONOTONIC), next = UINT64_MAX;
        uint32_t mask;
        int r;

        if (m->escrow_running)
                /* One pass at a time; the one under way runs the retries again when it is done. */
                return request ? escrow_enqueue(m, request, only, all, reply) : 0;
        if (request && !m->vmk) {
                /* Asked for: the VMK is what reads the passwords back (the TPM, on the loop: rare, the
                 * daemon keeps it once it has it). */
                r = manager_ensure_vmk(m, /* create= */ false);
                if (r < 0)
                        return r;
        }
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->reply = reply;
        p->dra_generation = m->escrow_dra_generation;
        p->export_generation = m->vmk_export_generation;
        if (only)
                snprintf(p->only, sizeof(p->only), "%s", only->uuid);

        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];
                bool asked = request && (all || v == only);

                if (only && v != only)
                        continue;
                mask = volume_due_mask(m, v, asked);
                if (mask == 0) {
                        v->escrow_attempts = 0;
                        continue;
                }
                if (!asked && v->escrow_due_usec > now) {
                        next = MIN(next, v->escrow_due_usec);
                        continue;
                }
                /* Without the VMK (recovery required) the password cannot be read back: wait for it. */
                if (!m->vmk)
                        continue;
                r = pass_add_volume(m, p, v, mask);
                if (r < 0 && only) {
                        escrow_pass_free(p);
                        return r;
                }
        }
        if (!only) {
                mask = server_due_mask(m, request != NULL);
                if (mask && (request || m->server_escrow_due_usec <= now))
                        (void) pass_add_server(m, p, mask);
                else if (mask)
                        next = MIN(next, m->server_escrow_due_usec);
                /* The VMK export needs no VMK: it is sent as it is. */
                mask = vmk_due_mask(m, request != NULL);
                if (mask && (request || m->vmk_escrow_due_usec <= now))
                        (void) pass_add_vmk(m, p, mask);
                else if (mask)
                        next = MIN(next, m->vmk_escrow_due_usec);
        }
        arm_timer(m, next);

        if (p->n_items == 0 || !m->event) {
                EscrowPassResult res = {};

                escrow_pass_free(p);
                if (request && reply)
                        reply(m, request, only, &res);
                return 0;
        }
        r = manager_escrow_env(m, &p->env);
        if (r < 0) {
                escrow_pass_free(p);
                return r;
        }
        r = operation_start_background(m, request, "escrow", escrow_pass_work, escrow_pass_done, p, escrow_pass_free);
        if (r < 0)
                return r;
        m->escrow_running = true;
        return 0;
}

void manager_escrow_retry(Manager *m) {
        int r;

        r = manager_escrow_start(m, NULL, NULL, /* all= */ false, NULL);
        if (r < 0)
                log_warning_errno(r, "Failed to start the escrow pass, retried at the next change: %m");
}
