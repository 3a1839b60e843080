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
