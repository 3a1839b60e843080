#!/bin/bash
# Convert a pi-gen image (MBR: FAT bootfs + ext4 rootfs ending at the image end) to GPT, so that
# systemd-repart can add the /data partition on first boot (it refuses MBR disks).
# Usage: image/convert-gpt.sh IMAGE [arm64|armhf]
#   Grows the file by 1 MiB for the backup GPT, converts the table in place (partition contents
#   untouched), types bootfs "Microsoft basic data" (0700) and rootfs as the architecture's root
#   partition, names them bootfs and rootfs. Needs sfdisk (fdisk) and sgdisk (gdisk).
# Boots on a Raspberry Pi 4/5 (GPT boot in the EEPROM bootloader), not on a Pi 3 or older.
set -euo pipefail

if [ "$#" -lt 1 ]; then
	echo "usage: convert-gpt.sh IMAGE [arm64|armhf]" >&2
	exit 2
fi
image="$1"
arch="${2:-arm64}"
case "${arch}" in
arm64) root_type=b921b045-1df0-41c3-af44-4c6f280d3fae ;;
armhf) root_type=69dad710-2ce4-4e3c-b16c-21a1d49abed3 ;;
*)
	echo "convert-gpt: architecture must be arm64 or armhf, not '${arch}'" >&2
	exit 2
	;;
esac

label="$(sfdisk --dump "${image}" | sed -n 's/^label: //p')"
if [ "${label}" != dos ]; then
	echo "convert-gpt: ${image} has a '${label}' partition table, expected dos (MBR)" >&2
	exit 1
fi
count="$(sfdisk --dump "${image}" | grep -c '^[^ ]* : start=')"
if [ "${count}" != 2 ]; then
	echo "convert-gpt: ${image} has ${count} partitions, expected bootfs and rootfs" >&2
	exit 1
fi

truncate -s +1M "${image}"
sgdisk --mbrtogpt "${image}" >/dev/null
sgdisk -t 1:0700 -c 1:bootfs -t "2:${root_type}" -c 2:rootfs "${image}" >/dev/null
sgdisk --verify "${image}" >/dev/null
echo "convert-gpt: ${image} is GPT (bootfs, rootfs ${arch})"
