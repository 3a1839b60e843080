"""The CIU process stops cleanly whatever signals arrive: SIGINT then SIGTERM at once (as ``make run``
sends them) exits 0 with no traceback, at any point of the loop or of its clean-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hw.serial_link import PtyWire

ROOT = Path(__file__).resolve().parents[2]


def start_ciu(tmp_path: Path, wire: PtyWire, n: int) -> subprocess.Popen[str]:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "ciu", "--port", wire.path_b, "--state-dir", str(tmp_path / f"ciu{n}"),
         "--display", "dummy", "--keypad", f"socket:{tmp_path / f'keys{n}.sock'}", "--tick-s", "0.001"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_sigint_then_sigterm_exit_cleanly(tmp_path: Path, second: signal.Signals) -> None:
    with PtyWire(baud=9600) as wire:
        for n in range(3):
            proc = start_ciu(tmp_path, wire, n)
            assert proc.stdout is not None
            line = proc.stdout.readline()  # printed once the signal handlers are in place
            assert line.startswith("CIU keypad:"), line
            proc.send_signal(signal.SIGINT)
            proc.send_signal(second)
            for _ in range(n):  # more signals during the clean-up
                proc.send_signal(signal.SIGTERM)
            try:
                _, stderr = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            assert proc.returncode == 0, (proc.returncode, stderr)
            assert "Traceback" not in stderr and "CIU stopped (SIGINT)" in stderr, stderr
