/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fileio.c: bounded reads and crash-safe replacement of files (see fileio.h). */

#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "macro.h"

int write_all(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode) {
        _cleanup_free_ char *tmp = NULL, *dir_copy = NULL;
        _cleanup_close_ int fd = -EBADF, dir_fd = -EBADF;
        int r;

        if (asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0) {
                tmp = NULL;
                return -ENOMEM;
        }
        dir_copy = strdup(path);
        if (!dir_copy)
                return -ENOMEM;

        dir_fd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return -errno;

        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;

        /* Mode first, content second: the file is never readable by others, not even empty. */
        if (fchmod(fd, mode) < 0)
                r = -errno;
        else
                r = write_all(fd, data, size);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        /* The rename is durable only once the directory is. */
        if (fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

static bool is_stale_temporary(const char *name) {
        size_t n = strlen(name);
        const char *suffix;

        if (n <= strlen(".tmp.XXXXXX"))
                return false;
        suffix = name + n - strlen(".tmp.XXXXXX");
        if (strncmp(suffix, ".tmp.", 5) != 0)
                return false;
        for (const char *p = suffix + 5; *p; p++)
                if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
                        return false;
        return true;
}

int sweep_stale_temporaries(const char *dir) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        struct dirent *de;
        int n = 0;

        if (!d)
                return errno == ENOENT ? 0 : -errno;
        while ((errno = 0, de = readdir(d))) {
                struct stat st;

                if (!is_stale_temporary(de->d_name))
                        continue;
                /* Only files (a directory or link by that name is somebody else's). */
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0)
                        return -errno;
                n++;
        }
        return errno == 0 ? n : -errno;
}

int read_file_full(const char *path, size_t max, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uintmax_t) st.st_size > max)
                return -EFBIG;

        buf = malloc(max + 1);
        if (!buf)
                return -ENOMEM;
        /* Read up to max + 1 so a file that grew after fstat() is still caught. */
        for (;;) {
                ssize_t k = read(fd, buf + n, max + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > max)
                        return -EFBIG;
        }
        buf[n] = '\0';

        *ret = TAKE_PTR(buf);
        if (ret_size)
                *ret_size = n;
        return 0;
}

/* Symbolic links followed on the way to a file before giving up, as the kernel does (ELOOP). */
#define PATH_SYMLINKS_MAX 40

_printf_(2, 3) static int not_root_only(char **ret_reason, const char *format, ...) {
        va_list ap;

        if (ret_reason) {
                va_start(ap, format);
                if (vasprintf(ret_reason, format, ap) < 0)
                        *ret_reason = NULL;
                va_end(ap);
        }
        return -EPERM;
}

/* Owned by root, and writable by no one else unless sticky (then others cannot rename or remove the
 * entries root owns in it, which are all the walk goes through). */
static int check_dir_root_only(const char *path, const struct stat *st, char **ret_reason) {
        if (!S_ISDIR(st->st_mode))
                return -ENOTDIR;
        if (st->st_uid != 0)
                return not_root_only(ret_reason, "%s is owned by uid %u, not root", path, (unsigned) st->st_uid);
        if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_mode & S_ISVTX))
                return not_root_only(ret_reason, "%s is a directory writable by group or others (mode %04o)", path,
                                     (unsigned) (st->st_mode & 07777));
        return 0;
}

int path_check_root_only(const char *path, char **ret_reason) {
        /* todo: what is left to walk; done: the walked prefix, free of links ("" is "/"). */
        _cleanup_free_ char *todo = NULL, *done = NULL;
        unsigned links = 0;
        struct stat st;
        int r;

        if (!path || path[0] != '/')
                return -EINVAL;
        todo = strdup(path);
        done = strdup("");
        if (!todo || !done)
                return -ENOMEM;
        if (stat("/", &st) < 0)
                return -errno;
        r = check_dir_root_only("/", &st, ret_reason);
        if (r < 0)
                return r;

        for (;;) {
                _cleanup_free_ char *name = NULL, *next = NULL;
                const char *c = todo + strspn(todo, "/"), *rest;
                size_t n = strcspn(c, "/");
                bool last;

                if (n == 0)
                        return -EISDIR; /* the path names a directory */
                rest = c + n;
                last = rest[strspn(rest, "/")] == '\0';
                name = strndup(c, n);
                if (!name)
                        return -ENOMEM;

                if (streq(name, ".") || streq(name, "..")) {
                        char *slash = strrchr(done, '/');

                        if (streq(name, "..") && slash)
                                *slash = '\0';
                        if (last)
                                return -EISDIR;
                        memmove(todo, rest, strlen(rest) + 1);
                        continue;
                }
                if (asprintf(&next, "%s/%s", done, name) < 0) {
                        next = NULL;
                        return -ENOMEM;
                }
                if (lstat(next, &st) < 0)
                        return -errno;

                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        char *joined;
                        ssize_t k;

                        /* Whoever owns a link in a sticky directory may replace it. */
                        if (st.st_uid != 0)
                                return not_root_only(ret_reason, "%s is a symbolic link owned by uid %u, not root",
                                                     next, (unsigned) st.st_uid);
                        if (++links > PATH_SYMLINKS_MAX)
                                return -ELOOP;
                        k = readlink(next, target, sizeof(target));
                        if (k < 0)
                                return -errno;
                        if ((size_t) k >= sizeof(target))
                                return -ENAMETOOLONG;
                        target[k] = '\0';
                        /* A relative target goes on from the link's directory, which done still is. */
                        if (target[0] == '/')
                                done[0] = '\0';
                        if (asprintf(&joined, "%s%s", target, rest) < 0)
                                return -ENOMEM;
                        free(todo);
                        todo = joined;
                        continue;
                }

                if (!last) {
                        r = check_dir_root_only(next, &st, ret_reason);
                        if (r < 0)
                                return r;
                        free(done);
                        done = TAKE_PTR(next);
                        memmove(todo, rest, strlen(rest) + 1);
                        continue;
                }
                if (!S_ISREG(st.st_mode))
                        return not_root_only(ret_reason, "%s is not a regular file", next);
                if (st.st_uid != 0)
                        return not_root_only(ret_reason, "%s is owned by uid %u, not root", next, (unsigned) st.st_uid);
                if (st.st_mode & (S_IWGRP | S_IWOTH))
                        return not_root_only(ret_reason, "%s is writable by group or others (mode %04o)", next,
                                             (unsigned) (st.st_mode & 07777));
                return 0;
        }
}
