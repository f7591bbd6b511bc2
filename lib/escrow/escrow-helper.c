/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* escrow-helper.c: the batch sealvold hands to sealvol-escrow, and the results it gets back
 * (escrow-helper.h). */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "encoding.h"
#include "escrow-helper.h"
#include "fileio.h"
#include "json-util.h"
#include "log.h"
#include "process-util.h"
#include "secmem.h"

#define HEADER_MAX ((size_t) 256 * 1024)
#define TEXT_MAX ((size_t) 16 * 1024)
#define PASSWORD_MAX ((size_t) 64)
#define DEADLINE_SEC_MAX 86400u
/* What the batch's header nests: the object, its jobs, a job, its [offset, size] (json-c counts one more). */
#define HEADER_DEPTH 6
#define BATCH_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)

void escrow_job_results_done(EscrowJobResult *r, size_t n) {
        for (size_t i = 0; r && i < n; i++) {
                r[i].location = mfree(r[i].location);
                r[i].message = mfree(r[i].message);
        }
}

void escrow_batch_done(EscrowBatch *b) {
        free(b->hook);
        if (b->have_ad)
                ad_config_done(&b->ad);
        free(b->jobs);
        *b = (EscrowBatch) {};
}

static unsigned job_bound_sec(const EscrowHelperConfig *c, const EscrowJob *j) {
        unsigned t;

        if (j->target == ESCROW_TARGET_HOOK) {
                t = c->hook_timeout_sec ?: ESCROW_HOOK_TIMEOUT_SEC_DEFAULT;
                return j->verify ? 2 * t : t;
        }
        /* Name lookup and Kerberos, bind, search, add, read back: each within the network timeout. */
        t = c->ad && c->ad->timeout_sec ? c->ad->timeout_sec : AD_TIMEOUT_SEC_DEFAULT;
        return 4 * t;
}

unsigned escrow_batch_deadline_sec(const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n) {
        uint64_t sum = 0;

        for (size_t i = 0; i < n; i++)
                sum += job_bound_sec(c, &jobs[i]);
        sum = MAX(sum, (uint64_t) 1);
        return (unsigned) MIN(sum, (uint64_t) DEADLINE_SEC_MAX);
}

/* ---- the batch, written --------------------------------------------------------------------------- */

static int add_range(json_object *o, const char *key, size_t offset, size_t size) {
        json_object *a = json_object_new_array();

        if (!a)
                return -ENOMEM;
        if (json_object_array_add(a, json_object_new_int64((int64_t) offset)) < 0 ||
            json_object_array_add(a, json_object_new_int64((int64_t) size)) < 0) {
                json_object_put(a);
                return -ENOMEM;
        }
        return json_add_owned(o, key, a);
}

static int add_optional(json_object *o, const char *key, const char *value) {
        return value ? json_add_string(o, key, value) : 0;
}

static int ad_config_to_json(const AdConfig *ad, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        if (!o)
                return -ENOMEM;
        if (json_add_string(o, "uri", strempty(ad->uri)) < 0 || add_optional(o, "computer_dn", ad->computer_dn) < 0 ||
            add_optional(o, "sam_account_name", ad->sam_account_name) < 0 ||
            add_optional(o, "keytab", ad->keytab) < 0 || add_optional(o, "principal", ad->principal) < 0 ||
            add_optional(o, "bind_dn", ad->bind_dn) < 0 || add_optional(o, "password_file", ad->password_file) < 0 ||
            add_optional(o, "ca_file", ad->ca_file) < 0 ||
            json_add_owned(o, "sasl_nocanon", json_object_new_boolean(ad->sasl_nocanon)) < 0 ||
            json_add_owned(o, "timeout_sec", json_object_new_int64(ad->timeout_sec)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

/* The header, and the size of the blob area it describes. */
static int batch_header(const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n, char **ret, size_t *ret_blobs) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        size_t offset = 0;
        char id[GUID_STRING_MAX];
        int r;

        if (!o || !a) {
                json_object_put(a);
                return -ENOMEM;
        }
        r = json_add_owned(o, "jobs", a);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const EscrowJob *j = &jobs[i];
                json_object *e = json_object_new_object();

                if (!e || json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                if (j->password && strlen(j->password) > PASSWORD_MAX)
                        return -EINVAL;
                if (j->target == ESCROW_TARGET_HOOK) {
                        if (!c->hook || !j->verb || (!streq(j->verb, "store") && !streq(j->verb, "retire")))
                                return -EINVAL;
                        r = json_add_string(e, "target", "hook");
                        if (r >= 0)
                                r = json_add_string(e, "verb", j->verb);
                        if (r >= 0)
                                r = json_add_owned(e, "verify", json_object_new_boolean(j->verify));
                        if (r >= 0)
                                r = add_range(e, "data", offset, j->size);
                        offset += j->size + 1;
                } else if (j->target == ESCROW_TARGET_AD) {
                        if (!c->ad || !j->password)
                                return -EINVAL;
                        r = json_add_string(e, "target", "ad");
                        if (r >= 0)
                                r = json_add_string(e, "volume_guid", guid_format(&j->volume_guid, id));
                        if (r >= 0)
                                r = json_add_string(e, "recovery_guid", guid_format(&j->recovery_guid, id));
                        if (r >= 0)
                                r = json_add_owned(e, "created_usec", json_object_new_int64((int64_t) j->created_usec));
                } else
                        return -EINVAL;
                if (r >= 0 && j->password) {
                        r = add_range(e, "password", offset, strlen(j->password));
                        offset += strlen(j->password) + 1;
                }
                if (r < 0)
                        return r;
        }
        if (json_add_owned(o, "version", json_object_new_int(ESCROW_BATCH_VERSION)) < 0 ||
            json_add_owned(o, "deadline_sec", json_object_new_int64(escrow_batch_deadline_sec(c, jobs, n))) < 0)
                return -ENOMEM;
        if (c->hook) {
                json_object *h = json_object_new_object();

                r = json_add_owned(o, "hook", h);
                if (r >= 0)
                        r = json_add_string(h, "path", c->hook);
                if (r >= 0)
                        r = json_add_owned(h, "timeout_sec",
                                           json_object_new_int64(c->hook_timeout_sec ?: ESCROW_HOOK_TIMEOUT_SEC_DEFAULT));
                if (r < 0)
                        return r;
        }
        if (c->ad) {
                json_object *ad;

                r = ad_config_to_json(c->ad, &ad);
                if (r >= 0)
                        r = json_add_owned(o, "ad", ad);
                if (r < 0)
                        return r;
        }
        *ret = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        *ret_blobs = offset;
        return *ret ? 0 : -ENOMEM;
}

int escrow_batch_build(const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n, int *ret_fd) {
        _cleanup_free_ char *header = NULL;
        _cleanup_close_ int fd = -EBADF;
        static const char nul = '\0';
        size_t blobs, header_size;
        uint8_t le[4];
        int r;

        if (n == 0 || n > ESCROW_BATCH_JOBS_MAX)
                return -EINVAL;
        r = batch_header(c, jobs, n, &header, &blobs);
        if (r < 0)
                return r;
        header_size = strlen(header);
        if (header_size > HEADER_MAX || sizeof(le) + header_size + blobs > ESCROW_BATCH_MAX)
                return -E2BIG;

        fd = memfd_create("sealvol-escrow-batch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (size_t i = 0; i < sizeof(le); i++)
                le[i] = (uint8_t) (header_size >> (8 * i));
        r = write_all(fd, le, sizeof(le));
        if (r >= 0)
                r = write_all(fd, header, header_size);
        /* The blobs in the order batch_header() counted them. */
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (jobs[i].target == ESCROW_TARGET_HOOK) {
                        r = write_all(fd, jobs[i].data, jobs[i].size);
                        if (r >= 0)
                                r = write_all(fd, &nul, 1);
                }
                if (r >= 0 && jobs[i].password) {
                        r = write_all(fd, jobs[i].password, strlen(jobs[i].password));
                        if (r >= 0)
                                r = write_all(fd, &nul, 1);
                }
        }
        if (r < 0)
                return r;
        /* Sealed: what the helper reads is what was written, and stays so while it reads. */
        if (fcntl(fd, F_ADD_SEALS, BATCH_SEALS) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* ---- the batch, read ------------------------------------------------------------------------------ */

/* -EBADMSG unless o is an object whose keys are all of required and some of optional. */
static int check_keys(json_object *o, const char *const *required, const char *const *optional) {
        size_t found = 0, n_required = 0;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        for (; required[n_required]; n_required++)
                ;
        json_object_object_foreach(o, key, value) {
                bool known = false;

                (void) value;
                for (size_t i = 0; required[i] && !known; i++)
                        if (streq(key, required[i])) {
                                known = true;
                                found++;
                        }
                for (size_t i = 0; optional && optional[i] && !known; i++)
                        known = streq(key, optional[i]);
                if (!known)
                        return -EBADMSG;
        }
        return found == n_required ? 0 : -EBADMSG;
}

static int get_uint(json_object *o, const char *key, uint64_t max, uint64_t *ret) {
        json_object *v;
        int64_t i;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        errno = 0;
        i = json_object_get_int64(v);
        if (errno != 0 || i < 0 || (uint64_t) i > max)
                return -EBADMSG;
        *ret = (uint64_t) i;
        return 0;
}

static int get_bool(json_object *o, const char *key, bool *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
                return -EBADMSG;
        *ret = json_object_get_boolean(v);
        return 0;
}

/* A string member that is printable text of at most TEXT_MAX bytes; absent is NULL when optional.
 * A path must be absolute. */
static int get_text(json_object *o, const char *key, bool optional, bool path, char **ret) {
        json_object *v;
        const char *s;

        if (!json_object_object_get_ex(o, key, &v)) {
                *ret = NULL;
                return optional ? 0 : -EBADMSG;
        }
        if (!json_object_is_type(v, json_type_string))
                return -EBADMSG;
        s = json_object_get_string(v);
        if ((size_t) json_object_get_string_len(v) != strlen(s) || strlen(s) > TEXT_MAX || isempty(s) ||
            !utf8_is_printable(s) || (path && s[0] != '/'))
                return -EBADMSG;
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

/* [offset, size] of a NUL-terminated blob of the area (of blobs_size bytes at blobs). */
static int get_blob(json_object *o, const char *key, const uint8_t *blobs, size_t blobs_size, bool text,
                    const void **ret, size_t *ret_size) {
        json_object *a, *v[2];
        int64_t offset, size;

        if (!json_object_object_get_ex(o, key, &a) || !json_object_is_type(a, json_type_array) ||
            json_object_array_length(a) != 2)
                return -EBADMSG;
        v[0] = json_object_array_get_idx(a, 0);
        v[1] = json_object_array_get_idx(a, 1);
        if (!json_object_is_type(v[0], json_type_int) || !json_object_is_type(v[1], json_type_int))
                return -EBADMSG;
        offset = json_object_get_int64(v[0]);
        size = json_object_get_int64(v[1]);
        if (offset < 0 || size < 0 || (uint64_t) offset > blobs_size || (uint64_t) size >= blobs_size - (size_t) offset)
                return -EBADMSG;
        if (blobs[offset + size] != '\0' || (text && memchr(blobs + offset, '\0', (size_t) size)))
                return -EBADMSG;
        *ret = blobs + offset;
        *ret_size = (size_t) size;
        return 0;
}

static int parse_ad(json_object *o, AdConfig *ad) {
        static const char *const required[] = { "uri", "sasl_nocanon", "timeout_sec", NULL };
        static const char *const optional[] = { "computer_dn", "sam_account_name", "keytab", "principal",
                                                "bind_dn", "password_file", "ca_file", NULL };
        uint64_t t;
        int r;

        r = check_keys(o, required, optional);
        if (r >= 0)
                r = get_text(o, "uri", false, false, &ad->uri);
        if (r >= 0)
                r = get_text(o, "computer_dn", true, false, &ad->computer_dn);
        if (r >= 0)
                r = get_text(o, "sam_account_name", true, false, &ad->sam_account_name);
        if (r >= 0)
                r = get_text(o, "keytab", true, true, &ad->keytab);
        if (r >= 0)
                r = get_text(o, "principal", true, false, &ad->principal);
        if (r >= 0)
                r = get_text(o, "bind_dn", true, false, &ad->bind_dn);
        if (r >= 0)
                r = get_text(o, "password_file", true, true, &ad->password_file);
        if (r >= 0)
                r = get_text(o, "ca_file", true, true, &ad->ca_file);
        if (r >= 0)
                r = get_bool(o, "sasl_nocanon", &ad->sasl_nocanon);
        if (r >= 0)
                r = get_uint(o, "timeout_sec", AD_TIMEOUT_SEC_MAX, &t);
        if (r < 0)
                return r;
        ad->timeout_sec = (unsigned) t;
        return 0;
}

static int parse_job(json_object *o, const EscrowBatch *b, const uint8_t *blobs, size_t blobs_size, EscrowJob *j) {
        static const char *const hook_keys[] = { "target", "verb", "verify", "data", NULL };
        static const char *const ad_keys[] = { "target", "volume_guid", "recovery_guid", "created_usec", "password",
                                               NULL };
        static const char *const optional[] = { "password", NULL };
        const char *target = json_get_string(o, "target");
        const void *password = NULL;
        size_t password_size = 0;
        uint64_t created;
        int r;

        *j = (EscrowJob) {};
        if (!target)
                return -EBADMSG;
        if (streq(target, "hook")) {
                const char *verb = json_get_string(o, "verb");

                j->target = ESCROW_TARGET_HOOK;
                r = check_keys(o, hook_keys, optional);
                if (r < 0 || !b->hook || !verb)
                        return -EBADMSG;
                /* The verbs the hook protocol has (docs/escrow.md); "verify" follows a "store". */
                if (streq(verb, "store"))
                        j->verb = "store";
                else if (streq(verb, "retire"))
                        j->verb = "retire";
                else
                        return -EBADMSG;
                r = get_bool(o, "verify", &j->verify);
                if (r >= 0)
                        r = get_blob(o, "data", blobs, blobs_size, false, &j->data, &j->size);
                if (r < 0)
                        return r;
        } else if (streq(target, "ad")) {
                j->target = ESCROW_TARGET_AD;
                r = check_keys(o, ad_keys, NULL);
                if (r < 0 || !b->have_ad || guid_parse(json_get_string(o, "volume_guid"), &j->volume_guid) < 0 ||
                    guid_parse(json_get_string(o, "recovery_guid"), &j->recovery_guid) < 0 ||
                    get_uint(o, "created_usec", INT64_MAX, &created) < 0)
                        return -EBADMSG;
                j->created_usec = created;
        } else
                return -EBADMSG;
        if (json_object_object_get_ex(o, "password", NULL)) {
                r = get_blob(o, "password", blobs, blobs_size, true, &password, &password_size);
                if (r < 0 || password_size == 0 || password_size > PASSWORD_MAX)
                        return -EBADMSG;
                j->password = password;
        }
        return 0;
}

int escrow_batch_parse(const void *buf, size_t size, EscrowBatch *ret) {
        static const char *const required[] = { "version", "deadline_sec", "jobs", NULL };
        static const char *const optional[] = { "hook", "ad", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_(escrow_batch_done) EscrowBatch b = {};
        const uint8_t *p = buf;
        json_object *v, *jobs;
        size_t header_size = 0;
        uint64_t u;
        int r;

        if (size < 4 || size > ESCROW_BATCH_MAX)
                return -EBADMSG;
        for (size_t i = 0; i < 4; i++)
                header_size |= (size_t) p[i] << (8 * i);
        if (header_size == 0 || header_size > HEADER_MAX || header_size > size - 4)
                return -EBADMSG;
        r = json_parse_object_strict((const char *) p + 4, header_size, HEADER_DEPTH, &o);
        if (r < 0)
                return -EBADMSG;
        if (get_uint(o, "version", INT32_MAX, &u) < 0)
                return -EBADMSG;
        if (u != ESCROW_BATCH_VERSION)
                return -EPROTONOSUPPORT;
        if (check_keys(o, required, optional) < 0 || get_uint(o, "deadline_sec", DEADLINE_SEC_MAX, &u) < 0 || u == 0)
                return -EBADMSG;
        b.deadline_sec = (unsigned) u;

        if (json_object_object_get_ex(o, "hook", &v)) {
                static const char *const hook_keys[] = { "path", "timeout_sec", NULL };

                if (check_keys(v, hook_keys, NULL) < 0 || get_text(v, "path", false, true, &b.hook) < 0 ||
                    get_uint(v, "timeout_sec", DEADLINE_SEC_MAX, &u) < 0 || u == 0)
                        return -EBADMSG;
                b.hook_timeout_sec = (unsigned) u;
        }
        if (json_object_object_get_ex(o, "ad", &v)) {
                ad_config_init(&b.ad);
                b.have_ad = true;
                r = parse_ad(v, &b.ad);
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
        }

        if (!json_object_object_get_ex(o, "jobs", &jobs) || !json_object_is_type(jobs, json_type_array))
                return -EBADMSG;
        b.n_jobs = json_object_array_length(jobs);
        if (b.n_jobs == 0 || b.n_jobs > ESCROW_BATCH_JOBS_MAX)
                return -EBADMSG;
        b.jobs = calloc(b.n_jobs, sizeof(EscrowJob));
        if (!b.jobs)
                return -ENOMEM;
        for (size_t i = 0; i < b.n_jobs; i++) {
                r = parse_job(json_object_array_get_idx(jobs, i), &b, p + 4 + header_size, size - 4 - header_size,
                              &b.jobs[i]);
                if (r < 0)
                        return r == -ENOMEM ? r : -EBADMSG;
        }
        /* What a deadline below the jobs' own bounds would do is kill the last of them half way. */
        EscrowHelperConfig c = { .hook = b.hook, .hook_timeout_sec = b.hook_timeout_sec,
                                 .ad = b.have_ad ? &b.ad : NULL };
        if (b.deadline_sec < escrow_batch_deadline_sec(&c, b.jobs, b.n_jobs))
                return -EBADMSG;
        *ret = b;
        b = (EscrowBatch) {};
        return 0;
}

int escrow_batch_receive(int fd, void **ret_buf, EscrowBatch *ret) {
        union {
                struct cmsghdr h;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        char byte = 0;
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        _cleanup_close_ int memfd = -EBADF;
        _cleanup_secure_ void *buf = NULL;
        struct cmsghdr *cmsg;
        struct stat st;
        ssize_t k;
        int seals, r;

        do
                k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return log_debug_errno(errno, "Cannot receive the batch: %m");
        cmsg = CMSG_FIRSTHDR(&mh);
        if (cmsg && cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
            cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
                memcpy(&memfd, CMSG_DATA(cmsg), sizeof(int));
        if (k != 1 || byte != 'B' || memfd < 0 || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)))
                return log_debug_errno(EBADMSG, "The batch did not come as one sealed memfd.");

        /* Sealed against writes and resizing, or the sender could change it under the parser. */
        seals = fcntl(memfd, F_GET_SEALS);
        if (seals < 0 || (seals & BATCH_SEALS) != BATCH_SEALS)
                return log_debug_errno(EBADMSG, "The batch's memfd is not sealed.");
        if (fstat(memfd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size < 4 || (uint64_t) st.st_size > ESCROW_BATCH_MAX)
                return log_debug_errno(EBADMSG, "The batch has an impossible size.");
        buf = secure_alloc((size_t) st.st_size);
        if (!buf)
                return -errno;
        for (size_t done = 0; done < (size_t) st.st_size;) {
                k = pread(memfd, (uint8_t *) buf + done, (size_t) st.st_size - done, (off_t) done);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EBADMSG;
                done += (size_t) k;
        }
        r = escrow_batch_parse(buf, (size_t) st.st_size, ret);
        if (r < 0)
                return log_debug_errno(r, "The batch is malformed: %m");
        *ret_buf = TAKE_PTR(buf);
        return 0;
}

/* ---- results -------------------------------------------------------------------------------------- */

int escrow_results_format(const EscrowJobResult *r, size_t n, char **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *a = json_object_new_array();
        int k;

        if (!o || !a) {
                json_object_put(a);
                return -ENOMEM;
        }
        k = json_add_owned(o, "results", a);
        if (k >= 0)
                k = json_add_owned(o, "version", json_object_new_int(ESCROW_BATCH_VERSION));
        for (size_t i = 0; k >= 0 && i < n; i++) {
                json_object *e = json_object_new_object();

                if (!e || json_object_array_add(a, e) < 0) {
                        json_object_put(e);
                        return -ENOMEM;
                }
                k = json_add_owned(e, "error", json_object_new_int(r[i].error < 0 ? r[i].error : 0));
                if (k >= 0 && r[i].error >= 0) {
                        k = add_optional(e, "location", r[i].location);
                        if (k >= 0)
                                k = json_add_owned(e, "verified", json_object_new_boolean(r[i].verified));
                } else if (k >= 0)
                        k = add_optional(e, "message", r[i].message);
        }
        if (k < 0)
                return k;
        *ret = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return *ret ? 0 : -ENOMEM;
}

static int parse_result(json_object *o, EscrowJobResult *ret) {
        static const char *const done_keys[] = { "error", "verified", NULL };
        static const char *const done_optional[] = { "location", NULL };
        static const char *const failed_keys[] = { "error", NULL };
        static const char *const failed_optional[] = { "message", NULL };
        json_object *v;
        int64_t e;
        int r;

        if (!json_object_object_get_ex(o, "error", &v) || !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        e = json_object_get_int64(v);
        if (e > 0 || e < -4095)
                return -EBADMSG;
        ret->error = (int) e;
        if (e == 0) {
                r = check_keys(o, done_keys, done_optional);
                if (r >= 0)
                        r = get_bool(o, "verified", &ret->verified);
                if (r >= 0)
                        r = get_text(o, "location", true, false, &ret->location);
        } else {
                r = check_keys(o, failed_keys, failed_optional);
                if (r >= 0)
                        r = get_text(o, "message", true, false, &ret->message);
        }
        return r;
}

int escrow_results_parse(const char *text, size_t size, EscrowJobResult *ret, size_t n) {
        static const char *const keys[] = { "version", "results", NULL };
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ EscrowJobResult *results = NULL;
        json_object *a;
        uint64_t version;
        int r;

        if (size > ESCROW_RESULTS_MAX || json_parse_object_strict(text, size, HEADER_DEPTH, &o) < 0 ||
            check_keys(o, keys, NULL) < 0 || get_uint(o, "version", INT32_MAX, &version) < 0)
                return -EBADMSG;
        if (version != ESCROW_BATCH_VERSION)
                return -EPROTONOSUPPORT;
        if (!json_object_object_get_ex(o, "results", &a) || !json_object_is_type(a, json_type_array) ||
            json_object_array_length(a) != n)
                return -EBADMSG;
        results = calloc(MAX(n, (size_t) 1), sizeof(EscrowJobResult));
        if (!results)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = parse_result(json_object_array_get_idx(a, i), &results[i]);
                if (r < 0) {
                        escrow_job_results_done(results, n);
                        return r == -ENOMEM ? r : -EBADMSG;
                }
        }
        memcpy(ret, results, n * sizeof(EscrowJobResult));
        return 0;
}

/* ---- sealvold's side ------------------------------------------------------------------------------ */

static uint64_t now_msec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static int set_message(char **ret, const char *format, ...) _printf_(2, 3);
static int set_message(char **ret, const char *format, ...) {
        va_list ap;
        int k;

        if (!ret)
                return 0;
        va_start(ap, format);
        k = vasprintf(ret, format, ap);
        va_end(ap);
        if (k < 0)
                *ret = NULL;
        return 0;
}

static int connect_helper(const char *path, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int send_batch(int fd, int memfd) {
        union {
                struct cmsghdr h;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control = {};
        char byte = 'B';
        struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control,
                             .msg_controllen = sizeof(control) };
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&mh);
        ssize_t k;

        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
        do
                k = sendmsg(fd, &mh, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return -errno;
        /* The batch is all there is: the helper sees the end of its input. */
        return shutdown(fd, SHUT_WR) < 0 ? -errno : 0;
}

/* Reads fd to its end within deadline (CLOCK_MONOTONIC, ms); -ECANCELED once cancel_fd (>= 0) is
 * readable. */
static int read_results(int fd, int cancel_fd, uint64_t deadline, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = malloc(ESCROW_RESULTS_MAX + 1);
        size_t n = 0;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = cancel_fd, .events = POLLIN } };
                uint64_t now = now_msec();
                ssize_t k;
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll(p, cancel_fd >= 0 ? 2 : 1, (int) MIN(deadline - now, (uint64_t) INT32_MAX));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                if (cancel_fd >= 0 && (p[1].revents & POLLIN))
                        return -ECANCELED;
                if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                k = read(fd, buf + n, ESCROW_RESULTS_MAX + 1 - n);
                if (k < 0 && IN_SET(errno, EINTR, EAGAIN))
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > ESCROW_RESULTS_MAX)
                        return -EFBIG;
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

int escrow_helper_run(const EscrowHelper *h, const EscrowHelperConfig *c, const EscrowJob *jobs, size_t n,
                      EscrowJobResult *ret, char **ret_error) {
        /* Kerberos and LDAP read these where the administrator (or a test) points them elsewhere. */
        static const char *const pass_env[] = { "KRB5_CONFIG", "SEALVOL_LOG_LEVEL", NULL };
        _cleanup_close_ int memfd = -EBADF, fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        bool own = !h->socket_path || access(h->socket_path, F_OK) < 0;
        unsigned bound;
        size_t size = 0;
        pid_t pid = 0;
        int r, status = 0;

        r = escrow_batch_build(c, jobs, n, &memfd);
        if (r < 0) {
                set_message(ret_error, "cannot build the batch for the escrow helper: %s", strerror(-r));
                return r;
        }
        bound = escrow_batch_deadline_sec(c, jobs, n) + ESCROW_HELPER_GRACE_SEC;

        if (!own) {
                r = connect_helper(h->socket_path, &fd);
                if (r < 0) {
                        set_message(ret_error, "cannot reach the escrow helper at %s: %s", h->socket_path,
                                    strerror(-r));
                        return r;
                }
        } else {
                int pair[2];
                char *const argv[] = { (char *) h->helper_path, NULL };

                if (!h->helper_path)
                        return -EINVAL;
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                        return -errno;
                r = spawn_on_fd(argv, pair[1], pass_env, &pid);
                safe_close(pair[1]);
                fd = pair[0];
                if (r < 0) {
                        set_message(ret_error, "cannot run the escrow helper %s: %s", h->helper_path, strerror(-r));
                        return r;
                }
        }

        r = send_batch(fd, memfd);
        if (r >= 0)
                r = read_results(fd, h->cancel_fd ? *h->cancel_fd : -EBADF, now_msec() + (uint64_t) bound * 1000u,
                                 &text, &size);
        fd = safe_close(fd);
        if (pid > 0) {
                if (IN_SET(r, -ETIMEDOUT, -ECANCELED))
                        (void) kill(-pid, SIGKILL);
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                /* Whatever it left in its process group goes with it. */
                (void) kill(-pid, SIGKILL);
        }
        /* posix_spawn() reports a failed exec where it can; where it cannot (under valgrind, or a C
         * library without CLONE_VFORK) the child exits 127 before it reads anything. */
        if (pid > 0 && size == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
                set_message(ret_error, "cannot run the escrow helper %s: it could not be executed (exit status 127)",
                            h->helper_path);
                return -ENOEXEC;
        }
        if (r == -ECANCELED) {
                set_message(ret_error, "abandoned: sealvold is stopping");
                return r;
        }
        if (r == -ETIMEDOUT) {
                set_message(ret_error, "the escrow helper did not finish in %u s%s", bound, pid > 0 ? ", killed" : "");
                return r;
        }
        if (r < 0) {
                set_message(ret_error, "cannot talk to the escrow helper: %s", strerror(-r));
                return r;
        }
        if (size == 0) {
                if (pid > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                        set_message(ret_error, "the escrow helper failed (%s %d) without an answer",
                                    WIFEXITED(status) ? "exit status" : "signal",
                                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                else
                        set_message(ret_error, "the escrow helper ended without an answer (its log says why)");
                return -EREMOTEIO;
        }
        r = escrow_results_parse(text, size, ret, n);
        if (r < 0) {
                set_message(ret_error, "the escrow helper answered with malformed results");
                return -EBADMSG;
        }
        return 0;
}
