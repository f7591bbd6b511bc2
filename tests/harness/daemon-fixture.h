/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * daemon-fixture.h: sealvold for one test: its own swtpm, its own private system bus, its own state
 * directory and configuration, started as a child and stopped by PID. "Reboot" restarts the TPM
 * (PCRs reset) and the daemon on the same state, as a server reboot does.
 */
#pragma once

#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "bus-fixture.h"
#include "kill-points.h"
#include "macro.h"
#include "swtpm-fixture.h"

typedef struct DaemonFixture {
        char *dir;
        char *config_path;
        char *state_dir;
        char *log_path;
        SwtpmFixture *tpm;
        BusFixture *bus;
        pid_t pid;
        KillPointProcess *traced; /* started by daemon_fixture_start_traced() */
        const char *extra_arg;    /* one more argument for sealvold (e.g. --no-unlock), or NULL */
} DaemonFixture;

/* Starts swtpm, the bus and sealvold (from $SEALVOLD) with extra_config appended to the generated
 * configuration ([TPM] TCTI, [Paths] StateDirectory and [Recovery] KDFIterations=1000 are set). */
int daemon_fixture_new(const char *name, const char *extra_config, DaemonFixture **ret);
DaemonFixture *daemon_fixture_free(DaemonFixture *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(DaemonFixture *, daemon_fixture_free);

int daemon_fixture_start(DaemonFixture *f);
/* Starts the daemon traced for kill points (kill-points.h: steps are changes under prefixes) and lets
 * it run until it is ready (counting nothing); then f->traced runs it with kill_point_process_run().
 * A traced daemon is only ever killed: daemon_fixture_stop() SIGKILLs it too. */
int daemon_fixture_start_traced(DaemonFixture *f, const char *const *prefixes, KillPointGrain grain);
/* -EPROTO if the daemon did not exit cleanly (a sanitizer report, a leak, a crash): see its log. */
int daemon_fixture_stop(DaemonFixture *f);
/* SIGKILL, as a crash or a power cut would (the TPM keeps running). */
int daemon_fixture_kill(DaemonFixture *f);
/* Stops the daemon, reboots the TPM, starts the daemon. */
int daemon_fixture_reboot(DaemonFixture *f);
/* Runs sealvolctl ($SEALVOLCTL, copied into the fixture's directory so that an unprivileged uid can
 * execute it) with args, as uid, input on its stdin (never argv); returns its exit status (128 if
 * killed) or -errno, its stdout and stderr in *ret_output. */
int daemon_fixture_ctl(DaemonFixture *f, uid_t uid, const char *input, char **ret_output, const char *const *args);
#define DAEMON_CTL(d, uid, input, out, ...) \
        daemon_fixture_ctl(d, uid, input, out, (const char *const[]) { __VA_ARGS__, NULL })

/* Waits (at most timeout_ms) until no escrow pass is under way (the Manager's Operations names none):
 * escrow after a change, a DRA certificate or a retry, runs off the loop after the call returned.
 * -ETIMEDOUT, or -errno of the bus. */
int daemon_fixture_wait_escrow(DaemonFixture *f, unsigned timeout_ms);
/* The same for another operation of the server ("rotate-vmk": the rotation a start or an unlock
 * with a server-scoped secret begins, after the boot is ready). */
int daemon_fixture_wait_operation(DaemonFixture *f, const char *name, unsigned timeout_ms);
/* The same until no operation at all is under way: what a start or a call began in the background
 * (a rotation, a used password's replacement, escrow) is done. */
int daemon_fixture_wait_idle(DaemonFixture *f, unsigned timeout_ms);
/* Whether the Manager's Operations names name now (a server operation: "provision", "escrow"): 1, 0,
 * or -errno of the bus. */
int daemon_fixture_operation_running(DaemonFixture *f, const char *name);
/* Whether an escrow pass is under way now: 1, 0, or -errno of the bus. */
int daemon_fixture_escrow_running(DaemonFixture *f);

/* A new image file of the default size in the fixture's directory. */
int daemon_fixture_new_image(DaemonFixture *f, const char *name, char **ret_path);
