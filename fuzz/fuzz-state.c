/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-state.c: the daemon's state directory as sealvold reads it when it starts: the record of the
 * VMK export's escrow (vmk-escrow.json), the VMK export (vmk-export.json), the note of a used
 * recovery password (used-passwords/<uuid>), the note of an unfinished in-place encryption
 * (inplace/<hash>.device, with its "paused" marker), the server recovery password
 * (server-recovery.json, and a rotation's server-recovery.next.json), the note that the VMK is due for
 * rotation, the sealed state, the record of TPM replacements, and temporaries a crash left. A power cut, a
 * full disk or a restored backup can leave any of them truncated or wrong: the daemon must start,
 * ignore or redo what it cannot read, and never crash.
 *
 * The input is a list of files: a selector byte, a length byte (255: two more bytes hold it), the
 * content. Each run writes them
 * into a fresh state directory and runs manager_new() (every loader of the start), the resumption
 * of in-place encryptions, and manager_free(). The TPM is a socket that does not exist
 * (SEALVOL_TCTI), so nothing is unsealed and no encryption can really resume; the registry names
 * one volume whose device does not exist, so no device is ever opened.
 */

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "log.h"
#include "sealvold.h"
#include "tpm2.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define UUID "0f5c4b22-7d36-4cf1-9a3e-1b2c3d4e5f60"

/* Where each selector's content goes, under the state directory. */
static const char *const files[] = {
        "vmk-escrow.json",
        "vmk-export.json",
        "used-passwords/" UUID,
        "inplace/0000000000000000000000000000000000000000000000000000000000000000.device",
        "inplace/0000000000000000000000000000000000000000000000000000000000000000.device.paused",
        "vmk-escrow.json.tmp.AbCdEf",
        "volumes/" UUID ".tmp.123456",
        "server-recovery.json",
        "server-recovery.next.json",
        "vmk-rotation-due",
        "vmk.sealed",
        "tpm-replacements.json",
};

static char dir[64], config[128], state[96];

static void cleanup(void) {
        fuzz_rm_rf(dir);
}

static void write_text(const char *path, const void *data, size_t size) {
        fuzz_must(write_file_atomic(path, data, size, 0600) >= 0, path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        _cleanup_free_ char *tcti = NULL, *text = NULL;

        (void) argc;
        (void) argv;
        log_set_max_level(LOG_CRIT);
        fuzz_tmpdir_new("fuzz-state", dir, sizeof(dir));
        fuzz_must(atexit(cleanup) == 0, "atexit");
        fuzz_must(asprintf(&tcti, "swtpm:path=%s/no-tpm.sock", dir) > 0, "asprintf");
        fuzz_must(setenv(TPM2_TCTI_ENV, tcti, 1) == 0, "setenv");
        snprintf(state, sizeof(state), "%s/state", dir);
        snprintf(config, sizeof(config), "%s/sealvol.conf", dir);
        fuzz_must(asprintf(&text,
                           "[Paths]\nStateDirectory=%s\n[Escrow]\nTargets=spool hook\nHook=/bin/false\n",
                           state) > 0,
                  "asprintf");
        write_text(config, text, strlen(text));
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *device = NULL;
        Manager *m = NULL;

        /* A fresh state directory: the registered volume, then the files of the input. */
        fuzz_rm_rf(state);
        fuzz_must(mkdir(state, 0700) == 0, "mkdir");
        static const char *const subdirs[] = { "volumes", "used-passwords", "inplace" };
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *p = NULL;
                fuzz_must(asprintf(&p, "%s/%s", state, subdirs[i]) > 0 && mkdir(p, 0700) == 0, "mkdir");
        }
        {
                _cleanup_free_ char *p = NULL;
                fuzz_must(asprintf(&p, "%s/volumes/" UUID, state) > 0 &&
                                  asprintf(&device, "%s/missing.img\n", dir) > 0,
                          "asprintf");
                write_text(p, device, strlen(device));
        }
        while (size >= 2) {
                _cleanup_free_ char *p = NULL;
                size_t header = 2, n = data[1];

                if (n == 255 && size >= 4) { /* the long form: two more length bytes */
                        n = (size_t) data[2] << 8 | data[3];
                        header = 4;
                }
                if (n > size - header)
                        n = size - header;
                fuzz_must(asprintf(&p, "%s/%s", state, files[data[0] % ELEMENTSOF(files)]) > 0, "asprintf");
                write_text(p, data + header, n);
                data += header + n;
                size -= header + n;
        }

        if (manager_new(config, &m) < 0)
                abort(); /* the state never keeps the daemon from starting */
        if (m->n_volumes != 1 || m->n_vmk_escrow > ELEMENTSOF(m->vmk_escrow))
                abort();
        manager_resume_in_place(m);
        if (m->n_jobs != 0)
                abort(); /* without the VMK nothing resumes */
        manager_free(m);
        return 0;
}
