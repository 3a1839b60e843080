#!/bin/bash
# Prepare image/stage-meter for pi-gen: collect and build everything its host step installs.
# Usage: image/prepare-stage.sh [--variant meter|ciu] [--wheel FILE] [--out DIR]
#   --variant  meter (default: meterd + meter-clock) or ciu (the customer interface unit)
#   --wheel    use this wheel of the project instead of building one with pip (needs PyPI
#              for the build back end)
#   --out      where to put the files (default: image/stage-meter/00-meter/files)
#   --keyring  the CA certificate(s) the meter's RAUC trusts (PEM; default: PMM_RAUC_KEYRING, else
#              the development keyring image/keys/dev/keyring.pem, made on first use); never a key
# Needs dtc (device-tree-compiler). Validates config/pi.toml when meterd is importable.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "${here}")"
variant=meter
wheel=""
keyring="${PMM_RAUC_KEYRING:-}"
out="${here}/stage-meter/00-meter/files"
python="${PYTHON:-python3}"

while [ "$#" -gt 0 ]; do
	case "$1" in
	--variant) variant="$2"; shift 2 ;;
	--wheel) wheel="$2"; shift 2 ;;
	--out) out="$2"; shift 2 ;;
	--keyring) keyring="$2"; shift 2 ;;
	*)
		echo "prepare-stage: unknown argument '$1'" >&2
		exit 2
		;;
	esac
done
case "${variant}" in
meter | ciu) ;;
*)
	echo "prepare-stage: variant must be meter or ciu, not '${variant}'" >&2
	exit 2
	;;
esac

if [ "${variant}" = meter ]; then
	# the certificates RAUC trusts on the meter (production: the CA from outside the repository)
	if [ -z "${keyring}" ]; then
		keyring="$(bash "${here}/rauc/dev-keys.sh")/keyring.pem"
	fi
	if [ ! -f "${keyring}" ] || grep -q 'PRIVATE KEY' "${keyring}"; then
		echo "prepare-stage: keyring '${keyring}' is missing or holds a private key" >&2
		exit 2
	fi
fi

rm -rf "${out}"
mkdir -p "${out}/boot" "${out}/overlays" "${out}/udev" "${out}/systemd" "${out}/wheels" "${out}/variants"

cp "${here}"/boot/*.txt "${out}/boot/"
dtc -@ -q -I dts -O dtb -o "${out}/overlays/meter-rs485-uart3.dtbo" "${here}/overlays/meter-rs485-uart3-overlay.dts"
cp "${here}/udev/99-meter.rules" "${out}/udev/"
if [ "${variant}" = meter ]; then
	cp "${here}/udev/98-meter-slots.rules" "${out}/udev/"
fi
cp -a "${here}/rootfs" "${out}/rootfs"
cp -a "${here}/variants/${variant}" "${out}/variants/${variant}"
if [ "${variant}" = meter ]; then
	cp "${repo}/systemd/meterd.service" "${repo}/systemd/meter-clock.service" "${out}/systemd/"
	if "${python}" -c 'import meterd.app.config' 2>/dev/null; then
		(cd "${repo}" && "${python}" -m meterd check-config --config config/pi.toml --file-only)
	fi
	cp "${repo}/config/pi.toml" "${out}/meterd.toml"
	# RAUC: system.conf, the tryboot back end, the post-install handler and the keyring
	mkdir -p "${out}/rauc"
	cp "${here}/rauc/system.conf" "${here}/rauc/tryboot-handler" "${here}/rauc/post-install" \
		"${here}/rauc/slot-cmdline" "${out}/rauc/"
	cp "${keyring}" "${out}/rauc/keyring.pem"
else
	cp "${repo}/systemd/ciu.service" "${out}/systemd/"
fi

if [ -n "${wheel}" ]; then
	cp "${wheel}" "${out}/wheels/"
else
	"${python}" -m pip wheel --quiet --no-deps --wheel-dir "${out}/wheels" "${repo}"
fi
printf '%s\n' "${variant}" >"${out}/variant"
echo "prepare-stage: ${variant} stage files in ${out}"
