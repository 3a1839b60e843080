"""IEC 61000-4-15 flickermeter for one voltage channel: blocks 1–5, Pst and Plt (power-quality.md §7).

Block 1 normalises by the mean square smoothed with a 1-min low-pass (unit-RMS convention);
block 2 squares (done first, at 8 kHz); an anti-alias low-pass and decimation by 8 bring the
squared signal to 1 kHz; block 3 is the 0.05 Hz high-pass, the 6th-order Butterworth (35 Hz at
50 Hz mains, 42 Hz at 60 Hz) and the lamp–eye–brain weighting filter (230 V or 120 V lamp,
bilinear transform); block 4 squares and smooths (first order, 0.3 s) and scales by k, found by
self-calibration; block 5 takes exact percentiles of Pinst sampled at 100 Hz.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from meterd.pq.errors import CalibrationError
from meterd.pq.iir import SosFilter, bilinear_sos, butter_sos, steady_state
from meterd.pq.percentile import percentiles
from meterd.pq.source import FloatArray

DECIMATION = 8
STAT_DECIMATION = 10  # Pinst kept at 1 kHz / 10 = 100 Hz for the statistics
SETTLING_S = 60.0

_LAMPS: dict[str, tuple[float, float, float, float, float, float]] = {
    # K, lambda (rad/s), w1, w2, w3, w4 (rad/s)
    "230V": (1.74802, 2 * math.pi * 4.05981, 2 * math.pi * 9.15494, 2 * math.pi * 2.27979,
             2 * math.pi * 1.22535, 2 * math.pi * 21.9),
    "120V": (1.6357, 2 * math.pi * 4.167375, 2 * math.pi * 9.077169, 2 * math.pi * 2.939902,
             2 * math.pi * 1.394468, 2 * math.pi * 17.31512),
}
_REFERENCE_K = {"230V": 3.096e5, "120V": 3.076e5}
_REFERENCE_DVV = {"230V": 0.250e-2, "120V": 0.321e-2}


def weighting_filter_analog(lamp: str) -> tuple[FloatArray, FloatArray]:
    """Analog lamp–eye–brain filter F(s) as (numerator, denominator), descending powers of s."""
    k, lam, w1, w2, w3, w4 = _LAMPS[lamp]
    num = np.polymul([k * w1, 0.0], [1.0 / w2, 1.0])
    den = np.polymul([1.0, 2 * lam, w1 * w1], np.polymul([1.0 / w3, 1.0], [1.0 / w4, 1.0]))
    return np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)


class _Filters:
    """Designed filters of the chain for one (sample rate, mains frequency, lamp)."""

    def __init__(self, fs_hz: float, f_mains_hz: float, lamp: str) -> None:
        self.fs_low = fs_hz / DECIMATION
        self.anti_alias = butter_sos(6, 150.0, fs_hz)
        self.hp = butter_sos(1, 0.05, self.fs_low, highpass=True)
        lp = butter_sos(6, 35.0 if f_mains_hz < 55 else 42.0, self.fs_low)
        self.chain = np.vstack([self.hp, lp, bilinear_sos(*weighting_filter_analog(lamp), fs_hz=self.fs_low)])
        self.smooth = bilinear_sos(np.array([1.0]), np.array([0.3, 1.0]), fs_hz=self.fs_low)
        tau_s = 60.0
        a = math.exp(-1.0 / (tau_s * self.fs_low))
        self.ref = np.array([[1.0 - a, 0.0, 0.0, 1.0, -a, 0.0]])  # first-order low-pass, 60 s


class Flickermeter:
    """Streaming flickermeter: feed samples (V) of one channel, or of several channels in lock-step
    (shape (channels, n), each with its own filter states), get Pinst at 100 Hz."""

    def __init__(self, fs_hz: float, f_mains_hz: float, lamp: str = "230V", scale_k: float | None = None) -> None:
        self._f = _Filters(fs_hz, f_mains_hz, lamp)
        self._fs = fs_hz
        self._init_len = int(round(fs_hz))  # first second: whole mains cycles at 50 and 60 Hz
        self._prebuffer: list[FloatArray] = []
        self._pre_first = 0
        self._started = False
        self.k = scale_k if scale_k is not None else calibrated_k(fs_hz, f_mains_hz, lamp)

    def _start(self, mean_square: FloatArray, first_index: int) -> None:
        """Filter states at steady state for the first second's mean square of each channel (V²);
        ``first_index``: the index of the first sample filtered. The anti-alias filter computes
        only the outputs the decimation keeps (sample indices divisible by ``DECIMATION``)."""
        f = self._f
        channels = mean_square.shape[0]
        ms = mean_square[None, :, None]
        self._aa = SosFilter(f.anti_alias, channels, every=DECIMATION, offset=-first_index % DECIMATION)
        self._aa.state = steady_state(f.anti_alias)[:, None, :] * ms
        self._ref = SosFilter(f.ref, channels)
        self._ref.state = steady_state(f.ref)[:, None, :] * ms
        self._chain = SosFilter(f.chain, channels)
        chain_zi = np.zeros((f.chain.shape[0], channels, 2))
        chain_zi[0] = steady_state(f.hp)[0]  # the high-pass at rest on the normalised signal (1)
        self._chain.state = chain_zi
        self._smooth = SosFilter(f.smooth, channels)
        self._started = True

    def process(self, first_index: int, x: FloatArray, full_rate: bool = False) -> tuple[np.ndarray, FloatArray]:
        """Feed consecutive samples (V); return (sample indices, Pinst) of the new Pinst values.

        ``x`` is one channel (n,) or channels in lock-step (channels, n); Pinst has the same
        leading shape. Pinst comes at 100 Hz for the statistics, or at the 1 kHz chain rate with
        ``full_rate`` (needed to catch the true maximum of Pinst).
        """
        one = x.ndim == 1
        x2 = x[None, :] if one else x
        if not self._started:
            if not self._prebuffer:
                self._pre_first = first_index
            self._prebuffer.append(x2)
            held = np.concatenate(self._prebuffer, axis=1)
            if held.shape[1] < self._init_len:
                empty = np.zeros(0) if one else np.zeros((x2.shape[0], 0))
                return np.zeros(0, dtype=np.int64), empty
            self._prebuffer = []
            self._start(np.mean(held[:, : self._init_len] ** 2, axis=1), self._pre_first)
            first_index, x2 = self._pre_first, held
        idx, p = self._run(first_index, x2)
        if not full_rate:
            keep = idx % (DECIMATION * STAT_DECIMATION) == 0
            idx, p = idx[keep], p[:, keep]
        return idx, (p[0] if one else p)

    def _run(self, first_index: int, x: FloatArray) -> tuple[np.ndarray, FloatArray]:
        s = self._aa.filter(x * x)  # at the sample indices divisible by DECIMATION only
        idx = first_index + np.arange(x.shape[1])
        idx = idx[idx % DECIMATION == 0]
        if idx.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((x.shape[0], 0))
        ref = self._ref.filter(s)
        y = self._chain.filter(s / ref)
        p = self._smooth.filter(y * y)
        return idx, p * self.k


@functools.lru_cache(maxsize=16)
def calibrated_k(fs_hz: float, f_mains_hz: float, lamp: str) -> float:
    """Scale k: Pinst,max = 1 for 8.8 Hz sinusoidal modulation of ΔV/V 0.250 % (230 V) / 0.321 % (120 V)."""
    seconds = 12.0
    n = int(seconds * fs_hz)
    x = modulated_sine(n, fs_hz, f_mains_hz, 8.8, _REFERENCE_DVV[lamp], rectangular=False)
    meter = Flickermeter(fs_hz, f_mains_hz, lamp, scale_k=1.0)
    _, p = meter.process(0, x, full_rate=True)
    k = 1.0 / float(np.max(p[len(p) // 2 :]))
    if abs(k / _REFERENCE_K[lamp] - 1.0) > 0.005:
        raise CalibrationError(f"flicker scale k={k:.4g} is off the expected {_REFERENCE_K[lamp]:.4g}")
    return k


def modulated_sine(n: int, fs_hz: float, f_mains_hz: float, f_mod_hz: float, dvv: float,
                   rectangular: bool, rms_v: float = 1.0, first_index: int = 0) -> FloatArray:
    """IEC 61000-4-15 test signal: √2·U·sin(2πft)·(1 + ΔV/V/2·m(t)), m sine or sign of a sine."""
    t = (first_index + np.arange(n)) / fs_hz
    m = np.sin(2 * np.pi * f_mod_hz * t)
    if rectangular:
        m = np.where(m >= 0, 1.0, -1.0)
    return np.asarray(math.sqrt(2) * rms_v * np.sin(2 * np.pi * f_mains_hz * t) * (1 + dvv / 2 * m))


def pst_from_pinst(pinst: FloatArray) -> float:
    """Short-term flicker severity from Pinst samples with exact smoothed percentiles (§7.6)."""
    q = {x: float(v) for x, v in zip(
        (0.1, 0.7, 1, 1.5, 2.2, 3, 4, 6, 8, 10, 13, 17, 30, 50, 80),
        percentiles(pinst, [100 - x for x in (0.1, 0.7, 1, 1.5, 2.2, 3, 4, 6, 8, 10, 13, 17, 30, 50, 80)]),
        strict=True)}
    p50s = (q[30] + q[50] + q[80]) / 3
    p10s = (q[6] + q[8] + q[10] + q[13] + q[17]) / 5
    p3s = (q[2.2] + q[3] + q[4]) / 3
    p1s = (q[0.7] + q[1] + q[1.5]) / 3
    return math.sqrt(0.0314 * q[0.1] + 0.0525 * p1s + 0.0657 * p3s + 0.28 * p10s + 0.08 * p50s)


class PinstInterval:
    """The Pinst values (100 Hz) of the voltage channels over one Pst interval (10 min), held in
    one array allocated once: Pst takes its percentiles from a view of it.

    ``capacity_s`` (s) sizes the array (10 min and 2 %: a fast sample clock gives more values a
    minute); an interval that still outgrows it gets a larger array. Before, each second's values
    were a separate array (1800 of them for 3 phases at the end of an interval, 1.6 MiB) joined
    into a third copy of them all at the end of every interval: the largest peak of meterd's
    memory every 10 minutes.
    """

    def __init__(self, channels: int, rate_hz: float, capacity_s: float = 612.0) -> None:
        self._values = np.empty((channels, int(math.ceil(rate_hz * capacity_s))))
        self._count = 0

    def __len__(self) -> int:
        """Values held per channel."""
        return self._count

    @property
    def capacity(self) -> int:
        """Values per channel the array holds before it grows."""
        return self._values.shape[1]

    def append(self, values: FloatArray) -> None:
        """Add Pinst values of every channel, shape (channels, n), in time order."""
        n = values.shape[1]
        if self._count + n > self._values.shape[1]:
            grown = np.empty((self._values.shape[0], max(2 * self._values.shape[1], self._count + n)))
            grown[:, : self._count] = self._values[:, : self._count]
            self._values = grown
        self._values[:, self._count : self._count + n] = values
        self._count += n

    def channel(self, i: int) -> FloatArray:
        """The values of channel ``i`` (a view, valid until the next :meth:`append` or :meth:`clear`)."""
        return self._values[i, : self._count]

    def clear(self) -> None:
        """Start the next interval (the array is kept)."""
        self._count = 0


def plt_from_pst(pst_values: list[float]) -> float:
    """Long-term flicker severity: cube root of the mean of Pst³ (normally 12 values over 2 h)."""
    return float(np.cbrt(np.mean(np.asarray(pst_values) ** 3)))
