/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* swtpm-fixture.c: make, start, stop, reboot and measure into a private swtpm (see swtpm-fixture.h). */

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "swtpm-fixture.h"
#include "test-util.h"
#include "tpm2.h"

#define SWTPM_START_TIMEOUT_MS 10000u
#define SWTPM_STOP_TIMEOUT_MS 5000u
/* About 1.3 s on an idle machine; the first run in a CA directory also makes the CA's keys. */
#define SWTPM_SETUP_TIMEOUT_MS 60000u
/* The banks a state swtpm makes by itself has active, so that a manufactured TPM behaves the same. */
#define SWTPM_PCR_BANKS "sha1,sha256,sha384,sha512"

SwtpmFixture *swtpm_fixture_free(SwtpmFixture *f) {
        if (!f)
                return NULL;
        (void) swtpm_fixture_stop(f);
        if (f->dir)
                (void) rm_rf(f->dir);
        free(f->dir);
        free(f->state_dir);
        free(f->socket_path);
        free(f->log_path);
        free(f->tcti);
        free(f);
        return NULL;
}

static int fixture_alloc(const char *name, SwtpmFixture **ret) {
        _cleanup_(swtpm_fixture_freep) SwtpmFixture *f = NULL;
        int r;

        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        r = test_tmpdir_new(name, &f->dir);
        if (r < 0)
                return r;
        f->state_dir = path_join(f->dir, "state");
        f->socket_path = path_join(f->dir, "tpm.sock");
        f->log_path = path_join(f->dir, "swtpm.log");
        if (!f->state_dir || !f->socket_path || !f->log_path)
                return -ENOMEM;
        if (asprintf(&f->tcti, "swtpm:path=%s", f->socket_path) < 0) {
                f->tcti = NULL;
                return -ENOMEM;
        }
        if (strlen(f->socket_path) + strlen(".ctrl") >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return -ENAMETOOLONG;
        if (mkdir(f->state_dir, 0700) < 0)
                return -errno;

        *ret = TAKE_PTR(f);
        return 0;
}

static int write_text_file(const char *dir, const char *name, const char *format, ...) _printf_(3, 4);
static int write_text_file(const char *dir, const char *name, const char *format, ...) {
        _cleanup_free_ char *path = path_join(dir, name);
        _cleanup_fclose_ FILE *file = NULL;
        va_list ap;

        if (!path)
                return -ENOMEM;
        file = fopen(path, "we");
        if (!file)
                return -errno;
        va_start(ap, format);
        (void) vfprintf(file, format, ap);
        va_end(ap);
        if (fflush(file) != 0 || ferror(file))
                return -EIO;
        return 0;
}

/* What a TPM's manufacturer does once: a fresh state (new seeds, so new EK and no SRK) with the RSA
 * 2048 EK persisted at 0x81010001 and its certificate, issued by the CA in ca_dir, in NV 0x01c00002
 * (swtpm_setup with swtpm_localca). The configuration files live in the fixture's directory, the CA
 * in ca_dir, so fixtures that share ca_dir are TPMs of one manufacturer. */
static int fixture_manufacture(SwtpmFixture *f, const char *ca_dir) {
        _cleanup_free_ char *setup_conf = path_join(f->dir, "swtpm-setup.conf");
        int r;

        if (!setup_conf)
                return -ENOMEM;
        if ((r = write_text_file(f->dir, "swtpm-localca.conf",
                                 "statedir = %1$s\n"
                                 "signingkey = %1$s/signkey.pem\n"
                                 "issuercert = %1$s/issuercert.pem\n"
                                 "certserial = %1$s/certserial\n",
                                 ca_dir)) < 0 ||
            /* Only the EK certificate is made; the platform options are never read. */
            (r = write_text_file(f->dir, "swtpm-localca.options", "--platform-manufacturer sealvol-test\n")) < 0 ||
            (r = write_text_file(f->dir, "swtpm-setup.conf",
                                 "create_certs_tool = swtpm_localca\n"
                                 "create_certs_tool_config = %1$s/swtpm-localca.conf\n"
                                 "create_certs_tool_options = %1$s/swtpm-localca.options\n"
                                 "active_pcr_banks = " SWTPM_PCR_BANKS "\n",
                                 f->dir)) < 0)
                return r;

        char *argv[] = {
                (char *) "swtpm_setup", (char *) "--tpm2",
                (char *) "--tpm-state", f->state_dir,
                (char *) "--create-ek-cert",
                (char *) "--config", setup_conf,
                (char *) "--overwrite",
                NULL,
        };
        r = test_run(argv, f->log_path, SWTPM_SETUP_TIMEOUT_MS);
        if (r < 0)
                return r;
        /* What went wrong is in the log. */
        return r == 0 ? 0 : -EIO;
}

int swtpm_fixture_new(const char *name, SwtpmFixture **ret) {
        return swtpm_fixture_new_with_ek(name, /* ca_dir= */ NULL, ret);
}

int swtpm_fixture_new_with_ek(const char *name, const char *ca_dir, SwtpmFixture **ret) {
        _cleanup_(swtpm_fixture_freep) SwtpmFixture *f = NULL;
        int r;

        if (ca_dir && ca_dir[0] != '/')
                return -EINVAL;
        r = fixture_alloc(name, &f);
        if (r < 0)
                return r;
        /* Without a CA, swtpm makes the state itself on its first start. */
        if (ca_dir) {
                r = fixture_manufacture(f, ca_dir);
                if (r < 0)
                        return r;
        }
        r = swtpm_fixture_start(f);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(f);
        return 0;
}

int swtpm_fixture_new_tpm(SwtpmFixture *f, const char *ca_dir) {
        int r;

        if (ca_dir && ca_dir[0] != '/')
                return -EINVAL;
        r = swtpm_fixture_stop(f);
        if (r < 0)
                return r;
        r = rm_rf(f->state_dir);
        if (r < 0)
                return r;
        if (mkdir(f->state_dir, 0700) < 0)
                return -errno;
        if (ca_dir) {
                r = fixture_manufacture(f, ca_dir);
                if (r < 0)
                        return r;
        }
        return swtpm_fixture_start(f);
}

int swtpm_fixture_ca_anchor_file(const char *ca_dir, char **ret_path) {
        static const char *const certs[] = { "swtpm-localca-rootca-cert.pem", "issuercert.pem" };
        _cleanup_free_ char *path = path_join(ca_dir, "anchors.pem");
        _cleanup_fclose_ FILE *out = NULL;

        if (!path)
                return -ENOMEM;
        out = fopen(path, "we");
        if (!out)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(certs); i++) {
                _cleanup_free_ char *p = path_join(ca_dir, certs[i]), *text = NULL;

                if (!p)
                        return -ENOMEM;
                text = test_read_file(p);
                if (!text || isempty(text))
                        return -ENOENT;
                if (fputs(text, out) < 0)
                        return -EIO;
        }
        if (fflush(out) != 0 || ferror(out))
                return -EIO;

        *ret_path = TAKE_PTR(path);
        return 0;
}

static int socket_accepts(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        return 0;
}

int swtpm_fixture_start(SwtpmFixture *f) {
        _cleanup_free_ char *state = NULL, *server = NULL, *ctrl = NULL;
        int r;

        if (f->pid > 0)
                return -EBUSY;

        if (asprintf(&state, "dir=%s", f->state_dir) < 0 ||
            asprintf(&server, "type=unixio,path=%s", f->socket_path) < 0 ||
            asprintf(&ctrl, "type=unixio,path=%s.ctrl", f->socket_path) < 0)
                return -ENOMEM;

        /* startup-clear: the TPM comes up as after a platform reset, with TPM2_Startup already done,
         * as firmware leaves a real one. */
        char *argv[] = {
                (char *) "swtpm", (char *) "socket", (char *) "--tpm2",
                (char *) "--tpmstate", state,
                (char *) "--server", server,
                (char *) "--ctrl", ctrl,
                (char *) "--flags", (char *) "not-need-init,startup-clear",
                NULL,
        };
        r = test_spawn(argv, f->log_path, /* pass_fd= */ -1, &f->pid);
        if (r < 0)
                return r;

        for (unsigned waited = 0; waited < SWTPM_START_TIMEOUT_MS; waited += 10) {
                if (socket_accepts(f->socket_path) == 0) {
                        _cleanup_free_ char *ctrl_path = NULL;
                        if (asprintf(&ctrl_path, "%s.ctrl", f->socket_path) < 0)
                                return -ENOMEM;
                        if (socket_accepts(ctrl_path) == 0)
                                return 0;
                }
                if (!test_process_running(f->pid)) {
                        f->pid = 0;
                        return -ECHILD;
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        (void) swtpm_fixture_kill(f);
        return -ETIMEDOUT;
}

int swtpm_fixture_kill(SwtpmFixture *f) {
        int r;

        if (f->pid <= 0)
                return 0;
        (void) kill(f->pid, SIGKILL);
        r = test_process_stop(f->pid, SWTPM_STOP_TIMEOUT_MS);
        f->pid = 0;
        return r < 0 ? r : 0;
}

int swtpm_fixture_stop(SwtpmFixture *f) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        int r;

        if (f->pid <= 0)
                return 0;

        /* An orderly shutdown keeps the TPM from counting this as an unclean power loss (which a
         * real TPM may treat as a dictionary-attack event). Best effort: the test may have broken
         * the TPM on purpose. */
        if (tpm2_context_new(f->tcti, &c) >= 0)
                (void) Esys_Shutdown(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_SU_CLEAR);
        c = tpm2_context_free(c);

        r = test_process_stop(f->pid, SWTPM_STOP_TIMEOUT_MS);
        f->pid = 0;
        return r < 0 ? r : 0;
}

int swtpm_fixture_reboot(SwtpmFixture *f) {
        int r;

        r = swtpm_fixture_stop(f);
        if (r < 0)
                return r;
        return swtpm_fixture_start(f);
}

int swtpm_fixture_extend_pcr(SwtpmFixture *f, unsigned pcr, const void *data, size_t size) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        TPML_DIGEST_VALUES *digests = NULL;
        TPM2B_EVENT event = {};
        TSS2_RC rc;
        int r;

        if (pcr > TPM2_PCR_INDEX_MAX || size > sizeof(event.buffer))
                return -EINVAL;
        event.size = (UINT16) size;
        memcpy(event.buffer, data, size);

        r = tpm2_context_new(f->tcti, &c);
        if (r < 0)
                return r;
        rc = Esys_PCR_Event(c->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &event,
                            &digests);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_PCR_Event");
        Esys_Free(digests);
        return 0;
}

/* What the kernel's resource manager (/dev/tpmrm0, sealvol's default) does when a connection closes:
 * flush every transient object and session it left. swtpm has no resource manager, and after a
 * response is lost ESAPI refuses to send anything more on that connection, flushes included, so
 * without this a faulted run (or a client killed mid-command) would leave them to fill the TPM's few
 * slots for the next one. */
int swtpm_fixture_flush_transient(SwtpmFixture *f) {
        /* Loaded sessions are HMAC (0x02) and policy (0x03) sessions both (TPM 2.0 Part 3, 30.2). */
        static const TPM2_HANDLE ranges[] = { TPM2_TRANSIENT_FIRST, TPM2_LOADED_SESSION_FIRST };
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        int r;

        r = tpm2_context_new(f->tcti, &c);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(ranges); i++) {
                TPMS_CAPABILITY_DATA *cap = NULL;
                TPMI_YES_NO more;

                if (Esys_GetCapability(c->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, ranges[i],
                                       TPM2_MAX_CAP_HANDLES, &more, &cap) != TSS2_RC_SUCCESS)
                        continue;
                for (UINT32 k = 0; k < cap->data.handles.count; k++) {
                        TPM2_HANDLE h = cap->data.handles.handle[k];
                        ESYS_TR tr = ESYS_TR_NONE;

                        if (Esys_TR_FromTPMPublic(c->esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr) ==
                            TSS2_RC_SUCCESS)
                                (void) Esys_FlushContext(c->esys, tr);
                }
                Esys_Free(cap);
        }
        return 0;
}

/* Another storage key at the SRK's handle: what an interposer shows, or what a cleared storage hierarchy
 * gets when somebody creates an SRK again. A primary key differs from the TCG template's only by its
 * unique field, so its name differs too. */
int swtpm_fixture_replace_srk(SwtpmFixture *f) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        TPM2B_PUBLIC template = {
                .publicArea = {
                        .type = TPM2_ALG_ECC,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                            TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
                        .parameters.eccDetail = {
                                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                                .scheme.scheme = TPM2_ALG_NULL,
                                .curveID = TPM2_ECC_NIST_P256,
                                .kdf.scheme = TPM2_ALG_NULL,
                        },
                        .unique.ecc.x = { .size = 9, .buffer = "planted!" },
                },
        };
        TPM2B_SENSITIVE_CREATE sensitive = {};
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION creation_pcrs = {};
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_CREATION_DATA *creation_data = NULL;
        TPM2B_DIGEST *creation_hash = NULL;
        TPMT_TK_CREATION *ticket = NULL;
        ESYS_TR old = ESYS_TR_NONE, transient = ESYS_TR_NONE, persistent = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        r = tpm2_context_new(f->tcti, &c);
        if (r < 0)
                return r;
        if (Esys_TR_FromTPMPublic(c->esys, TPM2_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &old) ==
            TSS2_RC_SUCCESS) {
                rc = Esys_EvictControl(c->esys, ESYS_TR_RH_OWNER, old, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                       TPM2_SRK_HANDLE, &persistent);
                if (rc != TSS2_RC_SUCCESS)
                        return tpm2_rc_to_errno(rc, "Esys_EvictControl (remove SRK)");
        }
        rc = Esys_CreatePrimary(c->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                &template, &outside, &creation_pcrs, &transient, &pub, &creation_data, &creation_hash,
                                &ticket);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_CreatePrimary");
        Esys_Free(pub);
        Esys_Free(creation_data);
        Esys_Free(creation_hash);
        Esys_Free(ticket);
        rc = Esys_EvictControl(c->esys, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               TPM2_SRK_HANDLE, &persistent);
        (void) Esys_FlushContext(c->esys, transient);
        if (rc != TSS2_RC_SUCCESS)
                return tpm2_rc_to_errno(rc, "Esys_EvictControl (persist)");
        return 0;
}
