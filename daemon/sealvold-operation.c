/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-operation.c: slow work off the event loop.
 *
 * A bus handler parses and checks its arguments, asks polkit, loads what the work needs (on the loop:
 * a header read is quick) and starts an Operation. Its work function runs on a thread of its own with
 * nothing but its data: a snapshot of the inputs it was given (a loaded volume, a secure copy of a
 * key), never the Manager, which only the loop touches. When it returns, an eventfd wakes the loop,
 * which joins the thread and calls the done function: that applies the result, writes the audit
 * record and answers the caller, whose message the Operation kept. Meanwhile the bus keeps
 * answering (status, properties, other volumes).
 *
 * One operation per volume at a time: the volume is busy (its Operation property names it, and
 * manager_refresh_volume() refuses it with -EBUSY), so another call on it is refused at once. A
 * background operation (escrow) belongs to no volume and runs beside everything: what it applies at
 * the end is checked to be still current then.
 */

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "sealvold.h"

static void operation_free(Operation *o) {
        if (!o)
                return;
        sd_event_source_unref(o->source);
        if (o->efd >= 0)
                (void) close(o->efd);
        sd_bus_message_unref(o->request);
        if (o->free_data)
                o->free_data(o->data);
        free(o);
}

static void operation_detach(Manager *m, Operation *o) {
        for (size_t i = 0; i < m->n_operations; i++)
                if (m->operations[i] == o) {
                        m->operations[i] = m->operations[--m->n_operations];
                        break;
                }
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "Operations", NULL);
        if (o->volume && o->volume->operation == o) {
                o->volume->operation = NULL;
                if (m->bus)
                        (void) sd_bus_emit_properties_changed(m->bus, o->volume->object_path,
                                                              SEALVOL_VOLUME_INTERFACE, "Operation", NULL);
        }
}

static void *operation_thread(void *userdata) {
        Operation *o = userdata;
        uint64_t one = 1;

        o->result = o->work(o->data);
        /* An eventfd write fails only when its counter would overflow: never at one per operation. */
        if (write(o->efd, &one, sizeof(one)) != (ssize_t) sizeof(one))
                log_error_errno(errno, "Failed to wake the event loop for the %s operation: %m", o->name);
        return NULL;
}

static int on_operation_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Operation *o = userdata;
        Manager *m = o->manager;
        uint64_t n;

        (void) s;
        (void) revents;
        if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                log_debug_errno(errno, "Failed to read the %s operation's wake-up: %m", o->name);
        (void) pthread_join(o->thread, NULL);
        /* The volume is idle again before the result is applied: what done does (a rotation, say)
         * loads it like any other change. */
        operation_detach(m, o);
        o->done(o, o->result);
        /* What waited for a manager-wide operation, whatever its outcome: a rotation that fell due, one
         * that still has volumes to re-bind (each a no-op when nothing waits, or another such
         * operation was started by done). A volume's operation held its volume back from the
         * re-binding (a used password's replacement at the boot, say): it is re-bound now. */
        if (!o->volume && !o->background)
                manager_rotate_if_due(m);
        if (!o->background)
                (void) manager_finish_rotation(m);
        operation_free(o);
        /* An unlock pass that waited for a manager-wide operation, or was asked for meanwhile. */
        manager_unlock_continue(m);
        return 0;
}

static int start(Manager *m, ManagedVolume *v, bool background, bool shared, sd_bus_message *request,
                 const char *name, OperationWorkFn work, OperationDoneFn done, void *data,
                 void (*free_data)(void *)) {
        Operation *o, **list;
        int r;

        o = calloc(1, sizeof(*o));
        if (!o) {
                if (free_data)
                        free_data(data);
                return -ENOMEM;
        }
        *o = (Operation) {
                .manager = m,
                .volume = v,
                .background = background,
                .shared = shared,
                .request = sd_bus_message_ref(request),
                .name = name,
                .work = work,
                .done = done,
                .data = data,
                .free_data = free_data,
                .efd = -EBADF,
        };
        list = reallocarray(m->operations, m->n_operations + 1, sizeof(*list));
        if (!list) {
                operation_free(o);
                return -ENOMEM;
        }
        m->operations = list;
        o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (o->efd < 0) {
                r = -errno;
                operation_free(o);
                return log_error_errno(r, "Failed to make an eventfd for the %s operation: %m", name);
        }
        r = sd_event_add_io(m->event, &o->source, o->efd, EPOLLIN, on_operation_done, o);
        if (r < 0) {
                operation_free(o);
                return log_error_errno(r, "Failed to watch the %s operation: %m", name);
        }
        r = -pthread_create(&o->thread, NULL, operation_thread, o);
        if (r < 0) {
                operation_free(o);
                return log_error_errno(r, "Failed to start the %s operation: %m", name);
        }
        m->operations[m->n_operations++] = o;
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "Operations", NULL);
        if (v) {
                v->operation = o;
                if (m->bus)
                        (void) sd_bus_emit_properties_changed(m->bus, v->object_path, SEALVOL_VOLUME_INTERFACE,
                                                              "Operation", NULL);
        }
        return 0;
}

int operation_start(Manager *m, ManagedVolume *v, sd_bus_message *request, const char *name, OperationWorkFn work,
                    OperationDoneFn done, void *data, void (*free_data)(void *)) {
        return start(m, v, /* background= */ false, /* shared= */ false, request, name, work, done, data, free_data);
}

int operation_start_background(Manager *m, sd_bus_message *request, const char *name, OperationWorkFn work,
                               OperationDoneFn done, void *data, void (*free_data)(void *)) {
        return start(m, NULL, /* background= */ true, /* shared= */ false, request, name, work, done, data, free_data);
}

static int start_manager_wide(Manager *m, bool shared, sd_bus_message *request, const char *name,
                              OperationWorkFn work, OperationDoneFn done, void *data, void (*free_data)(void *),
                              Operation **ret) {
        int r;

        r = start(m, NULL, /* background= */ false, shared, request, name, work, done, data, free_data);
        if (r >= 0 && ret)
                *ret = m->operations[m->n_operations - 1];
        return r;
}

int operation_start_shared(Manager *m, sd_bus_message *request, const char *name, OperationWorkFn work,
                           OperationDoneFn done, void *data, void (*free_data)(void *), Operation **ret) {
        return start_manager_wide(m, /* shared= */ true, request, name, work, done, data, free_data, ret);
}

int operation_start_alone(Manager *m, sd_bus_message *request, const char *name, OperationWorkFn work,
                          OperationDoneFn done, void *data, void (*free_data)(void *), Operation **ret) {
        return start_manager_wide(m, /* shared= */ false, request, name, work, done, data, free_data, ret);
}

int operation_volumes_init(OperationVolumes *s, size_t max) {
        *s = (OperationVolumes) {
                .volumes = calloc(MAX(max, (size_t) 1), sizeof(*s->volumes)),
                .vols = calloc(MAX(max, (size_t) 1), sizeof(*s->vols)),
        };
        if (!s->volumes || !s->vols) {
                operation_volumes_done(s);
                return -ENOMEM;
        }
        return 0;
}

void operation_volumes_add(OperationVolumes *s, ManagedVolume *v, Volume *vol) {
        s->volumes[s->n] = v;
        s->vols[s->n++] = vol;
}

static void volume_operation_changed(Manager *m, ManagedVolume *v) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, v->object_path, SEALVOL_VOLUME_INTERFACE, "Operation",
                                                      NULL);
}

void operation_volumes_hold(Manager *m, const OperationVolumes *s, Operation *o) {
        for (size_t i = 0; i < s->n; i++) {
                s->volumes[i]->operation = o;
                volume_operation_changed(m, s->volumes[i]);
        }
}

void operation_volumes_release(Manager *m, const OperationVolumes *s, const Operation *o) {
        for (size_t i = 0; i < s->n; i++)
                if (s->volumes[i]->operation == o) {
                        s->volumes[i]->operation = NULL;
                        volume_operation_changed(m, s->volumes[i]);
                }
}

void operation_volumes_done(OperationVolumes *s) {
        for (size_t i = 0; i < s->n; i++)
                volume_free(s->vols[i]);
        free(s->vols);
        free(s->volumes);
        *s = (OperationVolumes) {};
}

const Operation *manager_exclusive_operation(Manager *m) {
        for (size_t i = 0; i < m->n_operations; i++)
                if (!m->operations[i]->volume && !m->operations[i]->background && !m->operations[i]->shared)
                        return m->operations[i];
        return NULL;
}

const Operation *manager_vmk_operation(Manager *m) {
        for (size_t i = 0; i < m->n_operations; i++)
                if (!m->operations[i]->volume && !m->operations[i]->background)
                        return m->operations[i];
        return NULL;
}

void manager_stop_operations(Manager *m) {
        /* At exit: every worker finishes its work (a KDF; an escrow pass, abandoned by stop_fd), nothing
         * is applied or answered (the bus is going away, the caller learns that). */
        while (m->n_operations > 0) {
                Operation *o = m->operations[0];

                (void) pthread_join(o->thread, NULL);
                operation_detach(m, o);
                operation_free(o);
        }
        free(m->operations);
        m->operations = NULL;
}
