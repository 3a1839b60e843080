"""Legal time on the CIU: TIME v2 carries the meter's UTC offset and DST flag; a v1 TIME (UTC only) still works."""

from __future__ import annotations

import random

from ciu.core.state import CiuState
from ciu.runtime.client import CiuLinkClient
from ciu.ui.render import render
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    LinkEndpoint,
    Message,
    MsgKind,
    Role,
    parse_time_fields,
    short_code,
    time_fields,
)
from meterd.services.ciu_meter import MeterCiu
from meterd.services.ciu_service import CiuService
from meterd.services.revenue import RevenueService

KEY = bytes(range(32))
UTC_S = 1_800_000_000  # 2027-01-15 08:00:00 UTC


def rand(seed: int):
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class Port:
    """The CIU end of an in-memory line to the meter service."""

    def __init__(self) -> None:
        self.rx = bytearray()
        self.tx = bytearray()

    def read(self, n: int) -> bytes:
        data = bytes(self.rx[:n])
        del self.rx[:n]
        return data

    def write(self, data: bytes) -> None:
        self.tx += data


class Link:
    def __init__(self, offset: list[tuple[int, bool] | None] | None) -> None:
        self.clock = SimClock()
        self.offset = offset
        legal = None if offset is None else (lambda: offset[0])
        self.service = CiuService(LinkEndpoint(Role.METER, self.clock, rand(1), KEY), self.clock,
                                  lambda d: {"accepted": True}, lambda: {"credit": 1.0}, utc_s=lambda: UTC_S,
                                  legal_offset=legal, time_period_s=60.0)
        self.port = Port()
        self.state = CiuState(self.clock, lambda: 5, lang="en")
        self.client = CiuLinkClient(self.state, LinkEndpoint(Role.CIU, self.clock, rand(2), KEY), self.port)
        self.times: list[Message] = []

    def run(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.05)):
            self.clock.advance(0.05)
            self.client.pump()
            self.service.receive_bytes(bytes(self.port.tx))
            self.port.tx.clear()
            self.service.poll()
            self.port.rx += self.service.data_to_send()


def test_time_v2_carries_the_legal_offset_and_the_ciu_shows_local_time() -> None:
    offset: list[tuple[int, bool] | None] = [(7200, False)]
    link = Link(offset)
    link.run(2.0)
    view = link.state.view()
    assert view.utc_offset_s == 7200 and view.local_s is not None and view.local_s - view.utc_s == 7200
    home = render(view)
    offset[0] = (10800, True)  # DST starts: pushed at once, not after the 60-s period
    link.run(1.0)
    assert link.state.view().utc_offset_s == 10800
    assert render(link.state.view()).tobytes() != home.tobytes()  # the status-bar clock moved an hour


def test_a_v1_meter_sends_utc_only_and_the_ciu_says_utc() -> None:
    link = Link(None)
    link.run(2.0)
    view = link.state.view()
    assert view.utc_s is not None and view.utc_offset_s is None and view.local_s == view.utc_s
    from dataclasses import replace

    assert render(view).tobytes() != render(replace(view, utc_offset_s=0)).tobytes()  # "UTC" beside the time


def test_short_code_5_reply_has_the_offset() -> None:
    link = Link([(-18000, True)])
    link.run(2.0)
    replies: list[Message] = []
    original = link.state.on_short_code_reply
    link.state.on_short_code_reply = lambda rid, fields: replies.append(Message(MsgKind.SHORT_CODE_REPLY, rid, fields))
    link.port.tx += link.client.link.send(short_code(9, 5))
    link.run(1.0)
    link.state.on_short_code_reply = original
    assert replies and replies[0].fields == {"code": 5, "utc_s": UTC_S, "time_v": 2, "utc_offset_s": -18000,
                                             "dst": True}


def test_time_fields_versions_and_bad_offsets() -> None:
    assert time_fields(UTC_S) == {"utc_s": UTC_S}
    assert parse_time_fields(time_fields(UTC_S, 3600, True)) == (UTC_S, 3600)
    assert parse_time_fields({"utc_s": UTC_S}) == (UTC_S, None)
    assert parse_time_fields({"utc_s": UTC_S, "utc_offset_s": 3600}) == (UTC_S, None)  # no version: v1
    assert parse_time_fields({"utc_s": UTC_S, "time_v": 2, "utc_offset_s": 99 * 3600}) == (UTC_S, None)
    assert parse_time_fields({"utc_s": "x", "time_v": 2, "utc_offset_s": True}) == (0, None)
    encoded = Message(MsgKind.TIME, 0, time_fields(UTC_S, -12600, False)).encode()
    assert parse_time_fields(Message.decode(encoded).fields) == (UTC_S, -12600)


def test_the_meter_feature_takes_the_offset_from_its_legal_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.simmeter import SimMeter

    meter = SimMeter(tmp_path)
    try:
        ciu, revenue = meter.service(MeterCiu), meter.service(RevenueService)
        local = revenue.local_time(meter.clock.utc())
        assert ciu._legal_offset() == (local.utc_offset_min * 60, local.dst_active)
    finally:
        meter.close()
