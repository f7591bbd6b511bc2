#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM scenario 2, a changed boot: a server with 2 provisioned disks boots with PCR 7 extended before
# sealvold starts (as after a firmware update). The boot completes; both volumes are reported
# recovery-required with their Key IDs and the changed PCR (console, journal, sealvolctl status);
# `sealvolctl recover` with a disk's recovery password on stdin opens that disk only, with the server
# recovery password every disk; `sealvolctl tpm reseal` replaces the used disk password (new Key ID);
# the next boot, changed the same way, maps every volume with nobody there.
#   usage: test-vm-changed-boot.sh BUILD_DIR VM_TPM_COUNT
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-changed-boot "$1" "$2"
command -v tpm2_pcrextend >/dev/null || vm_skip "tpm2_pcrextend (tpm2-tools) is missing"
server=$VM/server
export VM_DISKS=2
vm_boot "$server" boot1-provision s1-provision.sh NDISKS=2 FSTAB_OPTS=nofail || exit 1
VM_PCR7_EXTEND=yes vm_boot "$server" boot2-changed s2-changed.sh NDISKS=2 PROV=$VM/boot1-provision || exit 1
# The console shows what the journal has: each volume, its Key ID and the PCR.
for i in 1 2; do
  k=$(sed -n 's/^Recovery Key ID: //p' "$VM/boot1-provision/provision-$i.txt")
  grep -q "needs recovery (recovery Key ID $k): PCR 7 changed" "$VM/boot2-changed/console.log" ||
    { echo "FAIL: volume $i (Key ID $k) is not reported on the console"; exit 1; }
done
echo "  [boot2-changed] ok - both volumes reported on the console with Key ID and PCR 7"
VM_PCR7_EXTEND=yes vm_boot "$server" boot3-resealed s2-resealed.sh NDISKS=2 || exit 1
echo "PASS"
