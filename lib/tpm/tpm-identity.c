/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tpm-identity.c: the EK certificate of a TPM, verified and proven (see tpm-identity.h). */

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include "encoding.h"
#include "json-util.h"
#include "log.h"
#include "openssl-util.h"
#include "tpm-identity.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);

_printf_(3, 4) static int refuse(char **ret_reason, int error, const char *format, ...) {
        va_list ap;

        if (ret_reason) {
                va_start(ap, format);
                if (vasprintf(ret_reason, format, ap) < 0)
                        *ret_reason = NULL;
                va_end(ap);
        }
        return error;
}

/* The certificate at the start of the NV data. Some TPMs store it in an index larger than the
 * certificate, with padding after it, so the length comes from the DER header, not the index. */
static int ek_cert_parse(const uint8_t *data, size_t size, X509 **ret, size_t *ret_der_size) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        const unsigned char *p = data;
        long len;
        int tag, class, flags;
        size_t total;

        if (size == 0 || size > LONG_MAX)
                return -EBADMSG;
        flags = ASN1_get_object(&p, &len, &tag, &class, (long) size);
        /* 0x80: a malformed header, or a length that points past the data; 0x21: constructed with
         * indefinite length, which DER forbids. */
        if ((flags & 0x80) || flags != V_ASN1_CONSTRUCTED || tag != V_ASN1_SEQUENCE || class != V_ASN1_UNIVERSAL) {
                ERR_clear_error();
                return log_debug_errno(EBADMSG,
                                       "The EK certificate's NV data does not start with a whole DER SEQUENCE.");
        }
        total = (size_t) (p - data) + (size_t) len;

        p = data;
        cert = d2i_X509(NULL, &p, (long) total);
        if (!cert)
                return log_openssl_errors(-EBADMSG, "Failed to parse the EK certificate");
        if ((size_t) (p - data) != total)
                return log_debug_errno(EBADMSG, "The EK certificate's DER is not one certificate.");
        if (total < size)
                log_debug("%zu bytes after the EK certificate in its NV index, ignoring them.", size - total);

        *ret = TAKE_PTR(cert);
        *ret_der_size = total;
        return 0;
}

static void name_text(const X509_NAME *name, char out[static TPM_IDENTITY_NAME_TEXT_MAX]) {
        _cleanup_free_ char *s = x509_name_to_string(name);

        /* Truncated rather than refused: the text is for people; the fingerprint identifies. */
        snprintf(out, TPM_IDENTITY_NAME_TEXT_MAX, "%s", strempty(s));
}

/* The modulus of an RSA 2048 key, big-endian, as the TPM keeps it in the EK's unique field. */
static int rsa2048_modulus(X509 *cert, uint8_t out[static TPM2_EK_RSA2048_MODULUS_SIZE], char **ret_reason) {
        _cleanup_(BN_freep) BIGNUM *n = NULL;
        EVP_PKEY *key = X509_get0_pubkey(cert);
        int bits;

        if (!key) {
                ERR_clear_error();
                return refuse(ret_reason, -EOPNOTSUPP, "the EK certificate's public key cannot be read");
        }
        /* "RSA" only: an RSASSA-PSS key cannot decrypt a salt, as the EK must. */
        if (!EVP_PKEY_is_a(key, "RSA"))
                return refuse(ret_reason, -EOPNOTSUPP, "the EK certificate holds a %s key, not RSA 2048",
                              strna(EVP_PKEY_get0_type_name(key)));
        bits = EVP_PKEY_get_bits(key);
        if (bits != 2048)
                return refuse(ret_reason, -EOPNOTSUPP, "the EK certificate holds an RSA key of %d bits, not 2048",
                              bits);
        if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n))
                return log_openssl_errors(-ENOMEM, "Failed to get the EK's modulus");
        if (BN_bn2binpad(n, out, TPM2_EK_RSA2048_MODULUS_SIZE) != TPM2_EK_RSA2048_MODULUS_SIZE)
                return log_openssl_errors(-EIO, "Failed to encode the EK's modulus");
        return 0;
}

int tpm_identity_verify(Tpm2Context *c, STACK_OF(X509) *anchors, time_t now, TpmIdentity *ret, char **ret_reason) {
        _cleanup_free_ uint8_t *der = NULL;
        _cleanup_free_ char *why = NULL;
        _cleanup_(X509_freep) X509 *cert = NULL;
        uint8_t modulus[TPM2_EK_RSA2048_MODULUS_SIZE];
        TpmIdentity id = {};
        size_t size = 0, der_size = 0;
        unsigned md_size = 0;
        int r;

        if (!c || !ret)
                return -EINVAL;
        if (!anchors || sk_X509_num(anchors) <= 0)
                return refuse(ret_reason, -ENOKEY, "no TPM manufacturer CA is configured");

        r = tpm2_ek_cert_read(c, &der, &size);
        if (r == -ENOENT)
                return refuse(ret_reason, r, "the TPM has no EK certificate");
        if (r == -EFBIG)
                return refuse(ret_reason, -EBADMSG, "the TPM's EK certificate index holds more than %zu bytes",
                              TPM2_EK_CERT_MAX);
        if (r < 0)
                return r;
        r = ek_cert_parse(der, size, &cert, &der_size);
        if (r < 0)
                return refuse(ret_reason, r, "the TPM's EK certificate index holds no X.509 certificate");

        if (EVP_Digest(der, der_size, id.ek_cert_fingerprint, &md_size, EVP_sha256(), NULL) != 1 ||
            md_size != sizeof(id.ek_cert_fingerprint))
                return log_openssl_errors(-EIO, "Failed to compute the EK certificate's fingerprint");
        id.have_ek_cert = true;
        name_text(X509_get_subject_name(cert), id.ek_cert_subject);
        name_text(X509_get_issuer_name(cert), id.ek_cert_issuer);

        r = x509_verify_to_anchors(cert, anchors, now, &why);
        if (r == -EKEYREJECTED)
                return refuse(ret_reason, r, "the EK certificate (issuer %s) does not chain to a configured TPM "
                              "manufacturer CA: %s", id.ek_cert_issuer, strempty(why));
        if (r < 0)
                return r;

        r = rsa2048_modulus(cert, modulus, ret_reason);
        if (r < 0)
                return r;

        r = tpm2_ek_prove_srk(c, modulus, sizeof(modulus), &id.ek_name, &id.srk_name);
        if (r == -EBADE)
                return refuse(ret_reason, r, "the TPM does not hold the certified EK (issuer %s, subject %s)",
                              id.ek_cert_issuer, id.ek_cert_subject);
        if (r == -ENXIO)
                return refuse(ret_reason, r, "the TPM has no storage root key at 0x%08x",
                              (unsigned) TPM2_SRK_HANDLE);
        if (r == -ENOTUNIQ)
                return refuse(ret_reason, r, "the key at 0x%08x is not a storage root key",
                              (unsigned) TPM2_SRK_HANDLE);
        if (r < 0)
                return r;

        *ret = id;
        return 0;
}

int tpm_replacements_append(const char *existing, size_t existing_size, const char *identity,
                            size_t identity_size, const TPM2B_NAME *old_srk, json_object *entry, char **ret) {
        _cleanup_(json_object_putp) json_object *doc = NULL, *old_tpm = NULL;
        json_object *list = NULL, *srk = NULL;
        bool restarted = false;

        if (existing && json_parse_object(existing, existing_size, 8, &doc) >= 0 &&
            (!json_object_object_get_ex(doc, "replacements", &list) || !json_object_is_type(list, json_type_array)))
                json_object_put(TAKE_PTR(doc));
        if (!doc) {
                restarted = existing != NULL;
                doc = json_object_new_object();
                if (!doc || json_add_owned(doc, "replacements", list = json_object_new_array()) < 0)
                        return -ENOMEM;
        }
        if (old_srk && identity && json_parse_object(identity, identity_size, 4, &old_tpm) >= 0 &&
            json_object_object_get_ex(old_tpm, "srk_name", &srk) && json_object_is_type(srk, json_type_string)) {
                _cleanup_free_ char *hex = hex_encode(old_srk->name, old_srk->size);

                if (!hex)
                        return -ENOMEM;
                if (streq(json_object_get_string(srk), hex) && json_add_owned(entry, "old_tpm", TAKE_PTR(old_tpm)) < 0)
                        return -ENOMEM;
        }
        if (json_object_array_add(list, json_object_get(entry)) < 0) {
                json_object_put(entry);
                return -ENOMEM;
        }
        *ret = json_format(doc);
        return !*ret ? -ENOMEM : restarted;
}
