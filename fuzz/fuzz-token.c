/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-token.c: the sealvol LUKS2 token parser (untrusted: any header on any disk). */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        VolumeToken t;
        char *json;

        log_set_max_level(LOG_CRIT);
        /* libcryptsetup hands tokens over as C strings. */
        json = malloc(size + 1);
        if (!json)
                return 0;
        for (size_t i = 0; i < size; i++)
                json[i] = data[i] ? (char) data[i] : ' ';
        json[size] = '\0';

        if (volume_token_from_json(json, size, NULL, &t) >= 0) {
                char *again = NULL;

                /* What parses must write back and parse again to the same. */
                if (volume_token_to_json(&t, &again) < 0)
                        abort();
                VolumeToken u;
                if (volume_token_from_json(again, strlen(again), t.volume_uuid, &u) < 0)
                        abort();
                volume_token_done(&u);
                free(again);
                volume_token_done(&t);
        }
        free(json);
        return 0;
}
