#!/bin/bash -e
# pi-gen host step of the PMM1221 meter stage: installs what image/prepare-stage.sh put in
# files/ into ${ROOTFS_DIR}: config.txt fragment, the compiled overlay, cmdline.txt and fstab
# for a read-only root with a /data partition, udev rules, unit files, the meter config and the
# project's wheel (installed into the venv by 02-run-chroot.sh).
# Runs from this directory; METER_STAGE_FILES overrides where the prepared files are.

files="${METER_STAGE_FILES:-files}"
root="${ROOTFS_DIR:?ROOTFS_DIR is not set (run by pi-gen)}"
firmware="${root}/boot/firmware"

if [ ! -f "${files}/variant" ]; then
	echo "01-run.sh: ${files}/variant missing: run image/prepare-stage.sh first" >&2
	exit 1
fi
variant="$(cat "${files}/variant")"
case "${variant}" in
meter) fragment="${files}/boot/config.txt" ;;
ciu) fragment="${files}/boot/config-ciu.txt" ;;
*)
	echo "01-run.sh: unknown variant '${variant}'" >&2
	exit 1
	;;
esac

# Install every file of a tree under the root, keeping the executable bit.
install_tree() {
	local src="$1" rel
	while IFS= read -r -d '' rel; do
		rel="${rel#./}"
		if [ -x "${src}/${rel}" ]; then
			install -D -m 755 "${src}/${rel}" "${root}/${rel}"
		else
			install -D -m 644 "${src}/${rel}" "${root}/${rel}"
		fi
	done < <(cd "${src}" && find . -type f -print0)
}

# config.txt: our block replaces any earlier copy of it (re-runs stay idempotent).
sed -i '/^# --- PMM1221 /,/^# --- end PMM1221 /d' "${firmware}/config.txt"
cat "${fragment}" >>"${firmware}/config.txt"
install -D -m 644 "${files}/overlays/meter-rs485-uart3.dtbo" "${firmware}/overlays/meter-rs485-uart3.dtbo"

# cmdline.txt: root by label (the image is converted to GPT after export, which changes the
# PARTUUIDs), no serial console (ttyAMA0 is the optical port), no root auto-expand (the free
# space is for /data), read-only root through overlayroot with fstab mounts left alone.
sed -i -E \
	-e 's/root=ROOTDEV/root=LABEL=rootfs/' \
	-e 's/console=serial0,[0-9]+ ?//' \
	-e 's# ?init=/usr/lib/raspberrypi-sys-mods/firstboot##' \
	-e 's/ resize( |$)/\1/' \
	"${firmware}/cmdline.txt"
if ! grep -q 'overlayroot=' "${firmware}/cmdline.txt"; then
	sed -i '1s/^/overlayroot=tmpfs:recurse=0 /' "${firmware}/cmdline.txt"
fi

# fstab: labels instead of PARTUUIDs, boot read-only, and the /data partition. The meter's A/B
# image (image/make-ab-image.sh) has two boot and two root partitions with the same labels: its
# fstab names the running slot's (/dev/meter-boot, /dev/meter-root: udev, rauc.slot= of the
# kernel command line) and mounts the autoboot partition the tryboot handler writes.
if [ "${variant}" = meter ]; then
	boot_dev=/dev/meter-boot
	root_dev=/dev/meter-root
else
	boot_dev=LABEL=bootfs
	root_dev=LABEL=rootfs
fi
sed -i -E \
	-e "s#^BOOTDEV([[:space:]]+/boot/firmware[[:space:]]+vfat[[:space:]]+)defaults#${boot_dev}\\1defaults,ro#" \
	-e "s#^ROOTDEV([[:space:]])#${root_dev}\\1#" \
	"${root}/etc/fstab"
if [ "${variant}" = meter ] && ! grep -q '^PARTLABEL=autoboot[[:space:]]' "${root}/etc/fstab"; then
	printf '%s\n' "PARTLABEL=autoboot  /boot/autoboot  vfat  defaults,noatime,nofail  0  2" >>"${root}/etc/fstab"
	install -d -m 755 "${root}/boot/autoboot"
fi
if ! grep -q '^LABEL=data[[:space:]]' "${root}/etc/fstab"; then
	printf '%s\n' "LABEL=data  /data  ext4  defaults,noatime,lazytime,commit=30,nofail,x-systemd.device-timeout=120s,x-systemd.before=systemd-tmpfiles-setup.service  0  2" >>"${root}/etc/fstab"
fi
install -d -m 755 "${root}/data"

# udev rules, first-boot partitioning, users script, the variant's drop-ins and files.
install -D -m 644 "${files}/udev/99-meter.rules" "${root}/usr/lib/udev/rules.d/99-meter.rules"
if [ "${variant}" = meter ]; then
	install -D -m 644 "${files}/udev/98-meter-slots.rules" "${root}/usr/lib/udev/rules.d/98-meter-slots.rules"
fi
install_tree "${files}/rootfs"
install_tree "${files}/variants/${variant}"
for unit in "${files}"/systemd/*.service; do
	install -D -m 644 "${unit}" "${root}/usr/lib/systemd/system/$(basename "${unit}")"
done
if [ "${variant}" = meter ]; then
	install -D -m 644 "${files}/meterd.toml" "${root}/etc/meterd/meterd.toml"
	# RAUC (docs/firmware.md): its configuration, the keyring (certificates only), the tryboot
	# back end and the post-install handler named in system.conf
	install -D -m 644 "${files}/rauc/system.conf" "${root}/etc/rauc/system.conf"
	install -D -m 644 "${files}/rauc/keyring.pem" "${root}/etc/rauc/keyring.pem"
	install -D -m 755 "${files}/rauc/tryboot-handler" "${root}/usr/lib/meterd/tryboot-handler"
	install -D -m 755 "${files}/rauc/post-install" "${root}/usr/lib/meterd/rauc-post-install"
	install -D -m 755 "${files}/rauc/slot-cmdline" "${root}/usr/lib/meterd/slot-cmdline"
fi
printf '%s\n' "${variant}" >"${root}/usr/lib/meterd/image-variant"

# The project's wheel, installed into /opt/meterd/venv by 02-run-chroot.sh.
install -d -m 755 "${root}/opt/meterd/wheels"
install -m 644 "${files}"/wheels/*.whl "${root}/opt/meterd/wheels/"
