"""``meterctl calibrate`` and ``meterctl accuracy-test``: the bench procedures against a running meterd.

Both talk to the meter through its local API (``/calibration/...``; the meter keeps control of its
chip) and drive the test source: the simulated grid (``/sim/set``) on the simulated meter, or the
technician (a prompt per point) on a real bench. The reference standard is one of:

* ``sim``: the simulated grid's truth with its configured uncertainty (``/calibration/reference``);
* ``typed``: the technician types the reference's readings at each point (calibration only);
* ``csv``: the readings from a CSV file (``step,phase,voltage_v,current_a,active_power_w,
  reactive_power_var``; steps 1 = PF 1, 2 = PF 0.5 L, 3 and 4 = the re-measurement at PF 1 and
  0.5 L; phases L1, L2, L3) (calibration only);
* ``module:callable``: a lab's own adapter, a callable returning a
  :class:`~meterd.core.calibration.ReferenceStandard` (docs/calibration.md).
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from meterd.core.calibration import CalibrationRejected, CalibrationValues, PhaseReading
from meterd.services.accuracy_test import Nameplate, class_05s_plan, run_accuracy
from meterd.services.calibration_procedure import Phases, ProcedureSettings, calibrate

Call = Callable[[str, str, dict[str, Any] | None], dict[str, Any]]
"""``call(method, path, body)``: one API request (meterctl's), raising on a refusal."""


def add_commands(sub: Any) -> None:
    """The two sub-commands on meterctl's sub-parser set."""
    cal = sub.add_parser("calibrate", help="calibrate the metering IC (ATM90E36 AN procedure) and store it")
    cal.add_argument("--operator", required=True, help="who calibrates (stored with the calibration)")
    cal.add_argument("--reference", default="sim", help="sim, typed, csv or module:callable (a lab adapter)")
    cal.add_argument("--csv", help="the reference readings for --reference csv")
    cal.add_argument("--source", choices=["sim", "manual"], default=None,
                     help="sim: drive the simulated grid; manual: prompt the technician (default: sim with "
                          "--reference sim, else manual)")
    cal.add_argument("--current", type=float, default=None, help="calibration current (A; default In)")
    cal.add_argument("--cycles", type=int, default=4, help="meter cycles averaged per point")
    cal.add_argument("--note", default="")
    acc = sub.add_parser("accuracy-test", help="IEC 62053-22 class 0.5S accuracy run; HTML, PDF, JSON, CSV report")
    acc.add_argument("--reference", default="sim", help="sim or module:callable (a lab adapter with energy)")
    acc.add_argument("--source", choices=["sim", "manual"], default=None)
    acc.add_argument("--out", default="accuracy-report", help="directory for the report files")
    acc.add_argument("--resolution", type=float, default=0.02, help="resolution of each point (%%)")
    acc.add_argument("--loads", default="balanced,L1,L2,L3")
    acc.add_argument("--directions", default="import,export")


class ApiMeter:
    """The meter over its local API (both procedures' meter link)."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def view(self) -> dict[str, Any]:
        return self.call("GET", "/calibration", None)

    def cycle(self) -> int:
        return int(self.view()["cycle"])

    def measure(self, since: int, cycles: int) -> Phases:
        rows = self.call("POST", "/calibration/measure", {"since": since, "cycles": cycles})["phases"]
        return _phases(rows)

    def run_until(self, cycle: int) -> None:
        """Wait for cycle ``cycle``, a few cycles per request (each request answers within seconds)."""
        while (now := self.cycle()) < cycle:
            self.call("POST", "/calibration/measure", {"since": min(cycle, now + 5) - 1, "cycles": 1})

    def samples_since(self, since: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            chunk = self.call("POST", "/calibration/samples", {"since": since, "limit": 50_000})["samples"]
            out += chunk
            if len(chunk) < 50_000:
                return out
            since = int(chunk[-1]["cycle"])

    def apply(self, values: CalibrationValues, commit: bool, meta: Mapping[str, Any]) -> dict[str, Any]:
        return self.call("POST", "/calibration/apply", {"values": values.as_dict(), "commit": commit, **meta})

    def abort(self) -> None:
        self.call("POST", "/calibration/abort", {})


def _phases(rows: Sequence[Sequence[float]]) -> Phases:
    out = [PhaseReading(float(r[0]), float(r[1]), float(r[2]), float(r[3])) for r in rows]
    return (out[0], out[1], out[2])


class ApiSimSource:
    """The simulated grid as the test source."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def set(self, voltage_v: float, currents_a: tuple[float, float, float], power_factor: str) -> None:
        for phase, current in zip("ABC", currents_a, strict=True):
            self.call("POST", "/sim/set", {"phase": phase, "voltage_v": voltage_v, "current_a": current,
                                           "power_factor": power_factor})


class ManualSource:
    """A test source set by the technician (prompted, confirmed with Enter)."""

    def __init__(self, ask: Callable[[str], str] = input) -> None:
        self.ask = ask

    def set(self, voltage_v: float, currents_a: tuple[float, float, float], power_factor: str) -> None:
        self.ask(f"set the source to {voltage_v:g} V, currents {currents_a[0]:g}/{currents_a[1]:g}/"
                 f"{currents_a[2]:g} A, PF {power_factor}; Enter when stable: ")


class ApiSimReference:
    """The simulated reference standard of a simulated meter."""

    def __init__(self, call: Call) -> None:
        self.call = call
        info = call("POST", "/calibration/reference", {"times": []})
        self.name = str(info["name"])
        self.uncertainty_pct = float(info["uncertainty_pct"])

    def read(self) -> Phases:
        return _phases(self.call("POST", "/calibration/reference", {"times": []})["phases"])

    def energy_wh(self, times: Sequence[float]) -> list[tuple[float, float]]:
        rows = self.call("POST", "/calibration/reference", {"times": list(times)})["energy"]
        return [(float(r[1]), float(r[2])) for r in rows]


class _ValuesOnly:
    """A reference that reads values only (no energy counter)."""

    name = ""
    uncertainty_pct = 0.0

    def energy_wh(self, times: Sequence[float]) -> list[tuple[float, float]]:
        raise CalibrationRejected(f"{self.name} reads values only: the accuracy test needs an energy reference")


class TypedReference(_ValuesOnly):
    """Readings typed in by the technician at each point."""

    def __init__(self, name: str, uncertainty_pct: float, ask: Callable[[str], str] = input) -> None:
        self.name, self.uncertainty_pct, self.ask = name, uncertainty_pct, ask

    def read(self) -> Phases:
        out = []
        for phase in ("L1", "L2", "L3"):
            text = self.ask(f"reference {phase}: voltage V, current A, active W, reactive var: ")
            values = [float(v) for v in text.replace(",", " ").split()]
            if len(values) != 4:
                raise CalibrationRejected(f"{phase}: four numbers expected, got {text!r}")
            out.append(PhaseReading(*values))
        return (out[0], out[1], out[2])


class CsvReference(_ValuesOnly):
    """Readings from a CSV file, one step per reference read (module docstring)."""

    def __init__(self, path: Path, name: str, uncertainty_pct: float) -> None:
        self.name, self.uncertainty_pct = name, uncertainty_pct
        self.steps: dict[int, dict[str, PhaseReading]] = {}
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                self.steps.setdefault(int(row["step"]), {})[row["phase"].strip()] = PhaseReading(
                    float(row["voltage_v"]), float(row["current_a"]), float(row["active_power_w"]),
                    float(row["reactive_power_var"]))
        self.next = 1

    def read(self) -> Phases:
        step = self.steps.get(self.next)
        if step is None or set(step) != {"L1", "L2", "L3"}:
            raise CalibrationRejected(f"{self.name}: no complete step {self.next} (phases L1, L2, L3)")
        self.next += 1
        return (step["L1"], step["L2"], step["L3"])


def make_reference(spec: str, call: Call, csv_path: str | None = None,
                   ask: Callable[[str], str] = input) -> Any:
    """The reference standard named by ``--reference``."""
    if spec == "sim":
        return ApiSimReference(call)
    if spec == "typed":
        return TypedReference(ask("reference instrument (make, model, serial): "),
                              float(ask("its uncertainty (%): ")), ask)
    if spec == "csv":
        if not csv_path:
            raise CalibrationRejected("--reference csv needs --csv FILE")
        return CsvReference(Path(csv_path), f"readings from {Path(csv_path).name}", 0.0)
    module, _, attr = spec.partition(":")
    if not attr:
        raise CalibrationRejected(f"--reference {spec!r}: expected sim, typed, csv or module:callable")
    return getattr(importlib.import_module(module), attr)()


def run(args: argparse.Namespace, call: Call, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the sub-command ``args.command``; the meter's answer or the report summary."""
    meter = ApiMeter(call)
    view = meter.view()
    plate = Nameplate.from_mapping(view["nameplate"])
    reference = make_reference(args.reference, call, getattr(args, "csv", None))
    source_kind = args.source or ("sim" if args.reference == "sim" else "manual")
    source: Any = ApiSimSource(call) if source_kind == "sim" else ManualSource()
    if args.command == "calibrate":
        settings = ProcedureSettings(nominal_voltage_v=plate.nominal_voltage_v,
                                     current_a=args.current or plate.basic_current_a,
                                     frequency_hz=plate.frequency_hz, cycles=args.cycles,
                                     current_scale=float(view["nameplate"].get("current_scale", 1.0)),
                                     operator=args.operator, note=args.note)
        result = calibrate(meter, source, reference, settings, say)
        return {"calibration": result.record.get("record"), "verification": list(result.points)}
    from meterd.tools.accuracy_report import write_all  # matplotlib only for the report

    record = view.get("record") or {}
    info = {"serial": view["serial"], "calibration_id": record.get("calibration_id", ""),
            "calibration_date": record.get("utc", ""), "run_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            **view["nameplate"]}
    plan = class_05s_plan(plate, directions=args.directions.split(","), loads=args.loads.split(","))
    report = run_accuracy(meter, source, reference, plate, info, plan, args.resolution, say,
                          samples_kept=view.get("samples_kept"))
    paths = write_all(report, Path(args.out))
    return {"passed": report.passed, "max_abs_error_pct": report.max_abs_error_pct,
            "points": len(report.points), "files": {k: str(v) for k, v in paths.items()}}
