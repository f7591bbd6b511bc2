#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM hot-plug: a server with 2 provisioned disks boots with only the first; the second is plugged in
# while it runs (QMP device_add on a PCIe root port), and sealvold maps it when it appears.
#   usage: test-vm-hotplug.sh BUILD_DIR VM_TPM_COUNT
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-hotplug "$1" "$2"
server=$VM/server
export VM_DISKS=2
command -v python3 >/dev/null || vm_skip "python3 is missing (the QMP client)"
vm_boot "$server" boot1-provision s1-provision.sh NDISKS=2 FSTAB_OPTS=nofail || exit 1
# A disk that is not there is waited for a short while at boot, then opened when it appears.
vm_conf '[Boot]' 'DeviceTimeoutSec=5'
VM_HOTPLUG=2 VM_HOTPLUG_ON="HOTPLUG-NOW" vm_boot "$server" boot2-hotplug s6-hotplug.sh || exit 1
echo "PASS"
