# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 2, the boot after the reseal: the boot is changed as before (PCR 7 extended again, as the
# new firmware measures the same), and the VMK resealed to it opens every volume with nobody there.
. $VMTEST_DIR/lib.sh
N=${NDISKS:-2}
check "PCR 7 was extended before sealvold started" systemctl is-active -q vmtest-pcr7.service
check "sealvold.service is active" systemctl is-active -q sealvold.service
localfs=$(mono local-fs.target ActiveEnterTimestampMonotonic)
for i in $(seq 1 $N); do
  u=$(uuid_of $i)
  check "volume $i mapped at boot" test -b /dev/mapper/sealvol-$u
  check "sealvold mapped it before local-fs.target" test "$(mono sealvold.service ActiveEnterTimestampMonotonic)" -le "${localfs:-0}"
  for _ in $(seq 50); do mountpoint -q /mnt/data$i && break; sleep 0.2; done
  check "/mnt/data$i mounted by fstab" test "$(findmnt -n -o SOURCE /mnt/data$i)" = /dev/mapper/sealvol-$u
done
check "the journal says all $N opened" sh -c "journalctl -b -u sealvold.service | grep -q 'Unlocked $N of $N volumes'"
check "files read back identical" sha256sum -c --quiet $P/sums
sealvolctl status > $R/status.txt 2>&1
check "sealvolctl status exits 0" test $? -eq 0
sealvolctl recovery show $(uuid_of 1) > $R/recovery-show-1.txt 2>&1
check "the replaced password is still the one shown" test "$(shown_password $R/recovery-show-1.txt)" = "$(cat $P/password-1.new)"
finish
