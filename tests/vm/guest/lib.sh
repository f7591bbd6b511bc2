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
not() { ! "$@"; }
finish() { [ $FAILED -eq 0 ] || exit 1; exit 0; }
# What `sealvolctl provision` displayed (saved by the provisioning payload as $R/provision-N.txt).
shown_password() { sed -n 's/^Recovery password: //p' "$1"; }
shown_key_id() { sed -n 's/^Recovery Key ID: //p' "$1"; }
# key_id_of UUID: the volume's recovery Key ID as sealvold reports it now.
key_id_of() {
  sealvolctl --json list | tr '{' '\n' | grep "\"uuid\":\"$1\"" | sed -n 's/.*"recovery_key_id":"\([^"]*\)".*/\1/p'
}
# opens_with_password DEVICE PASSWORD: the stock cryptsetup accepts it (no mapping is made).
opens_with_password() { printf '%s\n' "$2" | cryptsetup open --test-passphrase "$1"; }
# tpm_status NAME: a field of `sealvolctl tpm status` (VMKId, VMKRotation, ServerRecoveryKeyId, ...).
tpm_status() { sealvolctl --json tpm status | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
# token_of N: disk N's sealvol token as stock cryptsetup exports it (one line of JSON).
token_of() {
  local tok
  tok=$(cryptsetup luksDump "$(disk $1)" | sed -n '/^Tokens:/,/^Digests:/s/^ *\([0-9][0-9]*\): sealvol$/\1/p')
  cryptsetup token export --token-id "$tok" "$(disk $1)"
}
# token_vmk_id N: the VMK disk N is bound to; token_server N: the Key ID and the wrapped VMK of the
# server recovery password's copy in its token ("KEY-ID WRAPPED", empty when it has none).
token_vmk_id() { token_of $1 | sed -n 's/.*"vmk_id": *"\([^"]*\)".*/\1/p'; }
token_server() {
  token_of $1 | sed -n 's/.*"server_recovery": *\[ *{ *"key_id": *"\([^"]*\)", *"wrapped_vmk": *"\([^"]*\)".*/\1 \2/p'
}
# power_cut WHAT: the journal and checks so far to the results share, then the console line that
# run-vm's VM_KILL_ON waits for; the VM is killed (no shutdown, no TPM2_Shutdown) while this waits.
power_cut() {
  journalctl -b --no-pager -o short-monotonic > $R/journal.txt 2>&1; sync
  say "POWER-CUT $*"
  sleep 600
}
