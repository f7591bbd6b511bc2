/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold-boot.c: the boot's job (docs/boot.md). Find every volume of this server (the registry,
 * plus every LUKS2 block device whose sealvol token names this server's VMK), open them all from one
 * TPM unseal, wait a bounded time for registered disks that have not appeared yet, then tell systemd
 * READY=1. Afterwards, a disk of this server that appears (hot-plug) is opened when udev announces it.
 *
 * A volume that does not open never holds the boot up: it stays closed and is reported, with its Key
 * ID and the reason, on the console (stderr is journal+console in the unit), in the journal and on
 * the bus.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-device.h>

#include "fileio.h"
#include "log.h"
#include "sealvold.h"
#include "volume-probe.h"

/* The identity of this server's VMK: the one the daemon holds, else the one in the sealed file
 * (readable without the TPM). -ENOENT: no VMK yet, so no volume can be this server's. */
static int server_vmk_id(Manager *m, Guid *ret) {
        VmkBlob blob;
        int r;

        if (m->vmk) {
                *ret = m->vmk_id;
                return 0;
        }
        r = vmk_blob_read(m->vmk_path, &blob);
        if (r < 0)
                return r;
        *ret = blob.vmk_id;
        return 0;
}

/* dm-crypt mappings (ours and everybody's) show the plaintext: nothing to find there. Other
 * device-mapper devices (LVM, multipath) may well hold a volume. */
static bool is_crypt_mapping(sd_device *d) {
        const char *sysname = NULL, *uuid = NULL;

        if (sd_device_get_sysname(d, &sysname) < 0 || !sysname || strncmp(sysname, "dm-", 3) != 0)
                return false;
        return sd_device_get_sysattr_value(d, "dm/uuid", &uuid) >= 0 && uuid && strncmp(uuid, "CRYPT-", 6) == 0;
}

/* The registry may name a volume by a stable link (/dev/disk/by-id/...) where udev reports the node. */
static bool same_device(const char *a, const char *b) {
        struct stat sa, sb;

        if (streq(a, b))
                return true;
        if (stat(a, &sa) < 0 || stat(b, &sb) < 0)
                return false;
        return S_ISBLK(sa.st_mode) && S_ISBLK(sb.st_mode) && sa.st_rdev == sb.st_rdev;
}

static void report_foreign(Manager *m, const char *device, const VolumeToken *t) {
        char vmk[GUID_STRING_MAX], key_id[GUID_STRING_MAX], reason[512];

        guid_format(&t->vmk_id, vmk);
        guid_format(&t->protectors[PROTECTOR_RECOVERY].key_id, key_id);
        snprintf(reason, sizeof(reason), "it belongs to another server (VMK %s, host %s)", vmk,
                 isempty(t->hostname) ? "unknown" : t->hostname);
        log_warning("Volume %s on %s is not opened (recovery Key ID %s): %s.", t->volume_uuid, device, key_id,
                    reason);
        (void) sd_bus_emit_signal(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE, "RecoveryRequired", "osss",
                                  "/", t->volume_uuid, key_id, reason);
}

/* ---- which device holds a volume ------------------------------------------------------------------
 *
 * A volume is the device its registry entry names. Another device that carries the same LUKS UUID (a
 * dd copy, a disk planted with a copied header or a forged token) is refused and reported, never
 * opened or registered, while the registered device still holds the volume: the UUID is what a copy
 * copies. A volume follows its UUID to another device only when its registered path is gone
 * altogether (a controller renumbering vdb to vdc), that path is a kernel name (a registered
 * /dev/disk/... link names one disk and is never followed away from), the new device is the only
 * one that carries it, and it was not refused before; the move is logged as a warning. Anything else
 * waits for an operator (docs/boot.md, "Two devices, one UUID"). */

/* A block device seen carrying a volume of this server (its token names this server's VMK). */
typedef struct Sighting {
        char *device;
        char uuid[VOLUME_UUID_STRING_MAX];
        bool settled; /* udev has made its links (/dev/disk/by-id/...), or never will */
} Sighting;

typedef struct Sightings {
        Sighting *items;
        size_t n;
} Sightings;

static void sightings_done(Sightings *s) {
        for (size_t i = 0; i < s->n; i++)
                free(s->items[i].device);
        s->items = mfree(s->items);
        s->n = 0;
}

/* 1 with its UUID if device holds a volume of this server; 0 if it holds none (another server's is
 * reported when report is set); -errno if it cannot be read. */
static int probe_ours(Manager *m, const char *device, bool report,
                      char ret_uuid[static VOLUME_UUID_STRING_MAX]) {
        _cleanup_(volume_token_done) VolumeToken t = {};
        Guid ours;
        int r;

        r = volume_probe(device, &t);
        if (IN_SET(r, -EMEDIUMTYPE, -ENOMSG, -ENOMEDIUM, -ENXIO, -ENOENT))
                return 0;
        if (r < 0)
                return log_debug_errno(r, "%s: not a readable sealvol volume, ignoring: %m", device);
        if (server_vmk_id(m, &ours) < 0 || !guid_equal(&ours, &t.vmk_id)) {
                if (report)
                        report_foreign(m, device, &t);
                return 0;
        }
        snprintf(ret_uuid, VOLUME_UUID_STRING_MAX, "%s", t.volume_uuid);
        return 1;
}

/* Every block device that holds a volume of this server, read-only. */
static int sightings_collect(Manager *m, bool report, Sightings *ret) {
        _cleanup_(sd_device_enumerator_unrefp) sd_device_enumerator *e = NULL;
        _cleanup_(sightings_done) Sightings all = {};
        bool udev_running = access("/run/udev/control", F_OK) >= 0;
        int r;

        r = sd_device_enumerator_new(&e);
        if (r < 0)
                return r;
        r = sd_device_enumerator_add_match_subsystem(e, "block", /* match= */ true);
        if (r < 0)
                return r;
        /* Early in the boot udev has not processed every disk yet (and there is no udev in a
         * container): what sysfs lists is what counts. */
        r = sd_device_enumerator_allow_uninitialized(e);
        if (r < 0)
                return r;
        for (sd_device *d = sd_device_enumerator_get_device_first(e); d; d = sd_device_enumerator_get_device_next(e)) {
                char uuid[VOLUME_UUID_STRING_MAX];
                const char *devname = NULL;
                Sighting *a;

                if (sd_device_get_devname(d, &devname) < 0 || !devname || is_crypt_mapping(d) ||
                    probe_ours(m, devname, report, uuid) <= 0)
                        continue;
                a = realloc(all.items, (all.n + 1) * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                all.items = a;
                a[all.n].device = strdup(devname);
                if (!a[all.n].device)
                        return -ENOMEM;
                snprintf(a[all.n].uuid, sizeof(a[all.n].uuid), "%s", uuid);
                a[all.n].settled = !udev_running || sd_device_get_is_initialized(d) > 0;
                all.n++;
        }
        *ret = all;
        all = (Sightings) {};
        return 0;
}

/* Another device than device among all that carries uuid, or NULL. */
static const char *another_carrier(const Sightings *all, const char *uuid, const char *device) {
        for (size_t i = 0; i < all->n; i++)
                if (streq(all->items[i].uuid, uuid) && !same_device(all->items[i].device, device))
                        return all->items[i].device;
        return NULL;
}

static RefusedDevice *refused_find(Manager *m, const char *device) {
        for (size_t i = 0; i < m->n_refused; i++)
                if (same_device(m->refused[i].device, device))
                        return &m->refused[i];
        return NULL;
}

static void refused_emit(Manager *m) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH,
                                                      SEALVOL_MANAGER_INTERFACE, "RefusedDevices", NULL);
}

/* The device was unplugged, or is the volume's own registered device now. */
static void refused_forget(Manager *m, const char *device) {
        RefusedDevice *d = refused_find(m, device);

        if (!d)
                return;
        log_info("Device %s is no longer refused for volume %s.", d->device, d->uuid);
        free(d->device);
        free(d->reason);
        *d = m->refused[--m->n_refused];
        refused_emit(m);
}

void manager_refused_clear(Manager *m) {
        for (size_t i = 0; i < m->n_refused; i++) {
                free(m->refused[i].device);
                free(m->refused[i].reason);
        }
        m->n_refused = 0;
}

/* Refuses device for volume uuid: a warning on the console and in the journal, and an entry of the
 * manager's RefusedDevices, once per device and reason (a disk's change events do not flood the
 * journal). Returns 0: the device is not taken. */
_printf_(4, 5) static int refuse_device(Manager *m, const char *device, const char *uuid, const char *format,
                                        ...) {
        _cleanup_free_ char *reason = NULL, *copy = NULL;
        RefusedDevice *d = refused_find(m, device);
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&reason, format, ap);
        va_end(ap);
        if (r < 0)
                return log_oom();
        if (d && streq(d->uuid, uuid) && streq(d->reason, reason))
                return 0;
        log_warning("Device %s carries volume %s and is refused: %s. It is neither opened nor registered.",
                    device, uuid, reason);
        if (!d) {
                if (m->n_refused >= REFUSED_DEVICES_MAX)
                        return 0; /* said in the journal; the bus lists the first ones */
                copy = strdup(device);
                if (!copy)
                        return log_oom();
                d = &m->refused[m->n_refused++];
                *d = (RefusedDevice) { .device = TAKE_PTR(copy) };
        }
        free(d->reason);
        d->reason = TAKE_PTR(reason);
        snprintf(d->uuid, sizeof(d->uuid), "%s", uuid);
        refused_emit(m);
        return 0;
}

typedef enum Registered {
        REGISTERED_HOLDS, /* the registered device holds the volume (or it is open or busy there) */
        REGISTERED_OTHER, /* the registered path exists, holding something else (or unreadable) */
        REGISTERED_GONE,  /* no such path */
} Registered;

static Registered registered_device_state(ManagedVolume *v) {
        _cleanup_(volume_token_done) VolumeToken t = {};
        struct stat st;

        if (volume_is_open(v) || v->job)
                return REGISTERED_HOLDS;
        if (stat(v->device, &st) < 0)
                return IN_SET(errno, ENOENT, ENOTDIR) ? REGISTERED_GONE : REGISTERED_OTHER;
        if (volume_probe(v->device, &t) >= 0 && streq(t.volume_uuid, v->uuid))
                return REGISTERED_HOLDS;
        return REGISTERED_OTHER;
}

/* A name that an administrator chose because it names one disk, whatever the kernel calls it. */
static bool path_is_stable(const char *path) {
        return strncmp(path, "/dev/disk/", 10) == 0;
}

/* device carries volume uuid of this server: makes sure the daemon knows it there (registry
 * included) and returns it in *ret, unless the device is refused (above): then 0 and *ret = NULL.
 * all: every device seen carrying a volume of this server (the boot's scan), or NULL to look.
 * settled: udev has made the device's links, so a registered /dev/disk/ link that does not name it
 * never will (false early in the boot: its udev event decides). */
static int consider_device(Manager *m, const char *device, const char *uuid, bool settled,
                           const Sightings *all, ManagedVolume **ret) {
        _cleanup_(sightings_done) Sightings own = {};
        ManagedVolume *v = manager_find_volume(m, uuid);
        const char *other;
        int r;

        *ret = NULL;
        if (v && same_device(v->device, device)) {
                refused_forget(m, device);
                *ret = v;
                return 0;
        }
        if (v)
                switch (registered_device_state(v)) {
                case REGISTERED_HOLDS:
                        return refuse_device(m, device, uuid,
                                             "its registered device %s still holds it (this is a copy, or a "
                                             "disk planted with its header)", v->device);
                case REGISTERED_OTHER:
                        return refuse_device(m, device, uuid,
                                             "its registered device %s is there but holds something else: "
                                             "the volume is not moved without an operator", v->device);
                case REGISTERED_GONE:
                        if (path_is_stable(v->device) && !settled) {
                                log_debug("%s carries volume %s, whose %s udev has not made yet: its event "
                                          "decides.", device, uuid, v->device);
                                return 0;
                        }
                        if (path_is_stable(v->device))
                                return refuse_device(m, device, uuid,
                                                     "its registered device %s is gone, and a stable name "
                                                     "is never followed to another disk", v->device);
                        break;
                }

        /* Once refused, refused until it is unplugged, whatever it carries meanwhile: a copy plugged
         * in next to the disk is not taken when the disk is then pulled. */
        if (refused_find(m, device))
                return 0;
        if (!all) {
                r = sightings_collect(m, /* report= */ false, &own);
                if (r < 0)
                        return log_warning_errno(r, "Failed to look for other devices carrying volume %s, "
                                                    "not taking %s: %m", uuid, device);
                all = &own;
        }
        other = another_carrier(all, uuid, device);
        if (other) {
                _cleanup_free_ char *o = strdup(other);

                if (!o)
                        return log_oom();
                (void) refuse_device(m, o, uuid, "%s carries it too: neither is taken", device);
                return refuse_device(m, device, uuid, "%s carries it too: neither is taken", o);
        }

        if (v) {
                /* Disk names are not stable (vdb today, vdc after a controller change): the UUID is,
                 * and here nothing else claims it. Loudly: a byte-for-byte copy looks the same. */
                char *copy = strdup(device);

                if (!copy)
                        return log_oom();
                log_warning("Volume %s moved to %s: its registered device %s is gone and no other device "
                            "carries it. If %s is not that disk, remove it and restore the registry "
                            "(docs/boot.md).", v->uuid, device, v->device, device);
                free(v->device);
                v->device = copy;
                if (m->bus)
                        (void) sd_bus_emit_properties_changed(m->bus, v->object_path,
                                                              SEALVOL_VOLUME_INTERFACE, "Device", NULL);
        } else {
                _cleanup_(managed_volume_freep) ManagedVolume *n = NULL;

                r = managed_volume_new(m, uuid, device, &n);
                if (r < 0)
                        return log_error_errno(r, "Failed to track volume %s: %m", uuid);
                r = manager_add_volume(m, n);
                if (r < 0)
                        return log_error_errno(r, "Failed to track volume %s: %m", uuid);
                v = TAKE_PTR(n);
                log_info("Found volume %s of this server on %s.", v->uuid, device);
        }
        r = registry_add(m, v->uuid, device);
        if (r < 0)
                log_warning_errno(r, "Failed to record volume %s in the registry, ignoring: %m", v->uuid);
        (void) manager_refresh_volume(v, NULL);
        *ret = v;
        return 0;
}

static int manager_scan(Manager *m) {
        _cleanup_(sightings_done) Sightings all = {};
        int r;

        /* Everything first, then each: whether a device is the only one to carry a volume is known
         * whatever the order the kernel lists them in. */
        r = sightings_collect(m, /* report= */ true, &all);
        if (r < 0)
                return r;
        for (size_t i = 0; i < all.n; i++) {
                ManagedVolume *v;

                (void) consider_device(m, all.items[i].device, all.items[i].uuid, all.items[i].settled, &all,
                                       &v);
        }
        return 0;
}

static unsigned count_state(Manager *m, VolumeState s) {
        unsigned n = 0;

        for (size_t i = 0; i < m->n_volumes; i++)
                n += m->volumes[i]->state == s;
        return n;
}

static int on_boot_escrow(sd_event_source *s, void *userdata) {
        (void) s;
        manager_escrow_retry(userdata);
        return 0;
}

void manager_escrow_after_boot(Manager *m) {
        int r;

        if (!m->boot_ready || !m->name_acquired || m->boot_escrow_started)
                return;
        m->boot_escrow_started = true;
        /* From the event loop, after what is pending now (the name's reply, READY=1's callers). */
        r = sd_event_add_defer(m->event, NULL, on_boot_escrow, m);
        if (r < 0)
                log_warning_errno(r, "Failed to schedule the escrow retry, ignoring: %m");
}

const char *manager_boot_state(Manager *m) {
        return m->boot_ready ? "ready" : m->boot_unlocked ? "waiting" : "unlocking";
}

static void boot_state_changed(Manager *m) {
        if (m->bus)
                (void) sd_bus_emit_properties_changed(m->bus, SEALVOL_MANAGER_PATH, SEALVOL_MANAGER_INTERFACE,
                                                      "BootState", NULL);
}

static void boot_ready(Manager *m) {
        unsigned open = count_state(m, VOLUME_UNLOCKED) + count_state(m, VOLUME_VERIFIED);
        unsigned recovery = count_state(m, VOLUME_RECOVERY_REQUIRED);
        unsigned missing = count_state(m, VOLUME_UNAVAILABLE);

        if (m->boot_ready)
                return;
        m->boot_ready = true;
        boot_state_changed(m);
        /* What the status properties show of the TPM, asked once now that the volumes are open (or
         * given up on): two commands, before READY=1, and none when the boot's unseal asked already,
         * which a disk that udev announces late makes happen during the wait. So every start costs
         * the TPM the same, whenever the disks appear. */
        manager_tpm_start(m);
        m->boot_timer = sd_event_source_disable_unref(m->boot_timer);
        log_info("Unlocked %u of %zu volumes%s%s.", open, m->n_volumes,
                 recovery > 0 ? "; the others need recovery" : "", missing > 0 ? "; some disks are missing" : "");
        (void) sd_notifyf(false, "READY=1\nSTATUS=%zu volumes, %u open, %u need recovery, %u missing", m->n_volumes,
                          open, recovery, missing);
        manager_escrow_after_boot(m);
}

static int on_boot_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        (void) s;
        (void) usec;
        for (size_t i = 0; i < m->n_volumes; i++)
                if (m->volumes[i]->state == VOLUME_UNAVAILABLE)
                        log_error("Volume %s: its disk %s did not appear within %us; it will be opened when it does.",
                                  m->volumes[i]->uuid, m->volumes[i]->device, m->config.boot_device_timeout_sec);
        boot_ready(m);
        return 0;
}

static void unlock_one(Manager *m, ManagedVolume *v) {
        if (volume_is_open(v) || v->state == VOLUME_UNAVAILABLE)
                return;
        /* The one unlock path: the pass unseals only if the daemon lacks the VMK. A failure is logged
         * and signalled there. */
        (void) manager_unlock_start(m, UNLOCK_ONE, v, NULL, NULL, NULL, NULL);
}

void manager_boot_check_ready(Manager *m) {
        if (m->boot_ready || !m->boot_unlocked || manager_unlock_pending(m))
                return;
        if (m->boot_timer && count_state(m, VOLUME_UNAVAILABLE) > 0)
                return; /* waiting for disks; on_boot_timeout() ends the wait */
        boot_ready(m);
}

/* The boot's own pass is done: wait (bounded) for the disks that are not there yet. */
static void boot_unlocked(Manager *m, UnlockWaiter *w) {
        int r;

        (void) w;
        m->boot_unlocked = true;
        boot_state_changed(m);
        if (count_state(m, VOLUME_UNAVAILABLE) == 0 || m->config.boot_device_timeout_sec == 0 || !m->device_monitor)
                return;
        log_info("Waiting up to %us for the disks of %u volumes.", m->config.boot_device_timeout_sec,
                 count_state(m, VOLUME_UNAVAILABLE));
        r = sd_event_add_time_relative(m->event, &m->boot_timer, CLOCK_MONOTONIC,
                                       (uint64_t) m->config.boot_device_timeout_sec * 1000000u, 0, on_boot_timeout, m);
        if (r < 0)
                log_warning_errno(r, "Failed to arm the boot timer, not waiting for missing disks: %m");
}

static int on_device(sd_device_monitor *monitor, sd_device *d, void *userdata) {
        Manager *m = userdata;
        sd_device_action_t action;
        char uuid[VOLUME_UUID_STRING_MAX];
        const char *devname = NULL;
        ManagedVolume *v = NULL;

        (void) monitor;
        if (sd_device_get_action(d, &action) < 0 || sd_device_get_devname(d, &devname) < 0 || !devname ||
            is_crypt_mapping(d))
                return 0;
        if (action == SD_DEVICE_REMOVE) {
                refused_forget(m, devname);
                return 0;
        }
        if (action != SD_DEVICE_ADD && action != SD_DEVICE_CHANGE)
                return 0;
        if (probe_ours(m, devname, /* report= */ true, uuid) <= 0)
                return 0;
        /* udev's monitor tells of a device once its rules ran: its links are made. */
        if (consider_device(m, devname, uuid, /* settled= */ true, NULL, &v) < 0 || !v)
                return 0;
        /* A "change" of a volume we know and have not been asked to open (just provisioned, locked by
         * an administrator) is not an arrival. */
        if (action == SD_DEVICE_CHANGE && v->state == VOLUME_LOCKED && m->boot_ready)
                return 0;
        if (v->state == VOLUME_UNAVAILABLE)
                (void) manager_refresh_volume(v, NULL);
        if (m->boot_ready)
                log_info("Volume %s appeared on %s.", v->uuid, devname);
        /* A disk that went away while it was re-bound to a rotated VMK gets another try. */
        v->rebind_failed = false;
        /* Opened by a pass, which also re-binds it if it was absent during a VMK rotation. */
        if (!volume_is_open(v) && v->state != VOLUME_UNAVAILABLE)
                unlock_one(m, v);
        else if (m->previous_vmk && v->state != VOLUME_UNAVAILABLE)
                (void) manager_finish_rotation(m);
        manager_boot_check_ready(m);
        return 0;
}

static int monitor_start(Manager *m) {
        int r;

        r = sd_device_monitor_new(&m->device_monitor);
        if (r < 0)
                return r;
        r = sd_device_monitor_filter_add_match_subsystem_devtype(m->device_monitor, "block", NULL);
        if (r < 0)
                return r;
        r = sd_device_monitor_attach_event(m->device_monitor, m->event);
        if (r < 0)
                return r;
        return sd_device_monitor_start(m->device_monitor, on_device, m);
}

int manager_boot(Manager *m, bool unlock) {
        int r;

        /* Listen before looking, so that a disk appearing in between is not missed. Without udev (a
         * container, the build machines) there are no events: the scan at start is all there is. */
        r = monitor_start(m);
        if (r < 0)
                log_warning_errno(r, "Failed to watch for block devices (hot-plugged disks will not be opened), ignoring: %m");
        if (m->config.boot_discover) {
                r = manager_scan(m);
                if (r < 0)
                        log_warning_errno(r, "Failed to scan block devices, only registered volumes are opened: %m");
        }
        if (!unlock) {
                manager_tpm_start(m);
                m->boot_ready = true; /* nothing to wait for */
                (void) sd_notifyf(false, "READY=1\nSTATUS=%zu volumes, not unlocked (--no-unlock)", m->n_volumes);
                return 0;
        }

        /* One pass: the TPM is asked once, whether it opens the VMK or refuses it; the bus answers
         * meanwhile. What follows it (used passwords replaced, a DRA change or a VMK rotation a crash
         * interrupted, unfinished in-place encryptions) runs at its end, then READY=1 once no disk
         * the boot waits for is missing (manager_boot_check_ready()). */
        r = manager_unlock_start(m, UNLOCK_BOOT, NULL, NULL, boot_unlocked, NULL, NULL);
        if (r < 0) {
                m->boot_unlocked = true;
                boot_ready(m);
                return log_error_errno(r, "Failed to start unlocking the volumes: %m");
        }
        return 0;
}
