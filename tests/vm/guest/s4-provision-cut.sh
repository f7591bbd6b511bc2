# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 4, boot 1: disks 1-2 provisioned with files (the shared provisioning payload), then the
# power is cut in the middle of provisioning disk 3, while its recovery password is escrowed.
. $VMTEST_DIR/lib.sh
bash $VMTEST_DIR/s1-provision.sh
check "disks 1-2 provisioned, with files" test $? -eq 0
wait_disks 3
mkdir -p /var/lib/sealvol-escrow
: > /var/lib/sealvol-escrow/vmtest-cut-in-hook
sealvolctl provision "$(disk 3)" > $R/provision-3.txt 2>&1 &
for _ in $(seq 600); do [ -e /var/lib/sealvol-escrow/vmtest-in-hook ] && break; sleep 0.1; done
check "the provisioning of disk 3 reached the escrow of its password" test -e /var/lib/sealvol-escrow/vmtest-in-hook
check "the hook ran in sealvol-escrow@.service, not in sealvold" \
  bash -c 'systemctl list-units --no-legend "sealvol-escrow@*" | grep -q running'
cryptsetup luksDump --disable-locks "$(disk 3)" > $R/disk3-at-cut.txt 2>&1
check "at the cut disk 3 has keyslots" grep -q ': luks2$' $R/disk3-at-cut.txt
check "at the cut disk 3 has no token yet" not grep -q ': sealvol$' $R/disk3-at-cut.txt
power_cut "provisioning disk 3"
