"""Interruptions while the meter was unpowered: entered into the PQ interruption records from the
power-fail evidence (the supervision's PowerFailure of the start), once, flagged as such, counted
in the EN 50160 statistics; not entered when the waveform measured that interruption itself."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.core.power_fail import PowerFailure
from meterd.pq.events import INTERRUPTION, PqEvent
from meterd.services.power_quality import PowerQualityService
from meterd.services.pq_interruptions import POWER_FAIL, WAVEFORM, InterruptionLog
from meterd.store.pq_store import SqlitePqWeekStore
from tests.fakes import RecordedEvents
from tests.simmeter import SimMeter

T0 = dt.datetime(2026, 2, 2, 8, 0, tzinfo=dt.UTC)


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def test_an_outage_is_entered_once_with_its_evidence(tmp_path: Path) -> None:
    events = RecordedEvents()
    failure = PowerFailure(at(0), at(600), 600, long=True, estimated_start=True, start_uncertainty_s=1.0)
    with SqlitePqWeekStore(tmp_path / "pq.db", synchronous="NORMAL") as store:
        log = InterruptionLog(store, events, at(700))
        record = log.from_power_failure(failure)
        assert record is not None and record.source == POWER_FAIL and record.long
        assert log.from_power_failure(failure) is None  # once
        [(code, utc, detail)] = events.recorded
        assert (ec.lookup(code).name, utc) == ("LONG_INTERRUPTION", at(0))
        assert detail == {"kind": "interruption", "phases": "1,2,3", "duration_s": 600.0,
                          "end_utc": at(600).isoformat(), "source": "power_fail", "estimated_start": True,
                          "start_uncertainty_s": 1.0}
        assert log.counts(at(-1), at(1)) == (0, 1)
    with SqlitePqWeekStore(tmp_path / "pq.db", synchronous="NORMAL") as store:  # kept, and still only once
        log = InterruptionLog(store, events, at(800))
        assert log.records == [record] and log.from_power_failure(failure) is None


def test_an_interruption_the_waveform_measured_is_not_entered_again() -> None:
    events = RecordedEvents()
    log = InterruptionLog(None, events, at(0))
    log.from_waveform(PqEvent(INTERRUPTION, (1, 2, 3), at(10), 30.0, 0.0, None, 1, 0.0, 240000.0))
    assert log.from_power_failure(PowerFailure(at(9), at(41), 32, long=False)) is None
    assert [r.source for r in log.records] == [WAVEFORM] and events.recorded == []
    assert log.counts(at(0), at(100)) == (1, 0)


def start(state: Path, utc: dt.datetime) -> SimMeter:
    # no energy journal: nothing tells a host that kept running, so a stop that was not clean is an outage
    return SimMeter(state, sim={"start_utc": utc.isoformat()}, storage={"journal": False},
                    display={"kind": "dummy"}, power_quality={"enabled": True})


def cut_power(meter: SimMeter) -> None:
    """The supply goes with the meter: nothing marks a clean stop (the supervision's on_stop, a
    lambda closer, is skipped; the stores' connections are released for the next start)."""
    daemon = meter.daemon
    for closer in reversed(daemon.closers):
        if getattr(closer, "__name__", "") != "<lambda>":
            closer()
    meter.hardware.close()
    assert daemon.store is not None
    daemon.store.database.close()


def interruptions(meter: SimMeter) -> list[tuple[str, dt.datetime, dict[str, object]]]:
    log = meter.service(EventRecorder).log(LogId.POWER_QUALITY)
    return [(ec.lookup(e.code).name, e.utc, dict(e.detail)) for e in log.entries()
            if ec.lookup(e.code).name in ("SHORT_INTERRUPTION", "LONG_INTERRUPTION")]


def test_an_outage_while_unpowered_appears_once_in_the_pq_records(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start(state, T0)
    first.run(4)
    last_alive = first.clock.utc()
    cut_power(first)
    second = start(state, T0 + dt.timedelta(minutes=15))  # back 15 min later
    try:
        second.run(2)
        [(name, utc, detail)] = interruptions(second)
        assert name == "LONG_INTERRUPTION" and detail["source"] == "power_fail"
        assert abs((utc - last_alive).total_seconds()) <= 1.5  # the last-alive time, to its resolution
        assert detail["end_utc"] == (T0 + dt.timedelta(minutes=15)).isoformat()
        pq = second.service(PowerQualityService)
        assert pq.interruptions is not None
        [record] = pq.interruptions.records
        assert record.source == POWER_FAIL and record.duration_s == detail["duration_s"]
        assert pq.week is not None and pq.interruptions.counts(T0, T0 + dt.timedelta(days=1)) == (0, 1)
    finally:
        second.close()
    third = start(state, T0 + dt.timedelta(minutes=16))  # a clean restart adds nothing
    try:
        assert len(interruptions(third)) == 1
        assert len(third.service(PowerQualityService).interruptions.records) == 1  # type: ignore[union-attr]
    finally:
        third.close()
