"""A long simulated run with a metering-IC fault injected at a fixed period, measured against truth.

:func:`run_fault_day` builds a :class:`tests.simmeter.SimMeter` on a load that changes every
hour (a daily shape of import at several power factors), and every ``every_s`` injects the next
:class:`hw.atm90e36.faults.ChipFault` in turn through the simulated world's public interface for
``fault_s``. Each metering cycle is classed by what the meter itself said of it: billed (no
metrology fault flag) or flagged (the cycle billed nothing under ``metrology_fault``). The truth
of each cycle's interval comes from the grid's own integral (what a reference standard sees).

The claim checked (:class:`FaultDay`): billed active import = true import − the energy of the
flagged fault intervals, to a fraction of the total. The energy of the flagged intervals is what the
meter itself records as not measured (0-0:96.50.x, the sum over its fault episodes): a fault
interval whose energy the chip kept (an SPI time-out leaves the read-to-clear registers full, a
chip whose configuration survived is resumed) is billed at the first good read and is not in that
record; one whose energy was lost (a brown-out, a read cleared under a stuck MISO line) is. The run
also records the true energy of the intervals the meter flagged, the injections that left no
measurement-system event, the export billed on an import load (must be none), and whether the
daemon ran throughout (one process, never rebuilt).

A stalled cycle (the ``late_cycle`` fault) runs nothing: its interval's energy stays in the chip
and is billed by the next cycle that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hw.atm90e36.faults import ChipFault
from meterd.core import event_codes as ec
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from tests.simmeter import SimMeter

_FAULT_CODES = frozenset({ec.code("MEASUREMENT_SYSTEM_ERROR")})
"""The events a fault of the metering IC or of its read leaves in the log."""

HOURLY_LOAD_A = (4.0, 3.0, 3.0, 2.5, 2.5, 3.0, 8.0, 15.0, 12.0, 10.0, 9.0, 11.0,
                 14.0, 12.0, 10.0, 9.0, 12.0, 20.0, 30.0, 25.0, 18.0, 12.0, 8.0, 5.0)
"""Phase current (A) for each hour of the day, all three phases at 230 V."""
HOURLY_PF = ("1", "0.9L", "0.95L", "1", "0.8L", "0.9C", "1", "0.95L")
"""Power factor cycled through the hours."""


@dataclass
class FaultDay:
    """What the run measured: energies in Wh, intervals in s, faults by kind."""

    hours: float
    billed_wh: float = 0.0
    true_wh: float = 0.0
    flagged_true_wh: float = 0.0
    flagged_s: float = 0.0
    export_wh: float = 0.0
    injected: dict[str, int] = field(default_factory=dict)
    unlogged: list[str] = field(default_factory=list)
    episodes_logged: int = 0
    estimate_wh: float = 0.0
    rebuilt: bool = False

    @property
    def injected_total(self) -> int:
        """Faults injected over the run."""
        return sum(self.injected.values())

    @property
    def unexplained_pct(self) -> float:
        """(billed − (true − flagged)) / true, %: energy neither billed nor in the meter's record
        of what it did not measure (positive: billed more than the truth allows)."""
        return 100.0 * (self.billed_wh - (self.true_wh - self.estimate_wh)) / self.true_wh


def run_fault_day(state_dir: Path, hours: float = 24.0, every_s: int = 600, fault_s: int = 30,
                  rate: float = 0.02) -> FaultDay:
    """Meter ``hours`` of 1-s cycles with a fault of ``fault_s`` s every ``every_s`` s."""
    meter = SimMeter(state_dir, sim={"voltage_v": 230.0, "current_a": HOURLY_LOAD_A[0], "power_factor": "1"})
    daemon = meter.daemon
    try:
        m = meter.meter
        grid = meter.world.grid
        day = FaultDay(hours=hours)
        kinds = list(ChipFault)
        recorded: list = []  # every fault event as recorded (the log itself keeps only its depth)
        meter.service(EventRecorder).add_listener(lambda e: recorded.append(e) if e.code in _FAULT_CODES else None)
        windows: list[tuple[str, float, float]] = []  # kind, from, to (meter monotonic s)
        start_import = m.registers.get(Quantity.ACTIVE_IMPORT)
        start_export = m.registers.get(Quantity.ACTIVE_EXPORT)
        last_read_wh = grid.truth()["T"].active_import_wh
        first_wh = last_read_wh
        total_s = round(hours * 3600)
        for second in range(total_s):
            if second % 3600 == 0:
                hour = second // 3600
                meter.world.set_load({"current_a": HOURLY_LOAD_A[hour % 24],
                                      "power_factor": HOURLY_PF[hour % len(HOURLY_PF)]})
            if second % every_s == every_s // 2:
                kind = kinds[(second // every_s) % len(kinds)]
                meter.world.inject_fault(kind, float(fault_s), rate=rate, seed=second)
                t0 = meter.clock.mono()
                windows.append((kind.value, t0, t0 + fault_s + 5.0))
                day.injected[kind.value] = day.injected.get(kind.value, 0) + 1
            result = daemon.step(1.0)
            if result is None:  # stalled: the interval stays in the chip for the next read
                continue
            now_wh = grid.truth()["T"].active_import_wh
            if "metrology_fault" in m.status_flags():
                day.flagged_true_wh += now_wh - last_read_wh
                day.flagged_s += 1.0
            last_read_wh = now_wh
        day.true_wh = last_read_wh - first_wh
        day.billed_wh = (m.registers.get(Quantity.ACTIVE_IMPORT) - start_import) / 1000
        day.export_wh = (m.registers.get(Quantity.ACTIVE_EXPORT) - start_export) / 1000
        day.estimate_wh = m.chip.totals.energy_not_measured_wh
        events = recorded
        day.episodes_logged = len(events)
        offset = meter.clock.mono() - meter.clock.utc().timestamp()  # meter UTC -> monotonic s
        stamps = [e.utc.timestamp() + offset for e in events]
        day.unlogged = [kind for kind, lo, hi in windows if not any(lo - 1 <= t <= hi for t in stamps)]
        day.rebuilt = daemon.meter is not m
        return day
    finally:
        meter.close()
