/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* dra-fixture.c: loading the generated DRA certificates and keys (see dra-fixture.h). */

#include <fcntl.h>
#include <stdio.h>

#include "dra-fixture.h"
#include "dra.h"
#include "fileio.h"
#include "test-util.h"

char *dra_fixture_path(const char *name, const char *suffix) {
        const char *dir = getenv("SEALVOL_DRA_FIXTURES");
        char *p;

        if (isempty(dir) || asprintf(&p, "%s/dra-%s%s", dir, name, suffix) < 0)
                return NULL;
        return p;
}

X509 *dra_fixture_cert(const char *name) {
        _cleanup_free_ char *path = dra_fixture_path(name, ".crt");
        X509 *cert = NULL;

        if (!path || dra_cert_load_file(path, &cert) < 0)
                return NULL;
        return cert;
}

EVP_PKEY *dra_fixture_key(const char *name) {
        _cleanup_free_ char *path = dra_fixture_path(name, ".key");
        _cleanup_close_ int fd = -EBADF;
        EVP_PKEY *key = NULL;

        if (!path)
                return NULL;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dra_key_load_fd(fd, &key) < 0)
                return NULL;
        return key;
}

char *dra_fixture_fingerprint(const char *name) {
        _cleanup_free_ char *path = dra_fixture_path(name, ".fp");
        char *text = NULL;
        size_t n;

        if (!path || read_file_full(path, 128, &text, &n) < 0)
                return NULL;
        text[strcspn(text, "\n")] = '\0';
        if (strlen(text) != 2 * DRA_FINGERPRINT_SIZE) {
                free(text);
                return NULL;
        }
        return text;
}
