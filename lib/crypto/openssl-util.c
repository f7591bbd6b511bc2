/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* openssl-util.c: OpenSSL's error queue into the debug log, and verifying a certificate against a
 * set of trust anchors (see openssl-util.h). */

#include <stdio.h>
#include <string.h>
#include <openssl/err.h>

#include "log.h"
#include "openssl-util.h"

int log_openssl_errors(int error, const char *what) {
        unsigned long e;
        bool any = false;

        while ((e = ERR_get_error()) != 0) {
                char buf[256];

                ERR_error_string_n(e, buf, sizeof(buf));
                log_debug("%s: %s", what, buf);
                any = true;
        }
        if (!any)
                log_debug("%s (no OpenSSL error recorded)", what);
        return error;
}

char *x509_name_to_string(const X509_NAME *name) {
        _cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
        char *data, *s;
        long n;

        if (!bio || !name || X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) < 0) {
                ERR_clear_error();
                return NULL;
        }
        /* The BIO's data is not NUL-terminated: copied by its length, not as a string. */
        n = BIO_get_mem_data(bio, &data);
        if (n < 0 || !(s = malloc((size_t) n + 1)))
                return NULL;
        memcpy(s, data, (size_t) n);
        s[n] = '\0';
        return s;
}

int x509_verify_to_anchors(X509 *cert, STACK_OF(X509) *anchors, time_t now, char **ret_reason) {
        _cleanup_(X509_STORE_freep) X509_STORE *store = X509_STORE_new();
        _cleanup_(X509_STORE_CTX_freep) X509_STORE_CTX *ctx = X509_STORE_CTX_new();
        _cleanup_free_ char *subject = NULL;
        X509_VERIFY_PARAM *param;
        X509 *failed;
        int err, depth;

        if (!cert)
                return -EINVAL;
        if (!store || !ctx)
                return -ENOMEM;
        for (int i = 0; anchors && i < sk_X509_num(anchors); i++)
                if (!X509_STORE_add_cert(store, sk_X509_value(anchors, i)))
                        return log_openssl_errors(-ENOMEM, "Failed to add a trust anchor");
        /* No untrusted certificates: the caller passes the certificate alone (a DRA's, a TPM's EK
         * certificate), and the chain is made of what root configured. */
        if (!X509_STORE_CTX_init(ctx, store, cert, /* chain= */ NULL))
                return log_openssl_errors(-ENOMEM, "Failed to set up certificate verification");
        param = X509_STORE_CTX_get0_param(ctx);
        /* PARTIAL_CHAIN: any certificate of the anchor file ends a chain, not only a self-signed root
         * (RFC 5280 6.1.1 (d): a trust anchor is a name and a key, wherever it sits). Purpose ANY:
         * neither a DRA nor an EK certificate has a purpose OpenSSL knows; what the key may do is
         * the caller's to check. */
        if (!X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN) ||
            !X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_ANY))
                return log_openssl_errors(-ENOMEM, "Failed to set the verification parameters");
        X509_VERIFY_PARAM_set_time(param, now);

        if (X509_verify_cert(ctx) == 1) {
                ERR_clear_error();
                return 0;
        }
        err = X509_STORE_CTX_get_error(ctx);
        depth = X509_STORE_CTX_get_error_depth(ctx);
        failed = X509_STORE_CTX_get_current_cert(ctx);
        if (failed)
                subject = x509_name_to_string(X509_get_subject_name(failed));
        ERR_clear_error();
        log_debug("Certificate verification failed at depth %d: %s", depth, X509_verify_cert_error_string(err));
        if (ret_reason &&
            asprintf(ret_reason, "%s (%s%s%s)", X509_verify_cert_error_string(err),
                     depth == 0 ? "the certificate itself" : depth == 1 ? "its issuer" : "a CA above its issuer",
                     subject ? ": " : "", strempty(subject)) < 0)
                *ret_reason = NULL;
        return -EKEYREJECTED;
}
