"""Rate limit of the events any client can cause (meterd.cosem.event_limit.EventLimiter): refused AARQs
(unknown client SAP, malformed AARQ: ASSOCIATION_REJECTED 250) and replayed ciphered AARQs
(REPLAY_ATTACK 50) are recorded at most once per 60 s window per link and event; the count of those
not recorded goes into the next recorded one (detail ``suppressed``), or into an event of its own
once the window is over; the answers do not change. Time is a SimClock advanced by the test."""

from __future__ import annotations

import datetime as dt
import logging
import struct
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.events import EventRecorder
from meterd.cosem.event_limit import EventLimiter
from tests.dlms_fakes import UTC, WrapperRig
from tests.dlms_gurux_client import make_client

REJECTED, REPLAY, AUTH_FAIL, OPENED = (ec.code(n) for n in (
    "ASSOCIATION_REJECTED", "REPLAY_ATTACK", "AUTHENTICATION_FAILURES", "REMOTE_SESSION_OPENED"))
START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACCEPTED, REJECTED_PERMANENT = b"\xa2\x03\x02\x01\x00", b"\xa2\x03\x02\x01\x01"  # AARE result
PUBLIC = bytes(make_client(16).aarqRequest()[0])
WRONG = bytes(make_client(17, password=b"guessed!").aarqRequest()[0])
UNKNOWN_SAP = PUBLIC[:3] + bytes((55,)) + PUBLIC[4:]  # wrapper source wPort 55: no association
MALFORMED = struct.pack(">HHHH", 1, 16, 1, 6) + b"\x60\x05\xa1\x03\x06\x01"  # AARQ cut short
CIPHERED = bytes(make_client(1, invocation_counter=5).aarqRequest()[0])  # management AARQ, IC 5


def test_a_thousand_bad_aarqs_in_a_minute_write_one_event_per_code_with_the_counts():
    rig = WrapperRig(links=("rs485",))
    assert ACCEPTED in rig.send(CIPHERED)  # accepted (HLS pending): IC 5 is used now
    frames = (UNKNOWN_SAP, MALFORMED, CIPHERED)
    answers: dict[bytes, bytes] = {}
    sent = {REJECTED: 0, REPLAY: 0}
    for i in range(1000):  # 1000 AARQs in 31.25 s, new connections, three kinds in turn
        frame = frames[i % 3]
        answer = rig.send(frame)
        assert REJECTED_PERMANENT in answer
        assert answers.setdefault(frame, answer) == answer  # the same answer, recorded or not
        sent[REPLAY if frame is CIPHERED else REJECTED] += 1
        rig.clock.advance(1 / 32)
    assert sent == {REJECTED: 667, REPLAY: 333}
    assert rig.sink.codes() == [REJECTED, REPLAY]  # the first of each code, in the windows they open
    first = rig.sink.of(REJECTED)[0]
    assert first == {"client_sap": 55, "link": "tcp", "reason": "unknown client SAP"}
    rig.clock.advance(30.0)  # the windows are over: the next request reports them
    assert ACCEPTED in rig.send(PUBLIC)
    assert [d.get("suppressed", 0) for d in rig.sink.of(REJECTED)] == [0, 666]
    assert [d.get("suppressed", 0) for d in rig.sink.of(REPLAY)] == [0, 332]
    report = rig.sink.of(REJECTED)[1]  # as the last one not recorded (i = 999: unknown SAP), with the count
    assert report == {"client_sap": 55, "link": "tcp", "reason": "unknown client SAP", "suppressed": 666}
    assert rig.sink.of(REPLAY)[1]["client_sap"] == 1
    assert len(rig.sink.events) == 5 and rig.sink.codes().count(OPENED) == 1


def test_over_eight_minutes_one_event_per_window_carries_the_count_before_it():
    rig = WrapperRig(links=("rs485",))
    for _ in range(1000):
        rig.send(UNKNOWN_SAP)
        rig.clock.advance(0.5)  # 1000 AARQs in 500 s
    recorded = rig.sink.of(REJECTED)
    assert len(recorded) == 9  # t = 0, 60, ..., 480 s
    assert [d.get("suppressed", 0) for d in recorded] == [0] + [119] * 8
    rig.clock.advance(40.0)
    rig.send(PUBLIC)  # t = 540 s: the last window (480..540 s) is over, 39 not recorded in it
    counts = [int(d.get("suppressed", 0)) for d in rig.sink.of(REJECTED)]
    assert len(counts) == 10 and counts[-1] == 39
    assert len(counts[:-1]) + sum(counts) == 1000  # every attempt accounted for, once


def test_windows_are_per_link_and_per_code_and_authentication_failures_are_not_limited():
    rig = WrapperRig(links=("rs485",))
    rig.send(CIPHERED)
    rig.send(UNKNOWN_SAP)
    rig.send(UNKNOWN_SAP, "rs485")  # another link: its own window
    rig.send(CIPHERED)  # another code on the same link: its own window
    rig.send(MALFORMED)  # same link and code as the first: not recorded
    for _ in range(2):
        rig.send(WRONG)  # authentication failures: bounded by the lockout, each recorded
    assert rig.sink.codes() == [REJECTED, REJECTED, REPLAY, AUTH_FAIL, AUTH_FAIL]
    assert [d["link"] for d in rig.sink.of(REJECTED)] == ["tcp", "rs485"]


def test_the_next_recorded_event_carries_the_count_and_a_clock_set_does_not_end_a_window():
    rig = WrapperRig(links=("rs485",))
    for _ in range(5):
        rig.send(UNKNOWN_SAP)
    rig.clock.set_utc(START + dt.timedelta(days=1))  # wall time only: the window goes on
    rig.send(MALFORMED)
    assert len(rig.sink.of(REJECTED)) == 1
    rig.clock.advance(60.0)
    rig.send(MALFORMED)  # the first after the window: recorded, with the 5 not recorded before it
    assert [d.get("suppressed") for d in rig.sink.of(REJECTED)] == [None, 5]
    assert "malformed" in str(rig.sink.of(REJECTED)[1]["reason"])
    rig.clock.advance(60.0)
    rig.send(PUBLIC)
    assert len(rig.sink.of(REJECTED)) == 2  # nothing left to report


def test_a_shorter_window_and_the_log_stay_quiet(caplog: pytest.LogCaptureFixture):
    rig = WrapperRig(links=("rs485",), window_s=10.0)
    with caplog.at_level(logging.DEBUG, logger="meterd.cosem"):
        for _ in range(100):
            rig.send(UNKNOWN_SAP)
            rig.clock.advance(1.0)
    assert len(rig.sink.of(REJECTED)) == 10
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "association refused" in r.message]
    assert len(warnings) == 10  # one warning per recorded event, debug lines for the others
    with pytest.raises(ValueError):
        EventLimiter(rig.clock, 0.0)


def test_the_meter_shares_one_limit_per_link(tmp_path: Path):
    from meterd.app.features.dlms import session_factory
    from tests.dlms_fakes import make_keys
    from tests.simmeter import SimMeter

    make_keys(tmp_path / "dlms-keys.toml").save()
    meter = SimMeter(tmp_path, display={"kind": "dummy"})
    try:
        def limit(link_name: str) -> EventLimiter:
            return session_factory(meter.daemon.context(), "wrapper", link_name)().server.event_limit  # type: ignore[union-attr]

        assert limit("tcp") is limit("tcp") and limit("tcp") is not limit("rs485")
        assert limit("tcp").window_s == 60.0
        recorder = meter.service(EventRecorder)

        def rejected() -> list[dict[str, object]]:
            return [dict(e.detail) for e in reversed(recorder.recent(100)) if e.code == REJECTED]

        for _ in range(5):  # each on a new connection (a new session factory too): one limit for the link
            session_factory(meter.daemon.context(), "wrapper", "tcp")().receive(UNKNOWN_SAP)
        assert len(rejected()) == 1
        meter.run(60)  # the meter's clock: the window is over
        session_factory(meter.daemon.context(), "wrapper", "tcp")().receive(PUBLIC)
        assert [d.get("suppressed") for d in rejected()] == [None, 4]  # stored in the meter's event logs
    finally:
        meter.close()
