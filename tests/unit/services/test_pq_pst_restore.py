"""The Pst of the running 2-h Plt interval survive a restart (IEC 61000-4-30 §4.7, §7.7).

A restarted meter takes back the persisted Pst of the 2-h interval running at its first block, so
its Plt equals the uninterrupted one when no 10-min interval was lost; lost intervals are absent
(Plt of the Pst present, flagged); Pst of another 2-h interval or day never enter. The store keeps
exact values, one transaction per 10-min interval, for 2 h only.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from meterd.pq.flicker import plt_from_pst
from meterd.pq.monitor import FlickerValue, PltSeries, PqMonitor
from meterd.pq.source import N_ROWS, WaveformBlock
from meterd.services.power_quality import PQ_PROFILE_OBIS, PowerQualityService
from meterd.store.profile_store import SqlitePqStore, SqliteProfileStore

DAY = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
W0 = DAY + dt.timedelta(hours=4)  # a 2-h interval 04:00–06:00 UTC


def end(i: int, base: dt.datetime = W0) -> dt.datetime:
    """End of the i-th 10-min interval of the 2-h interval starting at ``base``."""
    return base + dt.timedelta(minutes=10 * (i + 1))


def psts(first: int, last: int, base: dt.datetime = W0) -> list[FlickerValue]:
    """Pst of intervals first..last-1 for the three phases: distinct, irregular values."""
    return [FlickerValue(p, end(i, base), 0.2 + 0.037 * i * p + 0.011 * (i % 5), i == 3 and p == 2)
            for i in range(first, last) for p in (1, 2, 3)]


class FakeStore:
    """In-memory PstStore that counts its transactions."""

    def __init__(self) -> None:
        self.rows: dict[tuple[dt.datetime, int], tuple[float, bool]] = {}
        self.transactions: list[dt.datetime] = []

    def save_pst(self, end_utc: dt.datetime, values: list[tuple[int, float, bool]]) -> None:
        self.transactions.append(end_utc)
        for phase, pst, flagged in values:
            self.rows[(end_utc, phase)] = (pst, flagged)

    def load_pst(self) -> list[tuple[dt.datetime, int, float, bool]]:
        return [(e, p, v, f) for (e, p), (v, f) in sorted(self.rows.items())]


class ScriptedMonitor(PqMonitor):
    """A monitor whose Pst come from a script: each is released by the first block after its end."""

    def __init__(self, script: list[FlickerValue]) -> None:
        super().__init__()
        self._script = list(script)

    def feed(self, block: WaveformBlock) -> list[object]:  # type: ignore[override]
        while self._script and self._script[0].end_utc <= block.utc_first:
            self._on_pst(self._script.pop(0))
        return []


def block(utc: dt.datetime) -> WaveformBlock:
    return WaveformBlock(0, np.zeros((N_ROWS, 1)), 8000.0, utc)


def run(service: PowerQualityService, start: dt.datetime, stop: dt.datetime) -> None:
    """Feed one block per minute from start to stop (inclusive), plus one 5 s after each tick."""
    t = start
    while t <= stop:
        service.feed(block(t))
        t += dt.timedelta(minutes=1)
    service.feed(block(stop + dt.timedelta(seconds=5)))


def test_plt_after_a_restart_equals_the_uninterrupted_plt() -> None:
    script = psts(0, 12)
    reference = PowerQualityService(ScriptedMonitor(script), None, pst_store=FakeStore())
    run(reference, W0, end(11))
    ref = reference.values()

    store = FakeStore()
    before = PowerQualityService(ScriptedMonitor(script[:15]), None, pst_store=store)  # intervals 0..4
    run(before, W0, W0 + dt.timedelta(minutes=52))
    assert before.values().plt == {}
    assert store.transactions == [end(i) for i in range(5)]  # one transaction per 10-min interval
    after = PowerQualityService(ScriptedMonitor(script[15:]), None, pst_store=store)
    run(after, W0 + dt.timedelta(minutes=53), end(11))
    got = after.values()
    assert got.plt == ref.plt and got.plt_flagged == ref.plt_flagged  # bit-exact
    assert got.plt_flagged == {1: False, 2: True, 3: False}
    for phase in (1, 2, 3):
        assert got.plt[phase] == pytest.approx(plt_from_pst([v.pst for v in script if v.phase == phase]),
                                               rel=1e-12)
    # without the restored Pst the restarted meter has no complete 2-h interval
    lost = PowerQualityService(ScriptedMonitor(script[15:]), None)
    run(lost, W0 + dt.timedelta(minutes=53), end(11))
    assert lost.values().plt_flagged == {1: True, 2: True, 3: True}
    assert lost.values().plt[1] != pytest.approx(ref.plt[1], rel=1e-6)


def test_intervals_lost_in_the_outage_are_absent_and_flag_the_plt() -> None:
    store = FakeStore()
    before = PowerQualityService(ScriptedMonitor(psts(0, 4)), None, pst_store=store)
    run(before, W0, W0 + dt.timedelta(minutes=41))
    after = PowerQualityService(ScriptedMonitor(psts(7, 12)), None, pst_store=store)  # 4, 5, 6 lost
    run(after, W0 + dt.timedelta(minutes=75), end(11))
    present = [v for v in psts(0, 4) + psts(7, 12) if v.phase == 1]
    assert after.values().plt[1] == pytest.approx(plt_from_pst([v.pst for v in present]), rel=1e-12)
    assert after.values().plt_flagged[1] is True


def test_pst_of_another_two_hour_interval_or_day_never_enter() -> None:
    store = FakeStore()
    yesterday = W0 - dt.timedelta(days=1)
    earlier = W0 - dt.timedelta(hours=2)
    for values in (psts(0, 12, yesterday), psts(6, 12, earlier)):  # the last ends at W0 exactly
        for v in values:
            store.save_pst(v.end_utc, [(v.phase, 9.0, False)])
    after = PowerQualityService(ScriptedMonitor(psts(0, 12)), None, pst_store=store)
    run(after, W0, end(11))
    assert after.values().plt[1] == pytest.approx(plt_from_pst([v.pst for v in psts(0, 12) if v.phase == 1]))
    assert after.values().plt_flagged[1] is False  # 12 Pst of this interval, none of another


def test_restore_keeps_only_the_running_interval_and_nothing_from_the_future() -> None:
    series = PltSeries()
    values = [v for v in psts(0, 12, W0 - dt.timedelta(hours=2)) + psts(0, 12) if v.phase == 1]
    series.restore(values, end(4) + dt.timedelta(seconds=30))
    assert [v.end_utc for v in series.held()] == [end(i) for i in range(5)]
    series.restore(values, W0)  # the tick itself: the 2-h interval that starts there is empty
    assert series.held() == ()


def test_monitor_restore_shows_the_latest_pst() -> None:
    monitor = PqMonitor()
    monitor.restore_pst(psts(0, 3), end(2) + dt.timedelta(seconds=1))
    assert monitor.latest().pst[2].end_utc == end(2)
    assert [v.end_utc for v in monitor.plt_held(3)] == [end(0), end(1), end(2)]
    assert monitor.take_new_pst() == []


def test_store_keeps_exact_values_for_two_hours_across_reopen(tmp_path: Path) -> None:
    SqliteProfileStore(tmp_path / "pq.db").close()  # a file from before the table existed
    exact = 0.123456789012345
    with SqlitePqStore(tmp_path / "pq.db", depth={PQ_PROFILE_OBIS: 5}) as s:
        for i in range(20):
            s.save_pst(end(i), [(1, exact * i, i % 2 == 0), (2, 0.5, False), (3, 0.25, True)])
    with SqlitePqStore(tmp_path / "pq.db") as s:
        rows = s.load_pst()
    ends = sorted({r[0] for r in rows})
    assert ends == [end(i) for i in range(8, 20)]  # the last 2 h: 12 intervals
    assert (end(19), 1, exact * 19, False) in rows and (end(18), 1, exact * 18, True) in rows
    assert len(rows) == 36
