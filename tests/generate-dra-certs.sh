#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# generate-dra-certs.sh OUTDIR: self-signed Data Recovery Agent certificates for tests/luks/test-dra.c,
# each with its unencrypted private key. For every NAME below, OUTDIR gets
#   dra-NAME.crt   the certificate (PEM)
#   dra-NAME.key   its private key (PKCS #8 PEM)
#   dra-NAME.fp    its SHA-256 fingerprint from `openssl x509 -fingerprint -sha256`, as 64 lowercase
#                  hex digits (what sealvol shows)
# and a few other encodings of the same material, for the loaders:
#   dra-rsa2048.crt.der  DER certificate       dra-ec256.key.der         PKCS #8 DER key
#   dra-ec384.key.trad   "EC PRIVATE KEY" PEM  dra-rsa2048.key.trad.der  RSAPrivateKey DER
#   dra-ec256.key.enc    passphrase-protected PKCS #8 PEM, and .enc.der the same in DER
#
# Accepted by the DRA policy (lib/crypto/dra.h):
#   rsa2048         KU keyEncipherment, EKU BitLocker DRA (1.3.6.1.4.1.311.67.1.1)
#   rsa3072-noext   no key usage, no extended key usage
#   rsa-ku-data     KU dataEncipherment only (accepted for RSA, as BitLocker does)
#   ec256           P-256, KU keyAgreement
#   ec384           P-384, EKU anyExtendedKeyUsage
#   rsa-eku-custom  EKU 1.3.6.1.4.1.99999.1: accepted only when configured as an extra EKU
# Refused:
#   rsa1024         too small
#   ec-secp256k1    curve other than P-256/P-384
#   ec-ku-keyenc    EC key with KU keyEncipherment only (RFC 8813: not for EC keys)
#   rsa-ku-sign     KU digitalSignature only
#   rsa-eku-server  EKU serverAuth
#   ed25519         key type
#
# For the trust rules (dra_cert_verify_trust()), certificates signed by test CAs; each signed one is
# RSA 2048 with KU keyEncipherment and the BitLocker DRA EKU, so it meets the policy above:
#   ca                   a root CA (self-signed, CA:TRUE)
#   ca-intermediate      an intermediate CA under ca (CA:TRUE, pathlen 0)
#   ca-other             another root CA, of nobody we trust
#   signed               signed by ca
#   signed-intermediate  signed by ca-intermediate
#   signed-other         signed by ca-other
#   signed-expired       signed by ca, valid in 2020 only
#   signed-by-leaf       signed by "signed", which is no CA
# and dra-ca-bundle.crt, ca and ca-intermediate in one file.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
mkdir -p "$out"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Our own configuration, so the system's openssl.cnf adds no extension of its own. CADIR: for
# `openssl ca` below, which the file names (every command that reads the file needs it set).
cnf=$tmp/openssl.cnf
export CADIR=$tmp/cadir
cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no

[dn]
CN = sealvol test DRA

[rsa2048]
subjectKeyIdentifier = hash
keyUsage = critical, keyEncipherment
extendedKeyUsage = 1.3.6.1.4.1.311.67.1.1

[rsa3072-noext]
subjectKeyIdentifier = hash

[rsa-ku-data]
subjectKeyIdentifier = hash
keyUsage = critical, dataEncipherment

[ec256]
subjectKeyIdentifier = hash
keyUsage = critical, keyAgreement

[ec384]
subjectKeyIdentifier = hash
extendedKeyUsage = anyExtendedKeyUsage

[rsa-eku-custom]
subjectKeyIdentifier = hash
extendedKeyUsage = 1.3.6.1.4.1.99999.1

[rsa1024]
subjectKeyIdentifier = hash
keyUsage = critical, keyEncipherment

[ec-secp256k1]
subjectKeyIdentifier = hash
keyUsage = critical, keyAgreement

[ec-ku-keyenc]
subjectKeyIdentifier = hash
keyUsage = critical, keyEncipherment

[rsa-ku-sign]
subjectKeyIdentifier = hash
keyUsage = critical, digitalSignature

[rsa-eku-server]
subjectKeyIdentifier = hash
keyUsage = critical, keyEncipherment
extendedKeyUsage = serverAuth

[ed25519]
subjectKeyIdentifier = hash

[ca]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign

[ca-intermediate]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign

[signed]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = 1.3.6.1.4.1.311.67.1.1

# `openssl ca`, for the one certificate whose dates are in the past.
[testca]
database = $ENV::CADIR/index.txt
new_certs_dir = $ENV::CADIR
serial = $ENV::CADIR/serial
default_md = sha256
policy = any
unique_subject = no

[any]
commonName = supplied
EOF

# name, then the genpkey arguments of its key.
fixtures=(
  "rsa2048        -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
  "rsa3072-noext  -algorithm RSA -pkeyopt rsa_keygen_bits:3072"
  "rsa-ku-data    -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
  "ec256          -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
  "ec384          -algorithm EC -pkeyopt ec_paramgen_curve:P-384"
  "rsa-eku-custom -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
  "rsa1024        -algorithm RSA -pkeyopt rsa_keygen_bits:1024"
  "ec-secp256k1   -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1"
  "ec-ku-keyenc   -algorithm EC -pkeyopt ec_paramgen_curve:P-256"
  "rsa-ku-sign    -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
  "rsa-eku-server -algorithm RSA -pkeyopt rsa_keygen_bits:2048"
  "ed25519        -algorithm ED25519"
)

for f in "${fixtures[@]}"; do
  read -r -a args <<<"$f"
  name=${args[0]}
  openssl genpkey "${args[@]:1}" -out "$tmp/$name.key" 2>/dev/null
  # Valid from now for ten years; tests reach other times through dra_cert_check()'s "now".
  openssl req -x509 -new -config "$cnf" -extensions "$name" -key "$tmp/$name.key" \
    -subj "/CN=sealvol test DRA $name" -days 3650 -out "$tmp/$name.crt"
  openssl x509 -in "$tmp/$name.crt" -noout -fingerprint -sha256 |
    sed -e 's/^.*=//' -e 's/://g' | tr 'A-F' 'a-f' >"$tmp/$name.fp"
  [ "$(wc -c <"$tmp/$name.fp")" -eq 65 ]
done

fingerprint() {
  openssl x509 -in "$tmp/$1.crt" -noout -fingerprint -sha256 |
    sed -e 's/^.*=//' -e 's/://g' | tr 'A-F' 'a-f' >"$tmp/$1.fp"
}

# The CAs: EC keys (quick to make); the roots self-signed, the intermediate signed by ca.
for name in ca ca-other ca-intermediate; do
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$name.key" 2>/dev/null
done
for name in ca ca-other; do
  openssl req -x509 -new -config "$cnf" -extensions ca -key "$tmp/$name.key" \
    -subj "/CN=sealvol test DRA $name" -days 3650 -out "$tmp/$name.crt"
done
openssl req -new -config "$cnf" -key "$tmp/ca-intermediate.key" -subj "/CN=sealvol test DRA ca-intermediate" \
  -out "$tmp/ca-intermediate.csr"
openssl x509 -req -in "$tmp/ca-intermediate.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -set_serial 2 \
  -days 3650 -extfile "$cnf" -extensions ca-intermediate -out "$tmp/ca-intermediate.crt" 2>/dev/null

# name, then the name of its issuer.
signed=(
  "signed              ca"
  "signed-intermediate ca-intermediate"
  "signed-other        ca-other"
  "signed-by-leaf      signed"
)
serial=16
for f in "${signed[@]}"; do
  read -r name issuer <<<"$f"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/$name.key" 2>/dev/null
  openssl req -new -config "$cnf" -key "$tmp/$name.key" -subj "/CN=sealvol test DRA $name" -out "$tmp/$name.csr"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$tmp/$issuer.crt" -CAkey "$tmp/$issuer.key" \
    -set_serial $((serial++)) -days 3650 -extfile "$cnf" -extensions signed -out "$tmp/$name.crt" 2>/dev/null
done
# Expired: a notAfter in the past, which only `openssl ca` writes.
mkdir "$CADIR"
: >"$CADIR/index.txt"
echo 40 >"$CADIR/serial"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/signed-expired.key" 2>/dev/null
openssl req -new -config "$cnf" -key "$tmp/signed-expired.key" -subj "/CN=sealvol test DRA signed-expired" \
  -out "$tmp/signed-expired.csr"
openssl ca -batch -config "$cnf" -name testca -cert "$tmp/ca.crt" -keyfile "$tmp/ca.key" \
  -in "$tmp/signed-expired.csr" -startdate 20200101000000Z -enddate 20201231000000Z -extfile "$cnf" \
  -extensions signed -notext -out "$tmp/signed-expired.crt" 2>/dev/null
rm -f "$tmp"/*.csr
for name in ca ca-other ca-intermediate signed signed-intermediate signed-other signed-by-leaf signed-expired; do
  fingerprint "$name"
done
cat "$tmp/ca.crt" "$tmp/ca-intermediate.crt" >"$tmp/ca-bundle.crt"

openssl x509 -in "$tmp/rsa2048.crt" -outform DER -out "$tmp/rsa2048.crt.der"
# `openssl pkey -outform DER` would write the traditional (SEC1) form, not PKCS #8.
openssl pkcs8 -topk8 -nocrypt -in "$tmp/ec256.key" -outform DER -out "$tmp/ec256.key.der"
openssl pkey -in "$tmp/rsa2048.key" -traditional -outform DER -out "$tmp/rsa2048.key.trad.der"
openssl pkey -in "$tmp/ec384.key" -traditional -out "$tmp/ec384.key.trad"
openssl pkey -in "$tmp/ec256.key" -aes-256-cbc -passout pass:sealvol-test -out "$tmp/ec256.key.enc"
openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:sealvol-test -in "$tmp/ec256.key" -outform DER \
  -out "$tmp/ec256.key.enc.der"

# Only complete sets land in OUTDIR, so a failed run leaves nothing that looks current.
for f in "$tmp"/*.crt "$tmp"/*.key "$tmp"/*.fp "$tmp"/*.der "$tmp"/*.trad "$tmp"/*.enc; do
  mv -f "$f" "$out/dra-$(basename "$f")"
done
