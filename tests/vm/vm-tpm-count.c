/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vm-tpm-count CAPTURE: the TPM commands in a capture written by tpm2-tss's pcap TCTI (sealvold in the
 * VM runs on "pcap:device:/dev/tpmrm0"), as one line for scripts:
 *   commands=N unseal=N createprimary=N load=N | Name count, ...
 */
#include <stdio.h>
#include <string.h>

#include "tpm-count.h"

int main(int argc, char *argv[]) {
        TpmCount c;
        char list[1024];
        int r;

        if (argc != 2) {
                fprintf(stderr, "usage: vm-tpm-count CAPTURE\n");
                return 2;
        }
        r = tpm_count_read(argv[1], &c);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        printf("commands=%u unseal=%u createprimary=%u load=%u | %s\n", c.commands, tpm_count_of(&c, TPM2_CC_Unseal),
               tpm_count_of(&c, TPM2_CC_CreatePrimary), tpm_count_of(&c, TPM2_CC_Load),
               tpm_count_format(&c, list, sizeof(list)));
        return 0;
}
