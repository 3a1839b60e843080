"""A flood of public associations (client SAP 16, no authentication: anyone can open one) cannot
wear the event store: 10 simulated seconds of AARQ/RLRQ pairs on fresh connections write less than
100 KB to a real SQLite event store (synced commits, as on the meter), and the communication log
keeps its first entries and the count of the sessions not recorded. Sessions of authenticated
clients are still recorded one by one. Time is a SimClock advanced by the test."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.events import EventRecorder, LogId
from meterd.store.event_store import SqliteEventStore
from tests.dlms_fakes import WrapperRig
from tests.dlms_gurux_client import make_client

OPENED, CLOSED = ec.code("REMOTE_SESSION_OPENED"), ec.code("REMOTE_SESSION_CLOSED")
PUBLIC_AARQ = bytes(make_client(16).aarqRequest()[0])
PUBLIC_RLRQ = struct.pack(">HHHH", 1, 16, 1, 5) + b"\x62\x03\x80\x01\x00"  # RLRQ, reason normal
READER_AARQ = bytes(make_client(17).aarqRequest()[0])
ACCEPTED = b"\xa2\x03\x02\x01\x00"  # AARE result: accepted
RATE_PER_S = 100  # public associations per simulated second, each on a fresh connection
FLOOD_S = 10


def _state_bytes(directory: Path) -> int:
    """Octets of every file of the state directory (database, WAL, shared memory)."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())


def test_ten_seconds_of_public_associations_write_less_than_100_kb(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    recorder = EventRecorder(store=store)
    rig = WrapperRig(sink=recorder)  # type: ignore[arg-type]
    before = _state_bytes(tmp_path)
    caplog.set_level(logging.INFO)
    for _ in range(FLOOD_S * RATE_PER_S):
        session = rig.factory()
        assert ACCEPTED in session.receive(PUBLIC_AARQ)[0]  # every association is still served
        assert session.receive(PUBLIC_RLRQ)
        session.close()
        rig.clock.advance(1.0 / RATE_PER_S)
    written = _state_bytes(tmp_path) - before
    print(f"public-association flood: {written} octets written")
    assert written < 100_000, f"{written} octets written by {FLOOD_S * RATE_PER_S} public associations"
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and "association public" in r.getMessage()]
    comm = recorder.log(LogId.COMMUNICATION).entries()
    assert [e.code for e in comm[:2]] == [OPENED, CLOSED]  # the first session is in the log
    assert len(comm) == 2
    rig.clock.advance(60.0)  # the window is over: the counts are reported with the next event
    rig.factory().receive(READER_AARQ)
    comm = recorder.log(LogId.COMMUNICATION).entries()
    counts = {e.code: e.detail["suppressed"] for e in comm[2:] if "suppressed" in e.detail}
    assert counts == {OPENED: FLOOD_S * RATE_PER_S - 1, CLOSED: FLOOD_S * RATE_PER_S - 1}
    store.close()


def test_sessions_of_authenticated_clients_are_all_recorded() -> None:
    rig = WrapperRig()
    for _ in range(5):
        session = rig.factory()
        assert ACCEPTED in session.receive(READER_AARQ)[0]
        session.close()
    assert rig.sink.codes() == [OPENED, CLOSED] * 5
