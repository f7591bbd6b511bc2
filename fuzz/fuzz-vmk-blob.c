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

                if (vmk_blob_to_json(&b, &again) < 0)
                        abort();
                free(again);
        }
        free(text);
        return 0;
}
