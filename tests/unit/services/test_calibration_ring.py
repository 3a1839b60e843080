"""The calibration's ring of cycle samples: compact, committed at start, exact where it must be."""

from __future__ import annotations

import math

from meterd.core.calibration import PhaseReading
from meterd.services.calibration import SAMPLES_KEPT, CycleRing, CycleSample, average


def sample(cycle: int, volts: float = 230.01, amps: float = 5.0005, valid: bool = True) -> CycleSample:
    phase = PhaseReading(volts, amps, 1150.1234, -12.345)
    return CycleSample(cycle, 1_000_000.0 + cycle * 1.000001, (phase, phase, phase),
                       10_000_000_000 + cycle, cycle // 3, valid)


def ring_bytes(ring: CycleRing) -> int:
    return sum(a.nbytes for a in (ring._cycle, ring._mono, ring._phases, ring._energy, ring._valid))


def test_the_ring_takes_81_bytes_a_cycle() -> None:
    ring = CycleRing(SAMPLES_KEPT)
    assert ring_bytes(ring) == 81 * SAMPLES_KEPT  # 1.31 MB for 4.5 h at 1 s (was 129 bytes a cycle)


def test_cycle_time_and_registers_exact_readings_to_seven_digits() -> None:
    ring = CycleRing(4)
    for c in range(1, 7):  # wraps: the oldest two overwritten
        ring.append(sample(c, valid=c != 5))
    kept = list(ring)
    assert [s.cycle for s in kept] == [3, 4, 5, 6]
    assert [s.mono_s for s in kept] == [1_000_000.0 + c * 1.000001 for c in (3, 4, 5, 6)]
    assert [(s.import_mwh, s.export_mwh) for s in kept] == [(10_000_000_000 + c, c // 3) for c in (3, 4, 5, 6)]
    assert [s.cycle for s in ring.since(3, 10, valid_only=True)] == [4, 6]
    for got in kept[0].phases:
        for value, want in zip((got.voltage_v, got.current_a, got.active_power_w, got.reactive_power_var),
                               (230.01, 5.0005, 1150.1234, -12.345), strict=True):
            assert math.isclose(value, want, rel_tol=1e-7)
    mean = average(kept)[0]
    assert math.isclose(mean.voltage_v, 230.01, rel_tol=1e-7)  # far below the 0.01 % the procedure resolves
