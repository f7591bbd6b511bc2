#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# generate-corrupt-volumes.sh SOURCE OTHER OUTDIR
#
# Writes broken variants of SOURCE, a valid provisioned sealvol volume image (with a DRA protector),
# into OUTDIR as <name>.img, one per line of OUTDIR/index ("<name> <expected errno name>"). OTHER is
# another provisioned volume, whose token is copied. The tests (test-corrupt-volumes,
# test-daemon-corrupt) provision SOURCE and OTHER, run this, and check that each variant is refused
# with its error and left byte-identical. As cryptsetup's tests/generators do, the LUKS2 JSON is
# edited in place and both header copies are rewritten with valid checksums, so what is tested is
# our parser and libcryptsetup's validation, not a checksum mismatch (which has its own variant).
#
#   name                   what is wrong                                              error
#   truncated-header       the image ends inside the primary header's JSON area      EUCLEAN
#   header-checksum        a byte of the JSON area changed in both copies, checksum  EUCLEAN
#                          left: libcryptsetup finds no valid header
#   damaged-header-json    the LUKS2 JSON itself is not JSON (checksums valid)       EUCLEAN
#   luks1                  a LUKS1 volume                                             EMEDIUMTYPE
#   not-luks               an ext4 file system                                        EMEDIUMTYPE
#   no-token               a sealvol LUKS2 header without its token                   ENOMSG
#   token-newer-version    sealvol_version 3                                          EPROTONOSUPPORT
#   token-version-zero     sealvol_version 0                                          EBADMSG
#   token-version-string   sealvol_version "2" (a string)                             EBADMSG
#   token-v1-fields        version 1 with version 2's fields (mac, server_recovery)   EBADMSG
#   token-wrong-types      protectors is an object, not an array                      EBADMSG
#   token-unknown-field    an extra top-level field                                   EBADMSG
#   token-missing-field    no vmk_id                                                  EBADMSG
#   duplicate-protectors   the tpm protector listed twice                             EBADMSG
#   duplicate-tokens       two sealvol tokens                                         EBADMSG
#   protector-same-slot    two protectors on one keyslot                              EBADMSG
#   keyslot-out-of-range   a protector on keyslot 99                                  EBADMSG
#   keyslot-negative       a protector on keyslot -1                                  EBADMSG
#   keyslot-huge           a protector on keyslot 2^32                                EBADMSG
#   pending-out-of-range   the journal names keyslot 4096                             EBADMSG
#   oversized-hostname     a 4000-character hostname                                  EBADMSG
#   oversized-escrow       17 escrow records (the limit is 16)                        EBADMSG
#   oversized-token        a token over VOLUME_TOKEN_SIZE_MAX (in a bigger header)    EBADMSG
#   token-from-other-volume  OTHER's token, naming OTHER's UUID                      EXDEV
#   missing-keyslot        the recovery keyslot destroyed (cryptsetup luksKillSlot)   EBADMSG
#   missing-keyslot-raw    the recovery keyslot removed from the JSON, the token      EUCLEAN
#                          still naming it: libcryptsetup's own validation refuses
#   dra-cms-damaged        loads; the DRA's CMS blob is garbage: volume_open_dra      EBADMSG (open)
# Tokens that load, and that the VMK then finds are not the daemon's writing, or keyslots whose KDF is
# not the one sealvol writes: refused before anything of them is used or any such KDF runs.
#   token-mac-wrong        one byte of the MAC changed                                EBADE (authenticate)
#   token-edited           the hostname changed, the MAC left                         EBADE (authenticate)
#   tpm-kdf-huge           the tpm keyslot asks for 2^24 PBKDF2 iterations            EBADE (authenticate)
#   tpm-kdf-argon2         the tpm keyslot asks for Argon2id with 4 GiB               EBADE (authenticate)
#   recovery-kdf-huge      the recovery keyslot asks for 2^24 PBKDF2 iterations       EBADE (open recovery)
#   recovery-kdf-argon2    the recovery keyslot asks for Argon2id with 4 GiB          EBADE (open recovery)
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 SOURCE OTHER OUTDIR" >&2
  exit 2
fi
src=$1
other=$2
out=$3
mkdir -p "$out"
: >"$out/index"

variant() { # name errno: a copy of SOURCE to break
  cp --sparse=always "$src" "$out/$1.img"
  echo "$1 $2" >>"$out/index"
  echo "$out/$1.img"
}

# Edits the LUKS2 JSON of an image with a Python expression over `j` (the header JSON, a dict) and
# `t` (token 0), then rewrites both header copies with fresh checksums (LUKS2 on-disk format, 2.1:
# SHA-256 over the whole header area with the checksum field zeroed).
edit() { # image python-code [checksum=fix|keep] [raw-json-mangle]
  python3 - "$@" <<'PY'
import hashlib, json, struct, sys

path, code = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "fix"
with open(path, "r+b") as f:
    primary = f.read(4096)
    assert primary[:6] == b"LUKS\xba\xbe", "not LUKS2"
    hdr_size = struct.unpack(">Q", primary[8:16])[0]
    f.seek(0)
    area = f.read(hdr_size)
    text = area[4096:].split(b"\0", 1)[0].decode()
    j = json.loads(text)
    t = j["tokens"].get("0")
    if mode == "raw":
        new = code.encode()  # the code is the raw JSON area text
    else:
        exec(code)
        new = json.dumps(j, separators=(",", ":")).encode()
    if len(new) >= hdr_size - 4096:
        sys.exit(f"edited JSON does not fit the {hdr_size - 4096}-byte area")
    for offset, magic in ((0, b"LUKS\xba\xbe"), (hdr_size, b"SKUL\xba\xbe")):
        f.seek(offset)
        binary = bytearray(f.read(4096))
        assert binary[:6] == magic
        json_area = new + b"\0" * (hdr_size - 4096 - len(new))
        if mode == "keep":
            # Same length, one byte changed, the old checksum kept: a torn or rotted header.
            json_area = bytearray(f.read(hdr_size - 4096))
            json_area[10] ^= 0x20
            json_area = bytes(json_area)
        else:
            binary[448:512] = b"\0" * 64
            binary[448:480] = hashlib.sha256(bytes(binary) + json_area).digest()
        f.seek(offset)
        f.write(bytes(binary) + json_area)
PY
}

# ---- the header ------------------------------------------------------------------------------------

img=$(variant truncated-header EUCLEAN)
truncate -s 8192 "$img"

img=$(variant header-checksum EUCLEAN)
edit "$img" "" keep

img=$(variant damaged-header-json EUCLEAN)
raw=$(python3 - "$img" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    h = f.read(4096)
    size = struct.unpack(">Q", h[8:16])[0]
    text = f.read(size - 4096).split(b"\0", 1)[0].decode()
print(text.replace('"keyslots":{', '"keyslots":{{', 1), end="")
PY
)
edit "$img" "$raw" raw

img=$(variant luks1 EMEDIUMTYPE)
truncate -s 0 "$img"
truncate -s 32M "$img"
echo -n x | cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file - "$img"

img=$(variant not-luks EMEDIUMTYPE)
truncate -s 0 "$img"
truncate -s 32M "$img"
mkfs.ext4 -q -F "$img" </dev/null

img=$(variant no-token ENOMSG)
edit "$img" 'del j["tokens"]["0"]'

# ---- the token -------------------------------------------------------------------------------------

img=$(variant token-newer-version EPROTONOSUPPORT)
edit "$img" 't["sealvol_version"] = 3'
img=$(variant token-version-zero EBADMSG)
edit "$img" 't["sealvol_version"] = 0'
img=$(variant token-version-string EBADMSG)
edit "$img" 't["sealvol_version"] = "2"'
img=$(variant token-v1-fields EBADMSG)
edit "$img" 't["sealvol_version"] = 1'
img=$(variant token-wrong-types EBADMSG)
edit "$img" 't["protectors"] = {"tpm": t["protectors"][0]}'
img=$(variant token-unknown-field EBADMSG)
edit "$img" 't["colour"] = "red"'
img=$(variant token-missing-field EBADMSG)
edit "$img" 'del t["vmk_id"]'

img=$(variant duplicate-protectors EBADMSG)
edit "$img" 't["protectors"].append(dict(t["protectors"][0]))'
img=$(variant duplicate-tokens EBADMSG)
edit "$img" 'j["tokens"]["1"] = dict(t)'
img=$(variant protector-same-slot EBADMSG)
edit "$img" 't["protectors"][1]["keyslot"] = t["protectors"][0]["keyslot"]'

img=$(variant keyslot-out-of-range EBADMSG)
edit "$img" 't["protectors"][0]["keyslot"] = 99'
img=$(variant keyslot-negative EBADMSG)
edit "$img" 't["protectors"][0]["keyslot"] = -1'
img=$(variant keyslot-huge EBADMSG)
edit "$img" 't["protectors"][0]["keyslot"] = 2**32'
img=$(variant pending-out-of-range EBADMSG)
edit "$img" 't["pending"] = [dict(t["protectors"][1], keyslot=4096)]'

img=$(variant oversized-hostname EBADMSG)
edit "$img" 't["hostname"] = "h" * 4000'
img=$(variant oversized-escrow EBADMSG)
edit "$img" '
rec = next(p for p in t["protectors"] if p["type"] == "recovery")
rec["escrow"] = [{"target": "spool", "state": "done", "time": "2024-01-01T00:00:00Z", "verified": True, "location": "x"}] * 17'
# A token over the 32 KiB limit needs a bigger JSON area than the default 16 KiB header: this one is
# made with --luks2-metadata-size and gets the token of SOURCE plus padding in its hostname.
img=$(variant oversized-token EBADMSG)
truncate -s 0 "$img"
truncate -s 32M "$img"
echo -n x | cryptsetup luksFormat -q --type luks2 --luks2-metadata-size 64k --pbkdf pbkdf2 \
  --pbkdf-force-iterations 1000 --key-file - "$img"
token=$(cryptsetup token export --token-id 0 "$src")
python3 - "$img" "$token" <<'PY'
import json, subprocess, sys
t = json.loads(sys.argv[2])
t["keyslots"] = ["0"]
t["protectors"] = [dict(t["protectors"][0], keyslot=0)]
t["hostname"] = "h" * 40000
uuid = subprocess.run(["cryptsetup", "luksUUID", sys.argv[1]], check=True, capture_output=True, text=True).stdout.strip()
t["volume_uuid"] = uuid
subprocess.run(["cryptsetup", "token", "import", "--token-id", "0", sys.argv[1]], input=json.dumps(t), text=True, check=True)
PY

img=$(variant token-from-other-volume EXDEV)
OTHER_TOKEN=$(cryptsetup token export --token-id 0 "$other") \
  edit "$img" 'import os; j["tokens"]["0"] = json.loads(os.environ["OTHER_TOKEN"])'

img=$(variant missing-keyslot EBADMSG)
recovery_slot=$(python3 -c 'import json,sys; t=json.loads(sys.argv[1]); print(next(p["keyslot"] for p in t["protectors"] if p["type"] == "recovery"))' \
  "$(cryptsetup token export --token-id 0 "$src")")
# (In batch mode it asks for no passphrase, but says so on stderr: "Nothing to read on input".)
cryptsetup -q luksKillSlot "$img" "$recovery_slot" </dev/null 2>/dev/null

img=$(variant missing-keyslot-raw EUCLEAN)
edit "$img" "
s = '$recovery_slot'
del j['keyslots'][s]
for d in j['digests'].values():
    d['keyslots'] = [k for k in d['keyslots'] if k != s]"

# ---- tokens that load, and protectors that must then refuse --------------------------------------

img=$(variant dra-cms-damaged EBADMSG)
edit "$img" '
import base64
dra = next(p for p in t["protectors"] if p["type"] == "dra")
dra["dra_cms"] = base64.b64encode(b"\x30\x82" + b"\xff" * 200).decode()'

img=$(variant token-mac-wrong EBADE)
edit "$img" 't["mac"] = ("0" if t["mac"][0] != "0" else "1") + t["mac"][1:]'
img=$(variant token-edited EBADE)
edit "$img" 't["hostname"] = "planted.example.com"'

# A keyslot's KDF parameters, as LUKS2 keeps them in its JSON (the keyslot then opens with nothing,
# which does not matter: what is tested is that it is not tried).
slot_of() { # type
  python3 -c 'import json,sys; t=json.loads(sys.argv[1]); print(next(p["keyslot"] for p in t["protectors"] if p["type"] == sys.argv[2]))' \
    "$(cryptsetup token export --token-id 0 "$src")" "$1"
}
tpm_slot=$(slot_of tpm)
img=$(variant tpm-kdf-huge EBADE)
edit "$img" "j['keyslots']['$tpm_slot']['kdf']['iterations'] = 2**24"
img=$(variant tpm-kdf-argon2 EBADE)
edit "$img" "
k = j['keyslots']['$tpm_slot']['kdf']
j['keyslots']['$tpm_slot']['kdf'] = {'type': 'argon2id', 'time': 4, 'memory': 4194304, 'cpus': 4, 'salt': k['salt']}"
img=$(variant recovery-kdf-huge EBADE)
edit "$img" "j['keyslots']['$recovery_slot']['kdf']['iterations'] = 2**24"
img=$(variant recovery-kdf-argon2 EBADE)
edit "$img" "
k = j['keyslots']['$recovery_slot']['kdf']
j['keyslots']['$recovery_slot']['kdf'] = {'type': 'argon2id', 'time': 4, 'memory': 4194304, 'cpus': 4, 'salt': k['salt']}"
