/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-recovery-password.c: the recovery password parser (typed by a person, or sent over the bus). */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recovery.h"
#include "secmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t *key = NULL, *key2 = NULL;
        char *text, *canonical = NULL;
        unsigned block = 99;
        int r;

        if (size > 4096)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';

        r = recovery_password_parse(text, &key, &block);
        if (r >= 0) {
                /* A parsed key formats to the canonical form, which parses to the same key. */
                if (recovery_password_format(key, &canonical) < 0 || strlen(canonical) != RECOVERY_PASSWORD_LEN ||
                    recovery_password_parse(canonical, &key2, NULL) < 0 || memcmp(key, key2, RECOVERY_KEY_SIZE) != 0)
                        abort();
        } else if (r != -EINVAL && r != -EDOM && r != -ERANGE)
                abort();
        else if (block > RECOVERY_PASSWORD_BLOCKS)
                abort();

        secure_free(key);
        secure_free(key2);
        secure_free(canonical);
        free(text);
        return 0;
}
