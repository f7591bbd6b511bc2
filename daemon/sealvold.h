/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold.h: the daemon above its core (sealvold-core.h): the operations, the unlock pass, escrow,
 * in-place encryption, the TPM's status, and the bus objects (docs/bus-api.md).
 */
#pragma once

#include "sealvold-core.h"

/* sealvold-operation.c: slow work off the event loop. work runs on a worker thread and sees only
 * data (never the Manager); done runs on the loop afterwards, with the volume idle again, and answers
 * request. */
typedef int (*OperationWorkFn)(void *data);
typedef void (*OperationDoneFn)(Operation *o, int result);

struct Operation {
        Manager *manager;
        ManagedVolume *volume;   /* busy while it runs; NULL: none */
        /* Neither a volume's nor manager-wide: escrow, which runs beside anything and applies only what
         * is still current when it is done. */
        bool background;
        /* Manager-wide but not alone: provisioning, which works with a copy of the VMK. Others like it
         * and every volume's operation run beside it; what changes the VMK, the DRA or the server's
         * secrets waits for it (Busy), and so does a rotation that falls due. */
        bool shared;
        sd_bus_message *request; /* the caller's, answered by done */
        const char *name;        /* what the Operation property and a Busy error say: "recover" */
        OperationWorkFn work;
        OperationDoneFn done;
        void *data;
        void (*free_data)(void *data);
        int result;
        int efd;
        sd_event_source *source;
        pthread_t thread;
};

/* The manager-wide operation under way (the VMK, the sealed state or the server's secrets change:
 * it runs alone), or NULL. */
const Operation *manager_exclusive_operation(Manager *m);
/* That one, or a shared one (Operation.shared): what must end before the VMK changes. */
const Operation *manager_vmk_operation(Manager *m);
/* Starts work on data (owned from here, freed with free_data, also on failure) for v (NULL: none). */
int operation_start(Manager *m, ManagedVolume *v, sd_bus_message *request, const char *name, OperationWorkFn work,
                    OperationDoneFn done, void *data, void (*free_data)(void *data));
/* The same for work that belongs to no volume and does not run alone (Operation.background). */
int operation_start_background(Manager *m, sd_bus_message *request, const char *name, OperationWorkFn work,
                               OperationDoneFn done, void *data, void (*free_data)(void *data));
/* The same for a shared manager-wide operation (Operation.shared). */
int operation_start_shared(Manager *m, sd_bus_message *request, const char *name, OperationWorkFn work,
                           OperationDoneFn done, void *data, void (*free_data)(void *data), Operation **ret);
/* The volumes a manager-wide operation works on: each loaded on the loop (set.vols[i], the worker's)
 * and held busy (its Operation property names the operation) until the end. */
typedef struct OperationVolumes {
        ManagedVolume **volumes; /* for the loop only */
        Volume **vols;
        size_t n;
} OperationVolumes;
int operation_volumes_init(OperationVolumes *s, size_t max);
/* Takes vol. */
void operation_volumes_add(OperationVolumes *s, ManagedVolume *v, Volume *vol);
void operation_volumes_hold(Manager *m, const OperationVolumes *s, Operation *o);
void operation_volumes_release(Manager *m, const OperationVolumes *s, const Operation *o);
void operation_volumes_done(OperationVolumes *s);
/* The same for a manager-wide operation that runs alone (operation_start() of no volume). */
int operation_start_alone(Manager *m, sd_bus_message *request, const char *name, OperationWorkFn work,
                          OperationDoneFn done, void *data, void (*free_data)(void *data), Operation **ret);
/* Whether an operation other than a background one is under way. */
/* At exit: waits for every worker; nothing is applied or answered. */
void manager_stop_operations(Manager *m);

int manager_new(const char *config_path, Manager **ret);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);
/* Escrow still owed from before this start (a target that was down) is retried once the boot is
 * READY and the bus name is ours, never before: an escrow server that hangs holds neither the boot
 * (local-fs.target waits for READY=1) nor the name. */
void manager_escrow_after_boot(Manager *m);
int manager_start(Manager *m);


/* The operations; each returns -errno, for the bus layer to turn into an error. */
int manager_ensure_vmk(Manager *m, bool create);
/* The VMK's unseal in two halves, so that the TPM's work can run on a worker: what it needs, taken
 * on the loop (vmk_unseal_init()); the TPM's commands, on any thread (vmk_unseal_run(), which sees
 * nothing else); the result applied on the loop (manager_vmk_unsealed(), which logs a failure once
 * and takes the keys). */
typedef struct VmkUnseal {
        char *tcti, *path;
        TpmStatus tpm; /* the daemon's, read again on the unseal's connection */
        int result;    /* 1: not run yet */
        bool open_failed;
        uint32_t changed; /* -ESTALE: the PCRs that differ */
        uint8_t *vmk, *previous;
        VmkBlob blob;
        /* The server's first VMK: made and sealed to bank/mask rather than unsealed. */
        bool create;
        TPMI_ALG_HASH bank;
        uint32_t mask;
        Tpm2Info info; /* the TPM it was sealed to, for tpm-identity.json (have_info) */
        bool have_info;
        /* The server recovery password, made on the worker too when the daemon has none for the VMK
         * this gives (its first day; a server of version 1): its KDF and escrow are off the loop. */
        bool make_server;
        Guid server_vmk_id; /* the VMK the daemon's record is of (null: none) */
        uint32_t server_iterations;
        char *server_path;
        EscrowEnv env;
        bool server_made;
        ServerRecovery server;
        char *server_errors[_ESCROW_TARGET_MAX];
} VmkUnseal;
typedef enum VmkUnsealFlags {
        VMK_UNSEAL_CREATE = 1u << 0,          /* the VMK is made, not unsealed */
        VMK_UNSEAL_SERVER_RECOVERY = 1u << 1, /* and the server recovery password if it has none */
} VmkUnsealFlags;
int vmk_unseal_init(Manager *m, VmkUnsealFlags flags, VmkUnseal *ret);
int vmk_unseal_run(VmkUnseal *u);
int manager_vmk_unsealed(Manager *m, VmkUnseal *u);
void vmk_unseal_done(VmkUnseal *u);

/* Brackets a pass over many volumes; passes nest. */
void manager_pass_begin(Manager *m);
void manager_pass_end(Manager *m);
/* -ECOMM: a required escrow failed, *ret_error says where and why; nothing was provisioned. */
/* How a provisioning's caller is answered: r, the new volume (or the one an interrupted provisioning
 * left, now registered) when r >= 0, and why a required escrow refused it (r == -ECOMM). */
typedef void (*ProvisionReply)(Manager *m, sd_bus_message *request, const char *device, int r, ManagedVolume *v,
                               const char *why);
/* The VMK a call needs when the daemon holds none yet: made (the server's first, with its server
 * recovery password: the SRK, the seal, a KDF and its escrow) or unsealed, as a manager-wide operation
 * that runs alone ("prepare-vmk"); then is called on the loop with its result (0: the daemon holds the
 * VMK) and request, and data is freed with free_data after it, or at once when it cannot start. */
typedef void (*VmkPreparedFn)(Manager *m, sd_bus_message *request, int r, void *data);
int manager_vmk_prepare_start(Manager *m, sd_bus_message *request, VmkPreparedFn then, void *data,
                              void (*free_data)(void *data));
/* The same for a VMK that must exist already (sealed): never made. */
int manager_vmk_unseal_start(Manager *m, sd_bus_message *request, VmkPreparedFn then, void *data,
                             void (*free_data)(void *data));
/* Provisions device as an operation ("provision": shared, Operation.shared), answered by reply; -EALREADY
 * if that device is being provisioned already. */
int manager_provision_start(Manager *m, sd_bus_message *request, const char *device, ProvisionReply reply);
/* Whether device (by any of its names) is being provisioned now. */
bool manager_provisioning(Manager *m, const char *device);
/* An unlock pass's result for v, applied on the loop: its state, what its token says, the follow-ups
 * of an opening (a token upgrade, the server recovery password's copy), the RecoveryRequired signal. */
void manager_unlock_apply(Manager *m, ManagedVolume *v, const VolumeOpenItem *it);

/* sealvold-unlock.c: the one unlock path, for the boot, a hot-plugged disk, Unlock and UnlockAll and
 * what opens every volume after a recovery. A pass is a shared manager-wide operation ("unlock"): the
 * VMK unsealed once if the daemon lacks it, then every wanted volume loaded and opened on a worker per
 * core; the results applied on the loop, then what follows an unlock (a rotation to finish or due,
 * used passwords replaced, in-place jobs resumed, escrow). A request made while a pass runs is served
 * by the next one, which starts when this one ends. done (NULL: no one waits) is called once the pass
 * that serves the request has been applied, with the request and only as given; data is freed with
 * free_data after it (on failure it stays the caller's). */
typedef void (*UnlockDoneFn)(Manager *m, UnlockWaiter *w);
struct UnlockWaiter {
        unsigned pass;
        bool after_rotation; /* answered once the VMK rotation its pass started is done too */
        sd_bus_message *request;
        ManagedVolume *only;
        UnlockDoneFn done;
        void *data;
        void (*free_data)(void *data);
};
int manager_unlock_start(Manager *m, UnlockScope scope, ManagedVolume *only, sd_bus_message *request,
                         UnlockDoneFn done, void *data, void (*free_data)(void *data));
/* The same for an unlock with a server-scoped secret: answered once the VMK rotation that the pass's end
 * starts is done too, and the replacement of the disk passwords used before it, so that what the
 * caller is told (every secret that was used is replaced) holds. */
int manager_unlock_start_rotated(Manager *m, ManagedVolume *only, sd_bus_message *request, UnlockDoneFn done,
                                 void *data, void (*free_data)(void *data));
/* Answers those, once the rotation is done (or failed). */
void manager_unlock_answer_rotated(Manager *m);
/* After any operation's end: a pass that waited for it starts. */
void manager_unlock_continue(Manager *m);
/* A pass runs, or one is wanted. */
bool manager_unlock_pending(Manager *m);
void manager_unlock_waiters_free(Manager *m);
/* v is removed: those waiting for it alone are answered NoSuchVolume. */
void manager_unlock_forget(Manager *m, ManagedVolume *v);
/* Volumes open (or verified) and the others, as UnlockAll answers. */
void manager_unlock_counts(Manager *m, unsigned *ret_opened, unsigned *ret_failed);
int manager_lock(Manager *m, ManagedVolume *v);
/* The recovery unlock, whose KDFs run as an operation: the worker calls volume_open_recovery() on the
 * volume manager_refresh_volume() loaded (with v's mapped name when device-mapper is there, else
 * NULL: verify only), and tries a password the disk refuses as the server recovery password (whose
 * VMK manager_unlock_server_vmk() then takes). This applies the disk's result r on the loop: an
 * opened volume gets its state, and its used password is to be replaced: 1 when the daemon holds the
 * VMK (the caller starts the rotate-recovery operation), 0 when it is noted for later. -ENOKEY no
 * recovery keyslot, else r. */
int manager_recover_finish(Manager *m, ManagedVolume *v, Volume *vol, int r);
int manager_read_recovery_password(Manager *m, ManagedVolume *v, char **ret_password);
/* A recovery password's replacement, as an operation ("rotate-recovery"): the snapshot (the volume as
 * loaded, a copy of the VMK, the escrow environment) on the loop, the new keyslot's KDF and the escrow
 * on a worker, the result applied on the loop: -ECOMM when a required escrow failed (*ret_error says
 * which and why), and the old password stays. */
typedef struct RecoveryRotation {
        Volume *vol;
        uint8_t *vmk; /* secure memory */
        Guid vmk_id;
        uint32_t iterations;
        EscrowEnv env;
        EscrowContext escrow;
        char *password; /* the new one, secure memory */
} RecoveryRotation;
RecoveryRotation *recovery_rotation_free(RecoveryRotation *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(RecoveryRotation *, recovery_rotation_free);
/* Starts it on v (busy until its end): done gets o->data as the RecoveryRotation, for
 * manager_rotate_recovery_finish(). */
int manager_rotate_recovery_start(Manager *m, ManagedVolume *v, sd_bus_message *request, OperationDoneFn done);
int manager_rotate_recovery_finish(Manager *m, ManagedVolume *v, RecoveryRotation *d, int r,
                                   Guid *ret_new_key_id, char **ret_error);
/* Crypto-erases v's device (volume_crypto_erase()), retires its escrow records, keeps a record of
 * what was done in <state>/erased/<uuid>.json, and forgets v (registry, bus object): the operation
 * "erase"; done gets the record, or why it failed (the volume is forgotten once its header is
 * gone). -EBUSY while it is mapped, being encrypted in place or changed otherwise. */
typedef void (*ErasedFn)(Manager *m, sd_bus_message *request, const char *uuid, int result, const char *record);
int manager_erase_start(Manager *m, ManagedVolume *v, uid_t caller, sd_bus_message *request, ErasedFn done);
/* Replaces the recovery passwords used while the TPM refused the VMK (noted across restarts), now
 * that the daemon holds a VMK the TPM opens: a rotate-recovery operation for each idle volume. */
void manager_rotate_used_passwords(Manager *m);
/* Seals the VMK the daemon holds to the current values of bank/mask (0: the configuration's), as a
 * manager-wide operation that runs alone ("reseal": the TPM's work on a worker); done is called on
 * the loop with the result and request, once the sealed state is the daemon's and the passwords used
 * while the TPM refused the VMK are being replaced (rotate-recovery operations of their volumes).
 * -ENOPKG without a VMK, pcr_floor_check()'s error below the PCR floor: nothing started. */
typedef void (*ResealedFn)(Manager *m, sd_bus_message *request, int result);
int manager_reseal_start(Manager *m, sd_bus_message *request, TPMI_ALG_HASH bank, uint32_t mask, ResealedFn done);
/* The DRA certificate in force: the one set over the bus (state directory), else the configured one.
 * -ENOENT when there is none. */
int manager_load_dra_cert(Manager *m, X509 **ret);
/* Checks the certificate in data (on the loop: -EKEYREJECTED with *ret_reason saying why), keeps it,
 * and re-wraps every volume's DRA protector to it (needs the VMK) and the VMK export, as a
 * manager-wide operation that runs alone ("set-dra": the volumes busy meanwhile); done is called on
 * the loop with the result, how many volumes were re-wrapped and detail (taken at the start, for the
 * audit record). A volume whose disk is missing is re-wrapped when it is back. */
typedef void (*DraSetFn)(Manager *m, sd_bus_message *request, int result, unsigned rewrapped, const char *detail);
int manager_set_dra_start(Manager *m, sd_bus_message *request, const void *data, size_t size, DraSetFn done,
                          char **detail, char **ret_reason);
/* A DRA change that did not finish (the daemon was killed after writing the certificate) is finished
 * with the VMK at hand: every volume not wrapped to the certificate in force, and a VMK export wrapped
 * to another one (or none), follow it. */
void manager_finish_dra(Manager *m);
/* The VMK wrapped to the DRA certificate, also kept in the state directory (vmk-export.json). */
int manager_export_vmk(Manager *m, char **ret_json);
/* After a new export was written (by manager_export_vmk(), or an operation): it goes to escrow. */
void manager_vmk_exported(Manager *m);
/* Makes vmk (from a recovery password or the DRA export; what: which, for the log) the daemon's VMK if it
 * is the one the sealed state names: -EKEYREJECTED otherwise (a planted volume or export would have
 * the daemon adopt another key), -ENOPKG when there is no sealed state to check it against. Consumes
 * vmk. */
int manager_accept_vmk(Manager *m, uint8_t *vmk, const Guid *vmk_id, const char *what);
/* sealvold-tpm-replace.c: the operator's replacement of the TPM (or of the main board, or a cleared
 * storage hierarchy). The bus handler proves a server-scoped secret (the DRA key opening the VMK
 * export: manager_replace_tpm_prove_dra(); the server recovery password: manager_take_server_vmk())
 * and notes its use; then the VMK the daemon holds is sealed, as an operation, to the TPM there now,
 * its SRK pinned anew. With [TPM] EKCertificateCA=, a TPM whose EK certificate does not hold is
 * refused first: -EKEYREVOKED, why in reason, nothing sealed. */
typedef struct TpmReplacement {
        /* the snapshot it seals from */
        char *tcti, *ek_ca, *vmk_path;
        uint8_t *vmk; /* secure memory */
        Guid vmk_id;
        uint8_t *previous_vmk; /* a rotation's, while volumes still need it (secure memory), or NULL */
        Guid previous_vmk_id;
        TPMI_ALG_HASH bank;
        uint32_t pcr_mask;
        /* what it found and did */
        bool have_old;
        VmkBlob old, blob;
        TpmIdentity ek; /* with ek_ca: the TPM's certified EK, and the SRK it vouched for */
        TpmStatus tpm;  /* the new TPM's identity and dictionary-attack state */
        char *reason;   /* why the TPM was refused */
} TpmReplacement;

TpmReplacement *tpm_replacement_free(TpmReplacement *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(TpmReplacement *, tpm_replacement_free);
/* The snapshot of the VMK the daemon holds (-ENOKEY: none) and of the configuration. */
int manager_tpm_replacement_new(Manager *m, TpmReplacement **ret);
/* On a worker: checks the TPM (with ek_ca) and seals. */
int tpm_replacement_seal(TpmReplacement *t);
/* On the loop: the sealed state in force, the record written (JSON in *ret_record), the used recovery
 * passwords rotated. The VMK's rotation is the caller's. */
int manager_tpm_replaced(Manager *m, TpmReplacement *t, const char *credential, char **ret_record);
/* The VMK from the server's export opened with the DRA private key, checked against the sealed state
 * and made the daemon's, its use noted. -ENOKEY: no export; -EKEYREJECTED: the key does not open it,
 * or it holds another VMK. */
int manager_replace_tpm_prove_dra(Manager *m, EVP_PKEY *key);
/* What identifies a TPM the VMK is sealed to (tpm-identity.json); ek: NULL when not checked. */
json_object *tpm_identity_json(const TPM2B_NAME *srk, const Tpm2Info *info, const TpmIdentity *ek);
void tpm_identity_write(Manager *m, json_object *identity);
/* Opens v with the DRA private key; with the same key, recovers the VMK from the server's export if
 * the daemon lacks it (TPM or board replaced): then 1, and the caller opens every other volume with it
 * (manager_unlock_start()). */
int manager_unlock_dra(Manager *m, ManagedVolume *v, EVP_PKEY *key);

/* sealvold-vmk.c: the server recovery password. Loaded at start; made (and kept) for the VMK the daemon
 * holds when there is none for it. */
int manager_load_server_recovery(Manager *m);
int manager_ensure_server_recovery(Manager *m);
/* Its parts: the KDF, written to path, escrowed with env (outcomes in errors), on a worker or the
 * loop; then, on the loop, s (taken) the server's. */
uint32_t manager_server_recovery_iterations(Manager *m);
int server_recovery_make(const uint8_t *vmk, const Guid *vmk_id, uint32_t iterations, const EscrowEnv *env,
                         const char *path, ServerRecovery *ret, char *errors[static _ESCROW_TARGET_MAX]);
void manager_server_recovery_made(Manager *m, ServerRecovery *s, char *errors[static _ESCROW_TARGET_MAX]);
int manager_read_server_recovery_password(Manager *m, char **ret_password, Guid *ret_key_id);
/* Makes the daemon hold a VMK an operation unwrapped from a snapshot of the server recovery password's
 * record (vmk_id: the record's), checked against the sealed state by manager_accept_vmk(), or against
 * the VMK it holds already: -EKEYREJECTED (also after a rotation since). Consumes vmk. Nothing is noted
 * as used: the caller does that once it acted. */
int manager_take_server_vmk(Manager *m, uint8_t *vmk, const Guid *vmk_id);
/* The server recovery: manager_take_server_vmk() and its use noted; the caller then opens every volume
 * (manager_unlock_start()), whose pass ends with the VMK's rotation. */
int manager_unlock_server_vmk(Manager *m, uint8_t *vmk, const Guid *vmk_id);
void manager_note_server_secret_used(Manager *m, const char *what);
/* The VMK's rotation (docs/sealed-vmk.md): a new VMK and server recovery password (escrowed first: a
 * required target that fails refuses the rotation, -ECOMM with why), both VMKs sealed in one object,
 * every volume re-bound (journalled in its token), a new DRA export, and the previous VMK dropped once
 * no registered volume needs it. A volume absent now is re-bound when it appears.
 *
 * It runs as a manager-wide operation ("rotate-vmk", alone): the snapshot (the VMK in force, where and
 * to what it is sealed, the escrow environment) is taken on the loop; the new VMK, its server recovery
 * password's KDF, that password's escrow and the seal of both VMKs run on a worker; the swap and the
 * re-binding are applied on the loop, and then done (NULL: nobody waits) is called with the result and
 * request. Starting fails with -EBUSY while a manager-wide operation runs or a rotation under way still
 * waits for a volume, -ENOPKG without the VMK. */
typedef void (*VmkRotatedFn)(Manager *m, sd_bus_message *request, int result, const char *why);
int manager_rotate_vmk_start(Manager *m, sd_bus_message *request, VmkRotatedFn done);
/* Re-binds the volumes still on the previous VMK (an operation, "rebind-vmk", alone: each volume
 * authenticated with the previous VMK and bound to the current one, the DRA export following, and when
 * no volume is left on it the VMK sealed alone, all on a worker); drops it once none is left. 0 when
 * there is nothing to re-bind; -EBUSY while an operation runs, or one has started now. */
int manager_finish_rotation(Manager *m);
/* At start: a rotation killed between its new server recovery password and its seal. */
void manager_rotation_recover(Manager *m);
/* Rotates if a server-scoped secret was used (or a version 1 token showed the VMK) since the last one. */
void manager_rotate_if_due(Manager *m);
/* sealvold-escrow.c: the server recovery password to every configured target of env (a snapshot: on a
 * worker or the loop), the outcomes recorded in s and errors. -ECOMM when a required target failed. */
int escrow_server_recovery(const EscrowEnv *env, ServerRecovery *s, const char *password,
                           char *errors[static _ESCROW_TARGET_MAX]);
/* On the loop: errors (taken) are what status shows of the escrow of the password in force. */
void manager_server_escrow_outcome(Manager *m, char *errors[static _ESCROW_TARGET_MAX]);

/* The registry and the list of volumes (sealvold-manager.c), for the boot's discovery. */

/* sealvold-boot.c: finds this server's volumes (registry and block devices), opens them, waits a
 * bounded time for missing registered disks, then sends READY=1; opens hot-plugged disks later. */
int manager_boot(Manager *m, bool unlock);
/* After an unlock pass: READY=1 once the boot's pass and any that followed it are done and no disk the
 * boot waits for is missing. */
void manager_boot_check_ready(Manager *m);
/* The BootState property: "unlocking" (the boot's pass runs), "waiting" (for disks not there yet),
 * "ready" (READY=1 was sent). */
const char *manager_boot_state(Manager *m);
/* Forgets the refused devices (at exit). */
void manager_refused_clear(Manager *m);

/* sealvold-tpm.c: the TPM properties, cached. At start (after the boot's unlock): the TPM's identity
 * and dictionary-attack state from one connection, the sealed selection, and a watch that reads it
 * again whenever vmk.sealed is replaced. */
void manager_tpm_start(Manager *m);
/* Asks the TPM through c (NULL: a connection of its own) for its identity, the first time it
 * answers, and for its dictionary-attack state; emits what changed. */
void manager_tpm_refresh(Manager *m, Tpm2Context *c);
/* The two halves of that: asks the TPM through c into s (its identity only when s has none), on any
 * thread; makes s what the bus shows, on the loop. */
void tpm_status_read(Tpm2Context *c, TpmStatus *s);
void manager_tpm_apply(Manager *m, const TpmStatus *s);
/* The sealed selection from b (a blob just sealed or unsealed) or, with NULL, from vmk.sealed; emits
 * SealedPCRs when it changed, and warns of a blob sealed below the PCR floor. */
void manager_sealed_refresh(Manager *m, const VmkBlob *b);

/* sealvold-escrow.c */
int manager_escrow_env(Manager *m, EscrowEnv *ret);
/* Where the escrow helper is (Manager.escrow_socket_path, .escrow_helper_path), at start. */
int manager_find_escrow_helper(Manager *m);
void escrow_env_done(EscrowEnv *e);
/* "target: why" of the first required target that failed, malloc'd; NULL if none did. */
char *escrow_required_failure(const Config *c, char *const errors[static _ESCROW_TARGET_MAX]);
/* A VolumeEscrowFn: userdata is an EscrowContext. -ECOMM when a required target failed. */
int escrow_callback(Volume *vol, Protector *p, const char *password, void *userdata);
/* What an escrow pass asked for over the bus did: passwords and exports escrowed and failed, and
 * for a single volume (only) its result (-ECOMM: a target failed, volume_failed says which, 1 <<
 * EscrowTarget). */
typedef struct EscrowPassResult {
        unsigned done, failed;
        int volume_result;
        uint32_t volume_failed;
} EscrowPassResult;
typedef void (*EscrowPassReply)(Manager *m, sd_bus_message *request, ManagedVolume *only, const EscrowPassResult *r);
/* Starts an escrow pass (a background operation): for request (answered through reply when it is
 * done) every current password (all) or only's, to every configured target, and the server's secrets
 * with all; without a request what is due (the retries). While a pass is under way a request waits
 * for it, and the retries are run again at its end. */
int manager_escrow_start(Manager *m, sd_bus_message *request, ManagedVolume *only, bool all, EscrowPassReply reply);
/* At exit: the waiting calls are dropped (the bus is going away). */
void manager_escrow_queue_free(Manager *m);
/* Whether records of target t go out encrypted to the DRA certificate (have_dra: there is one): the
 * spool's with one, the hook's unless [Escrow] HookPlaintext=yes, never AD's (its access control). */
bool escrow_target_encrypted(const Config *c, EscrowTarget t, bool have_dra);
/* With cert in force: the current passwords go again to the targets that now encrypt them (after a
 * change of the DRA, changed; at a start, only where the spool's record is still plain), and every plain
 * record in the spool is encrypted to cert and removed (escrow_spool_encrypt_plain()). */
void manager_escrow_follow_dra(Manager *m, X509 *cert, bool changed);
int manager_load_vmk_escrow(Manager *m);
/* vmk-export.json: its text, the VMK's id, the fingerprint of the DRA certificate it is wrapped to
 * (each may be NULL). -ENOENT without an export, -EBADMSG for a damaged one. */
int manager_read_vmk_export(Manager *m, char **ret_json, Guid *ret_id, uint8_t ret_fingerprint[DRA_FINGERPRINT_SIZE]);
/* After a crypto-erase: spool records move to retired/, the hook is told ("retire"), AD keeps its
 * objects. *ret_summary says what happened, per target. */
int manager_escrow_retire(Manager *m, const VolumeEraseRecord *rec, char **ret_summary);
/* The same from env, on an operation's worker (the hook is told through the helper: it blocks). */
int escrow_retire(const EscrowEnv *env, const VolumeEraseRecord *rec, char **ret_summary);
/* Retries what is due and arms the timer for the rest. */
void manager_escrow_retry(Manager *m);

/* sealvold-inplace.c */
/* Checks device (refusals answer at once) and starts encrypting it in place on a thread; request is
 * answered (volume, recovery Key ID) once the device is a sealvol volume, or with the error. */
int manager_provision_in_place(Manager *m, const char *device, bool paused, sd_bus_message *request,
                               char **ret_what);
int manager_pause_encryption(Manager *m, ManagedVolume *v);
int manager_resume_encryption(Manager *m, ManagedVolume *v);
/* Undoes v's in-place encryption, which must have encrypted nothing yet ("cancel-encryption", an
 * operation: request is answered when it is done): the device holds its file system again, the
 * volume is forgotten and its escrow records retired. -EBUSY while its job runs or another change
 * is under way, -ENOENT when it is not being encrypted. */
int manager_cancel_encryption(Manager *m, ManagedVolume *v, sd_bus_message *request);
/* Resumes every unfinished in-place encryption this server has notes of (needs the VMK), and
 * finishes the cancellations a crash interrupted. */
void manager_resume_in_place(Manager *m);
/* Pauses every job and waits for it (at exit). */
void manager_stop_jobs(Manager *m);
/* The recovery password of a volume whose header is busy with its in-place encryption (started by
 * this daemon): -ENOENT no job, -EBUSY not known (a resumed job). */
int volume_encryption_password(const ManagedVolume *v, char **ret);
int volume_encryption_progress(const ManagedVolume *v, uint64_t *ret_done, uint64_t *ret_total, uint64_t *ret_rate,
                               uint64_t *ret_eta);

/* The bus objects: sealvold-bus.c (their setup), sealvold-volume-bus.c (the signals of a volume's). */
int manager_bus_setup(Manager *m);
int volume_bus_emit_changed(ManagedVolume *v);
int volume_bus_emit_added(ManagedVolume *v);
int volume_bus_emit_removed(ManagedVolume *v);

/* sealvold-polkit.c: 1 authorised, 0 pending (the message is dispatched again when polkit answers),
 * -EACCES denied. Root passes without polkit; no polkit on the bus means denied. */
int polkit_check(Manager *m, sd_bus_message *message, const char *action, sd_bus_error *error);
/* A verdict of yes for message's next pass through polkit_check(action): a call that runs again for
 * another reason than polkit (it waited for the VMK) is not asked about twice. polkit_forget() drops
 * it when the call is answered instead. */
int polkit_keep(Manager *m, sd_bus_message *message, const char *action);
void polkit_forget(Manager *m, sd_bus_message *message);
void polkit_queries_free(Manager *m);

/* sealvold-audit.c: one structured record per sensitive operation; never a secret. */
void audit_record(sd_bus_message *message, const char *operation, const ManagedVolume *v, int result,
                  const char *detail);
