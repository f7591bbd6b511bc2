/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* volume-inplace.c: in-place encryption of a device holding a file system (see volume-inplace.h). */

#include <blkid.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "encoding.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "macro.h"
#include "process-util.h"
#include "secmem.h"
#include "vmk.h"
#include "volume-inplace.h"
#include "volume-internal.h"

#define SECTOR 512u
#define FSCK_TIMEOUT_SEC 3600u

DEFINE_TRIVIAL_CLEANUP_FUNC(blkid_probe, blkid_free_probe);

static int set_what(char **ret_what, const char *format, ...) _printf_(2, 3);
static int set_what(char **ret_what, const char *format, ...) {
        va_list ap;

        if (!ret_what)
                return 0;
        free(*ret_what);
        va_start(ap, format);
        if (vasprintf(ret_what, format, ap) < 0)
                *ret_what = NULL;
        va_end(ap);
        return 0;
}

static int device_size(int fd, uint64_t *ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        if (!S_ISBLK(st.st_mode))
                return -ENOTBLK;
        return ioctl(fd, BLKGETSIZE64, ret) < 0 ? -errno : 0;
}

/* An image file is in use when a loop device is backed by it. */
static int image_attached_to_loop(const char *path, char **ret_loop) {
        _cleanup_free_ char *real = realpath(path, NULL);
        DIR *d;
        struct dirent *de;
        int found = 0;

        if (!real)
                return -errno;
        d = opendir("/sys/block");
        if (!d)
                return 0;
        while (!found && (de = readdir(d))) {
                char p[PATH_MAX], backing[PATH_MAX];
                ssize_t n;
                int fd;

                if (strncmp(de->d_name, "loop", 4) != 0)
                        continue;
                snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", de->d_name);
                fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                n = read(fd, backing, sizeof(backing) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                backing[n] = '\0';
                backing[strcspn(backing, "\n")] = '\0';
                if (streq(backing, real)) {
                        found = 1;
                        if (ret_loop && asprintf(ret_loop, "/dev/%s", de->d_name) < 0)
                                *ret_loop = NULL;
                }
        }
        closedir(d);
        return found;
}

/* The size and free space of an ext2/3/4 file system, from its superblock. The device is untrusted:
 * with the 64bit feature the counts are 64-bit, and shifted by the block size they can exceed 2^64
 * bytes, which would wrap to a small, plausible size (and hide how much the file system claims).
 * Such a superblock, or one with no blocks or more free blocks than blocks, does not parse. */
static int ext_fs_size(int fd, uint64_t *ret_size, uint64_t *ret_free) {
        uint8_t sb[1024];
        uint32_t blocks_lo, log_block, incompat, blocks_hi = 0, free_lo, free_hi = 0;
        uint64_t blocks, free_blocks;

        if (pread(fd, sb, sizeof(sb), 1024) != (ssize_t) sizeof(sb))
                return -EIO;
#define LE16(o) ((uint32_t) sb[o] | (uint32_t) sb[(o) + 1] << 8)
#define LE32(o) (LE16(o) | (uint32_t) sb[(o) + 2] << 16 | (uint32_t) sb[(o) + 3] << 24)
        if (LE16(0x38) != 0xEF53)
                return -EMEDIUMTYPE;
        blocks_lo = LE32(0x04);
        free_lo = LE32(0x0C);
        log_block = LE32(0x18);
        incompat = LE32(0x60);
        if (incompat & 0x80) { /* 64bit */
                blocks_hi = LE32(0x150);
                free_hi = LE32(0x158);
        }
#undef LE32
#undef LE16
        if (log_block > 6)
                return -EBADMSG;
        blocks = (uint64_t) blocks_hi << 32 | blocks_lo;
        free_blocks = (uint64_t) free_hi << 32 | free_lo;
        if (blocks == 0 || blocks > UINT64_MAX >> (10 + log_block) || free_blocks > blocks)
                return -EBADMSG;
        *ret_size = blocks << (10 + log_block);
        *ret_free = free_blocks << (10 + log_block);
        return 0;
}

int volume_inplace_check(const char *device, InPlaceInfo *ret, char **ret_what) {
        _cleanup_(blkid_free_probep) blkid_probe pr = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *loop = NULL;
        InPlaceInfo info = {};
        const char *type = NULL;
        struct stat st;
        int r;

        fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (S_ISBLK(st.st_mode)) {
                /* The kernel refuses an exclusive open of a block device that is mounted, or held by
                 * device-mapper, md, or another exclusive opener. */
                int ex = open(device, O_RDONLY | O_CLOEXEC | O_EXCL);
                if (ex < 0 && errno == EBUSY)
                        return set_what(ret_what, "%s is mounted or in use", device), -EBUSY;
                safe_close(ex);
        } else if (S_ISREG(st.st_mode)) {
                r = image_attached_to_loop(device, &loop);
                if (r > 0)
                        return set_what(ret_what, "%s is attached to %s", device, strempty(loop)), -EBUSY;
        } else
                return -ENOTBLK;

        r = device_size(fd, &info.device_size);
        if (r < 0)
                return r;

        pr = blkid_new_probe_from_filename(device);
        if (!pr)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
        blkid_probe_enable_partitions(pr, 1);
        r = blkid_do_safeprobe(pr);
        if (r == 1)
                return set_what(ret_what, "%s holds no file system", device), -ENODATA;
        if (r == -2)
                return set_what(ret_what, "%s holds several signatures", device), -EMEDIUMTYPE;
        if (r < 0)
                return -EIO;
        if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0) {
                const char *pt = NULL;

                (void) blkid_probe_lookup_value(pr, "PTTYPE", &pt, NULL);
                return set_what(ret_what, "%s holds a partition table (%s): encrypt its partitions", device,
                                strempty(pt)), -EMEDIUMTYPE;
        }
        if (streq(type, "crypto_LUKS"))
                return set_what(ret_what, "%s is already LUKS", device), -EEXIST;
        if (!IN_SET(true, streq(type, "ext2"), streq(type, "ext3"), streq(type, "ext4")))
                return set_what(ret_what, "%s holds %s, which sealvol does not encrypt in place (ext2/3/4 only)",
                                device, type), -EMEDIUMTYPE;
        snprintf(info.fs_type, sizeof(info.fs_type), "%s", type);

        if (info.device_size < INPLACE_DEVICE_MIN)
                return set_what(ret_what, "%s is smaller than %" PRIu64 " MiB", device, INPLACE_DEVICE_MIN >> 20),
                       -ENOSPC;
        r = ext_fs_size(fd, &info.fs_size, &info.fs_free);
        if (r < 0)
                return set_what(ret_what, "the %s superblock of %s does not parse", type, device), -EMEDIUMTYPE;
        if (info.fs_size > info.device_size)
                return set_what(ret_what, "the %s file system of %s is larger than the device", type, device),
                       -EMEDIUMTYPE;
        info.needs_shrink = info.fs_size > info.device_size - INPLACE_REDUCE_SIZE;
        if (ret)
                *ret = info;
        return 0;
}

static int find_program(const char *name, char ret[static PATH_MAX]) {
        static const char *const dirs[] = { "/usr/sbin", "/usr/bin", "/sbin", "/bin" };

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(ret, PATH_MAX, "%s/%s", dirs[i], name);
                if (access(ret, X_OK) == 0)
                        return 0;
        }
        return -ENOENT;
}

/* e2fsck, then resize2fs to new_size: the file system leaves the last INPLACE_REDUCE_SIZE bytes. */
static int shrink_fs(const char *device, uint64_t new_size, char **ret_what) {
        char e2fsck[PATH_MAX], resize2fs[PATH_MAX], size[32];
        _cleanup_free_ char *error = NULL;
        int r;

        if (find_program("e2fsck", e2fsck) < 0 || find_program("resize2fs", resize2fs) < 0)
                return set_what(ret_what, "e2fsck and resize2fs (e2fsprogs) are needed to shrink %s", device), -ENOENT;
        /* resize2fs insists on a freshly checked file system; -p repairs only what is safe. */
        r = spawn_run((char *const[]) { e2fsck, (char *) "-f", (char *) "-p", (char *) "--", (char *) device, NULL },
                      NULL, 0, FSCK_TIMEOUT_SEC, NULL, &error);
        /* Exit status 1: errors were corrected; fine. */
        if (r == -EREMOTEIO && error) {
                int status;

                if (sscanf(error, "exit status %d", &status) == 1 && status == 1)
                        r = 0;
        }
        if (r < 0)
                return set_what(ret_what, "e2fsck %s failed (%s): repair the file system first", device,
                                error ?: strerror(-r)), -EUCLEAN;
        error = mfree(error);
        snprintf(size, sizeof(size), "%" PRIu64 "K", new_size >> 10);
        r = spawn_run((char *const[]) { resize2fs, (char *) "--", (char *) device, size, NULL }, NULL, 0,
                      FSCK_TIMEOUT_SEC, NULL, &error);
        if (r < 0)
                return set_what(ret_what,
                                "the file system of %s cannot shrink by %" PRIu64 " MiB to make room for the header "
                                "(%s): free space in it, or grow the device by %" PRIu64 " MiB",
                                device, INPLACE_REDUCE_SIZE >> 20, error ?: strerror(-r), INPLACE_REDUCE_SIZE >> 20),
                       -ENOSPC;
        return 0;
}

/* resize2fs truncates an image file it shrinks: the room it freed is what the header needs. */
static int keep_image_size(const char *device, uint64_t size) {
        struct stat st;

        if (stat(device, &st) < 0)
                return -errno;
        if (S_ISREG(st.st_mode) && (uint64_t) st.st_size < size && truncate(device, (off_t) size) < 0)
                return -errno;
        return 0;
}

static int fsync_path(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || fsync(fd) < 0)
                return -errno;
        return 0;
}

static int restore_header(const char *device, const char *header_path) {
        _cleanup_(volume_freep) Volume *v = NULL;
        int r;

        r = volume_new(NULL, device, &v);
        if (r < 0)
                return r;
        r = crypt_header_restore(v->cd, CRYPT_LUKS2, header_path);
        if (r < 0)
                return log_debug_errno(r, "Cannot write the LUKS2 header to %s: %m", device);
        return fsync_path(device);
}

static int fsync_parent(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash)
                return -EINVAL;
        *(slash == dir ? slash + 1 : slash) = '\0';
        return fsync_path(dir);
}

/* What start left behind: a complete header file goes onto the device (again: it is the authority
 * until it is removed, and nothing has run on the device while it exists), then is removed. An
 * unfinished one ("<header>.new") is thrown away. */
static int settle_header_file(const char *device, const char *header_path) {
        _cleanup_free_ char *building = NULL;
        int r;

        if (asprintf(&building, "%s.new", header_path) < 0)
                return -ENOMEM;
        if (unlink(building) < 0 && errno != ENOENT)
                return -errno;
        if (access(header_path, F_OK) < 0)
                return errno == ENOENT ? 0 : -errno;
        r = restore_header(device, header_path);
        if (r < 0)
                return r;
        if (unlink(header_path) < 0)
                return -errno;
        return fsync_parent(header_path);
}

int volume_inplace_start(const char *device, const char *header_path, const VolumeProvisionParams *p,
                         char **ret_recovery_password, char **ret_what) {
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_secure_ uint8_t *pass = NULL;
        _cleanup_free_ char *building = NULL;
        _cleanup_close_ int fd = -EBADF;
        InPlaceInfo info;
        int r;

        r = provision_check_params(p);
        if (r < 0)
                return r;
        if (asprintf(&building, "%s.new", header_path) < 0)
                return -ENOMEM;
        r = volume_inplace_check(device, &info, ret_what);
        if (r < 0)
                return r;
        if (access(header_path, F_OK) == 0)
                return set_what(ret_what, "%s is already being encrypted (%s exists)", device, header_path), -EEXIST;
        if (volume_inplace_cancel_pending(header_path) != 0)
                return set_what(ret_what, "the cancelled encryption of %s is not finished", device), -EBUSY;
        if (info.needs_shrink) {
                /* resize2fs needs the blocks it removes free, and some room to move metadata: refuse
                 * before e2fsck touches anything when that is plainly not there. */
                uint64_t cut = info.fs_size - (info.device_size - INPLACE_REDUCE_SIZE);

                if (info.fs_free < cut + cut / 4 + (UINT64_C(4) << 20))
                        return set_what(ret_what,
                                        "the file system of %s cannot shrink by %" PRIu64 " MiB to make room for the "
                                        "header (%" PRIu64 " MiB free): free space in it, or grow the device by %" PRIu64
                                        " MiB",
                                        device, cut >> 20, info.fs_free >> 20, INPLACE_REDUCE_SIZE >> 20),
                               -ENOSPC;
                r = shrink_fs(device, info.device_size - INPLACE_REDUCE_SIZE, ret_what);
                if (r >= 0)
                        r = keep_image_size(device, info.device_size);
                if (r < 0)
                        return r;
                r = volume_inplace_check(device, &info, ret_what);
                if (r < 0)
                        return r;
                if (info.needs_shrink)
                        return set_what(ret_what, "resize2fs left the file system of %s at %" PRIu64 " bytes, too large",
                                        device, info.fs_size), -ENOSPC;
        }

        /* The header is built beside the device as "<header>.new", complete with every protector, and
         * the first data segment is moved into the free space at the end; only then is it renamed to
         * header_path, which means "this header may go onto the device". A crash before that leaves
         * the file system whole (only its free tail was written) and a ".new" file to throw away. */
        (void) unlink(building);
        fd = open(building, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = posix_fallocate(fd, 0, 4096);
        fd = safe_close(fd);
        if (r > 0)
                r = -r;
        if (r >= 0)
                r = volume_new(building, device, &v);
        if (r >= 0)
                r = provision_format(v, p, INPLACE_DATA_SHIFT / SECTOR, &password);
        if (r >= 0)
                r = vmk_derive_keyslot_passphrase(p->vmk, v->token.volume_uuid, &pass);
        if (r >= 0) {
                const struct crypt_params_luks2 luks2 = { .sector_size = SECTOR };
                const struct crypt_params_reencrypt params = {
                        .mode = CRYPT_REENCRYPT_ENCRYPT,
                        .direction = CRYPT_REENCRYPT_BACKWARD,
                        .resilience = "datashift",
                        .data_shift = INPLACE_DATA_SHIFT / SECTOR,
                        .luks2 = &luks2,
                        .flags = CRYPT_REENCRYPT_INITIALIZE_ONLY | CRYPT_REENCRYPT_MOVE_FIRST_SEGMENT,
                };

                r = crypt_reencrypt_init_by_passphrase(v->cd, NULL, (const char *) pass, VMK_KEYSLOT_PASSPHRASE_SIZE,
                                                       CRYPT_ANY_SLOT, v->token.protectors[PROTECTOR_TPM].keyslot,
                                                       "aes", "xts-plain64", &params);
                if (r < 0)
                        log_debug_errno(r, "Cannot initialise the encryption of %s: %m", device);
        }
        v = volume_free(v);
        if (r >= 0)
                r = fsync_path(building);
        if (r >= 0)
                r = fsync_path(device);
        if (r >= 0 && rename(building, header_path) < 0)
                r = -errno;
        if (r >= 0)
                r = fsync_parent(header_path);
        if (r < 0) {
                (void) unlink(building);
                return r;
        }

        /* From here the device is a sealvol volume being encrypted; a crash is finished by run. */
        r = settle_header_file(device, header_path);
        if (r < 0)
                return r;
        *ret_recovery_password = TAKE_PTR(password);
        return 0;
}

/* The data segments of a header in re-encryption, those not flagged "backup-" (libcryptsetup's copies
 * of the layouts before, after and of the moved segment): in the order of the data they map. */
#define SEGMENTS_MAX 8

typedef struct Segment {
        bool crypt;    /* else linear: data in clear */
        uint64_t offset, size;
        bool dynamic;  /* to the end of the device */
} Segment;

typedef struct Segments {
        Segment s[SEGMENTS_MAX];
        unsigned n;
        uint64_t shift;
} Segments;

static int reencrypt_segments(struct crypt_device *cd, Segments *ret) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        json_object *segments, *keyslots;
        Segments out = {};
        const char *json;
        bool mode_ok = false;

        if (crypt_dump_json(cd, &json, 0) < 0 || json_parse_object(json, strlen(json), 16, &root) < 0 ||
            !json_object_object_get_ex(root, "segments", &segments) ||
            !json_object_object_get_ex(root, "keyslots", &keyslots))
                return -EBADMSG;
        json_object_object_foreach(keyslots, ks_id, ks) {
                json_object *area;

                (void) ks_id;
                if (!streq_ptr(json_get_string(ks, "type"), "reencrypt"))
                        continue;
                if (mode_ok || !streq_ptr(json_get_string(ks, "mode"), "encrypt") ||
                    !json_object_object_get_ex(ks, "area", &area) ||
                    !streq_ptr(json_get_string(area, "type"), "datashift") ||
                    json_get_u64_string(area, "shift_size", &out.shift) < 0)
                        return -EBADMSG;
                mode_ok = true;
        }
        if (!mode_ok)
                return -EBADMSG;
        /* Keys "0", "1", ...: the data's order. */
        for (unsigned i = 0;; i++) {
                char key[12];
                json_object *sg, *flags;
                const char *type;
                bool backup = false;

                snprintf(key, sizeof(key), "%u", i);
                if (!json_object_object_get_ex(segments, key, &sg))
                        break;
                if (json_object_object_get_ex(sg, "flags", &flags) && json_object_is_type(flags, json_type_array))
                        for (size_t k = 0; k < json_object_array_length(flags); k++) {
                                const char *f = json_object_get_string(json_object_array_get_idx(flags, k));

                                if (f && strncmp(f, "backup-", 7) == 0)
                                        backup = true;
                        }
                if (backup)
                        continue;
                if (out.n >= SEGMENTS_MAX)
                        return -EBADMSG;
                type = json_get_string(sg, "type");
                if (!streq_ptr(type, "linear") && !streq_ptr(type, "crypt"))
                        return -EBADMSG;
                Segment *g = &out.s[out.n++];
                g->crypt = streq(type, "crypt");
                if (json_get_u64_string(sg, "offset", &g->offset) < 0)
                        return -EBADMSG;
                if (streq_ptr(json_get_string(sg, "size"), "dynamic"))
                        g->dynamic = true;
                else if (json_get_u64_string(sg, "size", &g->size) < 0)
                        return -EBADMSG;
        }
        *ret = out;
        return 0;
}

/* Where start put the first data segment (into the free tail, so that the header could take its place)
 * while nothing is encrypted yet: the data segments are then exactly that moved segment (from, size)
 * and the rest of the file system (rest bytes), in clear where it always was, after it. Once a step
 * has run, a crypt segment is among them and the data cannot go back: -ENOTRECOVERABLE. Anything
 * else is not what start writes: -EBADMSG. */
typedef struct MovedHead {
        uint64_t from, size, rest;
} MovedHead;

static int moved_head(struct crypt_device *cd, MovedHead *ret, char **ret_what) {
        Segments g;
        int r;

        r = reencrypt_segments(cd, &g);
        if (r < 0)
                return r;
        if (g.shift != INPLACE_DATA_SHIFT)
                return -EBADMSG;
        for (unsigned i = 0; i < g.n; i++)
                if (g.s[i].crypt)
                        return set_what(ret_what, "part of it is encrypted already: the encryption can only go on "
                                        "(sealvolctl encryption resume)"), -ENOTRECOVERABLE;
        if (g.n != 2 || g.s[0].dynamic || g.s[1].dynamic)
                return -EBADMSG;
        /* The head moved behind the rest, which starts where the head ends, and neither overlaps. */
        if (g.s[0].size != INPLACE_DATA_SHIFT || g.s[1].offset != g.s[0].size || g.s[1].size > UINT64_MAX - g.s[1].offset ||
            g.s[0].offset < g.s[1].offset + g.s[1].size || g.s[0].offset > UINT64_MAX - g.s[0].size)
                return -EBADMSG;
        *ret = (MovedHead) { .from = g.s[0].offset, .size = g.s[0].size, .rest = g.s[1].size };
        return 0;
}

/* What libcryptsetup counts its progress in: the data area, the device after the header. */
static int data_area_size(struct crypt_device *cd, const char *device, uint64_t *ret) {
        _cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        uint64_t size, offset = crypt_get_data_offset(cd) * SECTOR;
        int r;

        if (fd < 0)
                return -errno;
        r = device_size(fd, &size);
        if (r < 0)
                return r;
        if (size < offset)
                return -EBADMSG;
        *ret = size - offset;
        return 0;
}

int volume_inplace_progress(const char *device, uint64_t *ret_done, uint64_t *ret_total) {
        _cleanup_(volume_freep) Volume *v = NULL;
        uint64_t done = 0, total;
        Segments g;
        int r;

        r = volume_new(NULL, device, &v);
        if (r < 0)
                return r;
        r = crypt_load(v->cd, CRYPT_LUKS2, NULL);
        if (r < 0)
                return r;
        if (crypt_reencrypt_status(v->cd, NULL) == CRYPT_REENCRYPT_NONE)
                return -ENOENT;
        r = reencrypt_segments(v->cd, &g);
        if (r >= 0)
                r = data_area_size(v->cd, device, &total);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < g.n; i++)
                if (g.s[i].crypt)
                        done += g.s[i].dynamic ? total : g.s[i].size;
        *ret_done = MIN(done, total);
        *ret_total = total;
        return 0;
}

typedef struct ProgressContext {
        InPlaceProgressFn fn;
        void *userdata;
        bool paused;
} ProgressContext;

static int progress_adapter(uint64_t size, uint64_t offset, void *userdata) {
        ProgressContext *c = userdata;

        if (!c->fn)
                return 0;
        if (c->fn(offset, size, c->userdata) != 0) {
                c->paused = true;
                return 1;
        }
        return 0;
}

/* The volume on device, authenticated with the VMK, and its tpm keyslot's passphrase; -ENOMSG when the
 * device is no sealvol volume (a start whose header never reached it). */
static int load_authenticated(const char *device, const uint8_t vmk[static VMK_SIZE], const Guid *vmk_id,
                              Volume **ret, uint8_t **ret_pass) {
        _cleanup_(volume_freep) Volume *v = NULL;
        int r;

        r = volume_load(device, &v);
        if (IN_SET(r, -EMEDIUMTYPE, -ENOMSG))
                return -ENOMSG;
        if (r < 0)
                return r;
        r = volume_vmk_passphrase(v, vmk, vmk_id, ret_pass);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

/* A step killed half way (CRYPT_REENCRYPT_CRASH): the resilience data puts the hot zone back first. */
static int recover_interrupted_step(Volume *v, const uint8_t *pass, crypt_reencrypt_info status) {
        int r;

        if (status == CRYPT_REENCRYPT_INVALID)
                return -EBADMSG;
        if (status != CRYPT_REENCRYPT_CRASH)
                return 0;
        r = crypt_reencrypt_init_by_passphrase(v->cd, NULL, (const char *) pass, VMK_KEYSLOT_PASSPHRASE_SIZE,
                                               CRYPT_ANY_SLOT, CRYPT_ANY_SLOT, NULL, NULL,
                                               &(struct crypt_params_reencrypt) { .flags = CRYPT_REENCRYPT_RECOVERY });
        if (r < 0)
                return log_debug_errno(r, "Cannot recover the interrupted encryption of %s: %m", v->device);
        return 0;
}

int volume_inplace_run(const char *device, const char *header_path, const uint8_t vmk[static VMK_SIZE],
                       const Guid *vmk_id, InPlaceProgressFn progress, void *userdata) {
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ uint8_t *pass = NULL;
        ProgressContext ctx = { .fn = progress, .userdata = userdata };
        crypt_reencrypt_info status;
        int r;

        r = settle_header_file(device, header_path);
        if (r < 0)
                return r;
        r = load_authenticated(device, vmk, vmk_id, &v, &pass);
        if (r < 0)
                return r;

        status = crypt_reencrypt_status(v->cd, NULL);
        if (status == CRYPT_REENCRYPT_NONE)
                return 0;
        r = recover_interrupted_step(v, pass, status);
        if (r < 0)
                return r;
        r = crypt_reencrypt_init_by_passphrase(v->cd, NULL, (const char *) pass, VMK_KEYSLOT_PASSPHRASE_SIZE,
                                               CRYPT_ANY_SLOT, CRYPT_ANY_SLOT, NULL, NULL,
                                               &(struct crypt_params_reencrypt) { .flags = CRYPT_REENCRYPT_RESUME_ONLY });
        if (r < 0)
                return log_debug_errno(r, "Cannot resume the encryption of %s: %m", device);
        /* libcryptsetup asks only after each step: a pause wanted before the first one (a job started
         * paused) is honoured here, with nothing encrypted, which volume_inplace_cancel() can undo. */
        if (progress) {
                MovedHead head;

                uint64_t total;

                if (moved_head(v->cd, &head, NULL) >= 0 && data_area_size(v->cd, device, &total) >= 0 &&
                    progress(0, total, userdata) != 0)
                        return -EINTR;
        }
        r = crypt_reencrypt_run(v->cd, progress_adapter, &ctx);
        if (r < 0 && !ctx.paused)
                return log_debug_errno(r, "Encryption of %s failed: %m", device);
        return crypt_reencrypt_status(v->cd, NULL) == CRYPT_REENCRYPT_NONE ? 0 : -EINTR;
}

int volume_inplace_in_progress(const char *device) {
        _cleanup_(volume_freep) Volume *v = NULL;

        if (volume_new(NULL, device, &v) < 0 || crypt_load(v->cd, CRYPT_LUKS2, NULL) < 0)
                return 0;
        return crypt_reencrypt_status(v->cd, NULL) != CRYPT_REENCRYPT_NONE;
}

/* ---- cancelling a job that has encrypted nothing --------------------------------------------- */

#define CANCEL_VERSION 1
#define CANCEL_CHUNK (UINT64_C(1) << 20)

static char *cancel_marker_path(const char *header_path) {
        char *p;

        return asprintf(&p, "%s.cancel", header_path) < 0 ? NULL : p;
}

static int read_exactly(int fd, void *buf, size_t size, uint64_t offset) {
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(fd, (uint8_t *) buf + done, size - done, (off_t) (offset + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                done += (size_t) n;
        }
        return 0;
}

static int write_exactly(int fd, const void *buf, size_t size, uint64_t offset) {
        for (size_t done = 0; done < size;) {
                ssize_t n = pwrite(fd, (const uint8_t *) buf + done, size - done, (off_t) (offset + done));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                done += (size_t) n;
        }
        return 0;
}

/* The copy back, as the marker describes it: the moved head is read from the tail, checked against
 * the digest taken before anything was written (a different disk under the same name, or a tail
 * changed since, is refused with nothing written), and written over the header. Idempotent: the
 * tail is only read, so a crash anywhere in here is finished by the next call. */
static int cancel_finish(const char *device, const char *marker, char **ret_what) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
        uint64_t from, size, device_bytes;
        json_object *version;
        struct stat st;
        size_t n;
        int r;

        r = read_file_full(marker, 4096, &text, &n);
        if (r < 0)
                return r;
        if (json_parse_object_strict(text, n, 4, &o) < 0 ||
            json_check_keys(o, (const char *const[]) { "sealvol_inplace_cancel_version", "volume_uuid", "from",
                                                       "size", "sha256", NULL }) < 0 ||
            !json_object_object_get_ex(o, "sealvol_inplace_cancel_version", &version) ||
            !json_object_is_type(version, json_type_int) || json_object_get_int(version) != CANCEL_VERSION ||
            json_get_u64_string(o, "from", &from) < 0 || json_get_u64_string(o, "size", &size) < 0 ||
            !json_get_string(o, "sha256") || hex_decode_fixed(json_get_string(o, "sha256"), want, sizeof(want)) < 0 ||
            size != INPLACE_DATA_SHIFT || from < size || from > UINT64_MAX - size)
                return set_what(ret_what, "%s does not parse: the cancellation it records is not finished", marker),
                       -EBADMSG;

        if (stat(device, &st) < 0)
                return -errno;
        fd = open(device, O_RDWR | O_CLOEXEC | O_NOCTTY | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
        if (fd < 0)
                return errno == EBUSY ? (set_what(ret_what, "%s is in use", device), -EBUSY) : -errno;
        r = device_size(fd, &device_bytes);
        if (r < 0)
                return r;
        if (from + size > device_bytes)
                return set_what(ret_what, "%s is smaller than when its cancellation began: nothing written", device),
                       -EBADMSG;
        data = malloc(size);
        if (!data)
                return -ENOMEM;
        r = read_exactly(fd, data, size, from);
        if (r < 0)
                return r;
        SHA256(data, size, got);
        if (CRYPTO_memcmp(got, want, sizeof(got)) != 0)
                return set_what(ret_what, "the data at byte %" PRIu64 " of %s is not what the cancellation recorded "
                                "(another disk under this name?): nothing written", from, device), -EBADMSG;
        /* A mebibyte at a time: a crash leaves a head half the file system's and half the header's,
         * which the next call overwrites the same way. */
        for (uint64_t at = 0; r >= 0 && at < size; at += CANCEL_CHUNK)
                r = write_exactly(fd, data + at, MIN(CANCEL_CHUNK, size - at), at);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0)
                return log_debug_errno(r, "Cannot put the head of %s back: %m", device);
        /* Read back through the same descriptor: what the file system will see. */
        r = read_exactly(fd, data, size, 0);
        if (r < 0)
                return r;
        SHA256(data, size, got);
        if (CRYPTO_memcmp(got, want, sizeof(got)) != 0)
                return set_what(ret_what, "the head of %s does not read back as written", device), -EIO;
        return 0;
}

int volume_inplace_cancel(const char *device, const char *header_path, const uint8_t vmk[static VMK_SIZE],
                          const Guid *vmk_id, char **ret_what) {
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_secure_ uint8_t *pass = NULL;
        _cleanup_free_ char *marker = cancel_marker_path(header_path), *text = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        char from[32], size[32];
        crypt_reencrypt_info status;
        MovedHead head;
        int r;

        if (!marker)
                return -ENOMEM;
        if (access(marker, F_OK) == 0)
                return cancel_finish(device, marker, ret_what);
        if (errno != ENOENT)
                return -errno;

        /* What start left: a complete header goes onto the device first, so there is one state to undo. */
        r = settle_header_file(device, header_path);
        if (r < 0)
                return r;
        /* Ours (its token's MAC under the VMK), not a header planted or copied under this name. */
        r = load_authenticated(device, vmk, vmk_id, &v, &pass);
        if (r == -ENOMSG)
                return set_what(ret_what, "%s is not a sealvol volume being encrypted: nothing to cancel", device), r;
        if (r < 0)
                return r;
        status = crypt_reencrypt_status(v->cd, NULL);
        if (status == CRYPT_REENCRYPT_NONE)
                return set_what(ret_what, "%s is encrypted already: nothing to cancel", device), -ENOTRECOVERABLE;
        r = recover_interrupted_step(v, pass, status);
        if (r < 0)
                return r;
        r = moved_head(v->cd, &head, ret_what);
        if (r == -EBADMSG)
                return set_what(ret_what, "the re-encryption metadata of %s is not what sealvol writes: nothing "
                                "changed", device), r;
        if (r < 0)
                return r;

        fd = open(device, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        data = malloc(head.size);
        if (!data)
                return -ENOMEM;
        r = read_exactly(fd, data, head.size, head.from);
        if (r < 0)
                return r;
        SHA256(data, head.size, digest);

        /* The marker first, durably: from here the header is being overwritten, and a restart finishes. */
        snprintf(from, sizeof(from), "%" PRIu64, head.from);
        snprintf(size, sizeof(size), "%" PRIu64, head.size);
        o = json_object_new_object();
        if (!o || json_object_object_add(o, "sealvol_inplace_cancel_version", json_object_new_int(CANCEL_VERSION)) < 0 ||
            json_add_string(o, "volume_uuid", v->token.volume_uuid) < 0 || json_add_string(o, "from", from) < 0 ||
            json_add_string(o, "size", size) < 0 || json_add_hex(o, "sha256", digest, sizeof(digest)) < 0)
                return -ENOMEM;
        text = json_format(o);
        if (!text)
                return -ENOMEM;
        v = volume_free(v);
        fd = safe_close(fd);
        r = write_file_atomic(marker, text, strlen(text), 0600);
        if (r < 0)
                return r;
        return cancel_finish(device, marker, ret_what);
}

int volume_inplace_cancel_pending(const char *header_path) {
        _cleanup_free_ char *marker = cancel_marker_path(header_path);

        if (!marker)
                return -ENOMEM;
        return access(marker, F_OK) == 0;
}

int volume_inplace_cancel_done(const char *header_path) {
        _cleanup_free_ char *marker = cancel_marker_path(header_path);

        if (!marker)
                return -ENOMEM;
        if (unlink(marker) < 0)
                return errno == ENOENT ? 0 : -errno;
        return fsync_parent(marker);
}
