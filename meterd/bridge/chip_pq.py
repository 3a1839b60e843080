"""Indicative power-quality values from the ATM90E36's own DFT and THD+N registers (a Pi without
the DMA waveform bridge): harmonic ratios of orders 2–32 per channel, THD per channel (%).

A chip in fault (a transfer that fails, a chip that does not answer) only skips this DFT: the
metering cycle's supervision flags the fault; the schedule starts again one period later.

Each poll holds the SPI bus lock (``lock``), which the metering thread holds for each chip read:
the DFT's transfers never interleave with the metering read."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from hw.errors import HwError
from meterd.core.clock import Clock
from meterd.pq.monitor import CHIP_DFT_MAX_ORDER, PqValues, indicative_from_chip

log = logging.getLogger("meterd.chip_pq")


class ChipPq:
    """Indicative values from the ATM90E36: start a DFT, read its ratios 0.512 s later, and the THD+N."""

    DFT_CTRL = 0x1D1
    DFT_S = 4096 / 8000
    BASES = {"I1": 0x100, "I2": 0x120, "I3": 0x140, "U1": 0x160, "U2": 0x180, "U3": 0x1A0}

    def __init__(self, driver: Any, clock: Clock, period_s: float,
                 lock: AbstractContextManager[Any] | None = None) -> None:
        self._driver = driver
        self._lock: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
        self._clock = clock
        self._period_s = period_s
        self._started: float | None = None
        self._last: float | None = None

    def poll(self) -> PqValues | None:
        """Run the DFT schedule; returns new values when a DFT finished (None also when the chip
        could not be read: that DFT is dropped)."""
        try:
            with self._lock:
                return self._poll()
        except (HwError, OSError) as exc:
            log.debug("chip DFT dropped: %s", exc)
            self._started, self._last = None, self._clock.mono()
            return None

    def _poll(self) -> PqValues | None:
        now = self._clock.mono()
        if self._started is None:
            if self._last is None or now - self._last >= self._period_s:
                self._driver.write_register(self.DFT_CTRL, 1)
                self._started = now
            return None
        if now - self._started < self.DFT_S or self._driver.read_register(self.DFT_CTRL) & 1:
            return None
        self._started, self._last = None, now
        return self.read()

    def read(self) -> PqValues:
        """The DFT ratio registers (orders 2–32, %) and THD+N registers (%) as indicative values."""
        ratios: dict[str, Sequence[float]] = {name: [self._driver.read_register(base + order - 2) / 163.84
                         for order in range(2, CHIP_DFT_MAX_ORDER + 1)] for name, base in self.BASES.items()}
        thd_u = [self._driver.read_register(0xF1 + i) * 0.01 for i in range(3)]
        thd_i = [self._driver.read_register(0xF5 + i) * 0.01 for i in range(3)]
        return indicative_from_chip(thd_u, thd_i, ratios)
