"""End to end: keys on the simulated keypad -> CIU -> link (null modem) -> meter service -> result on the CIU display."""

from __future__ import annotations

import os
from typing import Any

import pytest
from luma.core.device import dummy
from test_ciu_link import DRIVERS, PAIR_KEY, rand_source

from ciu.core.state import CiuState, Screen
from ciu.runtime.client import CiuLinkClient
from ciu.runtime.daemon import CiuLoop
from ciu.ui.render import render
from hw.keypad import StreamKeypad
from hw.serial_link import SimWire, WireFaults
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import LinkEndpoint, LinkState, Role
from meterd.services.ciu_service import CiuService

TOKEN = "31415926535897932384"


class FakeMeter:
    """Stands in for the STS code and the meter model: each new token adds 50 kWh once."""

    def __init__(self) -> None:
        self.credit_kwh = 153.25
        self.applied: list[str] = []

    def submit_token(self, digits: str) -> dict[str, Any]:
        if digits in self.applied:
            return {"accepted": False, "code": "used"}
        self.applied.append(digits)
        self.credit_kwh += 50
        return {"accepted": True, "code": "accepted", "amount": 50.0, "credit": self.credit_kwh, "unit": "kWh"}

    def display_data(self) -> dict[str, Any]:
        return {"credit": self.credit_kwh, "unit": "kWh", "relay": True, "low_credit": self.credit_kwh < 10,
                "power_w": 2300.0, "tamper": False, "import_kwh": 1234.5, "export_kwh": 0.0}


class Rig:
    def __init__(self, faults: WireFaults | None = None, seed: int = 3, key: bytes | None = PAIR_KEY) -> None:
        self.clock = SimClock()
        self.wire = SimWire(self.clock.mono, baud=9600, faults=faults, seed=seed, drivers=DRIVERS)
        self.meter = FakeMeter()
        meter_link = LinkEndpoint(Role.METER, self.clock, rand_source(seed), key)
        self.stored: dict[str, tuple[bytes, str] | bytes] = {}
        self.service = CiuService(meter_link, self.clock, self.meter.submit_token, self.meter.display_data,
                                  utc_s=lambda: int(self.clock.utc_timestamp()),
                                  on_pair_key=lambda k, fp: self.stored.__setitem__("meter", (k, fp)))
        ids = iter(range(1000, 2000))
        self.state = CiuState(self.clock, lambda: next(ids))
        ciu_link = LinkEndpoint(Role.CIU, self.clock, rand_source(seed + 1), key)
        self.client = CiuLinkClient(self.state, ciu_link, self.wire.b,
                                    on_pair_key=lambda k: self.stored.__setitem__("ciu", k))
        self.read_fd, self.write_fd = os.pipe()
        self.device = dummy(width=240, height=240, mode="RGB")
        self.loop = CiuLoop(self.client, StreamKeypad(self.read_fd), self.device)

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)

    def type(self, keys: str) -> None:
        os.write(self.write_fd, keys.encode())

    def run(self, seconds: float, dt_s: float = 0.02) -> None:
        for _ in range(int(round(seconds / dt_s))):
            self.clock.advance(dt_s)
            self.service.receive_bytes(self.wire.a.read())
            self.service.poll()
            out = self.service.data_to_send()
            if out:
                self.wire.a.write(out)
            self.loop.step()


@pytest.fixture
def rig() -> Any:
    r = Rig()
    yield r
    r.close()


def test_token_typed_on_keypad_is_applied_and_new_credit_shown(rig: Rig) -> None:
    rig.run(2.0)
    assert rig.state.view().link_up and rig.state.view().status.get("credit") == "153.25"
    rig.type(TOKEN[:10] + "9\x7f" + TOKEN[10:])  # a wrong digit, erased with backspace
    rig.run(0.2)
    assert rig.state.view().screen is Screen.ENTRY
    assert rig.state.view().entry == "3141 5926 5358 9793 2384"
    rig.type("\n")
    rig.run(1.0)
    view = rig.state.view()
    assert rig.meter.applied == [TOKEN]
    assert view.screen is Screen.RESULT and view.result["accepted"] is True
    assert view.result["credit"] == "203.25"
    assert rig.device.image.tobytes() == render(view).tobytes()
    rig.run(12.0)  # the result times out; home shows the pushed new credit
    assert rig.state.view().screen is Screen.HOME
    assert rig.state.view().status["credit"] == "203.25"


def test_token_survives_link_loss_without_double_application(rig: Rig) -> None:
    rig.run(2.0)
    rig.type(TOKEN + "\n")
    for _ in range(200):  # until the meter has applied it ...
        rig.run(0.01, dt_s=0.01)
        if rig.meter.applied:
            break
    assert rig.meter.applied == [TOKEN]
    rig.wire.cut = True  # ... then the ack and the result are lost
    rig.run(12.0)
    assert not rig.state.view().link_up
    assert rig.state.view().screen is Screen.WAITING
    rig.wire.cut = False
    rig.run(4.0)
    view = rig.state.view()
    assert view.link_up and view.screen is Screen.RESULT
    assert view.result["accepted"] is True and view.result["credit"] == "203.25"
    assert rig.meter.applied == [TOKEN]  # applied exactly once


def test_noisy_cable_end_to_end() -> None:
    rig = Rig(faults=WireFaults(corrupt_p=0.003, drop_p=0.003), seed=11)
    try:
        rig.run(2.0)
        for n in range(5):
            digits = f"{n:02d}" + TOKEN[2:]
            rig.type(digits + "\n")
            rig.run(4.0)
        rig.run(20.0)
        assert len(rig.meter.applied) == 5
        assert rig.state.view().status["credit"] == f"{153.25 + 250:.2f}"
    finally:
        rig.close()


def test_short_code_shows_meter_information(rig: Rig) -> None:
    rig.run(2.0)
    rig.type("7\n")
    rig.run(1.0)
    view = rig.state.view()
    assert view.screen is Screen.INFO
    assert view.info == {"code": 7, "import_kwh": "1234.5", "export_kwh": "0"}
    assert rig.service.link.state is LinkState.UP


def test_installer_pairs_the_ciu_by_typing_the_code_shown_on_the_meter() -> None:
    rig = Rig(key=None)
    try:
        rig.run(1.0)
        assert not rig.state.view().paired and not rig.state.view().link_up
        code = rig.service.open_pairing(rand_source(42))  # the meter LCD shows this code
        rig.type("80\n" + code + "\n")
        rig.run(3.0)
        meter_key, fingerprint = rig.stored["meter"]
        assert rig.stored["ciu"] == meter_key
        view = rig.state.view()
        assert view.screen is Screen.PAIR_RESULT and view.info["fingerprint"] == fingerprint
        assert view.link_up and rig.service.link.state is LinkState.UP
        rig.type(TOKEN + "\n")
        rig.run(1.0)
        assert rig.meter.applied == [TOKEN]
    finally:
        rig.close()


def test_wrong_pairing_code_is_refused() -> None:
    rig = Rig(key=None)
    try:
        code = rig.service.open_pairing(rand_source(42))
        wrong = code[:-1] + str((int(code[-1]) + 1) % 10)
        rig.type("80\n" + wrong + "\n")
        rig.run(3.0)
        assert "meter" not in rig.stored and "ciu" not in rig.stored
        assert rig.state.view().notice == "pair_failed"
    finally:
        rig.close()
