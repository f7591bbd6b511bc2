/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-inplace.c: an ext4 image full of known data is encrypted in place and decrypts (with the
 * volume key from a keyslot and OpenSSL's AES-XTS, no device-mapper needed) to exactly the bytes it
 * held; the same with the file system shrunk first; the same with SIGKILL at 5 random moments, each
 * followed by a resume; and every refusal (in use, too small, no file system, not ext, already LUKS,
 * a second request, too full to shrink) changes nothing.
 */

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "fileio.h"
#include "kill-points.h"
#include "luks-fixture.h"
#include "log.h"
#include "secmem.h"
#include "test-util.h"
#include "vmk.h"
#include "volume-inplace.h"
#include "volume.h"

#define MiB (UINT64_C(1) << 20)

static uint8_t test_vmk[VMK_SIZE];
static Guid test_vmk_id;

static VolumeProvisionParams params(void) {
        return (VolumeProvisionParams) {
                .vmk = test_vmk,
                .vmk_id = test_vmk_id,
                .hostname = "db1",
                .recovery_iterations = 1000,
        };
}

static int run_cmd(const char *format, ...) _printf_(1, 2);
static int run_cmd(const char *format, ...) {
        _cleanup_free_ char *cmd = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&cmd, format, ap);
        va_end(ap);
        assert_true(r > 0);
        r = system(cmd);
        return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static char *make_image(const char *dir, const char *name, unsigned size_mb, unsigned fs_mb, unsigned files_mb) {
        char *image = NULL;

        assert_int_equal(ext4_image_new(dir, name, size_mb, fs_mb, files_mb, &image), 0);
        return image;
}

static uint8_t *read_range(const char *path, uint64_t offset, uint64_t size) {
        uint8_t *buf = NULL;

        assert_int_equal(read_file_range(path, offset, size, &buf), 0);
        return buf;
}

static void sha256_file(const char *path, uint8_t ret[static 32]) {
        _cleanup_free_ char *data = NULL;
        size_t n;

        assert_int_equal(read_file_full(path, 512 * MiB, &data, &n), 0);
        SHA256((const unsigned char *) data, n, ret);
}

/* The data area decrypted with the volume key the VMK-derived keyslot opens. */
static uint8_t *decrypt_volume(const char *image, uint64_t size) {
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_secure_ uint8_t *pass = NULL;
        uint8_t *plain = NULL;

        assert_int_equal(volume_load(image, &v), 0);
        assert_int_equal(crypt_get_data_offset(v->cd) * 512, INPLACE_DATA_SHIFT);
        assert_int_equal(volume_vmk_passphrase(v, test_vmk, &test_vmk_id, &pass), 0);
        assert_int_equal(luks_image_decrypt(image, pass, VMK_KEYSLOT_PASSPHRASE_SIZE, size, &plain), 0);
        return plain;
}

static int count_progress(uint64_t done, uint64_t total, void *userdata) {
        unsigned *calls = userdata;

        assert_true(done <= total);
        (*calls)++;
        return 0;
}

static void test_encrypt_intact(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *image = make_image(dir, "a.img", 128, 96, 40), *header = path_join(dir, "a.hdr");
        _cleanup_free_ uint8_t *before = NULL, *after = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_free_ char *what = NULL;
        VolumeProvisionParams p = params();
        InPlaceInfo info;
        unsigned calls = 0;

        assert_int_equal(volume_inplace_check(image, &info, &what), 0);
        assert_string_equal(info.fs_type, "ext4");
        assert_int_equal(info.device_size, 128 * MiB);
        assert_int_equal(info.fs_size, 96 * MiB);
        assert_false(info.needs_shrink);
        before = read_range(image, 0, 96 * MiB);

        assert_int_equal(volume_inplace_start(image, header, &p, &password, &what), 0);
        assert_int_equal(volume_inplace_in_progress(image), 1);
        /* A second request for the same device is refused: it is LUKS now (resume it instead). */
        assert_int_equal(volume_inplace_check(image, NULL, &what), -EEXIST);
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, count_progress, &calls), 0);
        assert_true(calls > 0);
        assert_int_equal(access(header, F_OK), -1);
        assert_int_equal(volume_inplace_in_progress(image), 0);
        /* Done is done. */
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL), 0);

        after = decrypt_volume(image, 96 * MiB);
        assert_memory_equal(before, after, 96 * MiB);

        /* A sealvol volume like any other: the recovery password opens it, the token is complete. */
        assert_int_equal(volume_load(image, &v), 0);
        assert_true(volume_open_recovery(v, password, NULL, 0, NULL) >= 0);
        assert_true(v->token.has[PROTECTOR_TPM] && v->token.has[PROTECTOR_RECOVERY]);
        assert_int_equal(run_cmd("cryptsetup luksDump '%s' | grep -q 'sealvol'", image), 0);
}

static void test_shrink_first(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *image = make_image(dir, "b.img", 96, 96, 20), *header = path_join(dir, "b.hdr");
        _cleanup_free_ char *plain = path_join(dir, "b.plain"), *what = NULL, *src = NULL;
        _cleanup_free_ uint8_t *after = NULL;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = params();
        InPlaceInfo info;

        assert_int_equal(volume_inplace_check(image, &info, &what), 0);
        assert_true(info.needs_shrink);
        if (volume_inplace_start(image, header, &p, &password, &what) < 0)
                fail_msg("in-place start refused: %s", strempty(what));
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL), 0);

        /* The decrypted file system checks clean and holds the same files. */
        after = decrypt_volume(image, 96 * MiB - INPLACE_DATA_SHIFT);
        assert_int_equal(write_file_atomic(plain, after, 96 * MiB - INPLACE_DATA_SHIFT, 0600), 0);
        assert_int_equal(run_cmd("e2fsck -fn '%s' >/dev/null 2>&1", plain), 0);
        assert_true(asprintf(&src, "%s/b.img.src", dir) > 0);
        for (unsigned i = 0; i < 20; i++)
                assert_int_equal(run_cmd("debugfs -R 'cat /file%u' '%s' 2>/dev/null | cmp -s - '%s/file%u'", i, plain, src, i),
                                 0);
}

static void test_sigkill_resume(void **state) {
        const char *dir = *state;
        /* Under valgrind everything is some 50 times slower: a smaller image still takes 5 kills. */
        unsigned fs_mb = getenv("SEALVOL_VALGRIND") ? 64 : 256;
        _cleanup_free_ char *image = make_image(dir, "c.img", fs_mb + 32, fs_mb, fs_mb / 3),
                            *header = path_join(dir, "c.hdr");
        _cleanup_free_ uint8_t *before = NULL, *after = NULL;
        VolumeProvisionParams p = params();
        unsigned kills = 0, rounds = 0;

        before = read_range(image, 0, fs_mb * MiB);
        /* Five kills that land while the work is under way: at the start (formatting, moving the first
         * segment, writing the header) or anywhere in the encryption. */
        while (kills < 5) {
                unsigned delay_ms;
                int status;
                pid_t pid;

                assert_true(++rounds < 50);
                assert_int_equal(RAND_bytes((unsigned char *) &delay_ms, sizeof(delay_ms)), 1);
                delay_ms = 5 + delay_ms % 150;
                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        _cleanup_secure_ char *password = NULL;
                        int r;

                        /* Resume what is there, or start (again: a start killed before the header
                         * reached the device left the file system whole). */
                        r = volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL);
                        if (r == -ENOMSG)
                                r = volume_inplace_start(image, header, &p, &password, NULL);
                        if (r >= 0)
                                r = volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL);
                        _exit(r < 0 ? 1 : 0);
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) delay_ms * 1000000L }, NULL);
                (void) kill(pid, SIGKILL);
                assert_int_equal(waitpid(pid, &status, 0), pid);
                if (WIFSIGNALED(status)) {
                        kills++;
                        continue;
                }
                /* Finished before the kill: nothing left to interrupt. */
                assert_int_equal(WEXITSTATUS(status), 0);
                break;
        }
        assert_int_equal(kills, 5);
        {
                _cleanup_secure_ char *password = NULL;
                int r = volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL);

                if (r == -ENOMSG) {
                        assert_int_equal(volume_inplace_start(image, header, &p, &password, NULL), 0);
                        r = volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL);
                }
                assert_int_equal(r, 0);
        }
        after = decrypt_volume(image, fs_mb * MiB);
        assert_memory_equal(before, after, fs_mb * MiB);
}

static int pause_at_half(uint64_t done, uint64_t total, void *userdata) {
        (void) userdata;
        return done * 2 >= total;
}

static void test_pause_resume(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *image = make_image(dir, "d.img", 128, 96, 30), *header = path_join(dir, "d.hdr");
        _cleanup_free_ uint8_t *before = read_range(image, 0, 96 * MiB), *after = NULL;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = params();

        assert_int_equal(volume_inplace_start(image, header, &p, &password, NULL), 0);
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, pause_at_half, NULL), -EINTR);
        assert_int_equal(volume_inplace_in_progress(image), 1);
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL), 0);
        after = decrypt_volume(image, 96 * MiB);
        assert_memory_equal(before, after, 96 * MiB);
}

static int pause_at_once(uint64_t done, uint64_t total, void *userdata) {
        uint64_t *seen = userdata;

        assert_int_equal(done, 0);
        *seen = total;
        return 1;
}

/* An image started and paused before its first step: the state a job started paused is in. */
static void start_paused(const char *image, const char *header, uint64_t device_size) {
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = params();
        uint64_t total = 0;

        assert_int_equal(volume_inplace_start(image, header, &p, &password, NULL), 0);
        uint64_t done = 1, size = 0;

        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, pause_at_once, &total), -EINTR);
        /* libcryptsetup's measure: the data area, the device after the 16 MiB header. */
        assert_int_equal(total, device_size - INPLACE_DATA_SHIFT);
        assert_int_equal(volume_inplace_in_progress(image), 1);
        assert_int_equal(volume_inplace_progress(image, &done, &size), 0);
        assert_int_equal(done, 0);
        assert_int_equal(size, total);
}

static void assert_file_system_back(const char *image, const uint8_t *before, uint64_t fs_size) {
        _cleanup_free_ uint8_t *now = read_range(image, 0, fs_size);
        _cleanup_free_ char *what = NULL;
        InPlaceInfo info;

        assert_memory_equal(before, now, fs_size);
        /* No LUKS signature is left: the device is an ext4 file system that checks clean, again
         * ready to be encrypted. */
        assert_int_equal(volume_inplace_in_progress(image), 0);
        assert_int_equal(volume_inplace_check(image, &info, &what), 0);
        assert_string_equal(info.fs_type, "ext4");
        assert_int_equal(run_cmd("e2fsck -fn '%s' >/dev/null 2>&1", image), 0);
}

static void test_cancel_before_first_step(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *image = make_image(dir, "e.img", 128, 96, 30), *header = path_join(dir, "e.hdr");
        _cleanup_free_ char *marker = NULL, *what = NULL;
        _cleanup_free_ uint8_t *before = read_range(image, 0, 96 * MiB), *after = NULL;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = params();
        uint8_t other[VMK_SIZE], a[32], b[32];

        start_paused(image, header, 128 * MiB);
        /* Only the VMK the volume is bound to cancels it; a refusal writes nothing. */
        assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
        sha256_file(image, a);
        assert_int_equal(volume_inplace_cancel(image, header, other, &test_vmk_id, &what), -EBADE);
        sha256_file(image, b);
        assert_memory_equal(a, b, sizeof(a));

        assert_int_equal(volume_inplace_cancel(image, header, test_vmk, &test_vmk_id, &what), 0);
        assert_file_system_back(image, before, 96 * MiB);
        /* The marker stays until the caller says it is done: until then a call does it again, and
         * a new start is refused. */
        assert_true(asprintf(&marker, "%s.cancel", header) > 0);
        assert_int_equal(volume_inplace_cancel_pending(header), 1);
        assert_int_equal(volume_inplace_cancel(image, header, test_vmk, &test_vmk_id, &what), 0);
        assert_file_system_back(image, before, 96 * MiB);
        assert_int_equal(volume_inplace_start(image, header, &p, &password, &what), -EBUSY);
        assert_null(password);
        assert_file_system_back(image, before, 96 * MiB);
        assert_int_equal(volume_inplace_cancel_done(header), 0);
        assert_int_equal(access(marker, F_OK), -1);
        assert_int_equal(volume_inplace_cancel_pending(header), 0);
        /* Nothing to cancel any more, and nothing written by asking. */
        what = mfree(what);
        assert_int_equal(volume_inplace_cancel(image, header, test_vmk, &test_vmk_id, &what), -ENOMSG);
        assert_non_null(strstr(strempty(what), "nothing to cancel"));
        assert_file_system_back(image, before, 96 * MiB);

        /* And it can be encrypted afresh. */
        assert_int_equal(volume_inplace_start(image, header, &p, &password, NULL), 0);
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL), 0);
        after = decrypt_volume(image, 96 * MiB);
        assert_memory_equal(before, after, 96 * MiB);
}

static void test_cancel_refused_once_encrypting(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *image = make_image(dir, "f.img", 128, 96, 30), *header = path_join(dir, "f.hdr");
        _cleanup_free_ uint8_t *before = read_range(image, 0, 96 * MiB), *after = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_free_ char *what = NULL;
        VolumeProvisionParams p = params();
        uint8_t a[32], b[32];

        assert_int_equal(volume_inplace_start(image, header, &p, &password, NULL), 0);
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, pause_at_half, NULL), -EINTR);
        {
                uint64_t done, total;

                assert_int_equal(volume_inplace_progress(image, &done, &total), 0);
                assert_int_equal(total, 112 * MiB);
                assert_true(done * 2 >= total && done < total);
        }
        sha256_file(image, a);
        assert_int_equal(volume_inplace_cancel(image, header, test_vmk, &test_vmk_id, &what), -ENOTRECOVERABLE);
        assert_non_null(strstr(strempty(what), "encrypted already"));
        assert_int_equal(volume_inplace_cancel_pending(header), 0);
        sha256_file(image, b);
        assert_memory_equal(a, b, sizeof(a));
        /* It goes on as if nobody had asked. */
        assert_int_equal(volume_inplace_run(image, header, test_vmk, &test_vmk_id, NULL, NULL), 0);
        after = decrypt_volume(image, 96 * MiB);
        assert_memory_equal(before, after, 96 * MiB);
        what = mfree(what);
        assert_int_equal(volume_inplace_cancel(image, header, test_vmk, &test_vmk_id, &what), -ENOTRECOVERABLE);
}

typedef struct CancelRun {
        const char *image, *header;
} CancelRun;

static int cancel_run(void *userdata) {
        CancelRun *c = userdata;

        return volume_inplace_cancel(c->image, c->header, test_vmk, &test_vmk_id, NULL);
}

/* Killed at every step of the cancellation (the marker, each mebibyte put back): the next call,
 * whether the volume still loads or its header is half overwritten, finishes it, and the file system
 * is whole. */
static void test_cancel_killed_at_every_step(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *image = make_image(dir, "g.img", 128, 96, 30), *header = path_join(dir, "g.hdr");
        _cleanup_free_ char *work = path_join(dir, "work"), *paused = path_join(dir, "g.paused");
        _cleanup_free_ uint8_t *before = read_range(image, 0, 96 * MiB);
        bool completed = false;
        unsigned k;

        start_paused(image, header, 128 * MiB);
        assert_int_equal(rename(image, paused), 0);
        assert_int_equal(mkdir(work, 0700), 0);
        for (k = 1; !completed; k++) {
                _cleanup_free_ char *img = path_join(work, "g.img"), *hdr = path_join(work, "g.hdr");
                CancelRun c = { .image = img, .header = hdr };

                assert_true(k < 200);
                assert_int_equal(run_cmd("rm -f '%s'/* && cp --sparse=always '%s' '%s'", work, paused, img), 0);
                assert_int_equal(test_run_killed_at(cancel_run, &c, work, k, &completed), 0);
                if (!completed)
                        assert_int_equal(volume_inplace_cancel(img, hdr, test_vmk, &test_vmk_id, NULL), 0);
                assert_int_equal(volume_inplace_cancel_pending(hdr), 1);
                assert_file_system_back(img, before, 96 * MiB);
                assert_int_equal(volume_inplace_cancel_done(hdr), 0);
        }
        /* The marker's writes, the 16 of the head: each was a kill. */
        if (!getenv("SEALVOL_VALGRIND"))
                assert_true(k > 17);
}

/* start refuses with code, check too (or check_code), the image unchanged. */
static void expect_refusal_check(const char *dir, const char *image, int code, int check_code, const char *words) {
        _cleanup_free_ char *header = path_join(dir, "refused.hdr"), *what = NULL;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = params();
        uint8_t a[32], b[32];

        sha256_file(image, a);
        assert_int_equal(volume_inplace_check(image, NULL, &what), check_code);
        if (check_code < 0) {
                assert_non_null(what);
                assert_non_null(strstr(what, words));
        }
        free(what);
        what = NULL;
        assert_int_equal(volume_inplace_start(image, header, &p, &password, &what), code);
        assert_non_null(what);
        assert_non_null(strstr(what, words));
        assert_int_equal(access(header, F_OK), -1);
        sha256_file(image, b);
        assert_memory_equal(a, b, 32);
}

static void expect_refusal(const char *dir, const char *image, int code, const char *words) {
        expect_refusal_check(dir, image, code, code, words);
}

static void test_refusals(void **state) {
        const char *dir = *state;
        _cleanup_free_ char *small = make_image(dir, "small.img", 48, 48, 1);
        _cleanup_free_ char *empty = path_join(dir, "empty.img"), *swap = path_join(dir, "swap.img");
        _cleanup_free_ char *luks = path_join(dir, "luks.img"), *loop = NULL, *full = NULL, *attached = NULL;
        _cleanup_secure_ char *password = NULL;
        VolumeProvisionParams p = params();
        FILE *f;
        char line[64] = "";

        expect_refusal(dir, small, -ENOSPC, "smaller than 64 MiB");

        assert_int_equal(run_cmd("truncate -s 100M '%s'", empty), 0);
        expect_refusal(dir, empty, -ENODATA, "holds no file system");

        assert_int_equal(run_cmd("truncate -s 100M '%s' && mkswap -q '%s' >/dev/null", swap, swap), 0);
        expect_refusal(dir, swap, -EMEDIUMTYPE, "holds swap");

        assert_int_equal(run_cmd("truncate -s 100M '%s'", luks), 0);
        assert_int_equal(volume_provision(luks, &p, &password, NULL), 0);
        expect_refusal(dir, luks, -EEXIST, "already LUKS");

        /* Too full to shrink: refused before the file system is touched. */
        full = make_image(dir, "full.img", 100, 100, 80);
        expect_refusal_check(dir, full, -ENOSPC, 0, "cannot shrink");

        /* In use: attached to a loop device. */
        attached = make_image(dir, "attached.img", 100, 64, 1);
        assert_true(asprintf(&loop, "losetup -f --show '%s'", attached) > 0);
        f = popen(loop, "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof(line), f));
        assert_int_equal(pclose(f), 0);
        line[strcspn(line, "\n")] = '\0';
        expect_refusal(dir, attached, -EBUSY, "attached to /dev/loop");
        assert_int_equal(run_cmd("losetup -d '%s'", line), 0);
}

static void put_le32(const char *image, off_t offset, uint32_t v) {
        _cleanup_close_ int fd = open(image, O_WRONLY | O_CLOEXEC);
        uint8_t b[4] = { v, v >> 8, v >> 16, v >> 24 };

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, b, sizeof(b), offset), (ssize_t) sizeof(b));
}

/* Superblock counts from an untrusted device: with the 64bit feature, block and free counts whose
 * size in bytes does not fit 64 bits used to wrap into a small, plausible size (found by
 * fuzz-inplace-check: 2^63 blocks read as 64 MiB, the free count above the size); none, or more free
 * than there are, is nonsense too. Each is refused as a superblock that does not parse, before
 * anything is written. */
static void test_superblock_counts(void **state) {
        enum { SB = 1024, BLOCKS_LO = SB + 0x04, FREE_LO = SB + 0x0C, BLOCKS_HI = SB + 0x150, FREE_HI = SB + 0x158 };
        static const struct {
                off_t offset;
                uint32_t value;
        } forged[] = {
                { BLOCKS_HI, UINT32_C(0xB1000000) }, /* 2^63 + 64 Ki blocks of 1 KiB: wrapped to 64 MiB */
                { BLOCKS_HI, UINT32_C(1) << 22 },    /* 2^54 blocks: just too many bytes */
                { FREE_HI, UINT32_C(67109363) },     /* more free blocks than blocks */
                { FREE_LO, UINT32_C(0xFFFFFFFF) },
                { BLOCKS_LO, 0 },                    /* no blocks at all */
        };
        const char *dir = *state;

        for (size_t i = 0; i < ELEMENTSOF(forged); i++) {
                _cleanup_free_ char *image = NULL, *what = NULL;
                InPlaceInfo info;

                assert_true(asprintf(&image, "%s/forged-%zu.img", dir, i) > 0);
                /* 1 KiB blocks, the 64bit feature, and no superblock checksum: libblkid takes the
                 * forged superblock for ext4, so that it reaches sealvol's reading of it. */
                assert_int_equal(run_cmd("truncate -s 100M '%s' && mke2fs -q -F -t ext4 -b 1024 "
                                         "-O 64bit,^metadata_csum '%s' 64M", image, image), 0);
                assert_int_equal(volume_inplace_check(image, &info, &what), 0);
                assert_int_equal(info.fs_size, 64 * MiB);
                assert_null(what);

                put_le32(image, forged[i].offset, forged[i].value);
                assert_int_equal(volume_inplace_check(image, &info, &what), -EMEDIUMTYPE);
                assert_non_null(what);
                assert_non_null(strstr(what, "superblock"));
                assert_non_null(strstr(what, "does not parse"));
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_encrypt_intact, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_shrink_first, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_sigkill_resume, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_pause_resume, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_cancel_before_first_step, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_cancel_refused_once_encrypting, test_setup_tmpdir,
                                                test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_cancel_killed_at_every_step, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_refusals, test_setup_tmpdir, test_teardown_tmpdir),
                cmocka_unit_test_setup_teardown(test_superblock_counts, test_setup_tmpdir, test_teardown_tmpdir),
        };

        log_parse_environment();
        test_require(test_have_executable("mke2fs"), "mke2fs (Debian package e2fsprogs)");
        test_require(test_have_executable("resize2fs"), "resize2fs (Debian package e2fsprogs)");
        test_require(test_have_executable("debugfs"), "debugfs (Debian package e2fsprogs)");
        test_require(test_have_executable("mkswap"), "mkswap (Debian package util-linux)");
        test_require(test_have_executable("losetup"), "losetup (Debian package mount)");
        test_require(test_have_executable("cryptsetup"), "cryptsetup (Debian package cryptsetup-bin)");
        test_require(geteuid() == 0, "root (loop devices)");
        assert_int_equal(RAND_bytes(test_vmk, sizeof(test_vmk)), 1);
        assert_int_equal(guid_generate(&test_vmk_id), 0);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
