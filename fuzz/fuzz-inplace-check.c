/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fuzz-inplace-check.c: volume_inplace_check() on a device whose content an attacker chose: it reads the
 * signatures (libblkid) and the ext2/3/4 superblock to decide whether in-place encryption may start,
 * and how much the file system must shrink first.
 *
 * The input is the start of an image file (a memfd, opened by its /proc path as a device would be),
 * the rest zeros up to FUZZ_DEVICE_SIZE, so that the size checks pass and the superblock is read. What
 * the check accepts must make sense: an ext2/3/4 file system no larger than the device, with no more
 * free space than size. Expected refusals return 0; anything else aborts. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "volume-inplace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Twice the minimum: the seeds' file systems (64 and 112 MiB) fit, one of them leaves no room at the
 * end. */
#define FUZZ_DEVICE_SIZE (2 * INPLACE_DEVICE_MIN)
#define FUZZ_INPUT_MAX ((size_t) 1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static int fd = -1;
        static char path[64];
        InPlaceInfo info = {};
        char *what = NULL;
        int r;

        log_set_max_level(LOG_CRIT);
        if (fd < 0) {
                fd = memfd_create("fuzz-inplace-check", MFD_CLOEXEC);
                if (fd < 0)
                        abort();
                snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        }
        if (size > FUZZ_INPUT_MAX)
                return 0;
        /* Zeros beyond the input, as on a fresh sparse image. */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t) FUZZ_DEVICE_SIZE) < 0 ||
            pwrite(fd, data, size, 0) != (ssize_t) size)
                abort();

        r = volume_inplace_check(path, &info, &what);
        if (r < 0) {
                if (!IN_SET(r, -EBUSY, -EEXIST, -EMEDIUMTYPE, -ENODATA, -ENOSPC, -EIO, -ENOMEM))
                        abort();
                free(what);
                return 0;
        }
        if (what)
                abort(); /* only refusals are explained */
        if (!IN_SET(true, streq(info.fs_type, "ext2"), streq(info.fs_type, "ext3"), streq(info.fs_type, "ext4")))
                abort();
        if (info.device_size != FUZZ_DEVICE_SIZE || info.fs_size == 0 || info.fs_size > info.device_size ||
            info.fs_free > info.fs_size || info.fs_size % 1024 != 0)
                abort();
        if (info.needs_shrink != (info.fs_size > info.device_size - INPLACE_REDUCE_SIZE))
                abort();
        return 0;
}
