/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * macro.h: cleanup attributes, ownership hand-over and the small helpers every sealvol file uses.
 *
 * libsystemd does not export systemd's internal helpers, so these are our own equivalents written
 * against plain C (gnu11: statement expressions and __typeof__).
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _sentinel_ __attribute__((sentinel))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define MIN(a, b)                               \
        ({                                      \
                __typeof__(a) _a = (a);         \
                __typeof__(b) _b = (b);         \
                _a < _b ? _a : _b;              \
        })

#define MAX(a, b)                               \
        ({                                      \
                __typeof__(a) _a = (a);         \
                __typeof__(b) _b = (b);         \
                _a > _b ? _a : _b;              \
        })

/* IN_SET(r, -ENOLCK, -ENODEV): x equals one of the listed values. */
#define IN_SET(x, first, ...)                                                   \
        ({                                                                      \
                const __typeof__(first) _set_[] = { first, __VA_ARGS__ };       \
                bool _found_ = false;                                           \
                for (size_t _i_ = 0; _i_ < ELEMENTSOF(_set_); _i_++)            \
                        if (_set_[_i_] == (x)) {                                \
                                _found_ = true;                                 \
                                break;                                          \
                        }                                                       \
                _found_;                                                        \
        })

#define XCONCATENATE(x, y) x##y
#define CONCATENATE(x, y) XCONCATENATE(x, y)
#define UNIQ_T(x) CONCATENATE(__unique_prefix_##x, __COUNTER__)

/* Hand ownership of a pointer or fd over: returns the value and leaves NULL / -EBADF behind, so the
 * cleanup attribute of the old owner does nothing. */
#define TAKE_PTR(p)                                     \
        ({                                              \
                __typeof__(p) *_pp_ = &(p);             \
                __typeof__(p) _p_ = *_pp_;              \
                *_pp_ = NULL;                           \
                _p_;                                    \
        })
#define TAKE_FD(fd)                                     \
        ({                                              \
                int *_pfd_ = &(fd);                     \
                int _fd_ = *_pfd_;                      \
                *_pfd_ = -EBADF;                        \
                _fd_;                                   \
        })

/* Defines funcp(type *p) for use with _cleanup_(funcp); func must accept NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        (void) func(*p);                \
        }

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved_errno = errno;
                (void) close(fd);
                errno = saved_errno;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline FILE *safe_fclose(FILE *f) {
        if (f)
                (void) fclose(f);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, safe_fclose);
#define _cleanup_fclose_ _cleanup_(safe_fclosep)

/* errno as a negative value, never 0: for the "return -errno" convention after a libc call that
 * failed without setting errno (which happens, e.g. with some allocation paths). */
static inline int negative_errno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline bool streq_ptr(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return __builtin_strcmp(a, b) == 0;
}
#define streq(a, b) (__builtin_strcmp((a), (b)) == 0)

static inline const char *strempty(const char *s) {
        return s ? s : "";
}

static inline const char *strna(const char *s) {
        return s ? s : "n/a";
}

static inline bool isempty(const char *s) {
        return !s || s[0] == '\0';
}
