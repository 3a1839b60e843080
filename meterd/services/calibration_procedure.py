"""The bench procedure of the ATM90E36 application note, run against a meter (``meterctl calibrate``).

:func:`calibrate` drives a test source to each point, lets the meter measure (averages of its own
cycles), reads the reference standard at the same point, computes the registers with the pure
functions of :mod:`meterd.core.calibration`, and writes them into the meter as a trial after each
step (the next step measures with them in force):

1. reset values on the chip (a calibration starts from the chip's own defaults);
2. offsets: no voltage and no current (RMS offsets), then Un and no current (power offsets);
3. PF 1 at the calibration current Ib: voltage and current RMS gains, active/reactive energy gain;
4. PF 0.5 L at Ib: phase compensation;
5. re-measure at PF 1 and PF 0.5 L: every phase's error must be within ``verify_limit_pct``, else
   the calibration is refused (and the stored one put back);
6. commit: the meter stores the record (operator, reference instrument, uncertainty, the
   verification points) and records the change.

The meter, the source and the reference are small interfaces (:class:`MeterLink`,
:class:`TestSource`, :class:`~meterd.core.calibration.ReferenceStandard`): the command line uses
the local API and, on the simulated meter, the simulated grid and its reference; the tests use
the meter in process; a lab plugs in its own source and standard.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meterd.core import calibration as cal
from meterd.core.calibration import CalibrationRejected, CalibrationValues, PhaseReading, ReferenceStandard

Phases = tuple[PhaseReading, PhaseReading, PhaseReading]


class MeterLink(Protocol):
    """The meter under calibration (its local API, or the meter in process)."""

    def cycle(self) -> int:
        """The number of the last metering cycle."""
        ...

    def measure(self, since: int, cycles: int) -> Phases:
        """Per-phase averages of ``cycles`` billed cycles after cycle ``since`` (waits for them)."""
        ...

    def apply(self, values: CalibrationValues, commit: bool, meta: Mapping[str, Any]) -> dict[str, Any]:
        """Write (and with ``commit`` store) the registers; CalibrationRejected when refused."""
        ...

    def abort(self) -> None:
        """Put the stored calibration back."""
        ...


class TestSource(Protocol):
    """The test bench's source: voltage and current per phase, one power factor ("1", "0.5L",
    "0.8C", "-1" for export), or the simulated grid."""

    def set(self, voltage_v: float, currents_a: tuple[float, float, float], power_factor: str) -> None: ...


@dataclass(frozen=True)
class ProcedureSettings:
    """Un (V), calibration current Ib (A), mains frequency (Hz), cycles averaged per point,
    cycles to settle after a change, the verification limit (%), the board's current scale k (the
    chip sees I/k: offsets are written in the chip's units), and who/what for the record."""

    nominal_voltage_v: float = 230.0
    current_a: float = 5.0
    frequency_hz: float = 50.0
    cycles: int = 4
    settle_cycles: int = 2
    verify_limit_pct: float = 0.1
    current_scale: float = 1.0
    operator: str = ""
    note: str = ""


@dataclass(frozen=True)
class CalibrationResult:
    """The committed registers, the meter's answer (record), and the verification points."""

    values: CalibrationValues
    record: Mapping[str, Any]
    points: tuple[Mapping[str, Any], ...]


def _settled(meter: MeterLink, settings: ProcedureSettings) -> Phases:
    return meter.measure(meter.cycle() + settings.settle_cycles, settings.cycles)


def calibrate(meter: MeterLink, source: TestSource, reference: ReferenceStandard, settings: ProcedureSettings,
              say: Callable[[str], None] = lambda _text: None) -> CalibrationResult:
    """Run the procedure (module docstring); CalibrationRejected with the reason when a result is
    implausible or the verification fails (the stored calibration is then back on the chip)."""
    un, ib = settings.nominal_voltage_v, settings.current_a
    try:
        values = CalibrationValues()
        meter.apply(values, False, {})
        say("offsets: no voltage, no current")
        source.set(0.0, (0.0, 0.0, 0.0), "1")
        no_voltage = _settled(meter, settings)
        source.set(un, (0.0, 0.0, 0.0), "1")
        no_current = _settled(meter, settings)
        values = cal.offsets_step(values, no_voltage, no_current, settings.current_scale)
        cal.check_plausible(values)
        meter.apply(values, False, {})
        say(f"gains: {un:g} V, {ib:g} A, PF 1")
        source.set(un, (ib, ib, ib), "1")
        values = cal.gains_step(values, _settled(meter, settings), reference.read())
        cal.check_plausible(values)
        meter.apply(values, False, {})
        say(f"phase: {un:g} V, {ib:g} A, PF 0.5 L")
        source.set(un, (ib, ib, ib), "0.5L")
        values = cal.phase_step(values, _settled(meter, settings), reference.read(), settings.frequency_hz)
        cal.check_plausible(values)
        meter.apply(values, False, {})
        points = tuple(_verify(meter, source, reference, settings, pf, say) for pf in ("1", "0.5L"))
        record = meter.apply(values, True, {"operator": settings.operator, "note": settings.note,
                                            "reference_instrument": reference.name,
                                            "uncertainty_pct": reference.uncertainty_pct, "points": list(points)})
    except CalibrationRejected:
        meter.abort()
        raise
    return CalibrationResult(values=values, record=record, points=points)


def _verify(meter: MeterLink, source: TestSource, reference: ReferenceStandard, settings: ProcedureSettings,
            pf: str, say: Callable[[str], None]) -> dict[str, Any]:
    ib = settings.current_a
    source.set(settings.nominal_voltage_v, (ib, ib, ib), pf)
    measured = _settled(meter, settings)
    ref = reference.read()
    errors = [100 * cal.energy_error(m.active_power_w, r.active_power_w) for m, r in zip(measured, ref, strict=True)]
    say(f"verify PF {pf}: errors " + ", ".join(f"{e:+.4f} %" for e in errors))
    worst = max(abs(e) for e in errors)
    if worst > settings.verify_limit_pct:
        raise CalibrationRejected(f"re-measurement at {ib:g} A PF {pf}: error {worst:.3f} % exceeds "
                                  f"{settings.verify_limit_pct:g} % — calibration not stored")
    return {"current_a": ib, "power_factor": pf, "errors_pct": errors}
