"""The events of one DLMS link (meterd.cosem.link_events.LinkEvents): details, the rate limit of
the events any client can cause, the communication log and a failing store."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.cosem.event_limit import EventLimiter
from meterd.cosem.link_events import LinkEvents
from tests.dlms_fakes import ListSink

START = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _events(link: str = "tcp", sink: object = None) -> tuple[LinkEvents, ListSink, SimClock]:
    clock = SimClock(START)
    out = sink if sink is not None else ListSink()
    return LinkEvents(out, link, EventLimiter(clock, 60.0), clock.utc), out, clock  # type: ignore[arg-type]


def test_an_event_carries_sap_link_and_a_short_reason():
    events, sink, _ = _events()
    assert events.record("KEY_CHANGED", 1, "x" * 200, key="authentication_key")
    assert sink.events == [(ec.code("KEY_CHANGED"), START, {"client_sap": 1, "link": "tcp", "reason": "x" * 80,
                                                            "key": "authentication_key"})]


def test_limited_events_are_counted_in_the_window_and_reported_when_it_is_over():
    events, sink, clock = _events()
    rejected = ec.code("ASSOCIATION_REJECTED")
    assert events.record("ASSOCIATION_REJECTED", 55, "unknown client SAP")
    assert not events.record("ASSOCIATION_REJECTED", 56, "malformed AARQ")
    assert not events.record("ASSOCIATION_REJECTED", 57, "context name")
    events.report_suppressed()
    assert len(sink.of(rejected)) == 1  # the window is not over
    clock.advance(60)
    events.report_suppressed()
    assert sink.of(rejected)[1] == {"client_sap": 57, "link": "tcp", "reason": "context name", "suppressed": 2}
    events.report_suppressed()
    assert len(sink.of(rejected)) == 2  # reported once


@pytest.mark.parametrize(("link", "prefix"), [("optical", "LOCAL"), ("tcp", "REMOTE"), ("rs485", "REMOTE")])
def test_sessions_are_local_on_the_optical_port_only(link: str, prefix: str) -> None:
    events, sink, _ = _events(link)
    events.session(True, 17, "AARQ accepted", "reader")
    events.session(False, 17, "RLRQ", "reader")
    assert sink.codes() == [ec.code(f"{prefix}_SESSION_OPENED"), ec.code(f"{prefix}_SESSION_CLOSED")]
    assert sink.events[0][2]["association"] == "reader"


def test_a_failing_store_is_logged_and_the_link_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def record(self, *args: object) -> None:
            raise OSError("disk full")

    events, _, _ = _events(sink=Broken())
    with caplog.at_level(logging.ERROR, "meterd.cosem"):
        assert events.record("DECRYPTION_FAILURE", 1, "bad tag")
    assert "DLMS event DECRYPTION_FAILURE not recorded" in caplog.text


def test_without_a_sink_events_are_only_counted():
    clock = SimClock(START)
    events = LinkEvents(None, "tcp", EventLimiter(clock, 60.0), clock.utc)
    assert events.record("REPLAY_ATTACK", 1, "counter 5 again")
    assert not events.record("REPLAY_ATTACK", 1, "counter 5 again")


def test_public_sessions_are_limited_and_authenticated_ones_are_not() -> None:
    events, sink, clock = _events()
    opened = ec.code("REMOTE_SESSION_OPENED")
    for _ in range(3):
        events.session(True, 16, "AARQ accepted", "public", authenticated=False)
        events.session(True, 17, "AARQ accepted", "reader")
    assert [d["client_sap"] for d in sink.of(opened)] == [16, 17, 17, 17]
    clock.advance(60)
    events.report_suppressed()
    assert sink.of(opened)[-1]["suppressed"] == 2


def test_authentication_failures_have_an_allowance_of_eight_per_window() -> None:
    events, sink, clock = _events()
    recorded = [events.record("AUTHENTICATION_FAILURES", 17, "wrong LLS password") for _ in range(10)]
    assert recorded == [True] * 8 + [False] * 2
    clock.advance(60)
    assert events.record("AUTHENTICATION_FAILURES", 17, "wrong LLS password")
    assert sink.of(ec.code("AUTHENTICATION_FAILURES"))[-1]["suppressed"] == 2
