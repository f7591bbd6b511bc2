/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-unlock.c: the one unlock path.
 *
 * The boot, a disk that appears, a volume's Unlock, UnlockAll and what opens every volume after a
 * server-level recovery all ask for the same thing: open these volumes with the VMK. A request marks
 * its volumes wanted; a pass takes every wanted volume that is idle and runs as a shared manager-wide
 * operation ("unlock", the Operation property of each volume in it). Its worker sees a snapshot only:
 * the devices and names, secure copies of the VMKs the daemon holds, and what an unseal needs if it
 * holds none. The volumes are loaded and opened in parallel, a worker per core (volume_open_many());
 * the first one whose token needs a VMK the daemon lacks unseals it, once for the pass, under a lock
 * the others wait on. On the loop, the unseal's result is taken (logged once), every volume's result
 * applied, then what follows an unlock, then whoever waited for this pass is answered. Requests that
 * came meanwhile are served by the next pass, which starts at once.
 */

#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "bus-errors.h"
#include "log.h"
#include "secmem.h"
#include "sealvold.h"

typedef struct UnlockWork {
        VolumeOpenItem *items;
        ManagedVolume **volumes; /* for the loop only: the worker never reads them */
        char **strings;          /* the items' device, uuid and name, copied */
        size_t n;
        unsigned workers;
        /* The VMKs the daemon held when the pass started. */
        uint8_t *vmk, *previous;
        Guid vmk_id, previous_id;
        /* Without one: the unseal, run once by the first worker that needs it. */
        pthread_mutex_t lock;
        VmkUnseal unseal;
        bool can_unseal;
} UnlockWork;

static void unlock_work_free(void *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(UnlockWork *, unlock_work_free);

static void unlock_work_free(void *p) {
        UnlockWork *w = p;

        if (!w)
                return;
        for (size_t i = 0; i < w->n; i++)
                volume_free(w->items[i].vol);
        for (size_t i = 0; i < 3 * w->n; i++)
                free(w->strings[i]);
        free(w->items);
        free(w->volumes);
        free(w->strings);
        secure_free(w->vmk);
        secure_free(w->previous);
        if (w->can_unseal)
                vmk_unseal_done(&w->unseal);
        (void) pthread_mutex_destroy(&w->lock);
        free(w);
}

/* From any worker (volume_open_many()): the VMK the token names. */
static int unlock_key(const Guid *id, const uint8_t **ret, void *userdata) {
        UnlockWork *w = userdata;
        int r = 0;

        (void) pthread_mutex_lock(&w->lock);
        if (!w->vmk && w->can_unseal) {
                if (w->unseal.result > 0)
                        (void) vmk_unseal_run(&w->unseal);
                r = w->unseal.result;
                if (r >= 0 && guid_equal(id, &w->unseal.blob.vmk_id))
                        *ret = w->unseal.vmk;
                else if (r >= 0 && w->unseal.previous && guid_equal(id, &w->unseal.blob.previous_id))
                        *ret = w->unseal.previous;
                else if (r >= 0)
                        r = -EREMOTE;
                else if (r == -ENOENT)
                        r = -ENOPKG; /* no sealed VMK: none of its volumes opens */
        } else if (w->vmk && guid_equal(id, &w->vmk_id))
                *ret = w->vmk;
        else if (w->previous && guid_equal(id, &w->previous_id))
                *ret = w->previous;
        else
                r = w->vmk ? -EREMOTE : -ENOPKG;
        (void) pthread_mutex_unlock(&w->lock);
        return r;
}

static int unlock_work(void *p) {
        UnlockWork *w = p;

        volume_open_many(w->items, w->n, w->workers, unlock_key, w);
        return 0;
}

static void waiter_done(UnlockWaiter *w) {
        sd_bus_message_unref(w->request);
        if (w->free_data)
                w->free_data(w->data);
}

void manager_unlock_waiters_free(Manager *m) {
        for (size_t i = 0; i < m->n_unlock_waiters; i++)
                waiter_done(&m->unlock_waiters[i]);
        free(m->unlock_waiters);
        m->unlock_waiters = NULL;
        m->n_unlock_waiters = 0;
}

void manager_unlock_forget(Manager *m, ManagedVolume *v) {
        size_t k = 0;

        /* Removed before its pass (erased meanwhile): whoever waited is told, nothing more. */
        for (size_t i = 0; i < m->n_unlock_waiters; i++) {
                UnlockWaiter *w = &m->unlock_waiters[i];

                if (w->only != v) {
                        m->unlock_waiters[k++] = *w;
                        continue;
                }
                if (w->request)
                        (void) sd_bus_reply_method_errorf(w->request, BUS_ERROR_NO_SUCH_VOLUME,
                                                          "Volume %s was removed before it was opened.", v->uuid);
                waiter_done(w);
        }
        m->n_unlock_waiters = k;
}

void manager_unlock_counts(Manager *m, unsigned *ret_opened, unsigned *ret_failed) {
        unsigned opened = 0;

        for (size_t i = 0; i < m->n_volumes; i++)
                opened += volume_is_open(m->volumes[i]);
        *ret_opened = opened;
        *ret_failed = (unsigned) m->n_volumes - opened;
}

bool manager_unlock_pending(Manager *m) {
        if (m->unlock_operation)
                return true;
        for (size_t i = 0; i < m->n_volumes; i++)
                if (m->volumes[i]->unlock_wanted)
                        return true;
        /* Someone waits for a pass that has not started (its volumes went, or there are none): one is
         * owed, if only to answer. */
        for (size_t i = 0; i < m->n_unlock_waiters; i++)
                if (m->unlock_waiters[i].pass > m->unlock_passes)
                        return true;
        return false;
}

/* What follows an unlock, on the loop, with the pass's unseal result cached for what asks the TPM
 * again meanwhile (its answer does not change within the pass). */
static void unlock_follow_ups(Manager *m, int unseal_result, UnlockScope scope) {
        manager_pass_begin(m);
        if (unseal_result < 0)
                m->pass_unseal_error = unseal_result;
        if (scope == UNLOCK_BOOT) {
                /* The TPM opened the VMK: passwords a person used before a reseal that did not happen (a
                 * reboot in between) are replaced now; a DRA change a crash interrupted is finished: the
                 * certificate in force holds for everything. */
                manager_rotate_used_passwords(m);
                manager_finish_dra(m);
        }
        /* A VMK rotation a crash interrupted, or one waiting for a disk that is back, goes on; one that
         * is due (a server-scoped secret was used, version 1 tokens were upgraded) happens now, with
         * every volume open. */
        (void) manager_finish_rotation(m);
        manager_rotate_if_due(m);
        if (scope != UNLOCK_ONE) {
                /* Unfinished in-place encryptions go on (they need the VMK); escrow that is outstanding
                 * goes, once the boot is done (never before READY=1). */
                manager_resume_in_place(m);
                if (m->boot_ready)
                        manager_escrow_retry(m);
        }
        manager_pass_end(m);
}

/* Whether w is answered now that pass is done: one of an earlier pass waited for the rotation. */
static bool answered(Manager *m, const UnlockWaiter *w, unsigned pass) {
        return w->pass <= pass && !(w->after_rotation && (m->vmk_rotation || m->used_rotations > 0));
}

static void unlock_answer(Manager *m, unsigned pass) {
        UnlockWaiter *mine = NULL;
        size_t n = 0, k = 0;

        /* Taken out first: an answer may ask for another pass, which adds waiters. */
        for (size_t i = 0; i < m->n_unlock_waiters; i++)
                n += answered(m, &m->unlock_waiters[i], pass);
        if (n == 0)
                return;
        mine = calloc(n, sizeof(*mine));
        if (!mine) {
                log_oom();
                return;
        }
        for (size_t i = 0; i < m->n_unlock_waiters; i++)
                if (answered(m, &m->unlock_waiters[i], pass))
                        mine[k++] = m->unlock_waiters[i];
                else
                        m->unlock_waiters[i - k] = m->unlock_waiters[i];
        m->n_unlock_waiters -= n;
        for (size_t i = 0; i < n; i++) {
                if (mine[i].done)
                        mine[i].done(m, &mine[i]);
                waiter_done(&mine[i]);
        }
        free(mine);
}

static void unlock_finish(Manager *m, unsigned pass, int unseal_result, UnlockScope scope) {
        unlock_follow_ups(m, unseal_result, scope);
        unlock_answer(m, pass);
        manager_unlock_continue(m);
        manager_boot_check_ready(m);
}

static void unlock_done(Operation *o, int r) {
        UnlockWork *w = o->data;
        Manager *m = o->manager;
        int unseal_result = 0;
        UnlockScope scope = m->unlock_scope;

        (void) r;
        m->unlock_operation = NULL;
        /* The volumes are idle again before their results are applied. */
        for (size_t i = 0; i < w->n; i++)
                if (w->volumes[i]->operation == o) {
                        w->volumes[i]->operation = NULL;
                        if (m->bus)
                                (void) sd_bus_emit_properties_changed(m->bus, w->volumes[i]->object_path,
                                                                      SEALVOL_VOLUME_INTERFACE, "Operation", NULL);
                }
        if (w->can_unseal && w->unseal.result <= 0)
                unseal_result = manager_vmk_unsealed(m, &w->unseal);
        for (size_t i = 0; i < w->n; i++)
                manager_unlock_apply(m, w->volumes[i], &w->items[i]);
        unlock_finish(m, m->unlock_passes, unseal_result, scope);
}

static unsigned unlock_workers(void) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        return n > 0 ? (unsigned) n : 1;
}

static int unlock_work_new(Manager *m, size_t n, UnlockWork **ret) {
        _cleanup_(unlock_work_freep) UnlockWork *w = calloc(1, sizeof(*w));
        int r;

        if (!w)
                return -ENOMEM;
        (void) pthread_mutex_init(&w->lock, NULL);
        w->items = calloc(n, sizeof(*w->items));
        w->volumes = calloc(n, sizeof(*w->volumes));
        w->strings = calloc(3 * n, sizeof(*w->strings));
        if (!w->items || !w->volumes || !w->strings)
                return -ENOMEM;
        w->workers = unlock_workers();
        if (m->vmk) {
                w->vmk = secure_memdup(m->vmk, VMK_SIZE);
                w->vmk_id = m->vmk_id;
                if (!w->vmk)
                        return -ENOMEM;
                if (m->previous_vmk) {
                        w->previous = secure_memdup(m->previous_vmk, VMK_SIZE);
                        w->previous_id = m->previous_vmk_id;
                        if (!w->previous)
                                return -ENOMEM;
                }
        } else {
                /* The server recovery password, if one is still to be made, after the pass: the volumes do not
                 * wait for its KDF. */
                r = vmk_unseal_init(m, 0, &w->unseal);
                if (r < 0)
                        return r;
                w->can_unseal = true;
        }
        *ret = TAKE_PTR(w);
        return 0;
}

static int unlock_work_add(UnlockWork *w, Manager *m, ManagedVolume *v) {
        char **s = w->strings + 3 * w->n;

        s[0] = strdup(v->device);
        s[1] = strdup(v->uuid);
        /* An open volume asked for again (a volume's Unlock) is checked again, not mapped twice. */
        bool map = m->device_mapper && !volume_is_open(v);

        s[2] = map ? strdup(v->mapped_name) : NULL;
        w->n++; /* freed with the work from here */
        if (!s[0] || !s[1] || (map && !s[2]))
                return -ENOMEM;
        w->items[w->n - 1] = (VolumeOpenItem) { .device = s[0], .uuid = s[1], .name = s[2] };
        w->volumes[w->n - 1] = v;
        return 0;
}

/* The volumes of the next pass: every wanted one that is idle. The others get their answer now. */
static size_t unlock_collect(Manager *m, ManagedVolume **ret) {
        size_t n = 0;

        for (size_t i = 0; i < m->n_volumes; i++) {
                ManagedVolume *v = m->volumes[i];

                if (!v->unlock_wanted)
                        continue;
                v->unlock_wanted = false;
                if (volume_is_open(v) && !v->unlock_again)
                        v->unlock_result = 0;
                else if (v->job || v->operation)
                        v->unlock_result = -EBUSY;
                else
                        ret[n++] = v;
                v->unlock_again = false;
        }
        return n;
}

static int unlock_pass_start(Manager *m) {
        _cleanup_free_ ManagedVolume **volumes = NULL;
        _cleanup_(unlock_work_freep) UnlockWork *w = NULL;
        UnlockScope scope = m->unlock_next_scope;
        size_t n;
        int r;

        volumes = calloc(MAX(m->n_volumes, (size_t) 1), sizeof(*volumes));
        if (!volumes)
                return -ENOMEM;
        n = unlock_collect(m, volumes);
        m->unlock_next_scope = UNLOCK_ONE;
        m->unlock_scope = scope;
        m->unlock_passes++;
        if (n == 0) {
                /* Nothing to open: what follows an unlock, and the answers, at once. */
                unlock_finish(m, m->unlock_passes, 0, scope);
                return 0;
        }
        r = unlock_work_new(m, n, &w);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = unlock_work_add(w, m, volumes[i]);
        if (r >= 0)
                r = operation_start_shared(m, NULL, "unlock", unlock_work, unlock_done, TAKE_PTR(w), unlock_work_free,
                                           &m->unlock_operation);
        if (r < 0) {
                VolumeOpenItem failed;

                log_error_errno(r, "Failed to start unlocking %zu volumes: %m", n);
                for (size_t i = 0; i < n; i++) {
                        failed = (VolumeOpenItem) { .result = r };
                        manager_unlock_apply(m, volumes[i], &failed);
                }
                unlock_finish(m, m->unlock_passes, 0, scope);
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                volumes[i]->operation = m->unlock_operation;
                if (m->bus)
                        (void) sd_bus_emit_properties_changed(m->bus, volumes[i]->object_path,
                                                              SEALVOL_VOLUME_INTERFACE, "Operation", NULL);
        }
        return 0;
}

void manager_unlock_continue(Manager *m) {
        /* One pass at a time; none while the VMK or the sealed state change (a manager-wide operation
         * that runs alone): its end starts the pass. */
        if (m->unlock_operation || manager_exclusive_operation(m) || !manager_unlock_pending(m))
                return;
        (void) unlock_pass_start(m);
}

void manager_unlock_answer_rotated(Manager *m) {
        /* No pass runs beside a rotation: every waiter of a pass that is done is answered. */
        if (!m->unlock_operation)
                unlock_answer(m, m->unlock_passes);
}

static int unlock_request(Manager *m, UnlockScope scope, ManagedVolume *only, sd_bus_message *request,
                          UnlockDoneFn done, void *data, void (*free_data)(void *data), bool after_rotation) {
        unsigned pass = m->unlock_passes + 1;

        if (scope == UNLOCK_ONE && only->operation && only->operation == m->unlock_operation)
                pass = m->unlock_passes; /* in the pass under way: its end answers */
        else if (scope == UNLOCK_ONE)
                only->unlock_wanted = only->unlock_again = true;
        else
                for (size_t i = 0; i < m->n_volumes; i++)
                        if (scope == UNLOCK_ALL || m->volumes[i]->state != VOLUME_UNAVAILABLE)
                                m->volumes[i]->unlock_wanted = true;
        m->unlock_next_scope = MAX(m->unlock_next_scope, scope);
        if (done || request || free_data) {
                UnlockWaiter *a = reallocarray(m->unlock_waiters, m->n_unlock_waiters + 1, sizeof(*a));

                if (!a)
                        return -ENOMEM; /* data stays the caller's */
                m->unlock_waiters = a;
                a[m->n_unlock_waiters++] = (UnlockWaiter) {
                        .pass = pass,
                        .after_rotation = after_rotation,
                        .request = sd_bus_message_ref(request),
                        .only = only,
                        .done = done,
                        .data = data,
                        .free_data = free_data,
                };
        }
        manager_unlock_continue(m);
        /* Nothing was wanted (a server without volumes): the follow-ups and the answer come at once,
         * from a pass of none. */
        if (!m->unlock_operation && !manager_exclusive_operation(m) && m->unlock_passes < pass)
                (void) unlock_pass_start(m);
        return 0;
}

int manager_unlock_start(Manager *m, UnlockScope scope, ManagedVolume *only, sd_bus_message *request,
                         UnlockDoneFn done, void *data, void (*free_data)(void *data)) {
        return unlock_request(m, scope, only, request, done, data, free_data, /* after_rotation= */ false);
}

int manager_unlock_start_rotated(Manager *m, ManagedVolume *only, sd_bus_message *request, UnlockDoneFn done,
                                 void *data, void (*free_data)(void *data)) {
        return unlock_request(m, UNLOCK_ALL, only, request, done, data, free_data, /* after_rotation= */ true);
}
