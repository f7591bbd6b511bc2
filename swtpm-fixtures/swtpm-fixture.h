/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * swtpm-fixture.h: a private software TPM 2.0 for one test.
 *
 * Each fixture owns a fresh directory holding the swtpm state and its unix sockets (no TCP port, so
 * tests never collide), and hands out the TCTI string the code under test should use. The swtpm
 * process is stopped by PID and reaped when the fixture is freed; it also dies with the test
 * process. A "reboot" stops the TPM in order and starts it again on the same state: PCRs reset,
 * persistent objects and NV survive, exactly as across a server reboot.
 *
 * A fixture can also be a TPM as its manufacturer ships it: with an RSA 2048 EK at 0x81010001 and
 * its certificate in NV 0x01c00002, issued by a CA kept in a directory of the test's choosing
 * (swtpm_setup and swtpm_localca make the CA on first use). Fixtures given the same CA directory are
 * TPMs of one manufacturer. The anchor file of that CA holds its root and its issuing CA.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <tss2/tss2_tpm2_types.h>

#include "macro.h"

typedef struct SwtpmFixture {
        char *dir;         /* owned, removed on free */
        char *state_dir;   /* dir/state: the TPM's NV, survives reboots */
        char *socket_path; /* dir/tpm.sock; the control channel is tpm.sock.ctrl, as the TCTI expects */
        char *log_path;
        char *tcti;        /* "swtpm:path=<socket_path>" */
        pid_t pid;
} SwtpmFixture;

/* Creates a directory named after name and starts a TPM with a fresh state in it. */
int swtpm_fixture_new(const char *name, SwtpmFixture **ret);
/* As swtpm_fixture_new(), the state manufactured with an EK certificate issued by the CA in ca_dir
 * (an absolute path to an existing directory; NULL: no EK certificate, as swtpm_fixture_new()). */
int swtpm_fixture_new_with_ek(const char *name, const char *ca_dir, SwtpmFixture **ret);
/* "The main board was replaced": stops the TPM, wipes its state and starts a freshly manufactured one
 * in its place (new seeds: another EK, no SRK), with an EK certificate from ca_dir when non-NULL. */
int swtpm_fixture_new_tpm(SwtpmFixture *f, const char *ca_dir);
/* Writes ca_dir/anchors.pem, the CA's root and issuing certificates, and returns its path. The CA
 * exists once a TPM was made with it. -ENOENT before. */
int swtpm_fixture_ca_anchor_file(const char *ca_dir, char **ret_path);
SwtpmFixture *swtpm_fixture_free(SwtpmFixture *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(SwtpmFixture *, swtpm_fixture_free);

int swtpm_fixture_start(SwtpmFixture *f);
/* Orderly: TPM2_Shutdown(CLEAR), then SIGTERM, then SIGKILL after a bounded wait; reaps. */
int swtpm_fixture_stop(SwtpmFixture *f);
int swtpm_fixture_reboot(SwtpmFixture *f);
/* Kills the TPM without a shutdown, as a power cut does. */
int swtpm_fixture_kill(SwtpmFixture *f);

/* Measures data into PCR pcr of every active bank (TPM2_PCR_Event), as firmware or a boot loader
 * would: the way a test simulates a changed boot chain. */
int swtpm_fixture_extend_pcr(SwtpmFixture *f, unsigned pcr, const void *data, size_t size);
/* Flushes every transient object and loaded session, as /dev/tpmrm0 does when a client's connection
 * closes: after a client died or a fault cut its connection short. */
int swtpm_fixture_flush_transient(SwtpmFixture *f);
/* Puts another storage key at the SRK's persistent handle (0x81000001), replacing the one there: an
 * interposer's key, or a cleared storage hierarchy whose SRK was created again. */
int swtpm_fixture_replace_srk(SwtpmFixture *f);
