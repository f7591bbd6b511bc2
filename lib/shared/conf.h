/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * conf.h: /etc/sealvol/sealvol.conf, an INI file in systemd's style (docs/configuration.md).
 *
 *   [TPM]        TCTI=  PCRBank=sha256  PCRs=7  MinimumPCRs=7  EKCertificateCA=/etc/sealvol/tpm-ca.pem
 *   [DRA]        Certificate=/etc/sealvol/dra.pem  ExtraEKU=1.2.3.4 ...  TrustAnchor=/etc/sealvol/dra-ca.pem
 *                PinnedFingerprint=<64 hex> ...
 *   [Recovery]   KDFIterations=1048576  KDFIterationsMax=4194304
 *   [Escrow]     Targets=spool  Require=  SpoolDirectory=  Hook=  HookTimeoutSec=30  RetrySec=60
 *                RetryMaxSec=3600  HookPlaintext=no
 *   [ActiveDirectory] URI=  ComputerDN=  SAMAccountName=  Keytab=  Principal=  BindDN=  PasswordFile=
 *                CAFile=  SASLNoCanon=yes  TimeoutSec=10
 *   [Paths]      StateDirectory=/var/lib/sealvol
 *   [Boot]       Discover=yes  DeviceTimeoutSec=10
 *
 * Every key is optional. Unknown sections and keys, and bad values, are errors that name the file
 * and the line: a typo in a security setting must not be silently ignored.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "build-config.h"
#include "dra.h"
#include "escrow-ad.h"
#include "escrow.h"
#include "macro.h"

#define CONFIG_PATH_DEFAULT SEALVOL_SYSCONFDIR "/sealvol.conf"
#define CONFIG_PATH_ENV "SEALVOL_CONFIG"
#define CONFIG_FILE_MAX (64u * 1024u)
#define CONFIG_EXTRA_EKU_MAX 16
#define CONFIG_DRA_PINNED_MAX 16

typedef struct Config {
        char *tcti;             /* NULL: tpm2_tcti_select() decides */
        TPMI_ALG_HASH pcr_bank;
        uint32_t pcr_mask;      /* what new seals bind the VMK to; never below the floor (pcr-floor.h) */
        uint32_t pcr_min_mask;  /* the floor: PCRs every seal must include */
        /* The TPM makers' CAs a replacement TPM's EK certificate must chain to (docs/sealed-vmk.md,
         * "Replacing the TPM"); NULL: the EK is not checked. */
        char *tpm_ek_ca;
        char *dra_certificate;  /* NULL: no DRA */
        char *dra_extra_ekus[CONFIG_EXTRA_EKU_MAX + 1]; /* NULL-terminated */
        /* What a certificate set over the bus must chain to or be (docs/dra.md, "Trust"): neither
         * set refuses every one. */
        char *dra_trust_anchor;         /* a PEM file of CA certificates, or NULL */
        uint8_t dra_pinned[CONFIG_DRA_PINNED_MAX][DRA_FINGERPRINT_SIZE];
        size_t n_dra_pinned;
        uint32_t recovery_kdf_iterations;
        uint32_t recovery_kdf_iterations_max; /* the most a recovery keyslot may ask for before its KDF runs */
        char *state_directory;
        uint32_t escrow_targets;        /* mask of 1 << EscrowTarget; default: the spool */
        uint32_t escrow_required;       /* the targets that must succeed before a password counts */
        char *escrow_spool_directory;   /* NULL: <state>/escrow */
        char *escrow_hook;
        bool escrow_hook_plaintext;     /* the hook gets plain records even with a DRA (escrow.md) */
        uint32_t escrow_hook_timeout_sec;
        uint32_t escrow_retry_sec;      /* first retry of a failed escrow; doubles up to the max */
        uint32_t escrow_retry_max_sec;
        AdConfig ad;
        /* [Boot] (docs/boot.md) */
        bool boot_discover;             /* scan block devices for this server's volumes */
        uint32_t boot_device_timeout_sec; /* wait this long at start for registered volumes' disks */
} Config;

void config_init(Config *c);
void config_done(Config *c);

/* Parses size bytes of configuration text; path is only for the messages. */
int config_parse(const char *data, size_t size, const char *path, Config *c, char **ret_error);

/* Loads path (NULL: $SEALVOL_CONFIG, else CONFIG_PATH_DEFAULT). A missing file is the defaults.
 * On -EBADMSG, *ret_error (if given) says where and what. */
int config_load(const char *path, Config *c, char **ret_error);
