/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dra.c: Data Recovery Agent certificates, and secrets wrapped to them as CMS EnvelopedData. */

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "dra.h"
#include "encoding.h"
#include "fileio.h"
#include "log.h"
#include "openssl-util.h"
#include "secmem.h"

#define OID_ANY_EXTENDED_KEY_USAGE "2.5.29.37.0"
/* Long enough for any OID we compare as text; a longer one cannot be one of those. */
#define OID_TEXT_MAX 128

typedef enum DraKeyType {
        DRA_KEY_OTHER,
        DRA_KEY_RSA,
        DRA_KEY_EC,
} DraKeyType;

static DraKeyType key_type(const EVP_PKEY *pkey) {
        /* "RSA" only: an RSASSA-PSS key (RFC 4055) is restricted to signatures and cannot
         * transport a key. */
        if (EVP_PKEY_is_a(pkey, "RSA"))
                return DRA_KEY_RSA;
        if (EVP_PKEY_is_a(pkey, "EC"))
                return DRA_KEY_EC;
        return DRA_KEY_OTHER;
}

/* The NID of a named curve, NID_undef for explicit parameters. */
static int key_curve_nid(const EVP_PKEY *pkey, char *name, size_t name_size) {
        size_t len = 0;

        if (!EVP_PKEY_get_group_name(pkey, name, name_size, &len)) {
                ERR_clear_error();
                return NID_undef;
        }
        return OBJ_sn2nid(name);
}

/* Reads fd to its end into buf, which has room for max + 1 bytes: -EFBIG when there is more than
 * max. Waits on a non-blocking fd rather than failing on it. */
static int read_full_fd(int fd, uint8_t *buf, size_t max, size_t *ret_size) {
        size_t n = 0;

        for (;;) {
                ssize_t k;

                if (n > max)
                        return -EFBIG;
                k = read(fd, buf + n, max + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK) {
                                struct pollfd pfd = { .fd = fd, .events = POLLIN };

                                if (poll(&pfd, 1, /* timeout= */ -1) < 0 && errno != EINTR)
                                        return -errno;
                                continue;
                        }
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }

        *ret_size = n;
        return 0;
}

/* ---- loading certificates ------------------------------------------------------------------- */

static int cert_load_der(const void *data, size_t size, X509 **ret) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        const unsigned char *p = data, *end = p + size;

        if (size == 0 || size > LONG_MAX)
                return -EBADMSG;

        cert = d2i_X509(NULL, &p, (long) size);
        if (!cert)
                return log_openssl_errors(-EBADMSG, "Failed to parse DER certificate");
        if (p != end) {
                _cleanup_(X509_freep) X509 *next = d2i_X509(NULL, &p, (long) (end - p));

                ERR_clear_error();
                if (next) {
                        log_debug("More than one DER certificate given, refusing.");
                        return -ENOTUNIQ;
                }
                log_debug("%zu bytes of trailing data after the DER certificate, refusing.",
                          (size_t) (end - p));
                return -EBADMSG;
        }

        *ret = TAKE_PTR(cert);
        return 0;
}

typedef struct PemBlock {
        char *name;
        char *header;
        unsigned char *data;
        long size;
} PemBlock;

static void pem_block_done(PemBlock *b) {
        OPENSSL_secure_free(b->name);
        OPENSSL_secure_free(b->header);
        OPENSSL_secure_clear_free(b->data, b->size > 0 ? (size_t) b->size : 0);
        *b = (PemBlock) {};
}

/* Every PEM block of data is a certificate, and there are 1..max of them: -EBADMSG when a block is
 * anything else or there is none, -E2BIG for more than max. */
static int certs_load_pem(const void *data, size_t size, size_t max, STACK_OF(X509) **ret) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        int r;

        if (size > INT_MAX)
                return -EFBIG;
        bio = BIO_new_mem_buf(data, (int) size);
        certs = sk_X509_new_null();
        if (!bio || !certs)
                return -ENOMEM;

        /* Every block, not only the certificates: anything else in the file is a mistake we report
         * rather than skip. */
        for (;;) {
                _cleanup_(pem_block_done) PemBlock b = {};
                _cleanup_(X509_freep) X509 *cert = NULL;

                /* PEM_FLAG_SECURE: the block may be a private key someone put next to the
                 * certificate; its decoded copies are wiped when freed. */
                if (PEM_read_bio_ex(bio, &b.name, &b.header, &b.data, &b.size,
                                    PEM_FLAG_SECURE | PEM_FLAG_EAY_COMPATIBLE) <= 0) {
                        unsigned long e = ERR_peek_last_error();

                        /* How PEM says "no further block". */
                        if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                                ERR_clear_error();
                                break;
                        }
                        return log_openssl_errors(-EBADMSG, "Failed to parse PEM");
                }

                if (!streq(b.name, PEM_STRING_X509) && !streq(b.name, PEM_STRING_X509_OLD)) {
                        log_debug("PEM block \"%s\" found where only certificates belong, refusing.", b.name);
                        return -EBADMSG;
                }
                if ((size_t) sk_X509_num(certs) >= max) {
                        log_debug("More than %zu PEM certificates given, refusing.", max);
                        return -E2BIG;
                }
                r = cert_load_der(b.data, (size_t) b.size, &cert);
                if (r < 0)
                        return r == -ENOTUNIQ ? r : -EBADMSG;
                if (!sk_X509_push(certs, cert))
                        return -ENOMEM;
                TAKE_PTR(cert);
        }

        if (sk_X509_num(certs) == 0) {
                log_debug("No PEM certificate found.");
                return -EBADMSG;
        }

        *ret = TAKE_PTR(certs);
        return 0;
}

static int cert_load_pem(const void *data, size_t size, X509 **ret) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
        int r;

        /* "Exactly one certificate" holds for the whole file. */
        r = certs_load_pem(data, size, /* max= */ 1, &certs);
        if (r == -E2BIG)
                return -ENOTUNIQ;
        if (r < 0)
                return r;
        *ret = sk_X509_shift(certs);
        return 0;
}

int dra_cert_load(const void *data, size_t size, X509 **ret) {
        if (!data || !ret)
                return -EINVAL;
        if (size == 0)
                return -EBADMSG;

        /* A DER certificate is a SEQUENCE (tag 0x30). Anything else is taken for PEM: text that may
         * carry explanations before the block, as `openssl x509 -text` writes. */
        if (((const uint8_t *) data)[0] == 0x30)
                return cert_load_der(data, size, ret);
        return cert_load_pem(data, size, ret);
}

int dra_cert_load_file(const char *path, X509 **ret) {
        _cleanup_close_ int fd = -EBADF;
        /* Wiped too: the file might hold the private key by mistake (refused, but read). */
        _cleanup_erase_and_free_ uint8_t *buf = NULL;
        size_t n;
        int r;

        if (!path || !ret)
                return -EINVAL;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;

        buf = malloc(DRA_CERT_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        r = read_full_fd(fd, buf, DRA_CERT_FILE_MAX, &n);
        if (r < 0)
                return r;

        return dra_cert_load(buf, n, ret);
}

/* ---- trust ---------------------------------------------------------------------------------- */

int dra_trust_anchors_load_file(const char *path, STACK_OF(X509) **ret, char **ret_reason) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *certs = NULL;
        _cleanup_erase_and_free_ char *buf = NULL;
        size_t n;
        int r;

        if (!path || !ret)
                return -EINVAL;

        /* Nobody but root can change what the path leads to, so what is read next is what was checked. */
        r = path_check_root_only(path, ret_reason);
        if (r < 0)
                return log_debug_errno(r, "Trust anchor file %s refused: %m", path);
        /* Wiped too, as a certificate file is: a private key put there by mistake is refused, but read. */
        r = read_file_full(path, DRA_TRUST_ANCHOR_FILE_MAX, &buf, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -EBADMSG;

        if ((uint8_t) buf[0] == 0x30) { /* DER: one certificate */
                _cleanup_(X509_freep) X509 *cert = NULL;

                r = cert_load_der(buf, n, &cert);
                if (r < 0)
                        return r == -ENOTUNIQ ? -EBADMSG : r;
                certs = sk_X509_new_null();
                if (!certs || !sk_X509_push(certs, cert))
                        return -ENOMEM;
                TAKE_PTR(cert);
        } else {
                r = certs_load_pem(buf, n, DRA_TRUST_ANCHORS_MAX, &certs);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(certs);
        return 0;
}

int dra_cert_verify_trust(X509 *cert, STACK_OF(X509) *anchors, const uint8_t (*pinned)[DRA_FINGERPRINT_SIZE],
                          size_t n_pinned, time_t now, char **ret_reason) {
        _cleanup_free_ char *chain = NULL, *hex = NULL;
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        int n_anchors = anchors ? sk_X509_num(anchors) : 0, r;

        if (!cert || (n_pinned > 0 && !pinned))
                return -EINVAL;
        if (n_anchors <= 0 && n_pinned == 0)
                return log_debug_errno(ENOKEY, "No trust anchor and no pinned fingerprint to verify a DRA "
                                       "certificate.");

        r = dra_cert_fingerprint(cert, fp);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n_pinned; i++)
                if (memcmp(pinned[i], fp, sizeof(fp)) == 0)
                        return 0;
        if (n_anchors > 0) {
                r = x509_verify_to_anchors(cert, anchors, now, &chain);
                if (r != -EKEYREJECTED)
                        return r;
        }

        hex = dra_fingerprint_to_string(fp);
        if (!hex)
                return -ENOMEM;
        log_debug("DRA certificate %s is not trusted.", hex);
        if (ret_reason) {
                if (n_pinned > 0 && n_anchors > 0)
                        r = asprintf(ret_reason, "not trusted: its fingerprint %s is not pinned, and it does not "
                                     "chain to a trust anchor: %s", hex, strempty(chain));
                else if (n_pinned > 0)
                        r = asprintf(ret_reason, "not trusted: its fingerprint %s is not pinned", hex);
                else
                        r = asprintf(ret_reason, "not trusted: it does not chain to a trust anchor: %s",
                                     strempty(chain));
                if (r < 0)
                        *ret_reason = NULL;
        }
        return -EKEYREJECTED;
}

/* ---- policy --------------------------------------------------------------------------------- */

/* Appends one problem to the reason being built, "; " between problems. */
_printf_(2, 3) static void reason_add(FILE *f, const char *format, ...) {
        va_list ap;

        if (ftell(f) > 0)
                fputs("; ", f);
        va_start(ap, format);
        vfprintf(f, format, ap);
        va_end(ap);
}

static void check_key(X509 *cert, FILE *f, DraKeyType *ret_type) {
        EVP_PKEY *pkey = X509_get0_pubkey(cert);
        char curve[64] = "";
        DraKeyType type;
        int bits, nid;

        if (!pkey) {
                (void) log_openssl_errors(0, "Failed to decode the certificate's public key");
                reason_add(f, "the public key cannot be decoded");
                *ret_type = DRA_KEY_OTHER;
                return;
        }

        type = key_type(pkey);
        switch (type) {
        case DRA_KEY_RSA:
                bits = EVP_PKEY_get_bits(pkey);
                if (bits < DRA_RSA_BITS_MIN)
                        reason_add(f, "RSA key of %d bits, at least %d required", bits, DRA_RSA_BITS_MIN);
                break;
        case DRA_KEY_EC:
                nid = key_curve_nid(pkey, curve, sizeof(curve));
                if (nid == NID_undef)
                        reason_add(f,
                                   "EC key without a named curve (explicit curve parameters), "
                                   "only P-256 and P-384 are accepted");
                else if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
                        reason_add(f,
                                   "EC key on curve %s, only P-256 (prime256v1) and P-384 (secp384r1) "
                                   "are accepted",
                                   curve);
                break;
        default:
                reason_add(f,
                           "key type %s is not supported, RSA (at least %d bits) or EC P-256/P-384 required",
                           strempty(EVP_PKEY_get0_type_name(pkey)), DRA_RSA_BITS_MIN);
        }

        *ret_type = type;
}

static const char *const key_usage_names[] = {
        /* Bit numbers of KeyUsage, RFC 5280 4.2.1.3. */
        [0] = "digitalSignature", [1] = "nonRepudiation", [2] = "keyEncipherment",
        [3] = "dataEncipherment", [4] = "keyAgreement",   [5] = "keyCertSign",
        [6] = "cRLSign",          [7] = "encipherOnly",   [8] = "decipherOnly",
};
#define KU_BIT_KEY_ENCIPHERMENT 2
#define KU_BIT_DATA_ENCIPHERMENT 3
#define KU_BIT_KEY_AGREEMENT 4

static void check_key_usage(X509 *cert, DraKeyType type, FILE *f) {
        _cleanup_(ASN1_BIT_STRING_freep) ASN1_BIT_STRING *ku = NULL;
        _cleanup_free_ char *list = NULL;
        size_t list_size = 0;
        unsigned n_set = 0;
        bool ok;
        int crit;

        ku = X509_get_ext_d2i(cert, NID_key_usage, &crit, NULL);
        if (!ku) {
                ERR_clear_error();
                if (crit == -1) /* absent: no restriction */
                        return;
                reason_add(f,
                           crit == -2 ? "the key usage extension appears more than once"
                                      : "the key usage extension cannot be decoded");
                return;
        }

        /* The key was refused already; a key usage rule for an unknown type would only be noise. */
        if (type == DRA_KEY_OTHER)
                return;

        /* What the recipient does with the key: RSA transports the content-encryption key (RFC 5652
         * 6.2.1), EC agrees on a key-encryption key (RFC 5753); see dra.h for dataEncipherment. */
        if (type == DRA_KEY_RSA)
                ok = ASN1_BIT_STRING_get_bit(ku, KU_BIT_KEY_ENCIPHERMENT) ||
                        ASN1_BIT_STRING_get_bit(ku, KU_BIT_DATA_ENCIPHERMENT);
        else
                ok = ASN1_BIT_STRING_get_bit(ku, KU_BIT_KEY_AGREEMENT);
        if (ok)
                return;

        {
                _cleanup_fclose_ FILE *l = open_memstream(&list, &list_size);

                if (!l) {
                        reason_add(f, "key usage does not allow key transport or key agreement");
                        return;
                }
                for (size_t i = 0; i < ELEMENTSOF(key_usage_names); i++)
                        if (ASN1_BIT_STRING_get_bit(ku, (int) i))
                                fprintf(l, "%s%s", n_set++ > 0 ? ", " : "", key_usage_names[i]);
        }

        if (n_set == 0)
                reason_add(f, "key usage extension with no bit set");
        else
                reason_add(f, "key usage %s%s", strempty(list), n_set == 1 ? " only" : "");
        if (type == DRA_KEY_RSA)
                fputs(" (an RSA key needs keyEncipherment or dataEncipherment, or no key usage extension)",
                      f);
        else
                fputs(" (an EC key needs keyAgreement, or no key usage extension)", f);
}

static bool eku_allowed(const ASN1_OBJECT *o, const char *const *extra_ekus) {
        char oid[OID_TEXT_MAX];
        int k = OBJ_obj2txt(oid, sizeof(oid), o, /* no_name= */ 1);

        if (k > 0 && (size_t) k < sizeof(oid) &&
            (streq(oid, OID_ANY_EXTENDED_KEY_USAGE) || streq(oid, DRA_EKU_BITLOCKER_DRA)))
                return true;

        /* Compared as OIDs, not as text: "1.3.6.01" in a configuration file is still 1.3.6.1. */
        for (const char *const *i = extra_ekus; i && *i; i++) {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *x = OBJ_txt2obj(*i, /* no_name= */ 1);

                if (x && OBJ_cmp(x, o) == 0)
                        return true;
        }
        return false;
}

static void check_extended_key_usage(X509 *cert, const char *const *extra_ekus, FILE *f) {
        _cleanup_(EXTENDED_KEY_USAGE_freep) EXTENDED_KEY_USAGE *eku = NULL;
        _cleanup_free_ char *list = NULL;
        size_t list_size = 0;
        int crit, n;

        eku = X509_get_ext_d2i(cert, NID_ext_key_usage, &crit, NULL);
        if (!eku) {
                ERR_clear_error();
                if (crit == -1) /* absent: no restriction */
                        return;
                reason_add(f,
                           crit == -2 ? "the extended key usage extension appears more than once"
                                      : "the extended key usage extension cannot be decoded");
                return;
        }

        n = sk_ASN1_OBJECT_num(eku);
        for (int i = 0; i < n; i++)
                if (eku_allowed(sk_ASN1_OBJECT_value(eku, i), extra_ekus))
                        return;

        {
                _cleanup_fclose_ FILE *l = open_memstream(&list, &list_size);

                if (!l) {
                        reason_add(f, "extended key usage does not allow data recovery");
                        return;
                }
                for (int i = 0; i < n; i++) {
                        const ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, i);
                        int nid = OBJ_obj2nid(o);
                        char oid[OID_TEXT_MAX];

                        /* The short name where OpenSSL knows one (serverAuth), else the OID. */
                        if (nid == NID_undef && OBJ_obj2txt(oid, sizeof(oid), o, /* no_name= */ 1) <= 0)
                                snprintf(oid, sizeof(oid), "(undecodable OID)");
                        fprintf(l, "%s%s", i > 0 ? ", " : "", nid != NID_undef ? OBJ_nid2sn(nid) : oid);
                }
        }

        if (n == 0)
                reason_add(f, "empty extended key usage extension does not allow data recovery");
        else
                reason_add(f, "extended key usage %s does not allow data recovery", strempty(list));
        fprintf(f, " (accepted: anyExtendedKeyUsage, %s", DRA_EKU_BITLOCKER_DRA);
        for (const char *const *i = extra_ekus; i && *i; i++)
                fprintf(f, ", %s", *i);
        fputs(", or no extended key usage extension)", f);
}

static void format_asn1_time(const ASN1_TIME *t, char *buf, size_t size) {
        struct tm tm = {};

        if (!ASN1_TIME_to_tm(t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
                ERR_clear_error();
                snprintf(buf, size, "(undecodable time)");
        }
}

static void check_validity(X509 *cert, time_t now, FILE *f) {
        const ASN1_TIME *not_before = X509_get0_notBefore(cert), *not_after = X509_get0_notAfter(cert);
        char when[64];
        int c;

        /* Both ends are part of the validity period (RFC 5280 4.1.2.5). */
        c = ASN1_TIME_cmp_time_t(not_before, now);
        if (c == -2) {
                ERR_clear_error();
                reason_add(f, "the notBefore time cannot be decoded");
        } else if (c > 0) {
                format_asn1_time(not_before, when, sizeof(when));
                reason_add(f, "not valid before %s", when);
        }

        c = ASN1_TIME_cmp_time_t(not_after, now);
        if (c == -2) {
                ERR_clear_error();
                reason_add(f, "the notAfter time cannot be decoded");
        } else if (c < 0) {
                format_asn1_time(not_after, when, sizeof(when));
                reason_add(f, "expired on %s", when);
        }
}

int dra_cert_check(X509 *cert, const char *const *extra_ekus, time_t now, char **ret_reason) {
        _cleanup_free_ char *reason = NULL;
        size_t reason_size = 0;
        DraKeyType type;

        if (!cert)
                return -EINVAL;

        /* A configuration mistake is not the certificate's fault: say so apart. */
        for (const char *const *i = extra_ekus; i && *i; i++) {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *o = OBJ_txt2obj(*i, /* no_name= */ 1);

                if (!o) {
                        ERR_clear_error();
                        log_debug("Extended key usage \"%s\" is not a dotted OID.", *i);
                        return -EINVAL;
                }
        }

        {
                _cleanup_fclose_ FILE *f = open_memstream(&reason, &reason_size);

                if (!f)
                        return -ENOMEM;
                check_key(cert, f, &type);
                check_key_usage(cert, type, f);
                check_extended_key_usage(cert, extra_ekus, f);
                check_validity(cert, now, f);
                if (fflush(f) != 0 || ferror(f))
                        return -ENOMEM;
        }

        if (reason_size == 0)
                return 0;

        log_debug("DRA certificate refused: %s", reason);
        if (ret_reason)
                *ret_reason = TAKE_PTR(reason);
        return -EKEYREJECTED;
}

int dra_cert_fingerprint(X509 *cert, uint8_t ret[static DRA_FINGERPRINT_SIZE]) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned len = 0;

        if (!cert)
                return -EINVAL;

        /* Over the DER the certificate was parsed from (OpenSSL keeps the received encoding), so
         * this equals `openssl x509 -noout -fingerprint -sha256`. */
        if (!X509_digest(cert, EVP_sha256(), md, &len) || len != DRA_FINGERPRINT_SIZE)
                return log_openssl_errors(-EIO, "Failed to compute certificate fingerprint");

        memcpy(ret, md, DRA_FINGERPRINT_SIZE);
        return 0;
}

char *dra_fingerprint_to_string(const uint8_t fp[static DRA_FINGERPRINT_SIZE]) {
        static const char hex[] = "0123456789abcdef";
        char *s = malloc(DRA_FINGERPRINT_SIZE * 2 + 1);

        if (!s)
                return NULL;
        for (size_t i = 0; i < DRA_FINGERPRINT_SIZE; i++) {
                s[2 * i] = hex[fp[i] >> 4];
                s[2 * i + 1] = hex[fp[i] & 0xf];
        }
        s[DRA_FINGERPRINT_SIZE * 2] = '\0';
        return s;
}

int dra_fingerprint_from_string(const char *s, uint8_t ret[static DRA_FINGERPRINT_SIZE]) {
        uint8_t fp[DRA_FINGERPRINT_SIZE];
        size_t n = s ? strlen(s) : 0, step;

        if (n == 2 * DRA_FINGERPRINT_SIZE)
                step = 2;
        else if (n == 3 * DRA_FINGERPRINT_SIZE - 1)
                step = 3; /* AB:CD:... */
        else
                return -EINVAL;
        for (size_t i = 0; i < DRA_FINGERPRINT_SIZE; i++) {
                const char *p = s + i * step;
                int hi = unhexchar(p[0]), lo = unhexchar(p[1]);

                if (hi < 0 || lo < 0 || (step == 3 && i + 1 < DRA_FINGERPRINT_SIZE && p[2] != ':'))
                        return -EINVAL;
                fp[i] = (uint8_t) (hi << 4 | lo);
        }
        memcpy(ret, fp, sizeof(fp));
        return 0;
}

/* ---- wrapping ------------------------------------------------------------------------------- */

static int recipient_set_parameters(CMS_RecipientInfo *ri, EVP_PKEY *pkey, DraKeyType type) {
        EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
        const EVP_MD *kdf_md;
        char curve[64] = "";

        if (!pctx)
                return log_openssl_errors(-EIO, "No key context for the CMS recipient");

        if (type == DRA_KEY_RSA) {
                /* RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 7.1); OpenSSL writes the
                 * parameters into keyEncryptionAlgorithm (RFC 4055 4), which is all a decrypting
                 * tool needs to know. */
                if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
                    EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) <= 0 ||
                    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0)
                        return log_openssl_errors(-EIO, "Failed to select RSAES-OAEP");
                return 0;
        }

        /* Ephemeral-static ECDH with the X9.63 KDF (RFC 5753 3.1), dhSinglePass-stdDH-shaNNNkdf-scheme
         * (RFC 5753 7.1.4). The KDF hash matches the curve's strength, as the Suite B profile of CMS
         * pairs them (RFC 6318), where OpenSSL would otherwise use SHA-1. */
        kdf_md = key_curve_nid(pkey, curve, sizeof(curve)) == NID_secp384r1 ? EVP_sha384() : EVP_sha256();
        if (EVP_PKEY_CTX_set_ecdh_kdf_md(pctx, kdf_md) <= 0)
                return log_openssl_errors(-EIO, "Failed to select the ECDH KDF digest");
        return 0;
}

int dra_wrap(X509 *cert, const void *secret, size_t size, uint8_t **ret_der, size_t *ret_der_size) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        _cleanup_free_ uint8_t *der = NULL;
        CMS_RecipientInfo *ri;
        EVP_PKEY *pkey;
        DraKeyType type;
        unsigned char *p;
        int n, r;

        if (!cert || !secret || size == 0 || size > DRA_SECRET_MAX || !ret_der || !ret_der_size)
                return -EINVAL;

        pkey = X509_get0_pubkey(cert);
        if (!pkey)
                return log_openssl_errors(-EBADMSG, "Failed to decode the certificate's public key");
        type = key_type(pkey);
        if (type == DRA_KEY_OTHER) {
                log_debug("Cannot wrap to a %s key.", strempty(EVP_PKEY_get0_type_name(pkey)));
                return -EOPNOTSUPP;
        }

        /* CMS_PARTIAL: the recipient gets its parameters before anything is encrypted. CMS_BINARY:
         * the secret is bytes, never text to canonicalise. AES-256-CBC: see dra.h. */
        cms = CMS_encrypt(/* certs= */ NULL, /* in= */ NULL, EVP_aes_256_cbc(), CMS_BINARY | CMS_PARTIAL);
        if (!cms)
                return log_openssl_errors(-ENOMEM, "Failed to create CMS EnvelopedData");

        /* CMS_KEY_PARAM: keep the recipient's key context open for recipient_set_parameters(). The
         * recipient is named by issuer and serial number (RFC 5652 6.2.1), as `openssl cms` does. */
        ri = CMS_add1_recipient_cert(cms, cert, CMS_KEY_PARAM);
        if (!ri)
                return log_openssl_errors(-EIO, "Failed to add the DRA certificate as recipient");
        r = recipient_set_parameters(ri, pkey, type);
        if (r < 0)
                return r;

        /* CMS_final() would copy the secret through a stack buffer and a buffering BIO that are
         * freed without being wiped; writing straight into the encrypting BIO leaves the plaintext
         * only in the cipher context, which OpenSSL cleanses. */
        bio = CMS_dataInit(cms, /* icont= */ NULL);
        if (!bio)
                return log_openssl_errors(-EIO, "Failed to start CMS encryption");
        if (BIO_write(bio, secret, (int) size) != (int) size || BIO_flush(bio) <= 0)
                return log_openssl_errors(-EIO, "Failed to encrypt the secret");
        if (!CMS_dataFinal(cms, bio))
                return log_openssl_errors(-EIO, "Failed to finish CMS EnvelopedData");

        n = i2d_CMS_ContentInfo(cms, NULL);
        if (n <= 0)
                return log_openssl_errors(-EIO, "Failed to encode CMS EnvelopedData");
        der = malloc(n);
        if (!der)
                return -ENOMEM;
        p = der;
        if (i2d_CMS_ContentInfo(cms, &p) != n)
                return log_openssl_errors(-EIO, "Failed to encode CMS EnvelopedData");

        *ret_der = TAKE_PTR(der);
        *ret_der_size = (size_t) n;
        return 0;
}

/* ---- unwrapping ----------------------------------------------------------------------------- */

/* PEM_read_bio_PrivateKey() would otherwise prompt on the terminal for a passphrase. */
static int no_passphrase(char *buf, int size, int rwflag, void *userdata) {
        bool *asked = userdata;

        (void) buf;
        (void) size;
        (void) rwflag;
        *asked = true;
        return -1;
}

static int key_load_der(const uint8_t *data, size_t size, EVP_PKEY **ret) {
        const unsigned char *p = data;
        X509_SIG *encrypted;
        EVP_PKEY *pkey;

        if (size > LONG_MAX)
                return -EFBIG;

        /* EncryptedPrivateKeyInfo (RFC 5208 6) is refused by name rather than reported as garbage. */
        encrypted = d2i_X509_SIG(NULL, &p, (long) size);
        if (encrypted) {
                X509_SIG_free(encrypted);
                log_debug("PKCS #8 private key is encrypted; only unencrypted keys are read.");
                return -EOPNOTSUPP;
        }
        ERR_clear_error();

        /* PrivateKeyInfo (RFC 5208 5), or the traditional RSAPrivateKey / ECPrivateKey that
         * `openssl pkey -outform DER` writes. The decoder wipes its intermediate copies. */
        p = data;
        pkey = d2i_AutoPrivateKey(NULL, &p, (long) size);
        if (!pkey)
                return log_openssl_errors(-EBADMSG, "Failed to parse DER private key");
        if (p != data + size) {
                EVP_PKEY_free(pkey);
                log_debug("%zu bytes of trailing data after the DER private key, refusing.",
                          (size_t) (data + size - p));
                return -EBADMSG;
        }

        *ret = pkey;
        return 0;
}

static int key_load_pem(const uint8_t *data, size_t size, EVP_PKEY **ret) {
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        bool asked = false;
        EVP_PKEY *pkey;

        if (size > INT_MAX)
                return -EFBIG;
        /* A read-only view of the caller's secure buffer: no copy. */
        bio = BIO_new_mem_buf(data, (int) size);
        if (!bio)
                return -ENOMEM;

        pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked);
        if (!pkey) {
                if (asked) {
                        ERR_clear_error();
                        log_debug("PEM private key is encrypted; only unencrypted keys are read.");
                        return -EOPNOTSUPP;
                }
                return log_openssl_errors(-EBADMSG, "Failed to parse PEM private key");
        }
        *ret = pkey;
        return 0;
}

int dra_key_load_fd(int fd, EVP_PKEY **ret) {
        _cleanup_secure_ uint8_t *buf = NULL;
        EVP_PKEY *pkey = NULL;
        size_t n;
        int r;

        if (fd < 0 || !ret)
                return -EINVAL;

        /* It holds a private key: secure memory, wiped when we return. */
        buf = secure_alloc(DRA_KEY_FILE_MAX + 1);
        if (!buf)
                return negative_errno();
        r = read_full_fd(fd, buf, DRA_KEY_FILE_MAX, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -EBADMSG;

        /* DER is a SEQUENCE (0x30); anything else is taken for PEM. */
        r = buf[0] == 0x30 ? key_load_der(buf, n, &pkey) : key_load_pem(buf, n, &pkey);
        if (r < 0)
                return r;

        *ret = pkey;
        return 0;
}

int dra_unwrap(EVP_PKEY *key, const uint8_t *der, size_t der_size, void **ret_secret, size_t *ret_size) {
        _cleanup_(CMS_ContentInfo_freep) CMS_ContentInfo *cms = NULL;
        _cleanup_(BIO_free_allp) BIO *bio = NULL;
        _cleanup_secure_ uint8_t *buf = NULL;
        const unsigned char *p = der;
        ASN1_OCTET_STRING **content;
        void *secret;
        size_t n = 0;
        int nid;

        if (!key || (!der && der_size > 0) || !ret_secret || !ret_size)
                return -EINVAL;
        if (der_size == 0 || der_size > LONG_MAX)
                return -EBADMSG;

        cms = d2i_CMS_ContentInfo(NULL, &p, (long) der_size);
        if (!cms)
                return log_openssl_errors(-EBADMSG, "Failed to parse CMS blob");
        if (p != der + der_size) {
                log_debug("%zu bytes of trailing data after the CMS blob, refusing.",
                          (size_t) (der + der_size - p));
                return -EBADMSG;
        }

        nid = OBJ_obj2nid(CMS_get0_type(cms));
        if (nid != NID_pkcs7_enveloped && nid != NID_id_smime_ct_authEnvelopedData) {
                log_debug("CMS blob of type %s, not (Auth)EnvelopedData.", OBJ_nid2sn(nid));
                return -EBADMSG;
        }
        if (OBJ_obj2nid(CMS_get0_eContentType(cms)) != NID_pkcs7_data) {
                log_debug("CMS blob does not envelop id-data.");
                return -EBADMSG;
        }
        content = CMS_get0_content(cms);
        if (!content || !*content) {
                log_debug("CMS blob has no encrypted content (detached).");
                return -EBADMSG;
        }

        /* Report decryption failures as they are. By default OpenSSL hides a failed RSA key
         * transport (its defence against Bleichenbacher-style oracles on PKCS #1 v1.5) by decrypting
         * the content with a random key, which passes the CBC padding check about once in 256 tries
         * and then "succeeds" with garbage. There is no oracle here to defend: whoever calls this
         * holds the private key, and the blob comes from their own disk. The first call only sets
         * the flag. */
        if (!CMS_decrypt(cms, NULL, NULL, NULL, NULL, CMS_DEBUG_DECRYPT))
                return log_openssl_errors(-EBADMSG, "Failed to prepare CMS decryption");
        if (!CMS_decrypt_set1_pkey(cms, key, /* cert= */ NULL))
                return log_openssl_errors(-EKEYREJECTED, "Key is not a recipient of the CMS blob");

        /* Read the plaintext straight into secure memory: CMS_decrypt() would copy it through a
         * stack buffer that nobody wipes. */
        bio = CMS_dataInit(cms, /* icont= */ NULL);
        if (!bio)
                return log_openssl_errors(-EBADMSG, "Failed to start CMS decryption");
        buf = secure_alloc(DRA_SECRET_MAX + 1);
        if (!buf)
                return negative_errno();
        for (;;) {
                BIO *cipher;
                int k;

                if (n > DRA_SECRET_MAX) {
                        log_debug("CMS content larger than %zu bytes, refusing.", DRA_SECRET_MAX);
                        return -E2BIG;
                }
                k = BIO_read(bio, buf + n, (int) (DRA_SECRET_MAX + 1 - n));
                if (k > 0) {
                        n += (size_t) k;
                        continue;
                }
                /* End of content: the cipher BIO reports the final block's padding (CBC) or tag
                 * (GCM) check here, not through BIO_read(). */
                cipher = BIO_find_type(bio, BIO_TYPE_CIPHER);
                if (k < 0 || (cipher && BIO_get_cipher_status(cipher) <= 0))
                        return log_openssl_errors(-EBADMSG, "Failed to decrypt CMS content");
                break;
        }
        if (n == 0) {
                log_debug("CMS content is empty.");
                return -EBADMSG;
        }

        secret = secure_memdup(buf, n);
        if (!secret)
                return negative_errno();

        ERR_clear_error();
        *ret_secret = secret;
        *ret_size = n;
        return 0;
}
