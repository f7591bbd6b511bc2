/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-core.h: the daemon's core: its state (the configuration, the server's VMK once unsealed,
 * the volumes of this server) and the registry. The core calls nothing above it (no operation, no
 * bus, no unlock pass, no polkit: tests/layout/check-include-graph.py checks its #include lines):
 * what the layers above must learn of a change reaches them through the hooks they set
 * (ManagerHooks). The rest of the daemon sees it through sealvold.h.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-device.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "dra.h"
#include "escrow.h"
#include "escrow-helper.h"
#include "server-recovery.h"
#include "tpm-identity.h"
#include "guid.h"
#include "vmk.h"
#include "volume.h"

#define SEALVOL_BUS_NAME "org.sealvol1"
#define SEALVOL_MANAGER_PATH "/org/sealvol1"
#define SEALVOL_VOLUME_PATH_PREFIX "/org/sealvol1/volume"
#define SEALVOL_MANAGER_INTERFACE "org.sealvol1.Manager"
#define SEALVOL_VOLUME_INTERFACE "org.sealvol1.Volume"
#define MANAGED_VOLUMES_MAX 1024u
#define DEVICE_PATH_MAX 4096u
#define POLKIT_QUERIES_MAX 256u
#define INPLACE_JOBS_MAX 16u
#define REFUSED_DEVICES_MAX 64u

typedef enum VolumeState {
        VOLUME_LOCKED,
        VOLUME_UNLOCKED,          /* mapped through device-mapper */
        VOLUME_VERIFIED,          /* every key checked; not mapped (no device-mapper here) */
        VOLUME_RECOVERY_REQUIRED, /* the TPM path failed: a person must recover it */
        VOLUME_UNAVAILABLE,       /* the device is missing or its header unreadable */
        VOLUME_BUSY,              /* being encrypted in place: nothing else touches its header */
        VOLUME_TAMPERED,          /* its token fails its MAC, or a keyslot is not one sealvol wrote: unused */
        _VOLUME_STATE_MAX,
} VolumeState;

const char *volume_state_to_string(VolumeState s);

typedef struct Manager Manager;
typedef struct InPlaceJob InPlaceJob;
typedef struct Operation Operation;
typedef struct UnlockWaiter UnlockWaiter;

/* What an unlock pass is asked to open (sealvold-unlock.c). */
typedef enum UnlockScope {
        UNLOCK_ONE,  /* only */
        UNLOCK_ALL,  /* every volume, the missing ones looked for again */
        UNLOCK_BOOT, /* every volume whose disk is there, and what the start finishes with the VMK */
} UnlockScope;

typedef struct ManagedVolume {
        Manager *manager;
        char uuid[VOLUME_UUID_STRING_MAX];
        char *device;
        char *object_path;
        char *mapped_name;
        VolumeState state;
        char *state_reason;
        /* From the token, refreshed on every load: what status shows without any key. */
        Guid vmk_id;
        Guid key_ids[_PROTECTOR_TYPE_MAX];
        bool has[_PROTECTOR_TYPE_MAX];
        uint8_t dra_fingerprint[32];
        /* Targets its current password goes to again at the next escrow pass, done or not (the DRA
         * certificate changed). */
        uint32_t escrow_force;
        /* Its recovery password was used while the TPM refused the VMK: replaced after the reseal,
         * when the new one can be read back with a VMK the TPM opens again. */
        bool rotate_after_reseal;
        bool rebind_failed; /* its binding to a rotated VMK failed: tried again when it appears, or at the
                             * next start */
        /* Escrow of the current recovery password: the token's records, the reason of each target's
         * last failure, and when the next retry is due (CLOCK_MONOTONIC, with backoff). */
        EscrowRecord escrow[ESCROW_RECORDS_MAX];
        size_t n_escrow;
        char *escrow_error[_ESCROW_TARGET_MAX];
        unsigned escrow_attempts;
        uint64_t escrow_due_usec;
        /* In-place encryption: the running job, and what to show ("encrypting", "paused",
         * "failed: ..."; NULL when there is none). */
        InPlaceJob *job;
        /* The operation running on it (sealvold-operation.c), or NULL: while it runs the volume is
         * busy for every other change. */
        Operation *operation;
        /* The next unlock pass opens it (again: checks it again even if it is open); the last pass's
         * result for it. */
        bool unlock_wanted, unlock_again;
        int unlock_result;
        char *encryption;
        uint64_t encryption_done, encryption_total;
} ManagedVolume;

static inline bool volume_is_open(const ManagedVolume *v) {
        return v->state == VOLUME_UNLOCKED || v->state == VOLUME_VERIFIED;
}

typedef struct PolkitQuery PolkitQuery;

/* A block device that carries the UUID of a volume of this server and is not taken for it
 * (sealvold-boot.c): never opened, never registered, listed on the bus until it is unplugged. */
typedef struct RefusedDevice {
        char *device;
        char uuid[VOLUME_UUID_STRING_MAX];
        char *reason;
} RefusedDevice;

/* The TPM as the daemon last saw it (sealvold-tpm.c): its identity, asked once, and its
 * dictionary-attack state, asked at start and whenever the daemon talks to it anyway. */
typedef struct TpmStatus {
        bool present; /* it answered: info is its identity */
        Tpm2Info info;
        uint32_t lockout_counter, lockout_max;
        bool in_lockout;
} TpmStatus;

/* What sending a record needs, taken from the Manager on the loop (manager_escrow_env()): an
 * operation's worker or the in-place thread escrows from it and never reads the Manager. config,
 * hostname and machine_id point into the Manager, which does not change them after manager_new(). */
typedef struct EscrowEnv {
        const Config *config;
        const char *hostname, *machine_id;
        char *spool_dir;
        X509 *cert;    /* the DRA certificate in force, or NULL */
        int dra_error; /* why one that is set did not load (nothing then goes to the spool or the hook) */
        EscrowHelper helper; /* where the hook and AD jobs run (its strings are the Manager's) */
} EscrowEnv;
typedef struct EscrowContext {
        const EscrowEnv *env;
        char *errors[_ESCROW_TARGET_MAX];
} EscrowContext;

/* What the core tells the layers above it, which set these (NULL: nobody listens): the bus emits its
 * signals, the unlock pass answers those who waited for a volume that is gone. */
typedef struct ManagerHooks {
        void (*volume_added)(ManagedVolume *v);
        void (*volume_changed)(ManagedVolume *v);
        void (*volume_removed)(ManagedVolume *v);
        void (*volume_forgotten)(Manager *m, ManagedVolume *v);
} ManagerHooks;

struct Manager {
        ManagerHooks hooks;
        Config config;
        char *config_path;
        char *state_dir;
        char *vmk_path;
        char *volumes_dir;
        char *dra_cert_path;   /* <state>/dra.pem: the certificate set over the bus */
        char *vmk_export_path; /* <state>/vmk-export.json */
        /* The escrow helper (lib/escrow/escrow-helper.h): its unit's socket, used when it exists, and the
         * program beside sealvold run otherwise. */
        char *escrow_socket_path;
        char *escrow_helper_path;
        sd_event *event;
        sd_bus *bus;
        ManagedVolume **volumes;
        size_t n_volumes;
        /* The VMK, once unsealed (or recovered), in secure memory for the daemon's life: hot-plugged
         * volumes open without another TPM operation. */
        uint8_t *vmk;
        Guid vmk_id;
        /* While a VMK rotation re-binds the volumes, the VMK they are moving off (sealed beside the
         * new one until no volume needs it). */
        uint8_t *previous_vmk;
        Guid previous_vmk_id;
        /* The sealed state as last read or written (have_blob): which VMK this server's is, by its key
         * check value, and which SRK it is pinned to. Whatever VMK a recovery or the DRA export gives
         * is accepted only if it is this one. */
        VmkBlob blob;
        bool have_blob;
        /* The server recovery password of the VMK (<state>/server-recovery.json), and whether a
         * server-scoped secret was used since the VMK was last rotated (<state>/vmk-rotation-due). */
        char *server_recovery_path;
        ServerRecovery server_recovery;
        bool have_server_recovery;
        char *server_recovery_next_path; /* a rotation's, until its VMK is sealed */
        char *rotation_due_path;
        bool rotation_due;
        /* The rotation under way ("rotate-vmk"), or NULL; whether one that was due failed in this run
         * (it is tried again at the next start, or when asked: no loop of failing rotations). */
        Operation *vmk_rotation;
        bool rotation_failed;
        /* The used disk passwords' replacements under way (rotate-recovery operations it started). */
        unsigned used_rotations;
        /* The escrow of the server recovery password: the reason of each target's last failure, and
         * when the next retry is due. */
        char *server_escrow_error[_ESCROW_TARGET_MAX];
        unsigned server_escrow_attempts;
        uint64_t server_escrow_due_usec;
        uint32_t last_pcr_mismatch;
        /* What the bus shows of the TPM and of vmk.sealed (bank 0: no readable blob): property reads
         * never reach the TPM (sealvold-tpm.c). */
        TpmStatus tpm;
        TPMI_ALG_HASH sealed_bank;
        uint32_t sealed_mask;
        /* A pass over many volumes (the boot, UnlockAll) asks the TPM once: within it, a failed
         * unseal is the answer for every volume (manager_pass_begin()). */
        unsigned pass_depth;
        int pass_unseal_error;
        PolkitQuery **polkit_queries;
        size_t n_polkit_queries;
        bool device_mapper;
        char hostname[VOLUME_HOSTNAME_MAX + 1];
        char *machine_id;
        sd_event_source *escrow_timer;
        /* The escrow of the VMK export (spool, hook), kept in vmk_escrow_path. */
        char *vmk_escrow_path;
        Guid vmk_escrow_id;
        EscrowRecord vmk_escrow[_ESCROW_TARGET_MAX];
        size_t n_vmk_escrow;
        char *vmk_escrow_error[_ESCROW_TARGET_MAX];
        unsigned vmk_escrow_attempts;
        uint64_t vmk_escrow_due_usec;
        /* What the next escrow pass sends again although it was sent (a DRA change, a new export). */
        uint32_t server_escrow_force, vmk_escrow_force;
        /* Bumped when what escrow sends changes under a pass: the DRA certificate the passwords are
         * encrypted to, the VMK export. A pass that started before clears none of the forces that
         * change set (what it sent is of before). */
        unsigned escrow_dra_generation, vmk_export_generation;
        /* An escrow pass is under way (the retries, EscrowAll, a volume's Escrow): one at a time; the
         * calls that came meanwhile wait for it, in order. */
        bool escrow_running;
        /* Written once at exit: escrow batches under way (the pass, an in-place start) are abandoned
         * rather than waited for (EscrowHelper.cancel_fd). */
        int stop_fd;
        struct EscrowQueued *escrow_queue;
        size_t n_escrow_queue;
        InPlaceJob **jobs;
        size_t n_jobs;
        Operation **operations;
        size_t n_operations;
        /* sealvold-bus.c: calls that need the VMK while the daemon holds none wait for its unseal
         * (bus_need_vmk()), then run again. */
        sd_bus_message **vmk_waiters;
        size_t n_vmk_waiters;
        bool vmk_unsealing;
        /* sealvold-unlock.c: the pass under way (NULL: none), how many have started, who waits. */
        Operation *unlock_operation;
        unsigned unlock_passes;
        UnlockWaiter *unlock_waiters;
        size_t n_unlock_waiters;
        /* The widest scope the next pass, and the one under way, serve: what follows them. */
        UnlockScope unlock_next_scope, unlock_scope;
        /* The boot (sealvold-boot.c): hot-plugged disks, the bounded wait for registered ones. */
        sd_device_monitor *device_monitor;
        sd_event_source *boot_timer;
        bool boot_ready;
        bool boot_unlocked;        /* the boot's unlock pass is done */
        bool name_acquired;        /* org.sealvol1 is ours */
        bool boot_escrow_started;  /* the first escrow retry of this start is under way or done */
        RefusedDevice refused[REFUSED_DEVICES_MAX];
        size_t n_refused;
};

/* sealvold-core.c: the volumes, the registry (one file per volume in <state>/volumes/, named by the
 * LUKS UUID and holding the device path: image files cannot be found by udev, and the list survives
 * reboots). */
ManagedVolume *manager_find_volume(Manager *m, const char *uuid);
/* Re-reads the header and the token: what the bus shows about a volume is what is on disk. -EBUSY
 * while it is being encrypted in place (its header is the job's alone). */
int manager_refresh_volume(ManagedVolume *v, Volume **ret);
/* Adds a volume to the registry and the bus without reading its device. */
int manager_register_volume(Manager *m, const char *uuid, const char *device, ManagedVolume **ret);
ManagedVolume *manager_find_volume_by_path(Manager *m, const char *path);
void managed_volume_update(ManagedVolume *v, const Volume *vol);
void volume_set_state(ManagedVolume *v, VolumeState state, const char *reason);
/* Drops v from the registry and the bus, and frees it. */
void manager_forget_volume(Manager *m, ManagedVolume *v);
int managed_volume_new(Manager *m, const char *uuid, const char *device, ManagedVolume **ret);
ManagedVolume *managed_volume_free(ManagedVolume *v);
DEFINE_TRIVIAL_CLEANUP_FUNC(ManagedVolume *, managed_volume_free);
int manager_add_volume(Manager *m, ManagedVolume *v);
int registry_add(Manager *m, const char *uuid, const char *device);
/* Frees each target's error string (ManagedVolume.escrow_error and the like). */
void escrow_errors_done(char *errors[static _ESCROW_TARGET_MAX]);
/* The VMK the daemon holds under id: the current one, or the previous one of a rotation under way. */
const uint8_t *manager_vmk_for(Manager *m, const Guid *id);
