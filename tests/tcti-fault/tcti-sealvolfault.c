/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tcti-sealvolfault.c: a TCTI for tests only, that wraps a real one and breaks the chosen command.
 *
 * tss2-tctildr loads it like any TCTI, by name ("sealvolfault", when it is on the loader's path) or
 * by file (its full path), so the code under test picks it up through SEALVOL_TCTI with no switch
 * of its own:
 *
 *     SEALVOL_TCTI=/path/libtss2-tcti-sealvolfault.so:cc=Unseal,rc=0x922,times=2;swtpm:path=/tmp/t.sock
 *
 * The configuration is OPTIONS;CHILD: CHILD is the TCTI string of the real TPM (anything
 * Tss2_TctiLdr_Initialize() takes), OPTIONS a comma-separated list:
 *
 *   cc=NAME|0xCODE  only commands with this command code are candidates (default: every command)
 *   nth=N           the N-th candidate is the first to fail (default 1)
 *   times=N         that many candidates in a row fail (default 1; 0: every one from the N-th on)
 *   when=after      the TPM runs the command and its answer is lost or replaced (default "before":
 *                   the command never reaches the TPM)
 *   and one fault:
 *   rc=0xRC         the TPM answers with this response code (TPM 2.0 Part 2, 6.6)
 *   io              the transport fails (TSS2_TCTI_RC_IO_ERROR), as a dropped connection or a driver
 *                   error does
 *   close           the connection to the TPM is closed for good: this and every later command fail
 *                   with TSS2_TCTI_RC_NO_CONNECTION
 *   hang=MS         no answer (the TPM never sees the command, whatever "when" says): waits for the caller's timeout, or MS milliseconds when the caller
 *                   blocks (ESAPI's synchronous calls do), then fails as a driver that gave up does
 *                   (TSS2_TCTI_RC_IO_ERROR)
 *   kill=PID        sends SIGKILL to PID (the swtpm: a power cut) right after the command reached it,
 *                   or (when=after) after it answered, with the answer lost
 *   flip=N          the TPM runs the command and one bit of byte N of its answer (0: the first byte of
 *                   the header) is inverted on the way back, as an interposer changing the answer
 *                   would; always "after", and nothing happens to an answer N bytes long or shorter
 *   log=PATH        appends one line per command to PATH: "<n> 0x<cc> <pass|fault>"
 *
 * With no fault option every command passes. Nothing here is linked into sealvol.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>

#define FAULT_TCTI_MAGIC UINT64_C(0x5345414c564f4c46) /* "SEALVOLF" */
#define FAULT_CONF_MAX 4096u
#define FAULT_RESPONSE_MAX 4096u /* TPM2_MAX_RESPONSE_SIZE of the reference implementation */
#define FAULT_HANG_MS_DEFAULT 1000u
#define FAULT_HEADER_SIZE 10u

typedef enum FaultAction {
        FAULT_PASS,
        FAULT_RC,
        FAULT_IO,
        FAULT_CLOSE,
        FAULT_HANG,
        FAULT_KILL,
        FAULT_FLIP,
} FaultAction;

typedef struct FaultTcti {
        TSS2_TCTI_CONTEXT_COMMON_V2 common;
        TSS2_TCTI_CONTEXT *child;
        /* configuration */
        bool any_cc;
        uint32_t cc;
        unsigned nth, times;
        bool after;
        FaultAction action;
        uint32_t rc;
        unsigned hang_ms;
        pid_t kill_pid;
        size_t flip_offset;
        char log_path[1024];
        /* state */
        unsigned commands, candidates;
        bool closed;
        bool faulted;       /* the command in flight is the faulty one */
        uint8_t response[FAULT_RESPONSE_MAX];
        size_t response_size;
        bool have_response; /* response holds the answer to the command in flight */
} FaultTcti;

static const struct {
        const char *name;
        uint32_t code;
} command_codes[] = {
        { "EvictControl", TPM2_CC_EvictControl },   { "CreatePrimary", TPM2_CC_CreatePrimary },
        { "Shutdown", TPM2_CC_Shutdown },           { "Create", TPM2_CC_Create },
        { "Load", TPM2_CC_Load },                   { "Unseal", TPM2_CC_Unseal },
        { "FlushContext", TPM2_CC_FlushContext },   { "ReadPublic", TPM2_CC_ReadPublic },
        { "StartAuthSession", TPM2_CC_StartAuthSession }, { "GetCapability", TPM2_CC_GetCapability },
        { "GetRandom", TPM2_CC_GetRandom },         { "PCR_Read", TPM2_CC_PCR_Read },
        { "PolicyPCR", TPM2_CC_PolicyPCR },         { "PolicyGetDigest", TPM2_CC_PolicyGetDigest },
        { "PCR_Event", TPM2_CC_PCR_Event },
};

static FaultTcti *fault_cast(TSS2_TCTI_CONTEXT *ctx) {
        FaultTcti *t = (FaultTcti *) ctx;

        return t && t->common.v1.magic == FAULT_TCTI_MAGIC ? t : NULL;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *ret) {
        char *end;
        unsigned long v;

        if (!s || *s == '\0' || *s == '-')
                return false;
        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno != 0 || *end != '\0' || v > max)
                return false;
        *ret = v;
        return true;
}

static bool parse_cc(const char *s, uint32_t *ret) {
        unsigned long v;

        for (size_t i = 0; i < sizeof(command_codes) / sizeof(command_codes[0]); i++)
                if (strcmp(s, command_codes[i].name) == 0) {
                        *ret = command_codes[i].code;
                        return true;
                }
        if (!parse_uint(s, UINT32_MAX, &v))
                return false;
        *ret = (uint32_t) v;
        return true;
}

/* Parses OPTIONS into t and returns where CHILD starts, or NULL if the configuration is invalid. */
static const char *parse_conf(const char *conf, FaultTcti *t) {
        char options[FAULT_CONF_MAX];
        const char *child;
        char *save = NULL;
        unsigned long v;

        *t = (FaultTcti) { .any_cc = true, .nth = 1, .times = 1, .hang_ms = FAULT_HANG_MS_DEFAULT };
        if (!conf)
                return NULL;
        child = strchr(conf, ';');
        if (!child || (size_t) (child - conf) >= sizeof(options) || child[1] == '\0')
                return NULL;
        memcpy(options, conf, (size_t) (child - conf));
        options[child - conf] = '\0';

        for (char *o = strtok_r(options, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
                char *value = strchr(o, '=');

                if (value)
                        *value++ = '\0';
                if (strcmp(o, "cc") == 0 && value) {
                        if (!parse_cc(value, &t->cc))
                                return NULL;
                        t->any_cc = false;
                } else if (strcmp(o, "nth") == 0 && parse_uint(value, 1000000, &v) && v > 0)
                        t->nth = (unsigned) v;
                else if (strcmp(o, "times") == 0 && parse_uint(value, 1000000, &v))
                        t->times = (unsigned) v;
                else if (strcmp(o, "when") == 0 && value && (strcmp(value, "after") == 0 || strcmp(value, "before") == 0))
                        t->after = strcmp(value, "after") == 0;
                else if (strcmp(o, "rc") == 0 && parse_uint(value, UINT32_MAX, &v)) {
                        t->action = FAULT_RC;
                        t->rc = (uint32_t) v;
                } else if (strcmp(o, "io") == 0 && !value)
                        t->action = FAULT_IO;
                else if (strcmp(o, "close") == 0 && !value)
                        t->action = FAULT_CLOSE;
                else if (strcmp(o, "hang") == 0 && parse_uint(value, 600000, &v)) {
                        t->action = FAULT_HANG;
                        t->hang_ms = (unsigned) v;
                } else if (strcmp(o, "kill") == 0 && parse_uint(value, INT32_MAX, &v) && v > 1) {
                        t->action = FAULT_KILL;
                        t->kill_pid = (pid_t) v;
                } else if (strcmp(o, "flip") == 0 && parse_uint(value, FAULT_RESPONSE_MAX, &v)) {
                        t->action = FAULT_FLIP;
                        t->flip_offset = (size_t) v;
                } else if (strcmp(o, "log") == 0 && value && *value == '/' && strlen(value) < sizeof(t->log_path))
                        strcpy(t->log_path, value);
                else
                        return NULL;
        }
        /* There is no answer to change before the TPM gave one. */
        if (t->action == FAULT_FLIP)
                t->after = true;
        return child + 1;
}

static void log_command(FaultTcti *t, uint32_t cc, bool fault) {
        char line[64];
        int fd, n;

        if (t->log_path[0] == '\0')
                return;
        fd = open(t->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        n = snprintf(line, sizeof(line), "%u 0x%03x %s\n", t->commands, (unsigned) cc, fault ? "fault" : "pass");
        if (n > 0)
                (void) !write(fd, line, (size_t) n);
        (void) close(fd);
}

static void put_be32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) (v >> 24);
        p[1] = (uint8_t) (v >> 16);
        p[2] = (uint8_t) (v >> 8);
        p[3] = (uint8_t) v;
}

/* A response that carries only a response code: tag TPM_ST_NO_SESSIONS, size 10, the code. */
static void set_rc_response(FaultTcti *t) {
        t->response[0] = (uint8_t) (TPM2_ST_NO_SESSIONS >> 8);
        t->response[1] = (uint8_t) TPM2_ST_NO_SESSIONS;
        put_be32(t->response + 2, FAULT_HEADER_SIZE);
        put_be32(t->response + 6, t->rc);
        t->response_size = FAULT_HEADER_SIZE;
        t->have_response = true;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void close_child(FaultTcti *t) {
        if (t->child)
                Tss2_TctiLdr_Finalize(&t->child);
        t->child = NULL;
        t->closed = true;
}

/* The fault before the TPM sees the command (or, for when=after, instead of its answer). */
static TSS2_RC inject(FaultTcti *t) {
        switch (t->action) {
        case FAULT_RC:
                set_rc_response(t);
                return TSS2_RC_SUCCESS;
        case FAULT_IO:
                return TSS2_TCTI_RC_IO_ERROR;
        case FAULT_CLOSE:
                close_child(t);
                return TSS2_TCTI_RC_NO_CONNECTION;
        case FAULT_HANG:
                /* Answered in receive(), after the wait. */
                return TSS2_RC_SUCCESS;
        case FAULT_KILL:
                /* The answer, if the TPM got as far, dies with it. */
                (void) kill(t->kill_pid, SIGKILL);
                return t->after ? TSS2_TCTI_RC_IO_ERROR : TSS2_RC_SUCCESS;
        case FAULT_FLIP:
                if (t->have_response && t->response_size > t->flip_offset)
                        t->response[t->flip_offset] ^= 0x01;
                return TSS2_RC_SUCCESS;
        case FAULT_PASS:
        default:
                return TSS2_RC_SUCCESS;
        }
}

static TSS2_RC fault_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *command) {
        FaultTcti *t = fault_cast(ctx);
        uint32_t cc;
        bool candidate;
        TSS2_RC rc;

        if (!t || !command)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        if (size < FAULT_HEADER_SIZE)
                return TSS2_TCTI_RC_BAD_VALUE;
        if (t->closed)
                return TSS2_TCTI_RC_NO_CONNECTION;

        cc = (uint32_t) command[6] << 24 | (uint32_t) command[7] << 16 | (uint32_t) command[8] << 8 | command[9];
        t->commands++;
        candidate = t->any_cc || cc == t->cc;
        if (candidate)
                t->candidates++;
        t->faulted = candidate && t->action != FAULT_PASS && t->candidates >= t->nth &&
                     (t->times == 0 || t->candidates < t->nth + t->times);
        t->have_response = false;
        log_command(t, cc, t->faulted);

        if (t->faulted && (!t->after || t->action == FAULT_HANG) && t->action != FAULT_KILL)
                return inject(t); /* the TPM never sees the command */

        rc = Tss2_Tcti_Transmit(t->child, size, command);
        /* Killed with the command in its hands: whether it got to run it is the race a power cut is. */
        if (rc == TSS2_RC_SUCCESS && t->faulted && !t->after)
                (void) inject(t);
        return rc;
}

static TSS2_RC fault_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *response, int32_t timeout) {
        FaultTcti *t = fault_cast(ctx);
        TSS2_RC rc;

        if (!t || !size)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        if (t->closed)
                return TSS2_TCTI_RC_NO_CONNECTION;

        if (t->faulted && t->action == FAULT_HANG && !t->have_response) {
                /* A caller with a timeout gets TRY_AGAIN after it, as from any TCTI; one that blocks
                 * gets the driver's give-up after hang_ms. */
                if (timeout != TSS2_TCTI_TIMEOUT_BLOCK && (unsigned) timeout < t->hang_ms) {
                        sleep_ms((unsigned) timeout);
                        return TSS2_TCTI_RC_TRY_AGAIN;
                }
                sleep_ms(t->hang_ms);
                t->faulted = false;
                return TSS2_TCTI_RC_IO_ERROR;
        }

        if (!t->have_response) {
                size_t n = sizeof(t->response);

                /* The whole answer at once, so it can be replaced and handed out in parts. */
                rc = Tss2_Tcti_Receive(t->child, &n, t->response, timeout);
                if (rc != TSS2_RC_SUCCESS)
                        return rc;
                t->response_size = n;
                t->have_response = true;
                if (t->faulted && t->after) {
                        rc = inject(t);
                        if (rc != TSS2_RC_SUCCESS) {
                                t->have_response = false;
                                return rc;
                        }
                }
        }

        if (!response) {
                *size = t->response_size;
                return TSS2_RC_SUCCESS;
        }
        if (*size < t->response_size)
                return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
        memcpy(response, t->response, t->response_size);
        *size = t->response_size;
        t->have_response = false;
        t->faulted = false;
        return TSS2_RC_SUCCESS;
}

static void fault_finalize(TSS2_TCTI_CONTEXT *ctx) {
        FaultTcti *t = fault_cast(ctx);

        if (!t)
                return;
        close_child(t);
        t->common.v1.magic = 0;
}

static TSS2_RC fault_cancel(TSS2_TCTI_CONTEXT *ctx) {
        FaultTcti *t = fault_cast(ctx);

        if (!t)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        return t->closed ? TSS2_TCTI_RC_NO_CONNECTION : Tss2_Tcti_Cancel(t->child);
}

static TSS2_RC fault_get_poll_handles(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *handles, size_t *n) {
        FaultTcti *t = fault_cast(ctx);

        if (!t)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        return t->closed ? TSS2_TCTI_RC_NO_CONNECTION : Tss2_Tcti_GetPollHandles(t->child, handles, n);
}

static TSS2_RC fault_set_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality) {
        FaultTcti *t = fault_cast(ctx);

        if (!t)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        return t->closed ? TSS2_TCTI_RC_NO_CONNECTION : Tss2_Tcti_SetLocality(t->child, locality);
}

static TSS2_RC fault_make_sticky(TSS2_TCTI_CONTEXT *ctx, TPM2_HANDLE *handle, uint8_t sticky) {
        FaultTcti *t = fault_cast(ctx);

        if (!t)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        return t->closed ? TSS2_TCTI_RC_NO_CONNECTION : Tss2_Tcti_MakeSticky(t->child, handle, sticky);
}

static TSS2_RC fault_init(TSS2_TCTI_CONTEXT *ctx, size_t *size, const char *conf) {
        FaultTcti parsed;
        const char *child;
        FaultTcti *t;
        TSS2_RC rc;

        if (!size)
                return TSS2_TCTI_RC_BAD_REFERENCE;
        child = parse_conf(conf, &parsed);
        if (!child)
                return TSS2_TCTI_RC_BAD_VALUE;
        /* The loader asks for the size first, then calls again with that much zeroed memory. */
        if (!ctx) {
                *size = sizeof(FaultTcti);
                return TSS2_RC_SUCCESS;
        }
        if (*size < sizeof(FaultTcti))
                return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;

        t = (FaultTcti *) ctx;
        *t = parsed;
        rc = Tss2_TctiLdr_Initialize(child, &t->child);
        if (rc != TSS2_RC_SUCCESS)
                return rc;
        t->common.v1.magic = FAULT_TCTI_MAGIC;
        t->common.v1.version = 2;
        t->common.v1.transmit = fault_transmit;
        t->common.v1.receive = fault_receive;
        t->common.v1.finalize = fault_finalize;
        t->common.v1.cancel = fault_cancel;
        t->common.v1.getPollHandles = fault_get_poll_handles;
        t->common.v1.setLocality = fault_set_locality;
        t->common.makeSticky = fault_make_sticky;
        return TSS2_RC_SUCCESS;
}

static const TSS2_TCTI_INFO fault_info = {
        .version = 2,
        .name = "sealvolfault",
        .description = "sealvol test TCTI: wraps a TCTI and fails chosen commands",
        .config_help = "cc=NAME|0xCODE,nth=N,times=N,when=before|after,rc=0xRC|io|close|hang=MS|kill=PID|flip=N,"
                       "log=PATH;CHILD-TCTI",
        .init = fault_init,
};

const TSS2_TCTI_INFO *Tss2_Tcti_Info(void);
const TSS2_TCTI_INFO *Tss2_Tcti_Info(void) {
        return &fault_info;
}
