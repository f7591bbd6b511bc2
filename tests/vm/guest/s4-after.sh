# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 4, boot 3 (after a power cut during a reseal): the sealed VMK is whole, every disk opens at
# boot, every file written before either cut is intact, no change is left half done.
#   PROV1, PROV2: the results of boots 1 and 2 (what provisioning displayed)
. $VMTEST_DIR/lib.sh
wait_disks 3
check "sealvold.service is active" systemctl is-active -q sealvold.service
if sha256sum < /var/lib/sealvol/vmk.sealed | cmp -s - $P/vmk.sealed.sum; then blob=old; else blob=new; fi
say "the sealed VMK after the cut is the $blob one"
check "the sealed VMK is the old one (the cut came before the new one was written)" test $blob = old
for i in 1 2 3; do
  u=$(uuid_of $i)
  check "volume $i opened at boot by the TPM" test -b /dev/mapper/sealvol-$u
  for _ in $(seq 50); do mountpoint -q /mnt/data$i && break; sleep 0.2; done
  tok=$(cryptsetup luksDump $(disk $i) | sed -n '/^Tokens:/,/^Digests:/s/^ *\([0-9][0-9]*\): sealvol$/\1/p')
  cryptsetup token export --token-id "$tok" $(disk $i) > $R/token-$i.json 2>&1
  check "volume $i: no change half done in its token" \
    sh -c "grep -Eq '\"pending\": *\[ *\]' $R/token-$i.json && grep -Eq '\"retiring\": *\[ *\]' $R/token-$i.json"
done
check "the journal says all 3 opened" sh -c "journalctl -b -u sealvold.service | grep -q 'Unlocked 3 of 3 volumes'"
check "every file written before the cuts is intact" sha256sum -c --quiet $P/sums
check "disk 1 still opens with its recovery password (stock cryptsetup)" \
  opens_with_password $(disk 1) "$(shown_password $PROV1/provision-1.txt)"
check "disk 3 opens with the recovery password of its second provisioning" \
  opens_with_password $(disk 3) "$(shown_password $PROV2/provision-3.txt)"
sealvolctl tpm status > $R/tpm-status.txt 2>&1
sealvolctl tpm reseal > $R/reseal.txt 2>&1
check "a reseal now completes" test $? -eq 0
finish
