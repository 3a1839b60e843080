"""The simulated reference standard: the grid model's truth, seen through a configurable uncertainty.

A lab calibrates against a reference standard whose readings are close to, not equal to, the
truth. :class:`SimReference` reads the simulated grid (per-phase RMS values and powers, and the
exact cumulative energy) and applies fixed relative errors drawn once from ``seed`` uniformly
within ±``uncertainty_pct`` % (one for voltage, current, active and reactive power, and energy),
as a real standard's calibration errors are fixed within its uncertainty. Uncertainty 0 gives the
truth itself. It implements :class:`~meterd.core.calibration.ReferenceStandard` and serves
``POST /calibration/reference``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from hw.sim.grid import Grid
from meterd.core.calibration import PhaseReading


class SimReference:
    """The grid's truth with the errors of a reference standard of ``uncertainty_pct`` %."""

    def __init__(self, grid: Grid, uncertainty_pct: float, seed: int = 1) -> None:
        if not 0 <= uncertainty_pct <= 1:
            raise ValueError(f"reference uncertainty {uncertainty_pct} %: expected 0..1 %")
        self.grid = grid
        self.uncertainty_pct = uncertainty_pct
        self.name = f"simulated reference standard (grid truth, ±{uncertainty_pct:g} %)"
        rng = random.Random(f"reference-{seed}")
        u = uncertainty_pct / 100
        self.errors = {k: 1 + rng.uniform(-u, u) for k in ("u", "i", "p", "q", "e")}

    def read(self) -> tuple[PhaseReading, PhaseReading, PhaseReading]:
        """Per-phase values now (V, A, W, var)."""
        e = self.errors
        out = [PhaseReading(pw.urms_v * e["u"], pw.irms_a * e["i"], pw.p_w * e["p"], pw.q_var * e["q"])
               for pw in self.grid.state.phase_powers]
        return (out[0], out[1], out[2])

    def energy_wh(self, times: Sequence[float]) -> list[tuple[float, float]]:
        """Total active import and export (Wh) since the grid started, at each meter time (s)."""
        out = []
        for t in times:
            total = self.grid.truth(t)["T"]
            out.append((total.active_import_wh * self.errors["e"], total.active_export_wh * self.errors["e"]))
        return out

    def payload(self, times: list[float]) -> dict[str, Any]:
        """JSON form for the API."""
        return {"name": self.name, "uncertainty_pct": self.uncertainty_pct,
                "phases": [[p.voltage_v, p.current_a, p.active_power_w, p.reactive_power_var] for p in self.read()],
                "energy": [[t, imp, exp] for t, (imp, exp) in zip(times, self.energy_wh(times), strict=True)]}
