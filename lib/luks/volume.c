/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volume.c: provisioning, opening and changing the protectors of a sealvol volume (see volume.h). */

#include <blkid.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aead.h"
#include "dra.h"
#include "log.h"
#include "recovery.h"
#include "secmem.h"
#include "volume-internal.h"
#include "volume.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

static void quiet_cryptsetup_log(int level, const char *msg, void *userdata) {
        (void) userdata;
        /* libcryptsetup's messages go to our debug log; the caller reports the error once. */
        if (level == CRYPT_LOG_ERROR || level == CRYPT_LOG_VERBOSE || level == CRYPT_LOG_DEBUG)
                log_debug("libcryptsetup: %.*s", (int) strcspn(msg, "\n"), msg);
}

Volume *volume_free(Volume *v) {
        if (!v)
                return NULL;
        crypt_free(v->cd);
        volume_token_done(&v->token);
        secure_free(v->vmk);
        free(v->device);
        free(v);
        return NULL;
}

static uint32_t recovery_kdf_max = VOLUME_RECOVERY_PBKDF2_ITERATIONS_MAX;

void volume_set_recovery_kdf_max(uint32_t iterations) {
        recovery_kdf_max = MAX(iterations, VOLUME_PBKDF2_ITERATIONS_MIN);
}

/* A disk is untrusted input, and a keyslot's KDF is the work its header asks the daemon to do: before
 * it runs, the keyslot must have the KDF sealvol writes for it (PBKDF2-SHA256; 1000 iterations for the
 * full-entropy tpm and dra passphrases, the configured range for a recovery password). Anything else
 * (2^24 iterations, Argon2 with a gigabyte) was not written by sealvol: -EBADE, unrun. */
static int keyslot_check_kdf(Volume *v, ProtectorType type, int slot) {
        struct crypt_pbkdf_type pbkdf = {};

        if (crypt_keyslot_get_pbkdf(v->cd, slot, &pbkdf) < 0 || !streq_ptr(pbkdf.type, CRYPT_KDF_PBKDF2) ||
            !streq_ptr(pbkdf.hash, "sha256"))
                return log_debug_errno(EBADE, "%s: keyslot %d has a KDF sealvol does not write (%s/%s).", v->device,
                                       slot, strna(pbkdf.type), strna(pbkdf.hash));
        if (type == PROTECTOR_RECOVERY ?
                    pbkdf.iterations < VOLUME_PBKDF2_ITERATIONS_MIN || pbkdf.iterations > recovery_kdf_max :
                    pbkdf.iterations != VOLUME_PBKDF2_ITERATIONS_MIN)
                return log_debug_errno(EBADE, "%s: keyslot %d (%s) asks for %u PBKDF2 iterations, refused unrun.",
                                       v->device, slot, protector_type_to_string(type), pbkdf.iterations);
        return 0;
}

static int protector_check_kdf(Volume *v, ProtectorType type) {
        return keyslot_check_kdf(v, type, v->token.protectors[type].keyslot);
}

static int set_keyslot_pbkdf(struct crypt_device *cd, uint32_t iterations) {
        struct crypt_pbkdf_type pbkdf = {
                .type = CRYPT_KDF_PBKDF2,
                .hash = "sha256",
                .iterations = iterations,
                .flags = CRYPT_PBKDF_NO_BENCHMARK,
        };
        return crypt_set_pbkdf_type(cd, &pbkdf);
}

/* Only the daemon's own writing is a token: each write is MAC'd under the VMK the token names, which the
 * volume was authenticated with (or made with). */
static int token_write(Volume *v) {
        _cleanup_free_ char *json = NULL;
        int r;

        if (!v->vmk)
                return -ENOKEY;
        v->token.version = VOLUME_TOKEN_VERSION;
        v->token.updated = (uint64_t) time(NULL);
        r = volume_token_mac(&v->token, v->vmk, v->token.mac);
        if (r < 0)
                return r;
        r = volume_token_to_json(&v->token, &json);
        if (r < 0)
                return r;
        /* One metadata update: LUKS2 writes both header copies with a new sequence id, so a crash
         * leaves the old token or the new one. */
        r = crypt_token_json_set(v->cd, v->token_id >= 0 ? v->token_id : CRYPT_ANY_TOKEN, json);
        if (r < 0)
                return r;
        v->token_id = r;
        return 0;
}

static bool keyslot_active(Volume *v, int slot) {
        crypt_keyslot_info s = crypt_keyslot_status(v->cd, slot);
        return s == CRYPT_SLOT_ACTIVE || s == CRYPT_SLOT_ACTIVE_LAST;
}

/* Destroys a keyslot unless it is the last one: the journal never leaves a volume without keys. */
static int keyslot_destroy(Volume *v, int slot) {
        crypt_keyslot_info s = crypt_keyslot_status(v->cd, slot);

        if (s == CRYPT_SLOT_INACTIVE)
                return 0;
        if (s == CRYPT_SLOT_ACTIVE_LAST)
                return -EBUSY;
        return crypt_keyslot_destroy(v->cd, slot);
}

/* Finishes what a crash interrupted: a pending keyslot was never trusted (its secret was never
 * released, or its escrow never confirmed), so it goes; retiring keyslots go as planned. */
static int journal_finish(Volume *v) {
        int r;

        if (!v->token.has_pending && v->token.n_retiring == 0)
                return 0;

        log_debug("%s: finishing an interrupted protector change.", v->device);
        if (v->token.has_pending) {
                r = keyslot_destroy(v, v->token.pending.keyslot);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < v->token.n_retiring; i++) {
                r = keyslot_destroy(v, v->token.retiring[i]);
                if (r < 0)
                        return r;
        }
        v->token.has_pending = false;
        protector_done(&v->token.pending);
        v->token.pending = (Protector) {};
        v->token.n_retiring = 0;
        return token_write(v);
}

int volume_find_token(struct crypt_device *cd, int *ret_id, const char **ret_json) {
        int found = -1;

        for (int i = 0; i < crypt_token_max(CRYPT_LUKS2); i++) {
                const char *type = NULL;
                crypt_token_info info = crypt_token_status(cd, i, &type);

                if (info == CRYPT_TOKEN_INACTIVE || info == CRYPT_TOKEN_INVALID || !streq_ptr(type, VOLUME_TOKEN_TYPE))
                        continue;
                /* Two tokens would be two truths about the same keyslots. */
                if (found >= 0)
                        return -EBADMSG;
                found = i;
        }
        if (found < 0)
                return -ENOMSG;
        if (crypt_token_json_get(cd, found, ret_json) < 0)
                return -EBADMSG;
        *ret_id = found;
        return 0;
}

int volume_new(const char *header, const char *device, Volume **ret) {
        _cleanup_(volume_freep) Volume *v = calloc(1, sizeof(Volume));
        int r;

        if (!v)
                return -ENOMEM;
        v->token_id = -1;
        v->device = strdup(device);
        if (!v->device)
                return -ENOMEM;
        crypt_set_log_callback(NULL, quiet_cryptsetup_log, NULL);
        r = header ? crypt_init_data_device(&v->cd, header, device) : crypt_init(&v->cd, device);
        /* libcryptsetup says "not a block device" for a path that does not exist at all. */
        if (r == -ENOTBLK && access(device, F_OK) < 0)
                return -errno;
        if (r < 0)
                return r;
        crypt_set_log_callback(v->cd, quiet_cryptsetup_log, NULL);
        *ret = TAKE_PTR(v);
        return 0;
}

/* Whether the device carries a LUKS2 signature (in either header copy, as blkid finds it): a header
 * that then does not load is a damaged one, not another kind of device. */
static bool has_luks2_signature(const char *device) {
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe_from_filename(device);
        const char *type = NULL, *version = NULL;

        if (!pr)
                return false;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION);
        return blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 &&
               streq_ptr(type, "crypto_LUKS") && blkid_probe_lookup_value(pr, "VERSION", &version, NULL) == 0 &&
               streq_ptr(version, "2");
}

int volume_load(const char *device, Volume **ret) {
        _cleanup_(volume_freep) Volume *v = NULL;
        const char *json = NULL;
        int r;

        r = volume_new(NULL, device, &v);
        if (r < 0)
                return r;
        r = crypt_load(v->cd, CRYPT_LUKS2, NULL);
        /* libcryptsetup says -EINVAL for "no LUKS2 here" and for a header that fails its checksum or
         * validation alike, and -EIO for one cut short. */
        if (IN_SET(r, -EINVAL, -EIO) && has_luks2_signature(device))
                return -EUCLEAN;
        if (r == -EINVAL)
                return -EMEDIUMTYPE;
        if (r < 0)
                return r;

        r = volume_find_token(v->cd, &v->token_id, &json);
        if (r < 0)
                return r;
        r = volume_token_from_json(json, strlen(json), crypt_get_uuid(v->cd), &v->token);
        if (r < 0)
                return r;

        /* Every keyslot the token relies on must exist. */
        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++)
                if (v->token.has[i] && !keyslot_active(v, v->token.protectors[i].keyslot))
                        return -EBADMSG;

        *ret = TAKE_PTR(v);
        return 0;
}

/* Version 1 has no MAC. What vouches for it is its tpm keyslot: it opens with a passphrase derived from
 * this VMK and this volume's UUID, which nobody without the VMK can make. */
static int authenticate_v1(Volume *v, const uint8_t vmk[static VMK_SIZE]) {
        _cleanup_secure_ uint8_t *pass = NULL;
        int r;

        if (!v->token.has[PROTECTOR_TPM])
                return -EBADE;
        r = vmk_derive_keyslot_passphrase(vmk, v->token.volume_uuid, &pass);
        if (r < 0)
                return r;
        r = crypt_activate_by_passphrase(v->cd, NULL, v->token.protectors[PROTECTOR_TPM].keyslot, (const char *) pass,
                                         VMK_KEYSLOT_PASSPHRASE_SIZE, 0);
        return r == -EPERM ? -EBADE : r < 0 ? r : 0;
}

int volume_authenticate(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id) {
        uint8_t mac[VOLUME_TOKEN_MAC_SIZE];
        int r;

        if (!guid_equal(vmk_id, &v->token.vmk_id))
                return -EREMOTE;
        if (v->vmk)
                return memeq_secure(v->vmk, vmk, VMK_SIZE) ? 0 : -EBADE;
        if (v->token.has[PROTECTOR_TPM]) {
                r = protector_check_kdf(v, PROTECTOR_TPM);
                if (r < 0)
                        return r;
        }
        if (v->token.version >= 2) {
                r = volume_token_mac(&v->token, vmk, mac);
                if (r < 0)
                        return r;
                if (!memeq_secure(mac, v->token.mac, sizeof(mac)))
                        return log_debug_errno(EBADE, "%s: the token's MAC does not verify under VMK %s.", v->device,
                                               guid_format(vmk_id, (char[GUID_STRING_MAX]) {}));
        } else {
                r = authenticate_v1(v, vmk);
                if (r < 0)
                        return r;
        }
        v->vmk = secure_memdup(vmk, VMK_SIZE);
        if (!v->vmk)
                return negative_errno();

        /* Now the journal is the daemon's own, and is finished. Best effort: the live protectors are
         * intact whatever it says, so a device that cannot be written (read-only media, a failing disk)
         * still opens; the journal stays, changes are refused (-EBUSY) until it is finished. */
        r = journal_finish(v);
        if (r < 0)
                log_debug_errno(r, "%s: could not finish an interrupted protector change, leaving it: %m", v->device);
        /* Version 1 held the VMK under this disk's recovery password: written again without it. */
        if (r >= 0 && v->token.version < 2) {
                r = token_write(v);
                if (r < 0)
                        log_debug_errno(r, "%s: could not write the token as version 2, leaving it: %m", v->device);
                else
                        v->upgraded = true;
        }
        return 0;
}

/* A provisioning that was interrupted before its token was written leaves a LUKS2 header that we
 * formatted (subsystem "sealvol") and no sealvol token: nobody can have used it, so it may be formatted
 * again. Anything else is somebody's: -EEXIST, or -EUCLEAN for a LUKS header too damaged to load. */
static int is_interrupted_provisioning(const char *device) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        const char *json;
        int id;

        if (crypt_init(&cd, device) < 0)
                return -EIO;
        /* LUKS magic but no header that loads: a crash inside crypt_format() (ours, or somebody's
         * damaged volume; we cannot tell, so we do not overwrite it). */
        if (crypt_load(cd, CRYPT_LUKS2, NULL) < 0)
                return -EUCLEAN;
        if (streq_ptr(crypt_get_subsystem(cd), VOLUME_LUKS2_SUBSYSTEM) && volume_find_token(cd, &id, &json) == -ENOMSG)
                return 0;
        return -EEXIST;
}

/* A device that holds anything (a file system, a partition table, RAID or LUKS metadata) is somebody's
 * data: provisioning an empty volume over it is refused. */
static int check_device_is_empty(const char *device) {
        _cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe_from_filename(device);
        const char *type = NULL;
        int r;

        if (!pr)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        blkid_probe_enable_partitions(pr, 1);
        r = blkid_do_safeprobe(pr);
        if (r == 1)
                return 0; /* nothing found */
        if (r == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0 && streq_ptr(type, "crypto_LUKS"))
                return is_interrupted_provisioning(device);
        if (r == 0 || r == -2)
                return -EEXIST; /* one signature, or several */
        return -EIO;
}

static int add_keyslot_by_volume_key(Volume *v, uint32_t iterations, const void *pass, size_t size) {
        int r;

        r = set_keyslot_pbkdf(v->cd, iterations);
        if (r < 0)
                return r;
        return crypt_keyslot_add_by_volume_key(v->cd, CRYPT_ANY_SLOT, NULL, 0, pass, size);
}

static int verify_keyslot(Volume *v, int slot, const void *pass, size_t size) {
        int r = crypt_activate_by_passphrase(v->cd, NULL, slot, pass, size, 0);
        return r < 0 ? r : r == slot ? 0 : -EIO;
}

/* ---- the recovery password's copy under the VMK -------------------------------------------------- */

#define RECOVERY_WRAP_LABEL "sealvol recovery password wrap v1"

/* The copy is bound to this volume, this protector and this VMK: a blob moved elsewhere, or left behind
 * by a re-binding, does not open. */
/* "sealvol recovery v1|" + UUID + "|" + GUID + "|" + GUID: 130 characters. */
#define RECOVERY_AAD_MAX 160

static void recovery_aad(const char *uuid, const Guid *key_id, const Guid *vmk_id, char ret[static RECOVERY_AAD_MAX]) {
        char k[GUID_STRING_MAX], m[GUID_STRING_MAX];
        int n;

        n = snprintf(ret, RECOVERY_AAD_MAX, "sealvol recovery v1|%s|%s|%s", uuid, guid_format(key_id, k),
                     guid_format(vmk_id, m));
        /* The UUID is validated canonical text, so this cannot happen; a truncated AAD would still
         * bind, but to less than documented, so stop rather than write it. */
        if (n < 0 || n >= RECOVERY_AAD_MAX)
                abort();
}

/* Fills p's wrapped_password: the password under a key derived from the VMK, so that the daemon
 * holding the VMK can escrow it again (BitLocker keeps its numerical passwords the same way). Nothing
 * is wrapped under the password: it opens this disk's keyslot and nothing else. */
static int wrap_password(const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, const char *uuid,
                         const char *password, Protector *p) {
        _cleanup_secure_ uint8_t *vmk_key = NULL;
        _cleanup_free_ uint8_t *wpw = NULL;
        size_t wpw_size;
        char aad[RECOVERY_AAD_MAX];
        int r;

        recovery_aad(uuid, &p->key_id, vmk_id, aad);
        r = vmk_derive_key(vmk, uuid, RECOVERY_WRAP_LABEL, &vmk_key);
        if (r < 0)
                return r;
        r = aead_seal(vmk_key, aad, strlen(aad), password, strlen(password), &wpw, &wpw_size);
        if (r < 0)
                return r;
        free(p->wrapped_password);
        p->wrapped_password = TAKE_PTR(wpw);
        p->wrapped_password_size = wpw_size;
        return 0;
}

int volume_read_recovery_password(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id,
                                  char **ret_password) {
        const Protector *p = &v->token.protectors[PROTECTOR_RECOVERY];
        _cleanup_secure_ uint8_t *key = NULL;
        _cleanup_secure_ void *plain = NULL;
        _cleanup_secure_ uint8_t *check = NULL;
        char aad[RECOVERY_AAD_MAX];
        size_t size;
        int r;

        r = volume_authenticate(v, vmk, vmk_id);
        if (r < 0)
                return r;
        if (!v->token.has[PROTECTOR_RECOVERY])
                return -ENOENT;
        if (p->wrapped_password_size == 0)
                return -ENODATA;

        recovery_aad(v->token.volume_uuid, &p->key_id, vmk_id, aad);
        r = vmk_derive_key(vmk, v->token.volume_uuid, RECOVERY_WRAP_LABEL, &key);
        if (r < 0)
                return r;
        r = aead_open(key, aad, strlen(aad), p->wrapped_password, p->wrapped_password_size, &plain, &size);
        if (r < 0)
                return r;
        /* Only ever a well-formed password comes out. */
        if (size != RECOVERY_PASSWORD_LEN || recovery_password_parse(plain, &check, NULL) < 0)
                return -EBADMSG;

        *ret_password = TAKE_PTR(plain);
        return 0;
}

static int make_dra_protector(X509 *cert, uint8_t **ret_secret, Protector *ret) {
        _cleanup_secure_ uint8_t *secret = secure_alloc(VOLUME_DRA_SECRET_SIZE);
        Protector p = { .type = PROTECTOR_DRA, .created = (uint64_t) time(NULL) };
        int r;

        if (!secret)
                return negative_errno();
        if (RAND_priv_bytes(secret, VOLUME_DRA_SECRET_SIZE) != 1)
                return -EIO;
        r = guid_generate(&p.key_id);
        if (r < 0)
                return r;
        r = dra_cert_fingerprint(cert, p.dra_fingerprint);
        if (r < 0)
                return r;
        r = dra_wrap(cert, secret, VOLUME_DRA_SECRET_SIZE, &p.dra_cms, &p.dra_cms_size);
        if (r < 0)
                return r;
        *ret_secret = TAKE_PTR(secret);
        *ret = p;
        return 0;
}

int provision_check_params(const VolumeProvisionParams *p) {
        uint32_t recovery_iterations = p->recovery_iterations ?: VOLUME_RECOVERY_PBKDF2_ITERATIONS;

        if (!p->vmk || guid_is_null(&p->vmk_id) || recovery_iterations < VOLUME_PBKDF2_ITERATIONS_MIN ||
            recovery_iterations > recovery_kdf_max || (p->hostname && strlen(p->hostname) > VOLUME_HOSTNAME_MAX) ||
            !p->server_key_id != !p->server_wrap)
                return -EINVAL;
        /* Refused before anything is written (callers wanting the reason call dra_cert_check()). */
        if (p->dra_cert && dra_cert_check(p->dra_cert, p->dra_extra_ekus, time(NULL), NULL) < 0)
                return -EKEYREJECTED;
        return 0;
}

/* Formats v (a new header; data_offset in sectors, 0: libcryptsetup's default), adds and verifies
 * every protector, escrows the recovery password and writes the token last. */
int provision_format(Volume *v, const VolumeProvisionParams *p, uint64_t data_offset,
                            char **ret_recovery_password) {
        _cleanup_secure_ uint8_t *tpm_pass = NULL, *dra_secret = NULL;
        _cleanup_secure_ char *password = NULL;
        struct crypt_params_luks2 params = { .subsystem = VOLUME_LUKS2_SUBSYSTEM };
        Protector dra = {};
        uint32_t recovery_iterations = p->recovery_iterations ?: VOLUME_RECOVERY_PBKDF2_ITERATIONS;
        const char *uuid;
        int r, slot;

        /* Our keyslots each get an explicit PBKDF; setting one before formatting also spares
         * crypt_format() its Argon2 benchmark (about a second here), whose result we would not use. */
        r = set_keyslot_pbkdf(v->cd, VOLUME_PBKDF2_ITERATIONS_MIN);
        if (r < 0)
                return r;

        if (data_offset > 0) {
                r = crypt_set_data_offset(v->cd, data_offset);
                if (r < 0)
                        return r;
        }

        /* A fresh 512-bit volume key from libcryptsetup's generator; it stays in libcryptsetup. */
        r = crypt_format(v->cd, CRYPT_LUKS2, "aes", "xts-plain64", NULL, NULL, 64, &params);
        if (r < 0)
                return r;
        uuid = crypt_get_uuid(v->cd);

        v->token = (VolumeToken) {
                .version = VOLUME_TOKEN_VERSION,
                .vmk_id = p->vmk_id,
                .created = (uint64_t) time(NULL),
        };
        snprintf(v->token.volume_uuid, sizeof(v->token.volume_uuid), "%s", uuid);
        snprintf(v->token.hostname, sizeof(v->token.hostname), "%s", strempty(p->hostname));
        if (p->server_key_id && p->server_wrap) {
                v->token.has_server_wrap = true;
                v->token.server_key_id = *p->server_key_id;
                memcpy(v->token.server_wrap, p->server_wrap, VOLUME_SERVER_WRAP_SIZE);
        }
        /* The token is the daemon's writing from the first: MAC'd under this VMK. */
        secure_free(v->vmk);
        v->vmk = secure_memdup(p->vmk, VMK_SIZE);
        if (!v->vmk)
                return negative_errno();

        /* tpm */
        r = vmk_derive_keyslot_passphrase(p->vmk, uuid, &tpm_pass);
        if (r < 0)
                return r;
        slot = add_keyslot_by_volume_key(v, VOLUME_PBKDF2_ITERATIONS_MIN, tpm_pass, VMK_KEYSLOT_PASSPHRASE_SIZE);
        if (slot < 0)
                return slot;
        v->token.protectors[PROTECTOR_TPM] = (Protector) { .type = PROTECTOR_TPM, .keyslot = slot,
                                                           .created = v->token.created };
        r = guid_generate(&v->token.protectors[PROTECTOR_TPM].key_id);
        if (r < 0)
                return r;
        v->token.has[PROTECTOR_TPM] = true;

        /* recovery: the passphrase is the password exactly as displayed, so stock cryptsetup takes it. */
        r = recovery_password_generate(&password);
        if (r < 0)
                return r;
        slot = add_keyslot_by_volume_key(v, recovery_iterations, password, strlen(password));
        if (slot < 0)
                return slot;
        v->token.protectors[PROTECTOR_RECOVERY] = (Protector) { .type = PROTECTOR_RECOVERY, .keyslot = slot,
                                                                .created = v->token.created };
        v->token.has[PROTECTOR_RECOVERY] = true;
        r = guid_generate(&v->token.protectors[PROTECTOR_RECOVERY].key_id);
        if (r < 0)
                return r;
        r = wrap_password(p->vmk, &p->vmk_id, uuid, password, &v->token.protectors[PROTECTOR_RECOVERY]);
        if (r < 0)
                return r;

        /* dra */
        if (p->dra_cert) {
                r = make_dra_protector(p->dra_cert, &dra_secret, &dra);
                if (r < 0)
                        return r;
                slot = add_keyslot_by_volume_key(v, VOLUME_PBKDF2_ITERATIONS_MIN, dra_secret, VOLUME_DRA_SECRET_SIZE);
                if (slot < 0) {
                        free(dra.dra_cms);
                        return slot;
                }
                dra.keyslot = slot;
                v->token.protectors[PROTECTOR_DRA] = dra;
                v->token.has[PROTECTOR_DRA] = true;
        }

        /* Every protector opens the volume, and the recovery password is escrowed, before the token
         * makes it a sealvol volume: a volume with a token is a complete one. */
        r = verify_keyslot(v, v->token.protectors[PROTECTOR_TPM].keyslot, tpm_pass, VMK_KEYSLOT_PASSPHRASE_SIZE);
        if (r >= 0)
                r = verify_keyslot(v, v->token.protectors[PROTECTOR_RECOVERY].keyslot, password, strlen(password));
        if (r >= 0 && p->dra_cert)
                r = verify_keyslot(v, v->token.protectors[PROTECTOR_DRA].keyslot, dra_secret, VOLUME_DRA_SECRET_SIZE);
        if (r < 0)
                return r;
        if (p->escrow) {
                r = p->escrow(v, &v->token.protectors[PROTECTOR_RECOVERY], password, p->userdata);
                if (r < 0)
                        return r;
        }

        r = token_write(v);
        if (r < 0)
                return r;

        *ret_recovery_password = TAKE_PTR(password);
        return 0;
}

int volume_provision(const char *device, const VolumeProvisionParams *p, char **ret_recovery_password,
                     Volume **ret) {
        _cleanup_(volume_freep) Volume *v = NULL;
        int r;

        r = provision_check_params(p);
        if (r < 0)
                return r;
        r = check_device_is_empty(device);
        if (r < 0)
                return r;
        r = volume_new(NULL, device, &v);
        if (r < 0)
                return r;
        r = provision_format(v, p, 0, ret_recovery_password);
        if (r < 0)
                return r;
        if (ret)
                *ret = TAKE_PTR(v);
        return 0;
}

/* ---- opening ------------------------------------------------------------------------------------ */

int volume_vmk_passphrase(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id,
                          uint8_t **ret_passphrase) {
        int r;

        /* Bound to another server's VMK: deriving would only produce a wrong key and a KDF run. */
        if (!guid_equal(vmk_id, &v->token.vmk_id))
                return -EREMOTE;
        if (!v->token.has[PROTECTOR_TPM])
                return -ENOENT;
        r = volume_authenticate(v, vmk, vmk_id);
        if (r < 0)
                return r;
        return vmk_derive_keyslot_passphrase(vmk, v->token.volume_uuid, ret_passphrase);
}

/* The keyslot's KDF and key check run in the caller's thread, beside other volumes' (volume_open_many());
 * only the device-mapper step is taken one at a time: libdevmapper's process-wide state (its control
 * descriptor, udev cookies) is not made for threads. */
static pthread_mutex_t activate_lock = PTHREAD_MUTEX_INITIALIZER;

static int activate_serialised(Volume *v, int slot, const void *pass, size_t size, const char *name, uint32_t flags) {
        _cleanup_secure_ char *key = NULL;
        size_t key_size;
        int r, keyslot;

        r = crypt_get_volume_key_size(v->cd);
        if (r <= 0)
                return -EINVAL;
        key_size = (size_t) r;
        key = secure_alloc(key_size);
        if (!key)
                return -ENOMEM;
        keyslot = crypt_volume_key_get(v->cd, slot, key, &key_size, pass, size);
        if (keyslot < 0)
                return keyslot;
        (void) pthread_mutex_lock(&activate_lock);
        r = crypt_activate_by_volume_key(v->cd, name, key, key_size, flags);
        (void) pthread_mutex_unlock(&activate_lock);
        return r < 0 ? r : keyslot;
}

int volume_open_vmk(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, const char *name,
                    uint32_t flags) {
        _cleanup_secure_ uint8_t *pass = NULL;
        int r;

        r = volume_vmk_passphrase(v, vmk, vmk_id, &pass);
        if (r < 0)
                return r;
        if (!name)
                return crypt_activate_by_passphrase(v->cd, NULL, v->token.protectors[PROTECTOR_TPM].keyslot,
                                                    (char *) pass, VMK_KEYSLOT_PASSPHRASE_SIZE, flags);
        return activate_serialised(v, v->token.protectors[PROTECTOR_TPM].keyslot, pass, VMK_KEYSLOT_PASSPHRASE_SIZE,
                                   name, flags);
}

int volume_open_recovery(Volume *v, const char *password, const char *name, uint32_t flags,
                         unsigned *ret_bad_block) {
        _cleanup_secure_ char *canonical = NULL;
        int r;

        if (!v->token.has[PROTECTOR_RECOVERY])
                return -ENOENT;
        /* Parsed first: a typo is reported with its block, before any KDF runs. */
        r = recovery_password_canonicalize(password, &canonical, ret_bad_block);
        if (r < 0)
                return r;
        /* Nothing else of an unauthenticated token is believed here: the password is tried on the keyslot
         * it names, and only if that keyslot costs what a sealvol recovery keyslot costs. */
        r = protector_check_kdf(v, PROTECTOR_RECOVERY);
        if (r < 0)
                return r;
        return crypt_activate_by_passphrase(v->cd, name, v->token.protectors[PROTECTOR_RECOVERY].keyslot, canonical,
                                            strlen(canonical), flags);
}

int volume_open_dra(Volume *v, EVP_PKEY *key, const char *name, uint32_t flags) {
        _cleanup_secure_ void *secret = NULL;
        size_t size = 0;
        int r;

        if (!v->token.has[PROTECTOR_DRA])
                return -ENOENT;
        r = protector_check_kdf(v, PROTECTOR_DRA);
        if (r < 0)
                return r;
        r = dra_unwrap(key, v->token.protectors[PROTECTOR_DRA].dra_cms, v->token.protectors[PROTECTOR_DRA].dra_cms_size,
                       &secret, &size);
        if (r < 0)
                return r;
        return crypt_activate_by_passphrase(v->cd, name, v->token.protectors[PROTECTOR_DRA].keyslot, secret, size,
                                            flags);
}

/* ---- decommissioning ------------------------------------------------------------------------------ */

int volume_crypto_erase(Volume *v, VolumeEraseRecord *ret) {
        _cleanup_(crypt_freep) struct crypt_device *check = NULL;
        _cleanup_free_ uint8_t *noise = NULL;
        _cleanup_close_ int fd = -EBADF;
        VolumeEraseRecord rec = {};
        uint64_t size;
        int r;

        if (crypt_reencrypt_status(v->cd, NULL) != CRYPT_REENCRYPT_NONE)
                return -EBUSY;
        snprintf(rec.volume_uuid, sizeof(rec.volume_uuid), "%s", v->token.volume_uuid);
        for (size_t i = 0; i < _PROTECTOR_TYPE_MAX; i++) {
                rec.has[i] = v->token.has[i];
                rec.key_ids[i] = v->token.protectors[i].key_id;
        }
        size = crypt_get_data_offset(v->cd) * UINT64_C(512);
        if (size < UINT64_C(32768))
                return -EBADMSG; /* not a header sealvol wrote: refuse to guess its extent */

        /* The keyslots first, through libcryptsetup: each one's area is wiped as it goes. */
        for (int slot = 0; slot < crypt_keyslot_max(CRYPT_LUKS2); slot++)
                if (crypt_keyslot_status(v->cd, slot) != CRYPT_SLOT_INACTIVE) {
                        r = crypt_keyslot_destroy(v->cd, slot);
                        if (r < 0)
                                return r;
                        rec.keyslots_destroyed++;
                }
        crypt_free(v->cd);
        v->cd = NULL;

        /* Then the whole header area, both copies and whatever the keyslots area held. */
        fd = open(v->device, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        noise = malloc(1024 * 1024);
        if (!noise)
                return -ENOMEM;
        for (uint64_t off = 0; off < size;) {
                size_t n = (size_t) MIN(size - off, (uint64_t) 1024 * 1024);
                ssize_t k;

                if (RAND_bytes(noise, (int) n) != 1)
                        return -EIO;
                k = pwrite(fd, noise, n, (off_t) off);
                if (k < 0)
                        return -errno;
                off += (uint64_t) k;
        }
        if (fsync(fd) < 0)
                return -errno;
        rec.header_bytes = size;

        /* Nothing may load any more. */
        if (crypt_init(&check, v->device) >= 0 && crypt_load(check, CRYPT_LUKS, NULL) >= 0)
                return -EIO;
        if (ret)
                *ret = rec;
        return 0;
}

/* ---- changes ------------------------------------------------------------------------------------ */

int volume_set_escrow(Volume *v, const Guid *key_id, const EscrowRecord *e) {
        Protector *p = &v->token.protectors[PROTECTOR_RECOVERY];
        int r;

        if (!v->vmk)
                return -ENOKEY;
        if (!v->token.has[PROTECTOR_RECOVERY] || !guid_equal(&p->key_id, key_id))
                return -ESTALE;
        if (v->token.has_pending || v->token.n_retiring > 0)
                return -EBUSY;
        r = protector_set_escrow(p, e);
        if (r < 0)
                return r;
        return token_write(v);
}

static int free_keyslot(Volume *v) {
        for (int slot = 0; slot < crypt_keyslot_max(CRYPT_LUKS2) && slot < VOLUME_KEYSLOT_MAX; slot++)
                if (crypt_keyslot_status(v->cd, slot) == CRYPT_SLOT_INACTIVE)
                        return slot;
        return -ENOSPC;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_keyslot_context *, crypt_keyslot_context_free);

/* Adds keyslot slot with pass, the volume key taken from the tpm keyslot alone (its passphrase derived
 * from the VMK the volume is authenticated with): libcryptsetup would otherwise try the passphrase on
 * every keyslot in turn, and run whatever KDF each asks for. */
static int add_keyslot_by_tpm(Volume *v, int slot, uint32_t iterations, const void *pass, size_t pass_size) {
        _cleanup_(crypt_keyslot_context_freep) struct crypt_keyslot_context *auth = NULL, *new = NULL;
        _cleanup_secure_ uint8_t *tpm_pass = NULL;
        int r;

        if (!v->vmk)
                return -ENOKEY;
        if (!v->token.has[PROTECTOR_TPM])
                return -ENOENT;
        r = vmk_derive_keyslot_passphrase(v->vmk, v->token.volume_uuid, &tpm_pass);
        if (r < 0)
                return r;
        r = set_keyslot_pbkdf(v->cd, iterations);
        if (r < 0)
                return r;
        r = crypt_keyslot_context_init_by_passphrase(v->cd, (const char *) tpm_pass, VMK_KEYSLOT_PASSPHRASE_SIZE, &auth);
        if (r < 0)
                return r;
        r = crypt_keyslot_context_init_by_passphrase(v->cd, pass, pass_size, &new);
        if (r < 0)
                return r;
        r = crypt_keyslot_add_by_keyslot_context(v->cd, v->token.protectors[PROTECTOR_TPM].keyslot, auth, slot, new, 0);
        return r < 0 ? r : 0;
}

/* What else changes with the swap of a re-binding to a new VMK. */
typedef struct RebindSwap {
        const uint8_t *new_vmk;
        const Guid *new_vmk_id;
        Protector *recovery_update;  /* its wrapped_password, under the new VMK (may hold none) */
        const Guid *server_key_id;   /* NULL: the token names no server recovery copy any more */
        const uint8_t *server_wrap;
} RebindSwap;

/* Replaces the protector of p->type (or adds one) with p, whose keyslot passphrase is pass:
 *   1. journal: the token names the new keyslot as pending (it is not trusted yet);
 *   2. add the keyslot, authorised by the tpm keyslot, and verify it opens;
 *   3. escrow (recovery passwords), which may veto;
 *   4. swap: the token names the new keyslot as the protector and the old one as retiring (with swap:
 *      the new VMK, the copies made for it, and MAC'd under it from here on);
 *   5. destroy the old keyslot, and clear the journal.
 * A crash anywhere leaves a token whose live protectors all open the volume; volume_authenticate()
 * finishes the journal. Takes ownership of p's buffers. */
static int replace_protector(Volume *v, Protector *p, const void *pass, size_t pass_size, uint32_t iterations,
                             VolumeEscrowFn escrow, void *userdata, const RebindSwap *swap) {
        _cleanup_secure_ uint8_t *next_vmk = NULL;
        ProtectorType type = p->type;
        int slot, old = v->token.has[type] ? v->token.protectors[type].keyslot : -1, r;

        if (!v->vmk) {
                protector_done(p);
                return -ENOKEY;
        }
        if (v->token.has_pending || v->token.n_retiring > 0) {
                protector_done(p);
                return -EBUSY;
        }
        if (swap) {
                next_vmk = secure_memdup(swap->new_vmk, VMK_SIZE);
                if (!next_vmk) {
                        protector_done(p);
                        return negative_errno();
                }
        }
        slot = free_keyslot(v);
        if (slot < 0) {
                protector_done(p);
                return slot;
        }
        p->keyslot = slot;
        v->token.pending = *p;
        v->token.has_pending = true;
        *p = (Protector) {};
        r = token_write(v);
        if (r < 0)
                goto fail;

        r = add_keyslot_by_tpm(v, slot, iterations, pass, pass_size);
        if (r < 0)
                goto fail;
        r = verify_keyslot(v, slot, pass, pass_size);
        if (r < 0)
                goto fail;

        if (escrow) {
                r = escrow(v, &v->token.pending, pass, userdata);
                if (r < 0)
                        goto fail;
        }

        protector_done(&v->token.protectors[type]);
        v->token.protectors[type] = v->token.pending;
        v->token.has[type] = true;
        v->token.pending = (Protector) {};
        v->token.has_pending = false;
        if (old >= 0)
                v->token.retiring[v->token.n_retiring++] = old;
        if (swap) {
                Protector *rp = &v->token.protectors[PROTECTOR_RECOVERY];

                v->token.vmk_id = *swap->new_vmk_id;
                secure_free(v->vmk);
                v->vmk = TAKE_PTR(next_vmk);
                if (v->token.has[PROTECTOR_RECOVERY]) {
                        free(rp->wrapped_password);
                        rp->wrapped_password = TAKE_PTR(swap->recovery_update->wrapped_password);
                        rp->wrapped_password_size = swap->recovery_update->wrapped_password_size;
                }
                v->token.has_server_wrap = !!swap->server_wrap;
                if (swap->server_wrap) {
                        v->token.server_key_id = *swap->server_key_id;
                        memcpy(v->token.server_wrap, swap->server_wrap, VOLUME_SERVER_WRAP_SIZE);
                }
        }
        r = token_write(v);
        if (r < 0)
                return r; /* the journal on disk still says pending: the next authentication undoes it */

        return journal_finish(v);

fail:
        /* Undo what we can now; what we cannot, the journal undoes at the next authentication. */
        if (keyslot_active(v, slot) && keyslot_destroy(v, slot) < 0)
                return r;
        protector_done(&v->token.pending);
        v->token.pending = (Protector) {};
        v->token.has_pending = false;
        (void) token_write(v);
        return r;
}

int volume_rotate_recovery(Volume *v, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id, uint32_t iterations,
                           VolumeEscrowFn escrow, void *userdata, char **ret_password) {
        _cleanup_secure_ char *password = NULL;
        Protector p = { .type = PROTECTOR_RECOVERY, .created = (uint64_t) time(NULL) };
        int r;

        if (iterations == 0)
                iterations = VOLUME_RECOVERY_PBKDF2_ITERATIONS;
        if (iterations < VOLUME_PBKDF2_ITERATIONS_MIN || iterations > recovery_kdf_max)
                return -EINVAL;
        r = volume_authenticate(v, vmk, vmk_id);
        if (r < 0)
                return r;
        r = guid_generate(&p.key_id);
        if (r < 0)
                return r;
        r = recovery_password_generate(&password);
        if (r < 0)
                return r;
        r = wrap_password(vmk, vmk_id, v->token.volume_uuid, password, &p);
        if (r < 0) {
                protector_done(&p);
                return r;
        }
        r = replace_protector(v, &p, password, strlen(password), iterations, escrow, userdata, NULL);
        if (r < 0)
                return r;
        *ret_password = TAKE_PTR(password);
        return 0;
}

int volume_bind_vmk(Volume *v, const uint8_t new_vmk[static VMK_SIZE], const Guid *new_vmk_id,
                    const char *recovery_password, const Guid *server_key_id, const uint8_t *server_wrap) {
        _cleanup_secure_ uint8_t *pass = NULL;
        _cleanup_secure_ char *password = NULL;
        Protector p = { .type = PROTECTOR_TPM, .created = (uint64_t) time(NULL) };
        Protector update = {};
        int r;

        if (!v->vmk)
                return -ENOKEY;
        if (guid_is_null(new_vmk_id) || guid_equal(new_vmk_id, &v->token.vmk_id) || !server_key_id != !server_wrap)
                return -EINVAL;
        /* The recovery password's copy follows the VMK: read back with the old one (or given), re-made
         * under the new one; dropped when neither can be had. */
        if (v->token.has[PROTECTOR_RECOVERY]) {
                if (recovery_password) {
                        r = recovery_password_canonicalize(recovery_password, &password, NULL);
                        /* Only the live password may be wrapped: a well-formed typo would be handed out
                         * as a password that opens nothing. */
                        if (r >= 0)
                                r = protector_check_kdf(v, PROTECTOR_RECOVERY);
                        if (r >= 0)
                                r = verify_keyslot(v, v->token.protectors[PROTECTOR_RECOVERY].keyslot, password,
                                                   strlen(password));
                } else {
                        r = volume_read_recovery_password(v, v->vmk, &v->token.vmk_id, &password);
                        if (r == -ENODATA)
                                r = 0;
                }
                if (r < 0)
                        return r;
                if (password) {
                        update.key_id = v->token.protectors[PROTECTOR_RECOVERY].key_id;
                        r = wrap_password(new_vmk, new_vmk_id, v->token.volume_uuid, password, &update);
                        if (r < 0)
                                return r;
                }
        }

        r = guid_generate(&p.key_id);
        if (r >= 0)
                r = vmk_derive_keyslot_passphrase(new_vmk, v->token.volume_uuid, &pass);
        if (r >= 0)
                r = replace_protector(v, &p, pass, VMK_KEYSLOT_PASSPHRASE_SIZE, VOLUME_PBKDF2_ITERATIONS_MIN, NULL, NULL,
                                      &(RebindSwap) { .new_vmk = new_vmk, .new_vmk_id = new_vmk_id,
                                                      .recovery_update = &update, .server_key_id = server_key_id,
                                                      .server_wrap = server_wrap });
        protector_done(&update);
        return r;
}

int volume_set_server_wrap(Volume *v, const Guid *server_key_id, const uint8_t server_wrap[static VOLUME_SERVER_WRAP_SIZE]) {
        if (!v->vmk)
                return -ENOKEY;
        if (v->token.has_pending || v->token.n_retiring > 0)
                return -EBUSY;
        v->token.has_server_wrap = true;
        v->token.server_key_id = *server_key_id;
        memcpy(v->token.server_wrap, server_wrap, VOLUME_SERVER_WRAP_SIZE);
        return token_write(v);
}

int volume_set_dra(Volume *v, X509 *cert, const char *const *extra_ekus) {
        _cleanup_secure_ uint8_t *secret = NULL;
        Protector p;
        int r;

        if (dra_cert_check(cert, extra_ekus, time(NULL), NULL) < 0)
                return -EKEYREJECTED;

        r = make_dra_protector(cert, &secret, &p);
        if (r < 0)
                return r;
        return replace_protector(v, &p, secret, VOLUME_DRA_SECRET_SIZE, VOLUME_PBKDF2_ITERATIONS_MIN, NULL, NULL, NULL);
}
