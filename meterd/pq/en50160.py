"""EN 50160 weekly statistics of a low-voltage public supply and the week's compliance verdict.

EN 50160 (LV, synchronous networks, power-quality.md §9 of the design reference) judges each
quantity over one week of values: the fraction of the week's values inside the limit band must
reach the required share (95 % of the 10-min values for voltage variations, unbalance, THD and
the individual harmonics; 95 % of the 2-h Plt for flicker; 99.5 % of the 10-s frequency values,
the standard's yearly share applied to the week, and 100 % of them within +4 %/−6 %). Flagged
values (a dip, swell, interruption or sample gap touched them, or the interval was only partly
measured: IEC 61000-4-30 §4.7, ref. §4.5) are excluded from the count, as EN 50160 requires.

Every quantity is expressed so that its limits do not depend on the declared voltage or the
nominal frequency: voltage in % of Un (the declared Udin), frequency in % of f_nom, the
distortion ratios in % of the fundamental, Plt unitless. :data:`LIMITS` is the typed table of
limits (one :class:`Limit` a row); a new quantity is one :class:`Quantity` member and one row.
:class:`WeekStatistics` collects :class:`Sample` s of one week and gives a :class:`WeekRecord`.

Pure: numpy for the percentiles, no I/O.
"""

from __future__ import annotations

import array
import datetime as _dt
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from meterd.pq.aggregation import Aggregate
from meterd.pq.events import phase_of_row
from meterd.pq.percentile import percentile

WEEK_S = 7 * 86400
TEN_MIN_S = 600
# 1970-01-01 was a Thursday: weeks start on Monday 00:00 UTC, 4 days later
_MONDAY_OFFSET_S = 4 * 86400


class Quantity(enum.Enum):
    """A quantity EN 50160 judges; the value is its stable code in the PQ store (never reuse one)."""

    FREQUENCY = 1        # 10-s mean frequency, % of f_nom
    VOLTAGE = 2          # 10-min RMS per phase, % of Un
    PLT = 3              # 2-h Plt per phase
    UNBALANCE_U2 = 4     # 10-min negative-sequence unbalance u2, %
    THD_40 = 5           # 10-min THD of orders 2-40 per phase, % of the fundamental
    H2 = 102
    H3 = 103
    H4 = 104
    H5 = 105
    H6 = 106
    H7 = 107
    H8 = 108
    H9 = 109
    H10 = 110
    H11 = 111
    H12 = 112
    H13 = 113
    H14 = 114
    H15 = 115
    H16 = 116
    H17 = 117
    H18 = 118
    H19 = 119
    H20 = 120
    H21 = 121
    H22 = 122
    H23 = 123
    H24 = 124
    H25 = 125

    @classmethod
    def harmonic(cls, order: int) -> Quantity:
        """The individual harmonic ``order`` (2…25), % of the fundamental."""
        return cls(100 + order)

    @classmethod
    def from_code(cls, code: int) -> Quantity | None:
        """The quantity of a stored code (None for a code this version does not know)."""
        try:
            return cls(code)
        except ValueError:
            return None


class Verdict(enum.IntEnum):
    """A limit's (or the week's) verdict; the value is what DLMS reads."""

    COMPLIANT = 0
    NOT_COMPLIANT = 1
    NOT_MEASURED = 2


@dataclass(frozen=True)
class Limit:
    """One EN 50160 limit: the values of ``quantity`` must lie in [low, high] (None: open side)
    for at least ``required_pct`` % of the week's unflagged values.

    ``key``: stable name (API, store); ``clause``: EN 50160:2010 clause (LV supply); ``obis_e``:
    value group E of the limit's registers of the last closed week (with :attr:`obis_c`, see
    :mod:`meterd.cosem.objects_pq_week`).
    """

    key: str
    quantity: Quantity
    low: float | None
    high: float | None
    required_pct: float
    clause: str
    text: str
    obis_e: int

    @property
    def obis_c(self) -> int:
        """Value group C of the limit's registers: 14 (frequency) or 12 (voltage, any phase)."""
        return 14 if self.quantity is Quantity.FREQUENCY else 12

    def within(self, values: np.ndarray) -> np.ndarray:
        """Which of ``values`` lie inside the band (NaN never does)."""
        ok: np.ndarray = np.isfinite(values)
        if self.low is not None:
            ok &= values >= self.low
        if self.high is not None:
            ok &= values <= self.high
        return ok


# EN 50160 harmonic limits for LV (% of the fundamental, 10-min values, 95 % of a week), orders 2-25
HARMONIC_LIMITS_PCT: tuple[tuple[int, float], ...] = (
    (2, 2.0), (3, 5.0), (4, 1.0), (5, 6.0), (6, 0.5), (7, 5.0), (8, 0.5), (9, 1.5), (10, 0.5),
    (11, 3.5), (12, 0.5), (13, 3.0), (14, 0.5), (15, 0.5), (16, 0.5), (17, 2.0), (18, 0.5),
    (19, 1.5), (20, 0.5), (21, 0.5), (22, 0.5), (23, 1.5), (24, 0.5), (25, 1.5))

LIMITS: tuple[Limit, ...] = (
    Limit("frequency", Quantity.FREQUENCY, 99.0, 101.0, 99.5, "4.2.1",
          "power frequency 50 Hz ±1 % (10-s values; 99.5 % of a year, judged per week)", 0),
    Limit("frequency_always", Quantity.FREQUENCY, 94.0, 104.0, 100.0, "4.2.1",
          "power frequency within +4 %/−6 % at all times (10-s values)", 1),
    Limit("voltage", Quantity.VOLTAGE, 90.0, 110.0, 95.0, "4.2.2.2",
          "supply voltage variations Un ±10 % (10-min RMS, 95 % of the week)", 0),
    Limit("voltage_always", Quantity.VOLTAGE, 85.0, 110.0, 100.0, "4.2.2.2",
          "supply voltage within Un +10 %/−15 % (10-min RMS, every value)", 1),
    Limit("plt", Quantity.PLT, None, 1.0, 95.0, "4.2.3.2", "flicker severity Plt ≤ 1 (95 % of the week)", 131),
    Limit("unbalance", Quantity.UNBALANCE_U2, None, 2.0, 95.0, "4.2.5",
          "supply voltage unbalance u2 ≤ 2 % (10-min values, 95 % of the week)", 132),
    Limit("thd", Quantity.THD_40, None, 8.0, 95.0, "4.2.4.1",
          "THD of orders 2-40 ≤ 8 % (10-min values, 95 % of the week)", 124),
    *(Limit(f"h{h}", Quantity.harmonic(h), None, pct, 95.0, "4.2.4.1 table 1",
            f"harmonic {h} ≤ {pct:g} % (10-min values, 95 % of the week)", h) for h, pct in HARMONIC_LIMITS_PCT),
)


@dataclass(frozen=True)
class Sample:
    """One value of ``quantity`` for ``phase`` (1…3; 0 for a quantity of the whole supply) in the
    10-min interval ending at ``end_utc``; ``flagged`` values are kept but not judged."""

    quantity: Quantity
    phase: int
    value: float
    flagged: bool


@dataclass(frozen=True)
class LimitResult:
    """One limit over the week: ``verdict``; ``within_pct`` the share of unflagged values inside
    the band (%, of the worst phase); ``p95`` / ``p5`` the 95th / 5th percentile of the worst
    phase's unflagged values (linear interpolation); ``n_values`` unflagged values judged (all
    phases), ``n_flagged`` left out, ``n_outside`` outside the band; ``worst_phase`` (0: the
    supply, or none)."""

    key: str
    verdict: Verdict
    within_pct: float | None
    p95: float | None
    p5: float | None
    n_values: int
    n_flagged: int
    n_outside: int
    worst_phase: int


@dataclass(frozen=True)
class WeekRecord:
    """The statistics of one week [start_utc, end_utc) and its verdict.

    ``verdict``: NOT_COMPLIANT when any limit is, else COMPLIANT when at least one limit was
    measured, else NOT_MEASURED. ``intervals`` / ``flagged_intervals``: 10-min intervals seen /
    flagged. ``short_interruptions`` / ``long_interruptions``: supply interruptions (≤ / > 180 s)
    that started in the week, from the waveform and from the power-fail evidence.
    """

    start_utc: _dt.datetime
    end_utc: _dt.datetime
    verdict: Verdict
    results: tuple[LimitResult, ...]
    intervals: int
    flagged_intervals: int
    short_interruptions: int = 0
    long_interruptions: int = 0

    def result(self, key: str) -> LimitResult:
        """The result of limit ``key``."""
        for r in self.results:
            if r.key == key:
                return r
        raise KeyError(key)

    @property
    def failed(self) -> tuple[str, ...]:
        """Keys of the limits not met."""
        return tuple(r.key for r in self.results if r.verdict is Verdict.NOT_COMPLIANT)


def week_start(utc: _dt.datetime) -> _dt.datetime:
    """Monday 00:00 UTC of the week holding the instant ``utc``."""
    s = math.floor(utc.timestamp())
    start = s - (s - _MONDAY_OFFSET_S) % WEEK_S
    return _dt.datetime.fromtimestamp(start, tz=_dt.UTC)


def interval_week(end_utc: _dt.datetime) -> _dt.datetime:
    """The week (its Monday 00:00 UTC) a 10-min interval ending at ``end_utc`` belongs to."""
    return week_start(end_utc - _dt.timedelta(seconds=TEN_MIN_S))


@dataclass
class QuantitySeries:
    """The week's values of one quantity, compact: value, phase and flag per value."""

    values: array.array[float] = field(default_factory=lambda: array.array("d"))
    phases: array.array[int] = field(default_factory=lambda: array.array("B"))
    flags: array.array[int] = field(default_factory=lambda: array.array("B"))

    def add(self, sample: Sample) -> None:
        """Append one sample."""
        self.values.append(sample.value)
        self.phases.append(sample.phase)
        self.flags.append(int(sample.flagged))


def judge(limit: Limit, series: QuantitySeries | None) -> LimitResult:
    """The limit's result over the week's ``series`` of its quantity (None: never measured).

    Per phase, the share of the unflagged finite values inside the band; the worst phase decides.
    """
    if series is None or not series.values:
        return LimitResult(limit.key, Verdict.NOT_MEASURED, None, None, None, 0, 0, 0, 0)
    values = np.frombuffer(series.values, dtype=np.float64)
    phases = np.frombuffer(series.phases, dtype=np.uint8)
    flagged = np.frombuffer(series.flags, dtype=np.uint8).astype(bool)
    valid = ~flagged & np.isfinite(values)
    n_flagged = int(np.count_nonzero(flagged))
    worst: tuple[float, int, float, float] | None = None
    total = outside = 0
    for phase in sorted({int(p) for p in phases[valid]}):
        v = values[valid & (phases == phase)]
        inside = int(np.count_nonzero(limit.within(v)))
        share = 100.0 * inside / v.size
        total += v.size
        outside += v.size - inside
        if worst is None or share < worst[0]:
            worst = (share, phase, percentile(v, 95), percentile(v, 5))
    if worst is None:
        return LimitResult(limit.key, Verdict.NOT_MEASURED, None, None, None, 0, n_flagged, 0, 0)
    share, phase, p95, p5 = worst
    verdict = Verdict.COMPLIANT if share >= limit.required_pct - 1e-9 else Verdict.NOT_COMPLIANT
    return LimitResult(limit.key, verdict, share, p95, p5, total, n_flagged, outside, phase)


@dataclass
class WeekStatistics:
    """The samples of one week (Monday 00:00 UTC start) and their verdict per limit."""

    start_utc: _dt.datetime
    limits: tuple[Limit, ...] = LIMITS
    series: dict[Quantity, QuantitySeries] = field(default_factory=dict)
    intervals: int = 0
    flagged_intervals: int = 0

    @property
    def end_utc(self) -> _dt.datetime:
        """The end of the week (exclusive)."""
        return self.start_utc + _dt.timedelta(seconds=WEEK_S)

    def add_interval(self, samples: Iterable[Sample], flagged: bool) -> None:
        """The samples of one 10-min interval of this week (``flagged``: the interval's flag)."""
        for sample in samples:
            self.series.setdefault(sample.quantity, QuantitySeries()).add(sample)
        self.intervals += 1
        self.flagged_intervals += int(flagged)

    def record(self, short_interruptions: int = 0, long_interruptions: int = 0) -> WeekRecord:
        """The week's statistics as they stand (the final record when the week has closed)."""
        results = tuple(judge(limit, self.series.get(limit.quantity)) for limit in self.limits)
        if any(r.verdict is Verdict.NOT_COMPLIANT for r in results):
            verdict = Verdict.NOT_COMPLIANT
        elif any(r.verdict is Verdict.COMPLIANT for r in results):
            verdict = Verdict.COMPLIANT
        else:
            verdict = Verdict.NOT_MEASURED
        return WeekRecord(self.start_utc, self.end_utc, verdict, results, self.intervals, self.flagged_intervals,
                          short_interruptions, long_interruptions)


THD_EN50160_MAX_ORDER = 40


def aggregate_samples(ten: Aggregate, udin_v: float, voltage_rows: Sequence[int]) -> list[Sample]:
    """The samples of a 10-min aggregate: per measured voltage phase the RMS (% of ``udin_v``,
    V), the THD of orders 2-40 and the harmonics 2-25 (% of the fundamental subgroup, from the
    aggregated subgroups, ref. §6.6), and the negative-sequence unbalance u2 (%) of a three-phase
    supply, all carrying the aggregate's flag. A phase whose fundamental is zero has no
    distortion values."""
    out: list[Sample] = []
    for row in voltage_rows:
        phase, sg = phase_of_row(row), ten.subgroup_rms[row]
        out.append(Sample(Quantity.VOLTAGE, phase, float(ten.rms[row]) / udin_v * 100.0, ten.flagged))
        fundamental = float(sg[1])
        if fundamental <= 0.0:
            continue
        thd = math.sqrt(float(np.sum(sg[2:THD_EN50160_MAX_ORDER + 1] ** 2))) / fundamental * 100.0
        out.append(Sample(Quantity.THD_40, phase, thd, ten.flagged))
        out += [Sample(Quantity.harmonic(h), phase, float(sg[h]) / fundamental * 100.0, ten.flagged)
                for h, _limit in HARMONIC_LIMITS_PCT]
    u2 = ten.u2_pct  # None on a 1P2W supply or without a fundamental
    if u2 is not None:
        out.append(Sample(Quantity.UNBALANCE_U2, 0, u2, ten.flagged))
    return out


def frequency_sample(frequency_hz: float, f_nom_hz: float, flagged: bool) -> Sample:
    """A 10-s frequency value (Hz) as a sample in % of ``f_nom_hz``."""
    return Sample(Quantity.FREQUENCY, 0, frequency_hz / f_nom_hz * 100.0, flagged)


def plt_sample(phase: int, plt: float, flagged: bool) -> Sample:
    """A 2-h Plt of ``phase`` as a sample (flagged: it holds a flagged or missing Pst)."""
    return Sample(Quantity.PLT, phase, plt, flagged)
