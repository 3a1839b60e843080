"""PQ thresholds at run time: validated together by PqSettings (a wrong value is refused and
nothing changes), persisted, applied to the running monitor without a restart (the next dip is
judged by the new threshold) and evented (186, old -> new)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from meterd.core import event_codes as ec
from meterd.pq.errors import PqConfigError
from meterd.pq.events import DIP, PqEvent
from meterd.pq.monitor import PqMonitor
from meterd.pq.settings import PqSettings
from meterd.pq.source import WaveformBlock
from meterd.services.pq_thresholds import PqThresholds
from meterd.store.pq_store import SqlitePqWeekStore
from tests.fakes import RecordedEvents
from tests.unit.pq.test_pq_events import FS, T0, grid

T = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def feed(mon: PqMonitor, x: np.ndarray, first: int, block: int = 800) -> list[PqEvent]:
    out: list[PqEvent] = []
    for s in range(0, x.shape[1], block):
        out += mon.feed(WaveformBlock(first + s, x[:, s:s + block], FS, T0 + dt.timedelta(seconds=(first + s) / FS)))
    return out


def test_a_new_dip_threshold_judges_the_next_dip(tmp_path: Path) -> None:
    events = RecordedEvents()
    mon = PqMonitor(PqSettings())
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:
        th = PqThresholds(PqSettings(), store, events, apply=mon.apply_settings)
        x = grid(2.0, {1: [(1.0, 1.2, 0.85)]})  # 85 % of Udin for 10 cycles
        assert [e.kind for e in feed(mon, x, 0)].count(DIP) == 1  # below 90 %: a dip
        changes = th.change({"dip_threshold_pct": 80.0}, T, "api")
        assert [(c.name, c.old, c.new) for c in changes] == [("dip_threshold_pct", 90.0, 80.0)]
        assert [e.kind for e in feed(mon, x, x.shape[1])].count(DIP) == 0  # no longer below the threshold
        assert mon.settings.dip_threshold_pct == 80.0
        [(code, utc, detail)] = events.recorded
        assert (ec.lookup(code).name, code, utc) == ("PQ_THRESHOLDS_CHANGED", 186, T)
        assert detail == {"source": "api", "changes": "dip_threshold_pct 90 -> 80"}
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:  # persisted: the next start uses it
        assert PqThresholds(PqSettings(), store, None).settings.dip_threshold_pct == 80.0


@pytest.mark.parametrize("changes", [
    {"dip_threshold_pct": 99.0},               # + hysteresis 2 % reaches 100 %
    {"interruption_threshold_pct": 89.0},      # + hysteresis above the dip threshold
    {"hysteresis_pct": 0.0},
    {"udin_v": -230.0},
    {"swell_threshold_pct": float("nan")},
    {"frequency": 60.0},                        # not a writable setting
    {"dip_threshold_pct": 85.0, "hysteresis_pct": -1.0},  # one bad value refuses the whole write
])
def test_a_wrong_value_is_refused_and_nothing_changes(tmp_path: Path, changes: dict[str, float]) -> None:
    events = RecordedEvents()
    applied: list[PqSettings] = []
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:
        th = PqThresholds(PqSettings(), store, events, apply=applied.append)
        with pytest.raises(PqConfigError):
            th.change(changes, T, "dlms")
        assert th.settings == PqSettings() and applied == [] and events.recorded == []
        assert store.load_thresholds() == {}


def test_the_monitor_keeps_an_event_in_progress_on_its_thresholds() -> None:
    mon = PqMonitor(PqSettings())
    x = grid(2.0, {1: [(1.0, 1.6, 0.85)]})
    first = feed(mon, x[:, :int(1.3 * FS)], 0)  # the dip is in progress
    assert DIP in mon.latest().active_events and first == []
    mon.apply_settings(dataclasses.replace(mon.settings, dip_threshold_pct=80.0))
    rest = feed(mon, x[:, int(1.3 * FS):], int(1.3 * FS))
    dip = [e for e in rest if e.kind == DIP]
    assert len(dip) == 1 and dip[0].duration_s == pytest.approx(0.6, abs=0.02)  # ended by the rules it began with
    assert mon.settings.dip_threshold_pct == 80.0
    with pytest.raises(PqConfigError):
        mon.apply_settings(dataclasses.replace(mon.settings, f_nom_hz=60.0))
