"""The supervised metering IC: pure checks of each cycle, the fault state, and its record.

Every cycle the front end hands the core its :class:`~meterd.core.reading.Reading` and the raw
:class:`ChipFacts` it saw (how the reads answered, the start registers, the configuration
checksums, whether the read failed). :func:`assess` turns them into a :class:`ChipCheck`:

* **faults** (:class:`MetrologyFault`): the cycle's energy is not billed, the chip is
  re-initialised. ``no_response`` (the health reads all 0xFFFF or all 0x0000: MISO stuck, chip
  unpowered), ``configuration_lost`` (a start register is not at "operate": a reset or a
  brown-out), ``checksum`` (a CSx differs from the configured values, or a CSxErr status bit),
  ``spi_error`` (a transfer failed or LastSPIData never confirmed it), ``implausible`` (values
  no working chip gives: voltage above ``1.5 × Un``, current above ``Imax × (1 + headroom)``,
  ``|P| > U·I·(1 + tolerance) + margin``, frequency outside 45–65 Hz with voltage present,
  every voltage and the frequency exactly 0 while the supply is good), ``start_failed`` (the
  chip could not be started);
* **warnings** (:class:`MetrologyWarning`): billed, flagged. ``spi_recovered`` (reads repaired
  through LastSPIData), ``late_cycle`` (more than ``late_factor × cycle_s`` since the previous
  read), ``energy_saturated`` (an energy register was full: the read is a lower bound),
  ``saturation_risk`` (the time since the previous read × the worst-case power reaches
  ``saturation_fraction`` of a register's capacity: the read came late enough that a register
  may have filled), ``current_full_scale`` (a current above the register's range).

Saturation (:mod:`meterd.core.register_range`): a cycle with ``energy_saturated`` or
``saturation_risk`` opens a saturation episode (one "measurement system error" event, IDIS 16,
per episode; it ends at the first cycle with neither). A saturated read is billed as the lower
bound it is, and the shortfall — the mean active power of the previous and this read × the time
between them, less the active energy the read returned (Wh) — joins the estimate of energy not
measured in :class:`FaultTotals` (served over DLMS 0-0:96.50.2), so no energy is lost silently.

:class:`ChipSupervisor` keeps the fault state across cycles: the start of a fault, the restart
back-off (1, 2, 4… cycles, at most ``max_backoff_s``) and, when it ends, its duration and an
estimate of the active energy not measured (the last good ``|P|`` × duration, less what the chip
delivered when it resumed; Wh). Totals survive restarts with the energy checkpoint.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from meterd.core import register_range
from meterd.core.errors import MeterError
from meterd.core.reading import PHASES, Channel, Reading

METROLOGY_FAULT_FLAG = "metrology_fault"
"""The status flag set while the chip is in fault (status word, ``meterctl status``, LCD)."""
METROLOGY_WARNING_FLAG = "metrology_warning"
"""The status flag of a cycle billed with a warning (recovered reads, late cycle, saturation)."""


class ChipReadError(MeterError):
    """The front end could not start or read the chip (the hardware error's text as message)."""


class MetrologyFault(enum.Enum):
    """Why a cycle's energy is not billed."""

    NO_RESPONSE = "no_response"
    CONFIGURATION_LOST = "configuration_lost"
    CHECKSUM = "checksum"
    SPI_ERROR = "spi_error"
    IMPLAUSIBLE = "implausible"
    START_FAILED = "start_failed"


class MetrologyWarning(enum.Enum):
    """A cycle billed, but flagged."""

    SPI_RECOVERED = "spi_recovered"
    LATE_CYCLE = "late_cycle"
    ENERGY_SATURATED = "energy_saturated"
    SATURATION_RISK = "saturation_risk"
    CURRENT_FULL_SCALE = "current_full_scale"


SATURATION_WARNINGS = frozenset({MetrologyWarning.ENERGY_SATURATED, MetrologyWarning.SATURATION_RISK})
"""The warnings of a saturation episode."""


class Recovery(enum.Enum):
    """What an attempt to bring the chip back found: it runs with our configuration again, it
    does not answer (left alone: no restart tried), or a restart was tried and failed."""

    RUNNING = "running"
    SILENT = "silent"
    FAILED = "failed"


class ReadPattern(enum.Enum):
    """How the chip's health reads (start registers, checksums) answered."""

    NORMAL = "normal"
    ALL_ONES = "all_ones"
    ALL_ZEROS = "all_zeros"


@dataclass(frozen=True)
class ChipFacts:
    """What the front end saw of the chip in one cycle, besides the reading.

    ``pattern``: the health reads' pattern; ``start_ok``: every start register at "operate";
    ``checksums_ok``: every CSx equal to the checksum of the configured values;
    ``recovered_reads``: reads repaired through LastSPIData this cycle; ``saturated``: energy
    registers found full; ``current_full_scale``: a phase current read at the top of its register
    (the current is above the measuring range: |P| ≤ U·I cannot be checked, the energy registers
    still count); ``register_capacity_wh``: the energy one full energy register holds (Wh, 0 when
    the front end does not say); ``error``: why the read failed ("" when it did not).
    """

    pattern: ReadPattern = ReadPattern.NORMAL
    start_ok: bool = True
    checksums_ok: bool = True
    recovered_reads: int = 0
    saturated: int = 0
    current_full_scale: bool = False
    register_capacity_wh: float = 0.0
    error: str = ""

    @classmethod
    def failed(cls, error: str) -> ChipFacts:
        """Facts of a read that raised."""
        return cls(error=error)


@dataclass(frozen=True)
class ChipLimits:
    """Physical bounds of a working chip on this meter.

    nominal_voltage_v (Un, V), max_current_a (Imax, A), current_headroom (fraction above Imax
    still plausible), power_tolerance (fraction) and power_margin_w (W) of ``|P| ≤ U·I``,
    frequency range (Hz), cycle_s (s, the metering cycle) and late_factor (a read later than
    ``late_factor × cycle_s`` after the previous one is late); saturation_fraction (a read is at
    risk of saturation when the time since the previous one × :attr:`worst_case_power_w` reaches
    this fraction of a register's capacity); stall_factor (a read more than ``stall_factor ×
    cycle_s`` after the previous one ends a stalled metering loop, recorded as an event even when
    the chip kept the energy).
    """

    nominal_voltage_v: float = 230.0
    max_current_a: float = 100.0
    current_headroom: float = 0.5
    power_tolerance: float = 0.05
    power_margin_w: float = 5.0
    frequency_min_hz: float = 45.0
    frequency_max_hz: float = 65.0
    cycle_s: float = 1.0
    late_factor: float = 2.0
    saturation_fraction: float = 0.5
    stall_factor: float = 10.0

    @property
    def worst_case_power_w(self) -> float:
        """The largest power the meter is rated to see (W): 3 × 1.15 Un × 1.2 Imax."""
        return register_range.worst_case_power_w(self.nominal_voltage_v, self.max_current_a)

    @property
    def max_voltage_v(self) -> float:
        """The highest plausible phase voltage (V): 1.5 × Un."""
        return 1.5 * self.nominal_voltage_v

    @property
    def current_limit_a(self) -> float:
        """The highest plausible phase current (A)."""
        return self.max_current_a * (1.0 + self.current_headroom)


@dataclass(frozen=True)
class ChipCheck:
    """The verdict on one cycle: faults (not billed) and warnings (billed), with a short why;
    ``saturation_started``: this cycle opened a saturation episode (record the event);
    ``shortfall_wh``: the active energy (Wh) a saturated read is estimated to have missed;
    ``stalled_s``: the time (s) since the previous read when it was more than
    ``stall_factor × cycle_s`` and opened a stall episode (a stalled metering loop: record the
    event; later late reads are the same episode until one comes on time), else 0."""

    faults: frozenset[MetrologyFault] = frozenset()
    warnings: frozenset[MetrologyWarning] = frozenset()
    detail: str = ""
    saturation_started: bool = False
    shortfall_wh: float = 0.0
    stalled_s: float = 0.0

    @property
    def billable(self) -> bool:
        """True when the cycle's energy may be added to the registers."""
        return not self.faults


def implausible(reading: Reading, limits: ChipLimits, supply_good: bool, check_power: bool = True) -> str:
    """Why ``reading`` is physically impossible for a working chip, or "" when it is not
    (``check_power`` False: the current is at full scale, |P| ≤ U·I is not checked)."""
    voltages = [reading.phase(ch).voltage_v for ch in PHASES]
    for ch in PHASES:
        p = reading.phase(ch)
        if p.voltage_v > limits.max_voltage_v:
            return f"{ch.value} voltage {p.voltage_v:.1f} V above {limits.max_voltage_v:.0f} V"
        if p.current_a > limits.current_limit_a:
            return f"{ch.value} current {p.current_a:.1f} A above {limits.current_limit_a:.0f} A"
        bound = p.voltage_v * p.current_a * (1.0 + limits.power_tolerance) + limits.power_margin_w
        if check_power and abs(p.active_power_w) > bound:
            return f"{ch.value} |P| {abs(p.active_power_w):.0f} W above U·I {bound:.0f} W"
    live = max(voltages) > 0.5 * limits.nominal_voltage_v
    if live and not limits.frequency_min_hz <= reading.frequency_hz <= limits.frequency_max_hz:
        return f"frequency {reading.frequency_hz:.2f} Hz outside {limits.frequency_min_hz:g}–{limits.frequency_max_hz:g} Hz"
    if supply_good and not any(voltages) and reading.frequency_hz == 0.0:
        return "every voltage and the frequency read 0 while the supply is good"
    return ""


def assess(reading: Reading | None, facts: ChipFacts, limits: ChipLimits, supply_good: bool,
           interval_s: float | None = None) -> ChipCheck:
    """The verdict on one cycle (see the module docstring); ``interval_s`` is the time (s) since
    the previous good read, None for the first."""
    faults: set[MetrologyFault] = set()
    warnings: set[MetrologyWarning] = set()
    why: list[str] = []
    if facts.error:
        faults.add(MetrologyFault.SPI_ERROR)
        why.append(facts.error)
    if facts.pattern is not ReadPattern.NORMAL:
        faults.add(MetrologyFault.NO_RESPONSE)
        why.append(f"health reads {facts.pattern.value}")
    elif not facts.error:
        if not facts.start_ok:
            faults.add(MetrologyFault.CONFIGURATION_LOST)
            why.append("start registers not at operate")
        if not facts.checksums_ok or (reading is not None
                                      and any(s.startswith("checksum_error") for s in reading.status)):
            faults.add(MetrologyFault.CHECKSUM)
            why.append("configuration checksum mismatch")
        if reading is not None and not faults:
            reason = implausible(reading, limits, supply_good, check_power=not facts.current_full_scale)
            if reason:
                faults.add(MetrologyFault.IMPLAUSIBLE)
                why.append(reason)
    if facts.recovered_reads:
        warnings.add(MetrologyWarning.SPI_RECOVERED)
    if facts.saturated:
        warnings.add(MetrologyWarning.ENERGY_SATURATED)
    if facts.current_full_scale and not faults:
        warnings.add(MetrologyWarning.CURRENT_FULL_SCALE)
    if interval_s is not None and interval_s > limits.late_factor * limits.cycle_s:
        warnings.add(MetrologyWarning.LATE_CYCLE)
        why.append(f"read {interval_s:.1f} s after the previous one")
        if register_range.late_risk(interval_s, limits.worst_case_power_w, facts.register_capacity_wh,
                                    limits.saturation_fraction):
            warnings.add(MetrologyWarning.SATURATION_RISK)
            why.append(f"{interval_s:.1f} s at up to {limits.worst_case_power_w / 1000:.1f} kW may fill "
                       f"{limits.saturation_fraction:.0%} of an energy register ({facts.register_capacity_wh:g} Wh)")
    if facts.saturated:
        why.append(f"{facts.saturated} energy register(s) read full")
    stalled = interval_s if interval_s is not None and interval_s > limits.stall_factor * limits.cycle_s else 0.0
    return ChipCheck(frozenset(faults), frozenset(warnings), "; ".join(why), stalled_s=stalled)


@dataclass(frozen=True)
class FaultEpisode:
    """One ended metrology fault: start (monotonic s), duration (s), kinds, and the active
    energy estimated not measured during it (Wh)."""

    start_mono_s: float
    duration_s: float
    kinds: frozenset[MetrologyFault]
    energy_not_measured_wh: float


@dataclass
class FaultTotals:
    """What the meter publishes of its metrology faults: count, total duration (s), total
    estimated active energy not measured (Wh), and the last episode's duration (s) and estimate."""

    count: int = 0
    duration_s: float = 0.0
    energy_not_measured_wh: float = 0.0
    last_duration_s: float = 0.0
    last_energy_wh: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        """JSON-able copy for the energy checkpoint."""
        return {"count": self.count, "duration_s": self.duration_s, "energy_wh": self.energy_not_measured_wh,
                "last_duration_s": self.last_duration_s, "last_energy_wh": self.last_energy_wh}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`state_dict` output."""
        self.count = int(state.get("count", 0))
        self.duration_s = float(state.get("duration_s", 0.0))
        self.energy_not_measured_wh = float(state.get("energy_wh", 0.0))
        self.last_duration_s = float(state.get("last_duration_s", 0.0))
        self.last_energy_wh = float(state.get("last_energy_wh", 0.0))


@dataclass
class ChipSupervisor:
    """The chip's fault state across cycles (pure: the caller gives the monotonic time, s).

    :meth:`check` judges a cycle and opens a fault; :meth:`fault_seen` opens one without a
    reading (start-up, a failed restart); :meth:`restart_due` / :meth:`restart_failed` pace full
    restarts with back-off; :meth:`resumed` ends the fault with the energy the chip delivered
    at its first good read (mWh) and returns the ended :class:`FaultEpisode`.
    """

    limits: ChipLimits = field(default_factory=ChipLimits)
    max_backoff_s: float = 4.0
    totals: FaultTotals = field(default_factory=FaultTotals)
    fault_since: float | None = None
    kinds: frozenset[MetrologyFault] = frozenset()
    last_good_power_w: float = 0.0
    last_good_mono: float | None = None
    saturation_open: bool = False
    stall_open: bool = False
    _backoff_s: float = 0.0
    _next_restart: float = 0.0

    @property
    def in_fault(self) -> bool:
        """True from a fault's first cycle until the chip resumed."""
        return self.fault_since is not None

    def check(self, now_s: float, reading: Reading | None, facts: ChipFacts, supply_good: bool) -> ChipCheck:
        """Judge one read; a fault opens (or continues) the fault state; a stall opens an episode
        that the next read on time ends (``stalled_s`` is kept only on the read that opens it)."""
        interval = None if self.last_good_mono is None or self.in_fault else now_s - self.last_good_mono
        result = assess(reading, facts, self.limits, supply_good, interval)
        if interval is not None and interval <= self.limits.late_factor * self.limits.cycle_s:
            self.stall_open = False
        if result.stalled_s:
            if self.stall_open:
                result = replace(result, stalled_s=0.0)
            self.stall_open = True
        if result.faults:
            self.fault_seen(now_s, result.faults)
        elif reading is not None:
            result = self._saturation(result, reading, interval)
            self.last_good_mono = now_s
            self.last_good_power_w = abs(reading.total_active_power_w)
        return result

    def _saturation(self, result: ChipCheck, reading: Reading, interval_s: float | None) -> ChipCheck:
        """Open or close the saturation episode; a saturated read's estimated shortfall (Wh)
        joins the energy not measured."""
        saturating = bool(result.warnings & SATURATION_WARNINGS)
        started = saturating and not self.saturation_open
        self.saturation_open = saturating
        shortfall = 0.0
        if MetrologyWarning.ENERGY_SATURATED in result.warnings and interval_s is not None:
            mean_w = (self.last_good_power_w + abs(reading.total_active_power_w)) / 2
            shortfall = max(mean_w * interval_s / 3600.0 - active_delivered_mwh(reading) / 1000.0, 0.0)
            self.totals.energy_not_measured_wh += shortfall
        if not started and not shortfall:
            return result
        return replace(result, saturation_started=started, shortfall_wh=shortfall)

    def fault_seen(self, now_s: float, kinds: frozenset[MetrologyFault]) -> bool:
        """Note a fault seen at ``now_s``; True when it opens a new episode (dated from the last
        good read, whose successor is the first the fault spoilt)."""
        self.kinds = self.kinds | kinds
        if self.fault_since is not None:
            return False
        # the energy since the last good read is what the fault hides: the episode starts there
        self.fault_since = now_s if self.last_good_mono is None else min(self.last_good_mono, now_s)
        self._backoff_s = 0.0
        self._next_restart = now_s
        return True

    def restart_due(self, now_s: float) -> bool:
        """True when a full restart of the chip may be tried now."""
        return self.in_fault and now_s >= self._next_restart

    def restart_failed(self, now_s: float) -> None:
        """A full restart failed: the next one waits twice as long (1, 2, 4… s, at most
        ``max_backoff_s``)."""
        self._backoff_s = min(max(2 * self._backoff_s, self.limits.cycle_s), self.max_backoff_s)
        self._next_restart = now_s + self._backoff_s

    def resumed(self, now_s: float, delivered_mwh: int) -> FaultEpisode | None:
        """The chip reads good again at ``now_s``; ``delivered_mwh`` is the active energy its
        first good read returned (counted while the fault hid it). Ends and records the episode."""
        if self.fault_since is None:
            return None
        duration = max(now_s - self.fault_since, 0.0)
        estimate = max(self.last_good_power_w * duration / 3600.0 - delivered_mwh / 1000.0, 0.0)
        episode = FaultEpisode(self.fault_since, duration, self.kinds, estimate)
        t = self.totals
        t.count += 1
        t.duration_s += duration
        t.energy_not_measured_wh += estimate
        t.last_duration_s, t.last_energy_wh = duration, estimate
        self.fault_since, self.kinds = None, frozenset()
        self.last_good_mono = now_s
        return episode

    def flags(self, check: ChipCheck | None) -> set[str]:
        """Status flags now: the fault flag while in fault, the warning flag for ``check``."""
        flags = {METROLOGY_FAULT_FLAG} if self.in_fault else set()
        if check is not None and check.warnings:
            flags.add(METROLOGY_WARNING_FLAG)
        return flags


def active_delivered_mwh(reading: Reading) -> int:
    """Total active energy (import + export, mWh) a reading carries."""
    total = reading.energy.get(Channel.TOTAL)
    return 0 if total is None else total.active_import + total.active_export
