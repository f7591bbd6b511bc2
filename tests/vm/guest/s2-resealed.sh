# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 2, the boot after the server recovery: the boot is changed as before (PCR 7 extended again,
# as the new firmware measures the same), and the VMK the rotation sealed to it opens every volume with
# nobody there, with no reseal in between. What the rotation put in force stays in force.
. $VMTEST_DIR/lib.sh
N=${NDISKS:-4}
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
read -r vmk1 sk1 spw1 < $P/server.new
sealvolctl tpm status > $R/tpm-status.txt 2>&1
check "the VMK is the one the rotation made ($vmk1)" test "$(tpm_status VMKId)" = "$vmk1"
check "the server recovery Key ID is the rotated one ($sk1)" test "$(tpm_status ServerRecoveryKeyId)" = "$sk1"
check "no rotation is due or under way" test -z "$(tpm_status VMKRotation)"
sealvolctl recovery show-server > $R/server-recovery.txt 2>&1
check "recovery show-server still gives the rotated server password" \
  test "$(sed -n 's/^Server recovery password: //p' $R/server-recovery.txt)" = "$spw1"
sealvolctl recovery show $(uuid_of 1) > $R/recovery-show-1.txt 2>&1
check "the replaced password is still the one shown" test "$(shown_password $R/recovery-show-1.txt)" = "$(cat $P/password-1.new)"
printf '%s\n' "$(cat $P/server.old)" | sealvolctl recover > $R/recover-old-server.txt 2>&1
check "the old server recovery password is still refused after the reboot (exit 5)" test $? -eq 5
finish
