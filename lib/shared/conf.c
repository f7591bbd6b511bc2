/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* conf.c: the strict INI parser for sealvol.conf (see conf.h). */

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "fileio.h"
#include "pcr-floor.h"
#include "tpm2.h"
#include "vmk.h"
#include "volume.h"

void config_init(Config *c) {
        *c = (Config) {
                .pcr_bank = TPM2_ALG_SHA256,
                .pcr_mask = VMK_PCR_MASK_DEFAULT,
                .pcr_min_mask = PCR_FLOOR_MIN_MASK_DEFAULT,
                .recovery_kdf_iterations = VOLUME_RECOVERY_PBKDF2_ITERATIONS,
                .recovery_kdf_iterations_max = VOLUME_RECOVERY_PBKDF2_ITERATIONS_MAX,
                .escrow_targets = 1u << ESCROW_TARGET_SPOOL,
                .escrow_hook_timeout_sec = ESCROW_HOOK_TIMEOUT_SEC_DEFAULT,
                .escrow_retry_sec = 60,
                .escrow_retry_max_sec = 3600,
                .boot_discover = true,
                .boot_device_timeout_sec = 10,
        };
        ad_config_init(&c->ad);
}

void config_done(Config *c) {
        free(c->tcti);
        free(c->dra_certificate);
        free(c->dra_trust_anchor);
        free(c->tpm_ek_ca);
        for (size_t i = 0; c->dra_extra_ekus[i]; i++)
                free(c->dra_extra_ekus[i]);
        free(c->state_directory);
        free(c->escrow_spool_directory);
        free(c->escrow_hook);
        ad_config_done(&c->ad);
        config_init(c);
}

static char *strip(char *s) {
        char *e;

        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = '\0';
        return s;
}

static int set_string(char **field, const char *value) {
        char *copy = isempty(value) ? NULL : strdup(value);

        if (!isempty(value) && !copy)
                return -ENOMEM;
        free(*field);
        *field = copy;
        return 0;
}

static int set_absolute_path(char **field, const char *value) {
        if (!isempty(value) && value[0] != '/')
                return -EINVAL;
        return set_string(field, value);
}

static int set_ekus(Config *c, const char *value) {
        _cleanup_free_ char *copy = strdup(value);
        char *save = NULL;
        size_t n = 0;

        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; c->dra_extra_ekus[i]; i++) {
                free(c->dra_extra_ekus[i]);
                c->dra_extra_ekus[i] = NULL;
        }
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                /* A dotted OID: digits and single dots, at least two arcs. */
                if (!isdigit((unsigned char) w[0]) || strspn(w, "0123456789.") != strlen(w) || strstr(w, "..") ||
                    !strchr(w, '.') || w[strlen(w) - 1] == '.')
                        return -EINVAL;
                if (n >= CONFIG_EXTRA_EKU_MAX)
                        return -E2BIG;
                c->dra_extra_ekus[n] = strdup(w);
                if (!c->dra_extra_ekus[n])
                        return -ENOMEM;
                n++;
        }
        return 0;
}

/* Each assignment adds its fingerprints (spaces or commas between them); an empty one clears the list. */
static int add_pinned(Config *c, const char *value) {
        _cleanup_free_ char *copy = strdup(value);
        char *save = NULL;

        if (!copy)
                return -ENOMEM;
        if (isempty(value)) {
                c->n_dra_pinned = 0;
                return 0;
        }
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                uint8_t fp[DRA_FINGERPRINT_SIZE];
                bool known = false;
                int r;

                r = dra_fingerprint_from_string(w, fp);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < c->n_dra_pinned; i++)
                        known = known || memcmp(c->dra_pinned[i], fp, sizeof(fp)) == 0;
                if (known)
                        continue;
                if (c->n_dra_pinned >= CONFIG_DRA_PINNED_MAX)
                        return -E2BIG;
                memcpy(c->dra_pinned[c->n_dra_pinned++], fp, sizeof(fp));
        }
        return 0;
}

/* A value with no spaces or control characters (an LDAP URI, a sAMAccountName, a principal). */
static int set_token(char **field, const char *value) {
        for (const char *p = value; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return -EINVAL;
        return set_string(field, value);
}

static int set_uint32(uint32_t *field, const char *value, uint32_t min, uint32_t max) {
        unsigned long long v;
        char *end;

        if (isempty(value) || !isdigit((unsigned char) value[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0' || v < min || v > max)
                return -ERANGE;
        *field = (uint32_t) v;
        return 0;
}

static int set_boolean(bool *field, const char *value) {
        if (streq_ptr(value, "yes") || streq_ptr(value, "true") || streq_ptr(value, "1") || streq_ptr(value, "on"))
                *field = true;
        else if (streq_ptr(value, "no") || streq_ptr(value, "false") || streq_ptr(value, "0") || streq_ptr(value, "off"))
                *field = false;
        else
                return -EINVAL;
        return 0;
}

/* A PCR selection the VMK may be sealed to (PCRs=), or a minimum for them (MinimumPCRs=): either way
 * nothing software can reset (pcr-floor.h); whether PCRs= includes the minimum is for the whole file. */
static int set_pcr_mask(uint32_t *field, const char *value, char **ret_reason) {
        uint32_t mask;
        int r;

        r = tpm2_pcr_mask_from_string(value, &mask);
        if (r < 0)
                return r;
        r = pcr_floor_check(mask, /* min_mask= */ 0, ret_reason);
        if (r < 0)
                return r;
        *field = mask;
        return 0;
}

/* -ENOKEY: no such key. Other errors are bad values; *ret_reason may say why. */
static int assign(Config *c, const char *section, const char *key, const char *value, char **ret_reason) {
        if (streq(section, "TPM")) {
                if (streq(key, "TCTI"))
                        return set_string(&c->tcti, value);
                if (streq(key, "PCRBank"))
                        return tpm2_hash_alg_from_string(value, &c->pcr_bank);
                if (streq(key, "PCRs"))
                        return set_pcr_mask(&c->pcr_mask, value, ret_reason);
                if (streq(key, "MinimumPCRs"))
                        return set_pcr_mask(&c->pcr_min_mask, value, ret_reason);
                if (streq(key, "EKCertificateCA"))
                        return set_absolute_path(&c->tpm_ek_ca, value);
        } else if (streq(section, "DRA")) {
                if (streq(key, "Certificate"))
                        return set_absolute_path(&c->dra_certificate, value);
                if (streq(key, "ExtraEKU"))
                        return set_ekus(c, value);
                if (streq(key, "TrustAnchor"))
                        return set_absolute_path(&c->dra_trust_anchor, value);
                if (streq(key, "PinnedFingerprint"))
                        return add_pinned(c, value);
        } else if (streq(section, "Recovery")) {
                if (streq(key, "KDFIterations"))
                        return set_uint32(&c->recovery_kdf_iterations, value, VOLUME_PBKDF2_ITERATIONS_MIN,
                                          16 * VOLUME_RECOVERY_PBKDF2_ITERATIONS);
                if (streq(key, "KDFIterationsMax"))
                        return set_uint32(&c->recovery_kdf_iterations_max, value, VOLUME_PBKDF2_ITERATIONS_MIN,
                                          16 * VOLUME_RECOVERY_PBKDF2_ITERATIONS);
        } else if (streq(section, "Escrow")) {
                if (streq(key, "Targets"))
                        return escrow_targets_from_string(value, &c->escrow_targets);
                if (streq(key, "Require"))
                        return escrow_targets_from_string(value, &c->escrow_required);
                if (streq(key, "SpoolDirectory"))
                        return set_absolute_path(&c->escrow_spool_directory, value);
                if (streq(key, "Hook"))
                        return set_absolute_path(&c->escrow_hook, value);
                if (streq(key, "HookPlaintext"))
                        return set_boolean(&c->escrow_hook_plaintext, value);
                if (streq(key, "HookTimeoutSec"))
                        return set_uint32(&c->escrow_hook_timeout_sec, value, 1, 3600);
                if (streq(key, "RetrySec"))
                        return set_uint32(&c->escrow_retry_sec, value, 1, 86400);
                if (streq(key, "RetryMaxSec"))
                        return set_uint32(&c->escrow_retry_max_sec, value, 1, 7 * 86400);
        } else if (streq(section, "ActiveDirectory")) {
                if (streq(key, "URI")) {
                        if (!isempty(value) && strncmp(value, "ldap://", 7) != 0 && strncmp(value, "ldaps://", 8) != 0)
                                return -EINVAL;
                        return set_token(&c->ad.uri, value);
                }
                if (streq(key, "ComputerDN"))
                        return set_string(&c->ad.computer_dn, value);
                if (streq(key, "SAMAccountName"))
                        return strlen(value) > AD_SAM_ACCOUNT_NAME_MAX ? -EINVAL : set_token(&c->ad.sam_account_name, value);
                if (streq(key, "Keytab"))
                        return set_absolute_path(&c->ad.keytab, value);
                if (streq(key, "Principal"))
                        return set_token(&c->ad.principal, value);
                if (streq(key, "BindDN"))
                        return set_string(&c->ad.bind_dn, value);
                if (streq(key, "PasswordFile"))
                        return set_absolute_path(&c->ad.password_file, value);
                if (streq(key, "CAFile"))
                        return set_absolute_path(&c->ad.ca_file, value);
                if (streq(key, "SASLNoCanon"))
                        return set_boolean(&c->ad.sasl_nocanon, value);
                if (streq(key, "TimeoutSec")) {
                        uint32_t t;
                        int r = set_uint32(&t, value, 1, AD_TIMEOUT_SEC_MAX);
                        if (r >= 0)
                                c->ad.timeout_sec = t;
                        return r;
                }
        } else if (streq(section, "Boot")) {
                if (streq(key, "Discover"))
                        return set_boolean(&c->boot_discover, value);
                if (streq(key, "DeviceTimeoutSec"))
                        return set_uint32(&c->boot_device_timeout_sec, value, 0, 600);
        } else if (streq(section, "Paths")) {
                if (streq(key, "StateDirectory"))
                        return set_absolute_path(&c->state_directory, value);
        }
        return -ENOKEY;
}

_printf_(4, 5) static int fail(char **ret_error, const char *path, unsigned line, const char *format, ...) {
        _cleanup_free_ char *what = NULL;
        va_list ap;

        if (!ret_error)
                return -EBADMSG;
        va_start(ap, format);
        if (vasprintf(&what, format, ap) < 0)
                what = NULL;
        va_end(ap);
        free(*ret_error);
        if (asprintf(ret_error, "%s:%u: %s", path, line, strempty(what)) < 0)
                *ret_error = NULL;
        return -EBADMSG;
}

/* What only the whole file can tell. pcrs_line is where PCRs= was set, or 0 (the default). */
static int config_check(const Config *c, const char *path, unsigned line, unsigned pcrs_line,
                        unsigned min_pcrs_line, char **ret_error) {
        _cleanup_free_ char *reason = NULL;
        char pcrs[96];

        /* The first seal (provisioning) takes PCRs= as it is: it must be above the floor. */
        if (pcr_floor_check(c->pcr_mask, c->pcr_min_mask, &reason) < 0)
                return fail(ret_error, path, pcrs_line ?: min_pcrs_line ?: line, "[TPM] PCRs=%s%s: %s",
                            tpm2_pcr_mask_to_string(c->pcr_mask, pcrs, sizeof(pcrs)),
                            pcrs_line ? "" : " (the default)", strempty(reason));
        /* A keyslot of the configured cost must pass the check made before any KDF runs. */
        if (c->recovery_kdf_iterations > c->recovery_kdf_iterations_max)
                return fail(ret_error, path, line, "[Recovery] KDFIterations=%u is above KDFIterationsMax=%u",
                            c->recovery_kdf_iterations, c->recovery_kdf_iterations_max);
        if (c->escrow_required & ~c->escrow_targets)
                return fail(ret_error, path, line, "[Escrow] Require= names a target that Targets= does not");
        if ((c->escrow_targets & (1u << ESCROW_TARGET_HOOK)) && !c->escrow_hook)
                return fail(ret_error, path, line, "[Escrow] Targets= names the hook, but Hook= is not set");
        if ((c->escrow_targets & (1u << ESCROW_TARGET_AD)) && !c->ad.uri)
                return fail(ret_error, path, line, "[Escrow] Targets= names ad, but [ActiveDirectory] URI= is not set");
        if (!!c->ad.bind_dn != !!c->ad.password_file)
                return fail(ret_error, path, line, "[ActiveDirectory] BindDN= and PasswordFile= go together");
        if (c->escrow_retry_max_sec < c->escrow_retry_sec)
                return fail(ret_error, path, line, "[Escrow] RetryMaxSec= is less than RetrySec=");
        return 0;
}

int config_parse(const char *data, size_t size, const char *path, Config *c, char **ret_error) {
        _cleanup_free_ char *text = NULL, *section = NULL;
        char *save = NULL;
        unsigned line = 0, pcrs_line = 0, min_pcrs_line = 0;
        int r;

        if (size > CONFIG_FILE_MAX)
                return fail(ret_error, path, 0, "larger than %u bytes", CONFIG_FILE_MAX);
        if (memchr(data, '\0', size))
                return fail(ret_error, path, 0, "contains a NUL byte");
        text = strndup(data, size);
        if (!text)
                return -ENOMEM;

        /* strtok_r would merge empty lines and skew the line numbers; split by hand. */
        for (char *l = text; l; l = save) {
                _cleanup_free_ char *reason = NULL;
                char *nl = strchr(l, '\n'), *eq, *key, *value;

                save = nl ? nl + 1 : NULL;
                if (nl)
                        *nl = '\0';
                line++;
                l = strip(l);
                if (*l == '\0' || *l == '#' || *l == ';')
                        continue;
                if (*l == '[') {
                        size_t n = strlen(l);

                        if (l[n - 1] != ']' || n < 3)
                                return fail(ret_error, path, line, "malformed section header");
                        l[n - 1] = '\0';
                        free(section);
                        section = strdup(strip(l + 1));
                        if (!section)
                                return -ENOMEM;
                        if (!IN_SET(true, streq(section, "TPM"), streq(section, "DRA"), streq(section, "Recovery"),
                                    streq(section, "Escrow"), streq(section, "ActiveDirectory"),
                                    streq(section, "Paths"), streq(section, "Boot")))
                                return fail(ret_error, path, line, "unknown section [%s]", section);
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq)
                        return fail(ret_error, path, line, "expected Key=Value");
                if (!section)
                        return fail(ret_error, path, line, "assignment outside of a section");
                *eq = '\0';
                key = strip(l);
                value = strip(eq + 1);
                r = assign(c, section, key, value, &reason);
                if (r == -ENOKEY)
                        return fail(ret_error, path, line, "unknown key %s in [%s]", key, section);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return fail(ret_error, path, line, "invalid value for %s: \"%s\"%s%s", key, value,
                                    reason ? ": " : "", strempty(reason));
                if (streq(section, "TPM") && streq(key, "PCRs"))
                        pcrs_line = line;
                else if (streq(section, "TPM") && streq(key, "MinimumPCRs"))
                        min_pcrs_line = line;
        }
        return config_check(c, path, line, pcrs_line, min_pcrs_line, ret_error);
}

int config_load(const char *path, Config *c, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        if (!path)
                path = getenv(CONFIG_PATH_ENV);
        if (isempty(path))
                path = CONFIG_PATH_DEFAULT;

        r = read_file_full(path, CONFIG_FILE_MAX, &text, &size);
        if (r == -ENOENT)
                return 0; /* no file: the defaults */
        if (r == -EFBIG)
                return fail(ret_error, path, 0, "larger than %u bytes", CONFIG_FILE_MAX);
        if (r < 0)
                return r;
        return config_parse(text, size, path, c, ret_error);
}

/* The [ActiveDirectory] section's defaults; here rather than in escrow-ad.c, which only the escrow
 * helper links (lib/escrow/escrow-helper.h). */
void ad_config_init(AdConfig *c) {
        *c = (AdConfig) {
                .sasl_nocanon = true,
                .timeout_sec = AD_TIMEOUT_SEC_DEFAULT,
        };
}

void ad_config_done(AdConfig *c) {
        if (!c)
                return;
        free(c->uri);
        free(c->computer_dn);
        free(c->sam_account_name);
        free(c->keytab);
        free(c->principal);
        free(c->bind_dn);
        free(c->password_file);
        free(c->ca_file);
        ad_config_init(c);
}
