#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM scenario 5: a server with 2 provisioned disks boots without its TPM (swtpm missing, no TPM
# device): the boot completes within a bounded time, the volumes are reported as needing recovery.
#   usage: test-vm-no-tpm.sh BUILD_DIR VM_TPM_COUNT
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-no-tpm "$1" "$2"
server=$VM/server
export VM_DISKS=2
vm_boot "$server" boot1-provision s1-provision.sh NDISKS=2 FSTAB_OPTS=nofail || exit 1
start=$SECONDS
VM_TPM=no vm_boot "$server" boot2-no-tpm s5-verify.sh NDISKS=2 || exit 1
echo "boot without a TPM: $((SECONDS - start)) s wall"
echo "PASS"
