"""The CIU daemon as its own process on a real pty pair paced at 9600 Bd, talking to the meter-side service.

Keys go in through the daemon's socket keypad; frames come out as PNG captures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_ciu_link import PAIR_KEY
from test_ciu_link_e2e import TOKEN, FakeMeter

from hw.monotonic import MonotonicClock
from hw.serial_link import PtyWire, open_port
from meterd.proto.ciu_link import LinkEndpoint, LinkState, Role
from meterd.services.ciu_service import CiuService

ROOT = Path(__file__).resolve().parents[2]


def pump_meter(service: CiuService, port: Any, seconds: float, until: Callable[[], bool] | None = None) -> bool:
    """Run the meter end on ``port`` for ``seconds`` (real time) or until ``until()``; True when it
    came (or, without ``until``, when the time ran out)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        data = port.read(4096)
        if data:
            service.receive_bytes(data)
        service.poll()
        out = service.data_to_send()
        if out:
            port.write(out)
        if until is not None and until():
            return True
        time.sleep(0.005)
    return until is None


def wait_for(predicate: Callable[[], bool], service: CiuService, port: Any, timeout_s: float) -> bool:
    return pump_meter(service, port, timeout_s, predicate)


def test_ciu_process_over_paced_pty(tmp_path: Path) -> None:
    key_file = tmp_path / "pair.key"
    key_file.touch(mode=0o600)  # a pair key file is private
    key_file.write_text(PAIR_KEY.hex())
    sock_path = tmp_path / "keys.sock"
    meter = FakeMeter()
    with PtyWire(baud=9600) as wire:
        env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "ciu.app", "--port", wire.path_b, "--display", "capture", "--capture-dir",
             str(tmp_path / "frames"), "--keypad", f"socket:{sock_path}", "--key-file", str(key_file),
             "--run-seconds", "20"],
            env=env, stderr=subprocess.PIPE, text=True)
        port = open_port(wire.path_a, 9600)
        clock = MonotonicClock()
        service = CiuService(LinkEndpoint(Role.METER, clock, os.urandom, PAIR_KEY), clock, meter.submit_token,
                             meter.display_data, utc_s=lambda: int(time.time()))
        try:
            assert wait_for(lambda: service.link.state is LinkState.UP, service, port, 10.0), "link never came up"
            assert wait_for(sock_path.exists, service, port, 5.0)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as keys:
                keys.connect(str(sock_path))
                keys.sendall((TOKEN + "\n").encode())
                assert wait_for(lambda: bool(meter.applied), service, port, 5.0), "token never reached the meter"
            wait_for(lambda: False, service, port, 1.0)  # let the result reach the CIU and be drawn
        finally:
            proc.terminate()
            _, stderr = proc.communicate(timeout=10)
            port.close()
    assert meter.applied == [TOKEN]
    assert "screen result" in stderr and "'accepted': True" in stderr and "'credit': '203.25'" in stderr
    assert PAIR_KEY.hex() not in stderr  # the key never appears in logs
    frames = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(frames) >= 3
