/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * volume-inplace.h: encrypting a device that already holds a file system, in place, without losing a
 * byte (docs/in-place.md).
 *
 * libcryptsetup's LUKS2 re-encryption in "datashift" mode does the work: the LUKS2 header is written
 * in front, the data moves back by INPLACE_DATA_SHIFT as it is encrypted, and the last
 * INPLACE_REDUCE_SIZE bytes of the device must be free (the file system is shrunk first when it fills
 * the device). The steps:
 *
 *   1. volume_inplace_check(): an ext2/3/4 file system, nothing mounted, room at the end (or a file
 *      system resize2fs can shrink);
 *   2. volume_inplace_start(): shrinks the file system if needed, formats a detached header (a file
 *      of the caller's, in root's state directory) with every sealvol protector, lets libcryptsetup
 *      move the first data segment into the free space at the end, then writes the header over the
 *      head of the device; from here the device is a sealvol volume in re-encryption;
 *   3. volume_inplace_run(): encrypts, reporting progress; pausing leaves consistent metadata; after
 *      a crash or a SIGKILL at any moment, it resumes from where the metadata says.
 *
 * A crash in step 2 before the header reaches the device leaves the file system whole (only its free
 * tail was written): volume_inplace_run() with the header file still there writes the header again
 * and goes on, or, if the header never became valid, the caller starts again.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "volume.h"

#define INPLACE_DATA_SHIFT (UINT64_C(16) << 20)  /* the LUKS2 header area, in front */
#define INPLACE_REDUCE_SIZE (UINT64_C(32) << 20) /* free at the end of the device before starting */
#define INPLACE_DEVICE_MIN (UINT64_C(64) << 20)

typedef struct InPlaceInfo {
        uint64_t device_size;
        uint64_t fs_size;
        uint64_t fs_free;  /* free blocks, by the superblock */
        char fs_type[16];
        bool needs_shrink; /* the file system reaches into the last INPLACE_REDUCE_SIZE bytes */
} InPlaceInfo;

/* Whether device can be encrypted in place. Errors, each with nothing changed:
 *   -EBUSY        mounted or otherwise in use (a mounted loop device over an image counts);
 *   -EEXIST       already LUKS (encrypted, or a sealvol volume being encrypted: use run to resume);
 *   -EMEDIUMTYPE  a signature sealvol does not encrypt in place (*ret_what names it: a partition
 *                 table, xfs, swap, several signatures...);
 *   -ENODATA      no file system at all (provision it as a new volume instead);
 *   -ENOSPC       too small (below INPLACE_DEVICE_MIN). */
int volume_inplace_check(const char *device, InPlaceInfo *ret, char **ret_what);

/* Steps 1 and 2 (above). header_path must not exist; it is created 0600 and removed by
 * volume_inplace_run() once the device carries the header. A file system that needs to shrink and
 * cannot (e2fsck or resize2fs refuse: too full) is -ENOSPC with resize2fs's words in *ret_what, and
 * nothing changed. Returns the recovery password, as volume_provision() does. */
int volume_inplace_start(const char *device, const char *header_path, const VolumeProvisionParams *p,
                         char **ret_recovery_password, char **ret_what);

/* Progress: bytes done of total; returning non-zero pauses (the run returns -EINTR, consistent). */
typedef int (*InPlaceProgressFn)(uint64_t done, uint64_t total, void *userdata);

/* Step 3, also the resumption after a pause, a crash or a restart: authorised by the VMK the volume
 * is bound to. 0 when the device is fully encrypted (also when it already was); -EINTR when paused;
 * -ENOMSG when header_path never reached the device and the device is not a sealvol volume (start
 * again: the file system is intact). */
int volume_inplace_run(const char *device, const char *header_path, const uint8_t vmk[static VMK_SIZE],
                       const Guid *vmk_id, InPlaceProgressFn progress, void *userdata);

/* Undoes a job that has encrypted nothing yet (its start only moved the first data segment into the
 * free tail and wrote the header over its place; a job started paused, or one that stopped before its
 * first step): the segment goes back over the header and the device holds the file system it held
 * (at the size start left it: a shrunk one stays shrunk). Authorised by the VMK the volume is bound
 * to; whatever start left beside the device (header_path) is settled first. Crash-safe:
 * "<header_path>.cancel" records the copy, with the digest of what is copied, before the header is
 * touched; a call after a crash finishes it (volume_inplace_cancel_pending()), without the VMK, and
 * writes nothing unless the tail still holds what was recorded. The marker stays after success, so
 * that a crash before the caller has forgotten the volume is finished the same way (the copy again:
 * the tail is only read); volume_inplace_cancel_done() removes it, and start refuses while it is
 * there. Errors: -ENOTRECOVERABLE data is
 * encrypted already (or all of it): the job can only go on; -ENOMSG the device is not a sealvol
 * volume being encrypted (nothing to cancel: the file system is where it was); -EBADMSG metadata,
 * or a marker, that is not what sealvol writes; *ret_what says which. */
int volume_inplace_cancel(const char *device, const char *header_path, const uint8_t vmk[static VMK_SIZE],
                          const Guid *vmk_id, char **ret_what);
/* 1 when a cancellation of the job whose header file is header_path is under way (to be finished). */
int volume_inplace_cancel_pending(const char *header_path);
int volume_inplace_cancel_done(const char *header_path);

/* How far an unfinished encryption is, from device's metadata, in libcryptsetup's measure (the data
 * area: the device after the header): what a job's progress said when it stopped. -ENOENT finished. */
int volume_inplace_progress(const char *device, uint64_t *ret_done, uint64_t *ret_total);

/* Whether device is a sealvol volume whose in-place encryption is not finished: 1 yes, 0 no. */
int volume_inplace_in_progress(const char *device);
