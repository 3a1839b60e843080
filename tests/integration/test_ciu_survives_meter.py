"""The CIU survives the meter: a meter restart (the device vanishes and comes back), a cable pulled
for an hour, garbage on the line. Each time the CIU says the meter is not reachable, never raises,
and links again by itself when the meter is back; a token typed meanwhile is applied once."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from test_ciu_link import PAIR_KEY
from test_ciu_link_e2e import TOKEN, FakeMeter, Rig
from test_ciu_link_pty import pump_meter

from ciu.core.state import CiuState, Screen
from ciu.runtime.client import CiuLinkClient
from ciu.ui.texts import text
from hw.monotonic import MonotonicClock
from hw.serial_link import PtyWire, ReopeningPort, SerialLinkError, open_port
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import LinkEndpoint, LinkState, Role
from meterd.services.ciu_service import CiuService

ROOT = Path(__file__).resolve().parents[2]


class VanishingDevice:
    """A port whose device can disappear: reads then raise OSError (pyserial's SerialException)."""

    def __init__(self) -> None:
        self.gone = False
        self.closed = False

    def read(self, size: int) -> bytes:
        if self.gone:
            raise OSError("device reports readiness to read but returned no data")
        return b""

    def write(self, data: bytes) -> int:
        if self.gone:
            raise OSError("write failed: [Errno 5] Input/output error")
        return len(data)

    def close(self) -> None:
        self.closed = True


def test_reopening_port_closes_on_error_and_opens_again_every_retry_period() -> None:
    clock = SimClock()
    devices: list[VanishingDevice] = []
    present = [True]

    def opener() -> VanishingDevice:
        if not present[0]:
            raise SerialLinkError("cannot open /dev/ttyAMA5: no such device")
        devices.append(VanishingDevice())
        return devices[-1]

    port = ReopeningPort(opener, clock.mono, retry_s=1.0)
    state = CiuState(clock, lambda: 1)
    client = CiuLinkClient(state, LinkEndpoint(Role.CIU, clock, os.urandom, PAIR_KEY), port)
    state.link_changed(True)
    assert port.connected
    devices[0].gone, present[0] = True, False
    client.pump()  # no exception: the port closes and the screen says so at once
    assert not port.connected and devices[0].closed and port.failures == 1
    assert not state.view().link_up
    assert port.write(b"x") == 0
    clock.advance(0.5)
    present[0] = True
    client.pump()
    assert len(devices) == 1  # not before the retry period
    clock.advance(0.6)
    client.pump()
    assert port.connected and len(devices) == 2


def test_cable_pulled_for_an_hour_then_the_link_comes_back_by_itself() -> None:
    rig = Rig()
    try:
        rig.run(2.0)
        assert rig.state.view().link_up
        rig.wire.cut = True
        rig.run(20.0)
        view = rig.state.view()
        assert not view.link_up
        rig.type(TOKEN + "\n")  # typed while the meter is not reachable
        rig.run(1.0)
        assert rig.state.view().notice == "queued" and not rig.meter.applied
        rig.run(3600.0, dt_s=0.1)
        assert not rig.state.view().link_up and rig.service.link.state is LinkState.DOWN
        rig.wire.cut = False
        rig.run(3.0)
        view = rig.state.view()
        assert view.link_up and rig.service.link.state is LinkState.UP
        assert view.screen is Screen.RESULT and view.result["accepted"] is True
        assert rig.meter.applied == [TOKEN]
        assert rig.wire.collisions == 0
    finally:
        rig.close()


def test_garbage_on_the_line_then_the_link_recovers_and_delivers_once() -> None:
    rig = Rig(seed=5)
    noise = random.Random(9)
    try:
        rig.run(2.0)
        rig.type(TOKEN + "\n")
        for _ in range(100):  # about a minute of bursts of random bytes from both ends, at random moments
            end = rig.wire.a if noise.random() < 0.5 else rig.wire.b
            end.write(bytes(noise.getrandbits(8) for _ in range(noise.randrange(1, 80))))
            rig.run(noise.uniform(0.04, 1.0))
        assert rig.wire.collisions > 0
        rig.run(10.0)
        view = rig.state.view()
        assert view.link_up and rig.service.link.state is LinkState.UP
        assert rig.meter.applied == [TOKEN]
        assert sum(rig.service.link.stats.rejected.values()) > 0
    finally:
        rig.close()


def meter_on(path: str, meter: FakeMeter) -> tuple[CiuService, Any]:
    """A freshly started meter process's link end (new endpoint, same pair key)."""
    clock = MonotonicClock()
    service = CiuService(LinkEndpoint(Role.METER, clock, os.urandom, PAIR_KEY), clock, meter.submit_token,
                         meter.display_data)
    return service, open_port(path, 9600)


def test_ciu_process_survives_the_meter_restarting(tmp_path: Path) -> None:
    """The meter end of the pty pair vanishes (the simulator's pty goes with meterd) and a new one
    appears under the same name: the CIU process logs that the meter is not reachable, raises
    nothing, and links to the new meter by itself."""
    key_file = tmp_path / "pair.key"
    key_file.touch(mode=0o600)
    key_file.write_text(PAIR_KEY.hex())
    link = tmp_path / "meter-ciu"  # a stable name, as udev gives /dev/meter-ciu
    sock_path = tmp_path / "keys.sock"
    meter = FakeMeter()
    wire = PtyWire(baud=9600)
    link.symlink_to(wire.path_b)
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ciu.app", "--port", str(link), "--display", "dummy", "--keypad",
         f"socket:{sock_path}", "--key-file", str(key_file), "--run-seconds", "40"],
        env=env, stderr=subprocess.PIPE, text=True)
    try:
        service, port = meter_on(wire.path_a, meter)
        assert pump_meter(service, port, 10.0, lambda: service.link.state is LinkState.UP), "never linked"
        port.close()
        wire.close()  # the meter stops: its pty pair is gone
        time.sleep(2.0)
        assert proc.poll() is None, "the CIU died with the meter"
        wire = PtyWire(baud=9600)  # the meter is back
        link.unlink()
        link.symlink_to(wire.path_b)
        service, port = meter_on(wire.path_a, meter)
        assert pump_meter(service, port, 15.0, lambda: service.link.state is LinkState.UP), "never linked again"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as keys:
            keys.connect(str(sock_path))
            keys.sendall((TOKEN + "\n").encode())
            assert pump_meter(service, port, 10.0, lambda: bool(meter.applied)), "token never reached the meter"
        pump_meter(service, port, 1.0)
        port.close()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
        wire.close()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert "meter not reachable" in stderr and "meter port open again" in stderr
    assert meter.applied == [TOKEN]
    assert text("link_down", "en") == "Meter not reachable"
