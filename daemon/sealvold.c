/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sealvold.c: the sealvol daemon: owns org.sealvol1 on the system bus, unlocks every volume of this
 * server from one TPM unseal, and serves provisioning, recovery and status (docs/bus-api.md).
 *
 *   sealvold [--config PATH] [--no-unlock]
 *
 * The bus is the system bus (DBUS_SYSTEM_BUS_ADDRESS selects another, as tests do); the TPM is the
 * configured TCTI or SEALVOL_TCTI.
 */

#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "sealvold.h"

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) userdata;
        (void) si;
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static int on_name_acquired(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        Manager *m = userdata;

        (void) ret_error;
        if (!e) {
                m->name_acquired = true;
                manager_escrow_after_boot(m);
                return 0;
        }
        /* Another sealvold owns it, or the bus policy (policy/org.sealvol1.conf) is not installed. */
        log_error("Failed to acquire the bus name %s: %s", SEALVOL_BUS_NAME, e->message ?: e->name);
        return sd_event_exit(sd_bus_get_event(sd_bus_message_get_bus(reply)), -EADDRINUSE);
}

/* At boot the daemon starts long before the system bus (it must, to open the disks the local file
 * systems live on). sd-bus waits for the bus socket to appear (watch-bind) and queues what is sent
 * meanwhile; the name is requested asynchronously, so nothing here blocks on the bus. */
static int bus_open(Manager *m) {
        const char *address = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        int r;

        r = sd_bus_new(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the bus connection: %m");
        r = sd_bus_set_address(m->bus, isempty(address) ? "unix:path=/run/dbus/system_bus_socket" : address);
        if (r < 0)
                return log_error_errno(r, "Failed to set the system bus address: %m");
        (void) sd_bus_set_description(m->bus, "system-bus");
        (void) sd_bus_set_bus_client(m->bus, true);
        (void) sd_bus_set_trusted(m->bus, false);
        (void) sd_bus_negotiate_creds(m->bus, true, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_EFFECTIVE_CAPS);
        r = sd_bus_set_watch_bind(m->bus, true);
        if (r < 0)
                return log_error_errno(r, "Failed to wait for the system bus socket: %m");
        r = manager_bus_setup(m);
        if (r < 0)
                return r;
        r = sd_bus_start(m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the system bus: %m");
        r = sd_bus_request_name_async(m->bus, NULL, SEALVOL_BUS_NAME, 0, on_name_acquired, m);
        if (r < 0)
                return log_error_errno(r, "Failed to request the bus name %s: %m", SEALVOL_BUS_NAME);
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        return 0;
}

static void help(void) {
        printf("sealvold [OPTIONS...]\n\n"
               "The sealvol daemon: unlocks this server's volumes from one TPM unseal and serves\n"
               "org.sealvol1 on the system bus.\n\n"
               "  -h --help          Show this help\n"
               "     --version       Show the version\n"
               "     --config PATH   Configuration file (default " CONFIG_PATH_DEFAULT ")\n"
               "     --no-unlock     Do not unlock the volumes at start\n");
}

static int run(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_CONFIG, ARG_NO_UNLOCK };
        static const struct option options[] = {
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "config", required_argument, NULL, ARG_CONFIG },
                { "no-unlock", no_argument, NULL, ARG_NO_UNLOCK },
                {},
        };
        _cleanup_(manager_freep) Manager *m = NULL;
        const char *config = NULL;
        bool unlock = true;
        sigset_t mask;
        int c, r;

        log_parse_environment();
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("sealvold %s\n", PACKAGE_VERSION);
                        return 0;
                case ARG_CONFIG:
                        config = optarg;
                        break;
                case ARG_NO_UNLOCK:
                        unlock = false;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc)
                return log_error_errno(EINVAL, "Unexpected argument: %s", argv[optind]);

        /* It holds the VMK: no core dumps, no ptrace by non-root, nothing to leak. */
        if (prctl(PR_SET_DUMPABLE, 0) < 0)
                return log_error_errno(errno, "Failed to make the daemon non-dumpable: %m");

        /* OpenSSL's own secure heap (locked, wiped): private keys it decodes (the DRA key a caller
         * passes) live there rather than in the ordinary heap. */
        if (CRYPTO_secure_malloc_init(256 * 1024, 16) != 1)
                log_warning("Failed to set up OpenSSL's secure heap; private keys will live in the ordinary heap.");

        r = manager_new(config, &m);
        if (r < 0)
                return r;

        r = sd_event_default(&m->event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the event loop: %m");
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Failed to block signals: %m");
        if (sd_event_add_signal(m->event, NULL, SIGTERM, on_signal, NULL) < 0 ||
            sd_event_add_signal(m->event, NULL, SIGINT, on_signal, NULL) < 0)
                return log_error_errno(EIO, "Failed to watch SIGTERM/SIGINT.");

        r = bus_open(m);
        if (r < 0)
                return r;

        /* The boot's job: every volume of this server, from one unseal, then READY=1. A volume that
         * does not open stays closed and is reported; the daemon still comes up. */
        r = manager_boot(m, unlock);
        if (r < 0)
                return r;

        r = sd_event_loop(m->event);
        (void) sd_notify(false, "STOPPING=1");
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        return run(argc, argv) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
