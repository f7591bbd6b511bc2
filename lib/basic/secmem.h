/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * secmem.h: where key material lives.
 *
 * Every VMK, derived passphrase, recovery key and DRA-unwrapped secret is held in memory from
 * secure_alloc(): its own anonymous mapping, locked (never swapped), excluded from core dumps,
 * wiped in a forked child, and overwritten before it is returned to the kernel. There is no
 * realloc: a buffer that would grow is allocated anew and the old one freed, so no copy is ever
 * left behind by the allocator.
 *
 * Secrets that a library hands us in ordinary memory are wiped as soon as they are copied out
 * (erase_and_free(), CLEANUP_ERASE()).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"

/* Generous for keys, passphrases and small key files; a caller wanting more is a bug. */
#define SECURE_ALLOC_MAX ((size_t) 1024 * 1024)

/* Returns zero-filled, locked memory, or NULL with errno set (EINVAL for 0 or more than
 * SECURE_ALLOC_MAX bytes, ENOMEM/EAGAIN/EPERM when the memory cannot be locked). */
void *secure_alloc(size_t size);
/* Copies n bytes of p into a new secure allocation. */
void *secure_memdup(const void *p, size_t n);
/* Wipes and releases; accepts NULL; always returns NULL. Aborts on a pointer it did not hand out. */
void *secure_free(void *p);
/* The size that was asked of secure_alloc() for p. */
size_t secure_size(const void *p);

static inline void secure_freep(void *p) {
        *(void **) p = secure_free(*(void **) p);
}
#define _cleanup_secure_ _cleanup_(secure_freep)

/* For secrets in ordinary heap memory that we did not allocate ourselves (strings from libraries):
 * wipe the whole allocation, then free it. */
void *erase_and_free(void *p);
static inline void erase_and_freep(void *p) {
        *(void **) p = erase_and_free(*(void **) p);
}
#define _cleanup_erase_and_free_ _cleanup_(erase_and_freep)

/* Wipes a stack variable (array or struct) when the scope ends, whichever way it ends. */
struct erase_region {
        void *p;
        size_t n;
};
static inline void erase_regionp(struct erase_region *r) {
        explicit_bzero(r->p, r->n);
}
#define CLEANUP_ERASE(var)                                                                            \
        _cleanup_(erase_regionp) _unused_ struct erase_region UNIQ_T(erase) = { .p = &(var),          \
                                                                               .n = sizeof(var) }

/* Constant-time comparison, for authenticators and key checks. */
bool memeq_secure(const void *a, const void *b, size_t n);
