#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# test-unit-security: the installed sealvold.service is as hardened as docs/boot.md says, and still
# has the boot ordering the boot relies on.
#   usage: test-unit-security.sh UNIT ACTIVATION_FILE
# Exits 77 (meson's skip) without systemd-analyze, 1 then with CI=true.
set -euo pipefail
unit=$1 activation=$2
exposure_max=2.0
fail=0

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze is missing"
  [ "${CI:-}" = true ] && exit 1 || exit 77
fi

check() {  # check DESCRIPTION COMMAND...
  if "${@:2}"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi
}

# Offline: the unit file as it is, not whatever is loaded in the running manager (if any).
out=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
echo "exposure: ${exposure:-?} (at most $exposure_max)"
check "exposure is reported" test -n "$exposure"
check "exposure $exposure <= $exposure_max" awk -v e="${exposure:-99}" -v m=$exposure_max 'BEGIN { exit !(e <= m) }'
[ $fail -eq 0 ] || grep -F '✗' <<<"$out" || true

# What the boot relies on (docs/boot.md): early, notify, before the mounts and crypttab.
prop() { grep -E "^$1=" "$unit" | cut -d= -f2- | tr '\n' ' '; }
has() { grep -qw -- "$2" <<<"$(prop "$1")"; }
check "Type=notify" has Type notify
check "DefaultDependencies=no" has DefaultDependencies no
check "Before=cryptsetup.target" has Before cryptsetup.target
check "Before=local-fs-pre.target" has Before local-fs-pre.target
check "After=dev-tpmrm0.device (bounded wait)" has After dev-tpmrm0.device
check "After=systemd-remount-fs.service (state directory writable)" has After systemd-remount-fs.service
check "only CAP_SYS_ADMIN" test "$(prop CapabilityBoundingSet)" = "CAP_SYS_ADMIN "
check "ExecStart is absolute" bash -c '[[ $(grep ^ExecStart= "$0" | cut -d= -f2) == /* ]]' "$unit"

# D-Bus activation goes through systemd, to the unit's alias.
alias=$(prop Alias | tr -d ' ')
check "activation file names org.sealvol1" grep -qx 'Name=org.sealvol1' "$activation"
check "activation uses SystemdService=$alias" grep -qx "SystemdService=$alias" "$activation"

exit $fail
