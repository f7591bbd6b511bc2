#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# VM scenario 4, power cuts: the VM is killed (no shutdown, no TPM2_Shutdown) twice, each time at a
# point chosen from inside the guest, so the cut lands where it must:
#   boot 1  provisions disks 1-2 (files), then disk 3, cut while its recovery password is being
#           escrowed: the keyslots are on the disk, the token (written last) is not;
#   boot 2  disks 1-2 open at boot, files intact; disk 3 is a LUKS2 header without token, which
#           provisions again; more files; then `sealvolctl tpm reseal --pcrs 0,7`, cut while the
#           TPM holds its Create (the fault TCTI in the guest's sealvold leaves it unanswered);
#   boot 3  the sealed VMK is whole (the old one), every disk opens at boot, every file is intact,
#           no change is left half done in a token, and a reseal now completes.
#   usage: test-vm-power-cut.sh BUILD_DIR VM_TPM_COUNT    (SEALVOL_FAULT_TCTI: the fault TCTI)
. "$(dirname "$0")/vm-lib.sh"
vm_setup vm-power-cut "$1" "$2"
[ -f "${SEALVOL_FAULT_TCTI:-}" ] || vm_skip "no fault TCTI (SEALVOL_FAULT_TCTI)"
server=$VM/server
export VM_DISKS=3
# The escrow hook stops the provisioning where the test wants it: while the payload has left the
# flag in the hook's directory (sealvol-escrow@.service's, on the guest's tmpfs: gone at the next
# boot), `store` waits there (for the power cut) and says so.
cat > "$VM/escrow-hook" <<'HOOK'
#!/bin/sh
cat > /dev/null
[ "$1" = store ] || exit 1
if [ -e /var/lib/sealvol-escrow/vmtest-cut-in-hook ]; then
  : > /var/lib/sealvol-escrow/vmtest-in-hook
  sleep 600
fi
echo vmtest-hook
HOOK
chmod 0755 "$VM/escrow-hook"
vm_conf '[Escrow]' 'Targets=spool hook' "Hook=$VM/escrow-hook" 'HookTimeoutSec=300'
cut='vmtest: POWER-CUT'

VM_KILL_ON=$cut vm_boot "$server" boot1-provision-cut s4-provision-cut.sh NDISKS=2 FSTAB_OPTS=nofail || exit 1
rm -f "$server/persist/sealvol/vmtest-"*
fault="$SEALVOL_FAULT_TCTI:cc=Create,hang=600000,log=/var/lib/sealvol/vmtest-fault.log;pcap:device:/dev/tpmrm0"
VM_KILL_ON=$cut VM_SEALVOLD_ENV="\"SEALVOL_TCTI=$fault\"" \
  vm_boot "$server" boot2-reseal-cut s4-reseal-cut.sh PROV=$VM/boot1-provision-cut || exit 1
rm -f "$server/persist/sealvol/vmtest-"*
vm_boot "$server" boot3-after s4-after.sh PROV1=$VM/boot1-provision-cut PROV2=$VM/boot2-reseal-cut || exit 1
echo "PASS"
