/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-tpm-replace.c: the VMK sealed to a replaced TPM (docs/sealed-vmk.md, "Replacing the TPM").
 *
 * The bus handler proves the server-scoped secret and notes its use before anything is sealed
 * (sealvold-manager-bus.c). What the TPM costs then (the new TPM's SRK, with [TPM] EKCertificateCA= its EK made
 * again from the template and a session salted to it, the seal: seconds on a real TPM, an RSA key
 * generation among them) runs as an operation: tpm_replacement_seal() works on a snapshot and never
 * sees the Manager. manager_tpm_replaced() applies what it sealed, on the loop.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dra.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "openssl-util.h"
#include "sealvold.h"
#include "secmem.h"

TpmReplacement *tpm_replacement_free(TpmReplacement *t) {
        if (!t)
                return NULL;
        free(t->tcti);
        free(t->ek_ca);
        free(t->vmk_path);
        secure_free(t->vmk);
        secure_free(t->previous_vmk);
        free(t->reason);
        free(t);
        return NULL;
}

int manager_tpm_replacement_new(Manager *m, TpmReplacement **ret) {
        _cleanup_(tpm_replacement_freep) TpmReplacement *t = NULL;

        if (!m->vmk)
                return -ENOKEY;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->tcti = strdup(tpm2_tcti_select(m->config.tcti));
        t->vmk_path = strdup(m->vmk_path);
        t->vmk = secure_memdup(m->vmk, VMK_SIZE);
        if (!t->tcti || !t->vmk_path || !t->vmk || (m->config.tpm_ek_ca && !(t->ek_ca = strdup(m->config.tpm_ek_ca))))
                return -ENOMEM;
        t->vmk_id = m->vmk_id;
        /* A rotation under way keeps both VMKs sealed until every volume is re-bound. */
        if (m->previous_vmk) {
                t->previous_vmk = secure_memdup(m->previous_vmk, VMK_SIZE);
                if (!t->previous_vmk)
                        return -ENOMEM;
                t->previous_vmk_id = m->previous_vmk_id;
        }
        t->bank = m->config.pcr_bank;
        t->pcr_mask = m->config.pcr_mask;
        *ret = TAKE_PTR(t);
        return 0;
}

_printf_(3, 4) static int refuse(TpmReplacement *t, const char *why, const char *format, ...) {
        va_list ap;

        free(t->reason);
        t->reason = NULL;
        va_start(ap, format);
        if (vasprintf(&t->reason, format, ap) < 0)
                t->reason = NULL;
        va_end(ap);
        log_error("Refusing the new TPM: %s%s%s.", strempty(t->reason), why ? ": " : "", strempty(why));
        return -EKEYREVOKED;
}

/* With [TPM] EKCertificateCA=: the TPM in place must be one its maker certified, and name the SRK the
 * VMK is about to be pinned to under that proof. The SRK is made first: a new TPM has none. */
static int verify_new(TpmReplacement *t, Tpm2Context *c) {
        _cleanup_(x509_stack_freep) STACK_OF(X509) *anchors = NULL;
        _cleanup_free_ char *why = NULL;
        ESYS_TR srk = ESYS_TR_NONE;
        int r;

        r = dra_trust_anchors_load_file(t->ek_ca, &anchors, &why);
        if (r < 0)
                return refuse(t, NULL, "the TPM makers' CAs (%s) cannot be used: %s", t->ek_ca, why ?: strerror(-r));
        r = tpm2_srk_get(c, /* create= */ true, &srk);
        if (r < 0)
                return log_error_errno(r, "Failed to make the new TPM's storage root key: %m");
        why = mfree(why);
        r = tpm_identity_verify(c, anchors, time(NULL), &t->ek, &why);
        if (IN_SET(r, -ENOENT, -EBADMSG, -EKEYREJECTED, -EOPNOTSUPP, -EBADE, -ENXIO, -ENOTUNIQ, -ENOKEY))
                return refuse(t, NULL, "%s", strempty(why));
        if (r < 0)
                return log_error_errno(r, "Failed to check the new TPM's EK certificate: %m");
        log_info("The new TPM's EK certificate (issuer %s) chains to the makers' CAs, and the TPM holds its key.",
                 t->ek.ek_cert_issuer);
        return 0;
}

int tpm_replacement_seal(TpmReplacement *t) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        int r;

        t->have_old = vmk_blob_read(t->vmk_path, &t->old) >= 0;
        r = tpm2_context_new(t->tcti, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to open the TPM (%s): %m", t->tcti);
        if (t->ek_ca) {
                r = verify_new(t, c);
                if (r < 0)
                        return r;
        }
        r = vmk_seal(c,
                     &(VmkSealParams) { .vmk = t->vmk, .vmk_id = &t->vmk_id, .previous = t->previous_vmk,
                                        .previous_id = t->previous_vmk ? &t->previous_vmk_id : NULL,
                                        .bank = t->bank, .pcr_mask = t->pcr_mask, .repin_srk = true,
                                        .expect_srk = t->ek_ca ? &t->ek.srk_name : NULL },
                     t->vmk_path, &t->blob);
        if (r < 0)
                return log_error_errno(r, "Failed to seal the VMK to the new TPM: %m");
        /* Another TPM: its identity is asked anew, on this connection. */
        tpm_status_read(c, &t->tpm);
        return 0;
}

/* The record of a replacement, appended to <state>/tpm-replacements.json: which SRK the VMK was
 * pinned to before and after, which TPM it was (as tpm-identity.json knew it) and is now, when, and
 * with what the operator proved it. The new identity becomes tpm-identity.json. */
static int replacement_record(Manager *m, const TPM2B_NAME *old_srk, json_object *new_tpm, const char *credential,
                              char **ret) {
        _cleanup_(json_object_putp) json_object *e = json_object_new_object();
        json_object *srk = NULL;
        _cleanup_free_ char *path = NULL, *identity_path = NULL, *text = NULL, *existing = NULL, *old = NULL;
        size_t n_existing = 0, n_old = 0;
        int r;

        if (!e || asprintf(&path, "%s/tpm-replacements.json", m->state_dir) < 0 ||
            asprintf(&identity_path, "%s/tpm-identity.json", m->state_dir) < 0)
                return -ENOMEM;
        if ((r = json_add_time(e, "time", (uint64_t) time(NULL))) < 0 ||
            (r = json_add_string(e, "credential", credential)) < 0 ||
            (r = json_add_string(e, "vmk_id", guid_format(&m->vmk_id, (char[GUID_STRING_MAX]) {}))) < 0 ||
            (r = json_add_hex(e, "old_srk_name", old_srk ? old_srk->name : NULL, old_srk ? old_srk->size : 0)) < 0)
                return r;
        json_object_object_get_ex(new_tpm, "srk_name", &srk);
        if (json_add_owned(e, "new_srk_name", json_object_get(srk)) < 0 ||
            json_add_owned(e, "new_tpm", json_object_get(new_tpm)) < 0)
                return -ENOMEM;
        /* Both files are records for people (the sealed state is what counts): what cannot be read
         * is not needed, and a record that does not parse is kept aside, never overwritten. */
        r = read_file_full(path, 4 * 1024 * 1024, &existing, &n_existing);
        if (r < 0 && r != -ENOENT && !(existing = strdup(""))) /* there but unreadable: kept aside too */
                return -ENOMEM;
        (void) read_file_full(identity_path, 64 * 1024, &old, &n_old);
        r = tpm_replacements_append(existing, n_existing, old, n_old, old_srk, e, &text);
        if (r < 0)
                return r;
        if (r > 0) {
                _cleanup_free_ char *aside = NULL;

                /* Named by the time: an earlier one kept aside stays too. */
                if (asprintf(&aside, "%s.unreadable.%llu", path, (unsigned long long) time(NULL)) < 0)
                        return -ENOMEM;
                if (rename(path, aside) < 0)
                        return log_error_errno(-errno, "Failed to keep the unreadable %s aside: %m", path);
                log_warning("%s could not be read; kept as %s, a new record started.", path, aside);
        }
        r = write_file_atomic(path, text, strlen(text), 0600);
        if (r < 0)
                return r;
        tpm_identity_write(m, new_tpm);
        *ret = json_format(e);
        return *ret ? 0 : -ENOMEM;
}

int manager_tpm_replaced(Manager *m, TpmReplacement *t, const char *credential, char **ret_record) {
        _cleanup_(json_object_putp) json_object *identity = NULL;
        int r;

        /* Nothing else seals while the operation runs (manager-wide operations run alone). */
        if (!m->vmk || !guid_equal(&m->vmk_id, &t->vmk_id))
                return log_error_errno(ESTALE, "The VMK changed while it was sealed to the new TPM.");
        m->blob = t->blob;
        m->have_blob = true;
        m->last_pcr_mismatch = 0;
        m->tpm.present = false;
        manager_sealed_refresh(m, &t->blob);
        manager_tpm_apply(m, &t->tpm);
        identity = tpm_identity_json(&t->blob.sealed.srk_name, &t->tpm.info, t->ek_ca ? &t->ek : NULL);
        r = identity ? replacement_record(m, t->have_old ? &t->old.sealed.srk_name : NULL, identity, credential,
                                          ret_record)
                     : -ENOMEM;
        if (r < 0)
                log_warning_errno(r, "Failed to keep the record of the TPM replacement, ignoring: %m");
        log_notice("The VMK is sealed to a new TPM (%s %s%s), its storage key pinned anew; proven with %s.",
                   t->tpm.info.manufacturer, t->tpm.info.vendor, t->ek_ca ? ", its EK certificate checked" : "",
                   credential);
        manager_rotate_used_passwords(m);
        manager_escrow_retry(m);
        return 0;
}

int manager_replace_tpm_prove_dra(Manager *m, EVP_PKEY *key) {
        _cleanup_free_ char *json = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        size_t n;
        Guid id;
        int r;

        r = read_file_full(m->vmk_export_path, VMK_BLOB_SIZE_MAX, &json, &n);
        if (r == -ENOENT)
                return log_error_errno(ENOKEY, "There is no VMK export to open with the DRA key (%s).",
                                       m->vmk_export_path);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", m->vmk_export_path);
        r = vmk_import_dra(json, n, key, &vmk, &id);
        if (r < 0)
                return log_error_errno(r, "Failed to open the VMK export with the DRA key: %m");
        /* The credential is proven in this call, even when the daemon holds the VMK already. */
        r = manager_accept_vmk(m, TAKE_PTR(vmk), &id, "the DRA key");
        if (r < 0)
                return r;
        /* Noted before the seal: a crash right after it must not leave the used secret unrotated. */
        manager_note_server_secret_used(m, "The DRA key (the VMK export)");
        return 0;
}
