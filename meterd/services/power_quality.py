"""Power-quality use case: waveform blocks → :class:`~meterd.pq.monitor.PqMonitor` → events and profile.

:class:`PowerQualityService` feeds the monitor with each block, records every finished event in
the power-quality log (dip, swell, short/long interruption, sustained under/over-voltage, stamped
at its start with duration (s), residual or maximum voltage (V) and phases), and appends a profile
row per 10-min aggregate. Without a waveform stream (a Pi without the DMA bridge) it holds the
chip's indicative THD+N and DFT ratios instead (:func:`~meterd.pq.monitor.indicative_from_chip`).
The work is split in two so that the analysis can run off the event loop: :meth:`~PowerQualityService.analyse`
touches only the monitor (a worker thread runs it, :mod:`meterd.runtime.pq_worker`) and gives a
:class:`PqOutcome`; :meth:`~PowerQualityService.apply` records it (event log, profile, Pst store)
where the stores live; :meth:`~PowerQualityService.feed` does both at once.

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
"""

from __future__ import annotations

import datetime as _dt
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from meterd.core import event_codes as ec
from meterd.core.model import CaptureColumn, ProfileRow
from meterd.core.ports import EventSink
from meterd.pq.aggregation import Aggregate
from meterd.pq.events import DIP, INTERRUPTION, OVERVOLTAGE, SWELL, UNDERVOLTAGE, PqEvent
from meterd.pq.monitor import FlickerValue, PqMonitor, PqValues
from meterd.pq.source import VOLTAGE_ROWS, WaveformBlock

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


@dataclass(frozen=True)
class PqOutcome:
    """What the analysis of one block gives: the events that ended, the Pst released (to be
    persisted) and a snapshot of the latest values."""

    events: tuple[PqEvent, ...]
    new_pst: tuple[FlickerValue, ...]
    values: PqValues


class PowerQualityService:
    """Runs the PQ chain of one meter (waveform analysis, or the chip's indicative values)."""

    def __init__(self, monitor: PqMonitor | None, events: EventSink | None, profile_depth: int = 1008,
                 keep_events: int = 20, store: RowStore | None = None,
                 pst_store: PstStore | None = None) -> None:
        self.monitor = monitor
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
        self._latest: PqValues | None = None  # of the last block applied
        self._last_ten: _dt.datetime | None = self.profile.last_utc()

    @property
    def indicative(self) -> bool:
        """True when the values come from the chip's registers (no waveform stream)."""
        return self.monitor is None

    def feed(self, block: WaveformBlock) -> list[PqEvent]:
        """Analyse one block; record the events that ended and the new 10-min row."""
        return self.apply(self.analyse(block))

    def analyse(self, block: WaveformBlock) -> PqOutcome:
        """The analysis of one block, touching only the monitor (no store, no event log): what a
        worker thread runs; :meth:`apply` then records its outcome where the stores live."""
        assert self.monitor is not None
        if self._pst_to_restore is not None:  # first block after start: the stream's own time
            self.monitor.restore_pst(self._pst_to_restore, block.utc_first)
            self._pst_to_restore = None
        events = self.monitor.feed(block)
        new_pst = tuple(self.monitor.take_new_pst()) if self._pst_store is not None else ()  # to be persisted
        return PqOutcome(tuple(events), new_pst, self.monitor.latest())

    def apply(self, outcome: PqOutcome) -> list[PqEvent]:
        """Record an analysed block: its Pst, the events that ended, the new 10-min row; its
        values become the latest shown. Returns the events."""
        self._latest = outcome.values
        self._save_pst(outcome.new_pst)
        for event in outcome.events:
            self.recent.append(event)
            self.event_count += 1
            if self._events is not None:
                self._events.record(event_code(event), event.start_utc, event_detail(event))
        self._profile_row(outcome.values)
        return list(outcome.events)

    def _save_pst(self, new: Sequence[FlickerValue]) -> None:
        """Persist the Pst released by the last block, one transaction per 10-min interval."""
        if self._pst_store is None:
            return
        by_end: dict[_dt.datetime, list[tuple[int, float, bool]]] = {}
        for v in new:
            by_end.setdefault(v.end_utc, []).append((v.phase, v.pst, v.flagged))
        for end_utc, values in sorted(by_end.items()):
            self._pst_store.save_pst(end_utc, values)

    def _profile_row(self, values: PqValues) -> None:
        ten = values.aggregates.get("10-min")
        if ten is None or (self._last_ten is not None and ten.end_utc <= self._last_ten):
            return  # already held (also across a restart: a row is never written twice)
        self._last_ten = ten.end_utc
        pst = {p: v.pst for p, v in values.pst.items() if v.end_utc == ten.end_utc}
        self.profile.add(ten, pst)

    def set_chip_values(self, values: PqValues) -> None:
        """Indicative values read from the chip (fallback without a waveform stream)."""
        self._chip_values = values

    def values(self) -> PqValues:
        """The latest values: from the analysis, or the chip's (indicative), or empty."""
        if self.monitor is not None:
            return self._latest if self._latest is not None else self.monitor.latest()
        return self._chip_values or PqValues(indicative=True)
