# SPDX-License-Identifier: LGPL-2.1-or-later
# A server's first boot (scenarios 1 and 5): provision NDISKS disks (default 4), file systems with
# files, /etc/fstab with FSTAB_OPTS (default "defaults"); and the TPM commands of sealvold's start
# with 1 volume, for the comparison with the boot with all of them.
. $VMTEST_DIR/lib.sh
set -e
N=${NDISKS:-4}
wait_disks $N
check "sealvold.service is active on a fresh server" systemctl is-active -q sealvold.service
sealvolctl provision "$(disk 1)" > $R/provision-1.txt
# sealvold's start with one volume: what the TPM sees (the capture goes to the state directory).
systemctl stop sealvold.service
rm -f /var/lib/sealvol/tpm.pcap
systemctl start sealvold.service
cp /var/lib/sealvol/tpm.pcap $R/tpm-1.pcap
check "a restarted sealvold maps the provisioned volume" test -b /dev/mapper/sealvol-$(uuid_of 1)
[ $FAILED -eq 0 ] || { sealvolctl status; grep device-mapper /proc/misc; lsmod | grep ^dm; } > /dev/console 2>&1
for i in $(seq 2 $N); do sealvolctl provision "$(disk $i)" > $R/provision-$i.txt; done
sealvolctl unlock --all
: > $P/fstab.new; : > $P/sums
for i in $(seq 1 $N); do
  u=$(uuid_of $i)
  mkfs.ext4 -q /dev/mapper/sealvol-$u
  mkdir -p /mnt/data$i; mount /dev/mapper/sealvol-$u /mnt/data$i
  head -c 1M /dev/urandom > /mnt/data$i/file; echo "disk $i" > /mnt/data$i/name
  (cd /mnt/data$i && sha256sum file name) | sed "s|  |  /mnt/data$i/|" >> $P/sums
  umount /mnt/data$i
  # docs/boot.md: the documented path; without nofail it must be there before local-fs.target
  echo "/dev/mapper/sealvol-$u /mnt/data$i ext4 ${FSTAB_OPTS:-defaults} 0 2" >> $P/fstab.new
done
mv $P/fstab.new $P/fstab
sealvolctl status > $R/status.txt
# The server recovery password, as an administrator would read and keep it.
sealvolctl recovery show-server > $R/server-recovery.txt
rm -f /var/lib/sealvol/tpm.pcap   # the next boot's capture starts empty
sync
finish
