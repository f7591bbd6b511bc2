/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-inplace: in-place encryption throughput of sealvol's library on one image, as bench/run-inplace
 * measures it next to `cryptsetup reencrypt --encrypt` on an identical copy.
 *
 *   bench-inplace IMAGE WORKDIR
 *
 * Starts (formats the detached header with every protector, moves the first segment, writes the
 * header) and runs the encryption to its end; prints "start SECONDS" and "run SECONDS BYTES" on stdout.
 * The start includes protector set-up cryptsetup's own start does not have (three keyslots and the
 * token), so the comparison is made on the whole and on the run alone.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "macro.h"
#include "secmem.h"
#include "vmk.h"
#include "volume-inplace.h"

static double now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int last(uint64_t done, uint64_t total, void *userdata) {
        (void) done;
        *(uint64_t *) userdata = total;
        return 0;
}

int main(int argc, char *argv[]) {
        _cleanup_secure_ char *password = NULL;
        _cleanup_free_ char *header = NULL, *what = NULL;
        uint8_t vmk[VMK_SIZE];
        uint64_t total = 0;
        Guid vmk_id;
        double t0, t1, t2;
        int r;

        if (argc != 3) {
                fprintf(stderr, "usage: %s IMAGE WORKDIR\n", argv[0]);
                return 2;
        }
        if (RAND_bytes(vmk, sizeof(vmk)) != 1 || guid_generate(&vmk_id) < 0 ||
            asprintf(&header, "%s/bench.hdr", argv[2]) < 0)
                return 1;
        VolumeProvisionParams p = {
                .vmk = vmk,
                .vmk_id = vmk_id,
                .hostname = "bench",
                /* The recovery keyslot's KDF is a one-off cost of provisioning, not of encryption. */
                .recovery_iterations = 1000,
        };

        t0 = now();
        r = volume_inplace_start(argv[1], header, &p, &password, &what);
        if (r < 0) {
                fprintf(stderr, "start: %s: %s\n", strerror(-r), what ? what : "");
                return 1;
        }
        t1 = now();
        r = volume_inplace_run(argv[1], header, vmk, &vmk_id, last, &total);
        if (r < 0) {
                fprintf(stderr, "run: %s\n", strerror(-r));
                return 1;
        }
        t2 = now();
        printf("start %.3f\nrun %.3f %llu\n", t1 - t0, t2 - t1, (unsigned long long) total);
        return 0;
}
