/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tpm-count.h: count the commands a piece of code sends to the TPM.
 *
 * tpm2-tss's pcap TCTI ("pcap:<child TCTI>") passes everything on to its child TCTI and appends each
 * command and each response to the file named by $TCTI_PCAP_FILE, read once when the TCTI is
 * initialised. With tpm2-tss 3.2.1 (Debian 12) the file is pcapng: every TCTI initialisation writes
 * a section header and an interface of link type IPv4, then one enhanced packet block per command or
 * response, each wrapped in a made-up IPv4 + TCP header; commands go to TCP port 2321 (the port the
 * TPM 2.0 dissector knows), responses come from it. Several TCTIs (processes) may append to one
 * file: each adds a section.
 *
 * Counting at the transport is what makes "one TPM unseal for N volumes" a measured fact rather than
 * a reading of the code, and it works the same for other programs (tpm2-tools takes the same TCTI
 * strings), so peers are counted the same way.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tpm2.h"

#define TPM_COUNT_ENV "TCTI_PCAP_FILE"
/* Distinct command codes in one capture; TPM 2.0 defines fewer than 128 (TPM2_CC_FIRST..LAST). */
#define TPM_COUNT_CODES_MAX 128u
#define TPM_COUNT_CAPTURE_SIZE_MAX (16u * 1024u * 1024u)

typedef struct TpmCountEntry {
        uint32_t code;  /* TPM2_CC */
        unsigned count;
} TpmCountEntry;

typedef struct TpmCount {
        unsigned commands;
        unsigned responses;
        unsigned failed;    /* responses whose response code is not TPM2_RC_SUCCESS */
        unsigned sections;  /* TCTI initialisations that wrote to the file */
        TpmCountEntry codes[TPM_COUNT_CODES_MAX]; /* in the order each code was first sent */
        size_t n_codes;
} TpmCount;

/* Opens a Tpm2Context on "pcap:<tcti>" that records into capture, which is truncated first so it
 * holds this context's traffic only. TCTI_PCAP_FILE is set just for the initialisation (the TCTI
 * opens the file then and keeps it) and is unset again whatever happens, so nothing opened later
 * writes into it by accident. */
int tpm_count_context_new(const char *tcti, const char *capture, Tpm2Context **ret);

/* Parses a capture written by the pcap TCTI. -EBADMSG: not such a capture, or a command that is not
 * a well-formed TPM 2.0 command; -E2BIG: more distinct command codes than TPM_COUNT_CODES_MAX. */
int tpm_count_read(const char *capture, TpmCount *ret);

/* How many commands with that code were sent. */
unsigned tpm_count_of(const TpmCount *c, uint32_t code);

/* "ReadPublic", "Unseal", ...; NULL for a code TPM 2.0 does not define. */
const char *tpm_command_name(uint32_t code);

/* "ReadPublic 1, Load 1, StartAuthSession 1, ..." (unknown codes in hex), cut to fit size. */
char *tpm_count_format(const TpmCount *c, char *buf, size_t size);
