/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-vmk-export.c: the VMK export document and its CMS, opened with a fixed DRA key (what an
 * operator hands the daemon after a TPM or board replacement). */

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "log.h"
#include "secmem.h"
#include "vmk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static EVP_PKEY *key;
        uint8_t *vmk = NULL;
        char *text;
        Guid id;

        log_set_max_level(LOG_CRIT);
        /* One EC key for the whole run: wrong for nearly every input, which is the point. */
        if (!key)
                key = EVP_EC_gen("P-256");
        if (!key)
                abort();
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (vmk_import_dra(text, size, key, &vmk, &id) >= 0)
                abort(); /* nothing but our own export to this key could open */
        free(text);
        return 0;
}
