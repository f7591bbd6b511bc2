/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-escrow-record.c: escrow records as the DRA holder reads them back from a spool (or from
 * anywhere: `sealvolctl recovery lookup FILE`), plain, through CMS, and as a hook's envelope.
 *
 * The input is opened as a spool file with a fixed DRA key, so CMS seeds made for that key (and what
 * the fuzzer makes of them) reach the JSON parser through dra_unwrap(). Plain input is also wrapped to
 * the key's certificate and opened again: both ways must agree. Whatever parses must survive a round
 * trip through the writer. Expected errors return 0; anything else aborts. */

#include <openssl/pem.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dra.h"
#include "encoding.h"
#include "escrow.h"
#include "log.h"
#include "recovery.h"
#include "secmem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A P-256 key made once for this fuzzer with `openssl req -x509 -newkey ec`, and published here: it
 * protects nothing. The .cms seeds in fuzz/corpus/escrow-record are records encrypted to it. */
static const char fuzz_key_pem[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT5ywMDXB6C4PQb57\n"
        "svxL9ugfGT6wjPvK41ry8XMPvAmhRANCAARz5QtiKQUC9jdmUrfU6S5YTBIijboJ\n"
        "SL2Is3Blf5wBwPXEY81ohFTHooxjOz32YxVsSbUgkjGSTZBLVUl8ymNB\n"
        "-----END PRIVATE KEY-----\n";
static const char fuzz_cert_pem[] =
        "-----BEGIN CERTIFICATE-----\n"
        "MIIB2zCCAYKgAwIBAgIUD2Ehc2+lUt+iQYycKh9SEQn5M8QwCgYIKoZIzj0EAwIw\n"
        "PDE6MDgGA1UEAwwxc2VhbHZvbCBmdXp6LWVzY3Jvdy1yZWNvcmQgKHRlc3Qgb25s\n"
        "eSwgcHVibGlzaGVkKTAgFw0yNjExMjQwMDAwMDRaGA8yMTI2MTAzMTAwMDAwNFow\n"
        "PDE6MDgGA1UEAwwxc2VhbHZvbCBmdXp6LWVzY3Jvdy1yZWNvcmQgKHRlc3Qgb25s\n"
        "eSwgcHVibGlzaGVkKTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHPlC2IpBQL2\n"
        "N2ZSt9TpLlhMEiKNuglIvYizcGV/nAHA9cRjzWiEVMeijGM7PfZjFWxJtSCSMZJN\n"
        "kEtVSXzKY0GjYDBeMB0GA1UdDgQWBBRLv1Xr5wMkIeg/P/3/2N1p5hw13DAfBgNV\n"
        "HSMEGDAWgBRLv1Xr5wMkIeg/P/3/2N1p5hw13DAPBgNVHRMBAf8EBTADAQH/MAsG\n"
        "A1UdDwQEAwIDCDAKBggqhkjOPQQDAgNHADBEAiAjaYdLb/lgHGfcVOOmB0XgMkHi\n"
        "PHwGypQJ7o/AKPb4JgIgDbS2wZczMJOsPFka9XlHTQ3xt8dD8swVzHiXPXtT3+g=\n"
        "-----END CERTIFICATE-----\n";

static EVP_PKEY *fuzz_key(void) {
        static EVP_PKEY *key;
        BIO *b;

        if (key)
                return key;
        b = BIO_new_mem_buf(fuzz_key_pem, (int) strlen(fuzz_key_pem));
        if (b)
                key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
        if (!key)
                abort();
        return key;
}

static X509 *fuzz_cert(void) {
        static X509 *cert;

        if (!cert && dra_cert_load(fuzz_cert_pem, strlen(fuzz_cert_pem), &cert) < 0)
                abort();
        return cert;
}

static void check_error(int r) {
        if (!IN_SET(r, -EBADMSG, -EPROTONOSUPPORT, -EKEYREJECTED, -ENOMEM))
                abort();
}

/* What the reader hands out is what the writer would write: check each field, then write it again and
 * read that back. */
static void check_entry(int r, const EscrowEntry *e) {
        _cleanup_(escrow_entry_done) EscrowEntry again = {};
        _cleanup_secure_ char *json = NULL;
        _cleanup_secure_ uint8_t *key = NULL;
        size_t size;

        if (r != (int) e->type || !e->hostname || strlen(e->hostname) > ESCROW_HOSTNAME_MAX ||
            !utf8_is_printable(e->hostname))
                abort();
        if (e->machine_id && strlen(e->machine_id) != 32)
                abort();
        if (e->type == ESCROW_RECORD_VMK) {
                if (e->password || e->device)
                        abort();
                return;
        }
        if (e->type != ESCROW_RECORD_PASSWORD || !e->password || !e->device || !utf8_is_printable(e->device) ||
            strlen(e->volume_uuid) != GUID_STRING_MAX - 1 || guid_is_null(&e->key_id))
                abort();
        if (strlen(e->password) != RECOVERY_PASSWORD_LEN || recovery_password_parse(e->password, &key, NULL) < 0)
                abort();
        /* secure_size() aborts on memory secure_alloc() did not hand out. */
        if (secure_size(e->password) != RECOVERY_PASSWORD_LEN + 1)
                abort();

        r = escrow_password_to_json(&(EscrowPassword) { .hostname = e->hostname,
                                                         .machine_id = e->machine_id,
                                                         .volume_uuid = e->volume_uuid,
                                                         .device = e->device,
                                                         .key_id = e->key_id,
                                                         .vmk_id = e->vmk_id,
                                                         .created = e->created,
                                                         .password = e->password },
                                    &json, &size);
        if (r == -E2BIG || r == -ENOMEM)
                return; /* a record above the writer's limit can parse, written more compactly */
        if (r < 0 || escrow_entry_from_json(json, size, &again) != ESCROW_RECORD_PASSWORD)
                abort();
        if (!streq(again.hostname, e->hostname) || !streq_ptr(again.machine_id, e->machine_id) ||
            !streq(again.volume_uuid, e->volume_uuid) || !streq(again.device, e->device) ||
            !guid_equal(&again.key_id, &e->key_id) || !guid_equal(&again.vmk_id, &e->vmk_id) ||
            again.created != e->created || !streq(again.password, e->password))
                abort();
}

static bool entries_equal(const EscrowEntry *a, const EscrowEntry *b) {
        return a->type == b->type && streq_ptr(a->hostname, b->hostname) && streq_ptr(a->machine_id, b->machine_id) &&
               streq(a->volume_uuid, b->volume_uuid) && streq_ptr(a->device, b->device) &&
               guid_equal(&a->key_id, &b->key_id) && guid_equal(&a->vmk_id, &b->vmk_id) && a->created == b->created &&
               streq_ptr(a->password, b->password);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(escrow_entry_done) EscrowEntry e = {}, wrapped = {};
        _cleanup_free_ uint8_t *der = NULL;
        size_t der_size;
        int r, w;

        log_set_max_level(LOG_CRIT);
        r = escrow_entry_open(data, size, fuzz_key(), &e);
        if (r < 0)
                check_error(r);
        else
                check_entry(r, &e);

        /* The same text through CMS: the envelope must change nothing. Wrapping costs an ECDH, so it
         * is done for what parsed and for a fixed sixteenth of the rest. */
        if (size == 0 || data[0] != '{' || size > DRA_SECRET_MAX || (r < 0 && (data[size / 2] & 15) != 0))
                return 0;
        if (dra_wrap(fuzz_cert(), data, size, &der, &der_size) < 0)
                abort();
        w = escrow_entry_open(der, der_size, fuzz_key(), &wrapped);
        /* A hook's envelope is CMS inside already; wrapped once more it is nothing sealvol writes. */
        if (r >= 0 && e.encrypted) {
                if (w != -EBADMSG)
                        abort();
                return 0;
        }
        if (w != r || (r >= 0 && (!wrapped.encrypted || e.encrypted || !entries_equal(&e, &wrapped))))
                abort();
        return 0;
}
