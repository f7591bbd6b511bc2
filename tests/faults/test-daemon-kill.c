/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-kill.c: sealvold SIGKILLed at every step of every multi-step change it makes.
 *
 * For each operation (provisioning the first volume, and one more with a DRA; rotating a recovery
 * password; resealing to other PCRs, and after a recovery with PCR 7 changed, which also replaces
 * the used password; setting the first DRA certificate and replacing it, with two volumes to
 * re-wrap; exporting the VMK; the rotation after a recovery unlock; the TPM replacement proven with the
 * server recovery password, on a new TPM whose state is part of the pristine copy; escrowing
 * everything again) and
 * for k = 1, 2, ... until it completes: the state directory and the images are restored to a
 * pristine copy, sealvold is started traced (kill-points.h) and ready, the operation is called
 * through sealvolctl, and the daemon is killed right before its k-th change under the state
 * directory or the images (the registry, the sealed VMK, dra.pem, vmk-export.json, vmk-escrow.json,
 * the escrow spool, used-password notes, the LUKS2 headers), a change being a run of writes to one
 * file, a rename or an unlink (KILL_POINT_GRAIN_WRITE_RUNS). Then sealvold is started normally and
 * must: come up and unlock every volume from the TPM (after a changed boot, with the old blob, report
 * them recovery-required); the sealed VMK unseals to the same VMK (old or new blob, never a broken
 * one); every volume loads with no change left half done and opens with its VMK, with a recovery
 * password the operator was shown or that went to escrow, with the password the daemon reads back,
 * and with the old or new DRA key; the DRA certificate in force is every volume's and the VMK
 * export's, and no recovery password is left in the spool in plaintext with it; and the operation,
 * done again, succeeds. The escrow hook keeps every record outside the watched directories, as an
 * escrow server would. Last, the daemon is killed with the reseal's TPM2_Create held by the fault
 * TCTI (tests/tcti-fault), a TPM command in flight (the bus answering meanwhile).
 */

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus-errors.h"
#include "daemon-fixture.h"
#include "dra-fixture.h"
#include "dra.h"
#include "encoding.h"
#include "escrow.h"
#include "fileio.h"
#include "json-util.h"
#include "kill-points.h"
#include "luks-fixture.h"
#include "recovery.h"
#include "secmem.h"
#include "server-recovery.h"
#include "test-util.h"
#include "v1-format.h"
#include "vmk.h"
#include "volume.h"

#define N_VOLUMES_MAX 3
#define KNOWN_PASSWORDS_MAX 64
#define OPERATION_TIMEOUT_MS 120000u
#define STEPS_MAX 1000u

typedef enum Op {
        OP_PROVISION_FIRST,
        OP_PROVISION_DRA,
        OP_ROTATE,
        OP_RESEAL,
        OP_RECOVER_SERVER,
        OP_ROTATE_VMK,
        OP_UPGRADE_V1,
        OP_REPLACE_TPM,
        OP_DRA_FIRST,
        OP_DRA_REPLACE,
        OP_EXPORT,
        OP_RECOVER,
        OP_ESCROW_ALL,
        _OP_MAX,
} Op;

static const char *const op_names[_OP_MAX] = {
        [OP_PROVISION_FIRST] = "ProvisionVolume (the first: VMK created)",
        [OP_PROVISION_DRA] = "ProvisionVolume (a third, with a DRA)",
        [OP_ROTATE] = "RotateRecoveryPassword",
        [OP_RESEAL] = "ResealVMK (to PCRs 0,7)",
        [OP_RECOVER_SERVER] = "UnlockWithServerRecoveryPassword with PCR 7 changed (the VMK rotation it brings, the "
                              "used disk password's replacement)",
        [OP_ROTATE_VMK] = "RotateVMK (2 volumes)",
        [OP_REPLACE_TPM] = "ReplaceTPMWithServerRecoveryPassword (a new main board; the VMK rotation it brings)",
        [OP_UPGRADE_V1] = "UnlockAll of a server of version 1 (its sealed state and tokens upgraded)",
        [OP_DRA_FIRST] = "SetDRACertificate (the first, 2 volumes)",
        [OP_DRA_REPLACE] = "SetDRACertificate (replacing one, 2 volumes)",
        [OP_EXPORT] = "ExportVMK",
        [OP_RECOVER] = "UnlockWithRecoveryPassword (and its rotation)",
        [OP_ESCROW_ALL] = "EscrowAll",
};

typedef struct Fixture {
        DaemonFixture *d;
        sd_bus *bus;
        char *work;     /* the hook, what it escrowed, the pristine copy, sealvolctl's output */
        char *disks;    /* the images (watched) */
        char *pristine; /* work/pristine: copies of state/ and disks/ */
        char *escrowed; /* every record the hook got */
        char *ctl;
        size_t n_volumes; /* provisioned in the pristine state */
        char *images[N_VOLUMES_MAX];
        char uuids[N_VOLUMES_MAX][VOLUME_UUID_STRING_MAX];
        char *passwords[N_VOLUMES_MAX]; /* read back in the pristine state */
        char *server_password;          /* likewise */
        uint8_t vmk[VMK_SIZE];
        Guid vmk_id;
        bool have_vmk;
        char *sealed; /* the pristine vmk.sealed */
        size_t sealed_size;
        EVP_PKEY *rsa_key, *ec_key;
        char *rsa_cert, *ec_cert;
        pid_t ctl_pid;
        int ctl_status;
        unsigned k; /* the step the daemon was killed at, for messages */
        bool restore_tpm; /* the TPM's state is part of the pristine copy (a new TPM's, with no SRK yet) */
} Fixture;

static int setup(void **state) {
        _cleanup_free_ char *hook = NULL, *script = NULL, *config = NULL, *data = NULL, *rsa_fp = NULL, *ec_fp = NULL;
        Fixture *f = calloc(1, sizeof(*f));
        size_t n;

        if (!f)
                return -1;
        *state = f;
        f->ctl_pid = -1;
        if (test_tmpdir_new("test-daemon-kill-work", &f->work) < 0)
                return -1;
        hook = path_join(f->work, "hook");
        f->escrowed = path_join(f->work, "escrowed");
        f->pristine = path_join(f->work, "pristine");
        if (!hook || !f->escrowed || !f->pristine)
                return -1;
        /* An escrow server: keeps what it gets. "verify" is refused (the record counts as unverified),
         * which spares a second run of the hook per record. */
        if (asprintf(&script,
                     "#!/bin/sh\n[ \"$1\" = store ] || exit 1\ncat >> '%s' && echo >> '%s' && echo test-hook\n",
                     f->escrowed, f->escrowed) < 0 ||
            write_file_atomic(hook, script, strlen(script), 0755) < 0)
                return -1;
        /* The two DRA certificates the operations set over the bus are pinned, as an operator would. */
        rsa_fp = dra_fixture_fingerprint("rsa2048");
        ec_fp = dra_fixture_fingerprint("ec256");
        if (!rsa_fp || !ec_fp ||
            asprintf(&config, "[DRA]\nPinnedFingerprint=%s %s\n[Escrow]\nTargets=spool hook\nHook=%s\n", rsa_fp,
                     ec_fp, hook) < 0)
                return -1;
        if (daemon_fixture_new("test-daemon-kill", config, &f->d) < 0 || sd_bus_open_system(&f->bus) < 0) {
                fprintf(stderr, "Failed to start sealvold and its bus.\n");
                return -1;
        }
        f->disks = path_join(f->d->dir, "disks");
        f->ctl = path_join(f->d->dir, "sealvolctl");
        if (!f->disks || !f->ctl || mkdir(f->disks, 0700) < 0)
                return -1;
        /* A copy of sealvolctl next to the fixture, as test-daemon does. */
        if (read_file_full(getenv("SEALVOLCTL"), 64 * 1024 * 1024, &data, &n) < 0 ||
            write_file_atomic(f->ctl, data, n, 0755) < 0)
                return -1;
        f->rsa_key = dra_fixture_key("rsa2048");
        f->ec_key = dra_fixture_key("ec256");
        f->rsa_cert = dra_fixture_path("rsa2048", ".crt");
        f->ec_cert = dra_fixture_path("ec256", ".crt");
        if (!f->rsa_key || !f->ec_key || !f->rsa_cert || !f->ec_cert)
                return -1;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        int r = 0;

        test_watchdog_clear();
        if (f->ctl_pid > 0) {
                (void) kill(f->ctl_pid, SIGKILL);
                (void) waitpid(f->ctl_pid, NULL, 0);
        }
        sd_bus_flush_close_unref(f->bus);
        if (f->d) {
                r = daemon_fixture_stop(f->d);
                if (r < 0) {
                        _cleanup_free_ char *log = test_read_file(f->d->log_path);
                        fprintf(stderr, "sealvold did not stop cleanly (%s); its log:\n%s\n", strerror(-r),
                                strempty(log));
                }
        }
        daemon_fixture_free(f->d);
        for (size_t i = 0; i < N_VOLUMES_MAX; i++) {
                free(f->images[i]);
                free(f->passwords[i]);
        }
        free(f->server_password);
        if (f->work)
                (void) rm_rf(f->work);
        free(f->work);
        free(f->disks);
        free(f->pristine);
        free(f->escrowed);
        free(f->ctl);
        free(f->rsa_cert);
        free(f->ec_cert);
        free(f->sealed);
        EVP_PKEY_free(f->rsa_key);
        EVP_PKEY_free(f->ec_key);
        explicit_bzero(f->vmk, sizeof(f->vmk));
        free(f);
        return r < 0 ? -1 : 0;
}

static void reconnect(Fixture *f) {
        f->bus = sd_bus_flush_close_unref(f->bus);
        assert_int_equal(sd_bus_open_system(&f->bus), 0);
}

/* ---- copies ------------------------------------------------------------------------------------- */

/* A copy of a file that keeps its holes (images are sparse) and its mode. */
static void copy_file(const char *from, const char *to) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC), out = -EBADF;
        struct stat st;
        off_t data = 0;

        assert_true(in >= 0);
        assert_int_equal(fstat(in, &st), 0);
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
        assert_true(out >= 0);
        assert_int_equal(ftruncate(out, st.st_size), 0);
        while ((data = lseek(in, data, SEEK_DATA)) >= 0) {
                off_t hole = lseek(in, data, SEEK_HOLE), off = data;

                assert_true(hole > data);
                while (off < hole) {
                        loff_t src = off, dst = off;
                        ssize_t n = copy_file_range(in, &src, out, &dst, (size_t) (hole - off), 0);

                        assert_true(n > 0);
                        off += n;
                }
                data = hole;
        }
}

static void copy_tree(const char *from, const char *to) {
        _cleanup_(closedirp) DIR *d = opendir(from);
        struct dirent *de;
        struct stat st;

        assert_non_null(d);
        assert_int_equal(stat(from, &st), 0);
        assert_true(mkdir(to, st.st_mode & 07777) == 0 || errno == EEXIST);
        while ((de = readdir(d))) {
                _cleanup_free_ char *a = NULL, *b = NULL;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                a = path_join(from, de->d_name);
                b = path_join(to, de->d_name);
                assert_non_null(a);
                assert_non_null(b);
                assert_int_equal(lstat(a, &st), 0);
                if (S_ISDIR(st.st_mode))
                        copy_tree(a, b);
                else
                        copy_file(a, b);
        }
}

static int read_blob(Fixture *f, char **ret, size_t *ret_size) {
        _cleanup_free_ char *path = path_join(f->d->state_dir, "vmk.sealed");

        assert_non_null(path);
        return read_file_full(path, VMK_BLOB_SIZE_MAX, ret, ret_size);
}

static char *pristine_path(Fixture *f, const char *what) {
        char *p = path_join(f->pristine, what);

        assert_non_null(p);
        return p;
}

static void snapshot(Fixture *f) {
        _cleanup_free_ char *state = pristine_path(f, "state"), *disks = pristine_path(f, "disks");

        (void) rm_rf(f->pristine);
        assert_int_equal(mkdir(f->pristine, 0700), 0);
        copy_tree(f->d->state_dir, state);
        copy_tree(f->disks, disks);
        f->sealed = mfree(f->sealed);
        (void) read_blob(f, &f->sealed, &f->sealed_size);
}

/* The TPM's state joins the pristine copy: what an operation persists in the TPM (a storage key) is
 * undone with the rest. */
static void snapshot_tpm(Fixture *f) {
        _cleanup_free_ char *tpm = pristine_path(f, "tpm");

        assert_int_equal(swtpm_fixture_stop(f->d->tpm), 0);
        copy_tree(f->d->tpm->state_dir, tpm);
        assert_int_equal(swtpm_fixture_start(f->d->tpm), 0);
        f->restore_tpm = true;
}

/* The daemon is stopped. The escrow server forgets too: what it keeps is what this run sent. */
static void restore(Fixture *f) {
        _cleanup_free_ char *state = pristine_path(f, "state"), *disks = pristine_path(f, "disks"),
                            *tpm = pristine_path(f, "tpm");

        assert_int_equal(rm_rf(f->d->state_dir), 0);
        assert_int_equal(rm_rf(f->disks), 0);
        copy_tree(state, f->d->state_dir);
        copy_tree(disks, f->disks);
        (void) unlink(f->escrowed);
        if (f->restore_tpm) {
                assert_int_equal(swtpm_fixture_stop(f->d->tpm), 0);
                assert_int_equal(rm_rf(f->d->tpm->state_dir), 0);
                copy_tree(tpm, f->d->tpm->state_dir);
                assert_int_equal(swtpm_fixture_start(f->d->tpm), 0);
        }
}

/* ---- sealvolctl ---------------------------------------------------------------------------------- */

static char *ctl_output_path(Fixture *f) {
        char *p = path_join(f->work, "ctl.out");

        assert_non_null(p);
        return p;
}

/* Starts sealvolctl as root with args and input on its stdin; it runs while the test traces the
 * daemon. */
static void ctl_spawn(Fixture *f, const char *input, const char *const *args) {
        _cleanup_free_ char *out = ctl_output_path(f);
        char *argv[16] = { f->ctl };
        size_t n = 1;
        int fds[2];

        for (; args[n - 1] && n < ELEMENTSOF(argv) - 1; n++)
                argv[n] = (char *) args[n - 1];
        argv[n] = NULL;
        assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
        f->ctl_pid = fork();
        assert_true(f->ctl_pid >= 0);
        if (f->ctl_pid == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                if (o < 0 || dup2(fds[0], STDIN_FILENO) < 0 || dup2(o, STDOUT_FILENO) < 0 || dup2(o, STDERR_FILENO) < 0)
                        _exit(120);
                execv(argv[0], argv);
                _exit(122);
        }
        close(fds[0]);
        if (input)
                assert_int_equal(write(fds[1], input, strlen(input)), (ssize_t) strlen(input));
        close(fds[1]);
}

static int ctl_exited(void *userdata) {
        Fixture *f = userdata;
        int status;
        pid_t p = waitpid(f->ctl_pid, &status, WNOHANG);

        if (p == 0)
                return 0;
        if (p < 0)
                return -errno;
        f->ctl_pid = -1;
        f->ctl_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        return 1;
}

static int ctl_wait(Fixture *f) {
        int status;
        pid_t r;

        /* Bounded: a daemon that never answers fails the test with its log, rather than hang it. */
        for (unsigned waited = 0; (r = waitpid(f->ctl_pid, &status, WNOHANG)) == 0; waited += 20) {
                if (waited >= OPERATION_TIMEOUT_MS) {
                        _cleanup_free_ char *log = test_read_file(f->d->log_path);

                        (void) kill(f->ctl_pid, SIGKILL);
                        (void) waitpid(f->ctl_pid, NULL, 0);
                        fail_msg("sealvolctl got no answer within %u s (step %u); sealvold's log:\n%s",
                                 OPERATION_TIMEOUT_MS / 1000, f->k, strempty(log));
                }
                (void) usleep(20 * 1000);
        }
        assert_int_equal(r, f->ctl_pid);
        f->ctl_pid = -1;
        f->ctl_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        return f->ctl_status;
}

/* Runs sealvolctl to its end against the untraced daemon; its output in *ret_output. */
static int ctl_run(Fixture *f, const char *input, char **ret_output, const char *const *args) {
        _cleanup_free_ char *out = ctl_output_path(f);
        int r;

        ctl_spawn(f, input, args);
        r = ctl_wait(f);
        *ret_output = test_read_file(out);
        assert_non_null(*ret_output);
        return r;
}

#define CTL(f, input, out, ...) ctl_run(f, input, out, (const char *const[]) { __VA_ARGS__, NULL })

/* ---- what the daemon says ------------------------------------------------------------------------ */

static char *volume_path(const char *uuid) {
        char *p = NULL;

        assert_true(sd_bus_path_encode("/org/sealvol1/volume", uuid, &p) >= 0);
        return p;
}

static char *volume_property(Fixture *f, const char *uuid, const char *property) {
        _cleanup_free_ char *path = volume_path(uuid);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        if (sd_bus_get_property_string(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", property, &error, &s) < 0)
                fail_msg("%s of %s: %s", property, uuid, error.message);
        return s;
}

static char *manager_property(Fixture *f, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *s = NULL;

        int r = sd_bus_get_property_string(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", property,
                                           &error, &s);

        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);

                fail_msg("the Manager's %s (killed at step %u): %s; the daemon's log:\n%s", property, f->k,
                         error.message ?: strerror(-r), strempty(log));
        }
        return s;
}

/* The recovery password the daemon reads back (its wrapped copy), or NULL if it has none. */
static char *daemon_password(Fixture *f, const char *uuid) {
        _cleanup_free_ char *path = volume_path(uuid);
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *pw, *key_id;
        char *copy;

        if (sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", "GetRecoveryPassword", &error,
                               &reply, "") < 0) {
                assert_true(sd_bus_error_has_name(&error, BUS_ERROR_NO_COPY));
                sd_bus_error_free(&error);
                return NULL;
        }
        assert_true(sd_bus_message_read(reply, "ss", &pw, &key_id) >= 0);
        copy = strdup(pw);
        assert_non_null(copy);
        sd_bus_message_unref(reply);
        return copy;
}

static char *daemon_server_password(Fixture *f) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *pw, *key_id;
        char *copy;

        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "GetServerRecoveryPassword", &error, &reply, "") >= 0);
        assert_true(sd_bus_message_read(reply, "ss", &pw, &key_id) >= 0);
        copy = strdup(pw);
        assert_non_null(copy);
        sd_bus_message_unref(reply);
        return copy;
}

static bool registered(Fixture *f, const char *uuid) {
        _cleanup_free_ char *path = NULL;

        assert_true(asprintf(&path, "%s/volumes/%s", f->d->state_dir, uuid) > 0);
        return access(path, F_OK) == 0;
}

static void fingerprint_hex(const uint8_t fp[static DRA_FINGERPRINT_SIZE],
                            char hex[static 2 * DRA_FINGERPRINT_SIZE + 1]) {
        for (size_t i = 0; i < DRA_FINGERPRINT_SIZE; i++)
                sprintf(hex + 2 * i, "%02x", fp[i]);
}

/* ---- the pristine states ------------------------------------------------------------------------- */

static char *new_image(Fixture *f, size_t i) {
        char name[32], *path = NULL;

        snprintf(name, sizeof(name), "disk%zu.img", i);
        assert_int_equal(sparse_image_new(f->disks, name, LUKS_IMAGE_SIZE_DEFAULT, &path), 0);
        return path;
}

static void unseal(Fixture *f, uint8_t **ret_vmk, VmkBlob *ret_blob) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_free_ char *path = path_join(f->d->state_dir, "vmk.sealed");
        int r;

        assert_int_equal(tpm2_context_new(f->d->tpm->tcti, &c), 0);
        r = vmk_unseal_from_file(c, path, ret_vmk, ret_blob, NULL);
        if (r < 0)
                fail_msg("The sealed VMK does not unseal: %s", strerror(-r));
}

/* n volumes provisioned by the daemon (with the DRA certificate cert, if any), then the image of one
 * more, empty; the daemon is stopped and everything copied aside. */
static void prepare(Fixture *f, size_t n, const char *cert) {
        _cleanup_free_ char *out = NULL;

        for (size_t i = 0; i < n; i++) {
                _cleanup_(volume_freep) Volume *v = NULL;

                f->images[i] = new_image(f, i);
                assert_int_equal(CTL(f, NULL, &out, "-q", "provision", f->images[i]), 0);
                out = mfree(out);
                assert_int_equal(volume_load(f->images[i], &v), 0);
                snprintf(f->uuids[i], sizeof(f->uuids[i]), "%s", v->token.volume_uuid);
                f->passwords[i] = daemon_password(f, f->uuids[i]);
                assert_non_null(f->passwords[i]);
        }
        if (cert) {
                assert_int_equal(CTL(f, NULL, &out, "dra", "set", cert), 0);
                out = mfree(out);
        }
        if (n > 0) {
                free(f->server_password);
                f->server_password = daemon_server_password(f);
        }
        f->n_volumes = n;
        f->images[n] = new_image(f, n);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        if (n > 0) {
                _cleanup_secure_ uint8_t *vmk = NULL;
                VmkBlob blob;

                unseal(f, &vmk, &blob);
                memcpy(f->vmk, vmk, VMK_SIZE);
                f->vmk_id = blob.vmk_id;
                f->have_vmk = true;
        }
        snapshot(f);
}

/* ---- the operations ------------------------------------------------------------------------------ */

static void op_spawn(Fixture *f, Op op) {
        switch (op) {
        case OP_PROVISION_FIRST:
                ctl_spawn(f, NULL, (const char *const[]) { "provision", f->images[0], NULL });
                break;
        case OP_PROVISION_DRA:
                ctl_spawn(f, NULL, (const char *const[]) { "provision", f->images[2], NULL });
                break;
        case OP_ROTATE:
                ctl_spawn(f, NULL, (const char *const[]) { "recovery", "rotate", f->uuids[0], NULL });
                break;
        case OP_RESEAL:
                ctl_spawn(f, NULL, (const char *const[]) { "--pcrs", "0,7", "tpm", "reseal", NULL });
                break;
        case OP_RECOVER_SERVER:
                ctl_spawn(f, f->server_password, (const char *const[]) { "recover", NULL });
                break;
        case OP_ROTATE_VMK:
                ctl_spawn(f, NULL, (const char *const[]) { "tpm", "rotate-vmk", NULL });
                break;
        case OP_REPLACE_TPM:
                ctl_spawn(f, f->server_password, (const char *const[]) { "tpm", "replace", NULL });
                break;
        case OP_UPGRADE_V1:
                ctl_spawn(f, NULL, (const char *const[]) { "unlock", "--all", NULL });
                break;
        case OP_DRA_FIRST:
                ctl_spawn(f, NULL, (const char *const[]) { "dra", "set", f->rsa_cert, NULL });
                break;
        case OP_DRA_REPLACE:
                ctl_spawn(f, NULL, (const char *const[]) { "dra", "set", f->ec_cert, NULL });
                break;
        case OP_EXPORT:
                ctl_spawn(f, NULL, (const char *const[]) { "vmk", "export", NULL });
                break;
        case OP_RECOVER:
                ctl_spawn(f, f->passwords[0], (const char *const[]) { "recover", f->uuids[0], NULL });
                break;
        case OP_ESCROW_ALL:
                ctl_spawn(f, NULL, (const char *const[]) { "recovery", "escrow", "--all", NULL });
                break;
        default:
                fail();
        }
}

/* The image a provisioning writes, or NULL. */
static const char *op_new_image(Fixture *f, Op op) {
        return op == OP_PROVISION_FIRST ? f->images[0] : op == OP_PROVISION_DRA ? f->images[2] : NULL;
}

/* ---- the checks ---------------------------------------------------------------------------------- */

typedef struct Known {
        char *passwords[KNOWN_PASSWORDS_MAX];
        size_t n;
} Known;

static void known_add(Known *k, const char *password) {
        if (k->n < KNOWN_PASSWORDS_MAX) {
                k->passwords[k->n] = strdup(password);
                assert_non_null(k->passwords[k->n]);
                k->n++;
        }
}

static void known_done(Known *k) {
        for (size_t i = 0; i < k->n; i++)
                free(k->passwords[i]);
        k->n = 0;
}

/* The passwords someone was given: read before the change, shown by sealvolctl (provisioning), and
 * every one the escrow hook got. */
static void known_collect(Fixture *f, const char *ctl_output, Known *k) {
        static const char field[] = "\"recovery_password\":\"";
        _cleanup_free_ char *records = test_read_file(f->escrowed);
        const char *p;

        for (size_t i = 0; i < f->n_volumes; i++)
                known_add(k, f->passwords[i]);
        if (ctl_output && (p = strstr(ctl_output, "Recovery password: "))) {
                char pw[RECOVERY_PASSWORD_LEN + 1];

                snprintf(pw, sizeof(pw), "%s", p + strlen("Recovery password: "));
                known_add(k, pw);
        }
        for (p = records; p && (p = strstr(p, field)); p += strlen(field)) {
                char pw[RECOVERY_PASSWORD_LEN + 1];

                snprintf(pw, sizeof(pw), "%s", p + strlen(field));
                known_add(k, pw);
        }
        /* With a DRA the hook got the passwords inside CMS to it: the DRA holder opens them. */
        for (p = records; p && (p = strstr(p, "\"record_cms\"")); p += strlen("\"record_cms\"")) {
                const char *start = strchr(p + strlen("\"record_cms\""), '"');
                const char *end = start ? strchr(start + 1, '"') : NULL;
                _cleanup_free_ char *b64 = NULL;
                _cleanup_free_ void *der = NULL;
                _cleanup_secure_ char *plain = NULL;
                size_t der_size, plain_size;
                const char *pw;

                assert_non_null(end);
                b64 = strndup(start + 1, (size_t) (end - start - 1));
                assert_non_null(b64);
                assert_int_equal(base64_decode(b64, &der, &der_size), 0);
                if (dra_unwrap(f->rsa_key, der, der_size, (void **) &plain, &plain_size) < 0)
                        assert_int_equal(dra_unwrap(f->ec_key, der, der_size, (void **) &plain, &plain_size), 0);
                pw = memmem(plain, plain_size, field, strlen(field));
                assert_non_null(pw);
                {
                        char one[RECOVERY_PASSWORD_LEN + 1];

                        snprintf(one, sizeof(one), "%s", pw + strlen(field));
                        known_add(k, one);
                }
        }
}

/* With a DRA certificate in force, no recovery password is left in the spool in plaintext: whatever
 * was written before it is encrypted to it, at the latest by the start after a kill. */
static void check_spool_encrypted(Fixture *f) {
        _cleanup_free_ char *spool = path_join(f->d->state_dir, "escrow");
        _cleanup_(closedirp) DIR *d = opendir(spool);
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                bool encrypted;

                if (escrow_spool_name_parse(de->d_name, NULL, NULL, &encrypted) >= 0 && !encrypted)
                        fail_msg("%s/%s: a plain recovery password record with a DRA in force (killed at step %u)",
                                 spool, de->d_name, f->k);
                if (de->d_name[0] == '.' && strstr(de->d_name, ".shred"))
                        fail_msg("%s/%s: the plain record was not removed (killed at step %u)", spool, de->d_name, f->k);
        }
}

/* One volume, as the restarted daemon left it. Not thorough: after the operation was done again,
 * what the daemon says of it, and the password it reads back; every protector was proven after the
 * kill, and UnlockAll proves the VMK. */
static void check_volume(Fixture *f, const char *image, const uint8_t *vmk, const Guid *vmk_id, const Known *k,
                         bool had_dra, bool known_to_daemon, bool daemon_has_vmk, bool thorough) {
        _cleanup_(volume_freep) Volume *v = NULL;
        _cleanup_free_ char *st = NULL, *pw = NULL, *fp = NULL;
        char hex[2 * DRA_FINGERPRINT_SIZE + 1];
        bool opened = false;

        assert_int_equal(volume_load(image, &v), 0);
        /* The daemon's start finished any journalled change. */
        assert_false(v->token.has_pending);
        assert_int_equal(v->token.n_retiring, 0);
        assert_true(guid_equal(&v->token.vmk_id, vmk_id));

        if (known_to_daemon) {
                /* Opened at the start from the TPM; or, when the TPM refuses the old blob (the PCRs
                 * changed since), waiting for a person. */
                st = volume_property(f, v->token.volume_uuid, "State");
                if (!streq(st, daemon_has_vmk ? "verified" : "recovery-required"))
                        fail_msg("%s is %s after the restart (killed at step %u)", image, st, f->k);
        }
        assert_true(v->token.has[PROTECTOR_RECOVERY]);
        if (thorough) {
                assert_true(volume_open_vmk(v, vmk, vmk_id, NULL, 0) >= 0);
                for (size_t i = 0; i < k->n && !opened; i++)
                        opened = volume_open_recovery(v, k->passwords[i], NULL, 0, NULL) >= 0;
                if (!opened)
                        fail_msg("%s: no recovery password anyone was given opens it (killed at step %u)", image, f->k);
        }
        pw = known_to_daemon && daemon_has_vmk ? daemon_password(f, v->token.volume_uuid) : NULL;
        if (pw)
                assert_true(volume_open_recovery(v, pw, NULL, 0, NULL) >= 0);

        assert_true(v->token.has[PROTECTOR_DRA] || !had_dra);
        if (v->token.has[PROTECTOR_DRA] && thorough)
                assert_true(volume_open_dra(v, f->rsa_key, NULL, 0) >= 0 ||
                            volume_open_dra(v, f->ec_key, NULL, 0) >= 0);
        if (v->token.has[PROTECTOR_DRA] && known_to_daemon) {
                fp = volume_property(f, v->token.volume_uuid, "DRAFingerprint");
                fingerprint_hex(v->token.protectors[PROTECTOR_DRA].dra_fingerprint, hex);
                assert_string_equal(fp, hex);
        }
}

/* The VMK export, if there is one, opens with the old or the new DRA key; its fingerprint in hex. */
static bool check_export(Fixture *f, const uint8_t *vmk, char ret_fp[static 2 * DRA_FINGERPRINT_SIZE + 1]) {
        _cleanup_free_ char *path = path_join(f->d->state_dir, "vmk-export.json"), *json = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_secure_ uint8_t *imported = NULL;
        size_t n;
        Guid id;
        int r;

        r = read_file_full(path, VMK_BLOB_SIZE_MAX, &json, &n);
        if (r == -ENOENT)
                return false;
        assert_int_equal(r, 0);
        r = vmk_import_dra(json, n, f->rsa_key, &imported, &id);
        if (r < 0)
                r = vmk_import_dra(json, n, f->ec_key, &imported, &id);
        if (r < 0)
                fail_msg("vmk-export.json opens with neither DRA key: %s", strerror(-r));
        assert_memory_equal(imported, vmk, VMK_SIZE);
        assert_int_equal(json_parse_object(json, n, 4, &o), 0);
        snprintf(ret_fp, 2 * DRA_FINGERPRINT_SIZE + 1, "%s", strempty(json_get_string(o, "dra_fingerprint")));
        return true;
}

/* The server recovery passwords someone has: the one read before, and those the hook got. */
static void known_server_passwords(Fixture *f, Known *k) {
        known_collect(f, NULL, k);
        if (f->server_password)
                known_add(k, f->server_password);
}

/* The state directory's server recovery password names the VMK in force, and a password someone has
 * opens it to that VMK. */
static void check_server_password(Fixture *f, const Known *given, const uint8_t *vmk, const Guid *vmk_id) {
        _cleanup_free_ char *path = path_join(f->d->state_dir, "server-recovery.json");
        Known k = {};
        ServerRecovery sr;
        bool opened = false;

        for (size_t i = 0; i < given->n; i++)
                known_add(&k, given->passwords[i]);
        known_server_passwords(f, &k);
        assert_int_equal(server_recovery_read(path, &sr), 0);
        if (!guid_equal(&sr.vmk_id, vmk_id))
                fail_msg("server-recovery.json is for another VMK than the one in force (killed at step %u)", f->k);
        for (size_t i = 0; i < k.n && !opened; i++) {
                _cleanup_secure_ uint8_t *out = NULL;

                if (server_recovery_unwrap(sr.wrapped_vmk, &sr.key_id, &sr.vmk_id, k.passwords[i], &out, NULL) >= 0) {
                        assert_memory_equal(out, vmk, VMK_SIZE);
                        opened = true;
                }
        }
        if (!opened)
                fail_msg("no server recovery password anyone was given opens the VMK in force (killed at step %u)",
                         f->k);
        server_recovery_done(&sr);
        known_done(&k);
}

/* The daemon runs, started normally after the kill. consistent: also after the operation was done
 * again, when everything follows one DRA certificate. */
static void check_server(Fixture *f, Op op, const char *ctl_output, bool consistent) {
        _cleanup_secure_ uint8_t *vmk = NULL;
        _cleanup_free_ char *dra = manager_property(f, "DRAFingerprint");
        const char *fresh = op_new_image(f, op);
        char export_fp[2 * DRA_FINGERPRINT_SIZE + 1];
        Known k = {};
        VmkBlob blob;
        Guid vmk_id;
        bool have_export, refused = false;

        known_collect(f, ctl_output, &k);
        if (consistent) {
                /* A volume provisioned since the start is locked until asked: everything opens. */
                sd_bus_error error = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;
                uint32_t opened, failed;

                assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "UnlockAll", &error, &reply, "t", UINT64_C(0)) >= 0);
                assert_true(sd_bus_message_read(reply, "uu", &opened, &failed) >= 0);
                sd_bus_message_unref(reply);
                assert_int_equal(failed, 0);
        }

        /* Killed before the first VMK was sealed: no volume can be bound to it. */
        if (op == OP_PROVISION_FIRST && !consistent) {
                _cleanup_free_ char *p = path_join(f->d->state_dir, "vmk.sealed");
                _cleanup_(volume_freep) Volume *v = NULL;

                if (access(p, F_OK) < 0) {
                        assert_int_not_equal(volume_load(fresh, &v), 0);
                        known_done(&k);
                        return;
                }
        }

        /* After a changed boot the old blob, byte for byte, is refused by the TPM: that one may stay
         * until the rotation the recovery brings has sealed a new VMK. */
        if (IN_SET(op, (Op) OP_RECOVER_SERVER, OP_REPLACE_TPM)) {
                _cleanup_free_ char *now = NULL;
                size_t n;

                assert_int_equal(read_blob(f, &now, &n), 0);
                refused = n == f->sealed_size && memcmp(now, f->sealed, n) == 0;
                assert_false(refused && consistent);
        }
        /* Otherwise the sealed VMK unseals, to the VMK the volumes had (old blob or new, never a
         * broken one), or, for the operations that rotate it, to the one the start left every volume
         * bound to. */
        if (refused || (consistent && f->have_vmk && !IN_SET(op, (Op) OP_RESEAL, OP_RECOVER_SERVER, OP_ROTATE_VMK, OP_UPGRADE_V1,
                                                              OP_REPLACE_TPM))) {
                /* Not resealed (again): the blob was checked after the kill. */
                vmk = secure_memdup(f->vmk, VMK_SIZE);
                assert_non_null(vmk);
                vmk_id = f->vmk_id;
        } else {
                _cleanup_secure_ uint8_t *previous = NULL;
                _cleanup_free_ char *path = path_join(f->d->state_dir, "vmk.sealed");
                _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;

                assert_int_equal(tpm2_context_new(f->d->tpm->tcti, &c), 0);
                if (vmk_unseal_from_file_full(c, path, &vmk, &previous, &blob, NULL) < 0)
                        fail_msg("The sealed VMK does not unseal (killed at step %u)", f->k);
                vmk_id = blob.vmk_id;
                if (IN_SET(op, (Op) OP_RECOVER_SERVER, OP_ROTATE_VMK, OP_UPGRADE_V1, OP_REPLACE_TPM)) {
                        /* Every volume is here: the start re-bound them all and dropped the previous VMK. */
                        if (blob.has_previous)
                                fail_msg("the previous VMK is still sealed after the start (killed at step %u)",
                                         f->k);
                        /* Done again, a new one. */
                        if (consistent && !refused && op == OP_ROTATE_VMK && guid_equal(&blob.vmk_id, &f->vmk_id))
                                fail_msg("RotateVMK, done again, left the VMK as it was (killed at step %u)", f->k);
                } else if (f->have_vmk) {
                        assert_memory_equal(vmk, f->vmk, VMK_SIZE);
                        assert_true(guid_equal(&blob.vmk_id, &f->vmk_id));
                }
                /* Old (PCR 7) or new (0,7); done again, new. */
                if (op == OP_RESEAL)
                        assert_true((!consistent && blob.pcrs.mask == (UINT32_C(1) << 7)) ||
                                    blob.pcrs.mask == ((UINT32_C(1) << 7) | 1u));
        }
        if (op == OP_UPGRADE_V1)
                /* The start upgraded what the kill left: no token of version 1, none with its VMK copy
                 * under a disk's password; and it rotated the VMK those copies showed. */
                for (size_t i = 0; i < f->n_volumes; i++) {
                        _cleanup_(volume_freep) Volume *v = NULL;

                        assert_int_equal(volume_load(f->images[i], &v), 0);
                        if (v->token.version != VOLUME_TOKEN_VERSION)
                                fail_msg("%s still has a version %u token after the start (killed at step %u)",
                                         f->images[i], v->token.version, f->k);
                        if (guid_equal(&v->token.vmk_id, &f->vmk_id))
                                fail_msg("%s is still bound to the VMK version 1 exposed (killed at step %u)",
                                         f->images[i], f->k);
                }
        if (op == OP_REPLACE_TPM && !refused && guid_equal(&vmk_id, &f->vmk_id))
                /* Sealed to the new TPM: the password used for it was replaced (at the latest by this
                 * start), with the VMK. */
                fail_msg("the VMK was not rotated after the TPM replacement (killed at step %u)", f->k);
        if (IN_SET(op, (Op) OP_RECOVER_SERVER, OP_ROTATE_VMK, OP_UPGRADE_V1, OP_REPLACE_TPM))
                /* A person can always recover the server: the server recovery password in force (one
                 * given, or escrowed) opens the VMK in force. */
                check_server_password(f, &k, refused ? f->vmk : vmk, refused ? &f->vmk_id : &vmk_id);
        if (op == OP_RECOVER_SERVER && consistent) {
                /* The volume whose password nobody used keeps it. */
                _cleanup_(volume_freep) Volume *v = NULL;

                assert_int_equal(volume_load(f->images[1], &v), 0);
                assert_true(volume_open_recovery(v, f->passwords[1], NULL, 0, NULL) >= 0);
        }
        if (op == OP_RECOVER_SERVER && !refused) {
                /* The VMK is back (and rotated): the disk password a person used is replaced (at the latest
                 * by this start). */
                _cleanup_(volume_freep) Volume *v = NULL;

                assert_int_equal(volume_load(f->images[0], &v), 0);
                if (volume_open_recovery(v, f->passwords[0], NULL, 0, NULL) >= 0)
                        fail_msg("the used recovery password still opens %s after the VMK came back (killed at step "
                                 "%u)", f->images[0], f->k);
        }

        for (size_t i = 0; i < f->n_volumes; i++)
                check_volume(f, f->images[i], vmk, &vmk_id, &k, op != OP_DRA_FIRST, /* known_to_daemon= */ true,
                             !refused, /* thorough= */ !consistent);
        if (fresh) {
                _cleanup_(volume_freep) Volume *v = NULL;
                int r = volume_load(fresh, &v);

                /* A provisioning killed before its token: not a sealvol volume (yet). Killed after it, and
                 * before the registry: complete, and registered when provisioned again (redo()). */
                if (r == 0) {
                        bool known = registered(f, v->token.volume_uuid);

                        if (consistent && !known)
                                fail_msg("%s was provisioned, but the daemon does not know it (killed at step %u)",
                                         fresh, f->k);
                        check_volume(f, fresh, vmk, &vmk_id, &k, false, known, true, /* thorough= */ true);
                        snprintf(f->uuids[op == OP_PROVISION_FIRST ? 0 : 2], VOLUME_UUID_STRING_MAX, "%s",
                                 v->token.volume_uuid);
                } else
                        assert_true(r == -ENOMSG || r == -EMEDIUMTYPE || r == -EUCLEAN);
        }

        have_export = check_export(f, vmk, export_fp);
        if (!isempty(dra)) {
                /* One certificate: the daemon's, every volume's, the export's. A change of it that was
                 * killed half way is finished at the start, with the VMK: the certificate in force
                 * holds for everything, or a TPM loss would find an export or a volume that only a
                 * key no longer kept opens, with nothing saying so. */
                if (!have_export || !streq(export_fp, dra))
                        fail_msg("vmk-export.json is %s, not wrapped to the DRA certificate in force (killed at "
                                 "step %u)", have_export ? "wrapped to another certificate" : "missing", f->k);
                for (size_t i = 0; i < N_VOLUMES_MAX; i++) {
                        _cleanup_free_ char *fp = NULL;

                        if (!f->uuids[i][0] || !registered(f, f->uuids[i]))
                                continue;
                        fp = volume_property(f, f->uuids[i], "DRAFingerprint");
                        if (!streq(fp, dra))
                                fail_msg("volume %s is wrapped to DRA certificate \"%s\", not to the one in force "
                                         "(killed at step %u)", f->uuids[i], fp, f->k);
                }
                check_spool_encrypted(f);
        }
        known_done(&k);
}

/* The password of volume i that opens it now: the one read before, or the one that went to escrow. */
static char *current_password(Fixture *f, size_t i) {
        _cleanup_(volume_freep) Volume *v = NULL;
        Known k = {};
        char *found = NULL;

        known_collect(f, NULL, &k);
        assert_int_equal(volume_load(f->images[i], &v), 0);
        for (size_t j = 0; j < k.n && !found; j++)
                if (volume_open_recovery(v, k.passwords[j], NULL, 0, NULL) >= 0)
                        found = strdup(k.passwords[j]);
        known_done(&k);
        assert_non_null(found);
        return found;
}

/* The server recovery password that opens the server now. */
static char *current_server_password(Fixture *f) {
        _cleanup_free_ char *path = path_join(f->d->state_dir, "server-recovery.json");
        Known k = {};
        ServerRecovery sr;
        char *found = NULL;

        known_server_passwords(f, &k);
        assert_int_equal(server_recovery_read(path, &sr), 0);
        for (size_t i = 0; i < k.n && !found; i++) {
                _cleanup_secure_ uint8_t *vmk = NULL;

                if (server_recovery_unwrap(sr.wrapped_vmk, &sr.key_id, &sr.vmk_id, k.passwords[i], &vmk, NULL) >= 0)
                        found = strdup(k.passwords[i]);
        }
        server_recovery_done(&sr);
        known_done(&k);
        assert_non_null(found);
        return found;
}

static bool vmk_available(Fixture *f) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int b = 0;

        assert_true(sd_bus_get_property_trivial(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                                "VMKAvailable", &error, 'b', &b) >= 0);
        return b;
}

/* Done again by the restarted daemon: it must succeed. */
static void redo(Fixture *f, Op op, char **ret_output) {
        const char *fresh = op_new_image(f, op);
        _cleanup_free_ char *out = NULL, *ctl_out = NULL;
        int r;

        if (fresh) {
                _cleanup_(volume_freep) Volume *v = NULL;

                r = volume_load(fresh, &v);
                if (r == 0 && registered(f, v->token.volume_uuid)) { /* provisioned: done */
                        *ret_output = NULL;
                        return;
                }
                if (r == -EUCLEAN) {
                        /* Killed inside the LUKS2 header write: the daemon refuses a damaged header
                         * (DamagedHeader, "wipe it to provision"); the operator wipes it. */
                        assert_int_equal(truncate(fresh, 0), 0);
                        assert_int_equal(truncate(fresh, (off_t) LUKS_IMAGE_SIZE_DEFAULT), 0);
                }
        }
        if (IN_SET(op, (Op) OP_RECOVER_SERVER, OP_REPLACE_TPM) && vmk_available(f)) {
                /* Killed after the new VMK was sealed: the start finished the rotation, and the
                 * recovery is done. */
                *ret_output = NULL;
                return;
        }
        if (op == OP_RECOVER_SERVER) {
                /* The TPM still refuses the old blob: the person types the server recovery password that
                 * is in force (escrowed, if the rotation got as far as replacing it). */
                _cleanup_free_ char *pw = current_server_password(f);
                ctl_spawn(f, pw, (const char *const[]) { "recover", NULL });
        } else if (op == OP_REPLACE_TPM) {
                /* Not sealed to the new TPM yet: the operator runs it again, with the password in force. */
                _cleanup_free_ char *pw = current_server_password(f);
                ctl_spawn(f, pw, (const char *const[]) { "tpm", "replace", NULL });
        } else if (op == OP_RECOVER) {
                /* The person types the password that opens it now (escrowed, if it was replaced). */
                _cleanup_free_ char *pw = current_password(f, 0);
                ctl_spawn(f, pw, (const char *const[]) { "recover", f->uuids[0], NULL });
        } else
                op_spawn(f, op);
        r = ctl_wait(f);
        ctl_out = ctl_output_path(f);
        out = test_read_file(ctl_out);
        if (r != 0)
                fail_msg("%s, done again after the kill at step %u, failed (exit %d): %s", op_names[op], f->k, r,
                         strempty(out));
        /* What the call began in the background (a used password's replacement, escrow) is done too. */
        assert_int_equal(daemon_fixture_wait_idle(f->d, OPERATION_TIMEOUT_MS), 0);
        if (fresh) {
                _cleanup_(volume_freep) Volume *v = NULL;

                assert_int_equal(volume_load(fresh, &v), 0);
                snprintf(f->uuids[op == OP_PROVISION_FIRST ? 0 : 2], VOLUME_UUID_STRING_MAX, "%s",
                         v->token.volume_uuid);
        }
        *ret_output = TAKE_PTR(out);
}

static void start_normally(Fixture *f) {
        int r = daemon_fixture_start(f->d);

        /* What the start finishes after the boot is ready (a VMK rotation, a used password's
         * replacement, the escrow the hook is still to get) is done before the checks read what it
         * writes. */
        if (r >= 0)
                r = daemon_fixture_wait_idle(f->d, OPERATION_TIMEOUT_MS);
        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);
                fail_msg("sealvold does not start after the kill at step %u (%s); its log:\n%s", f->k, strerror(-r),
                         strempty(log));
        }
        reconnect(f);
}

/* A step takes seconds (under ASan too); one stage of it that takes minutes hangs. */
#define STAGE_TIMEOUT_SEC 300u
#define WATCH(f, op, what) \
        test_watchdog_set(STAGE_TIMEOUT_SEC, "%s, step %u: %s", op_names[op], (f)->k, what)

static void watchdog_report(void *userdata) {
        Fixture *f = userdata;
        _cleanup_free_ char *log = test_read_file(f->d->log_path);
        size_t n = log ? strlen(log) : 0;

        /* The end of it: what the daemon did last. */
        fprintf(stderr, "sealvold's log (%s), its end:\n%s\n", f->d->log_path,
                log ? log + (n > 8192 ? n - 8192 : 0) : "(unreadable)");
}

static void kill_at_every_step(Fixture *f, Op op) {
        const char *prefixes[] = { f->d->state_dir, f->disks, NULL };
        bool completed = false;
        unsigned k;

        test_watchdog_report(watchdog_report, f);
        for (k = 1; !completed; k++) {
                _cleanup_free_ char *out = NULL, *again = NULL, *out_path = ctl_output_path(f);
                char saved[N_VOLUMES_MAX][VOLUME_UUID_STRING_MAX];
                int r;

                assert_true(k < STEPS_MAX);
                f->k = k;
                WATCH(f, op, "restoring the pristine state");
                restore(f);
                memcpy(saved, f->uuids, sizeof(saved));
                /* A server of version 1 is upgraded by its first unlock: the traced start leaves it locked. */
                f->d->extra_arg = op == OP_UPGRADE_V1 ? "--no-unlock" : NULL;
                WATCH(f, op, "starting sealvold traced");
                assert_int_equal(daemon_fixture_start_traced(f->d, prefixes, KILL_POINT_GRAIN_WRITE_RUNS), 0);
                f->d->extra_arg = NULL;
                WATCH(f, op, "running the operation to the step");
                op_spawn(f, op);
                r = kill_point_process_run(f->d->traced, k, ctl_exited, f, OPERATION_TIMEOUT_MS, NULL);
                if (r < 0)
                        fail_msg("%s at step %u: %s", op_names[op], k, strerror(-r));
                completed = r == 0;
                /* Not one step seen would pass vacuously: the daemon is not dumpable, so reading its
                 * /proc/PID/fd takes CAP_SYS_PTRACE, which a container may have dropped. */
                if (completed && k == 1 && isempty(getenv("SEALVOL_VALGRIND")))
                        fail_msg("%s made no step the kill points saw (no CAP_SYS_PTRACE?)", op_names[op]);
                if (completed) {
                        if (f->ctl_status != 0) {
                                _cleanup_free_ char *o = test_read_file(out_path);
                                fail_msg("%s failed (exit %d): %s", op_names[op], f->ctl_status, strempty(o));
                        }
                } else
                        /* The caller learns that the daemon went away, or had its answer before the
                         * kill, which then found the work that follows one (the escrow pass after a
                         * change): it does not hang, and what it was told holds (check_server()). */
                        (void) ctl_wait(f);
                WATCH(f, op, "killing sealvold");
                assert_int_equal(daemon_fixture_kill(f->d), 0);
                /* What the killed daemon had loaded in the TPM (a policy session, a transient object: one
                 * thread may be in a TPM sequence while another makes the step that is killed) is
                 * flushed, as the kernel's resource manager does when a connection closes; swtpm has
                 * none, and three such sessions leave no room for the next unseal. */
                WATCH(f, op, "flushing the TPM's transient objects");
                assert_int_equal(swtpm_fixture_flush_transient(f->d->tpm), 0);
                out = test_read_file(out_path);

                WATCH(f, op, "starting sealvold after the kill");
                start_normally(f);
                WATCH(f, op, "checking the server after the kill");
                check_server(f, op, out, completed);
                if (!completed) {
                        WATCH(f, op, "doing the operation again");
                        redo(f, op, &again);
                        WATCH(f, op, "checking the server after the operation was done again");
                        check_server(f, op, again, true);
                }
                WATCH(f, op, "stopping sealvold");
                r = daemon_fixture_stop(f->d);
                if (r < 0) {
                        _cleanup_free_ char *log = test_read_file(f->d->log_path);
                        fail_msg("sealvold did not stop cleanly (%s); its log:\n%s", strerror(-r), strempty(log));
                }
                memcpy(f->uuids, saved, sizeof(saved));
        }
        test_watchdog_clear();
        /* Under valgrind the daemon is not traced: it completes at once. */
        if (!isempty(getenv("SEALVOL_VALGRIND")))
                print_message("%s: run once, not killed (valgrind)\n", op_names[op]);
        else
                print_message("%s: killed at each of its %u steps, every time recoverable and done again\n",
                              op_names[op], k - 2);
}

static void test_provision_first(void **state) {
        Fixture *f = *state;

        prepare(f, 0, NULL);
        kill_at_every_step(f, OP_PROVISION_FIRST);
}

static void test_provision_with_dra(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_PROVISION_DRA);
}

static void test_rotate(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_ROTATE);
}

static void test_reseal(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_RESEAL);
}

/* After a firmware update (PCR 7 changed) a person recovered volume 0 with its password (that disk only;
 * the note that it was used is in the pristine state): the daemon has no VMK, the TPM refuses the
 * blob. The server recovery password opens the server, and the VMK rotation it brings seals a new VMK
 * to the boot as it is; every step of it is killed. */
static void test_recover_server(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *out = NULL;

        prepare(f, 2, f->rsa_cert);
        assert_int_equal(swtpm_fixture_reboot(f->d->tpm), 0);
        assert_int_equal(swtpm_fixture_extend_pcr(f->d->tpm, 7, "new db", 6), 0);
        start_normally(f);
        assert_int_equal(CTL(f, f->passwords[0], &out, "recover", f->uuids[0]), 0);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        /* The blob that counts as old is the one the TPM now refuses. */
        snapshot(f);
        kill_at_every_step(f, OP_RECOVER_SERVER);
}

/* A new main board, its TPM with no storage key, and the server recovery password typed for `tpm
 * replace`: killed at each step, the sealed VMK is the old one (which the new TPM refuses: the operator
 * runs it again) or the one sealed to the new TPM, which the start rotates if the kill came first. */
static void test_replace_tpm(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        assert_int_equal(swtpm_fixture_kill(f->d->tpm), 0);
        assert_int_equal(rm_rf(f->d->tpm->state_dir), 0);
        assert_int_equal(mkdir(f->d->tpm->state_dir, 0700), 0);
        assert_int_equal(swtpm_fixture_start(f->d->tpm), 0);
        snapshot_tpm(f);
        kill_at_every_step(f, OP_REPLACE_TPM);
}

/* A server provisioned by version 1 (c8df6c6's formats, written by the frozen writer of
 * tests/harness/v1-format.c): sealed state and tokens of version 1, no server recovery password. Its
 * first unlock with this version upgrades them (each token one header write) and makes the server
 * recovery password; killed at each of its steps, the next start finishes and rotates the VMK. */
static void test_upgrade_v1(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *sealed = NULL, *v1 = NULL, *server = NULL;
        VmkBlob blob;

        prepare(f, 2, f->rsa_cert);
        restore(f);
        sealed = path_join(f->d->state_dir, "vmk.sealed");
        assert_int_equal(vmk_blob_read(sealed, &blob), 0);
        assert_int_equal(v1_blob_to_json(&blob, &v1), 0);
        assert_int_equal(write_file_atomic(sealed, v1, strlen(v1), 0600), 0);
        server = path_join(f->d->state_dir, "server-recovery.json");
        assert_int_equal(unlink(server), 0);
        for (size_t i = 0; i < f->n_volumes; i++)
                assert_int_equal(v1_volume_downgrade(f->images[i], f->vmk, f->passwords[i]), 0);
        f->server_password = mfree(f->server_password);
        snapshot(f);
        kill_at_every_step(f, OP_UPGRADE_V1);
}

/* The rotation on demand, every volume present. */
static void test_rotate_vmk(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_ROTATE_VMK);
}

/* SIGKILLed with a TPM command in its hands: the reseal's TPM2_Create, which the fault TCTI (loaded by
 * the daemon from $SEALVOL_TCTI, as any TCTI) holds unanswered. Then, as /dev/tpmrm0 does when a
 * connection closes, what the dead connection left in the TPM is flushed. The old blob is in place,
 * byte for byte, and everything goes on from it. */
static void test_reseal_tpm_command_in_flight(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *log = path_join(f->work, "tpm.log"), *tcti = NULL, *again = NULL, *now = NULL;
        size_t n;
        int r;

        assert_non_null(log);
        prepare(f, 2, f->rsa_cert);
        restore(f);
        assert_true(asprintf(&tcti, "%s:cc=Create,hang=%u,log=%s;%s", getenv("SEALVOL_FAULT_TCTI"),
                             OPERATION_TIMEOUT_MS, log, f->d->tpm->tcti) > 0);
        assert_int_equal(setenv("SEALVOL_TCTI", tcti, 1), 0);
        r = daemon_fixture_start(f->d);
        assert_int_equal(unsetenv("SEALVOL_TCTI"), 0);
        assert_int_equal(r, 0);

        op_spawn(f, OP_RESEAL);
        for (unsigned waited = 0;; waited += 10) {
                _cleanup_free_ char *l = test_read_file(log);

                if (l && strstr(l, " fault"))
                        break;
                assert_true(waited < OPERATION_TIMEOUT_MS);
                (void) nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        /* The TPM's work runs off the event loop: with its command held, the bus answers, and names
         * the operation. */
        assert_int_equal(daemon_fixture_operation_running(f->d, "reseal"), 1);
        assert_int_equal(daemon_fixture_kill(f->d), 0);
        assert_int_not_equal(ctl_wait(f), 0);
        assert_int_equal(swtpm_fixture_flush_transient(f->d->tpm), 0);

        assert_int_equal(read_blob(f, &now, &n), 0);
        assert_int_equal(n, f->sealed_size);
        assert_memory_equal(now, f->sealed, n);
        start_normally(f);
        check_server(f, OP_RESEAL, NULL, false);
        redo(f, OP_RESEAL, &again);
        check_server(f, OP_RESEAL, again, true);
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        print_message("ResealVMK killed with its TPM2_Create in flight: the old blob in place, recoverable and "
                      "done again\n");
}

static void test_dra_first(void **state) {
        Fixture *f = *state;

        prepare(f, 2, NULL);
        kill_at_every_step(f, OP_DRA_FIRST);
}

static void test_dra_replace(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_DRA_REPLACE);
}

static void test_export(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_EXPORT);
}

static void test_recover(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_RECOVER);
}

static void test_escrow_all(void **state) {
        Fixture *f = *state;

        prepare(f, 2, f->rsa_cert);
        kill_at_every_step(f, OP_ESCROW_ALL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_provision_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_provision_with_dra, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reseal, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recover_server, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replace_tpm, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotate_vmk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
                cmocka_unit_test_setup_teardown(test_reseal_tpm_command_in_flight, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dra_first, setup, teardown),
                cmocka_unit_test_setup_teardown(test_dra_replace, setup, teardown),
                cmocka_unit_test_setup_teardown(test_export, setup, teardown),
                cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
                cmocka_unit_test_setup_teardown(test_escrow_all, setup, teardown),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon (Debian package dbus)");
        test_require(!isempty(getenv("SEALVOLD")), "SEALVOLD (the path of the sealvold under test)");
        test_require(!isempty(getenv("SEALVOLCTL")), "SEALVOLCTL (the path of the sealvolctl under test)");
        test_require(geteuid() == 0, "root (sealvold and its ptrace)");
        test_require(!isempty(getenv("SEALVOL_DRA_FIXTURES")), "SEALVOL_DRA_FIXTURES (the generated DRA certificates)");
        test_require(!isempty(getenv("SEALVOL_FAULT_TCTI")), "SEALVOL_FAULT_TCTI (the fault-injecting TCTI)");
        sd_bus_error_add_map(sealvol_bus_errors);
        test_filter_from_env();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
