# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 2, the changed boot: PCR 7 was extended before sealvold started (vmtest-pcr7.service), so
# the TPM refuses the VMK. The boot completes, every volume is reported recovery-required with its
# Key ID and the changed PCR; a disk's recovery password (on stdin) opens that disk only, the server
# recovery password the others; after `sealvolctl tpm reseal` the used disk password is replaced (new
# Key ID, the old one no longer opens the disk).
#   PROV: the provisioning boot's results (provision-N.txt, what `sealvolctl provision` displayed)
. $VMTEST_DIR/lib.sh
N=${NDISKS:-2}
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

# Recovery of volume 1 with the password as provisioning displayed it, on stdin: that disk only.
u1=$(uuid_of 1) d1=$(disk 1)
pw1=$(shown_password $PROV/provision-1.txt) k1=$(shown_key_id $PROV/provision-1.txt)
printf '%s\n' "$pw1" | sealvolctl recover $u1 > $R/recover.txt 2>&1
check "sealvolctl recover with the disk's password on stdin succeeds" test $? -eq 0
check "volume 1 is mapped" test -b /dev/mapper/sealvol-$u1
check "a disk's password opens no other disk" sh -c "for i in \$(seq 2 $N); do
  test ! -e /dev/mapper/sealvol-\$(cryptsetup luksUUID /dev/disk/by-id/virtio-data\$i) || exit 1; done"
check "before the VMK is back volume 1 keeps its Key ID" test "$(key_id_of $u1)" = "$k1"
# The server recovery password, on stdin: the VMK, so every other disk.
spw=$(sed -n 's/^Server recovery password: //p' $PROV/server-recovery.txt)
printf '%s\n' "$spw" | sealvolctl recover > $R/recover-server.txt 2>&1
check "sealvolctl recover with the server recovery password succeeds" test $? -eq 0
check "the server recovery password opened every disk" sh -c "for i in \$(seq 1 $N); do
  test -b /dev/mapper/sealvol-\$(cryptsetup luksUUID /dev/disk/by-id/virtio-data\$i) || exit 1; done"
# docs/boot.md: with nofail, fstab mounts a volume when it is recovered.
for _ in $(seq 50); do mountpoint -q /mnt/data1 && break; sleep 0.2; done
check "fstab mounted /mnt/data1 once the volume appeared (nofail)" mountpoint -q /mnt/data1
for i in $(seq 1 $N); do mountpoint -q /mnt/data$i || mount /dev/mapper/sealvol-$(uuid_of $i) /mnt/data$i; done
check "files read back identical" sha256sum -c --quiet $P/sums

sealvolctl tpm reseal > $R/reseal.txt 2>&1
check "sealvolctl tpm reseal succeeds" test $? -eq 0
k1new=$(key_id_of $u1)
check "after the reseal volume 1 has a new Key ID ($k1 -> $k1new)" test -n "$k1new" -a "$k1new" != "$k1"
sealvolctl recovery show $u1 > $R/recovery-show-1.txt 2>&1
pw1new=$(shown_password $R/recovery-show-1.txt)
check "recovery show gives the new Key ID" test "$(shown_key_id $R/recovery-show-1.txt)" = "$k1new"
check "the new password differs from the used one" test -n "$pw1new" -a "$pw1new" != "$pw1"
check "the used password no longer opens volume 1 (stock cryptsetup)" not opens_with_password $d1 "$pw1"
check "the new password opens volume 1 (stock cryptsetup)" opens_with_password $d1 "$pw1new"
for i in $(seq 2 $N); do
  check "volume $i keeps its unused password's Key ID" test "$(key_id_of $(uuid_of $i))" = "$(shown_key_id $PROV/provision-$i.txt)"
done
sealvolctl status > $R/status-resealed.txt 2>&1
check "sealvolctl status exits 0 after the reseal" test $? -eq 0
printf '%s\n' "$pw1new" > $P/password-1.new
for i in $(seq 1 $N); do umount /mnt/data$i; done
finish
