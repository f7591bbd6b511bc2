/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-inplace.c: encrypting a device that holds data, in place (docs/in-place.md), on a thread of
 * its own so the bus stays responsive for the minutes or hours it takes.
 *
 * The thread only calls the library (volume_inplace_start(), volume_inplace_run()) on its own copies
 * (the device path, the VMK in secure memory, the DRA certificate); everything it tells the daemon
 * goes through the job under its mutex, and an eventfd wakes the event loop, which alone touches the
 * manager, the bus and the volume's object. While a job runs, its volume is "busy": nothing else reads
 * or writes its header.
 *
 * Every job leaves a note in <state>/inplace/<sha256 of the device path>.device naming the device,
 * next to the detached header the library works with (.hdr): after a crash or a restart, the daemon
 * finds the note and resumes (the library's metadata says where).
 */

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "bus-errors.h"
#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "openssl-util.h"
#include "sealvold.h"
#include "secmem.h"
#include "volume-inplace.h"

#define PROGRESS_INTERVAL_USEC UINT64_C(500000)

typedef enum JobEvent {
        JOB_EVENT_STARTED = 1 << 0,  /* the device is a sealvol volume now */
        JOB_EVENT_PROGRESS = 1 << 1,
        JOB_EVENT_FINISHED = 1 << 2, /* done, paused or failed: the thread has ended */
} JobEvent;

struct InPlaceJob {
        Manager *manager;
        ManagedVolume *volume;     /* once started */
        sd_bus_message *request;   /* the ProvisionInPlace call, answered once started */
        char *device;
        char *header_path;
        char *note_path;
        bool start;                /* a new job (not a resumption) */
        uint8_t *vmk;              /* secure memory, the thread's copy */
        Guid vmk_id;
        bool has_server_wrap;      /* the server recovery password's copy of the VMK, for the token */
        Guid server_key_id;
        uint8_t server_wrap[VOLUME_SERVER_WRAP_SIZE];
        EscrowEnv escrow_env;      /* the thread escrows from it (and its DRA certificate protects the
                                    * volume), never from the Manager */
        EscrowContext escrow;

        pthread_t thread;
        bool thread_running;
        int efd;
        sd_event_source *source;
        atomic_bool pause;

        pthread_mutex_t lock;      /* guards what follows */
        unsigned events;
        uint64_t done, total, rate, eta;
        uint64_t first_usec, first_done, last_event_usec;
        int result;
        char *what;
        char uuid[VOLUME_UUID_STRING_MAX];
        Guid recovery_key_id;
        char *password;            /* secure memory: the new volume's, shown while its header is busy */
};

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000u;
}

/* A pause outlives a restart: "<note>.paused" says not to resume on start. */
static char *paused_marker(const char *note) {
        char *p;

        return asprintf(&p, "%s.paused", note) < 0 ? NULL : p;
}

static void job_post(InPlaceJob *j, unsigned event) {
        uint64_t one = 1;

        pthread_mutex_lock(&j->lock);
        j->events |= event;
        pthread_mutex_unlock(&j->lock);
        /* An eventfd write fails only when its counter would overflow: never at one per event. */
        if (write(j->efd, &one, sizeof(one)) != (ssize_t) sizeof(one))
                log_debug_errno(errno, "Failed to wake the event loop for the in-place job: %m");
}

static int job_progress(uint64_t done, uint64_t total, void *userdata) {
        InPlaceJob *j = userdata;
        uint64_t now = now_usec();
        bool post;

        pthread_mutex_lock(&j->lock);
        if (j->first_usec == 0) {
                j->first_usec = now;
                j->first_done = done;
        }
        j->done = done;
        j->total = total;
        if (now > j->first_usec && done > j->first_done) {
                j->rate = (done - j->first_done) * UINT64_C(1000000) / (now - j->first_usec);
                j->eta = j->rate > 0 ? (total - done) / j->rate : 0;
        }
        post = now - j->last_event_usec >= PROGRESS_INTERVAL_USEC;
        if (post)
                j->last_event_usec = now;
        pthread_mutex_unlock(&j->lock);
        if (post)
                job_post(j, JOB_EVENT_PROGRESS);
        return atomic_load(&j->pause) ? 1 : 0;
}

static void *job_thread(void *userdata) {
        InPlaceJob *j = userdata;
        _cleanup_free_ char *what = NULL;
        int r = 0;

        if (j->start) {
                _cleanup_secure_ char *password = NULL;
                VolumeProvisionParams p = {
                        .vmk = j->vmk,
                        .vmk_id = j->vmk_id,
                        .server_key_id = j->has_server_wrap ? &j->server_key_id : NULL,
                        .server_wrap = j->has_server_wrap ? j->server_wrap : NULL,
                        .hostname = j->escrow_env.hostname,
                        .dra_cert = j->escrow_env.cert,
                        .dra_extra_ekus = (const char *const *) j->escrow_env.config->dra_extra_ekus,
                        .recovery_iterations = j->escrow_env.config->recovery_kdf_iterations,
                        .escrow = escrow_callback,
                        .userdata = &j->escrow,
                };

                r = volume_inplace_start(j->device, j->header_path, &p, &password, &what);
                if (r >= 0) {
                        pthread_mutex_lock(&j->lock);
                        j->password = TAKE_PTR(password);
                        pthread_mutex_unlock(&j->lock);
                }
        }
        if (r >= 0) {
                _cleanup_(volume_freep) Volume *v = NULL;

                /* Who it is now, for the daemon to register before the long part. */
                r = volume_load(j->device, &v);
                if (r >= 0) {
                        pthread_mutex_lock(&j->lock);
                        snprintf(j->uuid, sizeof(j->uuid), "%s", v->token.volume_uuid);
                        j->recovery_key_id = v->token.protectors[PROTECTOR_RECOVERY].key_id;
                        pthread_mutex_unlock(&j->lock);
                        job_post(j, JOB_EVENT_STARTED);
                }
        }
        if (r >= 0)
                r = volume_inplace_run(j->device, j->header_path, j->vmk, &j->vmk_id, job_progress, j);

        pthread_mutex_lock(&j->lock);
        j->result = r;
        j->what = TAKE_PTR(what);
        pthread_mutex_unlock(&j->lock);
        job_post(j, JOB_EVENT_FINISHED);
        return NULL;
}

static InPlaceJob *job_free(InPlaceJob *j) {
        if (!j)
                return NULL;
        if (j->thread_running)
                (void) pthread_join(j->thread, NULL);
        sd_event_source_disable_unref(j->source);
        safe_close(j->efd);
        sd_bus_message_unref(j->request);
        free(j->device);
        free(j->header_path);
        free(j->note_path);
        secure_free(j->vmk);
        secure_free(j->password);
        escrow_errors_done(j->escrow.errors);
        escrow_env_done(&j->escrow_env);
        free(j->what);
        pthread_mutex_destroy(&j->lock);
        free(j);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(InPlaceJob *, job_free);

static void job_detach(Manager *m, InPlaceJob *j) {
        for (size_t i = 0; i < m->n_jobs; i++)
                if (m->jobs[i] == j) {
                        m->jobs[i] = m->jobs[--m->n_jobs];
                        break;
                }
        if (j->volume && j->volume->job == j)
                j->volume->job = NULL;
}

static void emit_encryption_changed(ManagedVolume *v) {
        if (!v || !v->manager->bus)
                return;
        (void) sd_bus_emit_properties_changed(v->manager->bus, v->object_path, SEALVOL_VOLUME_INTERFACE, "Encryption",
                                              "EncryptionProgress", "State", "Operation", NULL);
        (void) sd_bus_emit_properties_changed(v->manager->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                              "Operations", NULL);
}

/* The device became a sealvol volume: register it and answer the caller. */
static void job_started(InPlaceJob *j) {
        Manager *m = j->manager;
        ManagedVolume *v;
        char id[GUID_STRING_MAX];
        int r;

        v = manager_find_volume(m, j->uuid);
        if (!v) {
                r = manager_register_volume(m, j->uuid, j->device, &v);
                if (r < 0) {
                        log_error_errno(r, "Failed to register %s (%s), which is being encrypted: %m", j->uuid,
                                        j->device);
                        return;
                }
        }
        j->volume = v;
        v->job = j;
        if (j->start) {
                escrow_errors_done(v->escrow_error);
                memcpy(v->escrow_error, j->escrow.errors, sizeof(v->escrow_error));
                memset(j->escrow.errors, 0, sizeof(j->escrow.errors));
        }
        free(v->encryption);
        v->encryption = strdup("encrypting");
        v->state = VOLUME_BUSY;
        emit_encryption_changed(v);
        log_info("Encrypting %s (%s) in place.", v->uuid, j->device);
        if (j->request) {
                /* The request's audit record: it is a volume now, and its caller gets the answer. */
                audit_record(j->request, "provision-in-place", v, 0, j->device);
                (void) sd_bus_reply_method_return(j->request, "os", v->object_path,
                                                  guid_format(&j->recovery_key_id, id));
                j->request = sd_bus_message_unref(j->request);
        }
}

/* The answer of a ProvisionInPlace that did not make a volume, with its audit record. */
static void answer_refused(sd_bus_message *request, const char *device, int r, const char *what) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *name = bus_error_name_from_errno(r);

        audit_record(request, "provision-in-place", NULL, r, device);
        if (r == -ECOMM)
                (void) sd_bus_error_setf(&error, BUS_ERROR_ESCROW_FAILED,
                                         "%s was not encrypted: its recovery password could not be escrowed to a "
                                         "required target.", device);
        else if (what && name)
                /* The library's words say why; the generic explanation would repeat them. */
                (void) sd_bus_error_setf(&error, name, "Cannot encrypt %s in place: %s.", device, what);
        else
                (void) bus_error_set(&error, r, "Cannot encrypt %s in place%s%s", device, what ? ": " : "",
                                     strempty(what));
        (void) sd_bus_reply_method_error(request, &error);
        sd_bus_error_free(&error);
}

static void job_finished(InPlaceJob *j) {
        Manager *m = j->manager;
        ManagedVolume *v = j->volume;
        const char *outcome;

        (void) pthread_join(j->thread, NULL);
        j->thread_running = false;

        if (j->result == 0) {
                _cleanup_free_ char *marker = paused_marker(j->note_path);

                outcome = "";
                (void) unlink(j->note_path);
                if (marker)
                        (void) unlink(marker);
                log_info("%s (%s) is encrypted.", j->uuid, j->device);
        } else if (j->result == -EINTR) {
                outcome = "paused";
                log_info("Encryption of %s (%s) paused at %" PRIu64 " of %" PRIu64 " bytes.", j->uuid, j->device,
                         j->done, j->total);
        } else {
                outcome = "failed";
                /* It never became a volume (the resumption says so, or the start was refused with
                 * nothing changed: no header written, none on the device): nothing to resume, and a
                 * note left would refuse every retry as "already being encrypted". */
                if (j->result == -ENOMSG ||
                    (!v && access(j->header_path, F_OK) < 0 && volume_inplace_in_progress(j->device) <= 0))
                        (void) unlink(j->note_path);
                log_error_errno(j->result, "In-place encryption of %s failed%s%s: %m", j->device, j->what ? ": " : "",
                                strempty(j->what));
        }
        if (j->request) {
                /* Refused or failed before it became a volume. */
                answer_refused(j->request, j->device, j->result, j->what);
                j->request = sd_bus_message_unref(j->request);
        }
        if (v) {
                free(v->encryption);
                v->encryption = j->result == 0 ? NULL :
                                j->result == -EINTR ? strdup(outcome) :
                                (asprintf(&v->encryption, "failed: %s", j->what ?: strerror(-j->result)) < 0 ? NULL :
                                                                                                           v->encryption);
                v->state = VOLUME_LOCKED;
                v->encryption_done = j->done;
                v->encryption_total = j->total;
                job_detach(m, j);
                (void) manager_refresh_volume(v, NULL);
                emit_encryption_changed(v);
        } else
                job_detach(m, j);
        job_free(j);
        manager_escrow_retry(m);
}

static int on_job_event(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        InPlaceJob *j = userdata;
        uint64_t n;
        unsigned events;

        (void) s;
        (void) revents;
        /* Nothing to read is fine: the events themselves are in j->events. */
        if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                log_debug_errno(errno, "Failed to read the in-place job's wake-up: %m");
        pthread_mutex_lock(&j->lock);
        events = j->events;
        j->events = 0;
        pthread_mutex_unlock(&j->lock);

        if (events & JOB_EVENT_STARTED)
                job_started(j);
        if ((events & JOB_EVENT_PROGRESS) && j->volume)
                (void) sd_bus_emit_properties_changed(j->manager->bus, j->volume->object_path, SEALVOL_VOLUME_INTERFACE,
                                                      "EncryptionProgress", NULL);
        if (events & JOB_EVENT_FINISHED)
                job_finished(j); /* frees j */
        return 0;
}

static int note_paths(Manager *m, const char *device, char **ret_note, char **ret_header) {
        uint8_t digest[SHA256_DIGEST_LENGTH];
        _cleanup_free_ char *hex = NULL, *dir = NULL;

        SHA256((const uint8_t *) device, strlen(device), digest);
        hex = hex_encode(digest, sizeof(digest));
        if (!hex || asprintf(&dir, "%s/inplace", m->state_dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        if (asprintf(ret_note, "%s/%s.device", dir, hex) < 0)
                return -ENOMEM;
        if (asprintf(ret_header, "%s/%s.hdr", dir, hex) < 0) {
                *ret_note = mfree(*ret_note);
                return -ENOMEM;
        }
        return 0;
}

static int job_launch(Manager *m, const char *device, bool start, bool paused, sd_bus_message *request,
                      ManagedVolume *v) {
        _cleanup_(job_freep) InPlaceJob *j = NULL;
        InPlaceJob **a;
        int r;

        if (m->n_jobs >= INPLACE_JOBS_MAX)
                return -E2BIG;
        for (size_t i = 0; i < m->n_jobs; i++)
                if (streq(m->jobs[i]->device, device))
                        return -EBUSY;
        if (!m->vmk)
                return -ENOPKG;

        j = calloc(1, sizeof(InPlaceJob));
        if (!j)
                return -ENOMEM;
        pthread_mutex_init(&j->lock, NULL);
        j->efd = -EBADF;
        j->manager = m;
        j->start = start;
        j->escrow.env = &j->escrow_env;
        j->device = strdup(device);
        j->vmk = secure_memdup(m->vmk, VMK_SIZE);
        j->vmk_id = m->vmk_id;
        if (!j->device || !j->vmk)
                return -ENOMEM;
        r = manager_escrow_env(m, &j->escrow_env);
        if (r < 0)
                return r;
        if (manager_ensure_server_recovery(m) >= 0) {
                j->has_server_wrap = true;
                j->server_key_id = m->server_recovery.key_id;
                memcpy(j->server_wrap, m->server_recovery.wrapped_vmk, sizeof(j->server_wrap));
        }
        r = note_paths(m, device, &j->note_path, &j->header_path);
        if (r < 0)
                return r;
        if (start) {
                if (j->escrow_env.dra_error < 0)
                        return j->escrow_env.dra_error;
                /* The note first: whatever happens next, a restart knows to look at this device. */
                r = write_file_atomic(j->note_path, device, strlen(device), 0600);
                if (r < 0)
                        return r;
                if (paused) {
                        /* Set up, and stopped before the first step, also across a restart. */
                        _cleanup_free_ char *marker = paused_marker(j->note_path);

                        r = marker ? write_file_atomic(marker, "", 0, 0600) : -ENOMEM;
                        if (r < 0) {
                                (void) unlink(j->note_path);
                                return r;
                        }
                        atomic_store(&j->pause, true);
                }
        }
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0)
                return -errno;
        r = sd_event_add_io(m->event, &j->source, j->efd, EPOLLIN, on_job_event, j);
        if (r < 0)
                return r;
        a = realloc(m->jobs, (m->n_jobs + 1) * sizeof(*m->jobs));
        if (!a)
                return -ENOMEM;
        m->jobs = a;
        if (request)
                j->request = sd_bus_message_ref(request);
        if (v) {
                j->volume = v;
                v->job = j;
                snprintf(j->uuid, sizeof(j->uuid), "%s", v->uuid);
                free(v->encryption);
                v->encryption = strdup("encrypting");
                v->state = VOLUME_BUSY;
                emit_encryption_changed(v);
        }
        r = -pthread_create(&j->thread, NULL, job_thread, j);
        if (r < 0) {
                if (v) {
                        v->job = NULL;
                        v->state = VOLUME_LOCKED;
                }
                return r;
        }
        j->thread_running = true;
        m->jobs[m->n_jobs++] = TAKE_PTR(j);
        return 0;
}

typedef struct InPlaceRequest {
        bool paused;
        char device[];
} InPlaceRequest;

static void in_place_after_vmk(Manager *m, sd_bus_message *request, int r, void *data) {
        const InPlaceRequest *q = data;

        if (r >= 0)
                r = job_launch(m, q->device, /* start= */ true, q->paused, request, NULL);
        if (r < 0)
                answer_refused(request, q->device, r, NULL);
}

int manager_provision_in_place(Manager *m, const char *device, bool paused, sd_bus_message *request,
                               char **ret_what) {
        InPlaceInfo info;
        _cleanup_free_ char *note = NULL, *header = NULL;
        int r;

        /* The quick refusals answer at once, with nothing changed. */
        if (manager_provisioning(m, device)) {
                if (ret_what && asprintf(ret_what, "%s is being provisioned", device) < 0)
                        *ret_what = NULL;
                return -EBUSY;
        }
        r = volume_inplace_check(device, &info, ret_what);
        if (r < 0)
                return r;
        r = note_paths(m, device, &note, &header);
        if (r < 0)
                return r;
        if (access(note, F_OK) == 0) {
                if (ret_what && asprintf(ret_what, "%s is already being encrypted in place", device) < 0)
                        *ret_what = NULL;
                return -EBUSY;
        }
        /* Without the VMK yet, it is made (or unsealed) first, off the loop; the job starts then. */
        if (!m->vmk) {
                InPlaceRequest *q = malloc(sizeof(*q) + strlen(device) + 1);

                if (!q)
                        return -ENOMEM;
                q->paused = paused;
                strcpy(q->device, device);
                return manager_vmk_prepare_start(m, request, in_place_after_vmk, q, free);
        }
        return job_launch(m, device, /* start= */ true, paused, request, NULL);
}

int manager_pause_encryption(Manager *m, ManagedVolume *v) {
        _cleanup_free_ char *marker = NULL;

        (void) m;
        if (!v->job)
                return -ENOENT;
        marker = paused_marker(v->job->note_path);
        if (!marker)
                return -ENOMEM;
        (void) write_file_atomic(marker, "", 0, 0600);
        atomic_store(&v->job->pause, true);
        return 0;
}

int manager_resume_encryption(Manager *m, ManagedVolume *v) {
        int r;

        if (v->job || v->operation)
                return -EBUSY;
        if (!v->encryption)
                return -ENOENT;
        if (!m->vmk)
                return -ENOPKG; /* the bus unseals it first (bus_need_vmk()) */
        r = job_launch(m, v->device, /* start= */ false, /* paused= */ false, NULL, v);
        if (r >= 0) {
                _cleanup_free_ char *marker = paused_marker(v->job->note_path);
                if (marker)
                        (void) unlink(marker);
        }
        return r;
}

/* ---- cancelling a job that has encrypted nothing ------------------------------------------------ */

typedef struct CancelData {
        char *device, *note_path, *header_path;
        char uuid[VOLUME_UUID_STRING_MAX];
        uint8_t *vmk; /* secure memory; NULL when only a crash's cancellation is finished (no VMK then) */
        Guid vmk_id;
        bool retire;  /* the volume's escrow records, once the device is back */
        VolumeEraseRecord rec;
        EscrowEnv env;
        char *what, *retired;
} CancelData;

static void cancel_data_free(void *data) {
        CancelData *c = data;

        if (!c)
                return;
        free(c->device);
        free(c->note_path);
        free(c->header_path);
        secure_free(c->vmk);
        escrow_env_done(&c->env);
        free(c->what);
        free(c->retired);
        free(c);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(CancelData *, cancel_data_free);

static int cancel_work(void *data) {
        static const uint8_t no_vmk[VMK_SIZE];
        CancelData *c = data;
        int r;

        r = volume_inplace_cancel(c->device, c->header_path, c->vmk ?: no_vmk, &c->vmk_id, &c->what);
        if (r < 0)
                return r;
        /* Its recovery password opens nothing any more. */
        if (c->retire && escrow_retire(&c->env, &c->rec, &c->retired) < 0)
                c->retired = strdup("the escrow records could not be retired");
        return 0;
}

static void cancel_done(Operation *o, int result) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        CancelData *c = o->data;
        Manager *m = o->manager;
        ManagedVolume *v = c->uuid[0] ? manager_find_volume(m, c->uuid) : NULL;
        _cleanup_free_ char *marker = paused_marker(c->note_path);

        if (result >= 0) {
                /* In this order: a crash before the note goes finds a device that is no volume, which
                 * the resumption takes as a job that never started. The cancellation's own marker goes
                 * before the note, so that nothing outlives the note that could act on the device. */
                if (v)
                        manager_forget_volume(m, v);
                result = volume_inplace_cancel_done(c->header_path);
                if (result >= 0) {
                        if (marker)
                                (void) unlink(marker);
                        if (unlink(c->note_path) < 0 && errno != ENOENT)
                                result = -errno;
                }
                if (result >= 0)
                        log_notice("The in-place encryption of %s (%s) was cancelled: the device holds its file "
                                   "system as before%s%s.", c->uuid[0] ? c->uuid : "a volume", c->device,
                                   c->retired ? "; escrow: " : "", strempty(c->retired));
        }
        if (result < 0)
                log_error_errno(result, "Failed to cancel the in-place encryption of %s%s%s: %m", c->device,
                                c->what ? ": " : "", strempty(c->what));
        if (!o->request)
                return;
        audit_record(o->request, "cancel-encryption", NULL, result, c->uuid[0] ? c->uuid : c->device);
        if (result >= 0) {
                (void) sd_bus_reply_method_return(o->request, "s", strempty(c->retired));
                return;
        }
        if (result == -ENOTRECOVERABLE)
                (void) sd_bus_error_setf(&error, BUS_ERROR_DATA_ENCRYPTED,
                                         "Cannot cancel the encryption of %s: %s.", c->uuid, strempty(c->what));
        else
                (void) bus_error_set(&error, result, "Cannot cancel the encryption of %s%s%s", c->uuid,
                                     c->what ? ": " : "", strempty(c->what));
        (void) sd_bus_reply_method_error(o->request, &error);
}

static bool cancel_running(Manager *m, const char *device) {
        for (size_t i = 0; i < m->n_operations; i++)
                if (m->operations[i]->work == cancel_work &&
                    streq(((const CancelData *) m->operations[i]->data)->device, device))
                        return true;
        return false;
}

/* v: the volume, when it is registered (its escrow records are retired; NULL at a restart that finds
 * a cancellation whose volume was forgotten already). */
static int cancel_start(Manager *m, ManagedVolume *v, const char *device, sd_bus_message *request) {
        _cleanup_(cancel_data_freep) CancelData *c = NULL;
        int r;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->device = strdup(device);
        if (!c->device)
                return -ENOMEM;
        r = note_paths(m, device, &c->note_path, &c->header_path);
        if (r < 0)
                return r;
        if (m->vmk) {
                c->vmk = secure_memdup(m->vmk, VMK_SIZE);
                if (!c->vmk)
                        return -ENOMEM;
                c->vmk_id = m->vmk_id;
        }
        if (v) {
                snprintf(c->uuid, sizeof(c->uuid), "%s", v->uuid);
                if (v->has[PROTECTOR_RECOVERY]) {
                        c->retire = true;
                        snprintf(c->rec.volume_uuid, sizeof(c->rec.volume_uuid), "%s", v->uuid);
                        memcpy(c->rec.key_ids, v->key_ids, sizeof(c->rec.key_ids));
                        memcpy(c->rec.has, v->has, sizeof(c->rec.has));
                }
        }
        r = manager_escrow_env(m, &c->env);
        if (r < 0)
                return r;
        if (v)
                return operation_start(m, v, request, "cancel-encryption", cancel_work, cancel_done, TAKE_PTR(c),
                                       cancel_data_free);
        return operation_start_background(m, request, "cancel-encryption", cancel_work, cancel_done, TAKE_PTR(c),
                                          cancel_data_free);
}

int manager_cancel_encryption(Manager *m, ManagedVolume *v, sd_bus_message *request) {
        if (v->job || v->operation)
                return -EBUSY;
        if (!v->encryption)
                return -ENOENT;
        /* The VMK proves the header is this server's (the token's MAC), not one planted under its name;
         * the bus unsealed it first (bus_need_vmk()). */
        if (!m->vmk)
                return -ENOPKG;
        return cancel_start(m, v, v->device, request);
}

static void resume_after_vmk(Manager *m, sd_bus_message *request, int r, void *data) {
        (void) request;
        (void) data;
        if (r < 0 || !m->vmk) {
                log_warning_errno(r < 0 ? r : ENOPKG, "In-place encryptions wait for the VMK: %m");
                return;
        }
        manager_resume_in_place(m);
}

void manager_resume_in_place(Manager *m) {
        bool need_vmk = false;
        _cleanup_free_ char *dir = NULL;
        DIR *d;
        struct dirent *de;

        if (asprintf(&dir, "%s/inplace", m->state_dir) < 0)
                return;
        d = opendir(dir);
        if (!d)
                return;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *device = NULL;
                size_t n = strlen(de->d_name);
                ManagedVolume *v = NULL;
                int r;

                if (n < 8 || !streq(de->d_name + n - 7, ".device"))
                        continue;
                if (asprintf(&path, "%s/%s", dir, de->d_name) < 0 ||
                    read_file_full(path, DEVICE_PATH_MAX, &device, NULL) < 0)
                        continue;
                for (size_t i = 0; i < m->n_volumes; i++)
                        if (streq(m->volumes[i]->device, device))
                                v = m->volumes[i];
                if ((v && (v->job || v->operation)) || cancel_running(m, device))
                        continue; /* an operation's volume: resumed at the next pass */
                {
                        _cleanup_free_ char *note = NULL, *header = NULL;

                        if (note_paths(m, device, &note, &header) >= 0 && volume_inplace_cancel_pending(header) > 0) {
                                log_info("Finishing the cancelled in-place encryption of %s.", device);
                                r = cancel_start(m, v, device, NULL);
                                if (r < 0)
                                        log_error_errno(r, "Failed to finish the cancelled encryption of %s: %m",
                                                        device);
                                continue;
                        }
                }
                {
                        _cleanup_free_ char *marker = paused_marker(path);

                        if (marker && access(marker, F_OK) == 0) {
                                if (v) {
                                        free(v->encryption);
                                        v->encryption = strdup("paused");
                                        /* Where it stopped, as its job last said (one header read). */
                                        (void) volume_inplace_progress(device, &v->encryption_done,
                                                                       &v->encryption_total);
                                }
                                continue;
                        }
                }
                /* The one unseal of the boot may not have happened yet (every volume here was busy):
                 * it runs off the loop, and this comes back when it is done. */
                if (!m->vmk) {
                        need_vmk = true;
                        continue;
                }
                log_info("Resuming the in-place encryption of %s.", device);
                r = job_launch(m, device, /* start= */ false, /* paused= */ false, NULL, v);
                if (r < 0)
                        log_error_errno(r, "Failed to resume the in-place encryption of %s: %m", device);
        }
        closedir(d);
        if (need_vmk && !manager_vmk_operation(m)) {
                int r = manager_vmk_unseal_start(m, NULL, resume_after_vmk, NULL, NULL);

                if (r < 0)
                        log_warning_errno(r, "In-place encryptions wait for the VMK, whose unseal cannot start: %m");
        }
}

void manager_stop_jobs(Manager *m) {
        /* Pause every job (consistent metadata) and wait: the next start resumes them. */
        for (size_t i = 0; i < m->n_jobs; i++)
                atomic_store(&m->jobs[i]->pause, true);
        while (m->n_jobs > 0) {
                InPlaceJob *j = m->jobs[0];

                (void) pthread_join(j->thread, NULL);
                j->thread_running = false;
                job_detach(m, j);
                job_free(j);
        }
        free(m->jobs);
        m->jobs = NULL;
}

int volume_encryption_password(const ManagedVolume *v, char **ret) {
        InPlaceJob *j = v->job;
        char *copy = NULL;

        if (!j)
                return -ENOENT;
        pthread_mutex_lock(&j->lock);
        if (j->password)
                copy = secure_memdup(j->password, strlen(j->password) + 1);
        pthread_mutex_unlock(&j->lock);
        if (!copy)
                return -EBUSY;
        *ret = copy;
        return 0;
}

int volume_encryption_progress(const ManagedVolume *v, uint64_t *ret_done, uint64_t *ret_total, uint64_t *ret_rate,
                               uint64_t *ret_eta) {
        InPlaceJob *j = v->job;

        if (!j) {
                *ret_done = v->encryption_done;
                *ret_total = v->encryption_total;
                *ret_rate = *ret_eta = 0;
                return 0;
        }
        pthread_mutex_lock(&j->lock);
        *ret_done = j->done;
        *ret_total = j->total;
        *ret_rate = j->rate;
        *ret_eta = j->eta;
        pthread_mutex_unlock(&j->lock);
        return 0;
}
