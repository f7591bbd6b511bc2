# SPDX-License-Identifier: LGPL-2.1-or-later
# Scenario 3: a system with no sealvol at all opens the disks with stock tools, as docs/dra.md and
# docs/token-format.md say: the recovery password as displayed, typed into `cryptsetup open`; the
# DRA blob of the token through `openssl cms -decrypt` with the DRA key into `cryptsetup open`.
#   PROV: the provisioning boot's results; DRA_KEY: the DRA private key (PEM)
. $VMTEST_DIR/lib.sh
wait_disks 2
check "no sealvol binary on this system" sh -c '! command -v sealvolctl && ! command -v sealvold && \
  ! systemctl cat sealvold.service' > /dev/null 2>&1
check "no volume was opened by the boot" sh -c '! ls /dev/mapper | grep -q sealvol'

# Disk 1: the recovery password exactly as `sealvolctl provision` displayed it, typed (stdin, one line).
check "disk 1: cryptsetup open with the recovery password as displayed" \
  sh -c "sed -n 's/^Recovery password: //p' $PROV/provision-1.txt | cryptsetup open $(disk 1) stock1"

# Disk 2: the token's DRA blob (base64 DER CMS), decrypted with the DRA key, is the keyslot passphrase.
d2=$(disk 2)
tok=$(cryptsetup luksDump $d2 | sed -n '/^Tokens:/,/^Digests:/s/^ *\([0-9][0-9]*\): sealvol$/\1/p')
check "disk 2: cryptsetup luksDump lists the sealvol token ($tok)" test -n "$tok"
cryptsetup token export --token-id "$tok" $d2 > /run/token.json
sed -n -e 's|\\/|/|g' -e 's/.*"dra_cms": *"\([^"]*\)".*/\1/p' /run/token.json | base64 -d > /run/dra.der
check "disk 2: the token holds a DRA blob" test -s /run/dra.der
check "disk 2: openssl cms -decrypt | cryptsetup open --key-file -" \
  sh -c "openssl cms -decrypt -binary -inform DER -in /run/dra.der -inkey $DRA_KEY | cryptsetup open --key-file - $d2 stock2"

for i in 1 2; do mkdir -p /mnt/data$i; mount /dev/mapper/stock$i /mnt/data$i; done
check "files read back identical" sha256sum -c --quiet $P/sums
for i in 1 2; do umount /mnt/data$i; cryptsetup close stock$i; done
finish
