/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fileio.h: reading bounded files and replacing files atomically.
 *
 * write_file_atomic() is how every piece of sealvol state reaches the disk: a crash at any moment
 * leaves the old content or the new content under the name, never a mix and never nothing.
 * path_check_root_only() is how a file that decides trust (a DRA trust anchor) is taken only from
 * where nobody but root can change it.
 */
#pragma once

#include <dirent.h>
#include <stddef.h>
#include <sys/types.h>

static inline void closedirp(DIR **d) {
        if (*d)
                (void) closedir(*d);
}

/* Writes all of data to fd, through short writes and EINTR: 0 or -errno. */
int write_all(int fd, const void *data, size_t size);

/* Writes data to a temporary file next to path (mode, fsync), renames it over path, and fsyncs the
 * directory so the rename itself is durable. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);

/* Removes what write_file_atomic() leaves when killed between creating its temporary file and the
 * rename ("<name>.tmp.XXXXXX", a regular file) from dir, not below it. For a start-up, when nothing
 * is being written. The number removed, 0 if dir does not exist, or -errno. */
int sweep_stale_temporaries(const char *dir);

/* Reads a whole regular file of at most max bytes; the result is NUL-terminated (not counted in
 * *ret_size). -EFBIG when larger, -EBADF-like errors as errno says. */
int read_file_full(const char *path, size_t max, char **ret, size_t *ret_size);

/* Whether the regular file at path (absolute) can be changed by root alone: the file is owned by root
 * and writable by no one else, and so is every directory on the way to it, through every symbolic
 * link (a directory may instead be sticky and owned by root: others may add entries there, but not
 * rename or remove root's). 0 if so; -EPERM if not, with what is wrong in *ret_reason (malloc'd; may
 * be NULL; written only with -EPERM); -ENOENT, -ELOOP, -EINVAL (a relative path), -ENOMEM. */
int path_check_root_only(const char *path, char **ret_reason);
