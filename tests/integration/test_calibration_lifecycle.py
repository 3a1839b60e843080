"""A seeded simulated board: uncalibrated it is a metrology fault and out of class; the AN procedure
calibrates it; the calibration survives a restart, a chip re-initialisation and a reboot of the
board; a tampered or foreign calibration file is a metrology fault."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hw.atm90e36.faults import ChipFault
from meterd.bridge.chip_calibration import ChipCalibration
from meterd.core import event_codes as ec
from meterd.core.calibration import CalibrationRejected, CalibrationValues
from meterd.core.calibration_record import CalibrationProblem
from meterd.core.events import EventRecorder
from meterd.services.calibration import CalibrationService
from meterd.services.calibration_procedure import ProcedureSettings, calibrate
from tests.calibration_rig import InProcessMeter, SimSource, reference
from tests.simmeter import SimMeter

SEED = 16


def _meter(state: Path, **sections: dict[str, object]) -> SimMeter:
    return SimMeter(state, sim={"board_seed": SEED, "current_a": 0.0, **sections.pop("sim", {})}, **sections)


def _chip_values(meter: SimMeter) -> CalibrationValues:
    return ChipCalibration(meter.hardware.frontend, meter.hardware.frontend.driver.config).read_back()


def _flags(meter: SimMeter) -> set[str]:
    assert meter.daemon.meter is not None
    return meter.daemon.meter.status_flags()


def _codes(meter: SimMeter) -> list[int]:
    recorder = meter.service(EventRecorder)
    return [e.code for log in recorder.logs.values() for e in log.entries()]


def _power_errors_pct(meter: SimMeter, pf: str, current_a: float = 5.0) -> list[float]:
    link, source = InProcessMeter(meter), SimSource(meter)
    source.set(230.0, (current_a, current_a, current_a), pf)
    measured = link.measure(link.cycle() + 2, 3)
    truth = reference(meter).read()
    return [100 * (m.active_power_w / t.active_power_w - 1) for m, t in zip(measured, truth, strict=True)]


def _calibrated(state: Path) -> tuple[SimMeter, CalibrationValues]:
    meter = _meter(state)
    result = calibrate(InProcessMeter(meter), SimSource(meter), reference(meter),
                       ProcedureSettings(operator="A. Technician", current_scale=meter.daemon.cfg.frontend.current_scale))
    return meter, result.values


def test_uncalibrated_seeded_board_is_a_fault_and_out_of_class_then_calibrated(tmp_path: Path) -> None:
    meter = _meter(tmp_path)
    service = meter.service(CalibrationService)
    assert service.problem is CalibrationProblem.MISSING
    assert "metrology_fault" in _flags(meter)
    assert ec.code("MEASUREMENT_SYSTEM_ERROR") in _codes(meter)
    assert max(abs(e) for e in _power_errors_pct(meter, "0.5L")) > 0.6   # class 0.5S at PF 0.5 L: ±0.6 %
    result = calibrate(InProcessMeter(meter), SimSource(meter), reference(meter),
                       ProcedureSettings(operator="A. Technician", current_scale=meter.daemon.cfg.frontend.current_scale))
    assert service.problem is None and service.record is not None
    assert service.record.calibration_id.startswith("PMM1221000001-C001-")
    assert service.record.reference_instrument.startswith("simulated reference standard")
    assert _chip_values(meter) == result.values
    assert ec.code("PARAMETERS_CHANGED") in _codes(meter)
    assert "metrology_fault" not in _flags(meter)
    for pf in ("1", "0.5L", "0.8C", "-1"):
        assert max(abs(e) for e in _power_errors_pct(meter, pf)) < 0.1, pf
    meter.close()


def test_calibration_survives_restart_chip_reinit_and_board_reboot(tmp_path: Path) -> None:
    meter, values = _calibrated(tmp_path)
    # chip re-initialisation: a brown-out resets every register; the supervision restarts the chip
    meter.world.inject_fault(ChipFault.BROWN_OUT, duration_s=3.0)
    meter.run(20.0)
    assert _chip_values(meter) == values
    assert max(abs(e) for e in _power_errors_pct(meter, "0.5L")) < 0.1
    meter.close()
    # restart of meterd and reboot of the simulated board: a new chip (power-on values), same board
    again = _meter(tmp_path)
    assert again.service(CalibrationService).problem is None
    assert _chip_values(again) == values
    assert max(abs(e) for e in _power_errors_pct(again, "0.5L")) < 0.1
    again.close()


def test_tampered_and_foreign_calibration_files_are_metrology_faults(tmp_path: Path) -> None:
    meter, values = _calibrated(tmp_path)
    meter.close()
    path = tmp_path / "calibration.json"
    doc = json.loads(path.read_text())
    doc["record"]["values"]["energy_gain"][0] += 1          # one register changed by hand
    path.write_text(json.dumps(doc))
    tampered = _meter(tmp_path)
    service = tampered.service(CalibrationService)
    assert service.problem is CalibrationProblem.CORRUPTED
    assert "metrology_fault" in _flags(tampered)
    assert _chip_values(tampered) == CalibrationValues()     # never the altered values
    tampered.close()
    foreign = _meter(tmp_path / "other", meter={"serial": "PMM1221000002"})
    foreign.close()
    doc["record"]["values"]["energy_gain"][0] -= 1          # intact again, but another board's
    (tmp_path / "other" / "calibration.json").write_text(json.dumps(doc))
    other = _meter(tmp_path / "other", meter={"serial": "PMM1221000002"})
    assert other.service(CalibrationService).problem is CalibrationProblem.FOREIGN
    other.close()


def test_implausible_result_is_refused_and_the_stored_calibration_stays(tmp_path: Path) -> None:
    meter, values = _calibrated(tmp_path)
    link = InProcessMeter(meter)
    with pytest.raises(CalibrationRejected, match="Igain L2"):
        link.apply(values.with_phase(1, i_gain=45000), True, {"operator": "x", "reference_instrument": "y"})
    assert _chip_values(meter) == values
    meter.close()
