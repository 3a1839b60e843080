"""A 10-min interval only partly measured is flagged, and the flag reaches the PQ profile row.

After every start the stream begins inside a 10-min interval, so the first aggregate covers only
part of it (IEC 61000-4-30 §4.5: incomplete data are flagged like a gap). Expected coverage comes
from the clock: a complete interval is covered by its 10-cycle windows from the tick (the first
window starts at the first rising crossing after it) to the next tick; a 2-h value is complete
with 12 complete 10-min values.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np

from meterd.pq.aggregation import TEN_MIN_S, Aggregate, Aggregator, WindowValues
from meterd.pq.monitor import PqMonitor
from meterd.pq.source import N_ROWS, WaveformBlock
from meterd.services.power_quality import COLUMNS, FLAG_OBIS, PowerQualityService

FS = 8000
WINDOW_S = 0.2  # 10 cycles at 50 Hz
DAY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T_DAY = DAY.timestamp()


def windows(start_s: float, end_s: float, first_offset_s: float = 0.013) -> list[WindowValues]:
    """Contiguous 0.2-s windows of a clean 230 V supply from ``start_s`` + offset until ``end_s`` (POSIX s)."""
    rms = np.full(N_ROWS, 230.0)
    sub = np.zeros((N_ROWS, 51))
    sub[:, 1] = 230.0
    out = []
    t = start_s + first_offset_s
    while t < end_s:
        tick = (math.floor(t / TEN_MIN_S) + 1) * TEN_MIN_S
        out.append(WindowValues(t * FS, (t + WINDOW_S) * FS, t, t + WINDOW_S, rms, sub, False,
                                resync=bool(out) and out[-1].start_posix_s < tick - TEN_MIN_S + 1e-9 < t))
        t += WINDOW_S
    return out


def ten_minute_values(ws: list[WindowValues]) -> list[Aggregate]:
    agg = Aggregator(230.0)
    return [a for w in ws for a in agg.feed(w) if a.kind == "10-min"]


def test_complete_interval_is_not_flagged_and_a_late_start_is() -> None:
    tick = T_DAY + 600
    complete = ten_minute_values(windows(tick, tick + 600.5))
    assert len(complete) == 1 and complete[0].n_values >= 2999
    assert not complete[0].partial and not complete[0].flagged
    late = ten_minute_values(windows(tick + 240.0, tick + 600.5))  # started 4 min into the interval
    assert len(late) == 1 and late[0].partial and late[0].flagged
    assert late[0].rms[0] == 230.0  # the values themselves are those of the part measured


def test_interval_left_before_its_end_is_flagged() -> None:
    tick = T_DAY + 1200
    ws = windows(tick, tick + 300) + windows(tick + 1500, tick + 1500.5)  # stopped 10:05, back 10:25
    first = ten_minute_values(ws)[0]
    assert first.end_utc == dt.datetime.fromtimestamp(tick + 600, tz=dt.UTC)
    assert first.partial and first.flagged


def test_two_hour_value_needs_twelve_complete_ten_minute_values() -> None:
    two_h = T_DAY + 7200
    agg = Aggregator(230.0)
    full = [a for w in windows(two_h, two_h + 7200 + 600.5) for a in agg.feed(w) if a.kind == "2-h"]
    assert len(full) == 1 and not full[0].partial and not full[0].flagged
    agg = Aggregator(230.0)
    late = [a for w in windows(two_h + 1800, two_h + 7200 + 600.5) for a in agg.feed(w) if a.kind == "2-h"]
    assert len(late) == 1 and late[0].partial and late[0].flagged


def test_first_interval_after_start_reaches_the_profile_row_flagged() -> None:
    """A clean supply from 20 s before a tick: the row ending at the tick carries flag 1."""
    t0 = DAY + dt.timedelta(minutes=9, seconds=40)
    service = PowerQualityService(PqMonitor(), None)
    for second in range(22):
        t = (second * FS + np.arange(FS)) / FS
        x = np.zeros((7, FS))
        for p in range(3):
            x[2 * p] = math.sqrt(2) * 230 * np.sin(2 * np.pi * 50 * t - 2 * np.pi * p / 3)
        service.feed(WaveformBlock(second * FS, x, float(FS), t0 + dt.timedelta(seconds=second)))
    ten = service.values().aggregates["10-min"]
    assert ten.end_utc == DAY + dt.timedelta(minutes=10)
    assert ten.partial and ten.flagged
    rows = service.profile.rows_by_entry(1, 0)
    assert [r.utc for r in rows] == [ten.end_utc]
    flag_column = [c.obis for c in COLUMNS].index(FLAG_OBIS) - 1  # the clock is the row's time
    assert rows[0].values[flag_column] == 1
