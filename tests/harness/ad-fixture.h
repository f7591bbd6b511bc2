/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ad-fixture.h: a Samba AD DC on 127.0.0.1 for the AD escrow tests, provisioned by tests/harness/ad-dc
 * into the test's directory and run as the test's own child, stopped by PID.
 *
 * The DC's ports are fixed (88, 389, 636), so a test enters a network namespace of its own first
 * (ad_fixture_enter_netns()); everything it spawns inherits it, and two suites never collide.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#define AD_FIXTURE_REALM "SEALVOL.TEST"
#define AD_FIXTURE_BASE "DC=sealvol,DC=test"
#define AD_FIXTURE_ADMIN "Administrator@" AD_FIXTURE_REALM
#define AD_FIXTURE_LNX1_DN "CN=LNX1,CN=Computers," AD_FIXTURE_BASE
#define AD_FIXTURE_URI "ldap://127.0.0.1"
#define AD_FIXTURE_LDAPS_URI "ldaps://127.0.0.1"

typedef struct AdDc {
        char *dir;
        pid_t pid;
        char *log;                 /* the DC's stdout and stderr */
        char *krb5_conf;
        char *ca_file;             /* the test CA that issued the DC's LDAPS certificate */
        char *admin_password_file; /* Administrator's password, no newline */
        char *lnx1_keytab;
        char *lnx2_keytab;
} AdDc;

/* Whether samba, samba-tool, ldapsearch and openssl are installed; *ret_missing names the first
 * that is not. */
bool ad_fixture_available(const char **ret_missing);

/* unshare(CLONE_NEWNET) and bring up lo. Needs root (CAP_SYS_ADMIN). */
int ad_fixture_enter_netns(void);

/* Provisions a domain in dir (about 10 s), starts the DC and waits until LDAP and the KDC answer.
 * Sets KRB5_CONFIG for this process to the domain's krb5.conf. */
int ad_dc_start(const char *dir, AdDc **ret);
/* Stops the DC by PID and frees dc (the directory stays: it is the test's). Accepts NULL. */
AdDc *ad_dc_stop(AdDc *dc);

/* An msFVE-RecoveryInformation object as the administrator sees it. */
typedef struct Entry {
        char *dn;
        char *cn;
        char *password;
        void *recovery_guid;
        size_t recovery_guid_size;
        void *volume_guid;
        size_t volume_guid_size;
} Entry;

void ad_entries_free(Entry *e, size_t n);

/* Runs the stock ldapsearch as the domain administrator over LDAPS (CA-verified), below base, with
 * filter, asking for cn, the password and both GUIDs, and parses its LDIF. On failure (-EIO) *ret_error
 * holds what ldapsearch said. */
int ad_dc_admin_search(AdDc *dc, const char *base, const char *filter, Entry **ret, size_t *ret_n, char **ret_error);

/* The filter an operator uses for a Key ID: the first 8 hex digits, in the cn. */
#define AD_KEY_ID_FILTER_MAX 128
int ad_key_id_filter(const char *key_id, char ret[static AD_KEY_ID_FILTER_MAX]);
