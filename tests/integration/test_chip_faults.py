"""Every injected chip fault, through the whole simulated meter: no phantom energy, the fault
flagged within 2 cycles, metering back within 5 cycles of the fault clearing, an event, the alarm
bit, and the episode's duration and estimate recorded."""

from __future__ import annotations

import pytest

from hw.atm90e36.faults import ChipFault
from meterd.app.daemon import Daemon
from meterd.core import event_codes as ec
from meterd.core.events import EventRecorder
from meterd.ui.live_values import LiveSources, display_data
from tests.chip_faults import TOLERANCE_MWH, run_fault
from tests.simmeter import SimMeter, sim_config


@pytest.mark.parametrize("kind", list(ChipFault), ids=lambda k: k.value)
def test_a_fault_never_bills_phantom_energy_and_is_flagged_and_recovered(tmp_path, kind):
    run = run_fault(tmp_path, kind, duration_s=10.0, rate=0.005)
    assert run.ahead_mwh <= TOLERANCE_MWH          # billed never ahead of the true energy
    assert run.billed_mwh <= run.true_mwh + TOLERANCE_MWH
    assert run.export_mwh == 0                     # an import load: a fault never makes export
    assert run.detected_after is not None and run.detected_after <= 2
    assert run.recovered_after is not None and run.recovered_after <= 5
    if kind is ChipFault.LATE_CYCLE or (kind is ChipFault.BIT_FLIPS and not run.fault_count):
        return   # flagged as a warning only (late read, reads repaired through LastSPIData): all billed
    assert run.events == run.fault_count >= 1 and run.alarm      # one event per episode, alarm bit 11
    assert run.fault_duration_s > 0
    lost_wh = (run.true_mwh - run.billed_mwh) / 1000
    assert run.estimate_wh == pytest.approx(lost_wh, abs=2.0)     # last good |P| × duration − delivered


def test_late_cycle_bills_the_energy_the_chip_kept(tmp_path):
    run = run_fault(tmp_path, ChipFault.LATE_CYCLE, duration_s=5.0)
    assert abs(run.billed_mwh - run.true_mwh) <= TOLERANCE_MWH
    assert run.events == 0 and run.fault_count == 0


def test_a_long_stall_bills_what_the_chip_kept_and_is_one_event(tmp_path):
    run = run_fault(tmp_path, ChipFault.LATE_CYCLE, duration_s=30.0)
    assert abs(run.billed_mwh - run.true_mwh) <= TOLERANCE_MWH   # 31 s is far from filling a register
    assert run.events == 1 and run.fault_count == 0 and run.alarm    # evented, but not a fault episode


@pytest.mark.parametrize("kind", [ChipFault.CHECKSUM, ChipFault.MISO_HIGH, ChipFault.SPI_TIMEOUT, ChipFault.BROWN_OUT],
                         ids=lambda k: k.value)
def test_a_chip_dead_at_start_leaves_the_meter_running_and_it_resumes_by_itself(tmp_path, kind):
    daemon = Daemon(sim_config(tmp_path, sim={"current_a": 10.0}))
    m = daemon.build()
    assert daemon.hardware is not None and daemon.hardware.sim is not None
    world = daemon.hardware.sim
    world.inject_fault(kind)
    m.start()                                        # the chip does not start: meterd stays up
    try:
        assert m.chip.in_fault and "metrology_fault" in m.status_flags()
        assert m.status_word() >> 12 & 1             # status word bit 12: metrology fault
        lcd = display_data(LiveSources(meter=m, clock=m.clock))
        assert "metrology_fault" in lcd.tamper_other and lcd.tampered   # the LCD's ALARM line
        for _ in range(10):
            daemon.step(1.0)
        assert not any(m.registers.snapshot().values())
        world.clear_fault(kind)
        for _ in range(5):
            daemon.step(1.0)
            if not m.chip.in_fault:
                break
        assert not m.chip.in_fault, "not resumed within 5 cycles"
        for _ in range(3):
            daemon.step(1.0)
        assert any(m.registers.snapshot().values()) and "metrology_fault" not in m.status_flags()
        codes = [e.code for e in daemon.registry.need(EventRecorder, by="test").recent(50)]
        assert ec.code("MEASUREMENT_SYSTEM_ERROR") in codes
        assert ec.code("POWER_DOWN") not in codes      # nothing measured is not a power cut
    finally:
        daemon.close()


def test_a_fault_from_a_scenario(tmp_path):
    meter = SimMeter(tmp_path, sim={"current_a": 10.0})
    try:
        meter.world.load_scenario('[[events]]\nat_s = 2\nsignal = "chip_fault"\n'
                                  'value = { kind = "miso_high", duration_s = 3 }\n', "faults.toml")
        meter.run(3)
        assert "metrology_fault" in meter.meter.status_flags()
        meter.run(4)
        assert not meter.meter.chip.in_fault and meter.meter.chip.totals.count == 1
        with pytest.raises(ValueError, match="unknown chip fault"):
            meter.world.load_scenario('[[events]]\nat_s = 1\nsignal = "chip_fault"\nvalue = "melted"\n', "bad")
    finally:
        meter.close()
