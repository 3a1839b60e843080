#!/bin/bash
# Build a signed RAUC bundle of a meter release (docs/firmware.md).
#
#   image/rauc/build-bundle.sh --version 1.2.0 [--rootfs ROOTFS.img | --size-mb N] [--boot BOOT.vfat]
#                              [--compatible pmm1221-rpi4] [--cert CERT.pem --key KEY.pem] [--out FILE]
#                              [--encrypt-to METER-CERT.pem [--keyring CA.pem]]
#
# Without --cert/--key the bundle is signed with the development key in image/keys/dev/
# (git-ignored), made here with openssl on first use; its certificate (keyring.pem) is what a
# simulated meter and a development image trust. Production signing keys never live in the
# repository: pass their paths (or PMM_SIGNING_CERT / PMM_SIGNING_KEY); a key inside the
# source tree is refused. --rootfs is the release's root filesystem image (pi-gen's export);
# --size-mb makes a stand-in payload of that many MiB of random bytes (tests, bench); --boot is
# the release's boot file system (make-ab-image.sh's boot.vfat) for the slot's boot partition.
# The manifest carries the version, the board's compatible string and the metrology
# identification: its identifier and the SHA-256 of the metrology sources
# (meterd.store.firmware_store.metrology_digest), in [meta.metrology] and, because RAUC 1.8
# drops meta sections when it writes the bundle, in the description as well.
# --encrypt-to makes a crypt bundle (verity format, payload encrypted) readable only with the
# private key of that certificate (the meter's, or a group's): rauc encrypt after signing,
# which checks the signature first against --keyring (default: the signing certificate).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VERSION=""
COMPATIBLE="pmm1221-rpi4"
ROOTFS=""
SIZE_MB=""
BOOT=""
CERT=${PMM_SIGNING_CERT:-}
KEY=${PMM_SIGNING_KEY:-}
OUT=""
ENCRYPT_TO=""
KEYRING=""
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

die() { echo "build-bundle: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --version) VERSION=${2:?}; shift 2 ;;
        --compatible) COMPATIBLE=${2:?}; shift 2 ;;
        --rootfs) ROOTFS=${2:?}; shift 2 ;;
        --size-mb) SIZE_MB=${2:?}; shift 2 ;;
        --boot) BOOT=${2:?}; shift 2 ;;
        --cert) CERT=${2:?}; shift 2 ;;
        --key) KEY=${2:?}; shift 2 ;;
        --out) OUT=${2:?}; shift 2 ;;
        --encrypt-to) ENCRYPT_TO=${2:?}; shift 2 ;;
        --keyring) KEYRING=${2:?}; shift 2 ;;
        *) die "unknown argument $1" ;;
    esac
done
[[ "$VERSION" =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "--version must be dotted numeric (e.g. 1.2.0)"
[ -n "$ROOTFS" ] || [ -n "$SIZE_MB" ] || die "give --rootfs IMAGE or --size-mb N"
OUT=${OUT:-$REPO/build/bundles/meter-$VERSION.raucb}

if [ -z "$CERT" ] && [ -z "$KEY" ]; then
    DEV=$(bash "$HERE/dev-keys.sh")
    CERT="$DEV/cert.pem"
    KEY="$DEV/key.pem"
else
    if [ ! -f "$CERT" ] || [ ! -f "$KEY" ]; then die "--cert and --key must both name files"; fi
    case "$(cd "$(dirname "$KEY")" && pwd)/" in
        "$REPO"/image/keys/dev/*) ;;
        "$REPO"/*) die "the signing key $KEY is inside the source tree: keep production keys outside it" ;;
    esac
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/content"
if [ -n "$ROOTFS" ]; then
    cp "$ROOTFS" "$WORK/content/rootfs.img"
else
    head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$WORK/content/rootfs.img"
fi
DIGEST=$(cd "$REPO" && PYTHONPATH="$REPO" "$PYTHON" -c \
    'from meterd.store.firmware_store import metrology_digest; print(metrology_digest())')
METROLOGY_ID="PMM-CORE $VERSION"
BUILD=$(git -C "$REPO" describe --always --dirty 2> /dev/null || echo unknown)
cat > "$WORK/content/manifest.raucm" <<MANIFEST
[update]
compatible=$COMPATIBLE
version=$VERSION
description=metrology_id=$METROLOGY_ID; metrology_sha256=$DIGEST
build=$BUILD

[bundle]
format=$([ -n "$ENCRYPT_TO" ] && echo crypt || echo plain)

[meta.metrology]
id=$METROLOGY_ID
sha256=$DIGEST

[image.rootfs]
filename=rootfs.img
MANIFEST
if [ -n "$BOOT" ]; then
    [ -f "$BOOT" ] || die "--boot $BOOT: no such file"
    cp "$BOOT" "$WORK/content/boot.vfat"
    printf '\n[image.boot]\nfilename=boot.vfat\n' >> "$WORK/content/manifest.raucm"
fi
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT"
if [ -n "$ENCRYPT_TO" ]; then
    [ -f "$ENCRYPT_TO" ] || die "--encrypt-to $ENCRYPT_TO: no such certificate"
    rauc bundle --cert="$CERT" --key="$KEY" "$WORK/content" "$WORK/unencrypted.raucb" > "$WORK/rauc.log" 2>&1 \
        || { cat "$WORK/rauc.log" >&2; die "rauc bundle failed"; }
    rauc encrypt --keyring="${KEYRING:-$CERT}" --to="$ENCRYPT_TO" "$WORK/unencrypted.raucb" "$OUT" >> "$WORK/rauc.log" 2>&1 \
        || { cat "$WORK/rauc.log" >&2; die "rauc encrypt failed"; }
else
    rauc bundle --cert="$CERT" --key="$KEY" "$WORK/content" "$OUT" > "$WORK/rauc.log" 2>&1 \
        || { cat "$WORK/rauc.log" >&2; die "rauc bundle failed"; }
fi
echo "$OUT"
