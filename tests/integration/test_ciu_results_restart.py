"""The CIU token-result cache survives a meter restart: a CIU resend after the restart gets the
original answer ("accepted"), not "used", and the token is not applied again."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

import pytest

from hw.monotonic import MonotonicClock
from meterd.core.sts import dkga04
from meterd.core.sts.codec import BASE_DATES
from meterd.core.sts.keys import TEST_VENDING_KEY_DKGA04
from meterd.core.sts.vending import credit_token
from meterd.proto.ciu_link import (
    LinkEndpoint,
    LinkState,
    MessageReceived,
    MsgKind,
    Role,
    short_code,
    token_submit,
)
from meterd.services.ciu_meter import MeterCiu
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from tests.simmeter import SimMeter

pytest.importorskip("meterd.app.features.payment")


def vend(meter: SimMeter, kwh_tenths: int) -> str:
    section = meter.daemon.cfg.feature("payment")
    cipher = sts_cipher_factory(section.ea, dkga04(TEST_VENDING_KEY_DKGA04, section.key_inputs()))
    when = meter.clock.utc() - dt.timedelta(hours=1)
    tid = int((when - BASE_DATES[section.base_date]).total_seconds() // 60)
    return credit_token(cipher, tid, kwh_tenths)


class Cable:
    """An in-memory cable between a fresh CIU endpoint and the meter's CIU service."""

    def __init__(self, meter: SimMeter, state_dir: Path) -> None:
        self.service = meter.service(MeterCiu).service
        key = bytes.fromhex((state_dir / "ciu" / "pair.key").read_text())
        self.ciu = LinkEndpoint(Role.CIU, MonotonicClock(), os.urandom, key)
        self.received: list[Any] = []

    def pump_until(self, predicate: Any, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = self.ciu.poll()
            self.service.receive_bytes(self.ciu.data_to_send())
            self.service.poll()
            events += self.ciu.receive_bytes(self.service.data_to_send())
            self.received += [e.message for e in events if isinstance(e, MessageReceived)]
            if predicate():
                return True
        return False

    def result(self, request_id: int) -> dict[str, Any]:
        assert self.pump_until(lambda: any(m.kind is MsgKind.TOKEN_RESULT and m.request_id == request_id
                                           for m in self.received))
        return dict(next(m.fields for m in self.received if m.kind is MsgKind.TOKEN_RESULT
                         and m.request_id == request_id))

    def submit(self, request_id: int, digits: str) -> dict[str, Any]:
        assert self.pump_until(lambda: self.ciu.state is LinkState.UP)
        self.ciu.send(token_submit(request_id, digits))
        return self.result(request_id)


def test_resend_after_a_meter_restart_gets_the_original_result(tmp_path: Path) -> None:
    meter = SimMeter(tmp_path)
    try:
        token = vend(meter, 100)  # 10.0 kWh
        first = Cable(meter, tmp_path).submit(0x5151, token)
        assert first["accepted"] is True and first["code"] == "accepted"
        credit = meter.service(PaymentService).credit_view()
    finally:
        meter.close()
    meter = SimMeter(tmp_path)  # the meter restarts before the CIU saw the answer; the CIU resends
    try:
        cable = Cable(meter, tmp_path)
        again = cable.submit(0x5151, token)
        assert again == first
        assert meter.service(PaymentService).credit_view() == credit  # not applied a second time
        other = cable.submit(0x5252, token)  # the same token under a new request id: STS says used
        assert other["accepted"] is False and other["code"] == "used"
        cable.ciu.send(short_code(9, 2))  # the last token survived the restart too
        assert cable.pump_until(lambda: any(m.kind is MsgKind.SHORT_CODE_REPLY for m in cable.received))
        reply = next(m.fields for m in cable.received if m.kind is MsgKind.SHORT_CODE_REPLY)
        assert reply["last_token"] == token and reply["last_token_code"] == "used"
    finally:
        meter.close()


def test_result_file_round_trip_and_damage(tmp_path: Path) -> None:
    from meterd.store.ciu_results import JsonResultStore

    store = JsonResultStore(tmp_path / "r.json")
    assert store.load() == ([], {})
    store.save([(1, {"accepted": True, "code": "accepted", "amount": "10"}), (2, {"accepted": False})],
               {"last_token": "1" * 20, "last_token_code": "used"})
    assert store.load() == ([(1, {"accepted": True, "code": "accepted", "amount": "10"}), (2, {"accepted": False})],
                            {"last_token": "1" * 20, "last_token_code": "used"})
    assert not (tmp_path / "r.json.tmp").exists()
    (tmp_path / "r.json").write_text('{"results": [[1, {"a": [1]}], ["x", {}], [3]], "last_token": 5')
    assert store.load() == ([], {})  # not JSON: empty, the meter still answers (STS memory guards)
    (tmp_path / "r.json").write_text('{"results": [[1, {"a": [1], "b": 2}], ["x", {}], [3], 7], "last_token": 5}')
    assert store.load() == ([(1, {"b": 2})], {})
    (tmp_path / "r.json").write_text('{"results": 5}')
    assert store.load() == ([], {})
