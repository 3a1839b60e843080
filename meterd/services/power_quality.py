"""Power-quality use case: waveform blocks → :class:`~meterd.pq.monitor.PqMonitor` → events and profile.

:class:`PowerQualityService` feeds the monitor with each block, records every finished event in
the power-quality log (dip, swell, short/long interruption, sustained under/over-voltage, stamped
at its start with duration (s), residual or maximum voltage (V) and phases), and appends a profile
row per 10-min aggregate. Without a waveform stream (a Pi without the DMA bridge) it holds the
chip's indicative THD+N and DFT ratios instead (:func:`~meterd.pq.monitor.indicative_from_chip`).

The power-quality profile: one row per 10-min aggregate (a DLMS profile generic buffer).
Columns (after the clock 0-0:1.0.0.255, the end of the interval in UTC): 10-min RMS of U1, U2,
U3 (V, 1-0:C.5.0.255 with C = 32, 52, 72), THDS of U1, U2, U3 (% of the fundamental, orders
2–50, 1-0:C.7.124.255), Pst of L1, L2, L3 of the interval (1-0:C.7.130.255, project code in the
manufacturer range of value group E) and the flag (1 when a dip, swell, interruption or a
sample gap touched the interval, or the interval was only partly measured, as the first one after
a start, IEC 61000-4-30 §4.7). Rows are values, the time is the row's
``utc`` (the ProfileBuffer convention); a ring of ``depth`` rows (default 1008 = 7 days).
With a :class:`RowStore` every row is written durably (one transaction) before it is visible,
and the newest ``depth`` rows are restored when the profile is built (the meter restarted).

The Plt of the running 2-h interval survives a restart: with a :class:`PstStore` each released
Pst (exact value, flag, end of its 10-min interval) is written durably, one transaction per
interval, and at the first block after start the monitor takes back those of the 2-h interval
running at that block's time (:meth:`~meterd.pq.monitor.PqMonitor.restore_pst`). Intervals lost in
the outage are simply absent: that Plt is then computed from the Pst present and flagged.

EN 50160: with a :class:`~meterd.services.pq_week.WeekTracker` each 10-min aggregate's samples
(voltage, THD 2-40, harmonics 2-25), the 10-s frequency values and the 2-h Plt released since the
previous interval go into the running week (:mod:`meterd.pq.en50160`). With an
:class:`~meterd.services.pq_interruptions.InterruptionLog` every measured interruption is kept in
the interruption records beside those entered from the power-fail evidence.
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Protocol

from meterd.core import event_codes as ec
from meterd.core.model import CaptureColumn, ProfileRow
from meterd.core.ports import EventSink
from meterd.pq.aggregation import TWO_HOURS_S, Aggregate
from meterd.pq.en50160 import Sample, aggregate_samples, frequency_sample, plt_sample
from meterd.pq.events import DIP, INTERRUPTION, OVERVOLTAGE, SWELL, UNDERVOLTAGE, PqEvent
from meterd.pq.monitor import FlickerValue, PqMonitor, PqValues
from meterd.pq.source import VOLTAGE_ROWS, WaveformBlock
from meterd.services.pq_interruptions import InterruptionLog
from meterd.services.pq_week import WeekTracker

PQ_PROFILE_OBIS = "1.0.99.14.0.255"
CLOCK_OBIS = "0.0.1.0.0.255"
VOLTAGE_C = (32, 52, 72)
CURRENT_C = (31, 51, 71)
THD_E = 124
PST_E = 130
PLT_E = 131


def rms_10min_obis(c: int) -> str:
    """10-min RMS (last average) of quantity C (V or A)."""
    return f"1.0.{c}.5.0.255"


def thd_obis(c: int) -> str:
    """THD of quantity C (%)."""
    return f"1.0.{c}.7.{THD_E}.255"


def pst_obis(c: int) -> str:
    """Pst of the voltage C."""
    return f"1.0.{c}.7.{PST_E}.255"


def plt_obis(c: int) -> str:
    """Plt of the voltage C."""
    return f"1.0.{c}.7.{PLT_E}.255"


FLAG_OBIS = "0.0.96.10.4.255"

COLUMNS: tuple[CaptureColumn, ...] = (
    CaptureColumn(CLOCK_OBIS, 8),
    *(CaptureColumn(rms_10min_obis(c), 3) for c in VOLTAGE_C),
    *(CaptureColumn(thd_obis(c), 3) for c in VOLTAGE_C),
    *(CaptureColumn(pst_obis(c), 3) for c in VOLTAGE_C),
    CaptureColumn(FLAG_OBIS, 1),
)


class RowStore(Protocol):
    """Durable profile rows (:class:`meterd.store.profile_store.SqliteProfileStore`)."""

    def append_row(self, obis: str, row: ProfileRow) -> None:
        """Store one row of profile ``obis`` (and trim that profile to its depth)."""
        ...

    def load_rows(self, obis: str, limit: int) -> list[ProfileRow]:
        """The newest ``limit`` rows of ``obis``, oldest first."""
        ...


class PstStore(Protocol):
    """Durable Pst of the last 2 h (:class:`meterd.store.profile_store.SqlitePqStore`)."""

    def save_pst(self, end_utc: _dt.datetime, values: Sequence[tuple[int, float, bool]]) -> None:
        """Store (phase, Pst, flagged) of the 10-min interval ending at ``end_utc`` (one transaction)."""
        ...

    def load_pst(self) -> list[tuple[_dt.datetime, int, float, bool]]:
        """Every stored (interval end UTC, phase, Pst, flagged), oldest first."""
        ...


class PqProfile:
    """Ring of 10-min power-quality rows; implements :class:`meterd.core.model.ProfileBuffer`.

    ``store``: where rows are persisted (restored at construction); None keeps them in RAM only.
    """

    def __init__(self, depth: int = 1008, store: RowStore | None = None) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self._store = store
        self._rows: deque[ProfileRow] = deque(maxlen=depth)
        if store is not None:
            self._rows.extend(store.load_rows(PQ_PROFILE_OBIS, depth))

    @property
    def columns(self) -> Sequence[CaptureColumn]:
        """Clock, U RMS ×3, THD U ×3, Pst ×3, flag."""
        return COLUMNS

    @property
    def capture_period_s(self) -> int:
        """600 s (10-min intervals)."""
        return 600

    def entries_in_use(self) -> int:
        """Rows held."""
        return len(self._rows)

    def add(self, aggregate: Aggregate, pst: Mapping[int, float]) -> ProfileRow:
        """Append the row of a 10-min aggregate; ``pst`` by phase 1…3 (missing: 0)."""
        thd = aggregate.thds_pct
        values: list[int | float | str] = [round(float(aggregate.rms[r]), 2) for r in VOLTAGE_ROWS]
        values += [round(thd[r] or 0.0, 2) for r in VOLTAGE_ROWS]
        values += [round(pst.get(p, 0.0), 3) for p in (1, 2, 3)]
        values.append(int(aggregate.flagged))
        row = ProfileRow(aggregate.end_utc, tuple(values))
        if self._store is not None:
            self._store.append_row(PQ_PROFILE_OBIS, row)  # on disk before it is visible
        self._rows.append(row)
        return row

    def last_utc(self) -> _dt.datetime | None:
        """Time of the newest row (None when empty)."""
        return self._rows[-1].utc if self._rows else None

    def rows_between(self, start_utc: _dt.datetime, end_utc: _dt.datetime) -> list[ProfileRow]:
        """Rows with start_utc <= time <= end_utc, oldest first."""
        return [r for r in self._rows if start_utc <= r.utc <= end_utc]

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        """Rows numbered first..last (1 = oldest; last 0 = up to the newest)."""
        held = list(self._rows)
        stop = len(held) if last == 0 else min(last, len(held))
        return held[max(first, 1) - 1:stop]


def event_code(event: PqEvent) -> int:
    """The power-quality log code of a finished event."""
    if event.kind == INTERRUPTION:
        return ec.code("LONG_INTERRUPTION" if event.is_long_interruption else "SHORT_INTERRUPTION")
    names = {DIP: "VOLTAGE_DIP", SWELL: "VOLTAGE_SWELL", UNDERVOLTAGE: "SUSTAINED_UNDERVOLTAGE",
             OVERVOLTAGE: "SUSTAINED_OVERVOLTAGE"}
    return ec.code(names[event.kind])


def event_detail(event: PqEvent) -> dict[str, object]:
    """Scalars stored with the event: kind, phases ("1,3"), duration (s), residual / maximum (V)."""
    detail: dict[str, object] = {"kind": event.kind, "phases": ",".join(str(p) for p in event.phases),
                                 "duration_s": round(event.duration_s, 3), "worst_phase": event.worst_phase}
    if event.residual_v is not None:
        detail["residual_v"] = round(event.residual_v, 2)
    if event.max_v is not None:
        detail["max_v"] = round(event.max_v, 2)
    return detail


class PowerQualityService:
    """Runs the PQ chain of one meter (waveform analysis, or the chip's indicative values)."""

    def __init__(self, monitor: PqMonitor | None, events: EventSink | None, profile_depth: int = 1008,
                 keep_events: int = 20, store: RowStore | None = None,
                 pst_store: PstStore | None = None, week: WeekTracker | None = None,
                 interruptions: InterruptionLog | None = None) -> None:
        self.monitor = monitor
        self.week = week
        self.interruptions = interruptions
        self._week_frequency: list[Sample] = []
        self._week_plt: list[Sample] = []
        self._plt_end: dict[int, _dt.datetime] = {}
        self._frequency_end: _dt.datetime | None = None
        self._pst_store = pst_store
        self._pst_to_restore: list[FlickerValue] | None = None
        if monitor is not None and pst_store is not None:
            self._pst_to_restore = [FlickerValue(phase, end, pst, flagged)
                                    for end, phase, pst, flagged in pst_store.load_pst()]
        self._events = events
        self.profile = PqProfile(profile_depth, store)
        self.recent: deque[PqEvent] = deque(maxlen=keep_events)
        self.event_count = 0
        self._chip_values: PqValues | None = None
        self._last_ten: _dt.datetime | None = self.profile.last_utc()

    @property
    def indicative(self) -> bool:
        """True when the values come from the chip's registers (no waveform stream)."""
        return self.monitor is None

    def feed(self, block: WaveformBlock) -> list[PqEvent]:
        """Analyse one block; record the events that ended and the new 10-min row."""
        assert self.monitor is not None
        if self._pst_to_restore is not None:  # first block after start: the stream's own time
            self.monitor.restore_pst(self._pst_to_restore, block.utc_first)
            self._pst_to_restore = None
        events = self.monitor.feed(block)
        self._save_pst()
        for event in events:
            self.recent.append(event)
            self.event_count += 1
            if self._events is not None:
                self._events.record(event_code(event), event.start_utc, event_detail(event))
            if event.kind == INTERRUPTION and self.interruptions is not None:
                self.interruptions.from_waveform(event)
        self._collect_frequency()
        self._profile_row()
        return events

    # --- EN 50160 week (meterd.services.pq_week) -------------------------------------------------
    def _collect_frequency(self) -> None:
        """Keep each new 10-s frequency value for the EN 50160 week."""
        assert self.monitor is not None
        if self.week is None:
            return
        v = self.monitor.latest()
        self._collect_plt(v)
        if v.frequency_hz is None or v.frequency_end_utc is None or v.frequency_end_utc == self._frequency_end:
            return
        self._frequency_end = v.frequency_end_utc
        self._week_frequency.append(frequency_sample(v.frequency_hz, self.monitor.settings.f_nom_hz,
                                                     v.frequency_flagged))

    def _collect_plt(self, values: PqValues) -> None:
        """Keep each new 2-h Plt (released with the Pst that closes its 2-h interval) for the week."""
        for phase, pst in values.pst.items():
            if (int(pst.end_utc.timestamp()) % TWO_HOURS_S or phase not in values.plt
                    or self._plt_end.get(phase) == pst.end_utc):
                continue
            self._plt_end[phase] = pst.end_utc
            self._week_plt.append(plt_sample(phase, values.plt[phase], values.plt_flagged.get(phase, True)))

    def _week_interval(self, ten: Aggregate) -> None:
        """The samples of a closed 10-min interval into the EN 50160 week: the aggregate's, and the
        10-s frequency values and 2-h Plt released since the previous interval."""
        assert self.monitor is not None
        if self.week is None:
            return
        s = self.monitor.settings
        samples = aggregate_samples(ten, s.udin_v, s.voltage_rows)
        samples += self._week_frequency + self._week_plt
        self._week_frequency, self._week_plt = [], []
        self.week.add_interval(ten.end_utc, ten.flagged, samples)

    def _save_pst(self) -> None:
        """Persist the Pst released by the last block, one transaction per 10-min interval."""
        assert self.monitor is not None
        if self._pst_store is None:
            return
        new = self.monitor.take_new_pst()
        by_end: dict[_dt.datetime, list[tuple[int, float, bool]]] = {}
        for v in new:
            by_end.setdefault(v.end_utc, []).append((v.phase, v.pst, v.flagged))
        for end_utc, values in sorted(by_end.items()):
            self._pst_store.save_pst(end_utc, values)

    def _profile_row(self) -> None:
        assert self.monitor is not None
        values = self.monitor.latest()
        ten = values.aggregates.get("10-min")
        if ten is None or (self._last_ten is not None and ten.end_utc <= self._last_ten):
            return  # already held (also across a restart: a row is never written twice)
        self._last_ten = ten.end_utc
        pst = {p: v.pst for p, v in values.pst.items() if v.end_utc == ten.end_utc}
        self.profile.add(ten, pst)
        self._week_interval(ten)

    def set_chip_values(self, values: PqValues) -> None:
        """Indicative values read from the chip (fallback without a waveform stream)."""
        self._chip_values = values

    def values(self) -> PqValues:
        """The latest values: from the analysis, or the chip's (indicative), or empty."""
        if self.monitor is not None:
            return self.monitor.latest()
        return self._chip_values or PqValues(indicative=True)
