/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcr-floor.h: the least a PCR selection must bind the VMK to before anything seals it.
 *
 * A PolicyPCR over PCRs that the OS can reset binds the VMK to no boot at all: whoever runs code on
 * the server resets them, extends the values the blob records and unseals. The TCG PC Client
 * Platform TPM Profile makes PCR 16 (debug) and PCR 23 (application support) resettable with
 * TPM2_PCR_Reset from every locality, so from any process that can reach the TPM. An empty selection
 * binds to nothing either. On top of that the configuration names a minimum, PCRs every selection
 * must include ([TPM] MinimumPCRs=, PCR 7 by default: the Secure Boot policy).
 *
 * Pure: the configuration parser, the daemon's reseal and the sealing code all call it, so no path
 * seals below the floor.
 */
#pragma once

#include <stdint.h>

/* PC Client Platform TPM Profile (PTP), PCR attributes: resettable from locality 0. */
#define PCR_FLOOR_RESETTABLE_MASK ((UINT32_C(1) << 16) | (UINT32_C(1) << 23))
/* The configured minimum when sealvol.conf says nothing: PCR 7, the Secure Boot policy. */
#define PCR_FLOOR_MIN_MASK_DEFAULT (UINT32_C(1) << 7)

/* 0 if the VMK may be sealed to the PCRs in mask (bit i: PCR i): not empty, every PCR exists, none
 * can be reset by software, and every PCR of min_mask is included (0: no minimum). -EINVAL if not,
 * with *ret_reason (if given; malloc'd) naming the PCR and why, e.g. "PCR 23 can be reset by
 * software". -ENOMEM. */
int pcr_floor_check(uint32_t mask, uint32_t min_mask, char **ret_reason);
