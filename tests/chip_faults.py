"""Drive one injected chip fault through a whole simulated meter and measure what it did.

:func:`run_fault` builds a :class:`tests.simmeter.SimMeter` on a steady import load, meters a few
cycles, injects the fault through the simulated world's public interface for ``duration_s``, runs
on, and returns a :class:`FaultRun`: the cycle of detection (the first with the fault or warning
flag), of recovery (the first billing cycle after the fault's end without the fault flag), the
billed and true active energy (mWh) and whether the billed registers ever got ahead of the truth.
Truth is the grid's own integral of the total active power (what a reference standard sees).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hw.atm90e36.faults import ChipFault
from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.services.supervision import Supervision
from tests.simmeter import SimMeter

CURRENT_A = 10.0
VOLTAGE_V = 230.0
"""The load: 3 × 230 V × 10 A at PF 1 = 6.9 kW of import."""
TRUE_MWH_PER_S = 3 * VOLTAGE_V * CURRENT_A / 3.6
TOLERANCE_MWH = 200
"""Register quantisation: the sub-count residue the chip holds back at the start and at the end
of a run, each less than one count (100 mWh at 1000 imp/kWh and 0.1 CF)."""


@dataclass(frozen=True)
class FaultRun:
    """What one fault did: detection in metering cycles run since the injection (a stalled
    cycle does not run), recovery in cycles after the fault's end; None = never."""

    kind: ChipFault
    detected_after: int | None
    recovered_after: int | None
    billed_mwh: int
    true_mwh: float
    export_mwh: int
    ahead_mwh: float
    events: int
    alarm: bool
    fault_count: int
    fault_duration_s: float
    estimate_wh: float

    @property
    def billed_error_pct(self) -> float:
        """(billed − true) / true, %."""
        return 100.0 * (self.billed_mwh - self.true_mwh) / self.true_mwh


def run_fault(state_dir: Path, kind: ChipFault, duration_s: float = 10.0, before_s: int = 5,
              after_s: int = 15, rate: float = 0.01, seed: int = 1) -> FaultRun:
    """Meter ``before_s`` cycles, inject ``kind`` for ``duration_s`` s, meter ``after_s`` more."""
    meter = SimMeter(state_dir, sim={"voltage_v": VOLTAGE_V, "current_a": CURRENT_A, "power_factor": "1"})
    try:
        m = meter.meter
        meter.run(before_s)
        start_import = m.registers.get(Quantity.ACTIVE_IMPORT)
        start_export = m.registers.get(Quantity.ACTIVE_EXPORT)
        t0 = meter.clock.mono()
        meter.world.inject_fault(kind, duration_s, rate=rate, seed=seed)
        end_s = t0 + duration_s
        detected = recovered = None
        ahead = 0.0
        cycles = executed = 0
        while cycles < duration_s + after_s:
            result = meter.daemon.step(1.0)
            cycles += 1
            if result is None:   # a stalled cycle: nothing ran
                continue
            executed += 1
            flags = m.status_flags()
            if detected is None and flags & {"metrology_fault", "metrology_warning"}:
                detected = executed
            now = meter.clock.mono()
            billed = m.registers.get(Quantity.ACTIVE_IMPORT) - start_import
            ahead = max(ahead, billed - (now - t0) * TRUE_MWH_PER_S)
            if (recovered is None and now > end_s and "metrology_fault" not in flags
                    and any(result.deltas.values())):
                recovered = cycles - round(duration_s)
        now = meter.clock.mono()
        events = [e for e in meter.service(EventRecorder).recent(100)
                  if e.code == ec.code("MEASUREMENT_SYSTEM_ERROR")]
        alarm = Alarm.MEASUREMENT_SYSTEM_ERROR in meter.service(Supervision).alarms.active()
        totals = m.chip.totals
        return FaultRun(kind=kind, detected_after=detected, recovered_after=recovered,
                        billed_mwh=m.registers.get(Quantity.ACTIVE_IMPORT) - start_import,
                        true_mwh=(now - t0) * TRUE_MWH_PER_S,
                        export_mwh=m.registers.get(Quantity.ACTIVE_EXPORT) - start_export,
                        ahead_mwh=ahead, events=len(events), alarm=alarm, fault_count=totals.count,
                        fault_duration_s=totals.duration_s, estimate_wh=totals.energy_not_measured_wh)
    finally:
        meter.close()
