/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-tpm-faults.c: the VMK against a TPM that misbehaves. A fault-injecting TCTI
 * (tests/tcti-fault/, chosen through the TCTI string as any TPM is) sits between lib/tpm/tpm2.c and a
 * swtpm and answers the chosen command with a warning the TPM may give (RETRY, YIELDED, TESTING,
 * PCR_CHANGED), a lockout, a failure, a transport error, a closed connection or no answer at all, or
 * SIGKILLs the swtpm in the middle of a command. Each gives its own error after a bounded wait, and
 * the sealed blob on disk is never touched: a failed unseal leaves it byte-identical, a reseal
 * interrupted at any command leaves the old blob or the new one, and it always unseals.
 */

#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "fileio.h"
#include "log.h"
#include "secmem.h"
#include "swtpm-fixture.h"
#include "test-util.h"
#include "tpm-count.h"
#include "vmk.h"

/* Every fault here ends well within this; a hang would hit the meson timeout instead. */
#define FAULT_WAIT_MAX_MS 5000u
#define HANG_MS 300u
/* ESAPI resubmits a command answered with RETRY, YIELDED or TESTING at most this many times
 * (tpm2-tss _ESYS_MAX_SUBMISSIONS), so the TPM sees it at most once more than that. */
#define ESYS_SUBMISSIONS_MAX 5u

typedef struct Fixture {
        SwtpmFixture *tpm;
        char *module;  /* the fault TCTI's shared object */
        char *log;     /* its per-command log */
        char *path;    /* the sealed VMK */
        uint8_t vmk[VMK_SIZE];
        VmkBlob blob;
        char *sealed;  /* the blob file's bytes after the first seal */
        size_t sealed_size;
} Fixture;

static int setup(void **state) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        Fixture *f = calloc(1, sizeof(*f));

        if (!f || swtpm_fixture_new("test-tpm-faults", &f->tpm) < 0)
                return -1;
        *state = f;
        f->module = strdup(getenv("SEALVOL_FAULT_TCTI"));
        f->log = path_join(f->tpm->dir, "faults.log");
        f->path = path_join(f->tpm->dir, "vmk.sealed");
        if (!f->module || !f->log || !f->path)
                return -1;
        if (tpm2_context_new(f->tpm->tcti, &c) < 0 || vmk_generate(&vmk) < 0)
                return -1;
        memcpy(f->vmk, vmk, VMK_SIZE);
        if (vmk_seal_to_file(c, f->vmk, NULL, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path, &f->blob) < 0)
                return -1;
        return read_file_full(f->path, VMK_BLOB_SIZE_MAX, &f->sealed, &f->sealed_size) < 0 ? -1 : 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        pid_t pid = f->tpm ? f->tpm->pid : 0;

        explicit_bzero(f->vmk, sizeof(f->vmk));
        swtpm_fixture_free(f->tpm);
        free(f->module);
        free(f->log);
        free(f->path);
        free(f->sealed);
        free(f);
        return pid > 0 && kill(pid, 0) == 0 ? -1 : 0;
}

/* "<module>:<options>,log=<log>;<the swtpm's TCTI>", with an empty log. */
static char *fault_tcti(Fixture *f, const char *options) {
        char *s;

        (void) unlink(f->log);
        assert_true(asprintf(&s, "%s:%s%slog=%s;%s", f->module, options, isempty(options) ? "" : ",", f->log,
                             f->tpm->tcti) > 0);
        return s;
}

typedef struct FaultLog {
        unsigned commands, faults;
        unsigned of_code, faults_of_code;
} FaultLog;

static FaultLog read_log(Fixture *f, uint32_t code) {
        _cleanup_fclose_ FILE *in = fopen(f->log, "re");
        FaultLog l = {};
        char line[128], what[16];
        unsigned n, cc;

        if (!in)
                return l;
        while (fgets(line, sizeof(line), in)) {
                assert_int_equal(sscanf(line, "%u %x %15s", &n, &cc, what), 3);
                bool fault = streq(what, "fault");
                l.commands++;
                l.faults += fault;
                if (cc == code) {
                        l.of_code++;
                        l.faults_of_code += fault;
                }
        }
        return l;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void assert_blob_untouched(Fixture *f) {
        _cleanup_free_ char *now = NULL;
        size_t n;

        assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &now, &n), 0);
        assert_int_equal(n, f->sealed_size);
        assert_memory_equal(now, f->sealed, n);
}

/* The blob on disk opens with a TPM that behaves, and holds our VMK. */
static void assert_blob_unseals(Fixture *f) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        VmkBlob b;

        assert_int_equal(tpm2_context_new(f->tpm->tcti, &c), 0);
        assert_int_equal(vmk_unseal_from_file(c, f->path, &vmk, &b, NULL), 0);
        assert_memory_equal(vmk, f->vmk, VMK_SIZE);
        assert_true(guid_equal(&b.vmk_id, &f->blob.vmk_id));
}

static void flush_leftovers(Fixture *f) {
        if (f->tpm->pid > 0)
                (void) swtpm_fixture_flush_transient(f->tpm);
}

/* Unseals through the fault TCTI with options; returns the result, the wait in *ret_ms. */
static int unseal_with(Fixture *f, const char *options, uint64_t *ret_ms) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *tcti = fault_tcti(f, options);
        uint64_t start;
        int r;

        assert_int_equal(tpm2_context_new(tcti, &c), 0);
        start = now_ms();
        r = vmk_unseal_from_file(c, f->path, &vmk, NULL, NULL);
        if (ret_ms)
                *ret_ms = now_ms() - start;
        c = tpm2_context_free(c);
        flush_leftovers(f);
        if (r >= 0)
                assert_memory_equal(vmk, f->vmk, VMK_SIZE);
        else
                assert_null(vmk);
        return r;
}

static int reseal_with(Fixture *f, const char *options) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_free_ char *tcti = fault_tcti(f, options);
        int r;

        r = tpm2_context_new(tcti, &c);
        if (r < 0)
                return r;
        r = vmk_seal_to_file(c, f->vmk, &f->blob.vmk_id, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT, f->path, NULL);
        c = tpm2_context_free(c);
        flush_leftovers(f);
        return r;
}

/* Without a fault option the TCTI only passes commands on (and logs them), whether it is named in
 * the TCTI string or, as an operator would, in SEALVOL_TCTI; a malformed configuration is no TPM. */
static void test_passes_through(void **state) {
        Fixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *tcti = NULL, *bad = NULL;
        FaultLog l;

        assert_int_equal(unseal_with(f, "", NULL), 0);
        l = read_log(f, TPM2_CC_Unseal);
        assert_int_equal(l.of_code, 1);
        assert_int_equal(l.faults, 0);

        tcti = fault_tcti(f, "");
        assert_int_equal(setenv(TPM2_TCTI_ENV, tcti, 1), 0);
        assert_int_equal(tpm2_context_new(NULL, &c), 0);
        assert_int_equal(unsetenv(TPM2_TCTI_ENV), 0);
        assert_int_equal(vmk_unseal_from_file(c, f->path, &vmk, NULL, NULL), 0);
        assert_memory_equal(vmk, f->vmk, VMK_SIZE);
        assert_int_equal(read_log(f, TPM2_CC_Unseal).of_code, 1);
        c = tpm2_context_free(c);

        assert_true(asprintf(&bad, "%s:frobnicate;%s", f->module, f->tpm->tcti) > 0);
        assert_int_equal(tpm2_context_new(bad, &c), -ENODEV);
        assert_null(c);
        assert_blob_untouched(f);
}

/* TPM 2.0 Part 1, 12.3 / Part 2, 6.6.3: RETRY, YIELDED and TESTING are warnings: the command was not
 * run and may be sent again. A few in a row are absorbed; an endless stream ends after a bounded
 * number of resubmissions with -EAGAIN, quickly, and the blob is untouched. */
static void test_warnings_resubmitted_boundedly(void **state) {
        static const uint32_t warnings[] = { TPM2_RC_RETRY, TPM2_RC_YIELDED, TPM2_RC_TESTING };
        Fixture *f = *state;

        for (size_t i = 0; i < ELEMENTSOF(warnings); i++) {
                char options[64];
                uint64_t ms;
                FaultLog l;

                snprintf(options, sizeof(options), "cc=Unseal,rc=%#x,times=2", (unsigned) warnings[i]);
                assert_int_equal(unseal_with(f, options, NULL), 0);
                l = read_log(f, TPM2_CC_Unseal);
                assert_int_equal(l.faults_of_code, 2);
                assert_int_equal(l.of_code, 3);

                snprintf(options, sizeof(options), "cc=Unseal,rc=%#x,times=0", (unsigned) warnings[i]);
                assert_int_equal(unseal_with(f, options, &ms), -EAGAIN);
                assert_true(ms < FAULT_WAIT_MAX_MS);
                l = read_log(f, TPM2_CC_Unseal);
                assert_true(l.of_code >= 2);
                assert_true(l.of_code <= 1 + ESYS_SUBMISSIONS_MAX);
                print_message("TPM warning %#x on every Unseal: -EAGAIN after %u attempts, %" PRIu64 " ms\n",
                              (unsigned) warnings[i], l.of_code, ms);

                /* Anywhere else in the unseal, too. */
                snprintf(options, sizeof(options), "rc=%#x,times=3", (unsigned) warnings[i]);
                assert_int_equal(unseal_with(f, options, NULL), 0);
        }
        assert_blob_untouched(f);
        assert_blob_unseals(f);
}

/* A PCR that changes while the policy session is being satisfied makes the TPM answer PCR_CHANGED
 * (TPM 2.0 Part 3, 23.7) from PolicyPCR or Unseal: lib/tpm/tpm2.c starts a new session, at most
 * TPM2_UNSEAL_RETRY_MAX times, and then gives up with -EAGAIN rather than looping. */
static void test_pcr_changed_during_unseal_retried(void **state) {
        Fixture *f = *state;
        char options[64];
        uint64_t ms;
        FaultLog l;

        snprintf(options, sizeof(options), "cc=Unseal,rc=%#x,times=2", (unsigned) TPM2_RC_PCR_CHANGED);
        assert_int_equal(unseal_with(f, options, NULL), 0);
        l = read_log(f, TPM2_CC_StartAuthSession);
        assert_int_equal(l.of_code, 3); /* a fresh policy session for each attempt */
        assert_int_equal(read_log(f, TPM2_CC_Unseal).of_code, 3);

        snprintf(options, sizeof(options), "cc=PolicyPCR,rc=%#x,times=1", (unsigned) TPM2_RC_PCR_CHANGED);
        assert_int_equal(unseal_with(f, options, NULL), 0);
        assert_int_equal(read_log(f, TPM2_CC_PolicyPCR).of_code, 2);

        snprintf(options, sizeof(options), "cc=Unseal,rc=%#x,times=0", (unsigned) TPM2_RC_PCR_CHANGED);
        assert_int_equal(unseal_with(f, options, &ms), -EAGAIN);
        assert_true(ms < FAULT_WAIT_MAX_MS);
        assert_int_equal(read_log(f, TPM2_CC_Unseal).of_code, TPM2_UNSEAL_RETRY_MAX);
        /* Every session it started was flushed again (the TPM has few slots). */
        l = read_log(f, TPM2_CC_FlushContext);
        assert_true(l.of_code >= TPM2_UNSEAL_RETRY_MAX);

        assert_blob_untouched(f);
        assert_blob_unseals(f);
}

/* The TPM's answers that are not warnings: lockout, failure mode, and an error of the transport
 * (driver error, closed connection, no answer) each give their own error. */
static void test_errors_are_distinct(void **state) {
        Fixture *f = *state;
        char options[64];
        uint64_t ms;

        snprintf(options, sizeof(options), "cc=Unseal,rc=%#x", (unsigned) TPM2_RC_LOCKOUT);
        assert_int_equal(unseal_with(f, options, NULL), -ENOLCK);
        /* Loading the sealed object, too: not mistaken for a damaged object. */
        snprintf(options, sizeof(options), "cc=Load,rc=%#x", (unsigned) TPM2_RC_LOCKOUT);
        assert_int_equal(unseal_with(f, options, NULL), -ENOLCK);

        snprintf(options, sizeof(options), "cc=Unseal,rc=%#x", (unsigned) TPM2_RC_FAILURE);
        assert_int_equal(unseal_with(f, options, NULL), -ENOTRECOVERABLE);
        /* Not mistaken for a damaged blob when it comes from loading the sealed object. */
        snprintf(options, sizeof(options), "cc=Load,rc=%#x", (unsigned) TPM2_RC_FAILURE);
        assert_int_equal(unseal_with(f, options, NULL), -ENOTRECOVERABLE);
        /* A TPM in failure mode answers everything with FAILURE. */
        snprintf(options, sizeof(options), "rc=%#x,times=0", (unsigned) TPM2_RC_FAILURE);
        assert_int_equal(unseal_with(f, options, NULL), -ENOTRECOVERABLE);

        assert_int_equal(unseal_with(f, "cc=Unseal,io", NULL), -ENODEV);
        assert_int_equal(unseal_with(f, "cc=Unseal,io,when=after", NULL), -ENODEV);
        assert_int_equal(unseal_with(f, "cc=Load,close", NULL), -ENODEV);
        assert_int_equal(unseal_with(f, "cc=PolicyPCR,close,when=after", NULL), -ENODEV);

        /* No answer: bounded by the transport, not by us (see docs/testing.md). */
        snprintf(options, sizeof(options), "cc=Unseal,hang=%u", HANG_MS);
        assert_int_equal(unseal_with(f, options, &ms), -ENODEV);
        assert_true(ms >= HANG_MS);
        assert_true(ms < FAULT_WAIT_MAX_MS);

        assert_blob_untouched(f);
        assert_blob_unseals(f);
}

/* A reseal whose k-th TPM command fails, for every k: it reports the error and the blob is the old
 * one, byte for byte; or, when the failed command did not matter (a flush), the new one. Either way
 * it unseals. */
static void test_reseal_fails_at_every_command(void **state) {
        static const char *const faults[] = { "rc=0x101", "io", "close", "rc=0x922,times=0", "io,when=after" };
        Fixture *f = *state;
        unsigned n;

        assert_int_equal(reseal_with(f, ""), 0);
        n = read_log(f, 0).commands;
        assert_true(n > 5);
        assert_blob_unseals(f);
        /* This reseal wrote a new blob: it is the one to keep from now on. */
        free(f->sealed);
        assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &f->sealed, &f->sealed_size), 0);

        for (size_t i = 0; i < ELEMENTSOF(faults); i++) {
                unsigned failed = 0;

                for (unsigned k = 1; k <= n; k++) {
                        char options[64];
                        int r;

                        snprintf(options, sizeof(options), "nth=%u,%s", k, faults[i]);
                        r = reseal_with(f, options);
                        assert_true(r == 0 || IN_SET(r, -ENODEV, -ENOTRECOVERABLE, -EAGAIN));
                        if (r < 0) {
                                failed++;
                                assert_blob_untouched(f);
                        } else {
                                free(f->sealed);
                                assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &f->sealed,
                                                                &f->sealed_size),
                                                 0);
                        }
                        assert_blob_unseals(f);
                }
                assert_true(failed > 0);
                print_message("reseal, %s at each of its %u commands: %u failed, the blob always unsealed\n",
                              faults[i], n, failed);
        }
}

/* The swtpm SIGKILLed while a command is in its hands (a power cut), at every command of a reseal
 * and during the unseal: an error, the blob untouched, and after the restart it unseals. */
static void test_swtpm_killed_mid_command(void **state) {
        static const char *const when[] = { "before", "after" };
        Fixture *f = *state;
        unsigned n;

        assert_int_equal(reseal_with(f, ""), 0);
        n = read_log(f, 0).commands;
        free(f->sealed);
        assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &f->sealed, &f->sealed_size), 0);

        for (size_t w = 0; w < ELEMENTSOF(when); w++)
                for (unsigned k = 1; k <= n; k++) {
                        char options[96];
                        int r;

                        snprintf(options, sizeof(options), "nth=%u,kill=%d,when=%s", k, (int) f->tpm->pid, when[w]);
                        r = reseal_with(f, options);
                        /* Killed at the last flush, the reseal is complete: the new blob is in place. */
                        assert_true(r == 0 || r == -ENODEV);
                        if (r < 0)
                                assert_blob_untouched(f);
                        else {
                                free(f->sealed);
                                assert_int_equal(read_file_full(f->path, VMK_BLOB_SIZE_MAX, &f->sealed,
                                                                &f->sealed_size),
                                                 0);
                        }
                        assert_int_equal(swtpm_fixture_kill(f->tpm), 0);
                        assert_int_equal(swtpm_fixture_start(f->tpm), 0);
                        assert_blob_unseals(f);
                }

        for (size_t w = 0; w < ELEMENTSOF(when); w++) {
                char options[96];
                uint64_t ms;

                int r;

                snprintf(options, sizeof(options), "cc=Unseal,kill=%d,when=%s", (int) f->tpm->pid, when[w]);
                r = unseal_with(f, options, &ms);
                /* Killed with the command sent, the swtpm may have answered first (then the answer,
                 * already in the socket, is the right VMK: unseal_with() checks it); after it answered,
                 * the answer is lost. */
                if (streq(when[w], "after"))
                        assert_int_equal(r, -ENODEV);
                else
                        assert_true(r == 0 || r == -ENODEV);
                assert_true(ms < FAULT_WAIT_MAX_MS);
                assert_blob_untouched(f);
                assert_int_equal(swtpm_fixture_kill(f->tpm), 0);
                assert_int_equal(swtpm_fixture_start(f->tpm), 0);
                assert_blob_unseals(f);
        }
        print_message("swtpm killed at each of the %u commands of a reseal, before and after it answered\n", n);
}

/* A real dictionary-attack lockout (wrong PINs on a DA-protected object): the VMK, sealed noDA,
 * still unseals and can be resealed, so a lockout never blocks the boot or the repair. */
static void test_real_lockout_spares_the_vmk(void **state) {
        Fixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        TPM2B_SENSITIVE_CREATE sensitive = { .sensitive = { .userAuth = { .size = 4, .buffer = "1234" },
                                                            .data = { .size = 5, .buffer = "guess" } } };
        TPM2B_PUBLIC template = {
                .publicArea = {
                        .type = TPM2_ALG_KEYEDHASH,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH,
                        .parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL,
                },
        };
        TPM2B_AUTH wrong = { .size = 4, .buffer = "0000" };
        TPM2B_DATA outside = {};
        TPML_PCR_SELECTION none = {};
        TPM2B_PRIVATE *priv = NULL;
        TPM2B_PUBLIC *pub = NULL;
        TPM2B_CREATION_DATA *cd = NULL;
        TPM2B_DIGEST *ch = NULL;
        TPMT_TK_CREATION *tk = NULL;
        ESYS_TR srk, obj;
        uint32_t max_tries = 0;
        bool in_lockout = false;
        int r = 0;

        assert_int_equal(tpm2_context_new(f->tpm->tcti, &c), 0);
        assert_int_equal(tpm2_srk_get(c, false, &srk), 0);
        assert_int_equal(Esys_Create(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                     &template, &outside, &none, &priv, &pub, &cd, &ch, &tk),
                         TSS2_RC_SUCCESS);
        assert_int_equal(Esys_Load(c->esys, srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &obj),
                         TSS2_RC_SUCCESS);
        Esys_Free(priv);
        Esys_Free(pub);
        Esys_Free(cd);
        Esys_Free(ch);
        Esys_Free(tk);
        assert_int_equal(Esys_TR_SetAuth(c->esys, obj, &wrong), TSS2_RC_SUCCESS);
        assert_int_equal(tpm2_get_lockout_info(c, NULL, &max_tries, NULL), 0);
        for (unsigned i = 0; i <= max_tries && r != -ENOLCK; i++) {
                TPM2B_SENSITIVE_DATA *out = NULL;
                TSS2_RC rc = Esys_Unseal(c->esys, obj, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &out);

                assert_int_not_equal(rc, TSS2_RC_SUCCESS);
                r = tpm2_rc_to_errno(rc, "Unseal with a wrong PIN");
        }
        assert_int_equal(r, -ENOLCK);
        (void) Esys_FlushContext(c->esys, obj);
        (void) Esys_TR_Close(c->esys, &srk);
        assert_int_equal(tpm2_get_lockout_info(c, NULL, NULL, &in_lockout), 0);
        assert_true(in_lockout);
        c = tpm2_context_free(c);

        assert_blob_unseals(f);
        assert_int_equal(reseal_with(f, ""), 0);
        assert_blob_unseals(f);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_passes_through, setup, teardown),
                cmocka_unit_test_setup_teardown(test_warnings_resubmitted_boundedly, setup, teardown),
                cmocka_unit_test_setup_teardown(test_pcr_changed_during_unseal_retried, setup, teardown),
                cmocka_unit_test_setup_teardown(test_errors_are_distinct, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reseal_fails_at_every_command, setup, teardown),
                cmocka_unit_test_setup_teardown(test_swtpm_killed_mid_command, setup, teardown),
                cmocka_unit_test_setup_teardown(test_real_lockout_spares_the_vmk, setup, teardown),
        };

        /* SEALVOL_LOG_LEVEL=debug shows each TPM error as lib/tpm/tpm2.c decodes it. */
        log_parse_environment();
        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(!isempty(getenv("SEALVOL_FAULT_TCTI")), "SEALVOL_FAULT_TCTI (the fault-injecting TCTI)");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
