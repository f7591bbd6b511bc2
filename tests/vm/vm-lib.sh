# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by the VM scenarios (tests/vm/test-vm-*.sh). Usage in a scenario:
#   . vm-lib.sh; vm_setup NAME BUILD_DIR VM_TPM_COUNT
#   vm_conf LINE...                                   -> more lines in the guest's sealvol.conf
#   vm_boot SERVER BOOT_NAME PAYLOAD [ENV=VALUE...]   -> the guest's status; checks in $VM/BOOT_NAME/checks
# A boot is shaped by the environment of vm_boot (besides run-vm's own, e.g. VM_DISKS, VM_TPM,
# VM_KILL_ON):
#   VM_PCR7_EXTEND=yes   a changed boot: PCR 7 is extended before sealvold starts, as new firmware
#                        or a changed Secure Boot policy measures something else
#   VM_SEALVOLD_ENV=...  more Environment= for sealvold.service in this boot (e.g. its TCTI)
#   VM_STAGE=            (empty) sealvol is not installed in this boot: stock tools only
# Everything lives in one directory under $SEALVOL_TEST_TMPDIR, removed at exit; every process is
# started by run-vm and stopped by PID there. With CI=true a missing prerequisite is a failure.
set -uo pipefail
VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

vm_skip() {
  echo "SKIP: $*"
  [ "${CI:-}" = true ] && exit 1
  exit 77
}

vm_setup() {  # vm_setup NAME BUILD_DIR COUNTER
  local name=$1 build=$2
  VM_COUNT=$3
  [ "$(id -u)" = 0 ] || vm_skip "needs root"
  for t in qemu-system-x86_64 swtpm busybox cpio; do command -v $t >/dev/null || vm_skip "$t is missing"; done
  local kver
  kver=$(ls /lib/modules 2>/dev/null | sort -V | tail -1)
  [ -n "$kver" ] && [ -f "/boot/vmlinuz-$kver" ] || vm_skip "no kernel (linux-image-amd64)"
  VM=$(mktemp -d "${SEALVOL_TEST_TMPDIR:-/tmp}/$name.XXXXXX")
  chmod 0755 "$VM"
  # VM_KEEP=yes keeps the directory (consoles, journals, images) for a person to look at.
  [ "${VM_KEEP:-no}" = yes ] && echo "VM_KEEP: $VM is kept" || trap 'rm -rf "$VM"' EXIT
  export VM_KERNEL=/boot/vmlinuz-$kver VM_INITRD=$VM/initramfs.gz VM_STAGE=$VM/stage
  "$VM_HERE/build-initramfs" "$VM_INITRD" "$kver" || exit 1
  # sealvol as a package installs it: meson's own install, into the overlay by /init.
  meson install -C "$build" --destdir "$VM_STAGE" --no-rebuild --quiet >/dev/null || exit 1
  if [ -d "$VM_STAGE/lib" ]; then  # merged /usr: /lib is /usr/lib
    mkdir -p "$VM_STAGE/usr/lib"; cp -a "$VM_STAGE/lib/." "$VM_STAGE/usr/lib/"; rm -rf "$VM_STAGE/lib"
  fi
  # The test server's configuration: cheap recovery KDF under TCG, the TPM through the pcap TCTI
  # so that the host can count the boot's TPM commands.
  mkdir -p "$VM_STAGE/usr/local/etc/sealvol"
  printf '[TPM]\nTCTI=pcap:device:/dev/tpmrm0\n[Recovery]\nKDFIterations=1000\n[Boot]\nDeviceTimeoutSec=120\n' \
    > "$VM_STAGE/usr/local/etc/sealvol/sealvol.conf"
}

# vm_conf LINE...: appends to the test server's sealvol.conf (every later boot reads it).
vm_conf() { printf '%s\n' "$@" >> "$VM_STAGE/usr/local/etc/sealvol/sealvol.conf"; }

# vm_units DIR PAYLOAD [ENV...]: the boot's target and payload service (after local-fs.target,
# so that it sees the boot as it was), plus the test drop-in for sealvold.
vm_units() {
  local dir=$1 payload=$2; shift 2
  mkdir -p "$dir/sealvold.service.d"
  cat > "$dir/vmtest.target" <<UNIT
[Unit]
Description=vmtest
Requires=basic.target vmtest.service
After=basic.target vmtest.service
AllowIsolate=yes
UNIT
  cat > "$dir/vmtest.service" <<UNIT
[Unit]
Description=vmtest payload $(basename "$payload")
After=basic.target local-fs.target sealvold.service
SuccessAction=poweroff
FailureAction=poweroff
[Service]
Type=oneshot
ExecStart=/bin/bash $payload
ExecStopPost=/bin/sh $VM_HERE/guest/report.sh
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=240
Environment=VMTEST_DIR=$VM_HERE/guest $(printf '"%s" ' "$@")
UNIT
  printf '[Service]\nEnvironment=TCTI_PCAP_FILE=/var/lib/sealvol/tpm.pcap\n' \
    > "$dir/sealvold.service.d/test-tpm-count.conf"
  [ -n "${VM_SEALVOLD_ENV:-}" ] && printf '[Service]\nEnvironment=%s\n' "$VM_SEALVOLD_ENV" \
    > "$dir/sealvold.service.d/test-env.conf"
  if [ "${VM_PCR7_EXTEND:-no}" = yes ]; then
    # The same event every changed boot, as the same new firmware measures the same thing: after
    # a reseal the next boot (extended again) matches.
    cat > "$dir/vmtest-pcr7.service" <<UNIT
[Unit]
Description=vmtest: changed boot, PCR 7 extended before sealvold starts
DefaultDependencies=no
After=systemd-udevd-kernel.socket
Before=sealvold.service
[Service]
Type=oneshot
RemainAfterExit=yes
Environment=TPM2TOOLS_TCTI=device:/dev/tpmrm0
# Waits for the node itself, not for dev-tpmrm0.device: sealvol's drop-in bounds that job to 10 s,
# which an emulated TPM under load can miss, and then this unit would not run at all.
# (\$\$ in the file: systemd's own \$ would expand the variable.)
ExecStartPre=/bin/sh -c 'i=0; while [ ! -e /dev/tpmrm0 ] && [ \$\$i -lt 1200 ]; do sleep 0.1; i=\$\$((i+1)); done; test -e /dev/tpmrm0'
ExecStart=/usr/bin/tpm2_pcrextend 7:sha256=$(printf 'sealvol vm test: changed boot' | sha256sum | cut -d' ' -f1)
StandardOutput=journal+console
UNIT
    printf '[Unit]\nWants=vmtest-pcr7.service\nAfter=vmtest-pcr7.service\n' \
      > "$dir/sealvold.service.d/test-pcr7.conf"
  fi
}

# vm_boot SERVER NAME PAYLOAD [ENV...]: one boot; prints its checks; returns the guest's status.
vm_boot() {
  local server=$1 name=$2 payload=$3; shift 3
  local units=$VM/units-$name out=$VM/$name rc
  vm_units "$units" "$VM_HERE/guest/$payload" "$@"
  "$VM_HERE/run-vm" "$server" "$units" "$out"
  rc=$?
  [ -f "$out/checks" ] && sed "s/^/  [$name] /" "$out/checks"
  # A boot meant to end in a power cut succeeds when it was cut (run-vm: 137) and its payload's
  # checks up to the cut passed; the payload leaves its journal next to them before the cut.
  if [ -n "${VM_KILL_ON:-}" ]; then
    case $rc in
      137) rc=0; grep -q '^not ok' "$out/checks" 2>/dev/null && rc=1 ;;
      0) echo "FAIL: $name: the power cut did not happen"; rc=1 ;;
    esac
  fi
  if [ $rc -ne 0 ]; then
    echo "--- $name: console (last 80 lines)"; tail -n 80 "$out/console.log" 2>/dev/null
    echo "--- $name: sealvold"; grep -E 'sealvold|sealvol' "$out/journal.txt" 2>/dev/null | tail -n 40
  fi
  return $rc
}

vm_tpm_count() { "$VM_COUNT" "$1"; }
