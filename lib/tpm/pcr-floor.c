/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcr-floor.c: what a PCR selection must bind the VMK to (see pcr-floor.h). */

#include <stdio.h>
#include <string.h>

#include "pcr-floor.h"
#include "tpm2.h"

#define RESET_BY_SOFTWARE "can be reset by software (TPM2_PCR_Reset from any locality)"

/* "PCR 23 <one>" or "PCRs 16,23 <several>": -EINVAL, with the reason in *ret_reason if wanted. */
static int refuse(char **ret_reason, uint32_t pcrs, const char *one, const char *several) {
        bool plural = (pcrs & (pcrs - 1)) != 0;
        char list[96];

        if (!ret_reason)
                return -EINVAL;
        tpm2_pcr_mask_to_string(pcrs, list, sizeof(list));
        if (asprintf(ret_reason, "%s %s %s", plural ? "PCRs" : "PCR", list, plural ? several : one) < 0)
                return -ENOMEM;
        return -EINVAL;
}

int pcr_floor_check(uint32_t mask, uint32_t min_mask, char **ret_reason) {
        uint32_t beyond = mask & ~TPM2_PCR_MASK_ALL;

        if (mask == 0) {
                if (!ret_reason)
                        return -EINVAL;
                *ret_reason = strdup("no PCR is selected: the VMK would be bound to no boot");
                return *ret_reason ? -EINVAL : -ENOMEM;
        }
        if (beyond != 0) {
                if (!ret_reason)
                        return -EINVAL;
                if (asprintf(ret_reason, "PCR %d does not exist (0-%u)", __builtin_ctz(beyond),
                             TPM2_PCR_INDEX_MAX) < 0)
                        return -ENOMEM;
                return -EINVAL;
        }
        /* Whoever can reach the TPM resets these and extends them to the values the blob records. */
        if (mask & PCR_FLOOR_RESETTABLE_MASK)
                return refuse(ret_reason, mask & PCR_FLOOR_RESETTABLE_MASK,
                              RESET_BY_SOFTWARE ": it proves nothing about the boot",
                              RESET_BY_SOFTWARE ": they prove nothing about the boot");
        if ((mask & min_mask) != min_mask)
                return refuse(ret_reason, min_mask & ~mask,
                              "is missing: every selection must include the configured minimum",
                              "are missing: every selection must include the configured minimum");
        return 0;
}
