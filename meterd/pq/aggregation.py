"""IEC 61000-4-30 aggregation of 10/12-cycle values: 150/180-cycle, clock-aligned 10-min and 2-h (§4).

Each aggregate is the square root of the mean of the squared inputs (RMS and harmonic subgroups);
distortion ratios are computed from the aggregated subgroups. An aggregate is flagged when any of
its inputs was flagged (a dip, swell or interruption touched the window, or a sample gap), and
when its interval was only partly measured (``partial``, IEC 61000-4-30 §4.5 incomplete data): a
10-min interval whose windows leave more than one window's length (0.2 s) of its 600 s uncovered,
as the first interval after every start (the stream begins inside it) or an interval the stream
left before its end; a 2-h interval without 12 complete 10-min intervals.

Beside them (IEC 61000-4-30 §4.5, power-quality.md §4.1): harmonic groups, interharmonic groups and
centred subgroups are aggregated the same way (square root of the mean square) and THDS/THDG to
order 40 and PWHD are computed from the aggregated values; the unbalance ratios u2 and u0 are
aggregated as the square root of the mean of their squares over the windows that have one (a
window inside an interruption has none). 2-h values combine the 10-min values, each weighing one.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from meterd.pq.harmonics import MAX_ORDER, PWHD_FIRST_ORDER, PWHD_LAST_ORDER, THD40_LAST_ORDER, pwhd_pct
from meterd.pq.source import N_ROWS, FloatArray

TEN_MIN_S = 600
TWO_HOURS_S = 7200
UTC = _dt.UTC


@dataclass(frozen=True)
class WindowValues:
    """One 10/12-cycle window of all seven channels (V, A).

    rms: RMS per row; subgroup_rms: harmonic subgroups per row, shape (7, 51); start/end as sample
    indices and POSIX seconds; flagged: an event or gap touched it; resync: first window after a
    10-min tick. group_rms, interharmonic_group_rms, interharmonic_subgroup_rms: harmonic groups and
    interharmonic groups / centred subgroups per row, shape (7, 51) (None: not measured);
    unbalance_pct: (u2, u0) in % (None: no unbalance, as on a 1P2W supply or in an interruption).
    """

    start_index: float
    end_index: float
    start_posix_s: float
    end_posix_s: float
    rms: FloatArray
    subgroup_rms: FloatArray
    flagged: bool
    resync: bool = False
    group_rms: FloatArray | None = None
    interharmonic_group_rms: FloatArray | None = None
    interharmonic_subgroup_rms: FloatArray | None = None
    unbalance_pct: FloatArray | None = None


@dataclass(frozen=True)
class Aggregate:
    """An aggregated interval: kind "150/180-cycle", "10-min" or "2-h"; UTC at its end.

    rms / rms_min / rms_max per row (V, A); subgroup_rms (7, 51); thds_pct per row (None when the
    fundamental is zero); under_/over_deviation_pct per row against Udin (voltage rows, §4.6).
    partial: the interval was only partly measured (then ``flagged`` is set too).
    group_rms, interharmonic_group_rms, interharmonic_subgroup_rms (7, 51) and unbalance_pct
    (u2, u0 in %): None when none of the inputs had them.
    """

    kind: str
    end_utc: _dt.datetime
    n_values: int
    flagged: bool
    rms: FloatArray
    rms_min: FloatArray
    rms_max: FloatArray
    subgroup_rms: FloatArray
    under_deviation_pct: FloatArray
    over_deviation_pct: FloatArray
    partial: bool = False
    group_rms: FloatArray | None = None
    interharmonic_group_rms: FloatArray | None = None
    interharmonic_subgroup_rms: FloatArray | None = None
    unbalance_pct: FloatArray | None = None

    @property
    def thds_pct(self) -> list[float | None]:
        """THDS (orders 2–50, % of the fundamental subgroup) per row from the aggregated subgroups."""
        out: list[float | None] = []
        for row in self.subgroup_rms:
            out.append(None if row[1] <= 0 else math.sqrt(float(np.sum(row[2:] ** 2))) / float(row[1]) * 100.0)
        return out

    @property
    def thds40_pct(self) -> list[float | None]:
        """THDS40 (subgroups of orders 2–40, % of the fundamental subgroup) per row: EN 50160's THD."""
        return [_ratio(row, lambda r: math.sqrt(float(np.sum(r[2 : THD40_LAST_ORDER + 1] ** 2))))
                for row in self.subgroup_rms]

    @property
    def thdg40_pct(self) -> list[float | None]:
        """THDG40 (groups of orders 2–40, % of the fundamental group) per row; None without groups."""
        if self.group_rms is None:
            return [None] * len(self.subgroup_rms)
        return [_ratio(row, lambda r: math.sqrt(float(np.sum(r[2 : THD40_LAST_ORDER + 1] ** 2))))
                for row in self.group_rms]

    @property
    def pwhd_pct(self) -> list[float | None]:
        """PWHD (subgroups of orders 14–40, weighted by order, % of the fundamental subgroup) per row."""
        return [None if row[1] <= 0 else pwhd_pct(row, PWHD_FIRST_ORDER, PWHD_LAST_ORDER)
                for row in self.subgroup_rms]

    @property
    def tihds40_pct(self) -> list[float | None]:
        """Interharmonic distortion of the centred subgroups between orders 0 and 40 (h = 0…39), in %
        of the fundamental subgroup, per row; None when not measured or without a fundamental."""
        if self.interharmonic_subgroup_rms is None:
            return [None] * len(self.subgroup_rms)
        return [None if sg[1] <= 0 else math.sqrt(float(np.sum(isg[:THD40_LAST_ORDER] ** 2))) / float(sg[1]) * 100.0
                for sg, isg in zip(self.subgroup_rms, self.interharmonic_subgroup_rms, strict=True)]

    def interharmonic_subgroup_pct(self) -> FloatArray | None:
        """Interharmonic centred subgroups in % of the fundamental subgroup, (7, 51) (rows without a
        fundamental: 0); None when not measured."""
        return _per_fundamental(self.interharmonic_subgroup_rms, self.subgroup_rms)

    def interharmonic_group_pct(self) -> FloatArray | None:
        """Interharmonic groups in % of the fundamental subgroup, (7, 51); None when not measured."""
        return _per_fundamental(self.interharmonic_group_rms, self.subgroup_rms)

    @property
    def u2_pct(self) -> float | None:
        """Negative-sequence voltage unbalance u2 (%), None when the interval has none."""
        return None if self.unbalance_pct is None else float(self.unbalance_pct[0])

    @property
    def u0_pct(self) -> float | None:
        """Zero-sequence voltage unbalance u0 (%), None when the interval has none."""
        return None if self.unbalance_pct is None else float(self.unbalance_pct[1])


def _ratio(row: FloatArray, numerator: Callable[[FloatArray], float]) -> float | None:
    """numerator(row) / row[1] · 100 %, None without a fundamental."""
    return None if row[1] <= 0 else numerator(row) / float(row[1]) * 100.0


def _per_fundamental(values: FloatArray | None, subgroups: FloatArray) -> FloatArray | None:
    if values is None:
        return None
    fundamental = subgroups[:, 1:2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(fundamental > 0, values / np.where(fundamental > 0, fundamental, 1.0) * 100.0, 0.0)
    return np.asarray(pct, dtype=np.float64)


def _zeros_spectrum() -> FloatArray:
    return np.zeros((N_ROWS, MAX_ORDER + 1))


@dataclass
class _SpectrumSums:
    """Running sums of the squared groups, interharmonic groups/subgroups and unbalance ratios."""

    n: int = 0
    g: FloatArray = field(default_factory=_zeros_spectrum)
    ig: FloatArray = field(default_factory=_zeros_spectrum)
    isg: FloatArray = field(default_factory=_zeros_spectrum)
    n_unbalance: int = 0
    unbalance_sq: FloatArray = field(default_factory=lambda: np.zeros(2))

    def add(self, group: FloatArray | None, ih_group: FloatArray | None, ih_subgroup: FloatArray | None,
            unbalance: FloatArray | None, weight: int) -> None:
        if group is not None and ih_group is not None and ih_subgroup is not None:
            self.n += weight
            self.g += weight * group**2
            self.ig += weight * ih_group**2
            self.isg += weight * ih_subgroup**2
        if unbalance is not None:
            self.n_unbalance += weight
            self.unbalance_sq += weight * unbalance**2

    def means(self) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None, FloatArray | None]:
        """(groups, interharmonic groups, interharmonic subgroups, (u2, u0)) aggregated, or None."""
        spectra: tuple[FloatArray | None, ...] = (None, None, None)
        if self.n:
            spectra = tuple(np.sqrt(s / self.n) for s in (self.g, self.ig, self.isg))
        unbalance = np.sqrt(self.unbalance_sq / self.n_unbalance) if self.n_unbalance else None
        return spectra[0], spectra[1], spectra[2], unbalance


@dataclass
class _Acc:
    """Running sums of one aggregation interval."""

    udin_v: float
    n: int = 0
    flagged: bool = False
    sq: FloatArray = field(default_factory=lambda: np.zeros(N_ROWS))
    lo: FloatArray = field(default_factory=lambda: np.full(N_ROWS, np.inf))
    hi: FloatArray = field(default_factory=lambda: np.zeros(N_ROWS))
    sg: FloatArray = field(default_factory=lambda: np.zeros((N_ROWS, MAX_ORDER + 1)))
    under_sq: FloatArray = field(default_factory=lambda: np.zeros(N_ROWS))
    over_sq: FloatArray = field(default_factory=lambda: np.zeros(N_ROWS))
    covered_s: float = 0.0  # time of the interval covered by its windows (s)
    covered_to_s: float = -math.inf  # POSIX end (s) of the coverage counted so far
    complete_parts: int = 0  # complete inputs (10-min values of a 2-h interval)
    spectra: _SpectrumSums = field(default_factory=_SpectrumSums)

    def cover(self, start_s: float, end_s: float, lo_s: float, hi_s: float) -> None:
        """Count [start_s, end_s] ∩ [lo_s, hi_s] (POSIX s) not counted yet (windows come in order)."""
        a, b = max(start_s, lo_s, self.covered_to_s), min(end_s, hi_s)
        if b > a:
            self.covered_s += b - a
        self.covered_to_s = max(self.covered_to_s, b)

    def add(self, rms: FloatArray, subgroup: FloatArray, flagged: bool, lo: FloatArray | None = None,
            hi: FloatArray | None = None, weight: int = 1) -> None:
        self.n += weight
        self.flagged |= flagged
        self.sq += weight * rms**2
        self.sg += weight * subgroup**2
        self.lo = np.minimum(self.lo, rms if lo is None else lo)
        self.hi = np.maximum(self.hi, rms if hi is None else hi)
        self.under_sq += weight * np.minimum(rms, self.udin_v) ** 2
        self.over_sq += weight * np.maximum(rms, self.udin_v) ** 2

    def add_spectra(self, group: FloatArray | None, ih_group: FloatArray | None, ih_subgroup: FloatArray | None,
                    unbalance: FloatArray | None, weight: int = 1) -> None:
        """Add the groups, interharmonic groups/subgroups and (u2, u0) of one input."""
        self.spectra.add(group, ih_group, ih_subgroup, unbalance, weight)

    def result(self, kind: str, end_posix_s: float, partial: bool = False) -> Aggregate:
        n = max(self.n, 1)
        under = (self.udin_v - np.sqrt(self.under_sq / n)) / self.udin_v * 100.0
        over = (np.sqrt(self.over_sq / n) - self.udin_v) / self.udin_v * 100.0
        group, ih_group, ih_subgroup, unbalance = self.spectra.means()
        return Aggregate(kind, _dt.datetime.fromtimestamp(round(end_posix_s, 3), tz=UTC), self.n,
                         bool(self.flagged or partial), np.sqrt(self.sq / n), self.lo, self.hi, np.sqrt(self.sg / n),
                         under, over, partial, group, ih_group, ih_subgroup, unbalance)


class Aggregator:
    """Builds 150/180-cycle, 10-min and 2-h aggregates from consecutive 10/12-cycle windows."""

    def __init__(self, udin_v: float, cycles_per_window: int = 10) -> None:
        self._udin = udin_v
        self._window_s = cycles_per_window / (50.0 if cycles_per_window == 10 else 60.0)  # nominal (s)
        self._per_short = 15
        self._short_kind = f"{15 * cycles_per_window}-cycle"
        self._short = _Acc(udin_v)
        self._ten: _Acc | None = None
        self._ten_key = 0
        self._two: _Acc | None = None
        self._two_key = 0

    def feed(self, w: WindowValues) -> list[Aggregate]:
        """Add one window; return the aggregates it completed (oldest first)."""
        out: list[Aggregate] = []
        key = int(w.start_posix_s // TEN_MIN_S)
        if self._ten is not None and key != self._ten_key:
            out += self._close_ten()
        if self._ten is None:
            self._ten, self._ten_key = _Acc(self._udin), key
        if w.resync:
            self._short = _Acc(self._udin)
        self._ten.add(w.rms, w.subgroup_rms, w.flagged)
        self._ten.add_spectra(w.group_rms, w.interharmonic_group_rms, w.interharmonic_subgroup_rms, w.unbalance_pct)
        self._ten.cover(w.start_posix_s, w.end_posix_s, key * TEN_MIN_S, (key + 1) * TEN_MIN_S)
        self._short.add(w.rms, w.subgroup_rms, w.flagged)
        self._short.add_spectra(w.group_rms, w.interharmonic_group_rms, w.interharmonic_subgroup_rms,
                                w.unbalance_pct)
        if self._short.n == self._per_short:
            out.append(self._short.result(self._short_kind, w.end_posix_s))
            self._short = _Acc(self._udin)
        return out

    def _close_ten(self) -> list[Aggregate]:
        assert self._ten is not None
        ten = self._ten.result("10-min", (self._ten_key + 1) * TEN_MIN_S,
                               partial=self._ten.covered_s < TEN_MIN_S - self._window_s)
        out = [ten]
        key2 = (self._ten_key * TEN_MIN_S) // TWO_HOURS_S
        if self._two is not None and key2 != self._two_key:
            out.append(self._close_two())
        if self._two is None:
            self._two, self._two_key = _Acc(self._udin), key2
        self._two.add(ten.rms, ten.subgroup_rms, ten.flagged, ten.rms_min, ten.rms_max)
        self._two.add_spectra(ten.group_rms, ten.interharmonic_group_rms, ten.interharmonic_subgroup_rms,
                              ten.unbalance_pct)
        self._two.complete_parts += not ten.partial
        self._ten = None
        return out

    def _close_two(self) -> Aggregate:
        assert self._two is not None
        two = self._two.result("2-h", (self._two_key + 1) * TWO_HOURS_S,
                               partial=self._two.complete_parts < TWO_HOURS_S // TEN_MIN_S)
        self._two = None
        return two
