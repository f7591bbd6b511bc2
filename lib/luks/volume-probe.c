/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volume-probe.c: recognise a sealvol volume without touching it (see volume-probe.h). */

#include <blkid.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "volume-internal.h"
#include "volume-probe.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct crypt_device *, crypt_free);

static void quiet_log(int level, const char *msg, void *usrptr) {
        (void) usrptr;
        if (level == CRYPT_LOG_ERROR)
                log_debug("libcryptsetup: %s", msg);
}

static inline void blkid_free_probep(blkid_probe *p) {
        if (*p)
                blkid_free_probe(*p);
}

/* libblkid reads a few sectors; libcryptsetup would take the metadata lock and parse JSON. Most block
 * devices of a server are not LUKS at all, so ask the cheap question first. */
static int probe_is_luks2(const char *device) {
        _cleanup_(blkid_free_probep) blkid_probe pr = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *type = NULL, *version = NULL;
        int r;

        fd = open(device, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        pr = blkid_new_probe();
        if (!pr)
                return -ENOMEM;
        if (blkid_probe_set_device(pr, fd, 0, 0) < 0)
                return -EIO;
        (void) blkid_probe_enable_superblocks(pr, 1);
        (void) blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_VERSION);
        (void) blkid_probe_enable_partitions(pr, 0);
        r = blkid_do_safeprobe(pr);
        if (r == -2) /* ambivalent: more than one signature, not something we formatted */
                return 0;
        if (r < 0)
                return -EIO;
        if (r == 1) /* nothing found */
                return 0;
        (void) blkid_probe_lookup_value(pr, "TYPE", &type, NULL);
        (void) blkid_probe_lookup_value(pr, "VERSION", &version, NULL);
        return streq_ptr(type, "crypto_LUKS") && streq_ptr(version, "2");
}

int volume_probe(const char *device, VolumeToken *ret) {
        _cleanup_(crypt_freep) struct crypt_device *cd = NULL;
        const char *json = NULL;
        int found = -1, r;

        r = probe_is_luks2(device);
        if (r < 0)
                return r;
        if (r == 0)
                return -EMEDIUMTYPE;

        r = crypt_init(&cd, device);
        if (r < 0)
                return r;
        crypt_set_log_callback(cd, quiet_log, NULL);
        r = crypt_load(cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return r == -EINVAL ? -EMEDIUMTYPE : r;
        if (!streq_ptr(crypt_get_subsystem(cd), VOLUME_LUKS2_SUBSYSTEM))
                return -ENOMSG;

        r = volume_find_token(cd, &found, &json);
        if (r < 0)
                return r;
        return volume_token_from_json(json, strlen(json), crypt_get_uuid(cd), ret);
}
