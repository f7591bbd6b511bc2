/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dra-fixture.h: the generated DRA certificates and keys (tests/generate-dra-certs.sh, built into
 * $SEALVOL_DRA_FIXTURES), by name: "rsa2048", "ec256", "rsa-ku-sign", ... NULL when missing.
 */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

/* "$SEALVOL_DRA_FIXTURES/dra-<name><suffix>" */
char *dra_fixture_path(const char *name, const char *suffix);
X509 *dra_fixture_cert(const char *name);
EVP_PKEY *dra_fixture_key(const char *name);
/* Its SHA-256 fingerprint as sealvol shows it (64 lowercase hex digits, from dra-<name>.fp). */
char *dra_fixture_fingerprint(const char *name);
