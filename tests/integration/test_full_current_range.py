"""The full current range through the whole simulated meter: Imax (100 A) and the 120 A
over-current setting are measured and billed (the board divides the current by 2 before the chip),
the over-current protection of load control trips at its setting, and a read late enough to fill
the chip's total energy register is flagged, recorded once and its shortfall estimated."""

from __future__ import annotations

import pytest

from hw.atm90e36 import regmap as rm
from meterd.app.sim_world import parse_power_factor
from meterd.core import event_codes as ec
from meterd.core.chip_health import MetrologyWarning
from meterd.core.energy import Derived, EnergyRegisters, Quantity
from meterd.core.events import EventRecorder
from meterd.core.limiter import Cause, LimiterState
from meterd.core.reading import Channel
from meterd.services.load_control import LoadControl
from tests.simmeter import SimMeter

COUNT_MWH = 100
"""One register count at 1000 imp/kWh and 0.1 CF (mWh)."""


@pytest.mark.parametrize(("current_a", "pf"), [(100.0, "1"), (120.0, "1"), (120.0, "0.5L"), (100.0, "0.8C")])
def test_imax_and_120_a_are_measured_and_billed(tmp_path, current_a, pf):
    sm = SimMeter(tmp_path, sim={"current_a": 0.0})
    try:
        phi = parse_power_factor(pf)
        sm.world.grid.set_all_phases(voltage_v=230.0, current_a=current_a, phi_deg=phi)
        sm.run(2.0)
        truth0 = sm.world.grid.truth(sm.clock.mono())
        r0 = EnergyRegisters(sm.meter.registers.snapshot())
        residue0 = {(stem, letter): sm.world.chip.residue_milli(rm.energy_addr(stem, letter))
                    for stem in ("APenergy", "RPenergy", "RNenergy") for letter in ("T", "A")}
        sm.run(300.0)
        reading = sm.meter.last_reading
        assert reading is not None
        check = sm.meter.chip_check
        assert check is not None and not check.faults and not check.warnings, check
        assert not sm.meter.chip.in_fault
        power_factor = float(pf.rstrip("LC"))
        for phase in reading.phases:   # the chip sees I/2; the driver multiplies back
            assert phase.current_a == pytest.approx(current_a, abs=0.01)
            assert phase.active_power_w == pytest.approx(230.0 * current_a * power_factor, rel=1e-3, abs=2.0)
            assert phase.apparent_power_va == pytest.approx(230.0 * current_a, rel=1e-3)
        assert reading.total_active_power_w == pytest.approx(3 * 230.0 * current_a * power_factor, rel=1e-3)
        truth1 = sm.world.grid.truth(sm.clock.mono())
        chip = sm.world.chip
        for channel, name, letter in ((Channel.TOTAL, "T", "T"), (Channel.L1, "L1", "A")):
            for q, field, stem in ((Quantity.ACTIVE_IMPORT, "active_import_wh", "APenergy"),
                                   (Derived.REACTIVE_IMPORT, "reactive_forward_varh", "RPenergy"),
                                   (Derived.REACTIVE_EXPORT, "reactive_reverse_varh", "RNenergy")):
                true_mwh = (getattr(truth1[name], field) - getattr(truth0[name], field)) * 1000
                billed = sm.meter.registers.get(q, channel) - r0.get(q, channel)
                residue = chip.residue_milli(rm.energy_addr(stem, letter)) - residue0[(stem, letter)]
                assert billed + residue == pytest.approx(true_mwh, rel=1e-9, abs=1e-6), (channel, q)
                assert abs(true_mwh - billed) < COUNT_MWH, (channel, q, billed, true_mwh)
        assert sm.meter.registers.get(Quantity.ACTIVE_IMPORT) - r0.get(Quantity.ACTIVE_IMPORT) > 0
    finally:
        sm.close()


def test_over_current_protection_trips_at_its_setting(tmp_path):
    sm = SimMeter(tmp_path, sim={"current_a": 0.0})
    try:
        lc = sm.service(LoadControl)
        limiter = lc.limiter
        assert limiter.config.phase_current_limit_a == 120.0
        duration_s = limiter.config.overcurrent_duration_s
        grid = sm.world.grid
        grid.set_phase("L1", voltage_v=230.0, current_a=119.0, phi_deg=0.0)
        sm.run(3 * duration_s)
        assert lc.output_state and limiter.state is LimiterState.ARMED   # below the setting: no trip
        assert sm.meter.last_reading is not None
        assert sm.meter.last_reading.phases[0].current_a == pytest.approx(119.0, abs=0.01)
        grid.set_phase("L1", current_a=121.0)
        tripped_after = None
        for second in range(1, 3 * round(duration_s)):
            sm.run(1.0)
            reading = sm.meter.last_reading
            assert reading is not None
            if tripped_after is None:
                assert reading.phases[0].current_a == pytest.approx(121.0, abs=0.01)
            if limiter.state is not LimiterState.ARMED:
                tripped_after = second
                break
        assert tripped_after is not None, "121 A never tripped the 120 A over-current protection"
        assert duration_s <= tripped_after <= duration_s + 2
        assert limiter.trip_cause is Cause.OVERCURRENT
        sm.run(2.0)   # the coil pulse
        assert not lc.output_state
    finally:
        sm.close()


def measurement_errors(sm: SimMeter, fault: str = "energy_saturation") -> list:
    """The measurement-system events of ``fault`` (a read 300 s late is also a stalled loop)."""
    return [e for e in sm.service(EventRecorder).recent(100)
            if e.code == ec.code("MEASUREMENT_SYSTEM_ERROR") and e.detail.get("fault") == fault]


def test_a_read_late_enough_to_saturate_is_flagged_recorded_once_and_its_shortfall_estimated(tmp_path):
    """82.8 kW (3 × 230 V × 120 A) for 300 s is 6900 Wh: past the 6553.5 Wh a register holds."""
    sm = SimMeter(tmp_path, sim={"current_a": 0.0})
    try:
        sm.world.grid.set_all_phases(voltage_v=230.0, current_a=120.0, phi_deg=0.0)
        sm.run(3.0)
        assert not measurement_errors(sm)
        before = sm.meter.registers.get(Quantity.ACTIVE_IMPORT)
        unmeasured_before = sm.meter.chip.totals.energy_not_measured_wh
        sm.run(300.0, 300.0)                     # one read, 300 s after the previous one
        check = sm.meter.chip_check
        assert check is not None and not check.faults
        assert {MetrologyWarning.ENERGY_SATURATED, MetrologyWarning.SATURATION_RISK} <= check.warnings
        assert "metrology_warning" in sm.meter.status_flags()
        billed_wh = (sm.meter.registers.get(Quantity.ACTIVE_IMPORT) - before) / 1000
        assert billed_wh == pytest.approx(6553.5)             # the full register: a lower bound, billed
        assert sm.world.chip.overflow_counts(rm.energy_addr("APenergy", "T")) > 0
        shortfall = sm.meter.chip.totals.energy_not_measured_wh - unmeasured_before
        assert shortfall == pytest.approx(82_800 * 300 / 3600 - 6553.5, rel=1e-3)   # 346.5 Wh
        assert check.shortfall_wh == pytest.approx(shortfall)
        events = measurement_errors(sm)
        assert len(events) == 1 and events[0].detail["fault"] == "energy_saturation"
        assert len(measurement_errors(sm, "metering_stalled")) == 1
        sm.run(300.0, 300.0)                     # still late: the same episode, no second event
        assert len(measurement_errors(sm)) == 1
        sm.run(2.0)                              # on time again: the episode ends
        assert not sm.meter.chip.saturation_open
        sm.run(200.0, 200.0)                     # 200 s × 95.2 kW ≥ half a register: at risk, not full
        check = sm.meter.chip_check
        assert check is not None and MetrologyWarning.SATURATION_RISK in check.warnings
        assert MetrologyWarning.ENERGY_SATURATED not in check.warnings and check.shortfall_wh == 0.0
        assert len(measurement_errors(sm)) == 2                # a new episode, a new event
    finally:
        sm.close()
