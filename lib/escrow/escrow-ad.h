/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * escrow-ad.h: escrow of recovery passwords to Active Directory, as Windows does it for BitLocker.
 *
 * Each recovery password becomes an msFVE-RecoveryInformation object under this server's computer
 * object (MS-ADSC 2.105; attributes MS-ADA2 msFVE-*), written by the machine account itself: the
 * computer class's default security descriptor lets the machine create children of its own object,
 * so no delegation is needed. The new object is readable by Domain Admins and SYSTEM only, and the
 * password and key package are confidential attributes, so the machine can see the DN of what it
 * wrote but not read the password back. docs/escrow-ad.md has the details.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guid.h"
#include "macro.h"

#define AD_TIMEOUT_SEC_DEFAULT 10U
#define AD_TIMEOUT_SEC_MAX 3600U
/* rangeUpper of msFVE-KeyPackage in the AD schema. */
#define AD_KEY_PACKAGE_MAX ((size_t) 102400)
/* sAMAccountName's rangeUpper; a computer's is at most 15 characters and "$". */
#define AD_SAM_ACCOUNT_NAME_MAX 20
#define AD_NETBIOS_NAME_MAX 15
/* A simple-bind password file: a password, perhaps with one trailing newline. */
#define AD_PASSWORD_FILE_MAX ((size_t) 1024)
/* Children of the computer object read in one search (AD's default MaxPageSize). */
#define AD_CHILDREN_MAX 1000

typedef struct AdConfig {
        char *uri;              /* "ldap://dc.example.com" (GSSAPI, SASL sealing) or "ldaps://..." (simple bind) */
        char *computer_dn;      /* NULL: looked up by sam_account_name under the rootDSE's defaultNamingContext */
        char *sam_account_name; /* NULL: short hostname, upper case, cut to 15 chars, plus "$" */
        char *keytab;           /* GSSAPI credentials (NULL: /etc/krb5.keytab) */
        char *principal;        /* NULL: sam_account_name (Kerberos default realm) */
        char *bind_dn;          /* simple bind over LDAPS/StartTLS instead of GSSAPI; password read from password_file */
        char *password_file;
        char *ca_file;          /* TLS CA for ldaps:// (and StartTLS); NULL: the system's trust store */
        bool sasl_nocanon;      /* default true (do not reverse-resolve the DC for the SPN) */
        unsigned timeout_sec;   /* network timeout per operation, default 10; 0 means the default */
} AdConfig;

void ad_config_init(AdConfig *c);
void ad_config_done(AdConfig *c);

typedef struct AdRecoveryRecord {
        Guid recovery_guid;     /* the password's Key ID */
        Guid volume_guid;       /* the LUKS UUID */
        const char *password;   /* canonical 8x6 digits with dashes; secret */
        uint64_t created_usec;  /* CLOCK_REALTIME, names the object */
        const void *key_package; size_t key_package_size; /* optional msFVE-KeyPackage, may be NULL/0 */
} AdRecoveryRecord;

typedef enum AdVerify {
        AD_VERIFY_NONE,
        AD_VERIFY_OBJECT, /* DN and GUID-bearing cn seen */
        AD_VERIFY_FULL,   /* password+GUIDs read back and equal */
} AdVerify;

/* Escrows r as an msFVE-RecoveryInformation child of this server's computer object, named
 * "<created time in local time with UTC offset>{<RECOVERY GUID upper case>}" exactly as Windows does,
 * with msFVE-RecoveryPassword, msFVE-RecoveryGuid, msFVE-VolumeGuid (16 bytes, AD byte order:
 * guid_to_ms_bytes) and msFVE-KeyPackage when given. Idempotent: if a child whose cn ends with the
 * same {GUID} exists, nothing is added and its DN is returned. Then verifies what it can read back.
 *
 * Errors, distinct: -EHOSTUNREACH directory unreachable, -ETIMEDOUT timed out, -ENOKEY authentication
 * failed (bad/missing keytab or password, KDC refused), -EACCES insufficient access, -ESRCH computer
 * object not found, -EPROTONOSUPPORT schema has no msFVE classes, -EREMOTEIO record rejected
 * (constraint/object class violation), -EINVAL bad config (or a malformed record: a password not in
 * the canonical form, a null GUID, a key package too large). Beyond those: -EEXIST when the directory
 * can be read and holds a different password or volume GUID under the same Key ID, -E2BIG when the
 * computer object has more children than one search returns, -ENOMEM.
 *
 * *ret_dn and *ret_verify are written on success only; *ret_error (if given, malloc'ed) on failure
 * only, saying in one line what the server said (never the password). */
int ad_escrow(const AdConfig *c, const AdRecoveryRecord *r, char **ret_dn, AdVerify *ret_verify, char **ret_error);

/* The recovery GUIDs (Key IDs) of the msFVE children of the computer object, read from their cn by
 * a one-level search for DNs only, which is what a machine account may see. Children whose cn does
 * not end in "{GUID}" are not counted. Same errors as ad_escrow(). */
int ad_escrow_list(const AdConfig *c, Guid **ret_guids, size_t *ret_n, char **ret_error);

/* The object name Windows gives a recovery password: local time with its UTC offset, then the Key ID
 * in braces, e.g. "2026-11-23T09:27:01+01:00{A494C89A-CCDF-431A-A049-EB5B420D04A2}". */
int ad_recovery_cn(uint64_t created_usec, const Guid *recovery_guid, char **ret);

/* Whether s is a recovery password in the canonical form: 8 blocks of 6 digits joined by single
 * dashes, each a multiple of 11 no larger than 720885. Reads at most 56 bytes of s. */
bool ad_recovery_password_is_canonical(const char *s);

const char *ad_verify_to_string(AdVerify v);
