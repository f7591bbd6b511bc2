/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* test-util.c: directories, skip policy and child processes for the test harness. */

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-util.h"

bool test_in_ci(void) {
        return streq_ptr(getenv("CI"), "true");
}

void test_filter_from_env(void) {
        const char *filter = getenv("SEALVOL_TEST_FILTER");

        if (filter && *filter)
                cmocka_set_test_filter(filter);
}

void test_require(bool present, const char *what) {
        if (present)
                return;
        if (test_in_ci()) {
                fprintf(stderr, "FAIL: %s is missing, and with CI=true a skipped test is a failure.\n", what);
                exit(EXIT_FAILURE);
        }
        fprintf(stderr, "SKIP: %s is missing.\n", what);
        exit(TEST_EXIT_SKIP);
}

bool test_have_executable(const char *name) {
        const char *path = getenv("PATH");
        _cleanup_free_ char *copy = NULL;
        char *save = NULL;

        if (strchr(name, '/'))
                return access(name, X_OK) == 0;
        copy = strdup(path ? path : "/usr/bin:/bin");
        if (!copy)
                return false;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = path_join(d, name);
                if (p && access(p, X_OK) == 0)
                        return true;
        }
        return false;
}

char *path_join(const char *a, const char *b) {
        char *p;

        if (asprintf(&p, "%s/%s", a, b) < 0)
                return NULL;
        return p;
}

int test_tmpdir_new(const char *name, char **ret) {
        const char *root = getenv("SEALVOL_TEST_TMPDIR");
        char *p;

        if (isempty(root))
                root = "/tmp";
        if (mkdir(root, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (asprintf(&p, "%s/%s.XXXXXX", root, name) < 0)
                return -ENOMEM;
        if (!mkdtemp(p) || chmod(p, 0755) < 0) {
                int r = -errno;
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

int test_setup_tmpdir(void **state) {
        char *dir = NULL;

        if (test_tmpdir_new(program_invocation_short_name, &dir) < 0)
                return -1;
        *state = dir;
        return 0;
}

int test_teardown_tmpdir(void **state) {
        char *dir = *state;
        int r = rm_rf(dir);

        free(dir);
        return r < 0 ? -1 : 0;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st;
        (void) ftw;
        if (type == FTW_DP)
                return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
        return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path) {
        if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
                return errno == ENOENT ? 0 : -errno;
        return 0;
}

int test_spawn(char *const argv[], const char *log_path, int pass_fd, pid_t *ret_pid) {
        pid_t parent = getpid(), pid;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int devnull, log;

                /* Tie the child's life to ours, and close the race where we died before prctl. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
                log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
                if (devnull < 0 || log < 0 || dup2(devnull, STDIN_FILENO) < 0 ||
                    dup2(log, STDOUT_FILENO) < 0 || dup2(log, STDERR_FILENO) < 0)
                        _exit(127);
                if (pass_fd >= 0 && dup2(pass_fd, 3) < 0)
                        _exit(127);
                execvp(argv[0], argv);
                _exit(127);
        }

        *ret_pid = pid;
        return 0;
}

bool test_process_running(pid_t pid) {
        return pid > 0 && waitpid(pid, NULL, WNOHANG) == 0;
}

int test_process_stop(pid_t pid, unsigned timeout_ms) {
        int status;

        if (pid <= 0)
                return -ESRCH;
        (void) kill(pid, SIGTERM);
        for (unsigned waited = 0;; waited += 10) {
                pid_t p = waitpid(pid, &status, WNOHANG);
                if (p == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (p < 0)
                        return -errno;
                if (waited >= timeout_ms)
                        break;
                (void) nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        (void) kill(pid, SIGKILL);
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        return 128 + SIGKILL;
}

int test_run(char *const argv[], const char *log_path, unsigned timeout_ms) {
        pid_t pid;
        int status, r;

        r = test_spawn(argv, log_path, /* pass_fd= */ -1, &pid);
        if (r < 0)
                return r;
        for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
                pid_t p = waitpid(pid, &status, WNOHANG);

                if (p == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (p < 0)
                        return -errno;
                (void) nanosleep(&(struct timespec) { .tv_nsec = 10 * 1000 * 1000 }, NULL);
        }
        (void) test_process_stop(pid, /* timeout_ms= */ 1000);
        return -ETIMEDOUT;
}

char *test_write_script(const char *dir, const char *name, const char *body) {
        char *path = path_join(dir, name), *tmp = NULL;
        FILE *f;

        assert_non_null(path);
        assert_true(asprintf(&tmp, "%s.tmp", path) > 0);
        f = fopen(tmp, "we");
        assert_non_null(f);
        assert_true(fprintf(f, "#!/bin/sh\n%s\n", body) > 0);
        assert_int_equal(fchmod(fileno(f), 0700), 0);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(rename(tmp, path), 0);
        free(tmp);
        return path;
}

char *test_read_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t n = 0;

        if (!f)
                return NULL;
        if (getdelim(&buf, &n, '\0', f) < 0) {
                free(buf);
                return strdup("");
        }
        return buf;
}

int test_silent_listener(unsigned *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        int fd, r;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
            getsockname(fd, (struct sockaddr *) &sa, &len) < 0) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

/* ---- the watchdog ---------------------------------------------------------------------------------- */

static struct {
        pthread_mutex_t lock;
        pthread_cond_t changed;
        pthread_once_t once;
        pthread_t thread;
        bool armed;
        struct timespec deadline; /* CLOCK_MONOTONIC */
        unsigned seconds;
        char what[256];
        TestWatchdogReportFn report;
        void *userdata;
} watchdog = {
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .once = PTHREAD_ONCE_INIT,
};

static void *watchdog_thread(void *arg) {
        (void) arg;
        (void) pthread_mutex_lock(&watchdog.lock);
        for (;;) {
                struct timespec now;

                if (!watchdog.armed) {
                        (void) pthread_cond_wait(&watchdog.changed, &watchdog.lock);
                        continue;
                }
                if (pthread_cond_timedwait(&watchdog.changed, &watchdog.lock, &watchdog.deadline) != ETIMEDOUT)
                        continue;
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (!watchdog.armed || now.tv_sec < watchdog.deadline.tv_sec)
                        continue;
                break;
        }
        /* The lock stays held: nothing re-arms a watchdog that is about to abort. */
        fprintf(stderr, "\nwatchdog: still %s after %u s; every process now:\n", watchdog.what, watchdog.seconds);
        fflush(stderr);
        if (system("ps -N --ppid 2 --pid 2 --forest -o pid,ppid,stat,wchan:32,etimes,args >&2") != 0)
                fprintf(stderr, "watchdog: ps failed\n");
        if (watchdog.report)
                watchdog.report(watchdog.userdata);
        fflush(stderr);
        abort();
        return NULL;
}

static void watchdog_init(void) {
        pthread_condattr_t attr;

        (void) pthread_condattr_init(&attr);
        (void) pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        (void) pthread_cond_init(&watchdog.changed, &attr);
        (void) pthread_condattr_destroy(&attr);
        if (pthread_create(&watchdog.thread, NULL, watchdog_thread, NULL) != 0) {
                fprintf(stderr, "watchdog: cannot start its thread\n");
                abort();
        }
        (void) pthread_detach(watchdog.thread);
}

void test_watchdog_report(TestWatchdogReportFn report, void *userdata) {
        (void) pthread_mutex_lock(&watchdog.lock);
        watchdog.report = report;
        watchdog.userdata = userdata;
        (void) pthread_mutex_unlock(&watchdog.lock);
}

void test_watchdog_set(unsigned seconds, const char *format, ...) {
        va_list ap;

        (void) pthread_once(&watchdog.once, watchdog_init);
        (void) pthread_mutex_lock(&watchdog.lock);
        va_start(ap, format);
        (void) vsnprintf(watchdog.what, sizeof(watchdog.what), format, ap);
        va_end(ap);
        clock_gettime(CLOCK_MONOTONIC, &watchdog.deadline);
        watchdog.deadline.tv_sec += seconds;
        watchdog.seconds = seconds;
        watchdog.armed = true;
        (void) pthread_cond_signal(&watchdog.changed);
        (void) pthread_mutex_unlock(&watchdog.lock);
}

void test_watchdog_clear(void) {
        (void) pthread_mutex_lock(&watchdog.lock);
        watchdog.armed = false;
        watchdog.report = NULL;
        (void) pthread_cond_signal(&watchdog.changed);
        (void) pthread_mutex_unlock(&watchdog.lock);
}
