/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common.c: see common.h. */

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

void fuzz_must(bool ok, const char *what) {
        if (!ok) {
                fprintf(stderr, "fuzz: %s failed: %s\n", what, strerror(errno));
                abort();
        }
}

void fuzz_tmpdir_new(const char *name, char *buf, size_t size) {
        int n = snprintf(buf, size, "%s/sealvol-%s.XXXXXX",
                         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", name);

        fuzz_must(n > 0 && (size_t) n < size, "naming the directory");
        fuzz_must(mkdtemp(buf) != NULL, "mkdtemp");
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st;
        (void) flag;
        (void) ftw;
        (void) remove(path);
        return 0;
}

void fuzz_rm_rf(const char *path) {
        (void) nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}
