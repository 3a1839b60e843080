"""The image's time setup: chrony installed and configured, timesyncd masked, meterd's [time] in step."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
IMAGE = ROOT / "image"
CHRONY_CONF = IMAGE / "variants/meter/etc/chrony/chrony.conf"
STAGE = IMAGE / "stage-meter/00-meter"


def directives() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in CHRONY_CONF.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, rest = line.partition(" ")
            out.setdefault(key, []).append(rest.strip())
    return out


def test_chrony_is_installed_and_timesyncd_masked():
    packages = [ln.strip() for ln in (STAGE / "00-packages-nr").read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    assert "chrony" in packages
    chroot = (STAGE / "02-run-chroot.sh").read_text()
    assert "systemctl mask systemd-timesyncd.service" in chroot
    assert "apt-get purge -y fake-hwclock" in chroot


def test_chrony_keeps_the_rtc_and_steps_at_the_meters_threshold():
    d = directives()
    assert d["rtcsync"] == [""]  # the kernel's 11-minute mode: the RTC (UTC) kept from the system clock
    assert "rtcfile" not in d and "hwclockfile" not in d
    threshold, limit = d["makestep"][0].split()
    assert limit == "-1"  # steps are allowed at any time, not only at boot
    pi = tomllib.loads((ROOT / "config/pi.toml").read_text())["time"]
    assert float(threshold) == pi["event_threshold_s"]
    assert pi["source"] == "chrony"
    # meterd reads chronyd over the monitoring port on the loopback, the one chronyd listens on
    assert d["bindcmdaddress"] == [pi["chrony_host"]] and d["cmdport"] == ["323"]


def test_chronyd_parses_the_config():
    exe = shutil.which("chronyd") or ("/usr/sbin/chronyd" if Path("/usr/sbin/chronyd").exists() else None)
    if exe is None:
        pytest.skip("chronyd not installed")
    proc = subprocess.run([exe, "-p", "-f", str(CHRONY_CONF)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^makestep 1 -1$", proc.stdout, re.M)


def test_chronyd_refuses_a_broken_config(tmp_path):
    exe = shutil.which("chronyd") or ("/usr/sbin/chronyd" if Path("/usr/sbin/chronyd").exists() else None)
    if exe is None:
        pytest.skip("chronyd not installed")
    bad = tmp_path / "chrony.conf"
    bad.write_text(CHRONY_CONF.read_text() + "makestep one -1\n")
    proc = subprocess.run([exe, "-p", "-f", str(bad)], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0


def test_the_pi_config_sets_every_time_key():
    import dataclasses

    from meterd.app.features.time import TimeSection

    pi = tomllib.loads((ROOT / "config/pi.toml").read_text())["time"]
    assert {f.name for f in dataclasses.fields(TimeSection)} == set(pi)
