/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-unlock.c: sealvol's side of bench/run, and its TPM command counter.
 *
 *   bench-unlock provision --tcti T --dir D --count N    seal a new VMK to D/vmk.sealed and bind N
 *                                                         new LUKS2 images D/sealvol-NNN.img to it
 *   bench-unlock unlock --tcti T --dir D --count N [--workers W] [--capture F]
 *                                                         one TPM connection, one unseal, then the
 *                                                         first N volumes verified with their derived
 *                                                         keyslot passphrase on W workers (default: a
 *                                                         worker per CPU, what sealvold's unlock pass
 *                                                         does, less device-mapper); with --capture,
 *                                                         through tpm2-tss's pcap TCTI into F
 *   bench-unlock count F                                  commands in a pcap TCTI capture: a line
 *                                                         "COMMANDS SECTIONS FAILED", then a line with
 *                                                         the histogram by command code
 *
 * The count subcommand is here so that both sides of the comparison (this program, and Clevis
 * through tpm2-tools) are counted by the same parser, the one the test suite uses.
 */

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "luks-fixture.h"
#include "secmem.h"
#include "test-util.h"
#include "tpm-count.h"
#include "volume.h"

#define BENCH_VOLUMES_MAX 1024u

typedef struct Args {
        const char *tcti;
        const char *dir;
        const char *capture;
        unsigned count;
        unsigned workers; /* unlock: volume_open_many()'s; default the online CPUs, as sealvold */
} Args;

static double now(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static char *image_path(const char *dir, unsigned i) {
        char *p;

        if (asprintf(&p, "%s/sealvol-%03u.img", dir, i) < 0)
                return NULL;
        return p;
}

/* A sparse file of the test images' size: the LUKS2 header is what the unlock reads. */
static int new_image(const char *path) {
        _cleanup_close_ int fd = -EBADF;

        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t) LUKS_IMAGE_SIZE_DEFAULT) < 0)
                return -errno;
        return 0;
}

static int provision(const Args *a) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *vmk_path = path_join(a->dir, "vmk.sealed");
        VmkBlob blob;
        int r;

        if (!vmk_path)
                return log_oom();
        if (access(vmk_path, F_OK) == 0)
                return log_error_errno(EEXIST, "%s exists already: provision into a new directory.",
                                       vmk_path);
        r = tpm2_context_new(a->tcti, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to open the TPM at %s: %m", a->tcti);
        r = vmk_generate(&vmk);
        if (r < 0)
                return log_error_errno(r, "Failed to generate the VMK: %m");
        r = vmk_seal_to_file(c, vmk, /* identity= */ NULL, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, vmk_path,
                             &blob);
        if (r < 0)
                return log_error_errno(r, "Failed to seal the VMK: %m");

        for (unsigned i = 0; i < a->count; i++) {
                /* The tpm keyslot gets the production KDF whatever is asked here (minimal PBKDF2, its
                 * input is a full-entropy key); only the recovery keyslot is made cheap, as it is
                 * not on the unlock path and its production cost would only slow the setup. */
                VolumeProvisionParams p = {
                        .vmk = vmk,
                        .vmk_id = blob.vmk_id,
                        .hostname = "bench.example.com",
                        .recovery_iterations = VOLUME_PBKDF2_ITERATIONS_MIN,
                };
                _cleanup_secure_ char *password = NULL;
                _cleanup_free_ char *path = image_path(a->dir, i);

                if (!path)
                        return log_oom();
                r = new_image(path);
                if (r < 0)
                        return log_error_errno(r, "Failed to create %s: %m", path);
                r = volume_provision(path, &p, &password, /* ret= */ NULL);
                if (r < 0)
                        return log_error_errno(r, "Failed to provision %s: %m", path);
        }
        return 0;
}

typedef struct BenchKey {
        const uint8_t *vmk;
        Guid id;
} BenchKey;

static int bench_key(const Guid *id, const uint8_t **ret, void *userdata) {
        const BenchKey *k = userdata;

        if (!guid_equal(id, &k->id))
                return -EREMOTE;
        *ret = k->vmk;
        return 0;
}

static void items_free(VolumeOpenItem *items, char **paths, unsigned n) {
        for (unsigned i = 0; i < n; i++) {
                volume_free(items[i].vol);
                free(paths[i]);
        }
}

static int unlock_volumes(const Args *a, VolumeOpenItem *items, char **paths, BenchKey *key) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *vmk_path = path_join(a->dir, "vmk.sealed");
        double start, unsealed, done;
        VmkBlob blob;
        int r;

        if (!vmk_path)
                return log_oom();

        start = now();
        if (a->capture)
                r = tpm_count_context_new(a->tcti, a->capture, &c);
        else
                r = tpm2_context_new(a->tcti, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to open the TPM at %s: %m", a->tcti);
        r = vmk_unseal_from_file(c, vmk_path, &vmk, &blob, /* ret_changed_pcrs= */ NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to unseal %s: %m", vmk_path);
        unsealed = now();

        /* What sealvold's unlock pass runs after its unseal: volume_open_many(), a worker per core. No
         * name: libcryptsetup checks each key against its keyslot's digest and maps nothing. */
        key->vmk = vmk;
        key->id = blob.vmk_id;
        for (unsigned i = 0; i < a->count; i++) {
                paths[i] = image_path(a->dir, i);
                if (!paths[i])
                        return log_oom();
                items[i] = (VolumeOpenItem) { .device = paths[i] };
        }
        volume_open_many(items, a->count, a->workers, bench_key, key);
        done = now();
        for (unsigned i = 0; i < a->count; i++)
                if (items[i].result < 0)
                        r = log_error_errno(items[i].result, "Failed to open %s with the VMK: %m", paths[i]);
        if (r < 0)
                return r;

        printf("unlocked %u volumes (%u workers): TPM %.6f s, volumes %.6f s, total %.6f s\n", a->count, a->workers,
               unsealed - start, done - unsealed, done - start);
        return 0;
}

static int unlock(const Args *a) {
        VolumeOpenItem items[BENCH_VOLUMES_MAX] = {};
        char *paths[BENCH_VOLUMES_MAX] = {};
        BenchKey key = {};
        int r = unlock_volumes(a, items, paths, &key);

        items_free(items, paths, a->count);
        return r;
}

static int count(const char *capture) {
        TpmCount c;
        char histogram[4096];
        int r;

        r = tpm_count_read(capture, &c);
        if (r < 0)
                return log_error_errno(r, "Failed to read the capture %s: %m", capture);
        printf("%u %u %u\n%s\n", c.commands, c.sections, c.failed,
               tpm_count_format(&c, histogram, sizeof(histogram)));
        return 0;
}

static int parse_args(int argc, char *argv[], Args *ret) {
        static const struct option options[] = {
                { "tcti", required_argument, NULL, 't' },
                { "dir", required_argument, NULL, 'd' },
                { "count", required_argument, NULL, 'n' },
                { "capture", required_argument, NULL, 'c' },
                { "workers", required_argument, NULL, 'w' },
                {},
        };
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        Args a = { .workers = cpus > 0 ? (unsigned) cpus : 1 };
        int opt;

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case 't':
                        a.tcti = optarg;
                        break;
                case 'd':
                        a.dir = optarg;
                        break;
                case 'c':
                        a.capture = optarg;
                        break;
                case 'w': {
                        char *end;
                        unsigned long n;

                        errno = 0;
                        n = strtoul(optarg, &end, 10);
                        if (errno != 0 || *end != '\0' || n == 0 || n > 64)
                                return log_error_errno(EINVAL, "--workers must be 1..64, not '%s'.", optarg);
                        a.workers = (unsigned) n;
                        break;
                }
                case 'n': {
                        char *end;
                        unsigned long n;

                        errno = 0;
                        n = strtoul(optarg, &end, 10);
                        if (errno != 0 || *end != '\0' || n == 0 || n > BENCH_VOLUMES_MAX)
                                return log_error_errno(EINVAL, "--count must be 1..%u, not '%s'.",
                                                       BENCH_VOLUMES_MAX, optarg);
                        a.count = (unsigned) n;
                        break;
                }
                default:
                        return -EINVAL;
                }
        if (optind != argc)
                return log_error_errno(EINVAL, "Unexpected argument '%s'.", argv[optind]);
        if (!a.tcti || !a.dir || a.count == 0)
                return log_error_errno(EINVAL, "--tcti, --dir and --count are required.");

        *ret = a;
        return 0;
}

static void usage(void) {
        fprintf(stderr,
                "usage: bench-unlock provision --tcti TCTI --dir DIR --count N\n"
                "       bench-unlock unlock --tcti TCTI --dir DIR --count N [--workers W] [--capture FILE]\n"
                "       bench-unlock count FILE\n");
}

int main(int argc, char *argv[]) {
        Args a;
        int r;

        log_parse_environment();
        if (argc == 3 && streq(argv[1], "count"))
                return count(argv[2]) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        if (argc < 2 || (!streq(argv[1], "provision") && !streq(argv[1], "unlock"))) {
                usage();
                return 2;
        }

        optind = 2;
        r = parse_args(argc, argv, &a);
        if (r < 0) {
                usage();
                return 2;
        }
        r = streq(argv[1], "provision") ? provision(&a) : unlock(&a);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
