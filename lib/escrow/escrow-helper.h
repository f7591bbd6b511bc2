/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * escrow-helper.h: escrow that talks to the network or runs an administrator's program (Active
 * Directory, the hook) happens in sealvol-escrow, a process of its own, never in sealvold, which holds
 * the VMK (docs/escrow.md, "The escrow helper").
 *
 * One batch is one helper process. sealvold writes the batch into a memfd, seals it (no write, no
 * resize) and passes it over a unix stream socket with SCM_RIGHTS: either to the socket of
 * sealvol-escrow.socket (Accept=yes: systemd starts sealvol-escrow@.service for the connection, in a
 * sandbox of its own that has the network sealvold does not), or, where that socket does not exist
 * (tests, a system without the unit), to a helper it spawns itself on a socketpair. The helper runs the
 * jobs in order and writes one JSON object of results back on the same socket, then exits.
 *
 * The batch: a 4-byte little-endian length H, then H bytes of JSON (the configuration the jobs need
 * and the jobs, no secret), then the blob area: each job's input and secret, each followed by a NUL,
 * named in the JSON by [offset, size] into that area. Secrets never pass through json-c.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "escrow-ad.h"
#include "escrow.h"
#include "guid.h"

#define ESCROW_BATCH_VERSION 1
#define ESCROW_BATCH_JOBS_MAX 1024u
/* The whole batch is read into secure memory: at most SECURE_ALLOC_MAX. */
#define ESCROW_BATCH_MAX ((size_t) 1024 * 1024)
#define ESCROW_RESULTS_MAX ((size_t) 1024 * 1024)
#define ESCROW_HELPER_SOCKET_DEFAULT "/run/sealvol/escrow.socket"
#define ESCROW_HELPER_NAME "sealvol-escrow"
/* What the helper gets beyond the sum of its jobs' own bounds before it is killed. */
#define ESCROW_HELPER_GRACE_SEC 5u

/* One thing to send: a hook invocation or one recovery password to Active Directory. */
typedef struct EscrowJob {
        EscrowTarget target;      /* ESCROW_TARGET_HOOK or ESCROW_TARGET_AD */
        /* hook */
        const char *verb;         /* "store", "retire" */
        bool verify;              /* after a successful "store", run "verify" with the same input */
        const void *data;         /* the hook's stdin */
        size_t size;
        /* ad */
        Guid volume_guid;
        Guid recovery_guid;
        uint64_t created_usec;
        /* The recovery password the job carries (AD: the one escrowed; hook: the one its input may hold
         * in clear), canonical, or NULL. Nothing that shows it comes back. */
        const char *password;
} EscrowJob;

typedef struct EscrowJobResult {
        int error;         /* 0, or -errno of the failure */
        char *location;    /* on success: where the record went (the hook's first line, the object's DN) */
        bool verified;     /* on success: the target could read it back */
        char *message;     /* on failure: why, one printable line, never the password */
} EscrowJobResult;

void escrow_job_results_done(EscrowJobResult *r, size_t n);

/* What the jobs of a batch need to know: the configuration in force when the batch was made. */
typedef struct EscrowHelperConfig {
        const char *hook;         /* absolute path, or NULL when no job is a hook's */
        unsigned hook_timeout_sec;
        const AdConfig *ad;       /* or NULL when no job is AD's */
} EscrowHelperConfig;

/* How sealvold reaches a helper. */
typedef struct EscrowHelper {
        const char *socket_path;  /* a listening socket; used when it exists (NULL: never) */
        const char *helper_path;  /* the program to run when it does not */
        /* Once readable (an eventfd written when the daemon stops), a batch under way is abandoned:
         * -ECANCELED, a helper it spawned killed. NULL: never. */
        const int *cancel_fd;
} EscrowHelper;

/* The bound a batch gets, in seconds: each job's own (a hook twice its timeout with verify, AD four
 * times its network timeout), summed. */
unsigned escrow_batch_deadline_sec(const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n);

/* The batch in a new sealed memfd (MFD_CLOEXEC). -EINVAL for a job the configuration cannot run (a
 * hook job without a hook, an AD job without a password), -E2BIG beyond ESCROW_BATCH_MAX. */
int escrow_batch_build(const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n, int *ret_fd);

/* A batch as the helper reads it. jobs[] point into the buffer that was parsed, which must outlive
 * the request; the configuration's strings are its own. */
typedef struct EscrowBatch {
        unsigned deadline_sec;
        char *hook;
        unsigned hook_timeout_sec;
        bool have_ad;
        AdConfig ad;
        EscrowJob *jobs;
        size_t n_jobs;
} EscrowBatch;

void escrow_batch_done(EscrowBatch *b);
/* Parses a batch strictly (untrusted: the helper runs for whoever may connect to its socket). buf is
 * the batch's bytes, in secure memory. -EBADMSG when malformed, -EPROTONOSUPPORT for another version. */
int escrow_batch_parse(const void *buf, size_t size, EscrowBatch *ret);

/* Results as JSON (malloc'd), and back: exactly n results, each location and message printable text,
 * bounded; -EBADMSG otherwise. */
int escrow_results_format(const EscrowJobResult *r, size_t n, char **ret);
int escrow_results_parse(const char *text, size_t size, EscrowJobResult *ret, size_t n);

/* Runs a batch in a helper (EscrowHelper says how) and waits for its results, at most the batch's
 * deadline and ESCROW_HELPER_GRACE_SEC (a helper of its own is then killed). Blocks: an operation's
 * worker calls it, not the event loop. ret[] gets one result per job. A batch that could not be run
 * or whose helper died or answered nonsense is an error of its own, -errno with *ret_error (malloc'd)
 * saying why; ret[] is then untouched. */
int escrow_helper_run(const EscrowHelper *h, const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n,
                      EscrowJobResult *ret, char **ret_error);

/* The helper's side: receives the batch's memfd on fd (a connected unix stream socket), checks its
 * seals, reads it into secure memory and parses it. *ret_buf is the secure buffer the batch points
 * into. */
int escrow_batch_receive(int fd, void **ret_buf, EscrowBatch *ret);
