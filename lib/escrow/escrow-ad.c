/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * escrow-ad.c: recovery passwords escrowed to Active Directory as msFVE-RecoveryInformation objects
 * (see escrow-ad.h and docs/escrow-ad.md).
 *
 * One call is one LDAP session: connect (StartTLS for a simple bind on ldap://), read the rootDSE
 * anonymously (which also tells an unreachable DC from a refused login early), bind, find the
 * computer object, list its children by DN, add unless the Key ID is there, read back.
 *
 * The machine binds with Kerberos from its keytab, as Windows and sssd do: the keytab is used
 * in-process, into a private MEMORY ccache that this thread's GSSAPI is pointed at with
 * gss_krb5_ccache_name(), so nothing touches the environment or the disk. SASL sealing is required
 * (Samba refuses GSSAPI over TLS; Windows signs or seals on 389 too).
 */

#include <ctype.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>
#include <ldap.h>
#include <sasl/sasl.h>

#include "escrow-ad.h"
#include "log.h"
#include "recovery.h"
#include "secmem.h"

#define AD_DEFAULT_KEYTAB "FILE:/etc/krb5.keytab"
#define AD_CLASS "msFVE-RecoveryInformation"
#define AD_ATTR_PASSWORD "msFVE-RecoveryPassword"
#define AD_ATTR_RECOVERY_GUID "msFVE-RecoveryGuid"
#define AD_ATTR_VOLUME_GUID "msFVE-VolumeGuid"
#define AD_ATTR_KEY_PACKAGE "msFVE-KeyPackage"
/* GSSAPI's SSF with a confidentiality layer is 56 or more; below that nothing is sealed. */
#define AD_SASL_SECPROPS "minssf=56"
#define AD_SASL_SSF_MIN 56
/* "{" + GUID + "}" at the end of the cn. */
#define AD_CN_GUID_LEN (GUID_STRING_MAX - 1 + 2)

static void ldap_unbindp(LDAP **ld) {
        if (*ld)
                (void) ldap_unbind_ext_s(*ld, NULL, NULL);
}
static void ldap_msgfreep(LDAPMessage **m) {
        if (*m)
                (void) ldap_msgfree(*m);
}
static void ldap_memfreep(char **p) {
        if (*p)
                ldap_memfree(*p);
}
static void ldap_dnfreep(LDAPDN *dn) {
        if (*dn)
                ldap_dnfree(*dn);
}
static void ldap_value_free_lenp(struct berval ***v) {
        if (*v)
                ldap_value_free_len(*v);
}

/* Values of a confidential attribute that libldap decoded into its own heap: wiped before freeing. */
static void ldap_value_erase_free_lenp(struct berval ***v) {
        if (!*v)
                return;
        for (struct berval **i = *v; *i; i++)
                if ((*i)->bv_val)
                        explicit_bzero((*i)->bv_val, (*i)->bv_len);
        ldap_value_free_len(*v);
}

typedef struct AdChild {
        char *dn;
        Guid guid;
} AdChild;

static void ad_children_free(AdChild *c, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(c[i].dn);
        free(c);
}

typedef struct AdSession {
        const AdConfig *config;
        const char *secret;     /* never in an error message: scrubbed if a server echoes it */
        LDAP *ld;
        char *identity;         /* who we bound as, for messages */
        char *default_nc;
        char *schema_nc;
        char *computer_dn;
        char *error;            /* the first failure, one line */
        int timeout_ms;
        bool timed_out;         /* a read or write on the socket waited timeout_ms in vain */
        struct ldap_conncb conncb;
} AdSession;

static void ad_session_done(AdSession *s) {
        ldap_unbindp(&s->ld);
        free(s->identity);
        free(s->default_nc);
        free(s->schema_nc);
        free(s->computer_dn);
        free(s->error);
        *s = (AdSession) {};
}

const char *ad_verify_to_string(AdVerify v) {
        switch (v) {
        case AD_VERIFY_NONE:
                return "none";
        case AD_VERIFY_OBJECT:
                return "object";
        case AD_VERIFY_FULL:
                return "full";
        }
        return NULL;
}

bool ad_recovery_password_is_canonical(const char *s) {
        if (!s || strnlen(s, RECOVERY_PASSWORD_LEN + 1) != RECOVERY_PASSWORD_LEN)
                return false;

        for (size_t b = 0; b < RECOVERY_PASSWORD_BLOCKS; b++) {
                const char *block = s + b * (RECOVERY_BLOCK_DIGITS + 1);
                unsigned v = 0;

                for (size_t i = 0; i < RECOVERY_BLOCK_DIGITS; i++) {
                        if (block[i] < '0' || block[i] > '9')
                                return false;
                        v = v * 10 + (unsigned) (block[i] - '0');
                }
                if (b + 1 < RECOVERY_PASSWORD_BLOCKS && block[RECOVERY_BLOCK_DIGITS] != '-')
                        return false;
                if (v % 11 != 0 || v > RECOVERY_BLOCK_MAX)
                        return false;
        }
        return true;
}

int ad_recovery_cn(uint64_t created_usec, const Guid *recovery_guid, char **ret) {
        char guid[GUID_STRING_MAX], *cn;
        time_t t;
        struct tm tm;
        long off;

        if (!recovery_guid || !ret || created_usec == 0)
                return -EINVAL;

        t = (time_t) (created_usec / 1000000);
        if ((uint64_t) t != created_usec / 1000000 || !localtime_r(&t, &tm))
                return -EINVAL;
        if (tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
                return -EINVAL;

        /* Windows writes the offset as +hh:mm (-08:00, +00:00 in UTC), as ISO 8601 extended form. */
        off = tm.tm_gmtoff;
        if (asprintf(&cn, "%04d-%02d-%02dT%02d:%02d:%02d%c%02ld:%02ld{%s}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', labs(off) / 3600,
                     labs(off) % 3600 / 60, guid_format(recovery_guid, guid)) < 0)
                return -ENOMEM;

        *ret = cn;
        return 0;
}

/* The Key ID at the end of a cn, "...{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}", in either case. */
static int ad_cn_guid(const char *cn, size_t len, Guid *ret) {
        char buf[AD_CN_GUID_LEN + 1];

        if (len < AD_CN_GUID_LEN)
                return -EINVAL;
        memcpy(buf, cn + len - AD_CN_GUID_LEN, AD_CN_GUID_LEN);
        buf[AD_CN_GUID_LEN] = '\0';
        if (buf[0] != '{' || buf[AD_CN_GUID_LEN - 1] != '}' || strlen(buf) != AD_CN_GUID_LEN)
                return -EINVAL;
        return guid_parse(buf, ret);
}

/* The Key ID in the first RDN of dn, if that RDN is a single "cn" ending in one. */
static int ad_dn_guid(const char *dn, Guid *ret) {
        _cleanup_(ldap_dnfreep) LDAPDN ldn = NULL;
        LDAPAVA *ava;

        if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !ldn || !ldn[0])
                return -EINVAL;
        ava = ldn[0][0];
        if (!ava || ldn[0][1] || (ava->la_flags & LDAP_AVA_BINARY) ||
            ava->la_attr.bv_len != 2 || strncasecmp(ava->la_attr.bv_val, "cn", 2) != 0)
                return -EINVAL;
        return ad_cn_guid(ava->la_value.bv_val, ava->la_value.bv_len, ret);
}

/* RFC 4514 2.4: an attribute value in a DN string. Samba and AD write the UTC offset's "+" as "\\+",
 * and so do we (a "\\2B" would be as valid, but not the same string). */
static int ad_rdn_value_escape(const char *v, char **ret) {
        size_t n = strlen(v);
        char *e, *o;

        e = malloc(n * 3 + 1);
        if (!e)
                return -ENOMEM;
        o = e;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char) v[i];

                if (ch < ' ' || ch == 0x7f)
                        o += sprintf(o, "\\%02X", ch);
                else if (strchr("\"+,;<>\\=", ch) || (i == 0 && (ch == '#' || ch == ' ')) ||
                         (i == n - 1 && ch == ' ')) {
                        *o++ = '\\';
                        *o++ = (char) ch;
                } else
                        *o++ = (char) ch;
        }
        *o = '\0';
        *ret = e;
        return 0;
}

/* Whether dn parses and its first RDN is the single value "cn=value". */
static int ad_dn_first_value_is(const char *dn, const char *value) {
        _cleanup_(ldap_dnfreep) LDAPDN ldn = NULL;
        LDAPAVA *ava;

        if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS || !ldn || !ldn[0] || !ldn[1])
                return -EINVAL;
        ava = ldn[0][0];
        return ava && !ldn[0][1] && !(ava->la_flags & LDAP_AVA_BINARY) && ava->la_attr.bv_len == 2 &&
               strncasecmp(ava->la_attr.bv_val, "cn", 2) == 0 && ava->la_value.bv_len == strlen(value) &&
               memcmp(ava->la_value.bv_val, value, ava->la_value.bv_len) == 0;
}

/* Two DNs the same by libldap's normalisation (escaping, spacing), attribute types and values compared
 * without case, as AD compares them. */
static bool ad_dn_equal(const char *a, const char *b) {
        _cleanup_(ldap_memfreep) char *na = NULL, *nb = NULL;

        if (ldap_dn_normalize(a, LDAP_DN_FORMAT_LDAPV3, &na, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS ||
            ldap_dn_normalize(b, LDAP_DN_FORMAT_LDAPV3, &nb, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
                return false;
        return strcasecmp(na, nb) == 0;
}

/* Records the first failure as one line: control characters become spaces, and the secret, should a
 * server echo it, is masked. Logs at debug level and returns r. */
_printf_(3, 4) static int ad_fail(AdSession *s, int r, const char *format, ...) {
        char *m = NULL;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&m, format, ap);
        va_end(ap);
        if (k < 0)
                return r;

        for (char *p = m; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f)
                        *p = ' ';
        if (s->secret && !isempty(s->secret))
                for (char *p = strstr(m, s->secret); p; p = strstr(p, s->secret))
                        memset(p, '*', strlen(s->secret));

        log_debug_errno(r, "AD escrow: %s", m);
        if (!s->error)
                s->error = m;
        else
                free(m);
        return r;
}

/* The server's words for the last operation on the session: "Insufficient access (50): 00002098: ..." */
static char *ad_ldap_message(AdSession *s, int lrc) {
        _cleanup_(ldap_memfreep) char *diag = NULL;
        char *m;

        if (s->ld)
                (void) ldap_get_option(s->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        if (asprintf(&m, "%s (%d)%s%s", ldap_err2string(lrc), lrc, isempty(diag) ? "" : ": ",
                     strempty(diag)) < 0)
                return NULL;
        return m;
}

static int ad_ldap_to_errno(int lrc) {
        switch (lrc) {
        case LDAP_SERVER_DOWN:
        case LDAP_CONNECT_ERROR:
                return -EHOSTUNREACH;
        case LDAP_TIMEOUT:
        case LDAP_TIMELIMIT_EXCEEDED:
                return -ETIMEDOUT;
        case LDAP_NO_MEMORY:
                return -ENOMEM;
        case LDAP_INVALID_CREDENTIALS:
        case LDAP_INAPPROPRIATE_AUTH:
        case LDAP_STRONG_AUTH_REQUIRED:
        case LDAP_CONFIDENTIALITY_REQUIRED:
        case LDAP_AUTH_UNKNOWN:
        case LDAP_AUTH_METHOD_NOT_SUPPORTED:
                return -ENOKEY;
        case LDAP_INSUFFICIENT_ACCESS:
                return -EACCES;
        case LDAP_NO_SUCH_OBJECT:
                return -ESRCH;
        case LDAP_SIZELIMIT_EXCEEDED:
                return -E2BIG;
        case LDAP_NO_SUCH_ATTRIBUTE:
        case LDAP_UNDEFINED_TYPE:
        case LDAP_CONSTRAINT_VIOLATION:
        case LDAP_TYPE_OR_VALUE_EXISTS:
        case LDAP_INVALID_SYNTAX:
        case LDAP_INVALID_DN_SYNTAX:
        case LDAP_NAMING_VIOLATION:
        case LDAP_OBJECT_CLASS_VIOLATION:
        case LDAP_NOT_ALLOWED_ON_NONLEAF:
        case LDAP_NOT_ALLOWED_ON_RDN:
        case LDAP_NO_OBJECT_CLASS_MODS:
        case LDAP_UNWILLING_TO_PERFORM:
                return -EREMOTEIO;
        default:
                return -EIO;
        }
}

/* As ad_ldap_to_errno(), but a connection that our socket layer gave up on is a timeout. */
static int ad_session_errno(AdSession *s, int lrc) {
        if (s->timed_out && IN_SET(lrc, LDAP_SERVER_DOWN, LDAP_CONNECT_ERROR, LDAP_TIMEOUT, LDAP_LOCAL_ERROR))
                return -ETIMEDOUT;
        return ad_ldap_to_errno(lrc);
}

/* A socket layer under TLS and SASL that never lets a read or write wait longer than the timeout.
 *
 * libldap 2.5 makes the socket non-blocking for the TLS handshake when LDAP_OPT_NETWORK_TIMEOUT is
 * set, and then retries the handshake in a loop that neither polls nor ends (Debian 12's 2.5.13: a
 * server that accepts the connection and never answers the ClientHello keeps the caller spinning at
 * 100% CPU forever). Here a read or write that would block waits in poll() instead, for at most the
 * timeout, and then fails with ETIMEDOUT, which ends the handshake. Outside the handshake libldap
 * polls before it reads, so this layer changes nothing there. */
static int ad_io_setup(Sockbuf_IO_Desc *d, void *arg) {
        d->sbiod_pvt = arg;
        return 0;
}

static int ad_io_remove(Sockbuf_IO_Desc *d) {
        d->sbiod_pvt = NULL;
        return 0;
}

static int ad_io_ctrl(Sockbuf_IO_Desc *d, int opt, void *arg) {
        return LBER_SBIOD_CTRL_NEXT(d, opt, arg);
}

static int ad_io_wait(Sockbuf_IO_Desc *d, short events) {
        AdSession *s = d->sbiod_pvt;
        ber_socket_t fd = -1;
        struct pollfd p;
        int k;

        if (ber_sockbuf_ctrl(d->sbiod_sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0) {
                errno = EBADF;
                return -1;
        }
        p = (struct pollfd) { .fd = fd, .events = events };
        do
                k = poll(&p, 1, s ? s->timeout_ms : (int) AD_TIMEOUT_SEC_DEFAULT * 1000);
        while (k < 0 && errno == EINTR);
        if (k == 0) {
                if (s)
                        s->timed_out = true;
                errno = ETIMEDOUT;
                return -1;
        }
        return k < 0 ? -1 : 0;
}

static ber_slen_t ad_io_read(Sockbuf_IO_Desc *d, void *buf, ber_len_t len) {
        for (;;) {
                ber_slen_t k = LBER_SBIOD_READ_NEXT(d, buf, len);
                if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                        return k;
                if (ad_io_wait(d, POLLIN) < 0)
                        return -1;
        }
}

static ber_slen_t ad_io_write(Sockbuf_IO_Desc *d, void *buf, ber_len_t len) {
        for (;;) {
                ber_slen_t k = LBER_SBIOD_WRITE_NEXT(d, buf, len);
                if (k >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
                        return k;
                if (ad_io_wait(d, POLLOUT) < 0)
                        return -1;
        }
}

static int ad_io_close(Sockbuf_IO_Desc *d) {
        (void) d;
        return 0;
}

static Sockbuf_IO ad_deadline_io = {
        .sbi_setup = ad_io_setup,
        .sbi_remove = ad_io_remove,
        .sbi_ctrl = ad_io_ctrl,
        .sbi_read = ad_io_read,
        .sbi_write = ad_io_write,
        .sbi_close = ad_io_close,
};

/* Between TCP (provider) and TLS (transport). */
#define AD_DEADLINE_IO_LEVEL (LBER_SBIOD_LEVEL_PROVIDER + 5)

/* Called by libldap once TCP is connected, before TLS starts. */
static int ad_conn_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr, struct ldap_conncb *ctx) {
        (void) ld;
        (void) srv;
        (void) addr;
        return ber_sockbuf_add_io(sb, &ad_deadline_io, AD_DEADLINE_IO_LEVEL, ctx->lc_arg);
}

static void ad_conn_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx) {
        (void) ld;
        (void) sb;
        (void) ctx;
}

_printf_(4, 5) static int ad_fail_ldap(AdSession *s, int lrc, int r, const char *format, ...) {
        _cleanup_free_ char *what = NULL, *server = NULL;
        va_list ap;
        int k;

        va_start(ap, format);
        k = vasprintf(&what, format, ap);
        va_end(ap);
        if (k < 0)
                return r;
        server = ad_ldap_message(s, lrc);
        return ad_fail(s, r, "%s: %s%s", what, server ?: ldap_err2string(lrc),
                       s->timed_out ? " (no answer within the timeout)" : "");
}

static int ad_config_check(AdSession *s, const AdConfig *c, bool *ret_tls, bool *ret_starttls) {
        LDAPURLDesc *url = NULL;
        bool ldaps;
        int lrc;

        if (isempty(c->uri))
                return ad_fail(s, -EINVAL, "No directory URI configured");
        if (strpbrk(c->uri, " \t\n,"))
                return ad_fail(s, -EINVAL, "Directory URI \"%s\" is not a single ldap:// or ldaps:// URI", c->uri);
        lrc = ldap_url_parse(c->uri, &url);
        if (lrc != LDAP_URL_SUCCESS)
                return ad_fail(s, -EINVAL, "Directory URI \"%s\" does not parse (%d)", c->uri, lrc);
        ldaps = strcasecmp(url->lud_scheme, "ldaps") == 0;
        if (!ldaps && strcasecmp(url->lud_scheme, "ldap") != 0) {
                ldap_free_urldesc(url);
                return ad_fail(s, -EINVAL, "Directory URI \"%s\" is neither ldap:// nor ldaps://", c->uri);
        }
        if (isempty(url->lud_host)) {
                ldap_free_urldesc(url);
                return ad_fail(s, -EINVAL, "Directory URI \"%s\" names no host", c->uri);
        }
        ldap_free_urldesc(url);

        if (!c->bind_dn != !c->password_file)
                return ad_fail(s, -EINVAL, "A simple bind needs both bind_dn and password_file");
        if (c->bind_dn && isempty(c->bind_dn))
                return ad_fail(s, -EINVAL, "Empty bind_dn");
        /* Samba refuses SASL sign/seal inside TLS, and sealing is what protects GSSAPI traffic. */
        if (!c->bind_dn && ldaps)
                return ad_fail(s, -EINVAL,
                               "Kerberos (GSSAPI) binds use ldap:// with SASL sealing; ldaps:// needs bind_dn");
        if (c->computer_dn && isempty(c->computer_dn))
                return ad_fail(s, -EINVAL, "Empty computer_dn");
        if (c->sam_account_name &&
            (isempty(c->sam_account_name) || strlen(c->sam_account_name) > AD_SAM_ACCOUNT_NAME_MAX))
                return ad_fail(s, -EINVAL, "sAMAccountName \"%s\" is empty or longer than %d characters",
                               c->sam_account_name, AD_SAM_ACCOUNT_NAME_MAX);
        if (c->timeout_sec > AD_TIMEOUT_SEC_MAX)
                return ad_fail(s, -EINVAL, "Timeout %u s is above %u s", c->timeout_sec, AD_TIMEOUT_SEC_MAX);

        *ret_tls = ldaps || c->bind_dn;
        *ret_starttls = !ldaps && c->bind_dn;
        return 0;
}

/* Windows' default: the NetBIOS name, i.e. the host name's first label cut to 15 characters, upper
 * case, and "$". */
static int ad_default_sam_account_name(char **ret) {
        char host[256] = {}, *dot, *sam;
        size_t n;

        if (gethostname(host, sizeof(host) - 1) < 0)
                return -errno;
        dot = strchr(host, '.');
        if (dot)
                *dot = '\0';
        n = strnlen(host, AD_NETBIOS_NAME_MAX);
        if (n == 0)
                return -EINVAL;
        sam = malloc(n + 2);
        if (!sam)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                sam[i] = (char) toupper((unsigned char) host[i]);
        sam[n] = '$';
        sam[n + 1] = '\0';
        *ret = sam;
        return 0;
}

/* The simple-bind password, read straight into secure memory; one trailing newline is dropped. */
static int ad_read_password_file(AdSession *s, const char *path, char **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_secure_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return ad_fail(s, -ENOKEY, "Cannot open password file %s: %s", path, strerror(errno));
        if (fstat(fd, &st) < 0)
                return ad_fail(s, -ENOKEY, "Cannot stat password file %s: %s", path, strerror(errno));
        if (!S_ISREG(st.st_mode) || (uint64_t) st.st_size > AD_PASSWORD_FILE_MAX)
                return ad_fail(s, -ENOKEY, "Password file %s is not a regular file of at most %zu bytes", path,
                               AD_PASSWORD_FILE_MAX);

        buf = secure_alloc(AD_PASSWORD_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, AD_PASSWORD_FILE_MAX + 1 - n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return ad_fail(s, -ENOKEY, "Cannot read password file %s: %s", path, strerror(errno));
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > AD_PASSWORD_FILE_MAX)
                        return ad_fail(s, -ENOKEY, "Password file %s is larger than %zu bytes", path,
                                       AD_PASSWORD_FILE_MAX);
        }
        if (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        if (n == 0 || memchr(buf, '\0', n))
                return ad_fail(s, -ENOKEY, "Password file %s holds no usable password", path);

        *ret = TAKE_PTR(buf);
        return 0;
}

/* A private MEMORY ccache filled from the keytab, which this thread's GSSAPI uses until
 * ad_kerberos_done(). */
typedef struct AdKerberos {
        krb5_context ctx;
        krb5_ccache cc;
        bool gss_selected;
} AdKerberos;

static void ad_kerberos_done(AdKerberos *k) {
        OM_uint32 minor;

        if (k->gss_selected)
                /* Back to the default; this also frees the name GSSAPI kept for the thread. */
                (void) gss_krb5_ccache_name(&minor, NULL, NULL);
        if (k->cc)
                (void) krb5_cc_destroy(k->ctx, k->cc);
        if (k->ctx)
                krb5_free_context(k->ctx);
        *k = (AdKerberos) {};
}

_printf_(4, 5) static int ad_fail_krb5(AdSession *s, krb5_context ctx, krb5_error_code kerr, const char *format, ...) {
        _cleanup_free_ char *what = NULL;
        const char *m;
        va_list ap;
        int r, k;

        switch (kerr) {
        case KRB5_KDC_UNREACH:
                r = -EHOSTUNREACH;
                break;
        case ENOMEM:
                r = -ENOMEM;
                break;
        case KRB5_CONFIG_NODEFREALM:
        case KRB5_REALM_UNKNOWN:
        case KRB5_REALM_CANT_RESOLVE:
        case KRB5_CONFIG_BADFORMAT:
        case KRB5_PARSE_MALFORMED:
                r = -EINVAL;
                break;
        default:
                /* Missing keytab or key, wrong key (preauthentication failed), unknown or disabled
                 * principal, clock skew: the KDC would not let us in. */
                r = -ENOKEY;
        }

        va_start(ap, format);
        k = vasprintf(&what, format, ap);
        va_end(ap);
        if (k < 0)
                return r;
        m = ctx ? krb5_get_error_message(ctx, kerr) : NULL;
        r = ad_fail(s, r, "%s: %s", what, m ?: error_message(kerr));
        if (m)
                krb5_free_error_message(ctx, m);
        return r;
}

static int ad_kerberos_login(AdSession *s, const char *principal, AdKerberos *k) {
        const AdConfig *c = s->config;
        const char *keytab_name = c->keytab ?: AD_DEFAULT_KEYTAB;
        krb5_keytab kt = NULL;
        krb5_principal me = NULL;
        krb5_get_init_creds_opt *opt = NULL;
        krb5_creds creds = {};
        char *cc_name = NULL;
        OM_uint32 major, minor;
        krb5_error_code kerr;
        int r;

        kerr = krb5_init_context(&k->ctx);
        if (kerr)
                return ad_fail_krb5(s, NULL, kerr, "Cannot initialise Kerberos");

        kerr = krb5_parse_name(k->ctx, principal, &me);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Bad Kerberos principal \"%s\"", principal);
                goto finish;
        }
        kerr = krb5_kt_resolve(k->ctx, keytab_name, &kt);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Cannot use keytab %s", keytab_name);
                goto finish;
        }
        kerr = krb5_cc_new_unique(k->ctx, "MEMORY", NULL, &k->cc);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Cannot create a memory credential cache");
                goto finish;
        }
        kerr = krb5_get_init_creds_opt_alloc(k->ctx, &opt);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Cannot allocate Kerberos options");
                goto finish;
        }
        kerr = krb5_get_init_creds_opt_set_out_ccache(k->ctx, opt, k->cc);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Cannot set the credential cache");
                goto finish;
        }
        kerr = krb5_get_init_creds_keytab(k->ctx, &creds, me, kt, /* start_time= */ 0,
                                          /* in_tkt_service= */ NULL, opt);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Kerberos login as %s with keytab %s failed", principal,
                                 keytab_name);
                goto finish;
        }

        kerr = krb5_cc_get_full_name(k->ctx, k->cc, &cc_name);
        if (kerr) {
                r = ad_fail_krb5(s, k->ctx, kerr, "Cannot name the credential cache");
                goto finish;
        }
        major = gss_krb5_ccache_name(&minor, cc_name, NULL);
        if (GSS_ERROR(major)) {
                r = ad_fail(s, -EIO, "Cannot select the credential cache for GSSAPI (major %u, minor %u)",
                            major, minor);
                goto finish;
        }
        k->gss_selected = true;
        r = 0;

finish:
        krb5_free_string(k->ctx, cc_name);
        krb5_free_cred_contents(k->ctx, &creds);
        if (opt)
                krb5_get_init_creds_opt_free(k->ctx, opt);
        if (kt)
                (void) krb5_kt_close(k->ctx, kt);
        krb5_free_principal(k->ctx, me);
        return r;
}

/* GSSAPI's only question is the authorization identity: none, so the server uses the principal's. */
static int ad_sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in) {
        (void) ld;
        (void) flags;
        (void) defaults;
        for (sasl_interact_t *i = in; i->id != SASL_CB_LIST_END; i++) {
                i->result = i->defresult ?: "";
                i->len = (unsigned) strlen(i->result);
        }
        return LDAP_SUCCESS;
}

static int ad_set_option(AdSession *s, int option, const void *value, const char *name) {
        int lrc = ldap_set_option(s->ld, option, value);
        if (lrc != LDAP_OPT_SUCCESS)
                return ad_fail(s, -EINVAL, "Cannot set LDAP option %s (%d)", name, lrc);
        return 0;
}

/* Reads one single-valued string attribute of an entry into a new string; NULL when absent. */
static int ad_entry_string(LDAP *ld, LDAPMessage *e, const char *attr, char **ret) {
        _cleanup_(ldap_value_free_lenp) struct berval **v = ldap_get_values_len(ld, e, attr);
        char *p;

        if (!v || !v[0]) {
                *ret = NULL;
                return 0;
        }
        p = strndup(v[0]->bv_val, v[0]->bv_len);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int ad_read_root_dse(AdSession *s) {
        _cleanup_(ldap_msgfreep) LDAPMessage *res = NULL;
        char *attrs[] = { (char *) "defaultNamingContext", (char *) "schemaNamingContext", NULL };
        LDAPMessage *e;
        int lrc, r;

        lrc = ldap_search_ext_s(s->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, /* attrsonly= */ 0,
                                NULL, NULL, NULL, /* sizelimit= */ 0, &res);
        if (lrc != LDAP_SUCCESS)
                return ad_fail_ldap(s, lrc, ad_session_errno(s, lrc), "Cannot read the rootDSE of %s",
                                    s->config->uri);
        e = ldap_first_entry(s->ld, res);
        if (!e)
                return ad_fail(s, -EPROTONOSUPPORT, "%s returned no rootDSE", s->config->uri);
        r = ad_entry_string(s->ld, e, "defaultNamingContext", &s->default_nc);
        if (r < 0)
                return r;
        r = ad_entry_string(s->ld, e, "schemaNamingContext", &s->schema_nc);
        if (r < 0)
                return r;
        if (!s->default_nc)
                return ad_fail(s, -EPROTONOSUPPORT,
                               "%s has no defaultNamingContext in its rootDSE: not an Active Directory DC",
                               s->config->uri);
        return 0;
}

static int ad_bind_gssapi(AdSession *s) {
        const AdConfig *c = s->config;
        _cleanup_free_ char *sam = NULL;
        _cleanup_(ldap_memfreep) char *user = NULL;
        AdKerberos k = {};
        ber_len_t ssf = 0;
        const char *principal;
        int lrc, r;

        principal = c->principal ?: c->sam_account_name;
        if (!principal) {
                r = ad_default_sam_account_name(&sam);
                if (r < 0)
                        return ad_fail(s, r, "Cannot derive the machine account from the host name");
                principal = sam;
        }

        r = ad_set_option(s, LDAP_OPT_X_SASL_NOCANON, c->sasl_nocanon ? LDAP_OPT_ON : LDAP_OPT_OFF,
                          "SASL_NOCANON");
        if (r < 0)
                return r;
        r = ad_set_option(s, LDAP_OPT_X_SASL_SECPROPS, AD_SASL_SECPROPS, "SASL_SECPROPS");
        if (r < 0)
                return r;

        r = ad_kerberos_login(s, principal, &k);
        if (r < 0)
                goto finish;

        lrc = ldap_sasl_interactive_bind_s(s->ld, /* dn= */ NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET,
                                           ad_sasl_interact, /* defaults= */ NULL);
        if (lrc != LDAP_SUCCESS) {
                r = ad_session_errno(s, lrc);
                if (!IN_SET(r, -EHOSTUNREACH, -ETIMEDOUT, -ENOMEM))
                        r = -ENOKEY;
                r = ad_fail_ldap(s, lrc, r, "GSSAPI bind to %s as %s failed", c->uri, principal);
                goto finish;
        }
        lrc = ldap_get_option(s->ld, LDAP_OPT_X_SASL_SSF, &ssf);
        if (lrc != LDAP_OPT_SUCCESS || ssf < AD_SASL_SSF_MIN) {
                r = ad_fail(s, -ENOKEY, "GSSAPI bind to %s is not sealed (SSF %lu)", c->uri, (unsigned long) ssf);
                goto finish;
        }
        (void) ldap_get_option(s->ld, LDAP_OPT_X_SASL_USERNAME, &user);
        s->identity = strdup(user ?: principal);
        r = s->identity ? 0 : -ENOMEM;

finish:
        /* The service ticket is in the security context now; the ccache has served its purpose. */
        ad_kerberos_done(&k);
        return r;
}

static int ad_bind_simple(AdSession *s) {
        const AdConfig *c = s->config;
        _cleanup_secure_ char *password = NULL;
        struct berval cred;
        int lrc, r;

        r = ad_read_password_file(s, c->password_file, &password);
        if (r < 0)
                return r;
        cred = (struct berval) { .bv_len = strlen(password), .bv_val = password };
        lrc = ldap_sasl_bind_s(s->ld, c->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
        if (lrc != LDAP_SUCCESS) {
                r = ad_session_errno(s, lrc);
                if (!IN_SET(r, -EHOSTUNREACH, -ETIMEDOUT, -ENOMEM))
                        r = -ENOKEY;
                return ad_fail_ldap(s, lrc, r, "Simple bind to %s as %s failed", c->uri, c->bind_dn);
        }
        s->identity = strdup(c->bind_dn);
        return s->identity ? 0 : -ENOMEM;
}

static int ad_session_open(AdSession *s, const AdConfig *c) {
        unsigned timeout = c->timeout_sec ?: AD_TIMEOUT_SEC_DEFAULT;
        struct timeval tv = { .tv_sec = (time_t) timeout };
        const int version = LDAP_VERSION3, require_cert = LDAP_OPT_X_TLS_DEMAND, is_server = 0;
        bool tls = false, starttls = false;
        int lrc, r;

        s->config = c;
        s->timeout_ms = (int) timeout * 1000;
        s->conncb = (struct ldap_conncb) { .lc_add = ad_conn_add, .lc_del = ad_conn_del, .lc_arg = s };
        r = ad_config_check(s, c, &tls, &starttls);
        if (r < 0)
                return r;

        lrc = ldap_initialize(&s->ld, c->uri);
        if (lrc != LDAP_SUCCESS)
                return ad_fail_ldap(s, lrc, -EINVAL, "Cannot use directory URI %s", c->uri);

        r = ad_set_option(s, LDAP_OPT_PROTOCOL_VERSION, &version, "PROTOCOL_VERSION");
        if (r < 0)
                return r;
        /* AD refers to other partitions and domains; we want this DC's answer, not a chase. */
        r = ad_set_option(s, LDAP_OPT_REFERRALS, LDAP_OPT_OFF, "REFERRALS");
        if (r < 0)
                return r;
        r = ad_set_option(s, LDAP_OPT_NETWORK_TIMEOUT, &tv, "NETWORK_TIMEOUT");
        if (r < 0)
                return r;
        r = ad_set_option(s, LDAP_OPT_TIMEOUT, &tv, "TIMEOUT");
        if (r < 0)
                return r;
        r = ad_set_option(s, LDAP_OPT_CONNECT_CB, &s->conncb, "CONNECT_CB");
        if (r < 0)
                return r;

        if (tls) {
                r = ad_set_option(s, LDAP_OPT_X_TLS_REQUIRE_CERT, &require_cert, "X_TLS_REQUIRE_CERT");
                if (r < 0)
                        return r;
                if (c->ca_file) {
                        r = ad_set_option(s, LDAP_OPT_X_TLS_CACERTFILE, c->ca_file, "X_TLS_CACERTFILE");
                        if (r < 0)
                                return r;
                }
                /* The options above go into a TLS context of this handle's own, not the global one. */
                r = ad_set_option(s, LDAP_OPT_X_TLS_NEWCTX, &is_server, "X_TLS_NEWCTX");
                if (r < 0)
                        return r;
        }
        if (starttls) {
                lrc = ldap_start_tls_s(s->ld, NULL, NULL);
                if (lrc != LDAP_SUCCESS) {
                        r = ad_session_errno(s, lrc);
                        if (!IN_SET(r, -ETIMEDOUT, -ENOMEM))
                                r = -EHOSTUNREACH;
                        return ad_fail_ldap(s, lrc, r, "StartTLS with %s failed", c->uri);
                }
        }

        /* Anonymous, before any credentials are spent: an unreachable DC shows here. */
        r = ad_read_root_dse(s);
        if (r < 0)
                return r;

        return c->bind_dn ? ad_bind_simple(s) : ad_bind_gssapi(s);
}

static int ad_find_computer(AdSession *s) {
        const AdConfig *c = s->config;
        _cleanup_(ldap_msgfreep) LDAPMessage *res = NULL;
        _cleanup_(ldap_memfreep) char *dn = NULL;
        _cleanup_free_ char *sam = NULL, *filter = NULL;
        struct berval esc = {};
        char *attrs[] = { (char *) LDAP_NO_ATTRS, NULL };
        const char *name;
        LDAPMessage *e;
        int lrc, n, r;

        if (c->computer_dn) {
                _cleanup_(ldap_dnfreep) LDAPDN ldn = NULL;

                if (ldap_str2dn(c->computer_dn, &ldn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
                        return ad_fail(s, -EINVAL, "computer_dn \"%s\" is not a DN", c->computer_dn);
                lrc = ldap_search_ext_s(s->ld, c->computer_dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0,
                                        NULL, NULL, NULL, 0, &res);
                if (lrc == LDAP_NO_SUCH_OBJECT)
                        return ad_fail_ldap(s, lrc, -ESRCH, "Computer object %s not found", c->computer_dn);
                if (lrc != LDAP_SUCCESS)
                        return ad_fail_ldap(s, lrc, ad_session_errno(s, lrc), "Cannot read %s", c->computer_dn);
                if (ldap_count_entries(s->ld, res) != 1)
                        return ad_fail(s, -ESRCH, "Computer object %s not visible to %s", c->computer_dn,
                                       s->identity);
                s->computer_dn = strdup(c->computer_dn);
                return s->computer_dn ? 0 : -ENOMEM;
        }

        name = c->sam_account_name;
        if (!name) {
                r = ad_default_sam_account_name(&sam);
                if (r < 0)
                        return ad_fail(s, r, "Cannot derive the machine account from the host name");
                name = sam;
        }

        lrc = ldap_bv2escaped_filter_value(&(struct berval) { .bv_len = strlen(name), .bv_val = (char *) name },
                                           &esc);
        if (lrc != LDAP_SUCCESS)
                return -ENOMEM;
        r = asprintf(&filter, "(&(objectClass=computer)(sAMAccountName=%s))", esc.bv_val);
        ber_memfree(esc.bv_val);
        if (r < 0)
                return -ENOMEM;

        lrc = ldap_search_ext_s(s->ld, s->default_nc, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, NULL,
                                /* sizelimit= */ 2, &res);
        if (lrc != LDAP_SUCCESS && lrc != LDAP_SIZELIMIT_EXCEEDED)
                return ad_fail_ldap(s, lrc, ad_session_errno(s, lrc), "Cannot search for computer %s under %s", name,
                                    s->default_nc);
        n = ldap_count_entries(s->ld, res);
        if (n == 0)
                return ad_fail(s, -ESRCH, "No computer object with sAMAccountName %s under %s", name,
                               s->default_nc);
        if (n > 1 || lrc == LDAP_SIZELIMIT_EXCEEDED)
                return ad_fail(s, -ESRCH, "More than one computer object with sAMAccountName %s", name);

        e = ldap_first_entry(s->ld, res);
        dn = ldap_get_dn(s->ld, e);
        if (!dn)
                return -ENOMEM;
        s->computer_dn = strdup(dn);
        return s->computer_dn ? 0 : -ENOMEM;
}

/* The children of the computer object whose cn ends in a Key ID, by DN alone: a machine account may
 * list its children but read none of their attributes (cn included), so the Key ID comes from the
 * RDN. */
static int ad_list_children(AdSession *s, AdChild **ret, size_t *ret_n) {
        _cleanup_(ldap_msgfreep) LDAPMessage *res = NULL;
        char *attrs[] = { (char *) LDAP_NO_ATTRS, NULL };
        AdChild *children = NULL;
        size_t n = 0;
        int lrc;

        lrc = ldap_search_ext_s(s->ld, s->computer_dn, LDAP_SCOPE_ONELEVEL, "(objectClass=*)", attrs, 0, NULL,
                                NULL, NULL, AD_CHILDREN_MAX, &res);
        if (lrc != LDAP_SUCCESS)
                return ad_fail_ldap(s, lrc, ad_session_errno(s, lrc), "Cannot list the children of %s",
                                    s->computer_dn);

        for (LDAPMessage *e = ldap_first_entry(s->ld, res); e; e = ldap_next_entry(s->ld, e)) {
                _cleanup_(ldap_memfreep) char *dn = ldap_get_dn(s->ld, e);
                AdChild *grown;
                Guid g;

                if (!dn) {
                        ad_children_free(children, n);
                        return -ENOMEM;
                }
                if (ad_dn_guid(dn, &g) < 0)
                        continue;
                grown = reallocarray(children, n + 1, sizeof(AdChild));
                if (!grown) {
                        ad_children_free(children, n);
                        return -ENOMEM;
                }
                children = grown;
                children[n] = (AdChild) { .dn = strdup(dn), .guid = g };
                if (!children[n].dn) {
                        ad_children_free(children, n);
                        return -ENOMEM;
                }
                n++;
        }

        *ret = children;
        *ret_n = n;
        return 0;
}

/* After a refused add: is it the record, or a directory without BitLocker's schema? */
static int ad_schema_has_fve(AdSession *s) {
        _cleanup_(ldap_msgfreep) LDAPMessage *res = NULL;
        char *attrs[] = { (char *) LDAP_NO_ATTRS, NULL };
        int lrc;

        if (!s->schema_nc)
                return -ENODATA;
        lrc = ldap_search_ext_s(s->ld, s->schema_nc, LDAP_SCOPE_ONELEVEL,
                                "(&(objectClass=classSchema)(lDAPDisplayName=" AD_CLASS "))", attrs, 0, NULL, NULL,
                                NULL, 1, &res);
        if (lrc != LDAP_SUCCESS)
                return -EIO;
        return ldap_count_entries(s->ld, res) > 0;
}

static int ad_validate_record(AdSession *s, const AdRecoveryRecord *r) {
        if (!r)
                return ad_fail(s, -EINVAL, "No recovery record");
        if (guid_is_null(&r->recovery_guid))
                return ad_fail(s, -EINVAL, "Recovery record has a null Key ID");
        if (guid_is_null(&r->volume_guid))
                return ad_fail(s, -EINVAL, "Recovery record has a null volume GUID");
        /* Checked before anything is sent, and never quoted: it is the secret. */
        if (!ad_recovery_password_is_canonical(r->password))
                return ad_fail(s, -EINVAL, "Recovery password is not 8 dash-separated blocks of 6 digits, each "
                                           "a multiple of 11");
        if (r->created_usec == 0)
                return ad_fail(s, -EINVAL, "Recovery record has no creation time");
        if ((r->key_package_size > 0 && !r->key_package) || r->key_package_size > AD_KEY_PACKAGE_MAX)
                return ad_fail(s, -EINVAL, "Key package of %zu bytes is missing or above %zu bytes",
                               r->key_package_size, AD_KEY_PACKAGE_MAX);
        return 0;
}

static int ad_add_record(AdSession *s, const AdRecoveryRecord *r, char **ret_dn) {
        _cleanup_free_ char *cn = NULL, *esc = NULL, *dn = NULL;
        uint8_t rguid[GUID_SIZE], vguid[GUID_SIZE];
        int lrc, k;

        k = ad_recovery_cn(r->created_usec, &r->recovery_guid, &cn);
        if (k < 0)
                return ad_fail(s, k, "Cannot name the record from its creation time");

        k = ad_rdn_value_escape(cn, &esc);
        if (k < 0)
                return k;
        if (asprintf(&dn, "CN=%s,%s", esc, s->computer_dn) < 0)
                return -ENOMEM;
        /* What we send must be what we meant: the first RDN read back is the cn, the rest the parent. */
        if (ad_dn_first_value_is(dn, cn) <= 0)
                return ad_fail(s, -EINVAL, "Cannot write a DN for %s under %s", cn, s->computer_dn);

        guid_to_ms_bytes(&r->recovery_guid, rguid);
        guid_to_ms_bytes(&r->volume_guid, vguid);

        /* Every value as a berval, so the password is sent from the caller's secure memory as it is. */
        struct berval oc_top = { 3, (char *) "top" }, oc_fve = { strlen(AD_CLASS), (char *) AD_CLASS },
                      cn_v = { strlen(cn), cn }, pw_v = { RECOVERY_PASSWORD_LEN, (char *) r->password },
                      rg_v = { GUID_SIZE, (char *) rguid }, vg_v = { GUID_SIZE, (char *) vguid },
                      kp_v = { r->key_package_size, (char *) r->key_package };
        struct berval *oc_vals[] = { &oc_top, &oc_fve, NULL }, *cn_vals[] = { &cn_v, NULL },
                      *pw_vals[] = { &pw_v, NULL }, *rg_vals[] = { &rg_v, NULL }, *vg_vals[] = { &vg_v, NULL },
                      *kp_vals[] = { &kp_v, NULL };
        LDAPMod m_oc = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, (char *) "objectClass", { .modv_bvals = oc_vals } },
                m_cn = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, (char *) "cn", { .modv_bvals = cn_vals } },
                m_pw = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, (char *) AD_ATTR_PASSWORD, { .modv_bvals = pw_vals } },
                m_rg = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, (char *) AD_ATTR_RECOVERY_GUID, { .modv_bvals = rg_vals } },
                m_vg = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, (char *) AD_ATTR_VOLUME_GUID, { .modv_bvals = vg_vals } },
                m_kp = { LDAP_MOD_ADD | LDAP_MOD_BVALUES, (char *) AD_ATTR_KEY_PACKAGE, { .modv_bvals = kp_vals } };
        LDAPMod *mods[] = { &m_oc, &m_cn, &m_pw, &m_rg, &m_vg, r->key_package_size > 0 ? &m_kp : NULL, NULL };

        lrc = ldap_add_ext_s(s->ld, dn, mods, NULL, NULL);
        if (lrc == LDAP_ALREADY_EXISTS) {
                /* Same second, same Key ID: a concurrent or repeated escrow of this very record. */
                log_debug("AD escrow: %s exists already, not adding it again.", dn);
                *ret_dn = TAKE_PTR(dn);
                return 0;
        }
        if (lrc != LDAP_SUCCESS) {
                int e = ad_session_errno(s, lrc);

                if (e == -EACCES)
                        return ad_fail_ldap(s, lrc, e, "%s may not add recovery information under %s",
                                            s->identity, s->computer_dn);
                if (e == -EREMOTEIO && ad_schema_has_fve(s) == 0)
                        return ad_fail_ldap(s, lrc, -EPROTONOSUPPORT,
                                            "The directory's schema has no %s class (BitLocker schema extension)",
                                            AD_CLASS);
                return ad_fail_ldap(s, lrc, e, "Adding %s was refused", dn);
        }

        *ret_dn = TAKE_PTR(dn);
        return 0;
}

static bool ad_value_is(struct berval **v, const void *want, size_t n) {
        return v && v[0] && !v[1] && v[0]->bv_len == n && memeq_secure(v[0]->bv_val, want, n);
}

/* Reads the record back as far as this identity may. A machine account sees the object, not its
 * attributes (AD_VERIFY_OBJECT); an administrator sees everything (AD_VERIFY_FULL). */
static int ad_verify_record(AdSession *s, const char *dn, const AdRecoveryRecord *r, AdVerify *ret) {
        _cleanup_(ldap_msgfreep) LDAPMessage *res = NULL;
        _cleanup_(ldap_memfreep) char *got_dn = NULL;
        _cleanup_(ldap_value_erase_free_lenp) struct berval **pw = NULL;
        _cleanup_(ldap_value_free_lenp) struct berval **rg = NULL, **vg = NULL;
        char *attrs[] = { (char *) AD_ATTR_PASSWORD, (char *) AD_ATTR_RECOVERY_GUID, (char *) AD_ATTR_VOLUME_GUID,
                          NULL };
        uint8_t rguid[GUID_SIZE], vguid[GUID_SIZE];
        char gs[GUID_STRING_MAX];
        LDAPMessage *e;
        Guid g;
        int lrc;

        lrc = ldap_search_ext_s(s->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, NULL, 1, &res);
        if (lrc != LDAP_SUCCESS || !(e = ldap_first_entry(s->ld, res))) {
                log_debug("AD escrow: cannot read back %s (%s), not verified.", dn, ldap_err2string(lrc));
                *ret = AD_VERIFY_NONE;
                return 0;
        }

        got_dn = ldap_get_dn(s->ld, e);
        if (!got_dn)
                return -ENOMEM;
        if (!ad_dn_equal(got_dn, dn) || ad_dn_guid(got_dn, &g) < 0 || !guid_equal(&g, &r->recovery_guid)) {
                *ret = AD_VERIFY_NONE;
                return 0;
        }

        pw = ldap_get_values_len(s->ld, e, AD_ATTR_PASSWORD);
        rg = ldap_get_values_len(s->ld, e, AD_ATTR_RECOVERY_GUID);
        vg = ldap_get_values_len(s->ld, e, AD_ATTR_VOLUME_GUID);
        if (!pw && !rg && !vg) {
                /* Confidential attributes, and an object whose security descriptor grants only DA and
                 * SYSTEM: what a machine account sees. */
                *ret = AD_VERIFY_OBJECT;
                return 0;
        }

        guid_to_ms_bytes(&r->recovery_guid, rguid);
        guid_to_ms_bytes(&r->volume_guid, vguid);
        if ((pw && !ad_value_is(pw, r->password, RECOVERY_PASSWORD_LEN)) ||
            (rg && !ad_value_is(rg, rguid, GUID_SIZE)) || (vg && !ad_value_is(vg, vguid, GUID_SIZE)))
                return ad_fail(s, -EEXIST,
                               "%s holds a different recovery password or volume GUID for Key ID {%s}", dn,
                               guid_format(&r->recovery_guid, gs));

        *ret = pw && rg && vg ? AD_VERIFY_FULL : AD_VERIFY_OBJECT;
        return 0;
}

static void ad_return_error(AdSession *s, char **ret_error) {
        if (ret_error)
                *ret_error = TAKE_PTR(s->error);
}

int ad_escrow(const AdConfig *c, const AdRecoveryRecord *r, char **ret_dn, AdVerify *ret_verify, char **ret_error) {
        _cleanup_(ad_session_done) AdSession s = { .secret = r ? r->password : NULL };
        AdChild *children = NULL;
        _cleanup_free_ char *dn = NULL;
        size_t n_children = 0;
        AdVerify verify = AD_VERIFY_NONE;
        int k;

        if (!c) {
                k = ad_fail(&s, -EINVAL, "No configuration");
                goto fail;
        }
        /* The record first: nothing malformed goes on the wire, and no credentials are spent on it. */
        k = ad_validate_record(&s, r);
        if (k < 0)
                goto fail;
        /* From here on the password is known good and may be scrubbed from messages. */
        k = ad_session_open(&s, c);
        if (k < 0)
                goto fail;
        k = ad_find_computer(&s);
        if (k < 0)
                goto fail;

        k = ad_list_children(&s, &children, &n_children);
        if (k < 0)
                goto fail;
        for (size_t i = 0; i < n_children; i++)
                if (guid_equal(&children[i].guid, &r->recovery_guid)) {
                        dn = TAKE_PTR(children[i].dn);
                        break;
                }
        ad_children_free(children, n_children);

        if (dn)
                log_debug("AD escrow: %s holds this Key ID already, not adding it again.", dn);
        else {
                k = ad_add_record(&s, r, &dn);
                if (k < 0)
                        goto fail;
        }

        k = ad_verify_record(&s, dn, r, &verify);
        if (k < 0)
                goto fail;

        log_debug("AD escrow: %s as %s, verified: %s.", dn, s.identity, ad_verify_to_string(verify));
        if (ret_dn)
                *ret_dn = TAKE_PTR(dn);
        if (ret_verify)
                *ret_verify = verify;
        return 0;

fail:
        ad_return_error(&s, ret_error);
        return k;
}

int ad_escrow_list(const AdConfig *c, Guid **ret_guids, size_t *ret_n, char **ret_error) {
        _cleanup_(ad_session_done) AdSession s = {};
        AdChild *children = NULL;
        _cleanup_free_ Guid *guids = NULL;
        size_t n = 0;
        int k;

        if (!c || !ret_guids || !ret_n) {
                k = ad_fail(&s, -EINVAL, "No configuration or output");
                goto fail;
        }
        k = ad_session_open(&s, c);
        if (k < 0)
                goto fail;
        k = ad_find_computer(&s);
        if (k < 0)
                goto fail;
        k = ad_list_children(&s, &children, &n);
        if (k < 0)
                goto fail;

        /* One more than needed, so that an empty list is a valid allocation too. */
        guids = calloc(n + 1, sizeof(Guid));
        if (!guids) {
                ad_children_free(children, n);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                guids[i] = children[i].guid;
        ad_children_free(children, n);

        *ret_guids = TAKE_PTR(guids);
        *ret_n = n;
        return 0;

fail:
        ad_return_error(&s, ret_error);
        return k;
}
