"""The CIU feature in a whole simulated meter: sim pre-pairing, token adapter, events, and an in-process CIU
on the real paced pty pair (token entry and the installer's pairing procedure)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ciu.core.state import CiuState, Screen
from ciu.runtime.client import CiuLinkClient
from hw.monotonic import MonotonicClock
from hw.serial_link import open_port
from meterd.app.features import ciu as ciu_feature
from meterd.core import event_codes
from meterd.core.credit import CreditMode, CreditUnit, CreditView, EmergencyCreditView
from meterd.core.sts.outcome import TokenOutcome
from meterd.proto.ciu_link import LinkDown, LinkEndpoint, LinkUp, Role
from meterd.services.ciu_meter import MeterCiu, token_fields
from meterd.store.pair_key import sim_prepair
from meterd.ui.meter_display import MeterDisplay
from tests.simmeter import SimMeter


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[int, dict[str, Any]]] = []

    def record(self, code: int, utc: Any, detail: dict[str, Any] | None = None) -> None:
        self.recorded.append((code, dict(detail or {})))


def credit(wh: int) -> CreditView:
    """A prepaid energy account holding ``wh`` (Wh)."""
    return CreditView(mode=CreditMode.PREPAID, unit=CreditUnit.ENERGY, credit=wh, currency=None, minor_digits=0,
                      low_credit=False, low_credit_threshold=0,
                      emergency=EmergencyCreditView(available=False, active=False, owed=0, amount=0, threshold=0),
                      friendly=False, rate=1, disconnect=False, relay_off=False, consumed=0, token_seq=0, key=None)


def outcome(result: str, accepted: bool, display: str, before_wh: int, after_wh: int) -> TokenOutcome:
    return TokenOutcome(result=result, accepted=accepted, display=display, number=0,
                        credit_before=credit(before_wh), credit_after=credit(after_wh))


class FakePayment:
    """Records the tokens the CIU hands to the payment service; every one is accepted."""

    def __init__(self) -> None:
        self.applied: list[tuple[str, str]] = []

    def submit_token(self, digits: str, source: str) -> TokenOutcome:
        self.applied.append((digits, source))
        return outcome("Accept", True, "Accept", 0, 0)


@pytest.fixture
def meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = SimMeter(tmp_path)
    yield m
    m.close()


def test_sim_prepair_writes_one_private_key_to_both_state_dirs(meter: SimMeter, tmp_path: Path) -> None:
    meter_key, ciu_key = tmp_path / "ciu-pair.key", tmp_path / "ciu" / "pair.key"
    assert meter_key.read_text() == ciu_key.read_text() and len(bytes.fromhex(meter_key.read_text())) == 32
    assert meter_key.stat().st_mode & 0o777 == 0o600 and ciu_key.stat().st_mode & 0o777 == 0o600
    assert meter.service(MeterCiu).service.link.paired
    ciu_key.write_text("00" * 32)  # a stale CIU copy is replaced by the meter's key on the next start
    assert sim_prepair(meter_key, ciu_key) == bytes.fromhex(meter_key.read_text())
    assert ciu_key.read_text() == meter_key.read_text()


def test_token_answer_fields_and_no_prepayment(meter: SimMeter) -> None:
    fields = token_fields(outcome("UsedError", False, "Used", 5000, 5000))
    assert fields == {"accepted": False, "result": "UsedError", "code": "used", "display": "Used", "credit": 5.0,
                      "unit": "kWh"}
    fields = token_fields(outcome("Accept", True, "Accept", 1500, 11500))
    assert fields["code"] == "accepted" and fields["amount"] == 10.0 and fields["credit"] == 11.5
    ciu = meter.service(MeterCiu)
    ciu.links = dataclasses.replace(ciu.links, payment=None)  # a meter without prepayment
    assert ciu.submit_token("1" * 20) == {"accepted": False, "code": "not_enabled",
                                           "display": "Prepayment not enabled"}


def test_link_loss_and_recovery_are_recorded_once_each(meter: SimMeter) -> None:
    events = FakeEvents()
    ciu = meter.service(MeterCiu)
    ciu.links = dataclasses.replace(ciu.links, events=events)
    ciu.on_events([LinkUp(1), LinkDown("timeout"), LinkDown("no-ack"), LinkUp(2), LinkDown("rehello"), LinkUp(3)])
    names = [event_codes.lookup(code).name for code, _ in events.recorded]
    assert names == ["CIU_LINK_RESTORED", "CIU_LINK_LOST", "CIU_LINK_RESTORED"]
    assert events.recorded[1][1] == {"reason": "timeout"}


class InProcessCiu:
    """The CIU's state machine and link client on the CIU end of the meter's pty pair."""

    def __init__(self, path: str, key: bytes | None) -> None:
        self.port = open_port(path, 9600)
        ids = iter(range(7000, 8000))
        self.state = CiuState(MonotonicClock(), lambda: next(ids))
        self.stored: list[bytes] = []
        self.client = CiuLinkClient(self.state, LinkEndpoint(Role.CIU, MonotonicClock(), lambda n: bytes(range(n)), key),
                                    self.port, on_pair_key=self.stored.append)

    def type(self, keys: str) -> None:
        for key in keys:
            self.client.press({"#": "ENTER"}.get(key, key))


async def pump_until(ciu: InProcessCiu, predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ciu.client.pump()
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


def test_token_and_pairing_over_the_paced_pty_pair(meter: SimMeter, tmp_path: Path) -> None:
    daemon = meter.daemon
    events, payment = FakeEvents(), FakePayment()
    ciu_service = daemon.registry.need(MeterCiu, by="test")
    ciu_service.links = dataclasses.replace(ciu_service.links, events=events, payment=payment)

    async def scenario() -> None:
        await ciu_feature.start(daemon)
        try:
            path = daemon.info["ciu_link"]
            ciu = InProcessCiu(path, bytes.fromhex((tmp_path / "ciu" / "pair.key").read_text()))
            assert await pump_until(ciu, lambda: ciu.state.view().link_up, 10.0), "link never came up"
            ciu.type("31415926535897932384#")
            assert await pump_until(ciu, lambda: ciu.state.view().screen is Screen.RESULT, 10.0)
            assert payment.applied == [("31415926535897932384", "ciu")]
            assert ciu.state.view().result["code"] == "accepted"
            # the installer's procedure: open pairing on the meter, type 80#, the code and # on the CIU
            code, answer = await daemon.api.dispatch("POST", "/ciu/pair", {})
            assert code == 200 and len(answer["pairing_code"]) == 8
            display = daemon.registry.find(MeterDisplay)
            ciu.type("80#" + answer["pairing_code"] + "#")
            assert await pump_until(ciu, lambda: bool(ciu.stored), 15.0), "pairing did not complete"
            assert await pump_until(ciu, lambda: daemon.registry.need(MeterCiu, by="test").fingerprint is not None, 5.0)
            fingerprint = daemon.registry.need(MeterCiu, by="test").fingerprint
            assert ciu.state.view().info["fingerprint"] == fingerprint
            assert (tmp_path / "ciu-pair.key").read_text().strip() == ciu.stored[0].hex()
            if display is not None:
                assert display.lcd.render().tobytes() != b""  # the fingerprint screen is drawn
            # the new key carries a new session
            assert await pump_until(ciu, lambda: ciu.state.view().link_up and
                                    daemon.registry.need(MeterCiu, by="test").service.link.state.value == "up", 10.0)
            ciu.port.close()
        finally:
            for link in reversed(daemon.links):
                await link.close()

    asyncio.run(scenario())
    names = [event_codes.lookup(code).name for code, _ in events.recorded]
    assert names[0] == "CIU_LINK_RESTORED"
    if "CIU_PAIRED" in event_codes.BY_NAME:
        assert "CIU_PAIRED" in names
