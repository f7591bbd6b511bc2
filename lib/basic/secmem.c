/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* secmem.c: the locked, self-wiping allocator for key material (see secmem.h). */

#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "secmem.h"

#define SECURE_MAGIC UINT64_C(0x5345414c564f4c4b) /* "SEALVOLK" */

/* Sits at the start of each mapping; 32 bytes keep the payload 16-byte aligned. */
struct secure_header {
        uint64_t magic;
        size_t size;
        size_t map_size;
        uint64_t reserved;
};

static size_t page_size(void) {
        static size_t cached;

        if (cached == 0) {
                long p = sysconf(_SC_PAGESIZE);
                cached = p > 0 ? (size_t) p : 4096;
        }
        return cached;
}

/* mlock() through the system call: sanitizer runtimes replace the libc wrapper with a no-op (to
 * protect their own shadow mappings from mlockall()), and the sanitized test build must lock the
 * same way production does. */
static int lock_region(void *p, size_t n) {
        return (int) syscall(SYS_mlock, p, n);
}

static struct secure_header *header_of(const void *p) {
        struct secure_header *h = (struct secure_header *) ((uint8_t *) p - sizeof(struct secure_header));

        /* A foreign pointer here would make us unmap memory we do not own: stop at once. */
        if (h->magic != SECURE_MAGIC)
                abort();
        return h;
}

void *secure_alloc(size_t size) {
        struct secure_header *h;
        size_t map_size;
        void *m;

        if (size == 0 || size > SECURE_ALLOC_MAX) {
                errno = EINVAL;
                return NULL;
        }

        map_size = (sizeof(struct secure_header) + size + page_size() - 1) & ~(page_size() - 1);
        m = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
                return NULL;

        /* Locked: never written to swap. Not dumped: a core dump of the daemon holds no key. Wiped
         * on fork: a child we spawn (an escrow hook) starts with zeroes here. Each of these is part
         * of the promise, so a kernel that refuses one is an error, not a warning. */
        if (lock_region(m, map_size) < 0 || madvise(m, map_size, MADV_DONTDUMP) < 0 ||
            madvise(m, map_size, MADV_WIPEONFORK) < 0) {
                int saved_errno = errno;
                (void) munmap(m, map_size);
                errno = saved_errno;
                return NULL;
        }

        h = m;
        *h = (struct secure_header) {
                .magic = SECURE_MAGIC,
                .size = size,
                .map_size = map_size,
        };
        return (uint8_t *) m + sizeof(struct secure_header);
}

void *secure_memdup(const void *p, size_t n) {
        void *q = secure_alloc(n);

        if (q)
                memcpy(q, p, n);
        return q;
}

size_t secure_size(const void *p) {
        return p ? header_of(p)->size : 0;
}

void *secure_free(void *p) {
        struct secure_header *h;
        size_t map_size;

        if (!p)
                return NULL;

        h = header_of(p);
        map_size = h->map_size;
        /* The whole mapping, header included: nothing about the secret, not even its size, stays.
         * Unmapping also unlocks. */
        explicit_bzero(h, map_size);
        (void) munmap(h, map_size);
        return NULL;
}

void *erase_and_free(void *p) {
        if (!p)
                return NULL;
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
        return NULL;
}

bool memeq_secure(const void *a, const void *b, size_t n) {
        const volatile uint8_t *x = a, *y = b;
        uint8_t d = 0;

        for (size_t i = 0; i < n; i++)
                d |= x[i] ^ y[i];
        return d == 0;
}
