/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-server-recovery.c: <state>/server-recovery.json as the daemon reads it at start, and its wrapped
 * copy of the VMK (the same bytes every disk's token carries) opened with a fixed password: what parses
 * writes back and parses again to the same, and no wrap opens with a password that is not its own.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "secmem.h"
#include "server-recovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char password[] = "000000-000011-000022-000033-000044-000055-000066-000077";
        ServerRecovery s, again;
        char *text, *json = NULL;
        uint8_t *vmk = NULL;

        log_set_max_level(LOG_CRIT);
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (server_recovery_from_json(text, size, &s) >= 0) {
                if (server_recovery_to_json(&s, &json) < 0 || server_recovery_from_json(json, strlen(json), &again) < 0)
                        abort();
                if (!guid_equal(&s.key_id, &again.key_id) || !guid_equal(&s.vmk_id, &again.vmk_id) ||
                    s.created != again.created || memcmp(s.wrapped_vmk, again.wrapped_vmk, sizeof(s.wrapped_vmk)) != 0 ||
                    s.wrapped_password_size != again.wrapped_password_size || s.n_escrow != again.n_escrow)
                        abort();
                /* A forged wrap does not open (tried only when cheap: the cost it names is bounded by the
                 * library, not small enough for a fuzzer's every input). */
                uint32_t iterations = (uint32_t) s.wrapped_vmk[0] | (uint32_t) s.wrapped_vmk[1] << 8 |
                                      (uint32_t) s.wrapped_vmk[2] << 16 | (uint32_t) s.wrapped_vmk[3] << 24;
                if (iterations <= 4096 &&
                    server_recovery_unwrap(s.wrapped_vmk, &s.key_id, &s.vmk_id, password, &vmk, NULL) >= 0)
                        abort();
                server_recovery_done(&again);
                server_recovery_done(&s);
                free(json);
        }
        free(text);
        return 0;
}
