# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 1, second boot (same TPM): everything was done by the boot itself, before this runs.
. $VMTEST_DIR/lib.sh
systemctl --no-pager list-units --state=failed > $R/failed-units.txt
check "sealvold.service is active" systemctl is-active -q sealvold.service
sealvold_ready=$(mono sealvold.service ActiveEnterTimestampMonotonic)
localfs=$(mono local-fs.target ActiveEnterTimestampMonotonic)
check "local-fs.target reached" test "${localfs:-0}" -gt 0
check "sealvold was ready before local-fs.target" test "${sealvold_ready:-0}" -gt 0 -a "$sealvold_ready" -le "$localfs"
for i in 1 2 3 4; do
  u=$(uuid_of $i)
  check "volume $i mapped as /dev/mapper/sealvol-$u" test -b /dev/mapper/sealvol-$u
  check "/mnt/data$i mounted from fstab" test "$(findmnt -n -o SOURCE /mnt/data$i)" = /dev/mapper/sealvol-$u
  m=$(mono mnt-data$i.mount ActiveEnterTimestampMonotonic)
  check "/mnt/data$i mounted before local-fs.target" test "${m:-0}" -gt 0 -a "${m:-0}" -le "$localfs"
done
check "files read back identical" sha256sum -c --quiet $P/sums
check "the journal says all 4 opened" sh -c 'journalctl -b -u sealvold.service | grep -q "Unlocked 4 of 4 volumes"'
# The escrow this boot owes goes to a hook that hangs: called after READY=1 (the escrow pass waits for
# it and for the bus), holding nothing up; the daemon answers while it hangs.
hook=/var/lib/sealvol-escrow/hook-started
for _ in $(seq 300); do [ -e $hook ] && break; sleep 0.2; done
check "the escrow hook was called" test -e $hook
helper=$(systemctl list-units --no-legend --plain --state=active 'sealvol-escrow@*' | awk 'NR == 1 { print $1 }')
check "the hook is still hanging (its helper's unit is active)" test -n "$helper"
helper_start=$(mono "$helper" ActiveEnterTimestampMonotonic)
check "the escrow helper started after sealvold was ready" test "${helper_start:-0}" -ge "${sealvold_ready:-0}" -a "${sealvold_ready:-0}" -gt 0
check "sealvolctl status answers while the hook hangs" timeout 20 sealvolctl status
sealvolctl status > $R/status.txt 2>&1
cp /var/lib/sealvol/tpm.pcap $R/tpm-4.pcap
finish
