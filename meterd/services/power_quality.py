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
manufacturer range of value group E), the quantities of :data:`QUANTITY_COLUMNS` (voltage
unbalance u2 and u0, THDS40, PWHD and TIHDS40 of U1, U2, U3, OBIS codes with the constants below) and
the flag (1 when a dip, swell, interruption or a
sample gap touched the interval, or the interval was only partly measured, as the first one after
a start, IEC 61000-4-30 §4.7). On a single-phase two-wire supply (1P2W, ``phases`` 1) only the
columns of L1 exist and there is no unbalance. Rows are values, the time is the row's
``utc`` (the ProfileBuffer convention); a ring of ``depth`` rows (default 1008 = 7 days).
With a :class:`RowStore` every row is written durably (one transaction) before it is visible,
and the newest ``depth`` rows are restored when the profile is built (the meter restarted).
Rows stored before the quantity columns existed (3P4W: 10 values) come back with those columns
0; rows of the other supply layout (the configured phases changed) are not restored.

The Plt of the running 2-h interval survives a restart: with a :class:`PstStore` each released
Pst (exact value, flag, end of its 10-min interval) is written durably (with a store that has
:class:`OneTransaction`, what one block brings to it, Pst, interruption records, profile row and
EN 50160 batch, is one transaction, committed before :meth:`PowerQualityService.apply` returns), and at the first block after start the monitor takes back those of the 2-h interval
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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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

# --- Unbalance, THD40, PWHD and interharmonics (10-min values, IEC 61000-4-30 class A methods) ---
# No OBIS code for these quantities is given in the meter's DLMS reference; like Pst and Plt they
# take project codes in the manufacturer range (128…254) of value group E, on the quantity's C:
# C = 12 (voltage, any phase) for the polyphase unbalance, the channel's C for the others.
UNBALANCE_C = 12
U2_E = 132  # negative-sequence voltage unbalance u2 (%)
U0_E = 133  # zero-sequence voltage unbalance u0 (%)
THDS40_E = 134  # THDS of subgroups 2–40 (%)
THDG40_E = 135  # THDG of groups 2–40 (%)
PWHD_E = 136  # partial weighted harmonic distortion, subgroups 14–40 (%)
IH_SUBGROUP_E = 137  # interharmonic centred subgroups 0…50, array (% of the fundamental)
IH_GROUP_E = 138  # interharmonic groups 0…50, array (% of the fundamental)
TIHDS40_E = 139  # interharmonic distortion of the centred subgroups 0…39 (%)


def quantity_obis(c: int, e: int) -> str:
    """The 10-min value of quantity C with project code E (see above)."""
    return f"1.0.{c}.7.{e}.255"


U2_OBIS = quantity_obis(UNBALANCE_C, U2_E)
U0_OBIS = quantity_obis(UNBALANCE_C, U0_E)


def voltage_c(phases: int) -> tuple[int, ...]:
    """Value group C of the voltages measured: 32, 52, 72 (3P4W) or 32 (1P2W)."""
    return VOLTAGE_C if phases == 3 else VOLTAGE_C[:1]


def quantity_columns(phases: int = 3) -> tuple[CaptureColumn, ...]:
    """The profile's unbalance (3P4W only), THDS40, PWHD and TIHDS40 columns, before the flag."""
    unbalance = (CaptureColumn(U2_OBIS, 3), CaptureColumn(U0_OBIS, 3)) if phases == 3 else ()
    return (*unbalance, *(CaptureColumn(quantity_obis(c, e), 3)
                          for e in (THDS40_E, PWHD_E, TIHDS40_E) for c in voltage_c(phases)))


def quantity_values(aggregate: Aggregate, phases: int = 3) -> list[int | float | str]:
    """The values of :func:`quantity_columns` from a 10-min aggregate (% rounded to 0.01; 0 if none)."""
    rows = VOLTAGE_ROWS[:phases]
    values: list[int | float | str] = []
    if phases == 3:
        values += [round(aggregate.u2_pct or 0.0, 2), round(aggregate.u0_pct or 0.0, 2)]
    for per_row in (aggregate.thds40_pct, aggregate.pwhd_pct, aggregate.tihds40_pct):
        values += [round(per_row[r] or 0.0, 2) for r in rows]
    return values
# --- end of unbalance, THD40, PWHD and interharmonics ---


def profile_columns(phases: int = 3) -> tuple[CaptureColumn, ...]:
    """Capture objects of the PQ profile of a 3P4W (``phases`` 3) or 1P2W (1) supply."""
    return (
        CaptureColumn(CLOCK_OBIS, 8),
        *(CaptureColumn(rms_10min_obis(c), 3) for c in voltage_c(phases)),
        *(CaptureColumn(thd_obis(c), 3) for c in voltage_c(phases)),
        *(CaptureColumn(pst_obis(c), 3) for c in voltage_c(phases)),
        *quantity_columns(phases),
        CaptureColumn(FLAG_OBIS, 1),
    )


COLUMNS: tuple[CaptureColumn, ...] = profile_columns(3)
_LEGACY_VALUES = 10  # values of a 3P4W row before the quantity columns: U, THD, Pst ×3, flag


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


@runtime_checkable
class OneTransaction(Protocol):
    """A store that can commit several writes together
    (:meth:`meterd.store.profile_store.SqliteProfileStore.one_transaction`)."""

    def one_transaction(self) -> AbstractContextManager[None]:
        """Writes made inside the ``with`` block are committed in one transaction at its end."""
        ...


class PqProfile:
    """Ring of 10-min power-quality rows; implements :class:`meterd.core.model.ProfileBuffer`.

    ``store``: where rows are persisted (restored at construction); None keeps them in RAM only.
    ``phases``: 3 (3P4W) or 1 (1P2W: the columns of L1 only, no unbalance).
    """

    def __init__(self, depth: int = 1008, store: RowStore | None = None, phases: int = 3) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.depth = depth
        self.phases = phases
        self._columns = profile_columns(phases)
        self._store = store
        self._rows: deque[ProfileRow] = deque(maxlen=depth)
        if store is not None:
            self._rows.extend(r for r in map(self._current_layout, store.load_rows(PQ_PROFILE_OBIS, depth))
                              if r is not None)

    def _current_layout(self, row: ProfileRow) -> ProfileRow | None:
        """A stored row in this profile's columns: as stored, a 3P4W row from before the quantity
        columns with those 0, or None for a row of the other supply layout."""
        width = len(self._columns) - 1
        if len(row.values) == width:
            return row
        if self.phases == 3 and len(row.values) == _LEGACY_VALUES:
            pad = (0.0,) * (width - _LEGACY_VALUES)
            return ProfileRow(row.utc, (*row.values[:-1], *pad, row.values[-1]))
        return None

    @property
    def columns(self) -> Sequence[CaptureColumn]:
        """Clock, U RMS, THD U, Pst (per phase), unbalance u2 and u0 (3P4W), THDS40 and PWHD (per
        phase), flag."""
        return self._columns

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
        rows = VOLTAGE_ROWS[: self.phases]
        values: list[int | float | str] = [round(float(aggregate.rms[r]), 2) for r in rows]
        values += [round(thd[r] or 0.0, 2) for r in rows]
        values += [round(pst.get(p, 0.0), 3) for p in range(1, self.phases + 1)]
        values += quantity_values(aggregate, self.phases)
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
                 pst_store: PstStore | None = None, week: WeekTracker | None = None,
                 interruptions: InterruptionLog | None = None, phases: int = 3) -> None:
        self.monitor = monitor
        self.phases = phases
        """Voltage phases of the supply: 3 (3P4W) or 1 (1P2W), as the monitor's settings."""
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
        self.profile = PqProfile(profile_depth, store, self.phases)
        self.recent: deque[PqEvent] = deque(maxlen=keep_events)
        self.event_count = 0
        self._chip_values: PqValues | None = None
        self._stream_live = True
        self._latest: PqValues | None = None  # of the last block applied
        self._last_ten: _dt.datetime | None = self.profile.last_utc()

    @property
    def indicative(self) -> bool:
        """True when the values come from the chip's registers (no waveform stream, or it is off)."""
        return self.monitor is None or not self._stream_live

    def set_stream_live(self, live: bool) -> None:
        """Whether the waveform stream delivers; while it does not, the chip's values stand in."""
        self._stream_live = live

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
        # what the block brings to pq.db (Pst, interruption records, profile row, EN 50160 batch)
        # is committed in one transaction (one sync), durable when apply returns as before
        with self._one_transaction():
            self._save_pst(outcome.new_pst)
            for event in outcome.events:
                self.recent.append(event)
                self.event_count += 1
                if self._events is not None:
                    self._events.record(event_code(event), event.start_utc, event_detail(event))
                if event.kind == INTERRUPTION and self.interruptions is not None:
                    self.interruptions.from_waveform(event)
            self._collect_frequency(outcome.values)
            self._profile_row(outcome.values)
        return list(outcome.events)

    def _one_transaction(self) -> AbstractContextManager[None]:
        store = self._pst_store
        return store.one_transaction() if isinstance(store, OneTransaction) else nullcontext()

    # --- EN 50160 week (meterd.services.pq_week) -------------------------------------------------
    def _collect_frequency(self, v: PqValues) -> None:
        """Keep each new 10-s frequency value of the values ``v`` of an applied block for the
        EN 50160 week."""
        assert self.monitor is not None
        if self.week is None:
            return
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
        self._week_interval(ten)

    def set_chip_values(self, values: PqValues) -> None:
        """Indicative values read from the chip (fallback without a waveform stream)."""
        self._chip_values = values

    def values(self) -> PqValues:
        """The latest values: from the analysis, or the chip's (indicative), or empty."""
        if self.monitor is not None and self._stream_live:
            return self._latest if self._latest is not None else self.monitor.latest()
        return self._chip_values or PqValues(indicative=True)
