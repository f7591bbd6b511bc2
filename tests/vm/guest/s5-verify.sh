# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 5: the same server boots without its TPM (no TPM device at all). The boot completes in a
# bounded time; every volume stays closed, reported as needing recovery with its Key ID.
. $VMTEST_DIR/lib.sh
N=${NDISKS:-2}
check "no TPM in this boot" test ! -e /dev/tpmrm0
check "sealvold.service is active" systemctl is-active -q sealvold.service
localfs=$(mono local-fs.target ActiveEnterTimestampMonotonic)
check "local-fs.target reached" test "${localfs:-0}" -gt 0
start=$(mono sealvold.service ExecMainStartTimestampMonotonic)
ready=$(mono sealvold.service ActiveEnterTimestampMonotonic)
check "sealvold ready within 30 s of its start ($(( (${ready:-0} - ${start:-0}) / 1000 )) ms)" \
  test "${ready:-0}" -gt 0 -a $(( ${ready:-0} - ${start:-0} )) -lt 30000000
# The unit's wait for the TPM is bounded (dev-tpmrm0.device.d/sealvol-tpm-wait.conf).
check "sealvold started within 60 s of boot ($(( ${start:-0} / 1000 )) ms)" test "${start:-0}" -lt 60000000
sealvolctl list > $R/list.txt 2>&1
for i in $(seq 1 $N); do
  u=$(uuid_of $i)
  check "volume $i stays closed" test ! -e /dev/mapper/sealvol-$u
  check "volume $i is recovery-required on the bus" grep -q "^$u  *recovery-required" $R/list.txt
  check "volume $i reported with its Key ID on the console and in the journal" \
    sh -c "journalctl -b -u sealvold.service | grep -q 'Volume $u needs recovery (recovery Key ID [0-9A-F-]*): no TPM'"
done
finish
