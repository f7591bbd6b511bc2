/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ad-fixture.c: a private Samba AD DC for tests (see ad-fixture.h). */

#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include <ldap.h>

#include "ad-fixture.h"
#include "encoding.h"
#include "test-util.h"

#define AD_DC_SCRIPT SEALVOL_SOURCE_ROOT "/tests/harness/ad-dc"
#define AD_DC_START_TIMEOUT_MS 60000
#define AD_DC_STOP_TIMEOUT_MS 10000

static bool have_sbin_executable(const char *name) {
        _cleanup_free_ char *p = NULL;

        if (test_have_executable(name))
                return true;
        p = path_join("/usr/sbin", name);
        return p && access(p, X_OK) == 0;
}

bool ad_fixture_available(const char **ret_missing) {
        static const char *const needed[] = { "samba", "samba-tool", "ldapsearch", "openssl" };

        for (size_t i = 0; i < ELEMENTSOF(needed); i++)
                if (!have_sbin_executable(needed[i])) {
                        if (ret_missing)
                                *ret_missing = needed[i];
                        return false;
                }
        return true;
}

int ad_fixture_enter_netns(void) {
        struct ifreq ifr = {};
        _cleanup_close_ int fd = -EBADF;

        if (unshare(CLONE_NEWNET) < 0)
                return -errno;

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        strncpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name) - 1);
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        return 0;
}

static void msleep(unsigned ms) {
        (void) nanosleep(&(struct timespec) { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L },
                         NULL);
}

static bool tcp_port_open(uint16_t port) {
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons(port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        return fd >= 0 && connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0;
}

/* The rootDSE answers an anonymous read once the DC's LDAP server is up. */
static bool ldap_answers(void) {
        struct timeval tv = { .tv_sec = 1 };
        const int version = LDAP_VERSION3;
        LDAPMessage *res = NULL;
        LDAP *ld = NULL;
        char *attrs[] = { (char *) "defaultNamingContext", NULL };
        bool ok;

        if (ldap_initialize(&ld, "ldap://127.0.0.1") != LDAP_SUCCESS)
                return false;
        (void) ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
        (void) ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
        (void) ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
        ok = ldap_search_ext_s(ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, NULL, 0, &res) ==
                     LDAP_SUCCESS &&
             ldap_count_entries(ld, res) == 1;
        ldap_msgfree(res);
        (void) ldap_unbind_ext_s(ld, NULL, NULL);
        return ok;
}

static void ad_dc_free(AdDc *dc) {
        free(dc->dir);
        free(dc->log);
        free(dc->krb5_conf);
        free(dc->ca_file);
        free(dc->admin_password_file);
        free(dc->lnx1_keytab);
        free(dc->lnx2_keytab);
        free(dc);
}

static void print_log(const char *what, const char *path) {
        _cleanup_free_ char *log = test_read_file(path);

        fprintf(stderr, "%s (%s):\n%s\n", what, path, strempty(log));
}

int ad_dc_start(const char *dir, AdDc **ret) {
        _cleanup_free_ char *provision_log = NULL;
        AdDc *dc;
        pid_t pid;
        int status, r;

        dc = calloc(1, sizeof(AdDc));
        if (!dc)
                return -ENOMEM;
        dc->dir = strdup(dir);
        dc->log = path_join(dir, "dc.log");
        dc->krb5_conf = path_join(dir, "krb5.conf");
        dc->ca_file = path_join(dir, "tls/ca.pem");
        dc->admin_password_file = path_join(dir, "admin.password");
        dc->lnx1_keytab = path_join(dir, "lnx1.keytab");
        dc->lnx2_keytab = path_join(dir, "lnx2.keytab");
        provision_log = path_join(dir, "provision.log");
        if (!dc->dir || !dc->log || !dc->krb5_conf || !dc->ca_file || !dc->admin_password_file ||
            !dc->lnx1_keytab || !dc->lnx2_keytab || !provision_log) {
                ad_dc_free(dc);
                return -ENOMEM;
        }

        /* samba-tool must not see a krb5.conf of an earlier domain. */
        (void) unsetenv("KRB5_CONFIG");
        r = test_spawn((char *const[]) { (char *) AD_DC_SCRIPT, (char *) "provision", (char *) dir, NULL },
                       provision_log, /* pass_fd= */ -1, &pid);
        if (r < 0) {
                ad_dc_free(dc);
                return r;
        }
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                print_log("Provisioning the AD DC failed", provision_log);
                ad_dc_free(dc);
                return -EIO;
        }

        /* exec'ed by the script, so the DC itself is our child, and dies with us (PDEATHSIG). */
        r = test_spawn((char *const[]) { (char *) AD_DC_SCRIPT, (char *) "run", (char *) dir, NULL }, dc->log,
                       /* pass_fd= */ -1, &dc->pid);
        if (r < 0) {
                ad_dc_free(dc);
                return r;
        }

        if (setenv("KRB5_CONFIG", dc->krb5_conf, /* overwrite= */ 1) < 0) {
                r = -errno;
                (void) ad_dc_stop(dc);
                return r;
        }

        for (unsigned waited = 0;; waited += 100) {
                if (!test_process_running(dc->pid)) {
                        print_log("The AD DC exited", dc->log);
                        dc->pid = 0;
                        (void) ad_dc_stop(dc);
                        return -ECHILD;
                }
                if (ldap_answers() && tcp_port_open(88))
                        break;
                if (waited >= AD_DC_START_TIMEOUT_MS) {
                        print_log("The AD DC did not answer", dc->log);
                        (void) ad_dc_stop(dc);
                        return -ETIMEDOUT;
                }
                msleep(100);
        }

        *ret = dc;
        return 0;
}

AdDc *ad_dc_stop(AdDc *dc) {
        if (!dc)
                return NULL;
        if (dc->pid > 0)
                (void) test_process_stop(dc->pid, AD_DC_STOP_TIMEOUT_MS);
        ad_dc_free(dc);
        return NULL;
}

static void entry_done(Entry *e) {
        free(e->dn);
        free(e->cn);
        if (e->password)
                explicit_bzero(e->password, strlen(e->password));
        free(e->password);
        free(e->recovery_guid);
        free(e->volume_guid);
}

void ad_entries_free(Entry *e, size_t n) {
        for (size_t i = 0; i < n; i++)
                entry_done(&e[i]);
        free(e);
}

static char *startswith_value(char *line, const char *prefix) {
        size_t n = strlen(prefix);

        return strncmp(line, prefix, n) == 0 ? line + n : NULL;
}

int ad_dc_admin_search(AdDc *dc, const char *base, const char *filter, Entry **ret, size_t *ret_n, char **ret_error) {
        _cleanup_free_ char *out = path_join(dc->dir, "ldapsearch.out"), *cacert = NULL, *text = NULL;
        Entry *entries = NULL;
        size_t n = 0;
        char *save = NULL;
        pid_t pid;
        int status, r;

        if (!out || asprintf(&cacert, "LDAPTLS_CACERT=%s", dc->ca_file) < 0)
                return -ENOMEM;
        (void) unlink(out);
        char *const argv[] = {
                (char *) "env", cacert, (char *) "LDAPTLS_REQCERT=demand", (char *) "LDAPCONF=/dev/null",
                (char *) "ldapsearch", (char *) "-LLL", (char *) "-o", (char *) "ldif-wrap=no", (char *) "-x",
                (char *) "-H", (char *) AD_FIXTURE_LDAPS_URI, (char *) "-D", (char *) AD_FIXTURE_ADMIN,
                (char *) "-y", dc->admin_password_file, (char *) "-b", (char *) base,
                (char *) filter, (char *) "cn", (char *) "msFVE-RecoveryPassword", (char *) "msFVE-RecoveryGuid",
                (char *) "msFVE-VolumeGuid", NULL,
        };
        r = test_spawn(argv, out, /* pass_fd= */ -1, &pid);
        if (r < 0)
                return r;
        if (waitpid(pid, &status, 0) != pid)
                return -errno;
        text = test_read_file(out);
        if (!text)
                return -EIO;
        (void) unlink(out);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (ret_error)
                        *ret_error = TAKE_PTR(text);
                return -EIO;
        }

        for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                Entry *e = n > 0 ? &entries[n - 1] : NULL;
                char *value;

                if (strncmp(line, "dn: ", 4) == 0) {
                        Entry *a = reallocarray(entries, n + 1, sizeof(Entry));
                        if (!a) {
                                r = -ENOMEM;
                                break;
                        }
                        entries = a;
                        entries[n++] = (Entry) { .dn = strdup(line + 4) };
                        continue;
                }
                if (!e) {
                        r = -EBADMSG;
                        break;
                }
                if ((value = startswith_value(line, "cn: ")))
                        e->cn = strdup(value);
                else if ((value = startswith_value(line, "msFVE-RecoveryPassword: ")))
                        e->password = strdup(value);
                else if ((value = startswith_value(line, "msFVE-RecoveryGuid:: ")))
                        r = base64_decode(value, &e->recovery_guid, &e->recovery_guid_size);
                else if ((value = startswith_value(line, "msFVE-VolumeGuid:: ")))
                        r = base64_decode(value, &e->volume_guid, &e->volume_guid_size);
                else
                        r = -EBADMSG;
                if (r < 0)
                        break;
        }
        explicit_bzero(text, strlen(text));
        if (r < 0) {
                ad_entries_free(entries, n);
                return r;
        }
        *ret = entries;
        *ret_n = n;
        return 0;
}

int ad_key_id_filter(const char *key_id, char ret[static AD_KEY_ID_FILTER_MAX]) {
        if (strlen(key_id) < 8)
                return -EINVAL;
        snprintf(ret, AD_KEY_ID_FILTER_MAX, "(&(objectClass=msFVE-RecoveryInformation)(cn=*{%.8s-*))", key_id);
        return 0;
}
