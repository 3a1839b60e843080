"""The IEC 62053-22 class 0.5S accuracy test run against a meter (``meterctl accuracy-test``).

:func:`class_05s_plan` lists the points: balanced load at PF 1 (1 %, 5 %, 100 % In, Imax), PF
0.5 L and 0.8 C (2 %, 10 %, 100 % In, Imax), and each phase alone with the three voltages
applied at PF 1 (5 %, 100 % In, Imax) and PF 0.5 L (10 %, 100 % In, Imax), all in import and
export. Limits (percentage error) of IEC 62053-22 class 0.5S: balanced PF 1 ±1.0 % below 5 % In,
else ±0.5 %; balanced PF 0.5 L / 0.8 C ±1.0 % below 10 % In, else ±0.6 %; one phase alone ±0.6 %
at PF 1 and ±1.0 % at PF 0.5 L.

Each point is measured on the meter's own total active energy register (import or export, mWh),
between two of its cycles at which the register stepped (the gating a lab does on a meter's pulse
output), against the reference standard's energy between the same two instants. The error's
resolution is ``min(one register count, the energy of one cycle) / reference energy``; every
point runs until it is at most ``resolution_pct`` (so the meter's configured meter constant and
register resolution decide how long a point lasts).

The same run tests starting (IEC 62053-22: the meter starts and keeps registering at the starting
current, PF 1, balanced; here the meter's configured starting current, which the report shows) and
running with no load (115 % Un, no current: at most one pulse of the test output, ``k`` imp/kWh,
in Δt = 600·10⁶ / (k·m·Un·Imax) minutes, m = 3 elements).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from meterd.core.calibration import CalibrationRejected, ReferenceStandard
from meterd.services.calibration_procedure import TestSource


class AccuracyMeterLink(Protocol):
    """The meter under test: cycle number, waiting for a cycle, the kept cycles, its nameplate."""

    def cycle(self) -> int: ...

    def run_until(self, cycle: int) -> None:
        """Return once cycle ``cycle`` has run."""
        ...

    def samples_since(self, since: int) -> list[dict[str, Any]]:
        """The kept cycles after ``since`` (``cycle``, ``mono_s``, ``import_mwh``, ``export_mwh``)."""
        ...


@dataclass(frozen=True)
class Nameplate:
    """Un (V), In and Imax (A), starting current (A), test output constant (imp/kWh), register
    resolution (mWh per count), cycle (s)."""

    nominal_voltage_v: float = 230.0
    basic_current_a: float = 5.0
    max_current_a: float = 100.0
    starting_current_a: float = 0.02
    led_imp_per_kwh: float = 1000.0
    energy_resolution_mwh: float = 1.0
    cycle_s: float = 1.0
    frequency_hz: float = 50.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Nameplate:
        """From ``GET /calibration``'s ``nameplate``."""
        return cls(**{k: float(v) for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AccuracyPoint:
    """One point: the loaded phases ("balanced", "L1", "L2", "L3"), current (A) and its share of
    In (%), power factor (as the source takes it, without the export sign), direction, limit (%)."""

    load: str
    current_a: float
    current_pct_in: float
    power_factor: str
    direction: str
    limit_pct: float

    @property
    def label(self) -> str:
        """Short name: load, current, PF, direction."""
        return f"{self.load} {self.current_pct_in:g}%In PF{self.power_factor} {self.direction}"

    def pf_value(self) -> float:
        """|power factor| as a number."""
        return float(self.power_factor.rstrip("LC"))


def class_05s_plan(plate: Nameplate, directions: Sequence[str] = ("import", "export"),
                   loads: Sequence[str] = ("balanced", "L1", "L2", "L3")) -> list[AccuracyPoint]:
    """The class 0.5S points of the module docstring (currents as % of In; Imax as its own)."""
    imax_pct = 100 * plate.max_current_a / plate.basic_current_a
    table: list[tuple[str, str, float, float]] = []
    for pct in (1, 5, 100, imax_pct):
        table.append(("balanced", "1", pct, 1.0 if pct < 5 else 0.5))
    for pf in ("0.5L", "0.8C"):
        for pct in (2, 10, 100, imax_pct):
            table.append(("balanced", pf, pct, 1.0 if pct < 10 else 0.6))
    for phase in ("L1", "L2", "L3"):
        for pct in (5, 100, imax_pct):
            table.append((phase, "1", pct, 0.6))
        for pct in (10, 100, imax_pct):
            table.append((phase, "0.5L", pct, 1.0))
    return [AccuracyPoint(load, plate.basic_current_a * pct / 100, pct, pf, direction, limit)
            for direction in directions for load, pf, pct, limit in table if load in loads]


def point_power_w(plate: Nameplate, point: AccuracyPoint) -> float:
    """Active power of a point (W)."""
    phases = 3 if point.load == "balanced" else 1
    return phases * plate.nominal_voltage_v * point.current_a * point.pf_value()


def point_cycles(plate: Nameplate, power_w: float, resolution_pct: float) -> int:
    """Cycles a point needs for ``resolution_pct``: the reference energy must reach
    ``min(count, energy per cycle) / resolution``, plus the wait for the first register step."""
    count_mwh = plate.energy_resolution_mwh
    cycle_mwh = power_w * plate.cycle_s / 3.6
    needed_mwh = min(count_mwh, cycle_mwh) / (resolution_pct / 100)
    return math.ceil((needed_mwh + 2 * count_mwh) / cycle_mwh) + 2


@dataclass(frozen=True)
class PointResult:
    """A measured point: meter and reference energy (Wh), error and its resolution (%), PASS."""

    point: AccuracyPoint
    meter_wh: float
    reference_wh: float
    error_pct: float
    resolution_pct: float
    duration_s: float
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON/CSV row."""
        return {**asdict(self.point), "label": self.point.label, "meter_wh": self.meter_wh,
                "reference_wh": self.reference_wh, "error_pct": self.error_pct,
                "resolution_pct": self.resolution_pct, "duration_s": self.duration_s,
                "result": "PASS" if self.passed else "FAIL"}


@dataclass(frozen=True)
class SpecialTest:
    """The starting-current or no-load test: condition, what the meter and the reference
    registered (Wh), the allowance, PASS."""

    name: str
    condition: str
    duration_s: float
    meter_wh: float
    reference_wh: float
    allowance: str
    passed: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {**asdict(self), "result": "PASS" if self.passed else "FAIL"}


@dataclass(frozen=True)
class AccuracyReport:
    """A whole run: the points, starting and no-load tests, the meter and calibration it ran on."""

    points: tuple[PointResult, ...]
    special: tuple[SpecialTest, ...]
    meter: Mapping[str, Any]
    reference: str
    reference_uncertainty_pct: float
    resolution_pct: float

    @property
    def passed(self) -> bool:
        """Every point and test passed."""
        return all(p.passed for p in self.points) and all(s.passed for s in self.special)

    @property
    def max_abs_error_pct(self) -> float:
        """The largest |error| over the points (%)."""
        return max((abs(p.error_pct) for p in self.points), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"passed": self.passed, "max_abs_error_pct": self.max_abs_error_pct, "meter": dict(self.meter),
                "reference": self.reference, "reference_uncertainty_pct": self.reference_uncertainty_pct,
                "resolution_pct": self.resolution_pct, "points": [p.as_dict() for p in self.points],
                "special": [s.as_dict() for s in self.special]}


def _apply(source: TestSource, plate: Nameplate, point: AccuracyPoint) -> None:
    currents = tuple(point.current_a if point.load in ("balanced", ph) else 0.0 for ph in ("L1", "L2", "L3"))
    pf = point.power_factor if point.direction == "import" else f"-{point.power_factor}"
    source.set(plate.nominal_voltage_v, (currents[0], currents[1], currents[2]), pf)


def _register(sample: Mapping[str, Any], direction: str) -> int:
    return int(sample["import_mwh" if direction == "import" else "export_mwh"])


def evaluate(samples: Sequence[Mapping[str, Any]], reference: ReferenceStandard, direction: str,
             plate: Nameplate, power_w: float) -> tuple[float, float, float, float]:
    """Meter energy (Wh), reference energy (Wh), error (%), resolution (%) between the first and
    the last cycle at which the register stepped; CalibrationRejected with fewer than two steps."""
    steps = [i for i in range(1, len(samples))
             if _register(samples[i], direction) > _register(samples[i - 1], direction)]
    if len(steps) < 2:
        raise CalibrationRejected("the energy register did not step twice: the point was too short")
    a, b = samples[steps[0]], samples[steps[-1]]
    ref = reference.energy_wh([float(a["mono_s"]), float(b["mono_s"])])
    column = 0 if direction == "import" else 1
    ref_wh = ref[1][column] - ref[0][column]
    meter_wh = (_register(b, direction) - _register(a, direction)) / 1000
    uncertainty_wh = min(plate.energy_resolution_mwh, power_w * plate.cycle_s / 3.6) / 1000
    return meter_wh, ref_wh, 100 * (meter_wh / ref_wh - 1), 100 * uncertainty_wh / ref_wh


def run_point(meter: AccuracyMeterLink, source: TestSource, reference: ReferenceStandard, plate: Nameplate,
              point: AccuracyPoint, resolution_pct: float, settle_cycles: int = 2) -> PointResult:
    """Measure one point until its resolution is reached."""
    _apply(source, plate, point)
    start = meter.cycle() + settle_cycles
    meter.run_until(start)
    power = point_power_w(plate, point)
    target = start + point_cycles(plate, power, resolution_pct)
    while True:
        meter.run_until(target)
        samples = meter.samples_since(start - 1)
        try:
            meter_wh, ref_wh, error, resolution = evaluate(samples, reference, point.direction, plate, power)
        except CalibrationRejected:
            resolution = math.inf
        if resolution <= resolution_pct:
            break
        target += max(10, (target - start) // 2)
    duration = float(samples[-1]["mono_s"]) - float(samples[0]["mono_s"])
    return PointResult(point, meter_wh, ref_wh, error, resolution, duration, abs(error) <= point.limit_pct)


def starting_test(meter: AccuracyMeterLink, source: TestSource, reference: ReferenceStandard,
                  plate: Nameplate) -> SpecialTest:
    """Balanced PF 1 at the starting current for 1.5 × the time of one register count (at least
    60 cycles): the meter must register (at least one count) and not over-register."""
    ist = plate.starting_current_a
    source.set(plate.nominal_voltage_v, (ist, ist, ist), "1")
    start = meter.cycle() + 2
    meter.run_until(start)
    meter.run_until(start + starting_cycles(plate))
    samples = meter.samples_since(start - 1)
    first, last = samples[0], samples[-1]
    meter_wh = (_register(last, "import") - _register(first, "import")) / 1000
    ref = reference.energy_wh([float(first["mono_s"]), float(last["mono_s"])])
    ref_wh = ref[1][0] - ref[0][0]
    count_wh = plate.energy_resolution_mwh / 1000
    passed = meter_wh >= count_wh and meter_wh <= ref_wh * 1.01 + count_wh
    duration = float(last["mono_s"]) - float(first["mono_s"])
    return SpecialTest("starting current", f"3 × {ist:g} A, {plate.nominal_voltage_v:g} V, PF 1, {duration:g} s",
                       duration, meter_wh, ref_wh, f"≥ {count_wh:g} Wh, ≤ ref. + 1 %", passed)


def no_load_test(meter: AccuracyMeterLink, source: TestSource, reference: ReferenceStandard,
                 plate: Nameplate) -> SpecialTest:
    """115 % Un, no current, for Δt = 600·10⁶/(k·3·Un·Imax) min: at most one test-output pulse
    (1/k kWh) of energy in either direction."""
    k = plate.led_imp_per_kwh
    source.set(1.15 * plate.nominal_voltage_v, (0.0, 0.0, 0.0), "1")
    start = meter.cycle() + 2
    meter.run_until(start)
    meter.run_until(start + no_load_cycles(plate))
    samples = meter.samples_since(start - 1)
    first, last = samples[0], samples[-1]
    meter_wh = sum(_register(last, d) - _register(first, d) for d in ("import", "export")) / 1000
    ref = reference.energy_wh([float(first["mono_s"]), float(last["mono_s"])])
    ref_wh = (ref[1][0] - ref[0][0]) + (ref[1][1] - ref[0][1])
    pulse_wh = 1000 / k
    return SpecialTest("no load", f"{1.15 * plate.nominal_voltage_v:g} V (115 % Un), I = 0, {no_load_minutes(plate):.2f} min",
                       float(last["mono_s"]) - float(first["mono_s"]), meter_wh, ref_wh,
                       f"< 1 pulse ({pulse_wh:g} Wh)", meter_wh < pulse_wh)


def starting_cycles(plate: Nameplate) -> int:
    """Cycles of the starting test: 1.5 × the time of one register count at the starting current
    (balanced, PF 1), at least 60."""
    power_w = 3 * plate.nominal_voltage_v * plate.starting_current_a
    return max(60, math.ceil(1.5 * plate.energy_resolution_mwh / (power_w * plate.cycle_s / 3.6)))


def _special_runs(plate: Nameplate) -> dict[str, int]:
    """Cycles of samples the starting and no-load tests read (their length and the 2 settling cycles)."""
    return {"starting current test": starting_cycles(plate) + 2, "no-load test": no_load_cycles(plate) + 2}


def no_load_minutes(plate: Nameplate) -> float:
    """Length of the no-load test: Δt = 600·10⁶ / (k·3·Un·Imax) minutes."""
    return 600e6 / (plate.led_imp_per_kwh * 3 * plate.nominal_voltage_v * plate.max_current_a)


def no_load_cycles(plate: Nameplate) -> int:
    """Cycles of the no-load test (:func:`no_load_minutes`)."""
    return math.ceil(no_load_minutes(plate) * 60 / plate.cycle_s)


def _longest_run(plate: Nameplate, points: Sequence[AccuracyPoint], resolution_pct: float) -> int:
    """Cycles of samples the longest read of a run needs: a point with one extension of half its
    length (as :func:`run_point` makes when the first try falls short), or a special test."""
    return max([3 * point_cycles(plate, point_power_w(plate, p), resolution_pct) // 2 + 2 for p in points]
               + list(_special_runs(plate).values()))


def check_plan_fits(plate: Nameplate, points: Sequence[AccuracyPoint], resolution_pct: float,
                    samples_kept: int) -> None:
    """CalibrationRejected, before anything runs, when a read of the run needs more cycles than the
    meter keeps (``samples_kept``, ``GET /calibration``), naming the finest resolution that fits."""
    longest = _longest_run(plate, points, resolution_pct)
    if longest <= samples_kept:
        return
    name, cycles = max(_special_runs(plate).items(), key=lambda item: item[1])
    if cycles > samples_kept:  # no resolution makes it fit
        raise CalibrationRejected(f"the {name} needs {cycles} cycles of samples and the meter keeps {samples_kept}")
    fine, coarse = resolution_pct, 100.0  # bisect on a log scale: coarse fits, fine does not
    for _ in range(40):
        middle = math.sqrt(fine * coarse)
        fine, coarse = (fine, middle) if _longest_run(plate, points, middle) <= samples_kept else (middle, coarse)
    raise CalibrationRejected(f"a point at {resolution_pct:g} % needs {longest} cycles of samples and the meter "
                              f"keeps {samples_kept}: ask for a resolution of {coarse:.3g} % or coarser")


def run_accuracy(meter: AccuracyMeterLink, source: TestSource, reference: ReferenceStandard, plate: Nameplate,
                 meter_info: Mapping[str, Any], points: Sequence[AccuracyPoint] | None = None,
                 resolution_pct: float = 0.02, say: Callable[[str], None] = lambda _t: None,
                 samples_kept: int | None = None) -> AccuracyReport:
    """The whole run: every point, then the starting and no-load tests; refused before it starts
    when a point or the no-load test needs more cycles than the meter keeps (``samples_kept``)."""
    points = list(points) if points is not None else class_05s_plan(plate)
    if samples_kept is not None:
        check_plan_fits(plate, points, resolution_pct, samples_kept)
    results = []
    for point in points:
        result = run_point(meter, source, reference, plate, point, resolution_pct)
        say(f"{point.label:<36} {result.error_pct:+.4f} % (±{result.resolution_pct:.4f}) "
            f"{'PASS' if result.passed else 'FAIL'}")
        results.append(result)
    special = (starting_test(meter, source, reference, plate), no_load_test(meter, source, reference, plate))
    for test in special:
        say(f"{test.name:<36} {test.meter_wh:.4f} Wh {'PASS' if test.passed else 'FAIL'}")
    return AccuracyReport(tuple(results), special, meter_info, reference.name, reference.uncertainty_pct,
                          resolution_pct)
