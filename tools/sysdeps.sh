#!/usr/bin/env bash
# Install the Debian/Ubuntu packages named on the command line that are missing.
# Uses apt-get directly as root, sudo otherwise; says what to do when neither works.
set -u
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing system packages: ${missing[*]}"
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "please install as root: apt-get install ${missing[*]}" >&2; exit 1; fi
$SUDO apt-get update -qq >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
  || { echo "could not install ${missing[*]}; install them and run make again" >&2; exit 1; }
