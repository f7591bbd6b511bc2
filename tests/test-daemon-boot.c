/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-boot.c: what sealvold does at start besides the registry (docs/boot.md), on real block
 * devices (loop devices over image files; no device-mapper here, so "open" means every key verified):
 * a volume of this server that the registry forgot is found by its token and registered again; a
 * volume of another server is left alone and reported with its Key ID; a registered disk that is
 * missing is waited for a bounded time, then reported, and the daemon comes up anyway.
 * Hot-plug needs udev's events and is covered by the VM suite (tests/vm).
 */

#include <fcntl.h>
#include <linux/loop.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon-fixture.h"
#include "fileio.h"
#include "test-util.h"
#include "volume-probe.h"
#include "volume.h"

#define LOOP_ATTACH_TRIES 16

typedef struct Fixture {
        DaemonFixture *d;
        sd_bus *bus;
        int loop_fd;            /* held open: the loop device detaches itself when it is closed */
        char loop_path[32];
        char *image;
} Fixture;

/* A loop device over path that goes away with the last close (LO_FLAGS_AUTOCLEAR), so a crashed test
 * leaves nothing behind. Other tests on this machine may grab loop devices at the same time: retry. */
static int loop_attach(const char *path, int *ret_fd, char ret_name[static 32]) {
        _cleanup_close_ int control = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        _cleanup_close_ int file = open(path, O_RDWR | O_CLOEXEC);

        if (control < 0 || file < 0)
                return -errno;
        for (unsigned i = 0; i < LOOP_ATTACH_TRIES; i++) {
                struct loop_info64 info = { .lo_flags = LO_FLAGS_AUTOCLEAR };
                _cleanup_close_ int loop = -EBADF;
                int n = ioctl(control, LOOP_CTL_GET_FREE);

                if (n < 0)
                        return -errno;
                snprintf(ret_name, 32, "/dev/loop%d", n);
                loop = open(ret_name, O_RDWR | O_CLOEXEC);
                if (loop < 0)
                        return -errno;
                if (ioctl(loop, LOOP_SET_FD, file) < 0) {
                        if (errno == EBUSY)
                                continue;
                        return -errno;
                }
                if (ioctl(loop, LOOP_SET_STATUS64, &info) < 0) {
                        (void) ioctl(loop, LOOP_CLR_FD, 0);
                        return -errno;
                }
                *ret_fd = TAKE_FD(loop);
                return 0;
        }
        return -EBUSY;
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return -1;
        f->loop_fd = -EBADF;
        *state = f;
        r = daemon_fixture_new("test-daemon-boot", "[Boot]\nDeviceTimeoutSec=1\n", &f->d);
        if (r >= 0)
                r = sd_bus_open_system(&f->bus);
        if (r >= 0)
                r = daemon_fixture_new_image(f->d, "disk.img", &f->image);
        if (r >= 0)
                r = loop_attach(f->image, &f->loop_fd, f->loop_path);
        if (r < 0)
                fprintf(stderr, "setup: %s\n", strerror(-r));
        return r < 0 ? -1 : 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        int r = 0;

        sd_bus_flush_close_unref(f->bus);
        if (f->d) {
                r = daemon_fixture_stop(f->d);
                if (r < 0) {
                        _cleanup_free_ char *log = test_read_file(f->d->log_path);
                        fprintf(stderr, "sealvold did not stop cleanly (%s); its log:\n%s\n", strerror(-r), strempty(log));
                }
        }
        safe_close(f->loop_fd);
        daemon_fixture_free(f->d);
        free(f->image);
        free(f);
        return r < 0 ? -1 : 0;
}

static void must_start(Fixture *f, int r) {
        if (r < 0) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);
                fprintf(stderr, "sealvold did not start (%s); its log:\n%s\n", strerror(-r), strempty(log));
        }
        assert_int_equal(r, 0);
}

static void reconnect(Fixture *f) {
        f->bus = sd_bus_flush_close_unref(f->bus);
        assert_int_equal(sd_bus_open_system(&f->bus), 0);
}

/* Provisions the loop device over the bus; returns the volume's UUID. */
static char *provision(Fixture *f) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        _cleanup_(volume_token_done) VolumeToken t = {};
        const char *path, *key_id;

        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "ProvisionVolume", &error, &reply, "st", f->loop_path, UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "os", &path, &key_id) >= 0);
        sd_bus_message_unref(reply);
        /* What the boot's scan sees: read-only, the token names this server's VMK. */
        assert_int_equal(volume_probe(f->loop_path, &t), 0);
        return strdup(t.volume_uuid);
}

static char *registry_path(Fixture *f, const char *uuid) {
        char *p = NULL;
        assert_true(asprintf(&p, "%s/volumes/%s", f->d->state_dir, uuid) > 0);
        return p;
}

static char *volume_state(Fixture *f, const char *uuid) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        char *s = NULL;

        assert_true(sd_bus_path_encode("/org/sealvol1/volume", uuid, &path) >= 0);
        if (sd_bus_get_property_string(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", "State", &error, &s) < 0) {
                sd_bus_error_free(&error);
                return NULL;
        }
        return s;
}

static bool log_contains(Fixture *f, const char *needle, unsigned wait_ms) {
        for (unsigned waited = 0;; waited += 50) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);

                if (log && strstr(log, needle))
                        return true;
                if (waited >= wait_ms)
                        return false;
                (void) nanosleep(&(struct timespec) { .tv_nsec = 50 * 1000 * 1000 }, NULL);
        }
}

/* The LUKS2 header area: both metadata copies, the keyslots and the token. */
#define HEAD_SIZE (16u * 1024u * 1024u)
static int read_head(const char *device, char **ret) {
        _cleanup_close_ int fd = open(device, O_RDONLY | O_CLOEXEC);
        _cleanup_free_ char *buf = malloc(HEAD_SIZE);

        if (fd < 0 || !buf)
                return -errno;
        if (pread(fd, buf, HEAD_SIZE, 0) != (ssize_t) HEAD_SIZE)
                return -EIO;
        *ret = TAKE_PTR(buf);
        return 0;
}

static void test_probe_is_read_only(void **state) {
        Fixture *f = *state;
        _cleanup_(volume_token_done) VolumeToken t = {};

        /* Nothing on it yet: not LUKS2. A non-LUKS file neither. */
        assert_int_equal(volume_probe(f->loop_path, &t), -EMEDIUMTYPE);
        assert_int_equal(volume_probe(f->d->config_path, &t), -EMEDIUMTYPE);
        assert_int_equal(volume_probe("/nonexistent/disk", &t), -ENOENT);
}

static void test_forgotten_volume_is_found(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *reg = registry_path(f, uuid), *st = NULL;

        /* The registry loses it (a restored state directory, an administrator's mistake). */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_int_equal(unlink(reg), 0);
        must_start(f, daemon_fixture_reboot(f->d));
        reconnect(f);

        st = volume_state(f, uuid);
        if (!st) {
                _cleanup_free_ char *log = test_read_file(f->d->log_path);
                fprintf(stderr, "sealvold's log:\n%s\n", strempty(log));
        }
        assert_non_null(st);
        assert_string_equal(st, "verified");
        assert_int_equal(access(reg, F_OK), 0);
        assert_true(log_contains(f, "of this server on /dev/loop", 0));
}

static void test_foreign_volume_left_alone(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *reg = registry_path(f, uuid), *vmk = NULL, *st = NULL;
        _cleanup_free_ char *before = NULL, *after = NULL, *other = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *p, *k;

        /* This server is reinstalled: a new VMK (made by provisioning another disk), no registry. */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        assert_true(asprintf(&vmk, "%s/vmk.sealed", f->d->state_dir) > 0);
        assert_int_equal(unlink(vmk), 0);
        assert_int_equal(unlink(reg), 0);
        assert_int_equal(read_head(f->loop_path, &before), 0);
        must_start(f, daemon_fixture_start(f->d));
        reconnect(f);
        assert_int_equal(daemon_fixture_new_image(f->d, "other.img", &other), 0);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "ProvisionVolume", &error, &reply, "st", other, UINT64_C(0)) >= 0);
        assert_true(sd_bus_message_read(reply, "os", &p, &k) >= 0);
        sd_bus_message_unref(reply);
        must_start(f, daemon_fixture_reboot(f->d));
        reconnect(f);

        /* Not ours: not opened, not registered, not on the bus as a volume; reported with its Key ID. */
        st = volume_state(f, uuid);
        assert_null(st);
        assert_int_equal(access(reg, F_OK), -1);
        assert_true(log_contains(f, "belongs to another server", 0));
        assert_true(log_contains(f, uuid, 0));
        /* And untouched: the scan only reads. */
        assert_int_equal(read_head(f->loop_path, &after), 0);
        assert_memory_equal(before, after, HEAD_SIZE);
}

static void test_missing_disk_bounded(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *reg = registry_path(f, uuid), *st = NULL;
        struct timespec a, b;

        /* The disk is gone (pulled, a dead controller): the registry still names it. */
        assert_int_equal(daemon_fixture_stop(f->d), 0);
        f->loop_fd = safe_close(f->loop_fd);
        (void) nanosleep(&(struct timespec) { .tv_nsec = 200 * 1000 * 1000 }, NULL);
        assert_int_equal(write_file_atomic(reg, "/dev/sealvol-test-missing\n", 26, 0600), 0);
        clock_gettime(CLOCK_MONOTONIC, &a);
        must_start(f, daemon_fixture_reboot(f->d));
        reconnect(f);
        st = volume_state(f, uuid);
        assert_non_null(st);
        assert_string_equal(st, "unavailable");
        /* Said within the bound (DeviceTimeoutSec=1), and the daemon serves the bus all along. */
        assert_true(log_contains(f, "did not appear within 1s", 5000));
        clock_gettime(CLOCK_MONOTONIC, &b);
        assert_true(b.tv_sec - a.tv_sec < 10);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_probe_is_read_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forgotten_volume_is_found, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_volume_left_alone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_disk_bounded, setup, teardown),
        };

        test_require(getuid() == 0, "root (loop devices)");
        test_require(access("/dev/loop-control", W_OK) == 0, "/dev/loop-control");
        test_require(test_have_executable("swtpm"), "swtpm");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
