"""Meter-side CIU service: token idempotence, short codes, status and time pushes, failures of the token path."""

from __future__ import annotations

import random
from typing import Any

from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    LinkEndpoint,
    Message,
    MessageReceived,
    MsgKind,
    Role,
    short_code,
    token_submit,
)
from meterd.services.ciu_service import CiuService, to_fields

KEY = bytes(range(32))


def rand(seed: int):
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class Pair:
    def __init__(self, submit: Any) -> None:
        self.clock = SimClock()
        self.calls: list[str] = []
        self.service = CiuService(LinkEndpoint(Role.METER, self.clock, rand(1), KEY), self.clock, submit,
                                  lambda: {"credit": 12.5, "unit": "kWh", "relay": True, "power_w": 2300.25,
                                           "tamper": False, "nested": {"no": 1}},
                                  utc_s=lambda: 1_800_000_000)
        self.ciu = LinkEndpoint(Role.CIU, self.clock, rand(2), KEY)
        self.received: list[Message] = []

    def run(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.05)):
            self.clock.advance(0.05)
            events = self.ciu.poll()
            self.service.receive_bytes(self.ciu.data_to_send())
            self.service.poll()
            events += self.ciu.receive_bytes(self.service.data_to_send())
            self.received += [e.message for e in events if isinstance(e, MessageReceived)]

    def send(self, message: Message) -> None:
        self.service.receive_bytes(self.ciu.send(message))


def test_same_request_id_is_applied_once_and_answered_twice() -> None:
    calls: list[str] = []

    def submit(digits: str) -> dict:
        calls.append(digits)
        return {"accepted": True, "amount": 10.0}

    pair = Pair(submit)
    pair.run(1.0)
    pair.send(token_submit(77, "1" * 20))
    pair.run(0.5)
    pair.send(token_submit(77, "1" * 20))  # the CIU resent after a session change
    pair.run(0.5)
    results = [m for m in pair.received if m.kind is MsgKind.TOKEN_RESULT]
    assert calls == ["1" * 20]
    assert len(results) == 2 and results[0] == results[1]
    assert results[0].fields == {"accepted": True, "amount": "10", "code": "accepted"}


def test_failing_token_path_still_answers() -> None:
    def submit(digits: str) -> dict:
        raise RuntimeError("decoder exploded")

    pair = Pair(submit)
    pair.run(1.0)
    pair.send(token_submit(1, "2" * 20))
    pair.run(0.5)
    result = next(m for m in pair.received if m.kind is MsgKind.TOKEN_RESULT)
    assert result.fields == {"accepted": False, "code": "meter-error"}


def test_short_codes_status_and_time() -> None:
    pair = Pair(lambda d: {"accepted": True})
    pair.run(1.0)
    kinds = [m.kind for m in pair.received]
    assert MsgKind.TIME in kinds and MsgKind.STATUS in kinds
    status = next(m for m in pair.received if m.kind is MsgKind.STATUS)
    assert status.fields["credit"] == "12.5" and status.fields["power_w"] == "2300.25" and "nested" not in status.fields
    pair.send(short_code(5, 3))
    pair.send(short_code(6, 99))
    pair.send(short_code(7, 5))
    pair.run(1.0)
    replies = {m.request_id: m.fields for m in pair.received if m.kind is MsgKind.SHORT_CODE_REPLY}
    assert replies[5] == {"code": 3, "power_w": "2300.25"}
    assert replies[6] == {"code": 99, "error": "unknown"}
    assert replies[7] == {"code": 5, "utc_s": 1_800_000_000}
    before = sum(1 for m in pair.received if m.kind is MsgKind.STATUS)
    pair.run(6.0)
    assert sum(1 for m in pair.received if m.kind is MsgKind.STATUS) > before  # periodic push


def test_to_fields_keeps_scalars() -> None:
    assert to_fields({"a": 1.50, "b": True, "c": "x", "d": [1], "e": 3}) == {"a": "1.5", "b": True, "c": "x", "e": 3}
