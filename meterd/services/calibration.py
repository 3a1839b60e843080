"""The board's calibration in the running meter: loaded at start, kept on the chip, changed by a technician.

:class:`CalibrationService` owns the calibration of the metering IC:

* at start (:meth:`CalibrationService.start`) it loads the stored record
  (:class:`~meterd.core.calibration_record.CalibrationRecord`, verified: digest, format, this
  board's serial) and makes its registers the chip's configuration (the front end writes them at
  every start and every restart of the chip after a fault). A missing file (on a real meter, or a
  simulated board with analogue errors), a corrupted or a foreign one is a **metrology fault**:
  the status flag ``metrology_fault`` (alarm, LCD, status word) for as long as it lasts, the event
  "measurement system error" (IDIS 16) with the cause, and the chip keeps its reset values —
  never silently replaced by defaults that look like a calibration;
* per cycle (:meth:`on_cycle`) it keeps the recent readings (V, A, W, var per phase) and the total
  active energy registers (mWh) with the meter's time, which the calibration procedure averages
  and the accuracy test compares with the reference;
* :meth:`apply` writes new registers into the running chip (no reset: the energy the chip holds
  is kept), reads them back, and either keeps them as a trial (a calibration in progress, shown in
  :meth:`view`) or commits them: a new record (revision + 1, identifier, date, operator, reference
  instrument, uncertainty) stored atomically, the event "one or more parameters changed" (IDIS 47,
  with the calibration identifier), the fault cleared. Values outside plausible limits are refused
  with a message (:func:`~meterd.core.calibration.check_plausible`) and the previous calibration
  is written back.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from meterd.core import event_codes as ec
from meterd.core.calibration import CalibrationRejected, CalibrationValues, PhaseReading, check_plausible
from meterd.core.calibration_record import CalibrationDocumentError, CalibrationProblem, CalibrationRecord
from meterd.core.chip_health import METROLOGY_FAULT_FLAG
from meterd.core.clock import Clock
from meterd.core.reading import Reading

log = logging.getLogger("meterd.calibration")

SAMPLES_KEPT = 16_200
"""Cycles of readings kept for the procedure and the accuracy test: 4.5 h at 1 s, 1.31 MB.

The longest run the accuracy test reads in one piece is a point at a resolution finer than one
cycle's energy, which needs about 100 / resolution_pct cycles and half as many again when its
first try falls short (7 500 at the default 0.02 %, 15 000 at 0.01 %, the simulated reference
standard's uncertainty), or the no-load test (8.7 min at the PMM1221's 1000 imp/kWh, 230 V,
100 A). A run that would need more is refused before it starts
(:func:`meterd.services.accuracy_test.check_plan_fits`); the procedure averages at most 3600
cycles."""


class CalibrationFile(Protocol):
    """Where the record lives (:class:`meterd.store.calibration_store.CalibrationStore`)."""

    def load(self) -> CalibrationRecord: ...

    def save(self, record: CalibrationRecord) -> None: ...


class ChipCalibrationPort(Protocol):
    """The chip's calibration registers (:class:`meterd.bridge.chip_calibration.ChipCalibration`)."""

    def use(self, values: CalibrationValues) -> None: ...

    def write(self, values: CalibrationValues) -> CalibrationValues: ...

    def read_back(self) -> CalibrationValues: ...


EventSink = Callable[[int, _dt.datetime, Mapping[str, object]], object]


@dataclass(frozen=True)
class CycleSample:
    """One metering cycle as the calibration sees it: number, meter time (monotonic s), the
    per-phase readings, the total active import/export registers (mWh), whether it was billed."""

    cycle: int
    mono_s: float
    phases: tuple[PhaseReading, PhaseReading, PhaseReading]
    import_mwh: int
    export_mwh: int
    valid: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"cycle": self.cycle, "mono_s": self.mono_s, "import_mwh": self.import_mwh,
                "export_mwh": self.export_mwh, "valid": self.valid,
                "phases": [[p.voltage_v, p.current_a, p.active_power_w, p.reactive_power_var] for p in self.phases]}


class CycleRing:
    """The last ``capacity`` cycle samples in preallocated numpy columns (a ring, oldest overwritten).

    The columns are written once at construction, so the memory they take is committed at start
    and does not grow while the ring fills: cycle number (int64), meter time (s, float64), the
    per-phase V, A, W, var (float32, 3 × 4: about 7 significant digits, 6·10⁻⁸ relative, far
    below the 0.01 % the calibration procedure and the accuracy test resolve), the import/export
    registers (mWh, int64, exact) and the billed flag: 81 bytes a cycle, 1.31 MB for 16 200.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._cycle = np.full(capacity, -1, dtype=np.int64)
        self._mono = np.full(capacity, 0.0)
        self._phases = np.full((capacity, 3, 4), 0.0, dtype=np.float32)
        self._energy = np.full((capacity, 2), 0, dtype=np.int64)
        self._valid = np.full(capacity, False)
        self._next = 0  # slot of the next sample
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, sample: CycleSample) -> None:
        """Keep ``sample`` (cycle numbers rising), overwriting the oldest when full."""
        i = self._next
        self._cycle[i] = sample.cycle
        self._mono[i] = sample.mono_s
        self._phases[i] = [[p.voltage_v, p.current_a, p.active_power_w, p.reactive_power_var] for p in sample.phases]
        self._energy[i] = (sample.import_mwh, sample.export_mwh)
        self._valid[i] = sample.valid
        self._next = (i + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def _slots(self) -> np.ndarray:
        """Slots in time order, oldest first."""
        start = (self._next - self._count) % self.capacity
        return (start + np.arange(self._count)) % self.capacity

    def sample(self, slot: int) -> CycleSample:
        """The sample kept in ``slot``."""
        ph = self._phases[slot].tolist()
        phases = tuple(PhaseReading(*row) for row in ph)
        imp, exp = self._energy[slot].tolist()
        return CycleSample(int(self._cycle[slot]), float(self._mono[slot]), (phases[0], phases[1], phases[2]),
                           imp, exp, bool(self._valid[slot]))

    def since(self, cycle: int, limit: int, valid_only: bool = False) -> list[CycleSample]:
        """The kept samples numbered above ``cycle`` (oldest first, at most ``limit``; billed ones only
        with ``valid_only``)."""
        slots = self._slots()
        slots = slots[np.searchsorted(self._cycle[slots], cycle, side="right"):]
        if valid_only:
            slots = slots[self._valid[slots]]
        return [self.sample(int(i)) for i in slots[:limit]]

    def __iter__(self) -> Iterator[CycleSample]:
        return (self.sample(int(i)) for i in self._slots())


@dataclass(frozen=True)
class ApplyRequest:
    """New calibration registers with who/what/how sure; ``commit`` False keeps them as a trial."""

    values: CalibrationValues
    operator: str = ""
    reference_instrument: str = ""
    uncertainty_pct: float = 0.0
    note: str = ""
    points: tuple[Mapping[str, Any], ...] = ()
    commit: bool = True


class CalibrationService:
    """The calibration of one meter's chip (see the module docstring)."""

    def __init__(self, file: CalibrationFile, chip: ChipCalibrationPort, clock: Clock, serial: str,
                 record_event: EventSink, energy: Callable[[], tuple[int, int]], required: bool,
                 nameplate: Mapping[str, float] | None = None) -> None:
        self.file = file
        self.nameplate = dict(nameplate or {})
        self.chip = chip
        self.clock = clock
        self.serial = serial
        self.required = required
        self._record_event = record_event
        self._energy = energy
        self.record: CalibrationRecord | None = None
        self.problem: CalibrationProblem | None = None
        self.problem_text = ""
        self.trial: CalibrationValues | None = None
        self.samples = CycleRing(SAMPLES_KEPT)
        self.cycles = 0

    # ---- start ------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the stored calibration and make it the chip's configuration (before the chip
        starts); a problem becomes the metrology fault (see the module docstring)."""
        try:
            self.record = self.file.load()
        except CalibrationDocumentError as exc:
            if exc.problem is CalibrationProblem.MISSING and not self.required:
                log.info("no calibration file: an ideal simulated board runs on the reset values")
                return
            self._fault(exc.problem, str(exc))
            return
        self.chip.use(self.record.values)
        log.info("calibration %s (revision %d, %s) loaded", self.record.calibration_id, self.record.revision,
                 self.record.utc.date().isoformat())

    def _fault(self, problem: CalibrationProblem, text: str) -> None:
        self.problem, self.problem_text = problem, text
        log.error("metrology fault: calibration %s: %s", problem.value, text)
        self._record_event(ec.code("MEASUREMENT_SYSTEM_ERROR"), self.clock.utc(),
                           {"cause": f"calibration_{problem.value}", "text": text[:200]})

    @property
    def values(self) -> CalibrationValues:
        """The calibration the chip runs with now (trial, stored, or the reset values)."""
        if self.trial is not None:
            return self.trial
        return self.record.values if self.record is not None else CalibrationValues()

    def status_flags(self) -> set[str]:
        """``metrology_fault`` while the calibration is missing, corrupted or foreign."""
        return {METROLOGY_FAULT_FLAG} if self.problem is not None else set()

    # ---- cycles -----------------------------------------------------------------------------
    def on_cycle(self, reading: Reading) -> None:
        """Keep the cycle's readings and energy registers."""
        self.cycles += 1
        imp, exp = self._energy()
        phases = tuple(PhaseReading(p.voltage_v, p.current_a, p.active_power_w, p.reactive_power_var)
                       for p in reading.phases)
        self.samples.append(CycleSample(self.cycles, reading.mono_s, (phases[0], phases[1], phases[2]), imp, exp,
                                        METROLOGY_FAULT_FLAG not in reading.status))

    def samples_since(self, cycle: int, limit: int = SAMPLES_KEPT) -> list[CycleSample]:
        """The kept cycles numbered above ``cycle`` (oldest first, at most ``limit``)."""
        return self.samples.since(cycle, limit)

    def measure(self, since: int, cycles: int) -> tuple[PhaseReading, PhaseReading, PhaseReading] | None:
        """Per-phase averages of the first ``cycles`` billed cycles after cycle ``since``; None
        while fewer have run."""
        chosen = self.samples.since(since, cycles, valid_only=True)
        if len(chosen) < cycles or cycles <= 0:
            return None
        return average(chosen)

    # ---- changes ----------------------------------------------------------------------------
    def apply(self, request: ApplyRequest) -> CalibrationRecord | None:
        """Write, verify and (with ``commit``) store ``request.values``; returns the new record
        (None for a trial). CalibrationRejected with the reason; the previous values are back then."""
        check_plausible(request.values)
        previous = self.values
        try:
            read = self.chip.write(request.values)
            if read != request.values:
                raise CalibrationRejected(f"the chip reads back {read.as_dict()}, not the values written")
        except CalibrationRejected:
            try:
                self.chip.write(previous)
            except CalibrationRejected:
                log.exception("the previous calibration could not be written back")
            raise
        if not request.commit:
            self.trial = request.values
            return None
        if not request.operator or not request.reference_instrument:
            raise CalibrationRejected("a stored calibration needs the operator and the reference instrument")
        revision = (self.record.revision if self.record is not None else 0) + 1
        utc = self.clock.utc().astimezone(_dt.UTC).replace(microsecond=0)
        record = CalibrationRecord(
            calibration_id=f"{self.serial}-C{revision:03d}-{utc:%Y%m%dT%H%M%SZ}", revision=revision,
            serial=self.serial, utc=utc, operator=request.operator,
            reference_instrument=request.reference_instrument, uncertainty_pct=request.uncertainty_pct,
            values=request.values, note=request.note, points=request.points)
        self.file.save(record)
        self.record, self.trial = record, None
        self.problem, self.problem_text = None, ""
        self._record_event(ec.code("PARAMETERS_CHANGED"), utc, {"parameter": "calibration", "id": record.calibration_id,
                                                        "revision": revision})
        log.info("calibration %s stored and written to the chip", record.calibration_id)
        return record

    def abort(self) -> CalibrationValues:
        """End a trial: the stored calibration (or the reset values) back on the chip."""
        self.trial = None
        values = self.record.values if self.record is not None else CalibrationValues()
        self.chip.write(values)
        return values

    def view(self) -> dict[str, Any]:
        """State for ``GET /calibration``."""
        rec = self.record
        return {"state": ("fault" if self.problem is not None else "trial" if self.trial is not None
                          else "calibrated" if rec is not None else "uncalibrated"),
                "problem": self.problem.value if self.problem is not None else None,
                "problem_text": self.problem_text, "serial": self.serial, "cycle": self.cycles,
                "record": rec.as_dict() if rec is not None else None, "values": self.values.as_dict(),
                "nameplate": self.nameplate, "samples_kept": self.samples.capacity}


def average(samples: Sequence[CycleSample]) -> tuple[PhaseReading, PhaseReading, PhaseReading]:
    """Per-phase mean of the samples' readings."""
    n = len(samples)
    out = [PhaseReading(sum(s.phases[i].voltage_v for s in samples) / n,
                        sum(s.phases[i].current_a for s in samples) / n,
                        sum(s.phases[i].active_power_w for s in samples) / n,
                        sum(s.phases[i].reactive_power_var for s in samples) / n) for i in range(3)]
    return (out[0], out[1], out[2])
