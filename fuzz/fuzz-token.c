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
                static const uint8_t vmk[VMK_SIZE] = "fuzz-token: a fixed test VMK..";
                uint8_t mac_t[VOLUME_TOKEN_MAC_SIZE], mac_u[VOLUME_TOKEN_MAC_SIZE];
                char *again = NULL;

                /* What parses must write back (as the current version) and parse again to the same
                 * token: the same MAC under any key, and the MAC field kept. */
                if (volume_token_to_json(&t, &again) < 0)
                        abort();
                VolumeToken u;
                if (volume_token_from_json(again, strlen(again), t.volume_uuid, &u) < 0)
                        abort();
                if (u.version != VOLUME_TOKEN_VERSION || memcmp(u.mac, t.mac, sizeof(t.mac)) != 0 ||
                    volume_token_mac(&t, vmk, mac_t) < 0 || volume_token_mac(&u, vmk, mac_u) < 0 ||
                    memcmp(mac_t, mac_u, sizeof(mac_t)) != 0)
                        abort();
                volume_token_done(&u);
                free(again);
                volume_token_done(&t);
        }
        free(json);
        return 0;
}
