/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvolctl-lookup.c: `sealvolctl recovery lookup`, the Data Recovery Agent holder's side of the
 * spool (docs/escrow.md). Offline: it needs no daemon and no TPM, only the records (a copy of a spool
 * directory, or files) and, for encrypted ones, the DRA private key, on the holder's own machine.
 *
 * At a recovery prompt the operator reads the first 8 hex digits of the Key ID, as with BitLocker;
 * this finds the record by them. A damaged or foreign file in a directory is reported and skipped:
 * one bad record must never hide the good one.
 */

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "conf.h"
#include "dra.h"
#include "escrow.h"
#include "openssl-util.h"
#include "recovery.h"
#include "secmem.h"
#include "sealvolctl.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* A recovery password found, with every file that holds it (a record may exist plain and, once a DRA
 * was configured, encrypted too). */
typedef struct Found {
        EscrowEntry entry;
        char **paths;
        size_t n_paths;
        bool encrypted; /* by at least one of them */
} Found;

typedef struct Lookup {
        const LookupOptions *options;
        EVP_PKEY *key;
        Found *found;
        size_t n_found;
        bool printed_any;
} Lookup;

/* What a query ran into besides matches: decides the exit code when nothing matched. */
typedef struct Outcome {
        unsigned wrong_key, no_key, damaged, failed;
} Outcome;

static void lookup_done(Lookup *l) {
        for (size_t i = 0; i < l->n_found; i++) {
                escrow_entry_done(&l->found[i].entry);
                for (size_t j = 0; j < l->found[i].n_paths; j++)
                        free(l->found[i].paths[j]);
                free(l->found[i].paths);
        }
        free(l->found);
        l->found = NULL;
        l->n_found = 0;
        EVP_PKEY_free(l->key);
        l->key = NULL;
}

static int found_add_path(Found *f, const char *path, bool encrypted) {
        char **p = realloc(f->paths, (f->n_paths + 1) * sizeof(char *));

        if (!p)
                return -ENOMEM;
        f->paths = p;
        f->paths[f->n_paths] = strdup(path);
        if (!f->paths[f->n_paths])
                return -ENOMEM;
        f->n_paths++;
        f->encrypted = f->encrypted || encrypted;
        return 0;
}

/* Takes e over. The same Key ID with the same password is one result, whichever files hold it. */
static int lookup_add(Lookup *l, EscrowEntry *e, const char *path) {
        Found *f;

        for (size_t i = 0; i < l->n_found; i++) {
                Found *g = &l->found[i];

                if (guid_equal(&g->entry.key_id, &e->key_id) && streq(g->entry.volume_uuid, e->volume_uuid) &&
                    memeq_secure(g->entry.password, e->password, RECOVERY_PASSWORD_LEN)) {
                        bool encrypted = e->encrypted;

                        escrow_entry_done(e);
                        return found_add_path(g, path, encrypted);
                }
        }
        f = realloc(l->found, (l->n_found + 1) * sizeof(Found));
        if (!f)
                return -ENOMEM;
        l->found = f;
        f = &l->found[l->n_found++];
        *f = (Found) { .entry = *e };
        *e = (EscrowEntry) {};
        return found_add_path(f, path, f->entry.encrypted);
}

static const char *entry_error_to_string(int r) {
        switch (-r) {
        case EBADMSG:
                return "not a valid sealvol escrow record";
        case EPROTONOSUPPORT:
                return "written by a newer sealvol";
        case EFBIG:
                return "larger than any escrow record";
        case EKEYREJECTED:
                return "not encrypted to this DRA key (wrong key, or the record is damaged)";
        case ENOKEY:
                return "encrypted to the DRA: give its private key with --dra-key FILE";
        case EISDIR:
                return "not a regular file";
        default:
                return strerror(-r);
        }
}

/* Reports a record that could not be read, counts it, and says which exit code it stands for. */
static int outcome_add(Outcome *o, const char *path, int r) {
        fprintf(stderr, "%s: %s, skipped.\n", path, entry_error_to_string(r));
        switch (-r) {
        case EKEYREJECTED:
                o->wrong_key++;
                return EXIT_WRONG_KEY;
        case ENOKEY:
                o->no_key++;
                return EXIT_WRONG_KEY;
        case EBADMSG:
        case EPROTONOSUPPORT:
        case EFBIG:
        case EISDIR:
                o->damaged++;
                return EXIT_DAMAGED;
        case ENOENT:
                o->failed++;
                return EXIT_NOT_FOUND;
        default:
                o->failed++;
                return EXIT_FAILED;
        }
}

static int outcome_exit_code(const Outcome *o) {
        /* The record asked for may be among those that could not be opened: the most telling reason
         * first. */
        if (o->wrong_key > 0 || o->no_key > 0)
                return EXIT_WRONG_KEY;
        if (o->damaged > 0)
                return EXIT_DAMAGED;
        if (o->failed > 0)
                return EXIT_FAILED;
        return EXIT_NOT_FOUND;
}

static void print_found(Lookup *l, const Found *f) {
        const EscrowEntry *e = &f->entry;
        char key_id[GUID_STRING_MAX], vmk_id[GUID_STRING_MAX], created[sizeof("YYYY-MM-DDTHH:MM:SSZ") + 16] = "";
        time_t t = (time_t) e->created;
        struct tm tm;

        if (gmtime_r(&t, &tm))
                (void) strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", &tm);
        guid_format(&e->key_id, key_id);
        guid_format(&e->vmk_id, vmk_id);

        if (l->options->json) {
                printf("%s{\"key_id\":", l->printed_any ? "," : "");
                json_string(key_id);
                printf(",\"recovery_password\":");
                json_string(e->password);
                printf(",\"volume_uuid\":");
                json_string(e->volume_uuid);
                printf(",\"device\":");
                json_string(e->device);
                printf(",\"hostname\":");
                json_string(e->hostname);
                if (e->machine_id) {
                        printf(",\"machine_id\":");
                        json_string(e->machine_id);
                }
                printf(",\"vmk_id\":");
                json_string(vmk_id);
                printf(",\"created\":");
                json_string(created);
                printf(",\"encrypted\":%s,\"records\":[", f->encrypted ? "true" : "false");
                for (size_t i = 0; i < f->n_paths; i++) {
                        printf("%s", i > 0 ? "," : "");
                        json_string(f->paths[i]);
                }
                printf("]}");
        } else if (l->options->quiet)
                printf("%s\n", e->password);
        else {
                /* Hostname and device were checked printable by the parser: safe on a terminal. */
                printf("%sKey ID:            %s\n"
                       "Recovery password: %s\n"
                       "Volume:            %s\n"
                       "Device:            %s\n"
                       "Host:              %s\n"
                       "Created:           %s\n",
                       l->printed_any ? "\n" : "", key_id, e->password, e->volume_uuid,
                       isempty(e->device) ? "-" : e->device, isempty(e->hostname) ? "-" : e->hostname, created);
                for (size_t i = 0; i < f->n_paths; i++)
                        printf("%-19s%s\n", i == 0 ? "Record:" : "", f->paths[i]);
        }
        l->printed_any = true;
}

static void print_found_from(Lookup *l, size_t first) {
        for (size_t i = first; i < l->n_found; i++)
                print_found(l, &l->found[i]);
        fflush(stdout);
}

/* The hex digits of s when it is nothing but hex digits and dashes (how a Key ID is written), else
 * -1. */
static int key_id_digits(const char *s) {
        int digits = 0;

        for (const char *c = s; *c; c++) {
                if (*c == '-')
                        continue;
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F')))
                        return -1;
                digits++;
        }
        return digits;
}

/* A Key ID or a prefix of it, as read off a recovery prompt: hex digits, dashes anywhere, at least
 * the 8 digits BitLocker shows (fewer would match too much to show passwords for). */
static bool is_key_id_query(const char *s) {
        int digits = key_id_digits(s);

        return digits >= 8 && digits <= GUID_HEX_DIGITS;
}

/* Hex digits and dashes but too few of them to be a query: a mistake rather than a file name. */
static bool is_short_key_id(const char *s) {
        int digits = key_id_digits(s);

        return digits >= 0 && digits < 8 && access(s, F_OK) < 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && streq(s + n - k, suffix);
}

/* One record file of a directory search. */
static void lookup_dir_entry(Lookup *l, const char *dir, const char *name, const char *query, Outcome *o) {
        _cleanup_(escrow_entry_done) EscrowEntry e = {};
        _cleanup_free_ char *path = NULL;
        Guid name_volume, name_key_id;
        bool named;
        int r;

        if (!has_suffix(name, ".cms") && !has_suffix(name, ".json"))
                return;
        /* The daemon's spool names each password record after its volume and Key ID: records of other
         * Key IDs are skipped without being decrypted. The VMK export records ("vmk-<VMK ID>.json")
         * hold no recovery password. Any other name is opened and judged by its content. */
        named = escrow_spool_name_parse(name, &name_volume, &name_key_id, NULL) >= 0;
        if (named && !guid_matches_prefix(&name_key_id, query))
                return;
        if (!named && strncmp(name, "vmk-", 4) == 0)
                return;
        if (asprintf(&path, "%s/%s", dir, name) < 0) {
                path = NULL;
                o->failed++;
                return;
        }
        r = escrow_entry_open_file(path, l->key, &e);
        if (r < 0) {
                (void) outcome_add(o, path, r);
                return;
        }
        if (r != ESCROW_RECORD_PASSWORD || !guid_matches_prefix(&e.key_id, query)) {
                if (named) {
                        fprintf(stderr, "%s: holds %s, not the record its name says, skipped.\n", path,
                                r == ESCROW_RECORD_PASSWORD ? "another Key ID" : "no recovery password");
                        o->damaged++;
                }
                return;
        }
        if (named) {
                Guid volume;

                if (guid_parse(e.volume_uuid, &volume) < 0 || !guid_equal(&volume, &name_volume) ||
                    !guid_equal(&e.key_id, &name_key_id)) {
                        fprintf(stderr, "%s: holds another Key ID or volume than its name says, skipped.\n", path);
                        o->damaged++;
                        return;
                }
        }
        if (lookup_add(l, &e, path) < 0)
                o->failed++;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int lookup_query(Lookup *l, const char *spool, const char *query) {
        _cleanup_(closedirp) DIR *d = NULL;
        char **names = NULL;
        size_t n_names = 0, first = l->n_found;
        Outcome o = {};
        struct dirent *de;
        int r = EXIT_OK;

        d = opendir(spool);
        if (!d) {
                fprintf(stderr, "Cannot read the escrow spool %s: %s\n", spool, strerror(errno));
                return errno == ENOENT ? EXIT_NOT_FOUND : EXIT_FAILED;
        }
        /* In name order, so that output does not depend on the file system. */
        while ((de = readdir(d))) {
                char **p;

                if (de->d_name[0] == '.' || !IN_SET(de->d_type, DT_REG, DT_LNK, DT_UNKNOWN))
                        continue;
                p = realloc(names, (n_names + 1) * sizeof(char *));
                if (!p || !(p[n_names] = strdup(de->d_name))) {
                        names = p ?: names;
                        r = EXIT_FAILED;
                        break;
                }
                names = p;
                n_names++;
        }
        if (r == EXIT_OK) {
                qsort(names, n_names, sizeof(char *), name_compare);
                for (size_t i = 0; i < n_names; i++)
                        lookup_dir_entry(l, spool, names[i], query, &o);
        }
        for (size_t i = 0; i < n_names; i++)
                free(names[i]);
        free(names);
        if (r != EXIT_OK) {
                fprintf(stderr, "Out of memory.\n");
                return r;
        }

        print_found_from(l, first);
        if (l->n_found - first == 1)
                return EXIT_OK;
        if (l->n_found - first > 1) {
                fprintf(stderr, "Key ID %s matches %zu recovery passwords: give more of its digits.\n", query,
                        l->n_found - first);
                return EXIT_AMBIGUOUS;
        }
        r = outcome_exit_code(&o);
        fprintf(stderr, "No recovery password with Key ID %s in %s%s.\n", query, spool,
                r == EXIT_NOT_FOUND ? "" : " that could be read (see above)");
        return r;
}

static int lookup_file(Lookup *l, const char *path) {
        _cleanup_(escrow_entry_done) EscrowEntry e = {};
        size_t first = l->n_found;
        Outcome o = {};
        int r;

        r = escrow_entry_open_file(path, l->key, &e);
        if (r < 0)
                return outcome_add(&o, path, r);
        if (r == ESCROW_RECORD_VMK) {
                char id[GUID_STRING_MAX];

                fprintf(stderr, "%s: the VMK export of %s (VMK ID %s), not a recovery password.\n", path,
                        isempty(e.hostname) ? "a server" : e.hostname, guid_format(&e.vmk_id, id));
                return EXIT_NOT_FOUND;
        }
        if (lookup_add(l, &e, path) < 0) {
                fprintf(stderr, "Out of memory.\n");
                return EXIT_FAILED;
        }
        print_found_from(l, first);
        return EXIT_OK;
}

/* The spool of this machine: sealvol.conf's SpoolDirectory=, else <StateDirectory>/escrow. */
static char *default_spool(void) {
        _cleanup_free_ char *error = NULL;
        Config c;
        char *s;
        int r;

        config_init(&c);
        r = config_load(/* path= */ NULL, &c, &error);
        if (r < 0)
                fprintf(stderr, "Cannot read the configuration (%s), using the default spool.\n",
                        error ?: strerror(-r));
        if (r >= 0 && c.escrow_spool_directory)
                s = strdup(c.escrow_spool_directory);
        else if (asprintf(&s, "%s/escrow", r >= 0 && c.state_directory ? c.state_directory : SEALVOL_STATEDIR) < 0)
                s = NULL;
        config_done(&c);
        return s;
}

int verb_recovery_lookup(char *const *args, int n_args, const LookupOptions *options) {
        _cleanup_(lookup_done) Lookup l = { .options = options };
        _cleanup_free_ char *spool = NULL;
        int r, ret = EXIT_OK;

        if (n_args < 1) {
                fprintf(stderr, "Usage: sealvolctl recovery lookup [--spool DIR] [--dra-key FILE] KEY-ID|FILE...\n");
                return EXIT_USAGE;
        }
        if (options->dra_key) {
                /* A path, opened here: the key is never on the command line itself. */
                _cleanup_close_ int fd = open(options->dra_key, O_RDONLY | O_CLOEXEC | O_NOCTTY);

                if (fd < 0) {
                        fprintf(stderr, "Cannot open the DRA key %s: %s\n", options->dra_key, strerror(errno));
                        return EXIT_USAGE;
                }
                r = dra_key_load_fd(fd, &l.key);
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", options->dra_key,
                                r == -EOPNOTSUPP ? "the key is protected by a passphrase; decrypt it first "
                                                   "(openssl pkey -in KEY -out PLAIN)"
                                                 : "not a private key (PEM or DER, unencrypted)");
                        return EXIT_WRONG_KEY;
                }
        }

        if (options->json)
                printf("[");
        for (int i = 0; i < n_args; i++) {
                if (is_short_key_id(args[i])) {
                        fprintf(stderr, "%s: give at least the first 8 hex digits of the Key ID.\n", args[i]);
                        r = EXIT_USAGE;
                } else if (is_key_id_query(args[i])) {
                        if (!spool) {
                                spool = options->spool ? strdup(options->spool) : default_spool();
                                if (!spool) {
                                        fprintf(stderr, "Out of memory.\n");
                                        return EXIT_FAILED;
                                }
                        }
                        r = lookup_query(&l, spool, args[i]);
                } else
                        r = lookup_file(&l, args[i]);
                if (ret == EXIT_OK)
                        ret = r;
        }
        if (options->json)
                printf("]\n");
        return ret;
}
