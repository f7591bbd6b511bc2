/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* common.h: what the fuzz targets that need files share (fuzz-bus, fuzz-state). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Aborts with what failed and errno: a fuzz target that cannot set itself up must not fuzz. */
void fuzz_must(bool ok, const char *what);

/* A new directory "<tmpfs or /tmp>/sealvol-<name>.XXXXXX" into buf: in memory when /dev/shm is
 * there, as the targets write or read files on every run. */
void fuzz_tmpdir_new(const char *name, char *buf, size_t size);

/* Removes path and everything below it, without crossing into other mounts. */
void fuzz_rm_rf(const char *path);
