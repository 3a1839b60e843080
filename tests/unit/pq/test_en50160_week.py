"""The EN 50160 week through the tracker and pq.db: a week closes with its last 10-min interval
(or with the first interval of a later week after an outage), its record is stored, event 187 is
recorded when it is not compliant, and a restart in the middle of a week loses no stored interval
and gives the same record as an uninterrupted run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from meterd.core import event_codes as ec
from meterd.core.power_fail import PowerFailure
from meterd.pq.en50160 import Quantity, Sample, Verdict, WeekRecord
from meterd.services.pq_interruptions import InterruptionLog
from meterd.services.pq_week import WeekTracker
from meterd.store.pq_store import SqlitePqWeekStore, pack_samples, unpack_samples
from tests.fakes import RecordedEvents

MONDAY = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
TEN = dt.timedelta(minutes=10)


def samples(i: int, outside: int, value: float = 112.0) -> list[Sample]:
    """Voltage of 3 phases (% of Un); phase 1 at ``value`` in the last ``outside`` intervals of the week."""
    off = i >= 1008 - outside
    return [Sample(Quantity.VOLTAGE, p, value if off and p == 1 else 100.0 + 0.01 * (i % 7), False)
            for p in (1, 2, 3)]


def feed(tracker: WeekTracker, first: int, last: int, outside: int, week: int = 0,
         value: float = 112.0) -> list[WeekRecord]:
    closed = []
    for i in range(first, last):
        record = tracker.add_interval(MONDAY + week * 7 * dt.timedelta(days=1) + (i + 1) * TEN, False,
                                      samples(i, outside, value))
        if record is not None:
            closed.append(record)
    return closed


def test_a_week_closes_with_its_last_interval_and_is_evented(tmp_path: Path) -> None:
    events = RecordedEvents()
    with SqlitePqWeekStore(tmp_path / "pq.db", synchronous="NORMAL") as store:
        tracker = WeekTracker(store, events)
        assert feed(tracker, 0, 1007, 60) == []
        [record] = feed(tracker, 1007, 1008, 60)
        assert record.start_utc == MONDAY and record.end_utc == MONDAY + 7 * dt.timedelta(days=1)
        assert record.verdict is Verdict.NOT_COMPLIANT and record.intervals == 1008
        assert record.failed == ("voltage", "voltage_always")
        [(code, utc, detail)] = events.recorded
        assert (ec.lookup(code).name, code, utc) == ("EN50160_WEEK_NOT_COMPLIANT", 187, record.end_utc)
        assert detail == {"week_start": MONDAY.isoformat(), "failed": "voltage,voltage_always"}
        assert store.load_intervals(MONDAY - TEN) == []  # the week's samples go with its record
    with SqlitePqWeekStore(tmp_path / "pq.db", synchronous="NORMAL") as store:
        again = WeekTracker(store, events)
        assert again.last_closed() == record and again.current() is None


def test_a_compliant_week_is_not_evented(tmp_path: Path) -> None:
    events = RecordedEvents()
    with SqlitePqWeekStore(tmp_path / "pq.db", synchronous="NORMAL") as store:
        [record] = feed(WeekTracker(store, events), 0, 1008, 50, value=88.0)  # inside +10/−15 %
        assert record.verdict is Verdict.COMPLIANT and record.result("voltage").within_pct == 100.0 * 958 / 1008
        assert record.result("unbalance").verdict is Verdict.NOT_MEASURED
        assert events.recorded == []


def test_a_restart_mid_week_gives_the_record_of_an_uninterrupted_run(tmp_path: Path) -> None:
    with SqlitePqWeekStore(tmp_path / "a.db", synchronous="NORMAL") as store:
        [whole] = feed(WeekTracker(store, None), 0, 1008, 60)
    with SqlitePqWeekStore(tmp_path / "b.db", synchronous="NORMAL") as store:
        tracker = WeekTracker(store, None, flush_every=6)
        feed(tracker, 0, 504, 60)  # 84 batches of 6: all written; then the meter dies (no flush)
    with SqlitePqWeekStore(tmp_path / "b.db", synchronous="NORMAL") as store:
        tracker = WeekTracker(store, None)
        current = tracker.current()
        assert current is not None and current.intervals == 504
        assert tracker.add_interval(MONDAY + 504 * TEN, False, samples(503, 60)) is None  # already counted
        [record] = feed(tracker, 504, 1008, 60)
    assert record.verdict is whole.verdict and record.intervals == whole.intervals
    for a, b in zip(record.results, whole.results, strict=True):
        assert (a.key, a.verdict, a.n_values, a.n_outside) == (b.key, b.verdict, b.n_values, b.n_outside)
        assert a.within_pct == b.within_pct
        assert (a.p95 is None and b.p95 is None) or abs(a.p95 - b.p95) < 1e-4  # type: ignore[operator]


def test_an_outage_over_the_week_end_closes_the_week_at_the_next_interval(tmp_path: Path) -> None:
    with SqlitePqWeekStore(tmp_path / "pq.db", synchronous="NORMAL") as store:
        log = InterruptionLog(store, None, MONDAY)
        log.from_power_failure(PowerFailure(MONDAY + 6 * dt.timedelta(days=1), MONDAY + dt.timedelta(days=7, hours=3),
                                            86400 + 3 * 3600, long=True))
        tracker = WeekTracker(store, None, log.counts)
        assert feed(tracker, 0, 800, 0) == []
        [record] = feed(tracker, 20, 30, 0, week=1)  # first interval after the outage, next week
        assert record.start_utc == MONDAY and record.intervals == 800
        assert (record.short_interruptions, record.long_interruptions) == (0, 1)
        current = tracker.current()
        assert current is not None and current.intervals == 10


def test_samples_pack_and_unpack() -> None:
    values = [Sample(Quantity.FREQUENCY, 0, 99.875, True), Sample(Quantity.harmonic(25), 3, 1.25, False)]
    assert unpack_samples(pack_samples(values)) == values
