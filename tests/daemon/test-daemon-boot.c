/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-daemon-boot.c: what sealvold does at start besides the registry (docs/boot.md), on real block
 * devices (loop devices over image files; no device-mapper here, so "open" means every key verified):
 * a volume of this server that the registry forgot is found by its token and registered again; a
 * volume of another server is left alone and reported with its Key ID; a registered disk that is
 * missing is waited for a bounded time, then reported, and the daemon comes up anyway. Two devices
 * with one UUID (a second loop device over a copy of the image): the copy is refused while the
 * registered disk holds the volume, and a volume follows its UUID only to a single carrier when its
 * registered path is gone.
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
        int second_fd;          /* a second disk, for the tests of two devices with one UUID */
        char second_path[32];
        char *second_image;
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
        f->loop_fd = f->second_fd = -EBADF;
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
        safe_close(f->second_fd);
        daemon_fixture_free(f->d);
        free(f->image);
        free(f->second_image);
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

/* ---- two devices, one UUID (attack 10) ---------------------------------------------------------- */

/* A second loop device over a new image: a byte-for-byte copy of the first disk (a dd clone, or a disk
 * planted with its header), or an empty one. */
static void attach_second(Fixture *f, bool copy) {
        assert_int_equal(daemon_fixture_new_image(f->d, "second.img", &f->second_image), 0);
        if (copy) {
                _cleanup_close_ int in = open(f->image, O_RDONLY | O_CLOEXEC);
                _cleanup_close_ int out = open(f->second_image, O_WRONLY | O_CLOEXEC);
                _cleanup_free_ char *buf = malloc(1024 * 1024);
                ssize_t n;

                assert_true(in >= 0 && out >= 0 && buf);
                while ((n = read(in, buf, 1024 * 1024)) > 0)
                        assert_int_equal(write(out, buf, (size_t) n), n);
                assert_int_equal(n, 0);
        }
        assert_int_equal(loop_attach(f->second_image, &f->second_fd, f->second_path), 0);
}

static char *registered_device(Fixture *f, const char *uuid) {
        _cleanup_free_ char *reg = registry_path(f, uuid);
        char *device = test_read_file(reg);

        assert_non_null(device);
        device[strcspn(device, "\n")] = '\0';
        return device;
}

static void write_registry(Fixture *f, const char *uuid, const char *device) {
        _cleanup_free_ char *reg = registry_path(f, uuid), *line = NULL;

        assert_true(asprintf(&line, "%s\n", device) > 0);
        assert_int_equal(write_file_atomic(reg, line, strlen(line), 0600), 0);
}

/* A reboot with the registry naming device for uuid (and with the disks attached meanwhile). */
static void reboot_with_registry(Fixture *f, const char *uuid, const char *device) {
        write_registry(f, uuid, device);
        must_start(f, daemon_fixture_reboot(f->d));
        reconnect(f);
}

static char *volume_string(Fixture *f, const char *uuid, const char *property) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *path = NULL;
        char *s = NULL;

        assert_true(sd_bus_path_encode("/org/sealvol1/volume", uuid, &path) >= 0);
        assert_true(sd_bus_get_property_string(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", property, &error,
                                               &s) >= 0);
        return s;
}

/* Whether the manager's RefusedDevices lists device for uuid, with a reason that says why. */
static bool refused(Fixture *f, const char *device, const char *uuid, const char *why) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *d, *u, *reason;
        bool found = false;
        int r;

        r = sd_bus_get_property(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "RefusedDevices",
                                &error, &reply, "a(sss)");
        sd_bus_error_free(&error);
        if (r >= 0)
                r = sd_bus_message_enter_container(reply, 'a', "(sss)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(sss)", &d, &u, &reason)) > 0)
                if (streq(d, device) && streq(u, uuid) && strstr(reason, why))
                        found = true;
        sd_bus_message_unref(reply);
        return found;
}

/* The attack: a copy of a volume's disk (a dd clone, or a disk planted with its header) is plugged in
 * while the volume's disk is there. It is refused and reported (journal, RefusedDevices, sealvolctl
 * status), never registered, across restarts too (the registry never flips); provisioning it is
 * refused; unlocking acts on the registered disk; the copy is never written. */
static void test_copy_refused(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *before = NULL, *after = NULL, *out = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;

        assert_int_equal(daemon_fixture_stop(f->d), 0);
        attach_second(f, /* copy= */ true);
        assert_int_equal(read_head(f->second_path, &before), 0);

        for (unsigned boot = 0; boot < 2; boot++) {
                _cleanup_free_ char *reg = NULL, *device = NULL, *st = NULL;

                must_start(f, daemon_fixture_reboot(f->d));
                reconnect(f);
                reg = registered_device(f, uuid);
                assert_string_equal(reg, f->loop_path);
                device = volume_string(f, uuid, "Device");
                assert_string_equal(device, f->loop_path);
                st = volume_state(f, uuid);
                assert_string_equal(st, "verified");
                assert_true(refused(f, f->second_path, uuid, "still holds it"));
        }
        assert_true(log_contains(f, "is refused: its registered device", 0));

        /* What the operator sees. */
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "status"), 0);
        assert_non_null(strstr(out, "Refused devices"));
        assert_non_null(strstr(out, f->second_path));
        out = mfree(out);
        assert_int_equal(DAEMON_CTL(f->d, 0, NULL, &out, "--json", "status"), 0);
        _cleanup_free_ char *field = NULL;
        assert_true(asprintf(&field, "\"refused_devices\":[{\"device\":\"%s\"", f->second_path) > 0);
        assert_non_null(strstr(out, field));
        out = mfree(out);

        /* Provisioning the copy is refused, unlocking acts on the registered disk only. */
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                       "ProvisionVolume", &error, &reply, "st", f->second_path, UINT64_C(0)) < 0);
        assert_string_equal(error.name, "org.sealvol1.Error.DeviceNotEmpty");
        sd_bus_error_free(&error);
        _cleanup_free_ char *path = NULL;
        assert_true(sd_bus_path_encode("/org/sealvol1/volume", uuid, &path) >= 0);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", "Lock", &error, NULL,
                                       "") >= 0);
        assert_true(sd_bus_call_method(f->bus, "org.sealvol1", path, "org.sealvol1.Volume", "Unlock", &error, &reply,
                                       "t", UINT64_C(0)) >= 0);
        reply = sd_bus_message_unref(reply);
        _cleanup_free_ char *reg = registered_device(f, uuid), *device = volume_string(f, uuid, "Device");
        assert_string_equal(reg, f->loop_path);
        assert_string_equal(device, f->loop_path);
        assert_int_equal(read_head(f->second_path, &after), 0);
        assert_memory_equal(before, after, HEAD_SIZE);
}

/* A controller renumbered the disk: the registered path is gone altogether, and one device carries the
 * volume. It is followed, with a warning. */
static void test_move_followed_when_path_gone(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *reg = NULL, *device = NULL, *st = NULL;

        assert_int_equal(daemon_fixture_stop(f->d), 0);
        reboot_with_registry(f, uuid, "/dev/sealvol-test-gone");
        st = volume_state(f, uuid);
        assert_string_equal(st, "verified");
        reg = registered_device(f, uuid);
        assert_string_equal(reg, f->loop_path);
        device = volume_string(f, uuid, "Device");
        assert_string_equal(device, f->loop_path);
        assert_true(log_contains(f, "moved to /dev/loop", 0));
        assert_true(log_contains(f, "its registered device /dev/sealvol-test-gone is gone", 0));
}

/* The registered path is gone and two devices carry the volume: neither is taken (the registry keeps
 * the old path, the volume stays unavailable), both are reported. */
static void test_two_carriers_neither_taken(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *reg = NULL, *st = NULL;

        assert_int_equal(daemon_fixture_stop(f->d), 0);
        attach_second(f, /* copy= */ true);
        reboot_with_registry(f, uuid, "/dev/sealvol-test-gone");
        st = volume_state(f, uuid);
        assert_string_equal(st, "unavailable");
        reg = registered_device(f, uuid);
        assert_string_equal(reg, "/dev/sealvol-test-gone");
        assert_true(refused(f, f->loop_path, uuid, "carries it too"));
        assert_true(refused(f, f->second_path, uuid, "carries it too"));
}

/* The registered path is there but holds something else (an empty disk took its name), or it is a
 * stable name that is gone: the volume is not moved without an operator. */
static void test_no_move_without_operator(void **state) {
        Fixture *f = *state;
        _cleanup_free_ char *uuid = provision(f), *reg = NULL, *st = NULL;

        assert_int_equal(daemon_fixture_stop(f->d), 0);
        attach_second(f, /* copy= */ false);
        reboot_with_registry(f, uuid, f->second_path);
        st = volume_state(f, uuid);
        assert_string_equal(st, "unavailable");
        reg = registered_device(f, uuid);
        assert_string_equal(reg, f->second_path);
        assert_true(refused(f, f->loop_path, uuid, "holds something else"));

        assert_int_equal(daemon_fixture_stop(f->d), 0);
        reboot_with_registry(f, uuid, "/dev/disk/by-id/sealvol-test-gone");
        reg = mfree(reg);
        reg = registered_device(f, uuid);
        assert_string_equal(reg, "/dev/disk/by-id/sealvol-test-gone");
        assert_true(refused(f, f->loop_path, uuid, "a stable name is never followed"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_probe_is_read_only, setup, teardown),
                cmocka_unit_test_setup_teardown(test_forgotten_volume_is_found, setup, teardown),
                cmocka_unit_test_setup_teardown(test_foreign_volume_left_alone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing_disk_bounded, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_move_followed_when_path_gone, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_carriers_neither_taken, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_move_without_operator, setup, teardown),
        };

        test_require(getuid() == 0, "root (loop devices)");
        test_require(access("/dev/loop-control", W_OK) == 0, "/dev/loop-control");
        test_require(test_have_executable("swtpm"), "swtpm");
        test_require(test_have_executable("dbus-daemon"), "dbus-daemon");
        return cmocka_run_group_tests(tests, NULL, NULL);
}
