/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-polkit.c: asking polkit, without blocking the event loop.
 *
 * A handler calls polkit_check(). Root passes at once. For anyone else we send CheckAuthorization
 * asynchronously, remember the query keyed by the method call, and return 0: the handler returns
 * without a reply. When polkit answers we store the verdict and put the original call back in the
 * bus's read queue (sd_bus_enqueue_for_read()); the handler runs again, polkit_check() finds the
 * verdict and returns it. No polkit on the bus, or any failure to ask it, is a denial.
 */

#include <string.h>

#include "log.h"
#include "sealvold.h"

struct PolkitQuery {
        Manager *manager;
        sd_bus_message *request; /* the original call */
        sd_bus_slot *slot;       /* the pending CheckAuthorization */
        char *action;
        int verdict;             /* 1 authorised, -EACCES denied, 0 still waiting */
};

static PolkitQuery *polkit_query_free(PolkitQuery *q) {
        if (!q)
                return NULL;
        sd_bus_slot_unref(q->slot);
        sd_bus_message_unref(q->request);
        free(q->action);
        free(q);
        return NULL;
}

static void polkit_query_remove(Manager *m, PolkitQuery *q) {
        for (size_t i = 0; i < m->n_polkit_queries; i++)
                if (m->polkit_queries[i] == q) {
                        m->polkit_queries[i] = m->polkit_queries[--m->n_polkit_queries];
                        break;
                }
        polkit_query_free(q);
}

void polkit_queries_free(Manager *m) {
        for (size_t i = 0; i < m->n_polkit_queries; i++)
                polkit_query_free(m->polkit_queries[i]);
        free(m->polkit_queries);
        m->polkit_queries = NULL;
        m->n_polkit_queries = 0;
}

static int polkit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PolkitQuery *q = userdata;
        int authorized = 0, challenge = 0, r;

        (void) ret_error;
        q->slot = sd_bus_slot_unref(q->slot);
        q->verdict = -EACCES;
        if (!sd_bus_message_is_method_error(reply, NULL)) {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r >= 0 && authorized)
                        q->verdict = 1;
        } else
                log_debug("polkit refused to answer for %s: %s", q->action,
                          sd_bus_message_get_error(reply)->message);

        /* Dispatch the original call again: its handler now finds the verdict. */
        r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(q->request), q->request);
        if (r < 0) {
                log_error_errno(r, "Failed to requeue a call after polkit answered: %m");
                polkit_query_remove(q->manager, q);
        }
        return 1;
}

static PolkitQuery *polkit_query_find(Manager *m, sd_bus_message *message) {
        for (size_t i = 0; i < m->n_polkit_queries; i++)
                if (m->polkit_queries[i]->request == message)
                        return m->polkit_queries[i];
        return NULL;
}

static int query_add(Manager *m, sd_bus_message *message, const char *action, PolkitQuery **ret);

int polkit_check(Manager *m, sd_bus_message *message, const char *action, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        PolkitQuery *q;
        uid_t euid;
        int r;

        q = polkit_query_find(m, message);
        if (q) {
                int verdict = q->verdict;

                if (verdict == 0)
                        return 0;
                /* The action of the second pass must be the one asked about. */
                if (!streq(q->action, action))
                        verdict = -ESTALE;
                polkit_query_remove(m, q);
                if (verdict > 0)
                        return 1;
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Not authorised to %s.", action);
        }

        /* Who is calling, from the bus itself: augmented (racy, /proc-based) credentials do not count. */
        r = sd_bus_query_sender_creds(message, SD_BUS_CREDS_EUID, &creds);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_augmented_mask(creds) & SD_BUS_CREDS_EUID)
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Caller identity not verifiable.");
        r = sd_bus_creds_get_euid(creds, &euid);
        if (r < 0)
                return r;
        if (euid == 0)
                return 1;

        if (m->n_polkit_queries >= POLKIT_QUERIES_MAX)
                return sd_bus_error_setf(error, SD_BUS_ERROR_LIMITS_EXCEEDED, "Too many authorisations pending.");

        r = sd_bus_message_new_method_call(m->bus, &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r >= 0)
                r = sd_bus_message_append(call, "(sa{sv})s", "system-bus-name", 1, "name", "s",
                                          sd_bus_message_get_sender(message), action);
        if (r >= 0)
                /* details, flags (1: allow interaction), cancellation id */
                r = sd_bus_message_append(call, "a{ss}us", 0, (uint32_t) 1, "");
        if (r < 0)
                return r;

        r = query_add(m, message, action, &q);
        if (r < 0)
                return r;

        /* Interactive authentication can take as long as a person takes: no short timeout. */
        r = sd_bus_call_async(m->bus, &q->slot, call, polkit_reply, q, 5 * 60 * 1000 * 1000ULL);
        if (r < 0) {
                polkit_query_remove(m, q);
                return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED, "Not authorised to %s (no polkit).",
                                         action);
        }
        return 0;
}

static int query_add(Manager *m, sd_bus_message *message, const char *action, PolkitQuery **ret) {
        PolkitQuery *q, **a;

        q = calloc(1, sizeof(PolkitQuery));
        if (!q)
                return -ENOMEM;
        q->manager = m;
        q->request = sd_bus_message_ref(message);
        q->action = strdup(action);
        if (!q->action) {
                polkit_query_free(q);
                return -ENOMEM;
        }
        a = realloc(m->polkit_queries, (m->n_polkit_queries + 1) * sizeof(*a));
        if (!a) {
                polkit_query_free(q);
                return -ENOMEM;
        }
        m->polkit_queries = a;
        m->polkit_queries[m->n_polkit_queries++] = q;
        *ret = q;
        return 0;
}

int polkit_keep(Manager *m, sd_bus_message *message, const char *action) {
        PolkitQuery *q;
        int r;

        r = query_add(m, message, action, &q);
        if (r >= 0)
                q->verdict = 1;
        return r;
}

void polkit_forget(Manager *m, sd_bus_message *message) {
        PolkitQuery *q = polkit_query_find(m, message);

        if (q)
                polkit_query_remove(m, q);
}
