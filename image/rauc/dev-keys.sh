#!/bin/bash
# The development signing key of the bundles (docs/firmware.md, "Bundles and keys"): made with
# openssl on first use into image/keys/dev/ (git-ignored, mode 0700): key.pem, cert.pem and
# keyring.pem (what a development image and the simulated board trust). Prints the directory.
# Production keys never come from here: they stay outside the repository.
set -euo pipefail

DEV="$(cd "$(dirname "$0")/../.." && pwd)/image/keys/dev"
if [ ! -f "$DEV/key.pem" ]; then
    mkdir -p "$DEV"
    chmod 700 "$DEV"
    openssl req -x509 -newkey rsa:3072 -nodes -sha256 -days 3650 -subj "/O=PMM Reference Meter/CN=development signing" \
        -keyout "$DEV/key.pem" -out "$DEV/cert.pem" 2> /dev/null
    cp "$DEV/cert.pem" "$DEV/keyring.pem"
    echo "dev-keys: made the development signing key in $DEV (git-ignored)" >&2
fi
echo "$DEV"
