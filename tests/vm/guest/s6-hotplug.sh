# SPDX-License-Identifier: LGPL-2.1-or-later
# Hot-plug: disk 2 of this server is not there at boot; it is plugged in while the server runs
# (run-vm: VM_HOTPLUG=2, on the console line below). sealvold must map it when it appears.
. $VMTEST_DIR/lib.sh
u1=$(uuid_of 1)
u2=$(awk '$2 == "/mnt/data2" { sub("/dev/mapper/sealvol-", "", $1); print $1 }' $P/fstab)
check "sealvold.service is active" systemctl is-active -q sealvold.service
check "volume 1 mapped at boot" test -b /dev/mapper/sealvol-$u1
check "volume 2 not mapped: its disk is not there" not test -b /dev/mapper/sealvol-$u2
say "HOTPLUG-NOW disk 2"
for _ in $(seq 180); do [ -b /dev/mapper/sealvol-$u2 ] && break; sleep 1; done
check "volume 2 mapped once its disk appeared" test -b /dev/mapper/sealvol-$u2
check "the journal says it appeared and opened" sh -c "journalctl -b -u sealvold.service | grep -q 'Volume $u2 appeared on'"
# Its fstab entry (nofail) is mounted by systemd as the mapping appears, as after a recovery.
for _ in $(seq 60); do [ "$(findmnt -n -o SOURCE /mnt/data2)" = /dev/mapper/sealvol-$u2 ] && break; sleep 0.5; done
check "/mnt/data2 mounted from fstab once it was mapped" test "$(findmnt -n -o SOURCE /mnt/data2)" = /dev/mapper/sealvol-$u2
check "its files read back identical" sh -c "grep ' /mnt/data2/' $P/sums | sha256sum -c --quiet"
sealvolctl status > $R/status.txt 2>&1
finish
