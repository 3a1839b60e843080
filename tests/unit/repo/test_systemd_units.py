"""The shipped systemd units verify offline without a single warning."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = sorted(Path("systemd").glob("*.service"))
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def prepared(unit: Path, tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at an executable that exists here (verify checks it)."""
    text = unit.read_text()
    text = re.sub(r"^ExecStart=(\S+)", "ExecStart=/bin/true", text, flags=re.M)
    out = tmp_path / unit.name
    out.write_text(text)
    return out


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_verifies_with_no_output(unit, tmp_path):
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(prepared(unit, tmp_path))],
                          capture_output=True, text=True, timeout=60)
    noise = [line for line in (proc.stdout + proc.stderr).splitlines()
             if line.strip() and "Failed to connect to bus" not in line]
    assert proc.returncode == 0 and noise == [], "\n".join(noise)


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_unit_is_hardened(unit, tmp_path):
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=35",
                           str(prepared(unit, tmp_path))], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_meterd_unit_is_notify_with_watchdog():
    text = Path("systemd/meterd.service").read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert line in text


def test_meterd_watchdog_and_realtime_metering_thread():
    text = Path("systemd/meterd.service").read_text()
    assert re.search(r"(?m)^WatchdogSec=\d+s$", text)
    assert "RestrictRealtime=no" in text and re.search(r"(?m)^LimitRTPRIO=[1-9]\d*$", text)


def test_image_arms_the_hardware_watchdog():
    drop_in = Path("image/rootfs/usr/lib/systemd/system.conf.d/50-meter-watchdog.conf")
    text = drop_in.read_text()
    assert "[Manager]" in text
    match = re.search(r"(?m)^RuntimeWatchdogSec=(\d+)s$", text)
    assert match and 0 < int(match.group(1)) <= 15  # the BCM2835 timer holds at most ~15 s
    assert drop_in.name in Path("image/build-deb.sh").read_text()


def test_meterd_runs_optimised_as_the_simulated_meter_does():
    """The unit and ``make run`` start meterd with the same interpreter options (-OO, no column
    ranges), and the image compiles the matching bytecode (read-only /opt and /usr: no compiling at each start)."""
    from meterd.app.simrun import METERD_PYTHON_FLAGS

    exec_start = re.search(r"(?m)^ExecStart=(.*)$", Path("systemd/meterd.service").read_text())
    assert exec_start is not None
    assert exec_start.group(1).split()[: len(METERD_PYTHON_FLAGS) + 3] == [
        "/opt/meterd/venv/bin/python", *METERD_PYTHON_FLAGS, "-m", "meterd"]
    chroot = Path("image/stage-meter/00-meter/02-run-chroot.sh").read_text()
    compiled = re.search(r"(?m)^/opt/meterd/venv/bin/python (-OO) -m compileall .*-o 2 /opt/meterd/venv "
                         r"/usr/lib/python3/dist-packages", chroot)
    assert compiled is not None and compiled.group(1) == METERD_PYTHON_FLAGS[0]
    assert chroot.index("pip install") < compiled.start()
