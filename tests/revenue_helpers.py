"""Driving a RevenueService in unit tests: a steady active-import load, cycle by cycle."""

from __future__ import annotations

import datetime as dt
from typing import Any

from meterd.core.energy import EnergyRegisters, Quantity
from meterd.core.reading import Channel

AI = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def run(svc: Any, registers: EnergyRegisters, start: dt.datetime, minutes: int, step_s: int = 60) -> None:
    """Feed ``minutes`` of cycles of ``step_s`` (s), each adding 1 Wh (1000 mWh) of +A total."""
    for i in range(1, minutes * 60 // step_s + 1):
        d = {AI: 1000}
        registers.add(d)
        svc.on_cycle(start + dt.timedelta(seconds=i * step_s), d, registers)
