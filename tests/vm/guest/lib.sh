# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by every guest payload: results share, checks with a verdict each, helpers.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/results
mkdir -p $R; mountpoint -q $R || mount -t 9p -o trans=virtio,version=9p2000.L results $R
P=/persist   # this server's persistent share (mounted by /init)
FAILED=0
say() { echo "vmtest: $*" > /dev/console; echo "vmtest: $*"; }
check() {  # check DESCRIPTION COMMAND...: one verdict line in $R/checks
  if "${@:2}"; then echo "ok - $1" >> $R/checks; say "ok - $1"
  else echo "not ok - $1" >> $R/checks; say "NOT OK - $1"; FAILED=1; fi
}
mono() { systemctl show -P "$2" "$1"; }   # mono UNIT PROPERTY
disk() { echo /dev/disk/by-id/virtio-data$1; }
uuid_of() { cryptsetup luksUUID "$(disk $1)"; }
wait_disks() {  # wait_disks N
  udevadm settle -t 30
  for i in $(seq 1 "$1"); do
    for _ in $(seq 100); do [ -b "$(disk $i)" ] && break; sleep 0.1; done
    [ -b "$(disk $i)" ] || { say "disk $i missing"; return 1; }
  done
}
finish() { [ $FAILED -eq 0 ] || exit 1; exit 0; }
