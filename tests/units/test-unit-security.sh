#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# test-unit-security: the installed sealvold.service is as hardened as docs/boot.md says, and still
# has the boot ordering the boot relies on; the escrow helper's unit is as docs/escrow.md says.
#   usage: test-unit-security.sh UNIT ACTIVATION_FILE ESCROW_SERVICE ESCROW_SOCKET
# Exits 77 (meson's skip) without systemd-analyze, 1 then with CI=true.
set -euo pipefail
unit=$1 activation=$2 escrow=$3 escrow_socket=$4
exposure_max=1.7
escrow_exposure_max=2.0
fail=0

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze is missing"
  [ "${CI:-}" = true ] && exit 1 || exit 77
fi

check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

# Offline: the unit file as it is, not whatever is loaded in the running manager (if any).
exposure_check() {  # exposure_check UNIT MAX
  local out exposure before=$fail
  out=$(systemd-analyze security --offline=true --no-pager "$1" 2>&1) || true
  exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  echo "exposure of $(basename "$1"): ${exposure:-?} (at most $2)"
  check "exposure is reported" test -n "$exposure"
  check "exposure ${exposure:-?} <= $2" awk -v e="${exposure:-99}" -v m="$2" 'BEGIN { exit !(e <= m) }'
  [ $fail -eq $before ] || grep -F '✗' <<<"$out" || true
}
exposure_check "$unit" $exposure_max
exposure_check "$escrow" $escrow_exposure_max

# What the boot relies on (docs/boot.md): early, notify, before the mounts and crypttab.
prop() { grep -E "^$1=" "${3:-$unit}" | cut -d= -f2- | tr '\n' ' '; }
has() { grep -qw -- "$2" <<<"$(prop "$1" "" "${3:-$unit}")"; }
check "Type=notify" has Type notify
check "DefaultDependencies=no" has DefaultDependencies no
check "Before=cryptsetup.target" has Before cryptsetup.target
check "Before=local-fs-pre.target" has Before local-fs-pre.target
check "After=dev-tpmrm0.device (bounded wait)" has After dev-tpmrm0.device
check "After=systemd-remount-fs.service (state directory writable)" has After systemd-remount-fs.service
check "only CAP_SYS_ADMIN" test "$(prop CapabilityBoundingSet)" = "CAP_SYS_ADMIN "
check "ExecStart is absolute" bash -c '[[ $(grep ^ExecStart= "$0" | cut -d= -f2) == /* ]]' "$unit"

# No IP socket in the process that holds the VMK; escrow's network is the helper's, reached by socket.
check "no AF_INET in sealvold" bash -c '! grep -E "^RestrictAddressFamilies=.*AF_INET" "$0"' "$unit"
check "IPAddressDeny=any" has IPAddressDeny any
check "sealvold wants the escrow socket" has Wants sealvol-escrow.socket

# The escrow helper: one instance per connection, only root connects, no capability, and none of
# what sealvold guards (the TPM, the disks, the state directory).
check "escrow socket Accept=yes" has Accept yes "$escrow_socket"
check "escrow socket SocketMode=0600" has SocketMode 0600 "$escrow_socket"
check "escrow socket at /run/sealvol/escrow.socket" has ListenStream /run/sealvol/escrow.socket "$escrow_socket"
check "escrow helper has no capability" test "$(prop CapabilityBoundingSet "" "$escrow")" = " "
check "escrow helper: no devices" has PrivateDevices yes "$escrow"
check "escrow helper: no /var/lib/sealvol" has InaccessiblePaths -/var/lib/sealvol "$escrow"
check "escrow helper: stdin is the connection" has StandardInput socket "$escrow"

# D-Bus activation goes through systemd, to the unit's alias.
alias=$(prop Alias | tr -d ' ')
check "activation file names org.sealvol1" grep -qx 'Name=org.sealvol1' "$activation"
check "activation uses SystemdService=$alias" grep -qx "SystemdService=$alias" "$activation"

exit $fail
