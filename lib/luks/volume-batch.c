/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volume-batch.c: many volumes opened at once, one worker per core (see volume.h). */

#include <pthread.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "volume.h"

#define VOLUME_OPEN_WORKERS_MAX 16u

typedef struct Batch {
        VolumeOpenItem *items;
        size_t n;
        size_t next; /* the next item a worker takes (atomic) */
        VolumeKeyFn key;
        void *userdata;
} Batch;

static int open_item(const Batch *b, VolumeOpenItem *it) {
        const uint8_t *vmk = NULL;
        int r;

        r = volume_load(it->device, &it->vol);
        if (r < 0)
                return r;
        if (it->uuid && !streq(it->vol->token.volume_uuid, it->uuid))
                return -EXDEV;
        /* Half encrypted in place: nothing is opened until its job has finished (the job owns it). */
        if (crypt_reencrypt_status(it->vol->cd, NULL) != CRYPT_REENCRYPT_NONE)
                return -EBUSY;
        r = b->key(&it->vol->token.vmk_id, &vmk, b->userdata);
        if (r < 0)
                return r;
        return volume_open_vmk(it->vol, vmk, &it->vol->token.vmk_id, it->name, 0);
}

static void *worker(void *userdata) {
        Batch *b = userdata;

        for (;;) {
                size_t i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);

                if (i >= b->n)
                        return NULL;
                b->items[i].result = open_item(b, &b->items[i]);
        }
}

void volume_open_many(VolumeOpenItem *items, size_t n, unsigned workers, VolumeKeyFn key, void *userdata) {
        pthread_t threads[VOLUME_OPEN_WORKERS_MAX];
        Batch b = { .items = items, .n = n, .key = key, .userdata = userdata };
        size_t started = 0;

        if (n == 0)
                return;
        /* A worker for at least two volumes: one volume's work (a few milliseconds) is not worth a
         * thread of its own. */
        workers = MIN(workers, VOLUME_OPEN_WORKERS_MAX);
        if (workers > n / 2)
                workers = (unsigned) (n / 2);
        workers = MAX(workers, 1u);
        /* The first volume alone: libcryptsetup sets up its crypto backend on its first use, without a
         * lock of its own. */
        items[0].result = open_item(&b, &items[0]);
        b.next = 1;
        for (unsigned i = 1; i < workers; i++) {
                int r = -pthread_create(&threads[started], NULL, worker, &b);

                if (r < 0) {
                        /* Fewer workers, not fewer volumes: the ones that started (and this one) do them. */
                        log_debug_errno(r, "Failed to start an unlock worker, going on with %zu: %m", started + 1);
                        break;
                }
                started++;
        }
        (void) worker(&b);
        for (size_t i = 0; i < started; i++)
                (void) pthread_join(threads[i], NULL);
}
