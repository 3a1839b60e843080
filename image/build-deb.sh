#!/bin/bash
# Build the meterd-system Debian package: the meter's systemd units (and their /data drop-in),
# udev rules, first-boot /data partitioning, /etc/meterd/meterd.toml as a conffile, and a
# postinst that creates the meter's system users and groups. The Python code itself goes into
# /opt/meterd/venv from the project's wheel (see image/stage-meter); units are not enabled here.
# Usage: image/build-deb.sh [OUTDIR]   (default OUTDIR: image/build) -> prints the .deb path
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "${here}")"
out="${1:-${here}/build}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "${repo}/pyproject.toml" | head -n 1)"
package=meterd-system
staging="$(mktemp -d)"
trap 'rm -rf "${staging}"' EXIT
chmod 755 "${staging}"

put() { # put MODE SOURCE DEST (DEST relative to the package root)
	install -D -m "$1" "$2" "${staging}/$3"
}

put 644 "${repo}/systemd/meterd.service" usr/lib/systemd/system/meterd.service
put 644 "${repo}/systemd/meter-clock.service" usr/lib/systemd/system/meter-clock.service
put 644 "${here}/rootfs/usr/lib/systemd/system/meter-data-partition.service" \
	usr/lib/systemd/system/meter-data-partition.service
put 644 "${here}/variants/meter/usr/lib/systemd/system/meterd.service.d/10-data.conf" \
	usr/lib/systemd/system/meterd.service.d/10-data.conf
put 644 "${here}/variants/meter/usr/lib/tmpfiles.d/meterd-data.conf" usr/lib/tmpfiles.d/meterd-data.conf
put 644 "${here}/udev/99-meter.rules" usr/lib/udev/rules.d/99-meter.rules
put 755 "${here}/rootfs/usr/lib/meterd/create-users" usr/lib/meterd/create-users
put 755 "${here}/rootfs/usr/lib/meterd/data-partition" usr/lib/meterd/data-partition
put 644 "${here}/rootfs/usr/lib/meterd/repart.d/50-data.conf" usr/lib/meterd/repart.d/50-data.conf
put 644 "${here}/rootfs/usr/lib/systemd/system.conf.d/50-meter-watchdog.conf" \
	usr/lib/systemd/system.conf.d/50-meter-watchdog.conf
put 644 "${repo}/config/pi.toml" etc/meterd/meterd.toml

doc="${staging}/usr/share/doc/${package}"
install -d -m 755 "${doc}"
install -m 644 "${repo}/README.md" "${doc}/README.md"   # the units' Documentation= points here
cat >"${doc}/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: pmm-reference-meter

Files: *
Copyright: 2026 PMM Reference Meter developers
License: GPL-2+
 This program is free software; you can redistribute it and/or modify it under the terms of the
 GNU General Public License as published by the Free Software Foundation; either version 2 of
 the License, or (at your option) any later version.
 .
 On Debian systems, the complete text of the GNU General Public License version 2 can be found
 in /usr/share/common-licenses/GPL-2.
COPYRIGHT
gzip -9n >"${doc}/changelog.gz" <<CHANGELOG
${package} (${version}) unstable; urgency=medium

  * Meter system integration: units, udev rules, /data partition, users.

 -- PMM Reference Meter developers <meter@pmm-reference-meter.org>  Mon, 01 Jun 2026 00:00:00 +0000
CHANGELOG
chmod 644 "${doc}/changelog.gz" "${doc}/copyright"

install -d -m 755 "${staging}/DEBIAN"
cat >"${staging}/DEBIAN/control" <<CONTROL
Package: ${package}
Version: ${version}
Architecture: all
Maintainer: PMM Reference Meter developers <meter@pmm-reference-meter.org>
Depends: adduser, systemd, udev, e2fsprogs, systemd-repart | systemd (<< 256)
Section: misc
Priority: optional
Homepage: https://github.com/pmm-reference-meter/pmm-reference-meter
Description: PMM1221 reference meter - system integration
 Integrates the PMM1221 three-phase smart electricity meter daemon (meterd)
 with a Raspberry Pi: systemd units for meterd and its clock helper, with
 their state on a /data partition created on first boot, udev rules giving
 the meter's serial ports stable names, and /etc/meterd/meterd.toml.
CONTROL
printf '%s\n' /etc/meterd/meterd.toml >"${staging}/DEBIAN/conffiles"
cat >"${staging}/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	/usr/lib/meterd/create-users meter
	chown root:meterd /etc/meterd/meterd.toml
	chmod 640 /etc/meterd/meterd.toml
fi
POSTINST
chmod 755 "${staging}/DEBIAN/postinst"
(cd "${staging}" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
	>"${staging}/DEBIAN/md5sums"
chmod 644 "${staging}/DEBIAN/control" "${staging}/DEBIAN/conffiles" "${staging}/DEBIAN/md5sums"

mkdir -p "${out}"
deb="${out}/${package}_${version}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "${staging}" "${deb}" >/dev/null
echo "${deb}"
