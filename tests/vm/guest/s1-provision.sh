# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 1, first boot: provision 4 disks, file systems with files, /etc/fstab; and the TPM
# commands of sealvold's start with 1 volume, for the comparison with the 4-volume boot.
. $VMTEST_DIR/lib.sh
set -e
wait_disks 4
check "sealvold.service is active on a fresh server" systemctl is-active -q sealvold.service
sealvolctl provision "$(disk 1)" > $R/provision-1.txt
# sealvold's start with one volume: what the TPM sees (the capture goes to the state directory).
systemctl stop sealvold.service
rm -f /var/lib/sealvol/tpm.pcap
systemctl start sealvold.service
cp /var/lib/sealvol/tpm.pcap $R/tpm-1.pcap
check "a restarted sealvold maps the provisioned volume" test -b /dev/mapper/sealvol-$(uuid_of 1)
[ $FAILED -eq 0 ] || { sealvolctl status; grep device-mapper /proc/misc; lsmod | grep ^dm; } > /dev/console 2>&1
for i in 2 3 4; do sealvolctl provision "$(disk $i)" > $R/provision-$i.txt; done
sealvolctl unlock --all
: > $P/fstab.new; : > $P/sums
for i in 1 2 3 4; do
  u=$(uuid_of $i)
  mkfs.ext4 -q /dev/mapper/sealvol-$u
  mkdir -p /mnt/data$i; mount /dev/mapper/sealvol-$u /mnt/data$i
  head -c 1M /dev/urandom > /mnt/data$i/file; echo "disk $i" > /mnt/data$i/name
  (cd /mnt/data$i && sha256sum file name) | sed "s|  |  /mnt/data$i/|" >> $P/sums
  umount /mnt/data$i
  # docs/boot.md: the documented path, no nofail (it must be there before local-fs.target)
  echo "/dev/mapper/sealvol-$u /mnt/data$i ext4 defaults 0 2" >> $P/fstab.new
done
mv $P/fstab.new $P/fstab
sealvolctl status > $R/status.txt
rm -f /var/lib/sealvol/tpm.pcap   # the next boot's capture starts empty
sync
finish
