/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-bus.c: every method and property of org.sealvol1 called with arguments built from the fuzz
 * input, through the daemon's own vtables and handlers (daemon/sealvold-*-bus.c) and its Manager.
 *
 * The daemon's bus is one end of a socketpair (a direct connection, sd-bus as server), the fuzzer
 * the other end. There are two such connections: one whose peer is root, for whom polkit_check()
 * answers at once, and one whose peer is "nobody" (the socketpair is made by a child that dropped
 * to uid 65534), for whom the daemon asks polkit over that same connection; the fuzzer answers
 * CheckAuthorization as the input says (yes, no, an error, a malformed reply), and the daemon runs
 * the handler a second time with the verdict. Each input picks the caller, the verdict, a call (an
 * entry of the table below, or a member with a signature of its own), builds its arguments from
 * the following bytes (strings, flags, descriptors of several kinds, object paths), sends it and
 * pumps both ends until the reply arrives. Every call must get exactly one reply, and no polkit
 * query may be left behind.
 *
 * What it may touch: the TPM is a socket that does not exist (SEALVOL_TCTI, which wins over any
 * configuration), so no VMK is ever unsealed or created and nothing is provisioned; the registry
 * lists volumes whose devices are missing, and, when run as root, one real sealvol volume reached
 * through a read-only bind mount in a mount namespace of its own (a write fails with EROFS, so even
 * an Erase that gets through changes nothing). That namespace also hides the journal's socket: the
 * audit records of a fuzz run go nowhere.
 */

#include <fcntl.h>
#include <grp.h>
#include <openssl/rand.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "fileio.h"
#include "log.h"
#include "sealvold.h"
#include "secmem.h"
#include "tpm2.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- the input ---------------------------------------------------------------------------------- */

typedef struct Input {
        const uint8_t *data;
        size_t size;
} Input;

static uint8_t take_byte(Input *in) {
        if (in->size == 0)
                return 0;
        in->size--;
        return *in->data++;
}

static uint64_t take_u64(Input *in) {
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = v << 8 | take_byte(in);
        return v;
}

/* A length byte, then that many bytes (fewer at the end of the input), NUL-terminated. */
static char *take_string(Input *in) {
        size_t n = take_byte(in);
        char *s;

        if (n == 255) /* the long form: two more length bytes, for device paths and PEM files */
                n = (size_t) take_byte(in) << 8 | take_byte(in);
        if (n > in->size)
                n = in->size;
        s = malloc(n + 1);
        if (!s)
                abort();
        memcpy(s, in->data, n);
        s[n] = '\0';
        in->data += n;
        in->size -= n;
        return s;
}

/* ---- the server and the caller ------------------------------------------------------------------ */

#define VOLUMES_MISSING 3

typedef enum Caller {
        CALLER_ROOT,
        CALLER_NOBODY,
        _CALLER_MAX,
} Caller;

typedef enum Verdict {
        VERDICT_YES,
        VERDICT_NO,
        VERDICT_ERROR,
        VERDICT_MALFORMED,
        _VERDICT_MAX,
} Verdict;

typedef struct Peer {
        sd_bus *server; /* the daemon's end */
        sd_bus *client; /* the caller's end */
} Peer;

static struct {
        char dir[64];
        char *ro; /* the read-only bind mount of the real volume's directory */
        Manager *manager;
        Peer peers[_CALLER_MAX];
        Verdict verdict;                  /* what "polkit" answers for this input */
        unsigned asked;                   /* CheckAuthorization calls this input */
        char *paths[VOLUMES_MISSING + 1]; /* the volumes' object paths */
        size_t n_paths;
} fx;

static void cleanup(void) {
        if (fx.manager)
                fx.manager->bus = NULL; /* ours, below */
        fx.manager = manager_free(fx.manager);
        for (Caller c = 0; c < _CALLER_MAX; c++) {
                fx.peers[c].server = sd_bus_flush_close_unref(fx.peers[c].server);
                fx.peers[c].client = sd_bus_flush_close_unref(fx.peers[c].client);
        }
        for (size_t i = 0; i < fx.n_paths; i++)
                free(fx.paths[i]);
        if (fx.ro)
                (void) umount2(fx.ro, MNT_DETACH);
        free(fx.ro);
        if (fx.dir[0])
                fuzz_rm_rf(fx.dir);
}

static void write_text(const char *dir, const char *name, const char *text) {
        _cleanup_free_ char *path = NULL;

        fuzz_must(asprintf(&path, "%s/%s", dir, name) > 0, "asprintf");
        fuzz_must(write_file_atomic(path, text, strlen(text), 0600) >= 0, path);
}

/* One real sealvol volume, bound to a VMK nobody will ever hold here, reached read-only. */
static void make_real_volume(char uuid[static VOLUME_UUID_STRING_MAX], char **ret_device) {
        _cleanup_free_ char *rw = NULL, *ro = NULL, *image = NULL;
        _cleanup_secure_ char *password = NULL;
        _cleanup_(volume_freep) Volume *v = NULL;
        uint8_t vmk[VMK_SIZE];
        Guid vmk_id = {};
        int fd;

        fuzz_must(asprintf(&rw, "%s/rw", fx.dir) > 0 && asprintf(&ro, "%s/ro", fx.dir) > 0, "asprintf");
        fuzz_must(mkdir(rw, 0700) == 0 && mkdir(ro, 0700) == 0, "mkdir");
        fuzz_must(asprintf(&image, "%s/disk.img", rw) > 0, "asprintf");
        fd = open(image, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        fuzz_must(fd >= 0 && ftruncate(fd, 32 * 1024 * 1024) == 0, "the image");
        close(fd);

        fuzz_must(RAND_bytes(vmk, sizeof(vmk)) == 1 && guid_generate(&vmk_id) >= 0, "a VMK");
        VolumeProvisionParams p = { .vmk = vmk,
                                    .vmk_id = vmk_id,
                                    .recovery_iterations = VOLUME_PBKDF2_ITERATIONS_MIN };
        fuzz_must(volume_provision(image, &p, &password, &v) >= 0, "provisioning the volume");
        explicit_bzero(vmk, sizeof(vmk));
        memcpy(uuid, v->token.volume_uuid, VOLUME_UUID_STRING_MAX);

        fuzz_must(mount(rw, ro, NULL, MS_BIND, NULL) == 0, "the bind mount");
        fx.ro = TAKE_PTR(ro);
        fuzz_must(mount(NULL, fx.ro, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) == 0,
                  "the read-only remount");
        fuzz_must(asprintf(ret_device, "%s/disk.img", fx.ro) > 0, "asprintf");
}

static void pump(const Peer *p, bool *done) {
        /* Each round moves what is queued on both ends; a call needs a handful, one that asks
         * polkit a few more. A call that started an operation (sealvold-operation.c) is answered from
         * the daemon's event loop once its worker is done: the loop runs too, and is waited on while
         * an operation runs. */
        for (unsigned i = 0; i < 1000 && !*done; i++) {
                int a = sd_bus_process(p->server, NULL), b = sd_bus_process(p->client, NULL);
                int e = sd_event_run(fx.manager->event, 0);

                fuzz_must(a >= 0 && b >= 0 && e >= 0, "sd_bus_process");
                if (a == 0 && b == 0 && e == 0 && !*done) {
                        if (fx.manager->n_operations > 0)
                                (void) sd_event_run(fx.manager->event, 1000 * 1000);
                        else
                                (void) sd_bus_wait(p->client, 1000);
                }
        }
}

static int on_ready(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) m;
        (void) error;
        *(bool *) userdata = true;
        return 0;
}

/* polkit, as the unprivileged caller's end of the connection plays it. */
static int check_authorization(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) userdata;
        fx.asked++;
        switch (fx.verdict) {
        case VERDICT_YES:
        case VERDICT_NO:
                return sd_bus_reply_method_return(m, "(bba{ss})", fx.verdict == VERDICT_YES, false, 0);
        case VERDICT_ERROR:
                return sd_bus_error_set(error, "org.freedesktop.PolicyKit1.Error.Failed", "No.");
        default:
                return sd_bus_reply_method_return(m, "s", "yes");
        }
}

static const sd_bus_vtable polkit_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD(
                "CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})", check_authorization,
                SD_BUS_VTABLE_UNPRIVILEGED), /* its caller, the daemon, is "nobody" on this socket too */
        SD_BUS_VTABLE_END,
};

/* A socketpair whose peer credentials (SO_PEERCRED, what sd-bus reports as the caller's) are
 * uid/gid 65534: made by a child that dropped to them, and passed back. */
static void socketpair_as_nobody(int ret[static 2]) {
        union {
                struct cmsghdr header;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } control = {};
        char byte = 0;
        struct iovec iov = { &byte, 1 };
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)
        };
        int channel[2], status;
        pid_t pid;

        fuzz_must(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, channel) == 0, "socketpair");
        pid = fork();
        fuzz_must(pid >= 0, "fork");
        if (pid == 0) {
                int pair[2];
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0 ||
                    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) < 0)
                        _exit(1);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(pair));
                memcpy(CMSG_DATA(c), pair, sizeof(pair));
                _exit(sendmsg(channel[1], &msg, 0) == 1 ? 0 : 1);
        }
        close(channel[1]);
        fuzz_must(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the child");
        fuzz_must(recvmsg(channel[0], &msg, MSG_CMSG_CLOEXEC) == 1, "recvmsg");
        close(channel[0]);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        fuzz_must(c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(2 * sizeof(int)),
                  "the descriptors");
        memcpy(ret, CMSG_DATA(c), 2 * sizeof(int));
}

static void peer_start(Caller caller) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *ping = NULL;
        Peer *p = &fx.peers[caller];
        sd_id128_t server_id;
        bool ready = false;
        int pair[2];

        if (caller == CALLER_ROOT)
                fuzz_must(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) == 0,
                          "socketpair");
        else
                socketpair_as_nobody(pair);

        /* The daemon's end: the server of a direct connection, with the daemon's own objects. */
        fuzz_must(sd_bus_new(&p->server) >= 0, "sd_bus_new");
        fuzz_must(sd_bus_set_fd(p->server, pair[0], pair[0]) >= 0, "sd_bus_set_fd");
        fuzz_must(sd_id128_randomize(&server_id) >= 0, "sd_id128_randomize");
        fuzz_must(sd_bus_set_server(p->server, true, server_id) >= 0, "sd_bus_set_server");
        /* EXTERNAL would compare our uid with the socket's; the socket's is what counts. */
        fuzz_must(sd_bus_set_anonymous(p->server, true) >= 0, "sd_bus_set_anonymous");
        fuzz_must(sd_bus_negotiate_fds(p->server, true) >= 0, "sd_bus_negotiate_fds");
        fx.manager->bus = p->server;
        fuzz_must(manager_bus_setup(fx.manager) >= 0, "manager_bus_setup");
        fuzz_must(sd_bus_start(p->server) >= 0, "sd_bus_start (server)");

        fuzz_must(sd_bus_new(&p->client) >= 0, "sd_bus_new");
        fuzz_must(sd_bus_set_fd(p->client, pair[1], pair[1]) >= 0, "sd_bus_set_fd");
        fuzz_must(sd_bus_set_anonymous(p->client, true) >= 0, "sd_bus_set_anonymous");
        fuzz_must(sd_bus_negotiate_fds(p->client, true) >= 0, "sd_bus_negotiate_fds");
        fuzz_must(sd_bus_add_object_vtable(p->client, NULL, "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", polkit_vtable, NULL) >= 0,
                  "polkit's object");
        fuzz_must(sd_bus_start(p->client) >= 0, "sd_bus_start (client)");

        fuzz_must(sd_bus_message_new_method_call(p->client, &ping, NULL, SEALVOL_MANAGER_PATH,
                                                 "org.freedesktop.DBus.Peer", "Ping") >= 0,
                  "a Ping");
        fuzz_must(sd_bus_call_async(p->client, NULL, ping, on_ready, &ready, 0) >= 0, "sending a Ping");
        pump(p, &ready);
        fuzz_must(ready, "the connection");
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
        _cleanup_free_ char *config = NULL, *state = NULL, *volumes = NULL, *tcti = NULL, *text = NULL;
        char uuid[VOLUME_UUID_STRING_MAX];

        (void) argc;
        (void) argv;
        log_set_max_level(LOG_CRIT);
        fuzz_tmpdir_new("fuzz-bus", fx.dir, sizeof(fx.dir));
        fuzz_must(atexit(cleanup) == 0, "atexit");

        /* A namespace of our own: the read-only volume, and no journal to flood. */
        if (geteuid() == 0) {
                fuzz_must(unshare(CLONE_NEWNS) == 0, "unshare(CLONE_NEWNS)");
                fuzz_must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, "making / private");
                if (access("/run/systemd/journal", F_OK) == 0)
                        fuzz_must(mount("tmpfs", "/run/systemd/journal", "tmpfs", 0, "mode=0755,size=64k") ==
                                          0,
                                  "hiding the journal");
        }

        fuzz_must(asprintf(&tcti, "swtpm:path=%s/no-tpm.sock", fx.dir) > 0, "asprintf");
        fuzz_must(setenv(TPM2_TCTI_ENV, tcti, 1) == 0, "setenv");
        fuzz_must(asprintf(&state, "%s/state", fx.dir) > 0 && asprintf(&volumes, "%s/volumes", state) > 0,
                  "asprintf");
        fuzz_must(mkdir(state, 0700) == 0 && mkdir(volumes, 0700) == 0, "mkdir");
        fuzz_must(asprintf(&text, "[Paths]\nStateDirectory=%s\n", state) > 0, "asprintf");
        write_text(fx.dir, "sealvol.conf", text);

        /* Registered volumes whose disks are gone, and a real one when we may mount. */
        for (unsigned i = 0; i < VOLUMES_MISSING; i++) {
                _cleanup_free_ char *device = NULL;

                snprintf(uuid, sizeof(uuid), "%08x-%04x-%04x-%04x-%012llx", (unsigned) i + 1, 2u, 3u, 4u,
                         (unsigned long long) i);
                fuzz_must(asprintf(&device, "%s/missing-%u.img\n", fx.dir, i) > 0, "asprintf");
                write_text(volumes, uuid, device);
        }
        if (geteuid() == 0) {
                _cleanup_free_ char *device = NULL, *line = NULL;

                make_real_volume(uuid, &device);
                fuzz_must(asprintf(&line, "%s\n", device) > 0, "asprintf");
                write_text(volumes, uuid, line);
        }

        fuzz_must(asprintf(&config, "%s/sealvol.conf", fx.dir) > 0, "asprintf");
        fuzz_must(manager_new(config, &fx.manager) >= 0, "manager_new");
        fuzz_must(sd_event_new(&fx.manager->event) >= 0, "sd_event_new");
        for (size_t i = 0; i < fx.manager->n_volumes; i++) {
                fx.paths[i] = strdup(fx.manager->volumes[i]->object_path);
                fuzz_must(fx.paths[i] != NULL, "strdup");
        }
        fx.n_paths = fx.manager->n_volumes;

        peer_start(CALLER_ROOT);
        if (geteuid() == 0)
                peer_start(CALLER_NOBODY);
        return 0;
}

/* ---- the calls ---------------------------------------------------------------------------------- */

typedef enum Object {
        OBJECT_MANAGER,
        OBJECT_VOLUME, /* one of the registered volumes, or a path from the input */
} Object;

typedef struct Call {
        Object object;
        const char *interface;
        const char *member;
        const char *signature;
} Call;

#define MANAGER SEALVOL_MANAGER_INTERFACE
#define VOLUME SEALVOL_VOLUME_INTERFACE
#define PROPERTIES "org.freedesktop.DBus.Properties"

static const Call calls[] = {
        { OBJECT_MANAGER, MANAGER, "ListVolumes", "" },
        { OBJECT_MANAGER, MANAGER, "GetVolume", "s" },
        { OBJECT_MANAGER, MANAGER, "ProvisionVolume", "st" },
        { OBJECT_MANAGER, MANAGER, "ProvisionInPlace", "st" },
        { OBJECT_MANAGER, MANAGER, "UnlockAll", "t" },
        { OBJECT_MANAGER, MANAGER, "ResealVMK", "sst" },
        { OBJECT_MANAGER, MANAGER, "SetDRACertificate", "ht" },
        { OBJECT_MANAGER, MANAGER, "ExportVMK", "t" },
        { OBJECT_MANAGER, MANAGER, "EscrowAll", "t" },
        { OBJECT_VOLUME, VOLUME, "Unlock", "t" },
        { OBJECT_VOLUME, VOLUME, "Lock", "" },
        { OBJECT_VOLUME, VOLUME, "UnlockWithRecoveryPassword", "st" },
        { OBJECT_VOLUME, VOLUME, "UnlockWithDRAKey", "ht" },
        { OBJECT_VOLUME, VOLUME, "GetRecoveryPassword", "" },
        { OBJECT_VOLUME, VOLUME, "RotateRecoveryPassword", "" },
        { OBJECT_VOLUME, VOLUME, "EscrowRecoveryPassword", "t" },
        { OBJECT_VOLUME, VOLUME, "Erase", "t" },
        { OBJECT_VOLUME, VOLUME, "PauseEncryption", "" },
        { OBJECT_VOLUME, VOLUME, "ResumeEncryption", "" },
        { OBJECT_MANAGER, PROPERTIES, "Get", "ss" },
        { OBJECT_MANAGER, PROPERTIES, "GetAll", "s" },
        { OBJECT_MANAGER, PROPERTIES, "Set", "ssv" },
        { OBJECT_VOLUME, PROPERTIES, "Get", "ss" },
        { OBJECT_VOLUME, PROPERTIES, "GetAll", "s" },
        { OBJECT_MANAGER, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", "" },
        { OBJECT_MANAGER, "org.freedesktop.DBus.Introspectable", "Introspect", "" },
        { OBJECT_VOLUME, "org.freedesktop.DBus.Introspectable", "Introspect", "" },
};

/* A descriptor of the kind the input asks for: a regular file holding input bytes (what the daemon
 * wants), or a pipe, a socket, a directory, /dev/null, a sealed memfd. */
static int take_fd(Input *in) {
        _cleanup_free_ char *content = NULL;
        int fd = -1, p[2];
        size_t n;

        switch (take_byte(in) % 6) {
        case 0:
        case 1:
                content = take_string(in);
                n = strlen(content);
                fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                fuzz_must(fd >= 0 && (n == 0 || write(fd, content, n) == (ssize_t) n), "a memfd");
                if (take_byte(in) & 1) /* at the start or at the end: the daemon must not care */
                        (void) lseek(fd, 0, SEEK_SET);
                return fd;
        case 2:
                fuzz_must(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2");
                close(p[1]);
                return p[0];
        case 3:
                fuzz_must(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0, "socketpair");
                close(p[1]);
                return p[0];
        case 4:
                return open(fx.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        default:
                return open("/dev/null", O_RDWR | O_CLOEXEC);
        }
}

/* Appends one complete type from *sig with values from the input. < 0 when the input cannot be a
 * D-Bus message: sd-bus refuses invalid UTF-8 and bad object paths on both ends, so no caller can
 * send them. */
static int append_value(sd_bus_message *m, const char **sig, Input *in) {
        char t = *(*sig)++;
        int r;

        switch (t) {
        case 's': {
                _cleanup_free_ char *s = take_string(in);
                return sd_bus_message_append_basic(m, 's', s);
        }
        case 'o': {
                _cleanup_free_ char *s = NULL;
                uint8_t k = take_byte(in);

                if (k < 128 && fx.n_paths > 0)
                        return sd_bus_message_append_basic(m, 'o', fx.paths[k % fx.n_paths]);
                s = take_string(in);
                return sd_bus_message_append_basic(m, 'o', s);
        }
        case 't': {
                /* Mostly 0, the only flags there are; sometimes anything. */
                uint64_t v = take_byte(in) < 200 ? 0 : take_u64(in);
                return sd_bus_message_append_basic(m, 't', &v);
        }
        case 'u': {
                uint32_t v = (uint32_t) take_u64(in);
                return sd_bus_message_append_basic(m, 'u', &v);
        }
        case 'b': {
                int v = take_byte(in) & 1;
                return sd_bus_message_append_basic(m, 'b', &v);
        }
        case 'h': {
                int fd = take_fd(in);

                fuzz_must(fd >= 0, "a descriptor");
                r = sd_bus_message_append_basic(m, 'h', &fd); /* sd-bus keeps a copy */
                close(fd);
                return r;
        }
        case 'v': {
                /* A variant of one basic type the input chooses. */
                static const char types[] = "stubho";
                char inner[2] = { types[take_byte(in) % (sizeof(types) - 1)], '\0' };
                const char *p = inner;

                r = sd_bus_message_open_container(m, 'v', inner);
                if (r < 0)
                        return r;
                r = append_value(m, &p, in);
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        case 'a': {
                /* Only arrays of basic types: "as", "at". */
                char inner[2] = { *(*sig)++, '\0' };
                unsigned n = take_byte(in) % 8;

                r = sd_bus_message_open_container(m, 'a', inner);
                for (unsigned i = 0; r >= 0 && i < n; i++) {
                        const char *p = inner;
                        r = append_value(m, &p, in);
                }
                if (r < 0)
                        return r;
                return sd_bus_message_close_container(m);
        }
        default:
                abort(); /* a signature of ours */
        }
}

/* A signature the input makes up: the wrong arguments for a member, which sd-bus refuses before the
 * handler (or the handler itself, if one ever reads what it was not declared with). */
static void take_signature(Input *in, char *buf, size_t size) {
        static const char *const items[] = { "s", "t", "u", "b", "h", "o", "v", "as", "at" };
        unsigned n = take_byte(in) % 5;

        buf[0] = '\0';
        for (unsigned i = 0; i < n && strlen(buf) + 3 < size; i++)
                strcat(buf, items[take_byte(in) % ELEMENTSOF(items)]);
}

static int on_reply(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        (void) error;
        /* A method return or an error, never a call timing out: the handler must answer. */
        if (sd_bus_message_is_method_error(reply, SD_BUS_ERROR_NO_REPLY) ||
            sd_bus_message_is_method_error(reply, SD_BUS_ERROR_TIMEOUT))
                abort();
        *(bool *) userdata = true;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        _cleanup_free_ char *path_buf = NULL;
        Input in = { data, size };
        const char *path, *sig;
        char raw_sig[16];
        bool done = false;
        uint8_t k;
        int r;

        if (size == 0)
                return 0;
        k = take_byte(&in);
        const Call *c = &calls[(k & 0x7f) % ELEMENTSOF(calls)];
        /* Who calls, and what polkit will say about it. */
        uint8_t who = take_byte(&in);
        const Peer *peer =
                &fx.peers[(who & 1) && fx.peers[CALLER_NOBODY].server ? CALLER_NOBODY : CALLER_ROOT];
        fx.verdict = (Verdict) ((who >> 1) % _VERDICT_MAX);
        fx.asked = 0;
        /* The daemon has one bus; here each caller has its own, and polkit is asked on the caller's. */
        fx.manager->bus = peer->server;

        if (c->object == OBJECT_MANAGER)
                path = SEALVOL_MANAGER_PATH;
        else {
                uint8_t which = take_byte(&in);

                if (which < 0xf0 && fx.n_paths > 0)
                        path = fx.paths[which % fx.n_paths];
                else {
                        /* Under the volume prefix, or not: sd-bus checks the syntax, we the rest. */
                        path_buf = take_string(&in);
                        path = path_buf;
                }
        }
        r = sd_bus_message_new_method_call(peer->client, &m, NULL, path, c->interface, c->member);
        if (r < 0)
                return 0; /* not an object path */

        sig = c->signature;
        if (k & 0x80) { /* the member with arguments of the input's choosing */
                take_signature(&in, raw_sig, sizeof(raw_sig));
                sig = raw_sig;
        }
        while (*sig)
                if (append_value(m, &sig, &in) < 0)
                        return 0;

        r = sd_bus_call_async(peer->client, NULL, m, on_reply, &done, 5 * 1000 * 1000);
        fuzz_must(r >= 0, "sending the call");
        pump(peer, &done);
        if (!done)
                abort(); /* a call left without a reply */
        if (fx.manager->n_polkit_queries != 0)
                abort(); /* a query outliving its call */
        if (peer == &fx.peers[CALLER_ROOT] && fx.asked > 0)
                abort(); /* root is never asked about */
        if (fx.asked > 1)
                abort(); /* one call, one question */
        return 0;
}
