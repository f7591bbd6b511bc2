/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-unlock-count.c: "one TPM unseal per boot, whatever the number of disks", measured at the TPM
 * transport. One VMK is sealed to a private swtpm and 32 LUKS2 image files are bound to it; opening
 * 1 or all 32 of them (unseal the VMK once, then derive and check each volume's keyslot passphrase
 * in software) must send the very same TPM commands, a handful of them, and no CreatePrimary.
 *
 * Peers pay a TPM sequence per volume (Clevis about 29 commands with a CreatePrimary, systemd
 * about 12-16): a regression that puts any TPM work back into the per-volume loop fails here.
 */

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "luks-fixture.h"
#include "secmem.h"
#include "swtpm-fixture.h"
#include "test-util.h"
#include "tpm-count.h"
#include "volume.h"

#define VOLUMES_MAX 32u
/* What the unlock path costs, whatever N: six commands today (ReadPublic of the SRK, Load, StartAuthSession,
 * PolicyPCR, Unseal, FlushContext), and a little room for an ESAPI that checks one more thing. */
#define UNLOCK_COMMANDS_MAX 10u

typedef struct Fixture {
        SwtpmFixture *tpm;
        char *vmk_path;
        char *capture;
        char *images[VOLUMES_MAX];
} Fixture;

static int new_image(const char *dir, const char *name, char **ret) {
        return sparse_image_new(dir, name, LUKS_IMAGE_SIZE_DEFAULT, ret);
}

static int group_teardown(void **state) {
        Fixture *f = *state;

        if (!f)
                return 0;
        swtpm_fixture_free(f->tpm); /* stops the TPM, removes the directory with the images */
        for (unsigned i = 0; i < VOLUMES_MAX; i++)
                free(f->images[i]);
        free(f->vmk_path);
        free(f->capture);
        free(f);
        *state = NULL;
        return 0;
}

static int provision_all(Fixture *f) {
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_secure_ uint8_t *vmk = NULL;
        VmkBlob blob;
        int r;

        r = swtpm_fixture_new("test-unlock-count", &f->tpm);
        if (r < 0)
                return r;
        f->vmk_path = path_join(f->tpm->dir, "vmk.sealed");
        f->capture = path_join(f->tpm->dir, "unlock.pcap");
        if (!f->vmk_path || !f->capture)
                return -ENOMEM;

        r = tpm2_context_new(f->tpm->tcti, &c);
        if (r < 0)
                return r;
        r = vmk_generate(&vmk);
        if (r < 0)
                return r;
        r = vmk_seal_to_file(c, vmk, /* identity= */ NULL, TPM2_ALG_SHA256, VMK_PCR_MASK_DEFAULT,
                             f->vmk_path, &blob);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < VOLUMES_MAX; i++) {
                VolumeProvisionParams p = {
                        .vmk = vmk,
                        .vmk_id = blob.vmk_id,
                        .hostname = "server1.example.com",
                        .recovery_iterations = VOLUME_PBKDF2_ITERATIONS_MIN,
                };
                _cleanup_secure_ char *password = NULL;
                char name[32];

                (void) snprintf(name, sizeof(name), "disk-%02u.img", i);
                r = new_image(f->tpm->dir, name, &f->images[i]);
                if (r < 0)
                        return r;
                r = volume_provision(f->images[i], &p, &password, /* ret= */ NULL);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Provisioning is the slow part and is not what is measured: done once for the whole group. */
static int group_setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        int r;

        *state = f;
        if (!f)
                return -1;
        r = provision_all(f);
        if (r < 0) {
                fprintf(stderr, "Failed to provision the volumes: %s\n", strerror(-r));
                /* cmocka does not tear down a group whose setup failed: do not leave the TPM behind. */
                (void) group_teardown(state);
                return -1;
        }
        return 0;
}

static void print_count(const char *what, const TpmCount *count) {
        char histogram[1024];

        print_message("%s: %u TPM commands (%s)\n", what, count->commands,
                      tpm_count_format(count, histogram, sizeof(histogram)));
}

/* The VMK as sealvold's unlock pass gets it: unsealed by the first worker that needs it, once, while
 * the others wait (daemon/sealvold-unlock.c). */
typedef struct LazyVmk {
        pthread_mutex_t lock;
        Tpm2Context *c;
        const char *path;
        bool tried;
        int result;
        uint8_t *vmk;
        VmkBlob blob;
} LazyVmk;

static int lazy_key(const Guid *id, const uint8_t **ret, void *userdata) {
        LazyVmk *k = userdata;
        int r;

        (void) pthread_mutex_lock(&k->lock);
        if (!k->tried) {
                k->tried = true;
                k->result = vmk_unseal_from_file(k->c, k->path, &k->vmk, &k->blob, NULL);
        }
        r = k->result;
        (void) pthread_mutex_unlock(&k->lock);
        if (r < 0)
                return r;
        if (!guid_equal(id, &k->blob.vmk_id))
                return -EREMOTE;
        *ret = k->vmk;
        return 0;
}

/* The boot's path, as sealvold takes it: a fresh TPM connection, then every volume loaded and checked
 * with its derived passphrase on several workers at once (more than this machine's cores, so that
 * they do meet), the first of them unsealing (NULL name: verify the key only, no device-mapper here). */
static void unlock_counted(Fixture *f, unsigned n, TpmCount *ret) {
        LazyVmk k = { .lock = PTHREAD_MUTEX_INITIALIZER, .path = f->vmk_path };
        VolumeOpenItem items[VOLUMES_MAX] = {};

        assert_int_equal(tpm_count_context_new(f->tpm->tcti, f->capture, &k.c), 0);
        assert_null(getenv(TPM_COUNT_ENV));
        for (unsigned i = 0; i < n; i++)
                items[i].device = f->images[i];
        volume_open_many(items, n, /* workers= */ 4, lazy_key, &k);
        for (unsigned i = 0; i < n; i++) {
                assert_non_null(items[i].vol);
                assert_int_equal(items[i].result, items[i].vol->token.protectors[PROTECTOR_TPM].keyslot);
                items[i].vol = volume_free(items[i].vol);
        }
        assert_int_equal(k.result, 0);
        k.vmk = secure_free(k.vmk);
        /* Closing the connection is part of the path: whatever ESAPI flushes then is counted too. */
        k.c = tpm2_context_free(k.c);
        assert_int_equal(tpm_count_read(f->capture, ret), 0);
}

static void check_unlock_count(const TpmCount *c) {
        assert_int_equal(c->sections, 1);
        assert_int_equal(c->responses, c->commands);
        assert_int_equal(c->failed, 0);
        assert_int_equal(tpm_count_of(c, TPM2_CC_Unseal), 1);
        /* The SRK is persistent: never derived again on the unlock path. */
        assert_int_equal(tpm_count_of(c, TPM2_CC_CreatePrimary), 0);
        assert_in_range(c->commands, 1, UNLOCK_COMMANDS_MAX);
}

static void test_one_unseal_for_any_number_of_volumes(void **state) {
        Fixture *f = *state;
        TpmCount one, all;

        unlock_counted(f, 1, &one);
        print_count("1 volume", &one);
        unlock_counted(f, VOLUMES_MAX, &all);
        print_count("32 volumes", &all);

        check_unlock_count(&one);
        check_unlock_count(&all);

        /* Not just as many: the same commands. */
        assert_int_equal(all.commands, one.commands);
        assert_int_equal(all.n_codes, one.n_codes);
        for (size_t i = 0; i < one.n_codes; i++) {
                assert_int_equal(all.codes[i].code, one.codes[i].code);
                assert_int_equal(all.codes[i].count, one.codes[i].count);
        }
}

/* The counter itself: commands it must see, exactly once each, and nothing that is not a capture. */
static void test_counter_counts(void **state) {
        Fixture *f = *state;
        _cleanup_(tpm2_context_freep) Tpm2Context *c = NULL;
        _cleanup_free_ char *garbage = path_join(f->tpm->dir, "garbage.pcap");
        Tpm2PcrValues pcrs;
        TpmCount count;
        uint8_t rnd[16];
        FILE *file;

        assert_int_equal(tpm_count_context_new(f->tpm->tcti, f->capture, &c), 0);
        assert_int_equal(tpm2_get_random(c, rnd, sizeof(rnd)), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, UINT32_C(1) << 7, &pcrs), 0);
        assert_int_equal(tpm2_pcr_read_values(c, TPM2_ALG_SHA256, UINT32_C(1) << 0, &pcrs), 0);
        c = tpm2_context_free(c);
        assert_int_equal(tpm_count_read(f->capture, &count), 0);
        print_count("control", &count);
        assert_int_equal(count.commands, 3);
        assert_int_equal(tpm_count_of(&count, TPM2_CC_GetRandom), 1);
        assert_int_equal(tpm_count_of(&count, TPM2_CC_PCR_Read), 2);
        assert_string_equal(tpm_command_name(TPM2_CC_PCR_Read), "PCR_Read");
        assert_null(tpm_command_name(0x12345));

        /* A new context starts a new capture rather than adding to the last one. */
        assert_int_equal(tpm_count_context_new(f->tpm->tcti, f->capture, &c), 0);
        c = tpm2_context_free(c);
        assert_int_equal(tpm_count_read(f->capture, &count), 0);
        assert_int_equal(count.sections, 1);
        assert_int_equal(count.commands, 0);

        assert_non_null(garbage);
        file = fopen(garbage, "we");
        assert_non_null(file);
        assert_int_equal(fputs("not a capture at all", file) >= 0, 1);
        assert_int_equal(fclose(file), 0);
        assert_int_equal(tpm_count_read(garbage, &count), -EBADMSG);
        assert_int_equal(tpm_count_read(f->vmk_path, &count), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counter_counts),
                cmocka_unit_test(test_one_unseal_for_any_number_of_volumes),
        };

        test_require(test_have_executable("swtpm"), "swtpm (Debian package swtpm)");
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
