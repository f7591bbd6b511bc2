/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* sealvolctl.h: what the CLI's files share: exit codes (docs/sealvolctl.md) and JSON output. */
#pragma once

#include <stdbool.h>

/* Exit codes: one per class of failure a script may want to tell apart. */
enum {
        EXIT_OK = 0,
        EXIT_FAILED = 1,
        EXIT_USAGE = 2,
        EXIT_DENIED = 3,
        EXIT_NOT_FOUND = 4,
        EXIT_WRONG_KEY = 5,
        EXIT_TPM = 6,
        EXIT_DAMAGED = 7,
        EXIT_RECOVERY_REQUIRED = 8,
        EXIT_NO_DAEMON = 9,
        EXIT_ESCROW = 10,
        EXIT_AMBIGUOUS = 11,
};

/* s as a JSON string, quoted and escaped, on stdout. */
void json_string(const char *s);

/* recovery lookup (sealvolctl-lookup.c): offline, no daemon. */
typedef struct LookupOptions {
        const char *spool;   /* NULL: the configured spool of this machine */
        const char *dra_key; /* path of the DRA private key, or NULL */
        bool json;
        bool quiet;
} LookupOptions;

int verb_recovery_lookup(char *const *args, int n_args, const LookupOptions *o);
