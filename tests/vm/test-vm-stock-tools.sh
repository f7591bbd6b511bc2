#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM scenario 3, stock tools only: a server provisions 2 disks with a DRA certificate configured and
# writes files; then the same disks boot on a system without any sealvol binary. One opens with
# `cryptsetup open` and its recovery password as `sealvolctl provision` displayed it, the other with
# `openssl cms -decrypt` of the DRA blob from its token and the DRA private key piped into
# `cryptsetup open --key-file -`; the files read back identical.
#   usage: test-vm-stock-tools.sh BUILD_DIR VM_TPM_COUNT
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-stock-tools "$1" "$2"
command -v openssl >/dev/null || vm_skip "openssl is missing"
server=$VM/server
export VM_DISKS=2
# A DRA certificate the policy accepts (tests/generate-dra-certs.sh, "rsa2048"): RSA 2048, key usage
# keyEncipherment, BitLocker's DRA extended key usage. The key stays on the host side of the test.
printf '[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nCN=sealvol vm test DRA\n[dra]\nsubjectKeyIdentifier=hash\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=1.3.6.1.4.1.311.67.1.1\n' \
  > "$VM/dra.cnf"
openssl req -x509 -new -newkey rsa:2048 -nodes -config "$VM/dra.cnf" -extensions dra -days 30 \
  -keyout "$VM/dra.key" -out "$VM/dra.crt" 2>/dev/null || exit 1
vm_conf '[DRA]' "Certificate=$VM/dra.crt"
vm_boot "$server" boot1-provision s1-provision.sh NDISKS=2 FSTAB_OPTS=nofail || exit 1
# The other system knows nothing of these disks: no fstab entry, no sealvol.
rm -f "$server/persist/fstab"
VM_STAGE= vm_boot "$server" boot2-stock s3-stock.sh NDISKS=2 PROV=$VM/boot1-provision DRA_KEY=$VM/dra.key || exit 1
echo "PASS"
