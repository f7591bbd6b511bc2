/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* daemon-fixture.c: sealvold with its own TPM, bus and state (see daemon-fixture.h). */

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "daemon-fixture.h"
#include "bus-fixture.h"
#include "fileio.h"
#include "luks-fixture.h"
#include "test-util.h"

#define DAEMON_START_TIMEOUT_MS 20000u
#define DAEMON_STOP_TIMEOUT_MS 10000u

DaemonFixture *daemon_fixture_free(DaemonFixture *f) {
        if (!f)
                return NULL;
        (void) daemon_fixture_stop(f);
        bus_fixture_free(f->bus);
        swtpm_fixture_free(f->tpm);
        /* SEALVOL_TEST_KEEP=1 keeps the directory (the daemon's log, its state) for a person to read. */
        if (f->dir && !getenv("SEALVOL_TEST_KEEP"))
                (void) rm_rf(f->dir);
        else if (f->dir)
                fprintf(stderr, "kept %s\n", f->dir);
        free(f->dir);
        free(f->config_path);
        free(f->state_dir);
        free(f->log_path);
        free(f);
        return NULL;
}

int daemon_fixture_new(const char *name, const char *extra_config, DaemonFixture **ret) {
        _cleanup_(daemon_fixture_freep) DaemonFixture *f = calloc(1, sizeof(DaemonFixture));
        _cleanup_free_ char *config = NULL;
        int r;

        if (!f)
                return -ENOMEM;
        r = test_tmpdir_new(name, &f->dir);
        if (r < 0)
                return r;
        f->config_path = path_join(f->dir, "sealvol.conf");
        f->state_dir = path_join(f->dir, "state");
        f->log_path = path_join(f->dir, "sealvold.log");
        if (!f->config_path || !f->state_dir || !f->log_path)
                return -ENOMEM;

        r = swtpm_fixture_new(name, &f->tpm);
        if (r < 0)
                return r;
        r = bus_fixture_new(name, &f->bus);
        if (r < 0)
                return r;

        if (asprintf(&config, "[TPM]\nTCTI=%s\n[Paths]\nStateDirectory=%s\n[Recovery]\nKDFIterations=1000\n%s",
                     f->tpm->tcti, f->state_dir, strempty(extra_config)) < 0)
                return -ENOMEM;
        r = write_file_atomic(f->config_path, config, strlen(config), 0644);
        if (r < 0)
                return r;

        r = daemon_fixture_start(f);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(f);
        return 0;
}

/* Whether org.sealvol1 belongs to pid (not to what is left of a daemon killed before it). */
static bool name_is_of(sd_bus *bus, pid_t pid) {
        sd_bus_message *reply = NULL;
        uint32_t owner = 0;
        int r;

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionUnixProcessID", NULL, &reply, "s", "org.sealvol1");
        if (r >= 0)
                r = sd_bus_message_read(reply, "u", &owner);
        sd_bus_message_unref(reply);
        return r >= 0 && (pid_t) owner == pid;
}

/* The daemon pid owns its name and its boot's unlock pass is done (BootState is not "unlocking"); it
 * answers meanwhile. Each question is bounded (bus's method call timeout): a daemon that does not
 * answer is asked again. */
static bool boot_unlocked(sd_bus *bus, pid_t pid) {
        _cleanup_free_ char *state = NULL;

        if (!name_is_of(bus, pid))
                return false;
        if (sd_bus_get_property_string(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "BootState",
                                       NULL, &state) < 0)
                return false;
        return !streq(state, "unlocking");
}

/* Why a start was not seen ready: who owns the name, what BootState says. */
static void start_diagnose(pid_t pid) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *state = NULL;
        sd_bus_message *reply = NULL;
        uint32_t owner = 0;
        sd_bus *bus = NULL;
        int r;

        r = sd_bus_open_system(&bus);
        if (r >= 0 && sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                         "GetConnectionUnixProcessID", NULL, &reply, "s", "org.sealvol1") >= 0)
                (void) sd_bus_message_read(reply, "u", &owner);
        sd_bus_message_unref(reply);
        if (r >= 0)
                r = sd_bus_get_property_string(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager",
                                               "BootState", &error, &state);
        fprintf(stderr, "daemon fixture: sealvold %d not seen ready: org.sealvol1 owned by pid %u, BootState %s%s%s\n",
                (int) pid, owner, r >= 0 ? strna(state) : "unknown: ", r >= 0 ? "" : strna(error.message),
                r >= 0 ? "" : "");
        sd_bus_flush_close_unref(bus);
        /* The owner, and every process of its group still there (what holds its connection). */
        if (owner > 0) {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "ps -o pid,ppid,pgid,stat,comm -g %u -p %u >&2", owner, owner);
                if (system(cmd) != 0)
                        fprintf(stderr, "daemon fixture: pid %u is gone\n", owner);
        }
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

int daemon_fixture_start(DaemonFixture *f) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const char *daemon = getenv("SEALVOLD");
        int r;

        if (f->pid > 0)
                return -EBUSY;
        if (isempty(daemon))
                return -ENOENT;
        char *argv[] = { (char *) daemon, (char *) "--config", f->config_path, (char *) f->extra_arg, NULL };
        r = test_spawn(argv, f->log_path, -1, &f->pid);
        if (r < 0)
                return r;

        /* Ready when it owns its name and the boot's unlock pass is done (it answers meanwhile:
         * BootState says "unlocking"). One connection for all the questions. */
        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_set_method_call_timeout(bus, 2 * 1000 * 1000);
        if (r < 0)
                return r;
        for (uint64_t deadline = now_ms() + DAEMON_START_TIMEOUT_MS; now_ms() < deadline;) {
                if (boot_unlocked(bus, f->pid))
                        return 0;
                if (!test_process_running(f->pid)) {
                        f->pid = 0;
                        return -ECHILD;
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        start_diagnose(f->pid);
        return -ETIMEDOUT;
}

/* The traced start's question, asked between the daemon's steps: the daemon is stopped while the
 * tracer asks, so the property is read without waiting for it (an asynchronous call, processed at
 * each question). */
typedef struct StartWait {
        pid_t pid;
        uint64_t next;
        sd_bus *bus;
        sd_bus_slot *slot;
        bool ready;
} StartWait;

static int on_boot_state(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        StartWait *w = userdata;
        const char *state;

        (void) error;
        if (!sd_bus_message_is_method_error(reply, NULL) && sd_bus_message_read(reply, "v", "s", &state) >= 0)
                w->ready = !streq(state, "unlocking");
        w->slot = sd_bus_slot_unref(w->slot);
        return 0;
}

static int name_owned(void *userdata) {
        StartWait *w = userdata;
        uint64_t now = now_ms();

        /* Asked at most every 20 ms: each question is a connection to the bus. */
        if (now < w->next)
                return 0;
        w->next = now + 20;
        if (!w->bus && (sd_bus_open_system(&w->bus) < 0 || sd_bus_set_method_call_timeout(w->bus, 2 * 1000 * 1000) < 0))
                return 0;
        /* dbus-daemon answers this one, not the traced daemon. */
        if (!w->ready && !w->slot && !name_is_of(w->bus, w->pid))
                return 0;
        if (!w->slot && !w->ready &&
            sd_bus_call_method_async(w->bus, &w->slot, "org.sealvol1", "/org/sealvol1", "org.freedesktop.DBus.Properties",
                                     "Get", on_boot_state, w, "ss", "org.sealvol1.Manager", "BootState") < 0)
                return 0;
        while (sd_bus_process(w->bus, NULL) > 0)
                ;
        return w->ready;
}

int daemon_fixture_start_traced(DaemonFixture *f, const char *const *prefixes, KillPointGrain grain) {
        const char *daemon = getenv("SEALVOLD");
        StartWait w = {};
        int r;

        if (f->pid > 0)
                return -EBUSY;
        if (isempty(daemon))
                return -ENOENT;
        char *argv[] = { (char *) daemon, (char *) "--config", f->config_path, (char *) f->extra_arg, NULL };
        r = kill_point_process_spawn(argv, f->log_path, prefixes, grain, &f->traced);
        if (r < 0)
                return r;
        f->pid = kill_point_process_pid(f->traced);
        w.pid = f->pid;
        r = kill_point_process_run(f->traced, /* k= */ 0, name_owned, &w, DAEMON_START_TIMEOUT_MS, NULL);
        sd_bus_slot_unref(w.slot);
        sd_bus_flush_close_unref(w.bus);
        if (r < 0)
                (void) daemon_fixture_kill(f);
        return r;
}

static void wait_name_released(void) {
        for (unsigned waited = 0; waited < DAEMON_STOP_TIMEOUT_MS && bus_name_has_owner("org.sealvol1") > 0;
             waited += 10)
                (void) nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
}

int daemon_fixture_stop(DaemonFixture *f) {
        int r;

        if (f->traced)
                return daemon_fixture_kill(f);
        if (f->pid <= 0)
                return 0;
        r = test_process_stop(f->pid, DAEMON_STOP_TIMEOUT_MS);
        f->pid = 0;
        /* The name goes with the connection; wait until the bus has noticed. */
        wait_name_released();
        /* A clean SIGTERM exit is 0; anything else (a sanitizer report, a leak, a crash) is a failure. */
        return r < 0 ? r : r > 0 ? -EPROTO : 0;
}

int daemon_fixture_kill(DaemonFixture *f) {
        if (f->traced) {
                /* Killed at a step already, or still running: either way gone after this. */
                f->traced = kill_point_process_free(f->traced);
                f->pid = 0;
                wait_name_released();
                return 0;
        }
        if (f->pid <= 0)
                return 0;
        if (kill(f->pid, SIGKILL) < 0)
                return -errno;
        (void) waitpid(f->pid, NULL, 0);
        f->pid = 0;
        wait_name_released();
        return 0;
}

int daemon_fixture_reboot(DaemonFixture *f) {
        int r;

        r = daemon_fixture_stop(f);
        if (r >= 0)
                r = swtpm_fixture_reboot(f->tpm);
        if (r >= 0)
                r = daemon_fixture_start(f);
        return r;
}

int daemon_fixture_new_image(DaemonFixture *f, const char *name, char **ret_path) {
        return sparse_image_new(f->dir, name, LUKS_IMAGE_SIZE_DEFAULT, ret_path);
}

/* A copy of sealvolctl in the fixture's directory (0755): the build tree may sit below a directory
 * that nobody cannot enter (CI clones into a mktemp -d). */
static int ctl_binary(DaemonFixture *f, char **ret) {
        _cleanup_free_ char *copy = path_join(f->dir, "sealvolctl"), *data = NULL;
        const char *source = getenv("SEALVOLCTL");
        size_t n;
        int r;

        if (!copy)
                return -ENOMEM;
        if (access(copy, X_OK) < 0) {
                if (isempty(source))
                        return -ENOENT;
                r = read_file_full(source, 64 * 1024 * 1024, &data, &n);
                if (r >= 0)
                        r = write_file_atomic(copy, data, n, 0755);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(copy);
        return 0;
}

int daemon_fixture_ctl(DaemonFixture *f, uid_t uid, const char *input, char **ret_output, const char *const *args) {
        _cleanup_free_ char *out = path_join(f->dir, "ctl.out"), *binary = NULL;
        char *argv[16];
        int fds[2], status, r;
        size_t n = 1;
        pid_t pid;

        if (!out)
                return -ENOMEM;
        r = ctl_binary(f, &binary);
        if (r < 0)
                return r;
        argv[0] = binary;
        for (; args[n - 1] && n < ELEMENTSOF(argv) - 1; n++)
                argv[n] = (char *) args[n - 1];
        argv[n] = NULL;
        if (pipe2(fds, O_CLOEXEC) < 0) /* the child must not hold the write end open */
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int o = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);

                if (o < 0 || dup2(fds[0], STDIN_FILENO) < 0 || dup2(o, STDOUT_FILENO) < 0 || dup2(o, STDERR_FILENO) < 0)
                        _exit(120);
                if (uid != 0 && (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
                        _exit(121);
                execv(argv[0], argv);
                _exit(122);
        }
        close(fds[0]);
        if (input && write(fds[1], input, strlen(input)) != (ssize_t) strlen(input))
                r = -EIO;
        close(fds[1]);
        if (waitpid(pid, &status, 0) != pid)
                return -errno;
        if (r < 0)
                return r;
        *ret_output = test_read_file(out);
        if (!*ret_output)
                return -ENOMEM;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Whether the Manager's Operations names name (NULL: any). */
static int operation_running(const char *name) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        char **ops = NULL;
        int r, running = 0;

        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_get_property_strv(bus, "org.sealvol1", "/org/sealvol1", "org.sealvol1.Manager", "Operations",
                                     &error, &ops);
        if (r < 0)
                return r;
        for (char **o = ops; o && *o; o++) {
                running = running || !name || strcmp(*o, name) == 0;
                free(*o);
        }
        free(ops);
        return running;
}

int daemon_fixture_operation_running(DaemonFixture *f, const char *name) {
        (void) f;
        return operation_running(name);
}

int daemon_fixture_escrow_running(DaemonFixture *f) {
        return daemon_fixture_operation_running(f, "escrow");
}

int daemon_fixture_wait_escrow(DaemonFixture *f, unsigned timeout_ms) {
        return daemon_fixture_wait_operation(f, "escrow", timeout_ms);
}

int daemon_fixture_wait_idle(DaemonFixture *f, unsigned timeout_ms) {
        return daemon_fixture_wait_operation(f, NULL, timeout_ms);
}

int daemon_fixture_wait_operation(DaemonFixture *f, const char *name, unsigned timeout_ms) {
        (void) f;
        for (unsigned waited = 0; waited < timeout_ms; waited += 20) {
                int r = operation_running(name);

                if (r <= 0)
                        return r;
                (void) nanosleep(&(struct timespec) { .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        return -ETIMEDOUT;
}
