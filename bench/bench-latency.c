/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-latency: how long sealvold takes to answer a property read (what `sealvolctl status` does)
 * while it works on something slow, against the same read while it is idle, measured in the same
 * run (bench/README.md, "Bus latency").
 *
 *   bench-latency [--samples N] [--rounds N]
 *
 * It starts the test harness's daemon fixture (a private swtpm, bus and sealvold; $SEALVOLD and
 * $SEALVOLCTL name the binaries, bench/run-latency sets them), with recovery keyslots at the
 * production KDF cost, provisions two volumes, and reads Volume.State over and over: idle, then
 * while UnlockWithRecoveryPassword runs (its KDF on a worker, the rotation it brings on the loop),
 * then while UnlockWithServerRecoveryPassword runs (its KDF on a worker; opening every volume and
 * the VMK rotation on the loop), while RotateRecoveryPassword runs (its KDF and escrow on a worker),
 * and while ReplaceTPMWithServerRecoveryPassword runs (its KDF and the TPM's work on workers; the
 * rotation it brings on the loop), with the TPM in place; then while EscrowAll sends to a hook that
 * takes 2 s and to an AD DC that accepts and never answers (the escrow helper's timeout, 3 s), and
 * while an in-place encryption runs (from its call until the data is encrypted). For each it prints the reads' p50, p99 and maximum, and the ratios
 * to the idle ones. Nothing here is a test: no figure is asserted.
 */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon-fixture.h"
#include "fileio.h"
#include "luks-fixture.h"
#include "test-util.h"

#define SAMPLES_MAX 100000u

typedef struct Series {
        double ms[SAMPLES_MAX];
        size_t n;
} Series;

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static double percentile(Series *s, double p) {
        size_t i;

        if (s->n == 0)
                return 0;
        qsort(s->ms, s->n, sizeof(s->ms[0]), cmp_double);
        i = (size_t) (p * (double) (s->n - 1) + 0.5);
        return s->ms[i];
}

/* One read of what status shows of a volume, timed. */
static int timed_read(sd_bus *bus, const char *path, Series *s) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *state = NULL;
        double t0 = now_ms();
        int r;

        r = sd_bus_get_property_string(bus, "org.sealvol1", path, "org.sealvol1.Volume", "State", &error, &state);
        if (r < 0) {
                fprintf(stderr, "bench-latency: reading State: %s\n", error.message ?: strerror(-r));
                sd_bus_error_free(&error);
                return r;
        }
        free(state);
        if (s->n < SAMPLES_MAX)
                s->ms[s->n++] = now_ms() - t0;
        return 0;
}

static int on_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        int *done = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        (void) ret_error;
        if (e)
                fprintf(stderr, "bench-latency: %s: %s\n", e->name, e->message);
        *done = e ? -1 : 1;
        return 0;
}

/* Reads State of path on bus while member runs on object (called through caller, with password and
 * no flags, or with no arguments when password is NULL), until it answers. */
static int during(sd_bus *bus, sd_bus *caller, const char *path, const char *object, const char *interface,
                  const char *member, const char *password, Series *s, double *ret_call_ms) {
        sd_bus_slot *slot = NULL;
        double t0 = now_ms();
        int done = 0, r;

        /* EscrowAll takes its flags only; the others a password and flags, or nothing. */
        if (streq(member, "EscrowAll"))
                r = sd_bus_call_method_async(caller, &slot, "org.sealvol1", object, interface, member, on_reply, &done,
                                             "t", UINT64_C(0));
        else
                r = password ? sd_bus_call_method_async(caller, &slot, "org.sealvol1", object, interface, member,
                                                        on_reply, &done, "st", password, UINT64_C(0))
                             : sd_bus_call_method_async(caller, &slot, "org.sealvol1", object, interface, member,
                                                        on_reply, &done, NULL);
        if (r >= 0)
                r = sd_bus_flush(caller);
        while (r >= 0 && done == 0) {
                r = timed_read(bus, path, s);
                while (r >= 0 && (r = sd_bus_process(caller, NULL)) > 0)
                        ;
        }
        sd_bus_slot_unref(slot);
        *ret_call_ms = now_ms() - t0;
        return r < 0 ? r : done < 0 ? -EIO : 0;
}

static char *read_password(sd_bus *bus, const char *object, const char *interface, const char *member) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *pw, *key_id;
        char *copy = NULL;

        if (sd_bus_call_method(bus, "org.sealvol1", object, interface, member, &error, &reply, "") >= 0 &&
            sd_bus_message_read(reply, "ss", &pw, &key_id) >= 0)
                copy = strdup(pw);
        else
                fprintf(stderr, "bench-latency: %s: %s\n", member, error.message ?: "no answer");
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return copy;
}

static void report(const char *what, Series *s, double p50_idle, double p99_idle, double call_ms) {
        double p50 = percentile(s, 0.50), p99 = percentile(s, 0.99), max = s->n ? s->ms[s->n - 1] : 0;

        printf("%-40s %7zu %9.2f %9.2f %9.2f %9.1f %9.1f", what, s->n, p50, p99, max, p50_idle > 0 ? p50 / p50_idle : 0,
               p99_idle > 0 ? p99 / p99_idle : 0);
        if (call_ms > 0)
                printf(" %9.0f", call_ms);
        printf("\n");
}

/* The Encryption property of path: "" once no in-place encryption is under way. */
static int encryption_of(sd_bus *bus, const char *path, char **ret) {
        return sd_bus_get_property_string(bus, "org.sealvol1", path, "org.sealvol1.Volume", "Encryption", NULL, ret);
}

/* Reads State of path while ProvisionInPlace of image runs (during(): it takes a device and flags as
 * the recovery calls take a password and flags), and on until its encryption is done. */
static int during_in_place(sd_bus *bus, sd_bus *caller, const char *path, const char *image, Series *s,
                           double *ret_call_ms) {
        sd_bus_message *reply = NULL;
        const char *volume = NULL;
        double t0 = now_ms(), ms;
        int r;

        r = during(bus, caller, path, "/org/sealvol1", "org.sealvol1.Manager", "ProvisionInPlace", image, s, &ms);
        if (r < 0)
                return r;
        /* The volume is registered now: follow its encryption to the end. */
        r = sd_bus_call_method(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ListVolumes", NULL,
                               &reply, "");
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(ssso)");
        while (r > 0) {
                const char *uuid, *state, *device, *object;

                r = sd_bus_message_read(reply, "(ssso)", &uuid, &device, &state, &object);
                if (r > 0 && streq(device, image))
                        volume = object;
        }
        for (r = volume ? 0 : -ENOENT; r >= 0;) {
                _cleanup_free_ char *e = NULL;

                r = timed_read(bus, path, s);
                if (r >= 0)
                        r = encryption_of(bus, volume, &e);
                if (r >= 0 && isempty(e))
                        break;
        }
        sd_bus_message_unref(reply);
        *ret_call_ms = now_ms() - t0;
        return r;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "samples", required_argument, NULL, 's' },
                { "rounds", required_argument, NULL, 'r' },
                {},
        };
        static Series idle, recover, server, rotate, replace, escrow, in_place;
        _cleanup_(daemon_fixture_freep) DaemonFixture *d = NULL;
        sd_bus *bus = NULL, *caller = NULL;
        char *images[2] = {}, *paths[2] = {};
        unsigned samples = 1000, rounds = 3;
        double recover_ms = 0, server_ms = 0, rotate_ms = 0, replace_ms = 0, escrow_ms = 0, in_place_ms = 0, p50_idle,
               p99_idle;
        _cleanup_free_ char *config = NULL, *hook = NULL, *secret = NULL;
        static const char hook_text[] = "#!/bin/sh\ncat >/dev/null\nsleep 2\necho stored\n";
        char hook_dir[] = "/tmp/bench-latency.XXXXXX";
        unsigned port = 0;
        int c, r, silent;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's':
                        samples = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                case 'r':
                        rounds = (unsigned) strtoul(optarg, NULL, 10);
                        break;
                default:
                        fprintf(stderr, "usage: %s [--samples N] [--rounds N]\n", argv[0]);
                        return 2;
                }
        if (samples == 0 || samples > SAMPLES_MAX || rounds == 0) {
                fprintf(stderr, "bench-latency: --samples 1..%u, --rounds 1 or more\n", SAMPLES_MAX);
                return 2;
        }

        /* Escrow to a hook that takes 2 s, and to a DC that never answers (given up after 3 s). */
        silent = test_silent_listener(&port);
        if (silent < 0 || !mkdtemp(hook_dir) || chmod(hook_dir, 0755) < 0 || !(hook = path_join(hook_dir, "hook")) ||
            !(secret = path_join(hook_dir, "secret")) ||
            write_file_atomic(hook, hook_text, strlen(hook_text), 0755) < 0 ||
            write_file_atomic(secret, "secret\n", 7, 0600) < 0 ||
            asprintf(&config,
                     "[Recovery]\nKDFIterations=1048576\n[ActiveDirectory]\nURI=ldaps://127.0.0.1:%u\n"
                     "BindDN=CN=DB1,CN=Computers,DC=example,DC=com\nPasswordFile=%s\nTimeoutSec=3\n"
                     "[Escrow]\nTargets=spool hook ad\nHook=%s\nHookTimeoutSec=30\n",
                     port, secret, hook) < 0) {
                fprintf(stderr, "bench-latency: cannot set up the escrow targets\n");
                return 1;
        }
        r = daemon_fixture_new("bench-latency", config, &d);
        if (r < 0) {
                fprintf(stderr, "bench-latency: cannot start the daemon fixture: %s\n", strerror(-r));
                return 1;
        }
        /* The slow calls take what they take (an escrow pass: each record to the hook and to the DC, in
         * turn): the caller waits for them. */
        if (sd_bus_open_system(&bus) < 0 || sd_bus_open_system(&caller) < 0 ||
            sd_bus_set_method_call_timeout(caller, UINT64_C(600) * 1000 * 1000) < 0) {
                fprintf(stderr, "bench-latency: cannot connect to the fixture's bus\n");
                return 1;
        }
        for (size_t i = 0; i < 2; i++) {
                char name[16];
                _cleanup_free_ char *out = NULL;
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                const char *p, *key_id;

                snprintf(name, sizeof(name), "disk%zu.img", i);
                if (daemon_fixture_new_image(d, name, &images[i]) < 0 ||
                    sd_bus_call_method(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "ProvisionVolume",
                                       &error, &reply, "st", images[i], UINT64_C(0)) < 0 ||
                    sd_bus_message_read(reply, "os", &p, &key_id) < 0) {
                        fprintf(stderr, "bench-latency: provisioning: %s\n", error.message ?: "failed");
                        return 1;
                }
                paths[i] = strdup(p);
                sd_bus_message_unref(reply);
        }

        for (unsigned i = 0; i < samples; i++)
                if (timed_read(bus, paths[1], &idle) < 0)
                        return 1;
        for (unsigned k = 0; k < rounds; k++) {
                _cleanup_free_ char *pw = read_password(bus, paths[0], "org.sealvol1.Volume", "GetRecoveryPassword");
                _cleanup_free_ char *spw = NULL;
                double ms;

                if (!pw || during(bus, caller, paths[1], paths[0], "org.sealvol1.Volume", "UnlockWithRecoveryPassword",
                                  pw, &recover, &ms) < 0)
                        return 1;
                recover_ms += ms / rounds;
                spw = read_password(bus, "/org/sealvol1", "org.sealvol1.Manager", "GetServerRecoveryPassword");
                if (!spw || during(bus, caller, paths[1], "/org/sealvol1", "org.sealvol1.Manager",
                                   "UnlockWithServerRecoveryPassword", spw, &server, &ms) < 0)
                        return 1;
                server_ms += ms / rounds;
                if (during(bus, caller, paths[1], paths[0], "org.sealvol1.Volume", "RotateRecoveryPassword", NULL,
                           &rotate, &ms) < 0)
                        return 1;
                rotate_ms += ms / rounds;
                free(spw);
                spw = read_password(bus, "/org/sealvol1", "org.sealvol1.Manager", "GetServerRecoveryPassword");
                if (!spw || during(bus, caller, paths[1], "/org/sealvol1", "org.sealvol1.Manager",
                                   "ReplaceTPMWithServerRecoveryPassword", spw, &replace, &ms) < 0)
                        return 1;
                replace_ms += ms / rounds;
                if (during(bus, caller, paths[1], "/org/sealvol1", "org.sealvol1.Manager", "EscrowAll", NULL, &escrow,
                           &ms) < 0)
                        return 1;
                escrow_ms += ms / rounds;
                {
                        _cleanup_free_ char *image = NULL;
                        char name[32];

                        snprintf(name, sizeof(name), "data%u.img", k);
                        if (ext4_image_new(d->dir, name, 160, 128, 64, &image) < 0 ||
                            during_in_place(bus, caller, paths[1], image, &in_place, &ms) < 0) {
                                fprintf(stderr, "bench-latency: the in-place encryption failed\n");
                                return 1;
                        }
                        in_place_ms += ms / rounds;
                }
        }

        p50_idle = percentile(&idle, 0.50);
        p99_idle = percentile(&idle, 0.99);
        printf("%-40s %7s %9s %9s %9s %9s %9s %9s\n", "Volume.State read", "reads", "p50 ms", "p99 ms", "max ms",
               "p50/idle", "p99/idle", "call ms");
        report("idle", &idle, p50_idle, p99_idle, 0);
        report("during UnlockWithRecoveryPassword", &recover, p50_idle, p99_idle, recover_ms);
        report("during UnlockWithServerRecoveryPwd", &server, p50_idle, p99_idle, server_ms);
        report("during RotateRecoveryPassword", &rotate, p50_idle, p99_idle, rotate_ms);
        report("during ReplaceTPMWithServerPwd", &replace, p50_idle, p99_idle, replace_ms);
        report("during EscrowAll (hook 2 s, silent DC)", &escrow, p50_idle, p99_idle, escrow_ms);
        report("during an in-place encryption", &in_place, p50_idle, p99_idle, in_place_ms);

        sd_bus_flush_close_unref(caller);
        sd_bus_flush_close_unref(bus);
        (void) close(silent);
        (void) unlink(hook);
        (void) unlink(secret);
        (void) rmdir(hook_dir);
        for (size_t i = 0; i < 2; i++) {
                free(images[i]);
                free(paths[i]);
        }
        return 0;
}
