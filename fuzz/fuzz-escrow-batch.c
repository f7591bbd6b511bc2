/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-escrow-batch.c: what the escrow helper reads from whoever reaches its socket (a batch), and what
 * sealvold reads back from the helper (results). The first byte picks which; for results it also says
 * how many are expected. What parses is written again and parses to the same.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "escrow-helper.h"
#include "log.h"
#include "secmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void batch_round_trip(const EscrowBatch *b) {
        EscrowHelperConfig c = { .hook = b->hook, .hook_timeout_sec = b->hook_timeout_sec,
                                 .ad = b->have_ad ? &b->ad : NULL };
        EscrowBatch again = {};
        struct stat st;
        uint8_t *buf;
        int fd;

        if (escrow_batch_build(&c, b->jobs, b->n_jobs, &fd) < 0 || fstat(fd, &st) < 0)
                abort();
        buf = secure_alloc((size_t) st.st_size);
        if (!buf || pread(fd, buf, (size_t) st.st_size, 0) != st.st_size)
                abort();
        close(fd);
        if (escrow_batch_parse(buf, (size_t) st.st_size, &again) < 0 || again.n_jobs != b->n_jobs ||
            again.have_ad != b->have_ad || !streq_ptr(again.hook, b->hook))
                abort();
        for (size_t i = 0; i < b->n_jobs; i++) {
                const EscrowJob *x = &b->jobs[i], *y = &again.jobs[i];

                if (x->target != y->target || x->verify != y->verify || x->size != y->size ||
                    !streq_ptr(x->verb, y->verb) || !streq_ptr(x->password, y->password) ||
                    x->created_usec != y->created_usec || !guid_equal(&x->volume_guid, &y->volume_guid) ||
                    (x->size && memcmp(x->data, y->data, x->size) != 0))
                        abort();
        }
        escrow_batch_done(&again);
        secure_free(buf);
}

static void results_round_trip(const char *text, size_t size, size_t n) {
        EscrowJobResult r[16] = {}, again[16] = {};
        char *json = NULL;

        if (escrow_results_parse(text, size, r, n) < 0)
                return;
        if (escrow_results_format(r, n, &json) < 0 || escrow_results_parse(json, strlen(json), again, n) < 0)
                abort();
        for (size_t i = 0; i < n; i++)
                if (r[i].error != again[i].error || r[i].verified != again[i].verified ||
                    !streq_ptr(r[i].location, again[i].location) || !streq_ptr(r[i].message, again[i].message))
                        abort();
        escrow_job_results_done(r, n);
        escrow_job_results_done(again, n);
        free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        log_set_max_level(LOG_CRIT);
        if (size < 1 || size > ESCROW_BATCH_MAX)
                return 0;
        if (data[0] & 0x80) {
                char *text = malloc(size);

                if (!text)
                        return 0;
                memcpy(text, data + 1, size - 1);
                text[size - 1] = '\0';
                results_round_trip(text, size - 1, data[0] & 0x0f);
                free(text);
        } else if (size > 1) {
                uint8_t *buf = secure_alloc(size - 1);
                EscrowBatch b = {};

                if (!buf)
                        return 0;
                memcpy(buf, data + 1, size - 1);
                if (escrow_batch_parse(buf, size - 1, &b) >= 0) {
                        batch_round_trip(&b);
                        escrow_batch_done(&b);
                }
                secure_free(buf);
        }
        return 0;
}
