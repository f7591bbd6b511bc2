#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM scenario 1, the boot: a server with 4 data disks provisions them on its first boot (files
# written, /etc/fstab entries on /dev/mapper/sealvol-<uuid>), then reboots with the same TPM. The
# installed sealvold.service must have mapped all 4 before local-fs.target, fstab mounts them, the
# files read back identical, and the boot's unlock costs the TPM the same commands as with 1 disk
# (one Unseal, whatever the number of disks). The second boot escrows to a hook that hangs: it is
# called after READY=1, and status answers while it hangs.
#   usage: test-vm-boot.sh BUILD_DIR VM_TPM_COUNT
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-boot "$1" "$2"
server=$VM/server
# Under TCG on a busy 2-core machine udev has announced the virtio disks anywhere from 5 s to over
# 90 s into the boot: fstab waits as long as sealvold does (vm-lib.sh: DeviceTimeoutSec=120), or a
# slow udev sends the boot to emergency mode before the volumes can be mapped.
vm_boot "$server" boot1-provision s1-provision.sh FSTAB_OPTS=defaults,x-systemd.device-timeout=180s || exit 1
# The second boot owes every password to a hook that hangs (the escrow helper kills it after
# HookTimeoutSec=): neither sealvold's READY=1 nor local-fs.target may wait for it (s1-verify.sh).
mkdir -p "$VM_STAGE/usr/local/libexec"
cat > "$VM_STAGE/usr/local/libexec/sealvol-test-hook" <<'HOOK'
#!/bin/sh
# A vault that never answers: it says it was called (in the helper's state directory, all it may
# write), then nothing.
: > /var/lib/sealvol-escrow/hook-started
cat > /dev/null
sleep 600
HOOK
chmod 0755 "$VM_STAGE/usr/local/libexec/sealvol-test-hook"
vm_conf '[Escrow]' 'Targets=spool hook' 'Hook=/usr/local/libexec/sealvol-test-hook' 'HookTimeoutSec=30'
VM_TIMEOUT=480 vm_boot "$server" boot2-unlock s1-verify.sh || exit 1

one=$(vm_tpm_count "$VM/boot1-provision/tpm-1.pcap") || exit 1
four=$(vm_tpm_count "$server/persist/sealvol/tpm.pcap") || exit 1
echo "TPM at start with 1 volume:  $one"
echo "TPM at boot with 4 volumes:  $four"
[ "${one%% |*}" = "${four%% |*}" ] || { echo "FAIL: the TPM commands of the unlock depend on the number of disks"; exit 1; }
grep -q 'unseal=1 ' <<<"$four" || { echo "FAIL: not exactly one Unseal at boot"; exit 1; }
echo "PASS"
