/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dra.h: the Data Recovery Agent protector.
 *
 * The DRA is one X.509 certificate per environment; its private key is kept offline. A secret (a
 * volume's "dra" keyslot passphrase, later the server's VMK) is stored as CMS EnvelopedData
 * (RFC 5652) encrypted to that certificate, so that stock tools recover it:
 *
 *         openssl cms -decrypt -inform DER -in blob.der -inkey dra.key | cryptsetup open --key-file - ...
 *
 * Blob format, chosen for the widest set of tools that can open it years from now:
 *   - EnvelopedData, content type id-data, content encrypted with AES-256-CBC. Not
 *     AuthEnvelopedData/AES-GCM (RFC 5083/5084): OpenSSL 3.0 decrypts it, but OpenSSL 1.1.1 and
 *     LibreSSL, still on many rescue systems, do not. CBC has no integrity of its own; what it
 *     protects is checked by its consumer (a LUKS2 keyslot digest rejects a wrong passphrase).
 *   - RSA recipients: KeyTransRecipientInfo with RSAES-OAEP, SHA-256 for both the hash and MGF1
 *     (RFC 8017 7.1, parameters encoded per RFC 4055), never PKCS #1 v1.5.
 *   - EC recipients: KeyAgreeRecipientInfo, ephemeral-static ECDH, standard (non-cofactor) DH
 *     with the X9.63 KDF and AES-256 key wrap (RFC 5753). The KDF hash follows the curve,
 *     dhSinglePass-stdDH-sha256kdf-scheme for P-256 and -sha384kdf- for P-384, instead of
 *     OpenSSL's SHA-1 default; every OpenSSL since 1.0.2 decrypts either.
 * Wrapping is mechanism only: whether a certificate is acceptable is dra_cert_check()'s business,
 * and the caller's to call.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "macro.h"

/* BitLocker's Data Recovery Agent extended key usage. */
#define DRA_EKU_BITLOCKER_DRA "1.3.6.1.4.1.311.67.1.1"

#define DRA_FINGERPRINT_SIZE 32
/* A wrapped secret is a passphrase or a key; anything larger is not ours. */
#define DRA_SECRET_MAX ((size_t) 4096)
/* Certificates and private key files are a few KiB; refuse to read more than this. */
#define DRA_CERT_FILE_MAX ((size_t) 64 * 1024)
#define DRA_KEY_FILE_MAX ((size_t) 64 * 1024)
#define DRA_RSA_BITS_MIN 2048

/* Parses exactly one certificate, PEM or DER (autodetected). -EBADMSG when the data is not a
 * certificate, or PEM holds anything else as well (a private key next to the DRA certificate is
 * refused, not ignored: that key belongs offline); -ENOTUNIQ when it holds several certificates. */
int dra_cert_load(const void *data, size_t size, X509 **ret);
/* As dra_cert_load(), from a file of at most DRA_CERT_FILE_MAX bytes (-EFBIG beyond). */
int dra_cert_load_file(const char *path, X509 **ret);

/* Checks cert against the DRA policy, at time now. Returns 0 when acceptable, -EKEYREJECTED when
 * not, with every problem found described in *ret_reason (malloc'd, "; " between problems;
 * ret_reason may be NULL and is written only with -EKEYREJECTED). -EINVAL if an entry of
 * extra_ekus (NULL-terminated dotted OIDs, or NULL) is not an OID, -ENOMEM.
 *
 * Policy:
 *   - key: RSA of at least DRA_RSA_BITS_MIN bits, or EC on P-256 or P-384 (named curve).
 *   - key usage: absent, or allowing what the recipient type does with the key:
 *     RSA (key transport): keyEncipherment, or dataEncipherment (BitLocker accepts a DRA
 *     certificate with only that bit; the RSA operation is the same). keyAgreement does not count:
 *     RSA agrees no keys.
 *     EC (key agreement, RFC 5753): keyAgreement. keyEncipherment/dataEncipherment do not count:
 *     RFC 8813 (updating RFC 5480 section 3) forbids them for EC keys.
 *   - extended key usage: absent, or containing anyExtendedKeyUsage, DRA_EKU_BITLOCKER_DRA, or one
 *     of extra_ekus.
 *   - validity: notBefore <= now <= notAfter (both ends inclusive, RFC 5280 4.1.2.5).
 * These are rules for what the key can do; whether the certificate is the organisation's is
 * dra_cert_verify_trust()'s business (a certificate anyone can make meets these rules). */
int dra_cert_check(X509 *cert, const char *const *extra_ekus, time_t now, char **ret_reason);

/* ---- trust: which certificate may become the DRA ---------------------------------------------- */

/* A trust anchor file holds at most this many certificates, in at most this many bytes. */
#define DRA_TRUST_ANCHORS_MAX 64
#define DRA_TRUST_ANCHOR_FILE_MAX ((size_t) 256 * 1024)

/* Loads the trust anchors DRA certificates are verified against from path (absolute): one or more
 * PEM certificates and nothing else, or one DER certificate. The file decides who may take over the
 * DRA, so it is read only from where root alone can change it: a regular file owned by root and
 * writable by nobody else, in directories likewise (path_check_root_only()); -EPERM otherwise, with
 * what is wrong in *ret_reason (malloc'd, may be NULL, written only with -EPERM). -EBADMSG when it
 * holds anything but certificates, or none; -E2BIG for more than DRA_TRUST_ANCHORS_MAX; -EFBIG above
 * DRA_TRUST_ANCHOR_FILE_MAX bytes; -ENOENT. Free the result with x509_stack_freep(). */
int dra_trust_anchors_load_file(const char *path, STACK_OF(X509) **ret, char **ret_reason);

/* Whether cert may become the DRA certificate: its fingerprint is one of the n_pinned in pinned, or
 * it chains to one of anchors (X509_verify_cert(): signatures, basicConstraints and key usage of the
 * issuers, validity of every certificate at now; no purpose, no revocation). Every certificate in
 * anchors is a trust anchor, self-signed or not (OpenSSL's partial chains): an organisation may trust
 * only the CA that issues its DRA certificates, not everything its root signs. The chain is built
 * from anchors alone: an intermediate CA belongs in the anchor file.
 * Returns 0 when trusted; -EKEYREJECTED when not, why in *ret_reason (malloc'd, may be NULL, written
 * only then); -ENOKEY when there is nothing to trust (no anchor and no pin): every certificate would
 * be refused, and the caller says what to configure. Apply dra_cert_check() as well. */
int dra_cert_verify_trust(X509 *cert, STACK_OF(X509) *anchors, const uint8_t (*pinned)[DRA_FINGERPRINT_SIZE],
                          size_t n_pinned, time_t now, char **ret_reason);

/* SHA-256 of the certificate's DER encoding: how a DRA certificate is identified. */
int dra_cert_fingerprint(X509 *cert, uint8_t ret[static DRA_FINGERPRINT_SIZE]);
/* 64 lowercase hex digits, malloc'd; NULL on allocation failure. */
char *dra_fingerprint_to_string(const uint8_t fp[static DRA_FINGERPRINT_SIZE]);
/* The other way: 64 hex digits of either case, or 32 pairs with a colon between them as `openssl x509
 * -noout -fingerprint -sha256` prints them. -EINVAL for anything else. */
int dra_fingerprint_from_string(const char *s, uint8_t ret[static DRA_FINGERPRINT_SIZE]);

/* Encrypts 1..DRA_SECRET_MAX bytes of secret to cert as DER CMS EnvelopedData (format above). The
 * blob is not secret; it is malloc'd. -EINVAL on a bad size, -EOPNOTSUPP for a key that is neither
 * RSA nor EC. The secret is only ever read from the caller's buffer: no copy is left in memory
 * OpenSSL frees without wiping. */
int dra_wrap(X509 *cert, const void *secret, size_t size, uint8_t **ret_der, size_t *ret_der_size);

/* Reads a private key from fd, which the caller opened (never a path on someone's behalf): PEM or
 * DER, PKCS #8 or traditional (RSAPrivateKey, ECPrivateKey), unencrypted, at most DRA_KEY_FILE_MAX
 * bytes (-EFBIG). The fd is read to its end and not closed. The read buffer is secure memory, wiped
 * afterwards. -EBADMSG when it is not a private key; -EOPNOTSUPP for a passphrase-protected key
 * (nothing is ever prompted for). */
int dra_key_load_fd(int fd, EVP_PKEY **ret);

/* Decrypts a blob from dra_wrap() (or from `openssl cms -encrypt`, EnvelopedData or
 * AuthEnvelopedData) with the DRA private key. The secret is returned in secure_alloc() memory
 * (secure_size() is its length); no intermediate copy survives unwiped. Errors:
 *   -EBADMSG       not DER CMS (Auth)EnvelopedData of id-data with its content inside, or the
 *                  content does not decrypt (bad padding or authentication tag, empty content);
 *   -EKEYREJECTED  key cannot open the blob: it is not a recipient, or the recipient's encrypted
 *                  key is damaged (the two cannot be told apart cryptographically);
 *   -E2BIG         the content is larger than DRA_SECRET_MAX.
 * Note that an EnvelopedData blob corrupted inside its IV or ciphertext may decrypt to a different
 * secret without error (CBC has no integrity); callers verify what they get (LUKS2 does). */
int dra_unwrap(EVP_PKEY *key, const uint8_t *der, size_t der_size, void **ret_secret, size_t *ret_size);
