"""The software test LED of a whole simulated meter seen by a reference standard (virtual time):
at 5 % Ib, Ib and Imax (PF 1, three phases at 230 V) a gate of 1 pulse is within 0.5 % and a gate
of 10 pulses within 0.1 % of the grid model's true energy, at 1000 imp/kWh with 0.1 Wh register
counts and at 10000 imp/kWh with 1 mWh counts; the pulse count stays locked to the billed energy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.led_reference import gate_stats
from tests.simmeter import SimMeter


@pytest.mark.parametrize(("imp_per_kwh", "lsb_cf", "current_a", "seconds"), [
    (1000, 0.1, 0.25, 240.0),    # 5 % Ib: a pulse every 20.9 s
    (1000, 0.1, 5.0, 20.0),
    (1000, 0.1, 100.0, 4.0),
    (10_000, 0.01, 0.25, 30.0),
    (10_000, 0.01, 100.0, 2.0),
])
def test_led_gates_meet_the_bench_targets(tmp_path: Path, imp_per_kwh: int, lsb_cf: float, current_a: float,
                                          seconds: float) -> None:
    meter = SimMeter(tmp_path, frontend={"meter_constant_imp_per_kwh": imp_per_kwh, "energy_lsb_cf": lsb_cf},
                     meter={"led_imp_per_kwh": imp_per_kwh}, sim={"current_a": current_a, "power_factor": 1.0})
    try:
        led = meter.hardware.led
        assert led is not None and meter.hardware.led_source == "software"
        meter.run(5.0)                                   # past the start-up reads
        rises: list[float] = []
        led.rise_listeners.append(rises.append)
        meter.run(seconds)
        grid = meter.world.grid

        def true_wh(t: float) -> float:
            return grid.truth(t)["T"].active_import_wh

        one, ten = gate_stats(rises, true_wh, imp_per_kwh, 1), gate_stats(rises, true_wh, imp_per_kwh, 10)
        assert one.gates >= 10 and ten.gates >= 1
        assert one.worst_pct <= 0.5 and ten.worst_pct <= 0.1
        assert rises == sorted(rises)
        billed_pulses = led.placer.billed_mwh * imp_per_kwh // 1_000_000
        assert abs(led.placer.placed - billed_pulses) <= 1
    finally:
        meter.close()
