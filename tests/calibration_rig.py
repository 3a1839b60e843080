"""The calibration procedure and the accuracy test against a meter in process (:class:`SimMeter`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meterd.app.sim_reference import SimReference
from meterd.core.calibration import CalibrationValues
from meterd.services.calibration import ApplyRequest, CalibrationService
from meterd.services.calibration_procedure import Phases
from tests.simmeter import SimMeter


class InProcessMeter:
    """:class:`~meterd.services.calibration_procedure.MeterLink` over a SimMeter: waiting for
    cycles runs them."""

    def __init__(self, meter: SimMeter) -> None:
        self.meter = meter
        self.service = meter.service(CalibrationService)

    def cycle(self) -> int:
        return self.service.cycles

    def measure(self, since: int, cycles: int) -> Phases:
        while (result := self.service.measure(since, cycles)) is None:
            self.meter.run(1.0)
        return result

    def samples_since(self, since: int) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.service.samples_since(since)]

    def run_until(self, cycle: int) -> None:
        while self.service.cycles < cycle:
            self.meter.run(1.0)

    def apply(self, values: CalibrationValues, commit: bool, meta: Mapping[str, Any]) -> dict[str, Any]:
        record = self.service.apply(ApplyRequest(
            values=values, commit=commit, operator=str(meta.get("operator", "")),
            reference_instrument=str(meta.get("reference_instrument", "")),
            uncertainty_pct=float(meta.get("uncertainty_pct", 0.0)), note=str(meta.get("note", "")),
            points=tuple(meta.get("points", ()))))
        return record.as_dict() if record is not None else {}

    def abort(self) -> None:
        self.service.abort()


class SimSource:
    """:class:`~meterd.services.calibration_procedure.TestSource` on the simulated grid."""

    def __init__(self, meter: SimMeter) -> None:
        self.world = meter.world

    def set(self, voltage_v: float, currents_a: tuple[float, float, float], power_factor: str) -> None:
        for phase, current in zip("ABC", currents_a, strict=True):
            self.world.set_load({"phase": phase, "voltage_v": voltage_v, "current_a": current,
                                 "power_factor": power_factor})


def reference(meter: SimMeter) -> SimReference:
    """The simulated reference standard of the meter's grid."""
    return meter.service(SimReference)
