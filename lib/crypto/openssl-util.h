/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * openssl-util.h: cleanup helpers for OpenSSL 3 types, turning OpenSSL's error queue into a debug
 * log line, and the certificate checks that more than one protector needs (DRA, TPM EK).
 *
 * OpenSSL reports failures on a per-thread error queue rather than through errno. Library code
 * drains that queue where it maps a failure to -errno, so a stale entry never gets attributed to a
 * later, unrelated call.
 */
#pragma once

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <time.h>

#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(X509 *, X509_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY_CTX *, EVP_PKEY_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(CMS_ContentInfo *, CMS_ContentInfo_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_OBJECT *, ASN1_OBJECT_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(ASN1_BIT_STRING *, ASN1_BIT_STRING_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EXTENDED_KEY_USAGE *, EXTENDED_KEY_USAGE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE *, X509_STORE_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(X509_STORE_CTX *, X509_STORE_CTX_free);

/* A stack of certificates, and the certificates on it. */
static inline void x509_stack_freep(STACK_OF(X509) **p) {
        if (*p)
                sk_X509_pop_free(*p, X509_free);
}

/* For buffers OpenSSL allocated (i2d output, PEM names and headers). */
static inline void openssl_freep(void *p) {
        OPENSSL_free(*(void **) p);
}

/* Logs every entry of the thread's OpenSSL error queue at debug level, prefixed with what, empties
 * the queue, and returns error (a negative errno) so callers can write
 *         return log_openssl_errors(-EBADMSG, "Failed to parse certificate");
 */
int log_openssl_errors(int error, const char *what);

/* A name as one line of RFC 2253 text ("CN=...,O=..."; control and non-ASCII characters escaped),
 * malloc'd; NULL if it cannot be shown or on allocation failure. */
char *x509_name_to_string(const X509_NAME *name);

/* Whether cert chains to one of anchors at time now (X509_verify_cert(): signatures, basicConstraints
 * and key usage of the issuers, validity of every certificate; no purpose, no revocation). Every
 * certificate in anchors is a trust anchor, self-signed or not (partial chains), and the chain is
 * built from anchors alone: an intermediate CA belongs with the anchors. Returns 0 when it chains;
 * -EKEYREJECTED when not, with OpenSSL's reason and the certificate it stopped at in *ret_reason
 * (malloc'd, may be NULL, written only then); -ENOMEM. */
int x509_verify_to_anchors(X509 *cert, STACK_OF(X509) *anchors, time_t now, char **ret_reason);
