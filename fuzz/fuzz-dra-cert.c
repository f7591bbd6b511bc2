/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-dra-cert.c: DRA certificates as sealvol loads and checks them (PEM or DER from an operator). */

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dra.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const extra[] = { "1.3.6.1.4.1.99999.1", NULL };
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        char *reason = NULL;
        X509 *cert = NULL;
        int r;

        log_set_max_level(LOG_CRIT);
        if (dra_cert_load(data, size, &cert) < 0)
                return 0;
        r = dra_cert_check(cert, extra, 1800000000, &reason);
        if (r < 0 && r != -EKEYREJECTED && r != -ENOMEM)
                abort();
        if (r == -EKEYREJECTED && !reason)
                abort();
        if (dra_cert_fingerprint(cert, fp) < 0)
                abort();
        free(reason);
        X509_free(cert);
        return 0;
}
