#!/bin/bash -e
# pi-gen chroot step of the PMM1221 meter stage (runs inside the image after 01-run.sh):
# users and groups, the project venv, clock ownership, enabled services.

variant="$(cat /usr/lib/meterd/image-variant)"

# System users and groups (meterd: spi gpio dialout i2c rtc; meter-clock: rtc; or ciu).
/usr/lib/meterd/create-users "${variant}"

# The project in its own venv; Debian's lgpio, spidev, systemd, numpy ... are used from the
# system site packages, pip adds only what Debian lacks.
python3 -m venv --system-site-packages /opt/meterd/venv
/opt/meterd/venv/bin/pip install --no-cache-dir /opt/meterd/wheels/*.whl
# meterd runs with python -OO (meterd.service): its optimised bytecode (.opt-2.pyc) for everything it
# imports, made here once (/opt and /usr are read-only to meterd, which would otherwise compile
# every module from source at each start)
/opt/meterd/venv/bin/python -OO -m compileall -q -j 0 -o 2 /opt/meterd/venv /usr/lib/python3/dist-packages \
	"$(/opt/meterd/venv/bin/python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
rm -rf /opt/meterd/wheels

# systemd-repart is its own package from systemd 256 on (part of systemd before).
if ! command -v systemd-repart >/dev/null; then
	apt-get install -y --no-install-recommends systemd-repart
fi

# Time: the PCF2129 sets the clock at boot (no fake-hwclock); chronyd keeps it from NTP when a
# network medium is up, with the RTC from the system clock (rtcsync); a DLMS clock write still
# sets it through meter-clock. One NTP client only: timesyncd stays masked (the chrony package
# enables chrony.service itself; its config comes with the variant's files).
apt-get purge -y fake-hwclock
systemctl mask systemd-timesyncd.service

# Serial ports: ttyAMA0 is the optical port, not Bluetooth or a console.
if systemctl list-unit-files hciuart.service >/dev/null; then
	systemctl disable hciuart.service
fi
systemctl mask serial-getty@ttyAMA0.service serial-getty@serial0.service

systemctl enable meter-data-partition.service
case "${variant}" in
meter)
	chown root:meterd /etc/meterd/meterd.toml
	chmod 640 /etc/meterd/meterd.toml
	systemctl enable meterd.service meter-clock.service
	;;
ciu)
	systemctl enable ciu.service
	;;
esac
