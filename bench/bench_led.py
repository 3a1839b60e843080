"""The software test LED seen by a reference standard: error of 1-pulse and 10-pulse gates.

A whole simulated meter (the daemon's own wiring, ``tests.simmeter``) runs at each accuracy point
(5 % Ib = 0.25 A, Ib = 5 A, Imax = 100 A; PF 1, three phases at 230 V) with the chip's meter
constant and energy resolution at 10000 imp/kWh with 0.01 CF (1 mWh a count) and at 1000 imp/kWh
with 0.1 CF (100 mWh a count); the LED constant is the chip's, as CF1 would pulse. The reference
standard takes each LED rising edge's instant and the grid model's exact energy between two edges.
Targets: |error| <= 0.5 % on 1-pulse gates, <= 0.1 % on 10-pulse gates. The ``legacy`` lines show
the LED as it was (owed pulses spread evenly over the next 1 s cycle) on the same meter, for
comparison. Prints "name: value unit" lines and a table."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.led_reference import GateStats, gate_stats  # noqa: E402
from tests.simmeter import SimMeter  # noqa: E402

POINTS_A = {"5%Ib": 0.25, "Ib": 5.0, "Imax": 100.0}
CONSTANTS = ((10_000, 0.01), (1000, 0.1))
MIN_GATES = 30            # 10-pulse gates per point (at least)
MAX_SIM_S = 3600.0


def measure(imp_per_kwh: int, lsb_cf: float, current_a: float, legacy: bool = False) -> tuple[GateStats, GateStats]:
    """1- and 10-pulse gate statistics at one point."""
    with tempfile.TemporaryDirectory() as tmp:
        meter = SimMeter(Path(tmp), frontend={"meter_constant_imp_per_kwh": imp_per_kwh, "energy_lsb_cf": lsb_cf},
                         meter={"led_imp_per_kwh": imp_per_kwh}, sim={"current_a": current_a, "power_factor": 1.0})
        try:
            led = meter.hardware.led
            assert led is not None
            meter.run(5.0)                # the reference standard starts after the start-up reads
            rises: list[float] = []
            if legacy:
                rises = legacy_rises(meter, imp_per_kwh, MIN_GATES * 10 + 12)
            else:
                led.rise_listeners.append(rises.append)
                seconds = 0.0
                while len(rises) < MIN_GATES * 10 + 12 and seconds < MAX_SIM_S:
                    meter.run(10.0)
                    seconds += 10.0
            grid = meter.world.grid
            settled = rises

            def true_wh(t: float) -> float:
                return grid.truth(t)["T"].active_import_wh

            return gate_stats(settled, true_wh, imp_per_kwh, 1), gate_stats(settled, true_wh, imp_per_kwh, 10)
        finally:
            meter.close()


def legacy_rises(meter: SimMeter, imp_per_kwh: int, wanted: int) -> list[float]:
    """Rising edges of the former LED: each cycle's owed pulses spread evenly over the next cycle."""
    rises: list[float] = []
    remainder = 0
    seconds = 0.0
    while len(rises) < wanted and seconds < MAX_SIM_S:
        result = meter.daemon.step(1.0)
        seconds += 1.0
        if result is None:
            continue
        earned, remainder = divmod(remainder + result.led_energy_mwh * imp_per_kwh, 1_000_000)
        n = min(earned, 25)
        rises += [result.reading.mono_s + k / n for k in range(n)] if n else []
    return rises


def main() -> None:
    print(f"{'constant':>16} {'point':>6} {'gate':>5} {'gates':>6} {'min %':>9} {'max %':>9} {'mean %':>9}")
    worst = {1: 0.0, 10: 0.0}
    for imp, lsb in CONSTANTS:
        for name, amps in POINTS_A.items():
            for stats in measure(imp, lsb, amps):
                worst[stats.pulses] = max(worst[stats.pulses], stats.worst_pct)
                print(f"{imp:>6} imp/kWh {lsb:>4} {name:>6} {stats.pulses:>5} {stats.gates:>6} "
                      f"{stats.min_pct:>9.4f} {stats.max_pct:>9.4f} {stats.mean_pct:>9.4f}")
    for imp, lsb in CONSTANTS[1:]:
        for stats in measure(imp, lsb, 5.0, legacy=True):
            print(f"legacy_{imp}_Ib_{stats.pulses}_pulse_gate_error_pct: min {stats.min_pct:.3f} "
                  f"max {stats.max_pct:.3f} (gates {stats.gates})")
    print(f"worst_1_pulse_gate_error_pct: {worst[1]:.4f} (target 0.5)")
    print(f"worst_10_pulse_gate_error_pct: {worst[10]:.4f} (target 0.1)")
    if worst[1] > 0.5 or worst[10] > 0.1:
        sys.exit(1)


if __name__ == "__main__":
    main()
