/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvolctl.c: the administrator's CLI, a thin client of org.sealvol1 (docs/sealvolctl.md).
 *
 * Tables for people, --json for tools, exit codes by error class, and secrets only from the
 * terminal (no echo) or stdin, never from the command line.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "build-config.h"
#include "bus-errors.h"
#include "log.h"
#include "recovery.h"
#include "secmem.h"
#include "sealvolctl.h"

#define BUS_NAME "org.sealvol1"
#define MANAGER_PATH "/org/sealvol1"
#define MANAGER_IFACE "org.sealvol1.Manager"
#define VOLUME_IFACE "org.sealvol1.Volume"
#define SECRET_INPUT_MAX 512

static bool arg_json = false;
static bool arg_quiet = false;
static bool arg_all = false;
static bool arg_stdin = false;
static const char *arg_pcrs = "";
static const char *arg_pcr_bank = "";
static const char *arg_dra_key = NULL;
static const char *arg_spool = NULL;
static bool arg_in_place = false;
static bool arg_no_wait = false;
static bool arg_paused = false;
static bool arg_yes = false;

static int exit_code_for(const sd_bus_error *error, int r) {
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_ACCESS_DENIED, SD_BUS_ERROR_AUTH_FAILED,
                                   SD_BUS_ERROR_INTERACTIVE_AUTHORIZATION_REQUIRED))
                return EXIT_DENIED;
        if (sd_bus_error_has_names(error, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return EXIT_NO_DAEMON;
        switch (r < 0 ? -r : r) {
        case ENOENT:
        case ENOMEDIUM:
                return EXIT_NOT_FOUND;
        case EPERM:
        case EDOM:
        case ERANGE:
        case EKEYREJECTED:
                return EXIT_WRONG_KEY;
        case ENODEV:
        case ENXIO:
        case ESTALE:
        case ENOLCK:
        case ENOPKG:
        case EKEYREVOKED:
                return EXIT_TPM;
        case EBADMSG:
        case EPROTONOSUPPORT:
        case EMEDIUMTYPE:
        case ENOMSG:
        case EXDEV:
        case EUCLEAN:
        case EBADE:
                return EXIT_DAMAGED;
        case EINVAL:
                return EXIT_USAGE;
        case ECOMM:
                return EXIT_ESCROW;
        case EBUSY:
        case ENOSPC:
                return EXIT_FAILED;
        default:
                return EXIT_FAILED;
        }
}

/* sealvol's own errors say what failed, why and what to do: printed as they are. The bus's generic
 * ones (access denied, a daemon gone) get what this command was doing in front. */
static int fail(const sd_bus_error *error, int r, const char *what) {
        if (error && sd_bus_error_is_set(error) && !isempty(error->message) &&
            strncmp(error->name, SEALVOL_ERROR_PREFIX, strlen(SEALVOL_ERROR_PREFIX)) == 0)
                fprintf(stderr, "%s\n", error->message);
        else if (error && sd_bus_error_is_set(error))
                fprintf(stderr, "%s: %s\n", what, isempty(error->message) ? error->name : error->message);
        else
                fprintf(stderr, "%s: %s\n", what, strerror(r < 0 ? -r : r));
        return exit_code_for(error, r);
}

static int bus_connect(sd_bus **ret) {
        int r = sd_bus_open_system(ret);

        if (r < 0) {
                fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                return EXIT_NO_DAEMON;
        }
        (void) sd_bus_set_allow_interactive_authorization(*ret, isatty(STDIN_FILENO));
        return 0;
}

/* UUID or device path (as listed) -> object path. */
static int resolve_volume(sd_bus *bus, const char *what, char **ret_path, char **ret_uuid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *uuid, *device, *state, *path;
        int r, found = 0;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListVolumes", &error, &reply, "");
        if (r < 0) {
                r = fail(&error, r, "Failed to list volumes");
                sd_bus_error_free(&error);
                return -r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssso)", &uuid, &device, &state, &path)) > 0)
                if (streq(uuid, what) || streq(device, what)) {
                        *ret_path = strdup(path);
                        if (ret_uuid)
                                *ret_uuid = strdup(uuid);
                        found = 1;
                        break;
                }
        sd_bus_message_unref(reply);
        if (!found) {
                fprintf(stderr, "No sealvol volume %s on this server.\n", what);
                return -EXIT_NOT_FOUND;
        }
        return 0;
}

static const char *volume_prop(sd_bus *bus, const char *path, const char *property, char **buf) {
        sd_bus_error error = SD_BUS_ERROR_NULL;

        free(*buf);
        *buf = NULL;
        if (sd_bus_get_property_string(bus, BUS_NAME, path, VOLUME_IFACE, property, &error, buf) < 0) {
                sd_bus_error_free(&error);
                return "";
        }
        return *buf;
}

void json_string(const char *s) {
        putchar('"');
        for (; *s; s++)
                if (*s == '"' || *s == '\\')
                        printf("\\%c", *s);
                else if ((unsigned char) *s < 0x20)
                        printf("\\u%04x", *s);
                else
                        putchar(*s);
        putchar('"');
}

/* An escrow property (a volume's Escrow, the manager's VMKEscrow): one line for people after label,
 * an array for tools. Returns the number of targets not done. */
static unsigned print_escrow_property(sd_bus *bus, const char *path, const char *iface, const char *property,
                                      const char *label) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *target, *state, *location, *why;
        unsigned missing = 0;
        uint64_t when;
        int verified, r;
        bool first = true;

        r = sd_bus_get_property(bus, BUS_NAME, path, iface, property, &error, &reply, "a(ssbtss)");
        sd_bus_error_free(&error);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssbtss)");
        if (arg_json)
                printf(",\"escrow\":[");
        else
                printf("%s", label);
        while (r >= 0 &&
               (r = sd_bus_message_read(reply, "(ssbtss)", &target, &state, &verified, &when, &location, &why)) > 0) {
                if (arg_json) {
                        printf("%s{\"target\":", first ? "" : ",");
                        json_string(target);
                        printf(",\"state\":");
                        json_string(state);
                        printf(",\"verified\":%s,\"time\":%" PRIu64 ",\"location\":", verified ? "true" : "false",
                               when);
                        json_string(location);
                        printf(",\"error\":");
                        json_string(why);
                        printf("}");
                } else
                        printf("%s %s %s%s%s%s", first ? "" : ";", target, state, verified ? " (verified)" : "",
                               isempty(why) ? "" : ": ", why);
                missing += !streq(state, "done");
                first = false;
        }
        if (arg_json)
                printf("]");
        else
                printf("%s\n", first ? " none" : "");
        sd_bus_message_unref(reply);
        return missing;
}

static unsigned print_escrow(sd_bus *bus, const char *path) {
        return print_escrow_property(bus, path, VOLUME_IFACE, "Escrow", "    escrow:");
}

/* The devices the daemon refuses to take for a volume (RefusedDevices): for people, every one (uuid
 * NULL) under a heading; for tools, those of one volume as a field of its object. */
static void print_refused(sd_bus *bus, const char *uuid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *device, *u, *why;
        bool first = true;
        int r;

        r = sd_bus_get_property(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "RefusedDevices", &error, &reply,
                                "a(sss)");
        sd_bus_error_free(&error);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sss)");
        if (arg_json)
                printf(",\"refused_devices\":[");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sss)", &device, &u, &why)) > 0) {
                if (arg_json) {
                        if (!streq(u, uuid))
                                continue;
                        printf("%s{\"device\":", first ? "" : ",");
                        json_string(device);
                        printf(",\"reason\":");
                        json_string(why);
                        printf("}");
                } else {
                        if (first)
                                printf("Refused devices (they carry a volume's UUID; not opened, not "
                                       "registered):\n");
                        printf("  %s  volume %s: %s\n", device, u, why);
                }
                first = false;
        }
        if (arg_json)
                printf("]");
        sd_bus_message_unref(reply);
}

/* How each target keeps its records, after "Escrow to: ...": "; spool encrypted to the DRA, hook NOT
 * encrypted (HookPlaintext=yes)", as the daemon words it. */
static void print_escrow_encryption(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *target, *how;
        bool first = true;
        int encrypted, r;

        r = sd_bus_get_property(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "EscrowEncryption", &error, &reply,
                                "a(sbs)");
        sd_bus_error_free(&error);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sbs)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sbs)", &target, &encrypted, &how)) > 0) {
                printf("%s %s %s", first ? ";" : ",", target, how);
                first = false;
        }
        printf("\n");
        sd_bus_message_unref(reply);
}

static char *manager_prop(sd_bus *bus, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        if (sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, property, &error, &s) < 0)
                s = NULL;
        sd_bus_error_free(&error);
        return s;
}

static int verb_status(sd_bus *bus, bool summary) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *uuid, *device, *state, *path;
        char *key = NULL, *reason = NULL, *operation = NULL;
        uint32_t count = 0, recovery = 0;
        bool first = true;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ListVolumes", &error, &reply, "");
        if (r < 0) {
                r = fail(&error, r, "Failed to list volumes");
                sd_bus_error_free(&error);
                return r;
        }
        if (summary && !arg_json) {
                char *bank = NULL, *pcrs = NULL, *changed = NULL;

                (void) sd_bus_get_property_trivial(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "VolumeCount", &error,
                                                   'u', &count);
                (void) sd_bus_get_property_trivial(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "RecoveryRequiredCount",
                                                   &error, 'u', &recovery);
                (void) sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "PCRBank", &error, &bank);
                (void) sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "PCRs", &error, &pcrs);
                (void) sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ChangedPCRs", &error,
                                                  &changed);
                sd_bus_error_free(&error);
                char *targets = NULL, *required = NULL, *dra = NULL;

                (void) sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "EscrowTargets", &error,
                                                  &targets);
                (void) sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "EscrowRequired", &error,
                                                  &required);
                (void) sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "DRAFingerprint",
                                                  &error, &dra);
                sd_bus_error_free(&error);
                printf("Volumes: %u, needing recovery: %u\n", count, recovery);
                printf("VMK sealed to: %s PCR %s%s%s\n", strempty(bank), strempty(pcrs),
                       isempty(changed) ? "" : "; changed since: PCR ", strempty(changed));
                printf("Escrow to: %s%s%s", isempty(targets) ? "nothing" : targets,
                       isempty(required) ? "" : ", required: ", strempty(required));
                print_escrow_encryption(bus);
                {
                        /* The server-scoped secrets: the server recovery password (by its Key ID), and a
                         * VMK rotation that is due or under way. */
                        _cleanup_free_ char *server = manager_prop(bus, "ServerRecoveryKeyId"),
                                            *rotation = manager_prop(bus, "VMKRotation");
                        char label[96];

                        if (!isempty(server)) {
                                snprintf(label, sizeof(label), "Server recovery password %.8s escrow:", server);
                                (void) print_escrow_property(bus, MANAGER_PATH, MANAGER_IFACE, "ServerRecoveryEscrow",
                                                             label);
                        }
                        if (!isempty(rotation))
                                printf("VMK rotation: %s\n", rotation);
                }
                {
                        /* A start still under way: the boot's unlock pass, or the wait for disks. */
                        _cleanup_free_ char *boot = NULL;

                        if (sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "BootState", NULL,
                                                       &boot) >= 0 && streq(boot, "unlocking"))
                                printf("Boot: unlocking the volumes\n");
                        else if (boot && streq(boot, "waiting"))
                                printf("Boot: waiting for disks that have not appeared\n");
                }
                {
                        /* What runs off the loop now: the server's changes, escrow, volumes' work. */
                        char **ops = NULL;

                        if (sd_bus_get_property_strv(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "Operations", &error,
                                                     &ops) >= 0 && ops && ops[0]) {
                                printf("Under way:");
                                for (char **o = ops; *o; o++)
                                        printf("%s %s", o == ops ? "" : ",", *o);
                                printf("\n");
                        }
                        sd_bus_error_free(&error);
                        for (char **o = ops; o && *o; o++)
                                free(*o);
                        free(ops);
                }
                /* The VMK export exists only with a DRA certificate. */
                if (!isempty(dra))
                        (void) print_escrow_property(bus, MANAGER_PATH, MANAGER_IFACE, "VMKEscrow", "VMK export escrow:");
                print_refused(bus, NULL);
                printf("\n");
                free(bank);
                free(pcrs);
                free(changed);
                free(targets);
                free(required);
                free(dra);
        }

        if (arg_json)
                printf("[");
        else
                printf("%-36s  %-18s  %-10s  %s\n", "UUID", "STATE", "KEY ID", "DEVICE");
        r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(ssso)", &uuid, &device, &state, &path)) > 0) {
                const char *k = volume_prop(bus, path, "RecoveryKeyId", &key);
                const char *why = volume_prop(bus, path, "StateReason", &reason);
                const char *op = volume_prop(bus, path, "Operation", &operation);

                if (arg_json) {
                        printf("%s{\"uuid\":", first ? "" : ",");
                        json_string(uuid);
                        printf(",\"device\":");
                        json_string(device);
                        printf(",\"state\":");
                        json_string(state);
                        printf(",\"state_reason\":");
                        json_string(why);
                        printf(",\"recovery_key_id\":");
                        json_string(k);
                        printf(",\"operation\":");
                        json_string(op);
                        printf(",\"object\":");
                        json_string(path);
                        (void) print_escrow(bus, path);
                        print_refused(bus, uuid);
                        printf("}");
                } else {
                        /* Operators look a key up by the first 8 hex digits of its Key ID. */
                        printf("%-36s  %-18s  %-10.8s  %s\n", uuid, state, k, device);
                        if (!isempty(why) && streq(state, "recovery-required"))
                                printf("    %s; recovery Key ID %s\n", why, k);
                        if (!isempty(op))
                                printf("    busy: %s under way\n", op);
                        if (summary)
                                (void) print_escrow(bus, path);
                }
                first = false;
        }
        if (arg_json)
                printf("]\n");
        free(key);
        free(reason);
        free(operation);
        sd_bus_message_unref(reply);
        return r < 0 ? fail(NULL, r, "Failed to read the volume list") : recovery > 0 ? EXIT_RECOVERY_REQUIRED : EXIT_OK;
}

static int call_volume(sd_bus *bus, const char *what, const char *member, sd_bus_message **reply,
                       const char *types, ...);

static int read_progress(sd_bus *bus, const char *path, char **ret_state, uint64_t p[static 4]) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *m = NULL;
        int r;

        r = sd_bus_get_property_string(bus, BUS_NAME, path, VOLUME_IFACE, "Encryption", &error, ret_state);
        if (r >= 0)
                r = sd_bus_get_property(bus, BUS_NAME, path, VOLUME_IFACE, "EncryptionProgress", &error, &m, "(tttt)");
        if (r >= 0)
                r = sd_bus_message_read(m, "(tttt)", &p[0], &p[1], &p[2], &p[3]);
        sd_bus_message_unref(m);
        if (r < 0) {
                r = fail(&error, r, "Failed to read the progress");
                sd_bus_error_free(&error);
                return -r;
        }
        return 0;
}

/* Follows an in-place encryption to its end: a bar on a terminal, a line per 5% otherwise. */
static int follow_encryption(sd_bus *bus, const char *path) {
        bool tty = isatty(STDOUT_FILENO);
        int last_step = -1;

        for (;;) {
                _cleanup_free_ char *state = NULL;
                uint64_t p[4] = {};
                unsigned pct;
                int r;

                r = read_progress(bus, path, &state, p);
                if (r < 0)
                        return -r;
                pct = p[1] > 0 ? (unsigned) (p[0] * 100 / p[1]) : 0;
                if (isempty(state)) {
                        if (tty)
                                printf("\r[%-40s] 100%%%-30s\n", "########################################", "");
                        printf("Encrypted.\n");
                        return EXIT_OK;
                }
                if (!streq(state, "encrypting")) {
                        if (tty)
                                printf("\n");
                        fprintf(stderr, "Encryption %s at %u%%.\n", state, pct);
                        return streq(state, "paused") ? EXIT_OK : EXIT_FAILED;
                }
                if (tty) {
                        char bar[41];

                        memset(bar, '#', sizeof(bar) - 1);
                        memset(bar + pct * 40 / 100, '.', 40 - pct * 40 / 100);
                        bar[40] = '\0';
                        printf("\r[%s] %3u%%  %6.1f MiB/s  ETA %" PRIu64 ":%02" PRIu64 "   ", bar, pct,
                               (double) p[2] / (1024.0 * 1024.0), p[3] / 60, p[3] % 60);
                        fflush(stdout);
                } else if ((int) (pct / 5) != last_step) {
                        last_step = (int) (pct / 5);
                        printf("%u%% (%" PRIu64 " of %" PRIu64 " MiB, %.1f MiB/s, ETA %" PRIu64 " s)\n", pct,
                               p[0] >> 20, p[1] >> 20, (double) p[2] / (1024.0 * 1024.0), p[3]);
                        fflush(stdout);
                }
                (void) usleep(200 * 1000);
        }
}

static int verb_encryption(sd_bus *bus, const char *action, const char *what) {
        _cleanup_free_ char *path = NULL, *state = NULL;
        sd_bus_message *reply = NULL;
        uint64_t p[4] = {};
        int r;

        if (streq(action, "cancel")) {
                const char *escrow = NULL;

                r = call_volume(bus, what, "CancelEncryption", &reply, "t", UINT64_C(0));
                if (r == EXIT_OK && sd_bus_message_read(reply, "s", &escrow) < 0)
                        escrow = NULL;
                if (r == EXIT_OK && arg_json) {
                        printf("{\"cancelled\":");
                        json_string(what);
                        printf(",\"escrow\":");
                        json_string(strempty(escrow));
                        printf("}\n");
                } else if (r == EXIT_OK && !arg_quiet)
                        printf("Cancelled: %s holds its file system as before and is no sealvol volume any more.%s%s\n",
                               what, isempty(escrow) ? "" : "\nEscrow: ", strempty(escrow));
                sd_bus_message_unref(reply);
                return r;
        }
        if (streq(action, "pause") || streq(action, "resume")) {
                r = call_volume(bus, what, streq(action, "pause") ? "PauseEncryption" : "ResumeEncryption", &reply, "");
                sd_bus_message_unref(reply);
                if (r != EXIT_OK || streq(action, "pause") || arg_no_wait)
                        return r;
        }
        r = resolve_volume(bus, what, &path, NULL);
        if (r < 0)
                return -r;
        if (streq(action, "resume"))
                return follow_encryption(bus, path);
        r = read_progress(bus, path, &state, p);
        if (r < 0)
                return -r;
        if (arg_json)
                printf("{\"state\":\"%s\",\"done\":%" PRIu64 ",\"total\":%" PRIu64 ",\"rate\":%" PRIu64
                       ",\"eta\":%" PRIu64 "}\n", isempty(state) ? "none" : state, p[0], p[1], p[2], p[3]);
        else if (isempty(state))
                printf("%s: no in-place encryption under way.\n", what);
        else
                printf("%s: %s, %" PRIu64 " of %" PRIu64 " MiB (%.1f MiB/s, ETA %" PRIu64 " s)\n", what, state,
                       p[0] >> 20, p[1] >> 20, (double) p[2] / (1024.0 * 1024.0), p[3]);
        return EXIT_OK;
}

static int verb_provision(sd_bus *bus, const char *device) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL, *pw_reply = NULL;
        const char *path, *key_id, *password = NULL, *k2;
        int r;

        if (arg_in_place) {
                sd_bus_message *call = NULL;

                /* Checking and shrinking the file system comes before the answer: no default timeout. */
                r = sd_bus_message_new_method_call(bus, &call, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ProvisionInPlace");
                if (r >= 0)
                        r = sd_bus_message_append(call, "st", device, arg_paused ? SEALVOL_IN_PLACE_PAUSED : UINT64_C(0));
                if (r >= 0)
                        r = sd_bus_call(bus, call, UINT64_C(24) * 3600 * 1000000, &error, &reply);
                sd_bus_message_unref(call);
        } else
                r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ProvisionVolume", &error, &reply,
                                       "st", device, UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to provision");
                sd_bus_error_free(&error);
                return r;
        }
        r = sd_bus_message_read(reply, "os", &path, &key_id);
        if (r < 0)
                return fail(NULL, r, "Bad reply");

        /* BitLocker shows the recovery password when protection is turned on; so do we, unless told
         * not to. Reading it is its own authorisation. */
        if (!arg_quiet) {
                r = sd_bus_call_method(bus, BUS_NAME, path, VOLUME_IFACE, "GetRecoveryPassword", &error, &pw_reply, "");
                if (r >= 0)
                        (void) sd_bus_message_sensitive(pw_reply);
                if (r >= 0)
                        r = sd_bus_message_read(pw_reply, "ss", &password, &k2);
                if (r < 0)
                        fprintf(stderr, "Provisioned, but the recovery password could not be shown: %s\n",
                                error.message ?: strerror(-r));
                sd_bus_error_free(&error);
        }
        if (arg_json) {
                printf("{\"object\":");
                json_string(path);
                printf(",\"recovery_key_id\":");
                json_string(key_id);
                if (password) {
                        printf(",\"recovery_password\":");
                        json_string(password);
                }
                printf("}\n");
        } else {
                printf("Provisioned %s.\nRecovery Key ID: %s\n", device, key_id);
                if (password)
                        printf("Recovery password: %s\n", password);
        }
        fflush(stdout);
        sd_bus_message_unref(pw_reply);
        if (arg_in_place && arg_paused) {
                if (!arg_quiet && !arg_json)
                        printf("Set up and paused before encrypting anything: `sealvolctl encryption resume %s` "
                               "starts it, `sealvolctl encryption cancel %s` undoes it.\n", device, device);
        } else if (arg_in_place && !arg_no_wait) {
                _cleanup_free_ char *p = strdup(path);

                sd_bus_message_unref(reply);
                return p ? follow_encryption(bus, p) : EXIT_FAILED;
        }
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

/* What a volume's method does, in the words of a failure message ("Failed to unlock <uuid>: ..."):
 * an operator reads what failed, not the bus method's name. */
static const char *volume_call_words(const char *member) {
        static const char *const words[][2] = {
                { "Unlock", "unlock" },
                { "Lock", "lock" },
                { "UnlockWithDRAKey", "unlock with the DRA key" },
                { "GetRecoveryPassword", "read the recovery password of" },
                { "RotateRecoveryPassword", "rotate the recovery password of" },
                { "EscrowRecoveryPassword", "escrow the recovery password of" },
                { "PauseEncryption", "pause the encryption of" },
                { "CancelEncryption", "cancel the encryption of" },
                { "ResumeEncryption", "resume the encryption of" },
        };

        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (streq(words[i][0], member))
                        return words[i][1];
        return "change";
}

/* What tells escrow targets (a hook may take its whole timeout, twice) waits longer than sd-bus's
 * default 25 s; 0 is that default. */
static uint64_t volume_call_timeout(const char *member) {
        return IN_SET(true, streq(member, "CancelEncryption"), streq(member, "Erase")) ? UINT64_C(3600) * 1000000 : 0;
}

static int call_volume(sd_bus *bus, const char *what, const char *member, sd_bus_message **reply, const char *types,
                       ...) {
        _cleanup_free_ char *path = NULL, *uuid = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *call = NULL;
        va_list ap;
        int r;

        r = resolve_volume(bus, what, &path, &uuid);
        if (r < 0)
                return -r;
        r = sd_bus_message_new_method_call(bus, &call, BUS_NAME, path, VOLUME_IFACE, member);
        if (r < 0)
                return fail(NULL, r, "Failed to build the call");
        /* A call may carry a secret: wipe it when freed. */
        (void) sd_bus_message_sensitive(call);
        va_start(ap, types);
        r = sd_bus_message_appendv(call, types, ap);
        va_end(ap);
        if (r >= 0)
                r = sd_bus_call(bus, call, volume_call_timeout(member), &error, reply);
        sd_bus_message_unref(call);
        if (r < 0) {
                char what_failed[128];

                snprintf(what_failed, sizeof(what_failed), "Failed to %s %s", volume_call_words(member), uuid);
                r = fail(&error, r, what_failed);
                sd_bus_error_free(&error);
                return r;
        }
        return EXIT_OK;
}

/* A secret from the terminal without echo, or from stdin; into secure memory, never argv. */
static int read_secret(const char *prompt, char **ret) {
        _cleanup_secure_ char *buf = secure_alloc(SECRET_INPUT_MAX);
        struct termios old, quiet;
        bool tty = !arg_stdin && isatty(STDIN_FILENO);
        size_t n = 0;
        int r = 0;

        if (!buf)
                return -ENOMEM;
        if (tty) {
                fprintf(stderr, "%s", prompt);
                if (tcgetattr(STDIN_FILENO, &old) < 0)
                        return -errno;
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t) ECHO;
                if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0)
                        return -errno;
        }
        for (;;) {
                char c;
                ssize_t k = read(STDIN_FILENO, &c, 1);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        break;
                }
                if (k == 0 || c == '\n')
                        break;
                if (n + 1 >= SECRET_INPUT_MAX) {
                        r = -E2BIG;
                        break;
                }
                buf[n++] = c;
        }
        if (tty) {
                (void) tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
                fputc('\n', stderr);
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* With the DRA's private key: passed to the daemon as an open file, never as a path it would open
 * as root on our behalf, nor as bytes in a message. */
static int verb_recover_dra(sd_bus *bus, const char *what) {
        _cleanup_close_ int fd = open(arg_dra_key, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        sd_bus_message *reply = NULL;
        const char *state;
        int r;

        if (fd < 0)
                return fail(NULL, -errno, arg_dra_key);
        r = call_volume(bus, what, "UnlockWithDRAKey", &reply, "ht", fd, UINT64_C(0));
        if (r != EXIT_OK)
                return r;
        if (sd_bus_message_read(reply, "s", &state) < 0)
                return EXIT_FAILED;
        if (!arg_quiet)
                printf("Volume %s: %s.\n", what, state);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

static int verb_dra_set(sd_bus *bus, const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t n = 0;
        int r;

        if (fd < 0)
                return fail(NULL, -errno, path);
        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "SetDRACertificate", &error, &reply, "ht",
                               fd, UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to set the DRA certificate");
                sd_bus_error_free(&error);
                return r;
        }
        (void) sd_bus_message_read(reply, "u", &n);
        sd_bus_message_unref(reply);
        if (!arg_quiet)
                printf("DRA certificate set; %u volumes re-wrapped to it.\n", n);
        return EXIT_OK;
}

static int verb_vmk_export(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *json;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ExportVMK", &error, &reply, "t",
                               UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to export the VMK");
                sd_bus_error_free(&error);
                return r;
        }
        if (sd_bus_message_read(reply, "s", &json) >= 0)
                printf("%s\n", json);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

/* A typo (a block that is no multiple of 11, or out of range, or not 6 digits) costs nothing to report
 * and nothing to fix: at a terminal the password is asked again, a few times. */
#define RECOVER_TRIES_MAX 3

static bool is_typo_error(const sd_bus_error *error) {
        return sd_bus_error_has_names(error, "org.sealvol1.Error.RecoveryPasswordTypo",
                                      "org.sealvol1.Error.RecoveryPasswordOutOfRange", SD_BUS_ERROR_INVALID_ARGS);
}

/* Asks for a recovery password naming the Key IDs it may have (the first 8 digits are what people look
 * up), and calls member of path/iface with it until it is not a typo. */
static int recover_call(sd_bus *bus, const char *path, const char *iface, const char *member, const char *prompt,
                        sd_bus_message **reply) {
        bool tty = !arg_stdin && isatty(STDIN_FILENO);
        int r;

        for (unsigned attempt = 1;; attempt++) {
                _cleanup_secure_ char *password = NULL;
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *call = NULL;

                r = read_secret(prompt, &password);
                if (r < 0)
                        return fail(NULL, r, "Failed to read the recovery password");
                r = sd_bus_message_new_method_call(bus, &call, BUS_NAME, path, iface, member);
                if (r < 0)
                        return fail(NULL, r, "Failed to build the call");
                (void) sd_bus_message_sensitive(call);
                r = sd_bus_message_append(call, "st", password, UINT64_C(0));
                if (r >= 0)
                        r = sd_bus_call(bus, call, 0, &error, reply);
                sd_bus_message_unref(call);
                if (r >= 0)
                        return EXIT_OK;
                if (tty && attempt < RECOVER_TRIES_MAX && is_typo_error(&error)) {
                        fprintf(stderr, "%s Please type it again.\n", error.message);
                        sd_bus_error_free(&error);
                        continue;
                }
                r = fail(&error, r, "Recovery failed");
                sd_bus_error_free(&error);
                return r;
        }
}

/* With the server recovery password: every disk of the server. */
static int verb_recover_server(sd_bus *bus) {
        _cleanup_free_ char *server_id = manager_prop(bus, "ServerRecoveryKeyId"), *prompt = NULL;
        sd_bus_message *reply = NULL;
        uint32_t opened = 0, failed = 0;
        int r;

        if (isempty(server_id)) {
                fprintf(stderr, "This server has no server recovery password.\n");
                return EXIT_NOT_FOUND;
        }
        if (asprintf(&prompt, "Server recovery password (Key ID %s): ", server_id) < 0)
                return fail(NULL, -ENOMEM, "recover");
        r = recover_call(bus, MANAGER_PATH, MANAGER_IFACE, "UnlockWithServerRecoveryPassword", prompt, &reply);
        if (r != EXIT_OK)
                return r;
        (void) sd_bus_message_read(reply, "uu", &opened, &failed);
        sd_bus_message_unref(reply);
        if (arg_json)
                printf("{\"opened\":%u,\"failed\":%u}\n", opened, failed);
        else if (!arg_quiet)
                printf("The server recovery password opened the VMK: %u volumes open, %u not. It was used, so the\n"
                       "VMK and the server recovery password are rotated.\n", opened, failed);
        return failed > 0 ? EXIT_RECOVERY_REQUIRED : EXIT_OK;
}

static int verb_recover(sd_bus *bus, const char *what) {
        _cleanup_free_ char *path = NULL, *uuid = NULL, *key_id = NULL, *server_id = NULL, *prompt = NULL;
        sd_bus_message *reply = NULL;
        const char *state, *new_id;
        int r;

        if (arg_dra_key)
                return verb_recover_dra(bus, what);

        r = resolve_volume(bus, what, &path, &uuid);
        if (r < 0)
                return -r;
        (void) volume_prop(bus, path, "RecoveryKeyId", &key_id);
        server_id = manager_prop(bus, "ServerRecoveryKeyId");
        if (asprintf(&prompt,
                     isempty(server_id) ? "Recovery password of %s (Key ID %s%s): " :
                                          "Recovery password of %s (Key ID %s),\nor the server recovery password (Key ID %s): ",
                     uuid, strempty(key_id), strempty(server_id)) < 0)
                return fail(NULL, -ENOMEM, "recover");
        r = recover_call(bus, path, VOLUME_IFACE, "UnlockWithRecoveryPassword", prompt, &reply);
        if (r != EXIT_OK)
                return r;
        if (sd_bus_message_read(reply, "ss", &state, &new_id) < 0)
                return EXIT_FAILED;
        if (arg_json) {
                printf("{\"state\":");
                json_string(state);
                printf(",\"new_recovery_key_id\":");
                json_string(new_id);
                printf("}\n");
        } else if (!arg_quiet) {
                printf("Volume %s: %s.\n", what, state);
                if (!isempty(new_id))
                        printf("The recovery password was used and has been replaced; new Key ID: %s\n"
                               "Read it with: sealvolctl recovery show %s\n", new_id, what);
                else
                        printf("The password was used; it is replaced once the daemon holds the VMK again: the\n"
                               "server recovery password gives it back (and every other disk), or a boot the TPM\n"
                               "accepts. Until then each boot needs the disks' passwords.\n");
        }
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

static int verb_server_password_show(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *password, *key_id;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "GetServerRecoveryPassword", &error, &reply,
                               "");
        if (r < 0) {
                r = fail(&error, r, "Failed to read the server recovery password");
                sd_bus_error_free(&error);
                return r;
        }
        (void) sd_bus_message_sensitive(reply);
        if (sd_bus_message_read(reply, "ss", &password, &key_id) < 0) {
                sd_bus_message_unref(reply);
                return EXIT_FAILED;
        }
        if (arg_json) {
                printf("{\"server_recovery_password\":");
                json_string(password);
                printf(",\"key_id\":");
                json_string(key_id);
                printf("}\n");
        } else
                printf("Server recovery password: %s\nKey ID:                   %s\n", password, key_id);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

static int verb_recovery_show(sd_bus *bus, const char *what) {
        sd_bus_message *reply = NULL;
        const char *password, *key_id;
        int r;

        r = call_volume(bus, what, "GetRecoveryPassword", &reply, "");
        if (r != EXIT_OK)
                return r;
        /* Wiped when freed. */
        (void) sd_bus_message_sensitive(reply);
        if (sd_bus_message_read(reply, "ss", &password, &key_id) < 0) {
                sd_bus_message_unref(reply);
                return EXIT_FAILED;
        }
        if (arg_json) {
                printf("{\"recovery_key_id\":");
                json_string(key_id);
                printf(",\"recovery_password\":");
                json_string(password);
                printf("}\n");
        } else
                printf("Recovery Key ID: %s\nRecovery password: %s\n", key_id, password);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

/* Calls member on the volume; if label, prints "VOLUME: label RESULT". */
static int verb_simple(sd_bus *bus, const char *what, const char *member, const char *label) {
        sd_bus_message *reply = NULL;
        const char *s = NULL;
        int r;

        if (streq(member, "Unlock"))
                r = call_volume(bus, what, member, &reply, "t", UINT64_C(0));
        else
                r = call_volume(bus, what, member, &reply, "");
        if (r != EXIT_OK)
                return r;
        if (label && sd_bus_message_read(reply, "s", &s) >= 0 && !arg_quiet)
                printf("%s: %s%s\n", what, label, s);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

static int verb_escrow(sd_bus *bus, const char *what) {
        _cleanup_free_ char *path = NULL;
        sd_bus_message *reply = NULL;
        int r;

        r = call_volume(bus, what, "EscrowRecoveryPassword", &reply, "t", UINT64_C(0));
        sd_bus_message_unref(reply);
        if (r != EXIT_OK)
                return r;
        if (arg_quiet)
                return EXIT_OK;
        r = resolve_volume(bus, what, &path, NULL);
        if (r < 0)
                return -r;
        if (arg_json) {
                printf("{\"volume\":");
                json_string(what);
                (void) print_escrow(bus, path);
                printf("}\n");
        } else {
                printf("%s:\n", what);
                (void) print_escrow(bus, path);
        }
        return EXIT_OK;
}

/* Destroys every key of a volume: asks for its UUID to be typed back on a terminal, or --yes. */
static int verb_erase(sd_bus *bus, const char *what) {
        _cleanup_free_ char *path = NULL, *uuid = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *record;
        int r;

        r = resolve_volume(bus, what, &path, &uuid);
        if (r < 0)
                return -r;
        if (!arg_yes) {
                char line[64] = "";

                if (!isatty(STDIN_FILENO)) {
                        fprintf(stderr, "Erasing destroys every key of %s for ever: confirm with --yes.\n", uuid);
                        return EXIT_USAGE;
                }
                fprintf(stderr, "This destroys every key of volume %s (%s): its data will be unreadable for ever,\n"
                                "with any password, key or escrowed copy. Type its UUID to go on: ", uuid, what);
                if (!fgets(line, sizeof(line), stdin) || strncmp(line, uuid, strlen(uuid)) != 0) {
                        fprintf(stderr, "Not erased.\n");
                        return EXIT_USAGE;
                }
        }
        r = sd_bus_call_method(bus, BUS_NAME, path, VOLUME_IFACE, "Erase", &error, &reply, "t", UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to erase");
                sd_bus_error_free(&error);
                return r;
        }
        if (sd_bus_message_read(reply, "s", &record) >= 0) {
                if (arg_json)
                        printf("%s\n", record);
                else if (!arg_quiet)
                        printf("Volume %s erased; the record of what was done:\n%s\n", uuid, record);
        }
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

static int verb_escrow_all(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t done = 0, failed = 0;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "EscrowAll", &error, &reply, "t",
                               UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to escrow");
                sd_bus_error_free(&error);
                return r;
        }
        (void) sd_bus_message_read(reply, "uu", &done, &failed);
        sd_bus_message_unref(reply);
        if (arg_json)
                printf("{\"escrowed\":%u,\"failed\":%u}\n", done, failed);
        else if (!arg_quiet)
                printf("%u escrowed, %u failed (see sealvolctl status).\n", done, failed);
        return failed > 0 ? EXIT_ESCROW : EXIT_OK;
}

static int verb_unlock_all(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        uint32_t opened = 0, failed = 0;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "UnlockAll", &error, &reply, "t",
                               UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to unlock");
                sd_bus_error_free(&error);
                return r;
        }
        (void) sd_bus_message_read(reply, "uu", &opened, &failed);
        sd_bus_message_unref(reply);
        if (!arg_quiet)
                printf("%u opened, %u need recovery.\n", opened, failed);
        return failed > 0 ? EXIT_RECOVERY_REQUIRED : EXIT_OK;
}

static int verb_show_manager(sd_bus *bus, const char *const *props) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        bool first = true;

        if (arg_json)
                printf("{");
        for (size_t i = 0; props[i]; i++) {
                char *s = NULL;
                int b = 0, r;

                if (IN_SET(true, streq(props[i], "TPMPresent"), streq(props[i], "VMKAvailable"))) {
                        r = sd_bus_get_property_trivial(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, props[i], &error,
                                                        'b', &b);
                        s = strdup(b ? "yes" : "no");
                } else if (streq(props[i], "TPMLockout")) {
                        sd_bus_message *m = NULL;
                        uint32_t counter = 0, max_tries = 0;

                        r = sd_bus_get_property(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, props[i], &error, &m,
                                                "(uub)");
                        if (r >= 0)
                                r = sd_bus_message_read(m, "(uub)", &counter, &max_tries, &b);
                        if (r >= 0 && asprintf(&s, "%s, %u of %u failed authorisations", b ? "LOCKED OUT" : "no",
                                               counter, max_tries) < 0)
                                s = NULL;
                        sd_bus_message_unref(m);
                } else
                        r = sd_bus_get_property_string(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, props[i], &error, &s);
                if (r < 0) {
                        r = fail(&error, r, props[i]);
                        sd_bus_error_free(&error);
                        return r;
                }
                if (arg_json) {
                        printf("%s", first ? "" : ",");
                        json_string(props[i]);
                        printf(":");
                        json_string(strempty(s));
                } else
                        printf("%-20s %s\n", props[i], isempty(s) ? "-" : s);
                first = false;
                free(s);
        }
        if (arg_json)
                printf("}\n");
        return EXIT_OK;
}

static int verb_reseal(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ResealVMK", &error, NULL, "sst", arg_pcr_bank,
                               arg_pcrs, UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to reseal");
                sd_bus_error_free(&error);
                return r;
        }
        if (!arg_quiet)
                printf("The VMK is sealed to the current values of %s.\n",
                       isempty(arg_pcrs) ? "the configured PCRs" : "the PCRs given");
        return EXIT_OK;
}

static int verb_rotate_vmk(sd_bus *bus) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *vmk_id = "", *key_id = "";
        int r;

        r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "RotateVMK", &error, &reply, "t",
                               UINT64_C(0));
        if (r < 0) {
                r = fail(&error, r, "Failed to rotate the VMK");
                sd_bus_error_free(&error);
                return r;
        }
        (void) sd_bus_message_read(reply, "ss", &vmk_id, &key_id);
        if (arg_json) {
                printf("{\"vmk_id\":");
                json_string(vmk_id);
                printf(",\"server_recovery_key_id\":");
                json_string(key_id);
                printf("}\n");
        } else if (!arg_quiet)
                printf("The VMK is rotated: VMK %s, server recovery password Key ID %s\n"
                       "(read it with: sealvolctl recovery show-server).\n", vmk_id, key_id);
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

/* A new TPM (or main board, or a cleared one): the VMK is sealed to it and its storage key pinned anew,
 * proven with a server-scoped secret in the same call: the DRA key with --dra-key, else the server
 * recovery password, asked for like recover asks. */
static int verb_tpm_replace(sd_bus *bus) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *server_id = NULL, *prompt = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *record = NULL;
        int r;

        if (arg_dra_key) {
                fd = open(arg_dra_key, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fd < 0)
                        return fail(NULL, -errno, arg_dra_key);
                r = sd_bus_call_method(bus, BUS_NAME, MANAGER_PATH, MANAGER_IFACE, "ReplaceTPMWithDRAKey", &error,
                                       &reply, "ht", fd, UINT64_C(0));
                if (r < 0) {
                        r = fail(&error, r, "Failed to replace the TPM");
                        sd_bus_error_free(&error);
                        return r;
                }
        } else {
                server_id = manager_prop(bus, "ServerRecoveryKeyId");
                if (isempty(server_id)) {
                        fprintf(stderr, "This server has no server recovery password: tpm replace needs the Data "
                                        "Recovery Agent's private key (--dra-key FILE).\n");
                        return EXIT_NOT_FOUND;
                }
                if (asprintf(&prompt, "Server recovery password (Key ID %s): ", server_id) < 0)
                        return fail(NULL, -ENOMEM, "tpm replace");
                r = recover_call(bus, MANAGER_PATH, MANAGER_IFACE, "ReplaceTPMWithServerRecoveryPassword", prompt,
                                 &reply);
                if (r != EXIT_OK)
                        return r;
        }
        (void) sd_bus_message_read(reply, "s", &record);
        if (arg_json)
                printf("%s\n", strempty(record));
        else if (!arg_quiet)
                printf("The VMK is sealed to this TPM now; its storage root key is pinned anew. The secret used is\n"
                       "replaced with the VMK (a rotation).\n");
        sd_bus_message_unref(reply);
        return EXIT_OK;
}

static const struct {
        const char *verb, *usage, *text;
} verb_help[] = {
        { "status", "status", "A summary (volumes, those needing recovery, the sealed PCRs) and every volume." },
        { "list", "list", "Every volume of this server: UUID, state, recovery Key ID (first 8 digits), device." },
        { "provision", "provision DEVICE | provision --in-place [--no-wait|--paused] DEVICE",
          "Make an empty DEVICE a new sealvol volume; show its recovery password and Key ID (-q: do not).\n"
          "With --in-place: encrypt the ext2/3/4 file system DEVICE holds, in place, and follow the progress\n"
          "(a bar on a terminal, plain lines otherwise; --no-wait: return once it has started; --paused:\n"
          "set it up, escrow included, and stop before encrypting anything, for encryption resume or cancel)." },
        { "erase", "erase [--yes] VOLUME",
          "Crypto-erase: destroy every keyslot and both header copies, so the data is unreadable for ever;\n"
          "escrow records are marked retired and a record of what was done is kept (and printed).\n"
          "Asks for the volume's UUID to be typed back, unless --yes." },
        { "encryption", "encryption status|pause|resume|cancel VOLUME",
          "The progress of an in-place encryption; pause it (it stays paused across restarts), or resume it.\n"
          "cancel undoes one that has encrypted nothing yet (started --paused): the device holds its file\n"
          "system again, the volume is forgotten and its escrow records retired." },
        { "unlock", "unlock VOLUME | unlock --all", "Unlock a volume, or every volume, from one TPM unseal." },
        { "lock", "lock VOLUME", "Lock a volume." },
        { "recover", "recover VOLUME | recover | --dra-key FILE recover VOLUME",
          "Unlock VOLUME with its recovery password, which opens that disk only, or with the server\n"
          "recovery password, which opens every disk of the server (the prompt names the Key ID of each;\n"
          "read from the terminal without echo, or stdin; a typo is asked again at a terminal). Without\n"
          "VOLUME: the server recovery password. Whatever was used is then replaced (a server-scoped\n"
          "secret rotates the VMK). With --dra-key: the Data Recovery Agent's private key, passed to the\n"
          "daemon as an open file." },
        { "recovery", "recovery show VOLUME | recovery show-server | recovery rotate VOLUME | recovery escrow VOLUME\n"
          "           recovery escrow --all\n"
          "           recovery lookup [--spool DIR] [--dra-key FILE] KEY-ID|FILE...",
          "Show the recovery password and Key ID (authentication every time), or the server recovery\n"
          "password (show-server: it opens every disk of this server), replace a disk's password, or\n"
          "send it again to every configured escrow target (AD, spool, hook) and show the outcome.\n"
          "lookup needs no daemon: it reads escrow records, files or a copy of a spool directory (default:\n"
          "this machine's), and prints the recovery password whose Key ID is, or starts with, KEY-ID (at least\n"
          "8 hex digits, either case, dashes or not), with its volume, device, host and time. Records\n"
          "encrypted to the Data Recovery Agent are opened with its private key, read from FILE. A damaged\n"
          "record is reported and skipped; several matches are all printed (exit code 11)." },
        { "tpm", "tpm status | tpm reseal [--pcrs 0,7] [--pcr-bank sha256] | tpm rotate-vmk | [--dra-key FILE] tpm replace",
          "The TPM and what the VMK is sealed to; or seal it to the current values of the configured PCRs,\n"
          "or of another selection. rotate-vmk: a new VMK and server recovery password, every volume\n"
          "re-bound (also done by itself after a server-scoped secret was used). The VMK is only ever\n"
          "sealed to the TPM whose storage root key it is pinned to: after the TPM or the main board was\n"
          "replaced (or the TPM cleared), tpm replace seals it to the TPM there now, proven with the\n"
          "server recovery password (asked for) or the Data Recovery Agent's private key (--dra-key),\n"
          "checks the new TPM's EK certificate where [TPM] EKCertificateCA= names its makers, records\n"
          "the old and the new TPM, and rotates the VMK." },
        { "dra", "dra show | dra set CERTIFICATE",
          "The Data Recovery Agent certificate in force; or set one (every volume is re-wrapped)." },
        { "vmk", "vmk export", "Print the VMK wrapped to the DRA certificate (a copy stays with the daemon)." },
};

static void help_verb(const char *verb) {
        for (size_t i = 0; i < ELEMENTSOF(verb_help); i++)
                if (streq(verb, verb_help[i].verb)) {
                        printf("sealvolctl [OPTIONS...] %s\n\n%s\n", verb_help[i].usage, verb_help[i].text);
                        return;
                }
        fprintf(stderr, "Unknown command %s; see sealvolctl --help.\n", verb);
}

static void help(void) {
        printf("sealvolctl [OPTIONS...] COMMAND ...\n\n"
               "Administer sealvol volumes through sealvold.\n\n"
               "Commands:\n"
               "  status                    Summary and the volumes of this server (default)\n"
               "  list                      The volumes of this server\n"
               "  provision DEVICE          Make DEVICE (empty) a new sealvol volume; show its recovery password\n"
               "  provision --in-place DEVICE\n"
               "                            Encrypt the file system DEVICE holds, in place, with progress\n"
               "  erase [--yes] VOLUME      Crypto-erase a volume (decommissioning); asks for its UUID\n"
               "  encryption status|pause|resume|cancel VOLUME\n"
               "                            The progress of an in-place encryption; pause or resume it, or\n"
               "                            cancel one that has encrypted nothing yet\n"
               "  unlock VOLUME | --all     Unlock a volume, or every volume, from the TPM\n"
               "  lock VOLUME               Lock a volume\n"
               "  recover VOLUME            Unlock with the disk's recovery password or the server recovery\n"
               "                            password (read from the terminal or stdin); it is then replaced.\n"
               "                            With --dra-key FILE: with the Data Recovery Agent's private key\n"
               "  recover                   Unlock every volume with the server recovery password\n"
               "  recovery show VOLUME      Show the recovery password and its Key ID\n"
               "  recovery show-server      Show the server recovery password and its Key ID\n"
               "  recovery rotate VOLUME    Replace the recovery password\n"
               "  recovery escrow VOLUME | --all\n"
               "                            Escrow the recovery password again to every configured target\n"
               "  recovery lookup [--spool DIR] [--dra-key FILE] KEY-ID|FILE...\n"
               "                            Find a recovery password in escrow records by its Key ID or its\n"
               "                            first 8 hex digits (offline: no daemon needed)\n"
               "  tpm status                The TPM, what the VMK is sealed to, what changed\n"
               "  tpm reseal                Seal the VMK to the current PCR values\n"
               "  tpm rotate-vmk            A new VMK and server recovery password; every volume re-bound\n"
               "  tpm replace [--dra-key FILE]\n"
               "                            Seal the VMK to a new TPM (replaced TPM or board), proven with\n"
               "                            the server recovery password or the DRA key; pins its key\n"
               "  dra show                  The fingerprint of the DRA certificate in force\n"
               "  dra set CERTIFICATE       Set the DRA certificate; every volume is re-wrapped to it\n"
               "  vmk export                Print the VMK wrapped to the DRA certificate (and keep a copy)\n\n"
               "VOLUME is a UUID or a device path as listed.\n\n"
               "Options:\n"
               "  -h --help     Show this help\n"
               "     --version  Show the version\n"
               "     --json     Machine-readable output\n"
               "  -q --quiet    Print less\n"
               "     --all      With unlock and recovery escrow: every volume\n"
               "     --in-place With provision: encrypt the existing file system\n"
               "     --no-wait  With provision --in-place and encryption resume: do not follow the progress\n"
               "     --paused   With provision --in-place: set up, then stay paused before encrypting anything\n"
               "     --yes      With erase: do not ask\n"
               "     --stdin    Read secrets from stdin even on a terminal\n"
               "     --dra-key FILE  With recover, tpm replace and recovery lookup: the DRA private key (PEM or DER,\n"
               "                     unencrypted)\n"
               "     --spool DIR     With recovery lookup: the escrow records' directory\n"
               "     --pcrs LIST     With tpm reseal: another PCR selection, e.g. 0,2,7\n"
               "     --pcr-bank BANK With tpm reseal: another PCR bank (sha256, sha384, ...)\n\n"
               "Exit codes: 0 ok, 1 failed, 2 usage, 3 access denied, 4 no such volume or device,\n"
               "5 wrong key or password, 6 TPM (none, other, PCRs changed, lockout), 7 damaged or foreign\n"
               "metadata, 8 volumes need recovery, 9 sealvold not reachable, 10 escrow failed,\n"
               "11 several recovery passwords match.\n");
}

int main(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_JSON, ARG_ALL, ARG_STDIN, ARG_DRA_KEY, ARG_PCRS, ARG_PCR_BANK, ARG_IN_PLACE,
               ARG_NO_WAIT, ARG_PAUSED, ARG_YES, ARG_SPOOL };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },  { "version", no_argument, NULL, ARG_VERSION },
                { "json", no_argument, NULL, ARG_JSON }, { "quiet", no_argument, NULL, 'q' },
                { "all", no_argument, NULL, ARG_ALL },   { "stdin", no_argument, NULL, ARG_STDIN },
                { "dra-key", required_argument, NULL, ARG_DRA_KEY },
                { "pcrs", required_argument, NULL, ARG_PCRS },
                { "pcr-bank", required_argument, NULL, ARG_PCR_BANK },
                { "in-place", no_argument, NULL, ARG_IN_PLACE },
                { "no-wait", no_argument, NULL, ARG_NO_WAIT },
                { "paused", no_argument, NULL, ARG_PAUSED },
                { "yes", no_argument, NULL, ARG_YES },
                { "spool", required_argument, NULL, ARG_SPOOL },
                {},
        };
        sd_bus *bus = NULL;
        const char *verb;
        bool arg_help = false;
        int c, r;

        log_parse_environment();
        while ((c = getopt_long(argc, argv, "hq", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        arg_help = true;
                        break;
                case ARG_VERSION:
                        printf("sealvolctl %s\n", PACKAGE_VERSION);
                        return EXIT_OK;
                case ARG_JSON:
                        arg_json = true;
                        break;
                case 'q':
                        arg_quiet = true;
                        break;
                case ARG_ALL:
                        arg_all = true;
                        break;
                case ARG_STDIN:
                        arg_stdin = true;
                        break;
                case ARG_DRA_KEY:
                        arg_dra_key = optarg;
                        break;
                case ARG_PCRS:
                        arg_pcrs = optarg;
                        break;
                case ARG_PCR_BANK:
                        arg_pcr_bank = optarg;
                        break;
                case ARG_IN_PLACE:
                        arg_in_place = true;
                        break;
                case ARG_NO_WAIT:
                        arg_no_wait = true;
                        break;
                case ARG_PAUSED:
                        arg_paused = true;
                        break;
                case ARG_YES:
                        arg_yes = true;
                        break;
                case ARG_SPOOL:
                        arg_spool = optarg;
                        break;
                default:
                        return EXIT_USAGE;
                }

        if (arg_help) {
                if (optind < argc)
                        help_verb(argv[optind]);
                else
                        help();
                return EXIT_OK;
        }
        verb = optind < argc ? argv[optind] : "status";
        argc -= optind;
        argv += optind;
        (void) sd_bus_error_add_map(sealvol_bus_errors);

#define NEED(n)                                                                         \
        do {                                                                            \
                if (argc != (n)) {                                                      \
                        fprintf(stderr, "Usage: see sealvolctl --help.\n");             \
                        return EXIT_USAGE;                                              \
                }                                                                       \
        } while (0)

        if (!IN_SET(true, streq(verb, "status"), streq(verb, "list"), streq(verb, "provision"), streq(verb, "unlock"),
                    streq(verb, "lock"), streq(verb, "recover"), streq(verb, "recovery"), streq(verb, "tpm"),
                    streq(verb, "dra"), streq(verb, "vmk"), streq(verb, "encryption"), streq(verb, "erase"))) {
                fprintf(stderr, "Unknown command %s; see sealvolctl --help.\n", verb);
                return EXIT_USAGE;
        }
        /* The DRA holder runs this on their own workstation: no daemon, no bus. */
        if (streq(verb, "recovery") && argc >= 2 && streq(argv[1], "lookup")) {
                LookupOptions o = { .spool = arg_spool, .dra_key = arg_dra_key, .json = arg_json, .quiet = arg_quiet };

                return verb_recovery_lookup(argv + 2, argc - 2, &o);
        }
        r = bus_connect(&bus);
        if (r != 0)
                return r;

        if (streq(verb, "status"))
                r = verb_status(bus, true);
        else if (streq(verb, "list"))
                r = verb_status(bus, false);
        else if (streq(verb, "provision")) {
                NEED(2);
                r = verb_provision(bus, argv[1]);
        } else if (streq(verb, "unlock") && arg_all) {
                NEED(1);
                r = verb_unlock_all(bus);
        } else if (streq(verb, "unlock")) {
                NEED(2);
                r = verb_simple(bus, argv[1], "Unlock", "");
        } else if (streq(verb, "lock")) {
                NEED(2);
                r = verb_simple(bus, argv[1], "Lock", NULL);
        } else if (streq(verb, "recover") && argc == 1 && !arg_dra_key) {
                r = verb_recover_server(bus);
        } else if (streq(verb, "recover")) {
                NEED(2);
                r = verb_recover(bus, argv[1]);
        } else if (streq(verb, "recovery") && argc == 3 && streq(argv[1], "show"))
                r = verb_recovery_show(bus, argv[2]);
        else if (streq(verb, "recovery") && argc == 2 && streq(argv[1], "escrow") && arg_all)
                r = verb_escrow_all(bus);
        else if (streq(verb, "recovery") && argc == 3 && streq(argv[1], "escrow") && !arg_all)
                r = verb_escrow(bus, argv[2]);
        else if (streq(verb, "recovery") && argc == 2 && streq(argv[1], "show-server"))
                r = verb_server_password_show(bus);
        else if (streq(verb, "recovery") && argc == 3 && streq(argv[1], "rotate"))
                r = verb_simple(bus, argv[2], "RotateRecoveryPassword", "new recovery Key ID ");
        else if (streq(verb, "erase") && argc == 2)
                r = verb_erase(bus, argv[1]);
        else if (streq(verb, "encryption") && argc == 3 &&
                 IN_SET(true, streq(argv[1], "status"), streq(argv[1], "pause"), streq(argv[1], "resume"),
                        streq(argv[1], "cancel")))
                r = verb_encryption(bus, argv[1], argv[2]);
        else if (streq(verb, "tpm") && argc == 2 && streq(argv[1], "reseal"))
                r = verb_reseal(bus);
        else if (streq(verb, "tpm") && argc == 2 && streq(argv[1], "replace"))
                r = verb_tpm_replace(bus);
        else if (streq(verb, "tpm") && argc == 2 && streq(argv[1], "rotate-vmk"))
                r = verb_rotate_vmk(bus);
        else if (streq(verb, "tpm") && argc == 2 && streq(argv[1], "status"))
                r = verb_show_manager(bus, (const char *const[]) { "TPMPresent", "TPMManufacturer", "TPMFirmware",
                                                                    "TPMLockout", "SealedPCRs", "ChangedPCRs",
                                                                    "VMKAvailable", "VMKId", "VMKRotation",
                                                                    "ServerRecoveryKeyId", NULL });
        else if (streq(verb, "dra") && argc == 2 && streq(argv[1], "show"))
                r = verb_show_manager(bus, (const char *const[]) { "DRAFingerprint", NULL });
        else if (streq(verb, "dra") && argc == 3 && streq(argv[1], "set"))
                r = verb_dra_set(bus, argv[2]);
        else if (streq(verb, "vmk") && argc == 2 && streq(argv[1], "export"))
                r = verb_vmk_export(bus);
        else {
                fprintf(stderr, "Usage: see sealvolctl --help.\n");
                r = EXIT_USAGE;
        }
        sd_bus_flush_close_unref(bus);
        return r;
}
