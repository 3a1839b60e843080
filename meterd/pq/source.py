"""The waveform input port of power quality: gapless blocks of 8 kHz samples of all channels.

Rows of ``WaveformBlock.samples`` are U1, I1, U2, I2, U3, I3, IN (volts, amps, phase-to-neutral).
The DMA receiver on hardware and the simulator's grid model both implement ``WaveformSource``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from meterd.pq.errors import SampleStreamError

ROW_U1, ROW_I1, ROW_U2, ROW_I2, ROW_U3, ROW_I3, ROW_IN = range(7)
N_ROWS = 7
VOLTAGE_ROWS: tuple[int, int, int] = (ROW_U1, ROW_U2, ROW_U3)
CURRENT_ROWS: tuple[int, int, int, int] = (ROW_I1, ROW_I2, ROW_I3, ROW_IN)
ROW_NAMES: tuple[str, ...] = ("U1", "I1", "U2", "I2", "U3", "I3", "IN")
DEFAULT_SAMPLE_RATE_HZ = 8000.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class WaveformBlock:
    """A run of consecutive samples of all seven channels.

    first_index: sample index of the first column, continuous across blocks (a gap shows as a jump).
    samples: float64 array of shape (7, n): U1, I1, U2, I2, U3, I3, IN in V and A.
    sample_rate_hz: sampling rate (Hz), 8000 by default.
    utc_first: timezone-aware UTC instant of the first sample.
    """

    first_index: int
    samples: FloatArray
    sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ
    utc_first: _dt.datetime = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC)

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.shape[0] != N_ROWS:
            raise SampleStreamError(f"samples must have shape (7, n), got {self.samples.shape}")
        if self.sample_rate_hz <= 0:
            raise SampleStreamError("sample_rate_hz must be positive")
        if self.utc_first.tzinfo is None:
            raise SampleStreamError("utc_first must be timezone-aware")

    @property
    def n_samples(self) -> int:
        """Number of samples per channel in this block."""
        return int(self.samples.shape[1])

    @property
    def end_index(self) -> int:
        """Index one past the last sample of this block."""
        return self.first_index + self.n_samples


class WaveformSource(Protocol):
    """Where waveform blocks come from (DMA receiver on hardware, grid model in simulation)."""

    def read_block(self, max_samples: int) -> WaveformBlock | None:
        """Return the next block of at most ``max_samples`` samples, or None when none is ready."""
        ...
