#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM scenario 2, a changed boot: a server with 4 provisioned disks boots with PCR 7 extended before
# sealvold starts (as after a firmware update). The boot completes; every volume is reported
# recovery-required with its Key ID and the changed PCR (console, journal, sealvolctl status).
# `sealvolctl recover VOLUME` with disk 1's recovery password on stdin maps that disk only; then one
# server recovery password (`sealvolctl recover`) maps all four and rotates the VMK at once: new VMK and
# server recovery password, every disk re-bound, the VMK sealed to the changed boot, disk 1's used
# password replaced; the old server password opens nothing, each disk's own current password still
# opens it with stock cryptsetup. The next boot, changed the same way, maps all four with nobody there,
# for the TPM commands of a start with one volume (one Unseal).
#   usage: test-vm-changed-boot.sh BUILD_DIR VM_TPM_COUNT
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-changed-boot "$1" "$2"
command -v tpm2_pcrextend >/dev/null || vm_skip "tpm2_pcrextend (tpm2-tools) is missing"
server=$VM/server
export VM_DISKS=4
vm_boot "$server" boot1-provision s1-provision.sh NDISKS=4 FSTAB_OPTS=nofail || exit 1
VM_PCR7_EXTEND=yes vm_boot "$server" boot2-changed s2-changed.sh NDISKS=4 PROV=$VM/boot1-provision || exit 1
# The console shows what the journal has: each volume, its Key ID and the PCR.
for i in 1 2 3 4; do
  k=$(sed -n 's/^Recovery Key ID: //p' "$VM/boot1-provision/provision-$i.txt")
  grep -q "needs recovery (recovery Key ID $k): PCR 7 changed" "$VM/boot2-changed/console.log" ||
    { echo "FAIL: volume $i (Key ID $k) is not reported on the console"; exit 1; }
done
echo "  [boot2-changed] ok - all 4 volumes reported on the console with Key ID and PCR 7"
VM_PCR7_EXTEND=yes VM_TIMEOUT=480 vm_boot "$server" boot3-resealed s2-resealed.sh NDISKS=4 || exit 1

# The boot after the recovery costs the TPM what a normal one does (test-vm-boot): the commands of a
# start with 1 volume, one Unseal.
one=$(vm_tpm_count "$VM/boot1-provision/tpm-1.pcap") || exit 1
four=$(vm_tpm_count "$server/persist/sealvol/tpm.pcap") || exit 1
echo "TPM at start with 1 volume:                  $one"
echo "TPM at the changed boot after the recovery:  $four"
[ "${one%% |*}" = "${four%% |*}" ] || { echo "FAIL: the boot after the recovery costs the TPM more than a start"; exit 1; }
grep -q 'unseal=1 ' <<<"$four" || { echo "FAIL: not exactly one Unseal at boot"; exit 1; }
echo "PASS"
