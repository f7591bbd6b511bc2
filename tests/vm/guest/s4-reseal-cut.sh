# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 4, boot 2 (after a power cut during provisioning): disks 1-2 open, disk 3 provisions
# again; then the power is cut in the middle of a reseal. sealvold runs on the fault TCTI here, which
# leaves the reseal's TPM2_Create unanswered (cc=Create,hang=...).
#   PROV: boot 1's results
. $VMTEST_DIR/lib.sh
wait_disks 3
check "sealvold.service is active" systemctl is-active -q sealvold.service
for i in 1 2; do
  check "volume $i mapped at boot" test -b /dev/mapper/sealvol-$(uuid_of $i)
  for _ in $(seq 50); do mountpoint -q /mnt/data$i && break; sleep 0.2; done
done
check "files of disks 1-2 intact" sha256sum -c --quiet $P/sums
d3=$(disk 3)
cryptsetup luksDump $d3 > $R/disk3-after-cut.txt 2>&1
check "disk 3 is a LUKS2 header without a sealvol token" sh -c "grep -Eq '^Version:[[:space:]]*2' $R/disk3-after-cut.txt && ! grep -q ': sealvol$' $R/disk3-after-cut.txt"
check "disk 3 is not mapped" test ! -e /dev/mapper/sealvol-$(cryptsetup luksUUID $d3)
sealvolctl provision $d3 > $R/provision-3.txt 2>&1
check "disk 3 provisions again" test $? -eq 0
u3=$(uuid_of 3)
sealvolctl unlock $u3
mkfs.ext4 -q /dev/mapper/sealvol-$u3
mkdir -p /mnt/data3; mount /dev/mapper/sealvol-$u3 /mnt/data3
head -c 1M /dev/urandom > /mnt/data3/file; echo "disk 3" > /mnt/data3/name
echo "/dev/mapper/sealvol-$u3 /mnt/data3 ext4 nofail 0 2" >> $P/fstab
# Written just before the cut, synced: must survive it.
head -c 256K /dev/urandom > /mnt/data1/before-reseal-cut
for f in /mnt/data3/file /mnt/data3/name /mnt/data1/before-reseal-cut; do sha256sum $f >> $P/sums; done
sync
sha256sum < /var/lib/sealvol/vmk.sealed > $P/vmk.sealed.sum
sealvolctl tpm reseal --pcrs 0,7 > $R/reseal.txt 2>&1 &
for _ in $(seq 300); do grep -q ' fault$' /var/lib/sealvol/vmtest-fault.log 2>/dev/null && break; sleep 0.1; done
check "the reseal is under way: its TPM2_Create is left unanswered" grep -q ' 0x153 fault$' /var/lib/sealvol/vmtest-fault.log
power_cut "during a reseal"
