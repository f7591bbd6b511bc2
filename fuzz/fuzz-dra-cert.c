/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-dra-cert.c: DRA certificates as sealvol loads and checks them (PEM or DER from an operator). */

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "dra.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* OpenSSL allocates its error strings and provider caches on first use, and keeps them: done once
 * here, so that an input that allocates nothing it keeps does not cost libFuzzer a leak scan. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        X509 *cert = NULL;

        (void) argc;
        (void) argv;
        log_set_max_level(LOG_CRIT);
        (void) OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
        (void) dra_cert_load("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 58, &cert);
        X509_free(cert);
        ERR_clear_error();
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const extra[] = { "1.3.6.1.4.1.99999.1", NULL };
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        char *reason = NULL;
        X509 *cert = NULL;
        int r;

        if (dra_cert_load(data, size, &cert) < 0) {
                ERR_clear_error();
                return 0;
        }
        r = dra_cert_check(cert, extra, 1800000000, &reason);
        if (r < 0 && r != -EKEYREJECTED && r != -ENOMEM)
                abort();
        if (r == -EKEYREJECTED && !reason)
                abort();
        if (dra_cert_fingerprint(cert, fp) < 0)
                abort();
        free(reason);
        X509_free(cert);
        /* The error queue keeps what it was told until cleared: clear it, per input. */
        ERR_clear_error();
        return 0;
}
