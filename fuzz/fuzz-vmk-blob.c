/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-vmk-blob.c: the sealed-VMK file parser (a file anyone with root could have altered). */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "vmk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VmkBlob b;
        char *text;

        log_set_max_level(LOG_CRIT);
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (vmk_blob_from_json(text, size, &b) >= 0) {
                char *again = NULL;
                VmkBlob c;

                /* Written back as the current version (a version 1 blob too, its key check value as it
                 * is), it parses again to the same keys and identities. */
                if (vmk_blob_to_json(&b, &again) < 0 || vmk_blob_from_json(again, strlen(again), &c) < 0 ||
                    c.version != VMK_BLOB_VERSION || !guid_equal(&b.vmk_id, &c.vmk_id) ||
                    memcmp(b.key_check, c.key_check, sizeof(b.key_check)) != 0 || b.has_previous != c.has_previous ||
                    (b.has_previous && !guid_equal(&b.previous_id, &c.previous_id)) ||
                    !tpm2_name_equal(&b.sealed.srk_name, &c.sealed.srk_name))
                        abort();
                free(again);
        }
        free(text);
        return 0;
}
