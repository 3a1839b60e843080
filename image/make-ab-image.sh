#!/bin/bash
# Assemble the meter's A/B image from pi-gen's export (docs/firmware.md, "Slot layout on the Pi").
# Usage: image/make-ab-image.sh IMAGE OUTDIR [--arch arm64|armhf] [--root-mib N]
#   IMAGE   pi-gen's export (MBR: FAT bootfs, ext4 rootfs), DEPLOY_COMPRESSION=none
#   OUTDIR  gets meter-ab.img (GPT, the layout below, slot A active, slot B a copy of A),
#           rootfs.img and boot.vfat (the slot images a release bundle carries:
#           image/rauc/build-bundle.sh --rootfs OUTDIR/rootfs.img --boot OUTDIR/boot.vfat)
#   --root-mib  size of each root slot (MiB, default 3072; at least the exported root file system)
# Layout (GPT partition names; /etc/rauc/system.conf and the tryboot handler rely on them):
#   p1 autoboot  FAT  AUTOBOOT_MIB  autoboot.txt: [all] boot_partition=2, [tryboot] 3
#   p2 boot-a    FAT  the export's bootfs, cmdline.txt: root=PARTUUID=<p4> rauc.slot=A
#   p3 boot-b    FAT  the same, root=PARTUUID=<p5> rauc.slot=B
#   p4 rootfs-a  ext4 the export's rootfs grown to --root-mib
#   p5 rootfs-b  ext4 a copy of rootfs-a
#   p6 data      ext4 made on first boot in the rest of the card (meter-data-partition.service)
# Needs sfdisk, sgdisk (gdisk), mkfs.vfat (dosfstools), mtools, e2fsck and resize2fs
# (e2fsprogs); no root and no mounts: the FAT files are written with mtools.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
AUTOBOOT_MIB=64
FIRST_MIB=8
# partition number, name, GPT type (root types per architecture below)
LAYOUT="1 autoboot 0700
2 boot-a 0700
3 boot-b 0700
4 rootfs-a ROOT
5 rootfs-b ROOT"

die() { echo "make-ab-image: $*" >&2; exit "${2:-1}"; }

[ "$#" -ge 2 ] || die "usage: make-ab-image.sh IMAGE OUTDIR [--arch arm64|armhf] [--root-mib N]" 2
image="$1"
out="$2"
shift 2
arch=arm64
root_mib=3072
while [ "$#" -gt 0 ]; do
	case "$1" in
	--arch) arch="$2"; shift 2 ;;
	--root-mib) root_mib="$2"; shift 2 ;;
	*) die "unknown argument '$1'" 2 ;;
	esac
done
case "${arch}" in
arm64) root_type=b921b045-1df0-41c3-af44-4c6f280d3fae ;;
armhf) root_type=69dad710-2ce4-4e3c-b16c-21a1d49abed3 ;;
*) die "architecture must be arm64 or armhf, not '${arch}'" 2 ;;
esac
[ -f "${image}" ] || die "no image at ${image}"
label="$(sfdisk --dump "${image}" | sed -n 's/^label: //p')"
[ "${label}" = dos ] || die "${image} has a '${label}' partition table, expected pi-gen's dos (MBR)"
mapfile -t parts < <(sfdisk --dump "${image}" | sed -n 's/^[^ ]* : start= *\([0-9]*\), size= *\([0-9]*\),.*/\1 \2/p')
[ "${#parts[@]}" = 2 ] || die "${image} has ${#parts[@]} partitions, expected bootfs and rootfs"
read -r boot_start boot_sectors <<<"${parts[0]}"
read -r root_start root_sectors <<<"${parts[1]}"

mkdir -p "${out}"
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
export MTOOLS_SKIP_CHECK=1

# The slot images: the export's partitions, the root file system grown to its slot.
dd if="${image}" of="${out}/boot.vfat" bs=512 skip="${boot_start}" count="${boot_sectors}" status=none
dd if="${image}" of="${out}/rootfs.img" bs=512 skip="${root_start}" count="${root_sectors}" status=none
[ $((root_sectors * 512)) -le $((root_mib * 1024 * 1024)) ] || die "the root file system is larger than --root-mib ${root_mib}"
e2fsck -fy "${out}/rootfs.img" >/dev/null 2>&1 || [ "$?" -le 1 ] || die "e2fsck found errors in the root file system"
resize2fs -f "${out}/rootfs.img" "${root_mib}M" >/dev/null 2>&1 || die "resize2fs failed"
boot_mib=$(((boot_sectors * 512 + 1048575) / 1048576))

# The GPT: 8 MiB before the first partition (as pi-gen), 1 MiB after the last for the backup table.
ab="${out}/meter-ab.img"
rm -f "${ab}"
truncate -s $(((FIRST_MIB + AUTOBOOT_MIB + 2 * boot_mib + 2 * root_mib + 1) * 1024 * 1024)) "${ab}"
table=(-o)  # one sgdisk run: each one syncs and waits for the kernel
while read -r number name type; do
	case "${name}" in
	autoboot) size="${AUTOBOOT_MIB}" ;;
	boot-*) size="${boot_mib}" ;;
	rootfs-*) size="${root_mib}" ;;
	esac
	[ "${type}" = ROOT ] && type="${root_type}"
	start=0
	[ "${number}" = 1 ] && start="${FIRST_MIB}M"
	table+=(-n "${number}:${start}:+${size}M" -t "${number}:${type}" -c "${number}:${name}")
done <<<"${LAYOUT}"
sgdisk "${table[@]}" "${ab}" >/dev/null
sgdisk --verify "${ab}" >/dev/null

part_start() { sgdisk -i "$1" "${ab}" | sed -n 's/^First sector: \([0-9]*\).*/\1/p'; }
part_uuid() { sgdisk -i "$1" "${ab}" | sed -n 's/^Partition unique GUID: //p' | tr 'A-F' 'a-f'; }
put() { dd if="$1" of="${ab}" bs=512 seek="$(part_start "$2")" conv=notrunc,sparse status=none; }

# p1: autoboot.txt, slot A permanent, slot B for a trial (the tryboot handler rewrites it).
truncate -s "${AUTOBOOT_MIB}M" "${work}/autoboot.vfat"
mkfs.vfat -n AUTOBOOT "${work}/autoboot.vfat" >/dev/null
printf '[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n' >"${work}/autoboot.txt"
mcopy -i "${work}/autoboot.vfat" "${work}/autoboot.txt" ::autoboot.txt
put "${work}/autoboot.vfat" 1

# p2/p3: the boot file system, each cmdline.txt naming its slot and root partition.
for slot in A B; do
	case "${slot}" in A) boot=2 root=4 ;; B) boot=3 root=5 ;; esac
	cp "${out}/boot.vfat" "${work}/boot.vfat"
	mtype -i "${work}/boot.vfat" ::cmdline.txt | tr -d '\r' >"${work}/cmdline.txt" || die "no cmdline.txt in bootfs"
	sh "${here}/rauc/slot-cmdline" "${work}/cmdline.txt" "${slot}" "$(part_uuid "${root}")"
	mcopy -o -i "${work}/boot.vfat" "${work}/cmdline.txt" ::cmdline.txt
	put "${work}/boot.vfat" "${boot}"
done

# p4/p5: the root file system in both slots (B is overwritten by the first update).
put "${out}/rootfs.img" 4
put "${out}/rootfs.img" 5
echo "make-ab-image: ${ab} (autoboot, boot-a, boot-b, rootfs-a, rootfs-b; ${arch}); slot images in ${out}"
