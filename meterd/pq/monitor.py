"""PqMonitor: the power-quality façade fed with waveform blocks (events, latest values, aggregates).

Pipeline per block: zero crossings and Urms(1/2) per voltage channel; Urms(1/2) values of the three
phases merged in time order into the dip/swell/interruption detector; contiguous 10/12-cycle
windows on the U1 grid (resynchronised at each 10-min tick) giving RMS, harmonics, sustained
under/over-voltage and aggregates; Class A 10-s frequency; flickermeter per phase with Pst per
10-min interval and Plt per 2 h. Values become final one nominal cycle after their window ends
(the time a zero crossing needs to be confirmed), so results never depend on block size.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from meterd.pq.aggregation import TEN_MIN_S, TWO_HOURS_S, Aggregate, Aggregator, WindowValues
from meterd.pq.errors import PqConfigError, SampleStreamError
from meterd.pq.events import PqEvent, RmsEventDetector, SustainedDetector, phase_of_row
from meterd.pq.flicker import (
    DECIMATION,
    SETTLING_S,
    STAT_DECIMATION,
    Flickermeter,
    PinstInterval,
    plt_from_pst,
    pst_from_pinst,
)
from meterd.pq.frequency import FrequencyValue, TenSecondFrequency
from meterd.pq.harmonics import (
    MAX_ORDER,
    HarmonicResult,
    analyse_rows,
    interpolation_margin,
    line_rms,
    prepare_tables,
    resample_window,
)
from meterd.pq.history import SampleHistory
from meterd.pq.interharmonics import interharmonic_rows
from meterd.pq.rms import HalfCycleRms, HalfCycleValue, window_mean_square
from meterd.pq.settings import PqSettings
from meterd.pq.source import CURRENT_ROWS, N_ROWS, ROW_NAMES, ROW_U1, VOLTAGE_ROWS, FloatArray, WaveformBlock
from meterd.pq.timebase import IndexTimebase
from meterd.pq.unbalance import fundamental_phasors, unbalance
from meterd.pq.zerocross import Mark, PreFilter, ZeroCrossingDetector

CHIP_DFT_MAX_ORDER = 32


@dataclass(frozen=True)
class FlickerValue:
    """Pst of one phase for a 10-min interval ending at end_utc (flagged: settling, event or gap)."""

    phase: int
    end_utc: _dt.datetime
    pst: float
    flagged: bool


@dataclass(frozen=True)
class PqValues:
    """Snapshot of the latest power-quality values.

    urms_half_v: latest Urms(1/2) per phase (V). rms_10cycle: latest 10/12-cycle RMS per channel
    name (V, A). frequency_hz: latest 10-s frequency (Hz); frequency_end_utc: the end of its 10-s
    clock interval (UTC). thd_pct / harmonic_pct: THDS (% of the
    fundamental, orders 2–50) and individual harmonic ratios (index = order, %) per channel name;
    None where not available. pst / plt: latest per phase; plt_flagged: per phase, True when any
    of the Pst of that Plt was flagged or fewer than 12 were present (IEC 61000-4-30 §4.7). aggregates: latest of each kind.
    indicative: True when the values come from the chip registers, not from IEC methods.
    """

    indicative: bool = False
    utc: _dt.datetime | None = None
    urms_half_v: dict[int, float] = field(default_factory=dict)
    rms_10cycle: dict[str, float] = field(default_factory=dict)
    frequency_hz: float | None = None
    frequency_flagged: bool = False
    frequency_end_utc: _dt.datetime | None = None
    thd_pct: dict[str, float | None] = field(default_factory=dict)
    harmonic_pct: dict[str, tuple[float, ...]] = field(default_factory=dict)
    harmonics: dict[str, HarmonicResult] = field(default_factory=dict)
    pst: dict[int, FlickerValue] = field(default_factory=dict)
    plt: dict[int, float] = field(default_factory=dict)
    plt_flagged: dict[int, bool] = field(default_factory=dict)
    aggregates: dict[str, Aggregate] = field(default_factory=dict)
    active_events: tuple[str, ...] = ()


def indicative_from_chip(thd_u_pct: Sequence[float], thd_i_pct: Sequence[float],
                         harmonic_ratios: dict[str, Sequence[float]]) -> PqValues:
    """Register-only fallback: the chip's THD+N per phase and its DFT ratios (orders 2–32, %).

    thd_u_pct / thd_i_pct: THD+N of U1..U3 and I1..I3 (%). harmonic_ratios: channel name ("U1",
    "I2", …) → ratios in % of the fundamental, first entry order 2. Marked ``indicative``: the chip's
    window, THD+N definition and order range are not IEC 61000-4-7 quantities (power-quality.md §1).
    """
    thd: dict[str, float | None] = {}
    for names, values in ((("U1", "U2", "U3"), thd_u_pct), (("I1", "I2", "I3"), thd_i_pct)):
        thd.update({n: float(v) for n, v in zip(names, values, strict=False)})
    ratios: dict[str, tuple[float, ...]] = {}
    for name, values in harmonic_ratios.items():
        if name not in ROW_NAMES:
            raise ValueError(f"unknown channel {name!r}")
        orders = [0.0, 100.0] + [float(v) for v in values[: CHIP_DFT_MAX_ORDER - 1]]
        ratios[name] = tuple(orders + [math.nan] * (MAX_ORDER + 1 - len(orders)))
    return PqValues(indicative=True, thd_pct=thd, harmonic_pct=ratios)


@dataclass(frozen=True)
class PltValue:
    """Plt of one phase for the 2-h interval ending at end_utc; flagged when any of its Pst was."""

    phase: int
    end_utc: _dt.datetime
    plt: float
    flagged: bool


class PltSeries:
    """The Pst of the current 2-h UTC interval of one phase → a Plt when that interval closes (§7.7).

    The flag of each Pst (settling, event, gap) travels with it: a Plt holding a flagged Pst is
    flagged (IEC 61000-4-30 §4.7). The Plt is given when the Pst of the last 10-min interval of the
    2-h interval arrives; when some of the 12 Pst are missing (a gap or an outage longer than an
    interval), it is the Plt of the Pst present and it is flagged (incomplete data, §4.5). When the
    last interval itself is missing, that 2-h interval has no Plt. Only Pst whose interval ends in
    the same aligned 2-h interval are ever combined.
    """

    def __init__(self) -> None:
        self._held: list[FlickerValue] = []

    def add(self, value: FlickerValue) -> PltValue | None:
        """Take the next Pst; returns the Plt when it closes its 2-h interval."""
        two_h = _two_hour_key(value.end_utc)
        self._held = [h for h in self._held
                      if _two_hour_key(h.end_utc) == two_h and h.end_utc != value.end_utc] + [value]
        if int(value.end_utc.timestamp()) % TWO_HOURS_S:
            return None
        complete = len(self._held) == TWO_HOURS_S // TEN_MIN_S
        return PltValue(value.phase, value.end_utc, plt_from_pst([h.pst for h in self._held]),
                        not complete or any(h.flagged for h in self._held))

    def restore(self, values: Sequence[FlickerValue], now_utc: _dt.datetime) -> None:
        """Take back the Pst of the running 2-h interval (after a restart at ``now_utc``).

        Only values whose 10-min interval ended in the 2-h interval running at ``now_utc`` and not
        after ``now_utc`` are kept (oldest first; one per interval), so a Pst of an earlier 2-h
        interval or day never enters a Plt.
        """
        current = int(now_utc.timestamp()) // TWO_HOURS_S
        kept = {v.end_utc: v for v in values if _two_hour_key(v.end_utc) == current and v.end_utc <= now_utc}
        self._held = [kept[k] for k in sorted(kept)]

    def held(self) -> tuple[FlickerValue, ...]:
        """The Pst of the running 2-h interval held so far, oldest first."""
        return tuple(self._held)


def _two_hour_key(end_utc: _dt.datetime) -> int:
    """The 2-h UTC interval an interval ending at ``end_utc`` belongs to."""
    return int(end_utc.timestamp() - 1) // TWO_HOURS_S


def history_capacity(sample_rate_hz: float) -> int:
    """Samples of each channel the monitor keeps (a power of two): at least 2 s. A block is at
    most 1 s (:meth:`PqMonitor.feed` cuts longer ones) and what it must still reach behind itself
    is the oldest window not yet released: 10/12 cycles (0.28 s at 42.5 Hz) plus the release lag
    (one period and the interpolation margin), far below the other second. 16 384 at 8 kHz:
    2 × 7 × 16 384 × 8 B = 1.8 MB for the samples and their running sums."""
    return 1 << math.ceil(math.log2(2.0 * sample_rate_hz))


class _Window:
    """A 10/12-cycle window waiting for its flags: sample-index boundaries, resync flag."""

    def __init__(self, start: float, stop: float, resync: bool) -> None:
        self.start, self.stop, self.resync = start, stop, resync


class PqMonitor:
    """Power quality of a three-phase four-wire (or, with ``settings.phases`` 1, single-phase two-wire)
    supply from a continuous waveform stream."""

    def __init__(self, settings: PqSettings | None = None) -> None:
        self.settings = s = settings if settings is not None else PqSettings()
        self._fs = s.sample_rate_hz
        self._period = self._fs / s.f_nom_hz
        self._horizon_lag = int(math.ceil(self._period)) + interpolation_margin() + 8
        self._timebase = IndexTimebase(self._fs)
        self._flicker_k = Flickermeter(self._fs, s.f_nom_hz, s.lamp_model).k
        prepare_tables()
        self._events = RmsEventDetector(s, self._timebase.utc, self._fs)
        self._sustained = SustainedDetector(s, self._timebase.utc, self._fs)
        self._aggregator = Aggregator(s.udin_v, s.cycles_per_window)
        self._values = PqValues()
        self._plt = {phase_of_row(r): PltSeries() for r in self.settings.voltage_rows}
        self._new_pst: deque[FlickerValue] = deque(
            maxlen=TWO_HOURS_S // TEN_MIN_S * len(self.settings.voltage_rows))
        self._expected_index: int | None = None
        self._next_settings: PqSettings | None = None
        self._reset_stream(0)

    def apply_settings(self, settings: PqSettings) -> None:
        """Take new event thresholds and Udin at run time (already validated by :class:`PqSettings`).

        They apply from the first block that starts with no dip, swell or interruption in
        progress (an event ends by the rules it started with), without restarting the stream;
        a sustained under/over-voltage in progress then starts its timing again. Only the
        thresholds, hysteresis, minimum durations and Udin may change: the nominal frequency,
        sample rate, lamp model and phase configuration need a restart (PqConfigError).
        """
        s = self.settings
        fixed = ("f_nom_hz", "sample_rate_hz", "lamp_model", "phases", "min_current_for_thd_a")
        changed = [name for name in fixed if getattr(settings, name) != getattr(s, name)]
        if changed:
            raise PqConfigError(f"{', '.join(changed)}: cannot change while running")
        self._next_settings = settings

    def _swap_settings(self) -> None:
        """Install the pending settings between two blocks (see :meth:`apply_settings`)."""
        s = self._next_settings
        if s is None or self._events.active_kinds():
            return
        closed = self._events.closed
        self.settings, self._next_settings = s, None
        self._events = RmsEventDetector(s, self._timebase.utc, self._fs)
        self._events.closed = closed  # the finished events still flag the windows they touched
        self._sustained = SustainedDetector(s, self._timebase.utc, self._fs)
        self._aggregator._udin = s.udin_v  # the deviations of the intervals begun from now on

    def _reset_stream(self, next_index: int) -> None:
        """(Re)start the sample-level state: at start-up and after a gap in the sample indices."""
        s = self.settings
        self._history = SampleHistory(N_ROWS, history_capacity(self._fs))
        self._history.reset(next_index)
        dead_band = s.volts(s.interruption_threshold_pct) / 2.0
        self._zc = {r: ZeroCrossingDetector(self._fs, s.f_nom_hz, dead_band) for r in self.settings.voltage_rows}
        self._prefilter = PreFilter(self._fs, s.f_nom_hz, len(self.settings.voltage_rows))
        self._half = {r: HalfCycleRms(r, self._period) for r in self.settings.voltage_rows}
        self._flicker = Flickermeter(self._fs, s.f_nom_hz, s.lamp_model, self._flicker_k)  # the voltage rows
        self._pending_half: list[HalfCycleValue] = []
        self._rising: list[float] = []
        self._win_start: float | None = None
        self._win_resync = False
        self._pending_windows: list[_Window] = []
        self._frequency = TenSecondFrequency(self._fs, self._timebase.posix_s)
        self._pending_freq: list[FrequencyValue] = []
        self._pinst = PinstInterval(len(self.settings.voltage_rows), self._fs / (DECIMATION * STAT_DECIMATION))
        self._pinst_key: int | None = None
        self._pinst_settling = False
        self._pending_pst: list[tuple[int, float, dict[int, float], bool]] = []
        self._settled_index = next_index + SETTLING_S * self._fs
        self._gap_flag = self._expected_index is not None

    def feed(self, block: WaveformBlock) -> list[PqEvent]:
        """Process one block; return the events that ended (dips, swells, interruptions, UV/OV).

        Long blocks are processed in chunks of at most 1 s (the results do not depend on it).
        """
        chunk = int(self._fs)
        if block.n_samples <= chunk:
            return self._feed(block)
        events: list[PqEvent] = []
        for s in range(0, block.n_samples, chunk):
            events += self._feed(WaveformBlock(block.first_index + s, block.samples[:, s : s + chunk],
                                               block.sample_rate_hz,
                                               block.utc_first + _dt.timedelta(seconds=s / self._fs)))
        return events

    def _feed(self, block: WaveformBlock) -> list[PqEvent]:
        self._swap_settings()
        if block.sample_rate_hz != self._fs:
            raise SampleStreamError(f"sample rate {block.sample_rate_hz} Hz, expected {self._fs} Hz")
        if self._expected_index is not None and block.first_index != self._expected_index:
            self._reset_stream(block.first_index)
        elif self._expected_index is None:
            self._history.reset(block.first_index)
            self._settled_index = block.first_index + SETTLING_S * self._fs
        self._expected_index = block.end_index
        self._timebase.observe(block.first_index, block.utc_first)
        self._history.append(block.first_index, block.samples)
        filtered = self._prefilter.filter(block.samples[list(self.settings.voltage_rows)])
        for i, row in enumerate(self.settings.voltage_rows):
            self._process_channel(row, block, filtered[i])
        self._process_flicker(block)
        return self._release(block.end_index - self._horizon_lag)

    def _process_channel(self, row: int, block: WaveformBlock, filtered: FloatArray) -> None:
        zc = self._zc[row]
        marks = zc.process(block.first_index, block.samples[row], filtered)
        self._pending_half += self._half[row].on_marks(marks, zc.period, self._history)
        if row == ROW_U1:
            for mark in marks:
                if mark.direction > 0:
                    self._on_reference_rising(mark)
        zc.trim(8)

    def _on_reference_rising(self, mark: Mark) -> None:
        self._pending_freq += self._frequency.on_rising(mark.index, mark.real)
        self._rising.append(mark.index)
        if self._win_start is None:
            self._win_start = mark.index
        cycles = self.settings.cycles_per_window
        marks = [m for m in self._rising if m >= self._win_start]
        if len(marks) <= cycles:
            return
        start, stop = marks[0], marks[cycles]
        self._pending_windows.append(_Window(start, stop, self._win_resync))
        tick = self._timebase.index_at((self._timebase.posix_s(start) // TEN_MIN_S + 1) * TEN_MIN_S)
        self._win_resync = start < tick <= stop
        self._win_start = next(m for m in marks if m >= tick) if self._win_resync else stop
        self._rising = [m for m in self._rising if m >= self._win_start]

    def _process_flicker(self, block: WaveformBlock) -> None:
        """Run the flickermeters (all phases advance in lock-step) and file Pinst by 10-min interval."""
        rows = self.settings.voltage_rows
        idx, values = self._flicker.process(block.first_index, block.samples[list(rows)])
        if idx.size == 0:
            return
        keys = np.floor_divide(self._timebase.posix_s(0) + idx / self._fs, TEN_MIN_S)
        for key in (keys[:1] if keys[0] == keys[-1] else np.unique(keys)):  # mostly one interval
            if self._pinst_key is not None and int(key) != self._pinst_key:
                self._close_pst_interval()
            self._pinst_key = int(key)
            sel = keys == key
            self._pinst.append(values if sel.all() else values[:, sel])
            self._pinst_settling |= bool(idx[sel][0] < self._settled_index)

    def _close_pst_interval(self) -> None:
        assert self._pinst_key is not None
        end_posix = (self._pinst_key + 1) * TEN_MIN_S
        psts = ({r: pst_from_pinst(self._pinst.channel(i)) for i, r in enumerate(self.settings.voltage_rows)}
                if len(self._pinst) > 100 else {})
        self._pending_pst.append((self._pinst_key, end_posix, psts, self._pinst_settling or self._gap_flag))
        self._pinst.clear()
        self._pinst_settling = False
        self._gap_flag = False

    def _release(self, horizon: float) -> list[PqEvent]:
        """Finalise everything whose window ended before ``horizon`` (sample index)."""
        events: list[PqEvent] = []
        ready = sorted((v for v in self._pending_half if v.end_index <= horizon),
                       key=lambda v: (v.end_index, v.row))
        self._pending_half = [v for v in self._pending_half if v.end_index > horizon]
        feed, urms_half = self._events.feed, self._values.urms_half_v
        for value in ready:
            ended = feed(value)
            if ended:
                events += ended
            urms_half[_PHASE_OF_ROW[value.row]] = value.rms_v
        while self._pending_windows and self._pending_windows[0].stop <= horizon:
            events += self._finish_window(self._pending_windows.pop(0))
        self._release_frequency(horizon)
        self._release_pst(horizon)
        self._events.forget_before(horizon - 2 * TEN_MIN_S * self._fs)
        self._values = _replace(self._values, active_events=tuple(self._events.active_kinds()))
        return events

    def _finish_window(self, w: _Window) -> list[PqEvent]:
        s = self.settings
        rms = np.array([math.sqrt(max(window_mean_square(self._history, r, w.start, w.stop), 0.0))
                        for r in range(N_ROWS)])
        resampled = resample_window(self._history, slice(0, N_ROWS), w.start, w.stop)
        lines = line_rms(resampled)
        results = analyse_rows(lines, s.cycles_per_window,
                               [s.min_current_for_thd_a if r in CURRENT_ROWS else 0.01 * s.udin_v
                                for r in range(N_ROWS)])
        ih_groups, ih_subgroups = interharmonic_rows(lines, s.cycles_per_window)
        sequences = None
        if len(s.voltage_rows) == 3:  # 3P4W: symmetrical components of the fundamentals of U1, U2, U3
            sequences = unbalance(fundamental_phasors(resampled[list(s.voltage_rows)], s.cycles_per_window),
                                  s.volts(s.interruption_threshold_pct))
        flagged = self._events.touched(w.start, w.stop) or self._gap_flag
        subgroups = np.array([h.subgroup_rms for h in results])
        window = WindowValues(w.start, w.stop, self._timebase.posix_s(w.start), self._timebase.posix_s(w.stop),
                              rms, subgroups, flagged, w.resync,
                              group_rms=np.array([h.group_rms for h in results]),
                              interharmonic_group_rms=ih_groups, interharmonic_subgroup_rms=ih_subgroups,
                              unbalance_pct=None if sequences is None
                              else np.array([sequences.u2_pct, sequences.u0_pct]))
        events: list[PqEvent] = []
        for r in s.voltage_rows:
            events += self._sustained.feed(r, w.start, w.stop, float(rms[r]))
        v = self._values
        measured = s.measured_rows
        v.rms_10cycle.update({ROW_NAMES[r]: float(rms[r]) for r in measured})
        v.harmonics.update({ROW_NAMES[r]: results[r] for r in measured})
        v.thd_pct.update({ROW_NAMES[r]: results[r].thds_pct for r in measured})
        ratios = _harmonic_ratios(subgroups)
        v.harmonic_pct.update({ROW_NAMES[r]: tuple(ratios[r]) for r in measured})
        for agg in self._aggregator.feed(window):
            v.aggregates[agg.kind] = agg
        self._values = _replace(v, utc=self._timebase.utc(w.stop))
        return events

    def _release_frequency(self, horizon: float) -> None:
        while self._pending_freq and self._pending_freq[0].end_index <= horizon:
            f = self._pending_freq.pop(0)
            flagged = self._events.touched(f.start_index, f.end_index) or self._gap_flag
            self._values = _replace(self._values, frequency_hz=f.frequency_hz, frequency_flagged=flagged,
                                    frequency_end_utc=_dt.datetime.fromtimestamp(f.end_posix_s, tz=_dt.UTC))

    def _release_pst(self, horizon: float) -> None:
        while self._pending_pst and self._timebase.index_at(self._pending_pst[0][1]) <= horizon:
            key, end_posix, psts, flagged = self._pending_pst.pop(0)
            start_i = self._timebase.index_at(key * TEN_MIN_S)
            flagged = flagged or self._events.touched(start_i, self._timebase.index_at(end_posix))
            end_utc = _dt.datetime.fromtimestamp(end_posix, tz=_dt.UTC)
            for row, pst in psts.items():
                self._on_pst(FlickerValue(phase_of_row(row), end_utc, pst, flagged))

    def _on_pst(self, value: FlickerValue) -> None:
        self._values.pst[value.phase] = value
        self._new_pst.append(value)
        plt = self._plt[value.phase].add(value)
        if plt is not None:
            self._values.plt[value.phase] = plt.plt
            self._values.plt_flagged[value.phase] = plt.flagged

    def take_new_pst(self) -> list[FlickerValue]:
        """The Pst released since the last call (oldest first), to be persisted by the caller."""
        values = list(self._new_pst)
        self._new_pst.clear()
        return values

    def restore_pst(self, values: Sequence[FlickerValue], now_utc: _dt.datetime) -> None:
        """Seed the Plt series with persisted Pst after a restart at ``now_utc`` (UTC).

        Each phase keeps the values of the 2-h interval running at ``now_utc``
        (:meth:`PltSeries.restore`); the newest of them becomes the latest Pst shown.
        """
        for phase, series in self._plt.items():
            series.restore([v for v in values if v.phase == phase], now_utc)
            held = series.held()
            if held and phase not in self._values.pst:
                self._values.pst[phase] = held[-1]

    def plt_held(self, phase: int) -> tuple[FlickerValue, ...]:
        """The Pst of phase 1…3 held for the running 2-h interval, oldest first."""
        return self._plt[phase].held()

    def latest(self) -> PqValues:
        """The latest values (a snapshot; dictionaries are copies)."""
        v = self._values
        return _replace(v, urms_half_v=dict(v.urms_half_v), rms_10cycle=dict(v.rms_10cycle),
                        thd_pct=dict(v.thd_pct), harmonic_pct=dict(v.harmonic_pct), harmonics=dict(v.harmonics),
                        pst=dict(v.pst), plt=dict(v.plt), plt_flagged=dict(v.plt_flagged),
                        aggregates=dict(v.aggregates))

    @staticmethod
    def indicative_from_chip(thd_u_pct: Sequence[float], thd_i_pct: Sequence[float],
                             harmonic_ratios: dict[str, Sequence[float]]) -> PqValues:
        """See :func:`indicative_from_chip`."""
        return indicative_from_chip(thd_u_pct, thd_i_pct, harmonic_ratios)


_PHASE_OF_ROW = {row: phase_of_row(row) for row in VOLTAGE_ROWS}


def _harmonic_ratios(subgroups: FloatArray) -> list[list[float]]:
    """:meth:`HarmonicResult.harmonic_pct` of every row of ``subgroups`` (rows, orders) at once, as
    Python floats (%; a row whose fundamental subgroup is 0 is all zeros)."""
    ratios = np.zeros_like(subgroups)
    ok = ~(subgroups[:, 1] <= 0)  # as harmonic_pct: a NaN fundamental gives NaN ratios
    ratios[ok] = subgroups[ok] / subgroups[ok, 1:2] * 100.0
    rows: list[list[float]] = ratios.tolist()
    return rows


def _replace(v: PqValues, **changes: object) -> PqValues:
    import dataclasses

    return dataclasses.replace(v, **changes)  # type: ignore[arg-type]
