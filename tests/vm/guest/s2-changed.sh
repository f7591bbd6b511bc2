# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 2, the changed boot: PCR 7 was extended before sealvold started (vmtest-pcr7.service), so
# the TPM refuses the VMK. The boot completes, every volume is reported recovery-required with its
# Key ID and the changed PCR. A disk's recovery password (on stdin) opens that disk only and gives no
# VMK back; the server recovery password opens every disk and rotates the VMK at once: a new VMK and
# server recovery password, every disk re-bound, the VMK sealed to the boot as it is (no reseal), and
# the used disk password replaced. The old server recovery password opens nothing any more; every
# disk's own current password still opens it with stock cryptsetup.
#   PROV: the provisioning boot's results (provision-N.txt, server-recovery.txt: what sealvolctl showed)
. $VMTEST_DIR/lib.sh
N=${NDISKS:-4}
all_bound_to() {  # all_bound_to VMK-ID: every disk's token names that VMK
  local j
  for j in $(seq 1 $N); do test -n "$1" -a "$(token_vmk_id $j)" = "$1" || return 1; done
}
server_copy_is() {  # server_copy_is N KEY-ID: disk N's server copy is under KEY-ID and is the daemon's blob
  local key wrapped
  read -r key wrapped <<< "$(token_server $1 | sed 's|\\/|/|g')"
  test "$key" = "$2" -a -n "$wrapped" && grep -qF "\"$wrapped\"" /run/server-recovery.json
}
same_password() {  # same_password SHOWN SHOWN: the same Key ID and password in two outputs of sealvolctl
  test -n "$(shown_key_id $1)" -a "$(shown_key_id $1)" = "$(shown_key_id $2)" &&
    test -n "$(shown_password $1)" -a "$(shown_password $1)" = "$(shown_password $2)"
}
check "PCR 7 was extended before sealvold started" systemctl is-active -q vmtest-pcr7.service
check "sealvold.service is active" systemctl is-active -q sealvold.service
localfs=$(mono local-fs.target ActiveEnterTimestampMonotonic)
check "local-fs.target reached" test "${localfs:-0}" -gt 0
journalctl -b -u sealvold.service --no-pager > $R/sealvold-boot.txt
sealvolctl status > $R/status-changed.txt 2>&1
status_rc=$?
check "sealvolctl status exits 8 (volumes need recovery)" test $status_rc -eq 8
check "sealvolctl status names the changed PCR" grep -q "changed since: PCR 7" $R/status-changed.txt
for i in $(seq 1 $N); do
  u=$(uuid_of $i) k=$(shown_key_id $PROV/provision-$i.txt)
  check "volume $i stays closed" test ! -e /dev/mapper/sealvol-$u
  check "volume $i: console and journal give its Key ID and PCR 7" \
    grep -q "Volume $u needs recovery (recovery Key ID $k): PCR 7 changed since the VMK was sealed." $R/sealvold-boot.txt
  check "volume $i: sealvolctl status gives its Key ID and PCR 7" \
    grep -q "PCR 7 changed since the VMK was sealed; recovery Key ID $k" $R/status-changed.txt
  check "volume $i is recovery-required on the bus" grep -q "^$u  *recovery-required" $R/status-changed.txt
done
# The console is the journal's copy (StandardOutput=journal+console); the host checks console.log too.

# What the server is bound to before the recovery: one VMK in every token (stock cryptsetup reads it),
# and the server recovery password that provisioning showed.
vmk0=$(token_vmk_id 1)
check "every disk is bound to the provisioning VMK ($vmk0)" all_bound_to "$vmk0"
spw=$(sed -n 's/^Server recovery password: //p' $PROV/server-recovery.txt)
sk0=$(sed -n 's/^Key ID: *//p' $PROV/server-recovery.txt)
check "the server recovery Key ID is the one show-server gave ($sk0)" test -n "$sk0" -a "$(tpm_status ServerRecoveryKeyId)" = "$sk0"

# Recovery of volume 1 with the password as provisioning displayed it, on stdin: that disk only.
u1=$(uuid_of 1) d1=$(disk 1)
pw1=$(shown_password $PROV/provision-1.txt) k1=$(shown_key_id $PROV/provision-1.txt)
printf '%s\n' "$pw1" | sealvolctl recover $u1 > $R/recover.txt 2>&1
check "sealvolctl recover VOLUME with the disk's password on stdin succeeds" test $? -eq 0
check "volume 1 is mapped" test -b /dev/mapper/sealvol-$u1
check "the disk's password opens no other disk" sh -c "for i in \$(seq 2 $N); do
  test ! -e /dev/mapper/sealvol-\$(cryptsetup luksUUID /dev/disk/by-id/virtio-data\$i) || exit 1; done"
check "the disk's password gives no VMK back (VMKAvailable no)" test "$(tpm_status VMKAvailable)" = no
check "before the VMK is back volume 1 keeps its Key ID" test "$(key_id_of $u1)" = "$k1"

# The server recovery password, on stdin: the VMK, so every disk; then the rotation it brings.
printf '%s\n' "$spw" | sealvolctl recover > $R/recover-server.txt 2>&1
check "sealvolctl recover with the server recovery password succeeds" test $? -eq 0
check "it says all $N volumes are open" grep -q "opened the VMK: $N volumes open, 0 not" $R/recover-server.txt
check "the server recovery password opened every disk" sh -c "for i in \$(seq 1 $N); do
  test -b /dev/mapper/sealvol-\$(cryptsetup luksUUID /dev/disk/by-id/virtio-data\$i) || exit 1; done"
# docs/boot.md: with nofail, fstab mounts a volume when it is recovered.
for i in $(seq 1 $N); do
  for _ in $(seq 50); do mountpoint -q /mnt/data$i && break; sleep 0.2; done
  check "fstab mounted /mnt/data$i once the volume appeared (nofail)" \
    test "$(findmnt -n -o SOURCE /mnt/data$i)" = /dev/mapper/sealvol-$(uuid_of $i)
done
check "files read back identical" sha256sum -c --quiet $P/sums

sealvolctl tpm status > $R/tpm-status.txt 2>&1
vmk1=$(tpm_status VMKId) sk1=$(tpm_status ServerRecoveryKeyId)
check "the VMK was rotated ($vmk0 -> $vmk1)" test -n "$vmk1" -a "$vmk1" != "$vmk0"
check "the server recovery password was rotated (Key ID $sk0 -> $sk1)" test -n "$sk1" -a "$sk1" != "$sk0"
check "the rotation is complete (VMKRotation empty)" test -z "$(tpm_status VMKRotation)"
check "the journal says every volume is bound to the new VMK" \
  sh -c "journalctl -b -u sealvold.service | grep -q 'VMK rotation complete: every volume is bound to VMK $vmk1'"
check "the VMK is sealed to the boot as it is: no changed PCR left" test -z "$(tpm_status ChangedPCRs)"
sealvolctl recovery show-server > $R/server-recovery-new.txt 2>&1
spw1=$(sed -n 's/^Server recovery password: //p' $R/server-recovery-new.txt)
check "recovery show-server gives the new Key ID" test "$(sed -n 's/^Key ID: *//p' $R/server-recovery-new.txt)" = "$sk1"
check "the new server recovery password differs from the used one" test -n "$spw1" -a "$spw1" != "$spw"
# Every disk re-bound (stock cryptsetup reads the tokens): the new VMK, and a server copy under the new
# Key ID that is the very blob the daemon keeps (so the refusal below speaks for the disks' copies too).
check "every disk is bound to the new VMK" all_bound_to "$vmk1"
sed 's|\\/|/|g' /var/lib/sealvol/server-recovery.json > /run/server-recovery.json
for i in $(seq 1 $N); do
  check "disk $i: its token's server copy is under the new Key ID and is the daemon's own blob" server_copy_is $i "$sk1"
done
# The old server recovery password opens nothing: the daemon's unwrap of the server copy refuses it (the
# refusal is the unwrap's, which names the Key ID in force; not a comparison with the VMK it holds),
# whether given as the server's or to a volume.
printf '%s\n' "$spw" | sealvolctl recover > $R/recover-old-server.txt 2>&1
check "sealvolctl recover with the old server password: wrong key (exit 5)" test $? -eq 5
check "  refused as not the server recovery password (Key ID $sk1)" \
  grep -q "This is not the server recovery password (Key ID $sk1)" $R/recover-old-server.txt
u2=$(uuid_of 2)
printf '%s\n' "$spw" | sealvolctl recover $u2 > $R/recover-old-server-2.txt 2>&1
check "sealvolctl recover VOLUME with the old server password: wrong key (exit 5)" test $? -eq 5
check "  refused as neither the disk's nor the server's password" \
  grep -q "neither the recovery password of $u2 .* nor the server recovery password (Key ID $sk1)" $R/recover-old-server-2.txt

# Disk 1's used password was replaced once the VMK was back (no reseal); the others keep theirs.
k1new=$(key_id_of $u1)
check "volume 1 has a new Key ID ($k1 -> $k1new)" test -n "$k1new" -a "$k1new" != "$k1"
sealvolctl recovery show $u1 > $R/recovery-show-1.txt 2>&1
pw1new=$(shown_password $R/recovery-show-1.txt)
check "recovery show gives the new Key ID" test "$(shown_key_id $R/recovery-show-1.txt)" = "$k1new"
check "the new password differs from the used one" test -n "$pw1new" -a "$pw1new" != "$pw1"
check "the used password no longer opens volume 1 (stock cryptsetup)" not opens_with_password $d1 "$pw1"
for i in $(seq 2 $N); do
  u=$(uuid_of $i)
  sealvolctl recovery show $u > $R/recovery-show-$i.txt 2>&1
  check "volume $i keeps its unused password (Key ID and password as provisioned)" \
    same_password $R/recovery-show-$i.txt $PROV/provision-$i.txt
done
for i in $(seq 1 $N); do
  check "disk $i opens with its own current password (stock cryptsetup)" \
    opens_with_password $(disk $i) "$(shown_password $R/recovery-show-$i.txt)"
done
sealvolctl status > $R/status-recovered.txt 2>&1
check "sealvolctl status exits 0 after the server recovery" test $? -eq 0
check "sealvolctl status shows no changed PCR and no rotation" \
  not grep -Eq 'changed since|VMK rotation' $R/status-recovered.txt
# For the next boot: what is in force now.
printf '%s\n' "$pw1new" > $P/password-1.new
printf '%s %s %s\n' "$vmk1" "$sk1" "$spw1" > $P/server.new
printf '%s\n' "$spw" > $P/server.old
for i in $(seq 1 $N); do umount /mnt/data$i; done
rm -f /var/lib/sealvol/tpm.pcap   # the next boot's capture starts empty
sync
finish
