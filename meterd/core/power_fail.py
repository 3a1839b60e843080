"""Power cut detection and outage accounting (short vs long power failures).

A power cut is seen while running when the power-fail input asserts (supply supervisor, the
"last gasp" edge) or when every phase voltage drops below ``supply_loss_v`` (V) while no phase
carries more than ``cut_max_current_a`` (A) — voltage gone with current still flowing is the
"current without voltage" tamper, not a cut; it ends when the input is released and the voltage
condition clears (some phase back at ``supply_loss_v + restore_hysteresis_v`` or above).
If the meter itself stops, the outage is measured at the next start from the RTC: from the
persisted outage start (last-gasp time) or, failing that, from the last-alive time to the start
time. The last-alive time is the later of the persisted heartbeat and the newest energy
checkpoint found at start (:attr:`StartEvidence.checkpoint_utc`: every checkpoint is a time the
meter was alive, and one is forced to the medium every ``sync_period_s`` while energy flows); the
heartbeat is persisted only when neither is younger than ``heartbeat_period_s``
(:meth:`PowerFailMonitor.alive_stale`), so the start of an outage is known to within
``heartbeat_period_s`` (and a cycle) at no write of its own while the checkpoint carries it. A finer last-alive time kept where
writing is free (:meth:`PowerFailMonitor.seen_alive`: a RAM file that survives a crash of the
daemon, or the RTC's battery-backed RAM that also survives a power cut) narrows that estimate;
the failure carries the uncertainty of its start (s). Outages shorter than ``long_failure_s``
(default 180 s, EN 50160) are short power failures, the others long ones.

Counters: 0-0:96.7.21.255 power failures in any phase (every cut, short or long),
0-0:96.7.9.255 long power failures in any phase; the power-failure log 1-0:99.97.0.255 holds
every failure, short and long, with its end time and duration (s, 0-0:96.7.19.255); the
threshold between them is 0-0:96.7.20.255 (s). A clean stop (service shutdown) is not an outage.

Nor is a crash: when the meter stopped without a clean stop and without having seen a cut (no
last-gasp time), and the host shows it kept running all along (:class:`StartEvidence`: the RAM file
system beside the energy journal, which a reboot or a power cut empties, is the one of the previous
start), the supply was never lost; :meth:`PowerFailMonitor.start` returns a
:class:`SoftwareRestart` instead of a :class:`PowerFailure`, and no counter moves.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, replace

from meterd.core.errors import ConfigError
from meterd.core.reading import PHASES, Channel, Reading
from meterd.core.tamper import InputStates, Persistence, Qualifier

FAILURES_OBIS = "0.0.96.7.21.255"
LONG_FAILURES_OBIS = "0.0.96.7.9.255"
LONG_FAILURE_THRESHOLD_OBIS = "0.0.96.7.20.255"
STATE_KEY = "power"


@dataclass(frozen=True)
class PowerFailSettings:
    """Supply-loss threshold (V), restore hysteresis (V), largest current of a cut (A),
    long-failure boundary (s), heartbeat period (s), minimum durations of a cut and a restoration;
    ``phases``: the phases of the supply (L1 alone for 1P2W: a power failure is L1 down)."""

    supply_loss_v: float = 23.0
    restore_hysteresis_v: float = 4.6
    cut_max_current_a: float = 0.1
    long_failure_s: float = 180.0
    heartbeat_period_s: float = 1.0
    persistence: Persistence = Persistence(0.0, 0.0)
    phases: tuple[Channel, ...] = PHASES

    def __post_init__(self) -> None:
        for key in ("supply_loss_v", "cut_max_current_a", "long_failure_s", "heartbeat_period_s"):
            if getattr(self, key) <= 0:
                raise ConfigError("meterd.toml", f"power_fail.{key}", "must be > 0")
        if self.restore_hysteresis_v < 0:
            raise ConfigError("meterd.toml", "power_fail.restore_hysteresis_v", "must be >= 0")


def _iso(utc: _dt.datetime | None) -> str | None:
    return None if utc is None else utc.isoformat()


def _parse(text: object) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.fromisoformat(str(text))


@dataclass(frozen=True)
class PowerState:
    """What must survive a restart: last-alive time, open outage, clean-stop flag, counters."""

    last_alive_utc: _dt.datetime | None = None
    outage_start_utc: _dt.datetime | None = None
    clean_stop: bool = False
    failures: int = 0
    long_failures: int = 0
    long_failure_time_s: int = 0

    def to_record(self) -> dict[str, object]:
        """A JSON-friendly record for :class:`meterd.core.events.StateStore`."""
        return {"last_alive_utc": _iso(self.last_alive_utc), "outage_start_utc": _iso(self.outage_start_utc),
                "clean_stop": self.clean_stop, "failures": self.failures,
                "long_failures": self.long_failures, "long_failure_time_s": self.long_failure_time_s}

    @classmethod
    def from_record(cls, record: Mapping[str, object]) -> PowerState:
        """Inverse of :meth:`to_record`."""
        return cls(_parse(record.get("last_alive_utc")), _parse(record.get("outage_start_utc")),
                   bool(record.get("clean_stop", False)), int(str(record.get("failures", 0))),
                   int(str(record.get("long_failures", 0))), int(str(record.get("long_failure_time_s", 0))))


@dataclass(frozen=True)
class PowerFailure:
    """A finished outage: start/end UTC, duration (s), long or short, start estimated from heartbeat."""

    start_utc: _dt.datetime
    end_utc: _dt.datetime
    duration_s: int
    long: bool
    estimated_start: bool = False
    clock_suspect: bool = False
    start_uncertainty_s: float = 0.0


@dataclass(frozen=True)
class SoftwareRestart:
    """The meter stopped without a clean stop while the host, and so its supply, stayed up (a
    crash or kill of meterd, a systemd watchdog restart): last alive at ``last_alive_utc``, running
    again at ``start_utc``, ``down_s`` (s) later; the last-alive time is known to
    ``start_uncertainty_s`` (s)."""

    last_alive_utc: _dt.datetime
    start_utc: _dt.datetime
    down_s: int
    start_uncertainty_s: float


@dataclass(frozen=True)
class StartEvidence:
    """What the host shows at start about the time the meter was not running.

    ``host_kept``: True when the host kept running all along (the RAM file system that holds the
    energy journal is the one of the previous start: its boot token is unchanged; a reboot or a
    power cut empties it), False when it did not, None when nothing tells (no journal, first start).
    ``checkpoint_utc``: the time of the newest energy checkpoint restored at start (None: none), a
    time the meter was alive.
    """

    host_kept: bool | None = None
    checkpoint_utc: _dt.datetime | None = None


@dataclass(frozen=True)
class PowerUpdate:
    """Result of one evaluation: an outage began at ``down_utc``, an outage ended, state to save."""

    down_utc: _dt.datetime | None = None
    restored: PowerFailure | None = None
    save: bool = False


class PowerFailMonitor:
    """Detects power cuts while running and accounts outages across restarts."""

    def __init__(self, settings: PowerFailSettings | None = None, state: PowerState | None = None) -> None:
        self.settings = settings or PowerFailSettings()
        self._state = state or PowerState()
        self._qualifier = Qualifier(self.settings.persistence, self._state.outage_start_utc is not None)
        self._voltage_lost = False
        self._input_lost = False
        self._heartbeat_mono: float | None = None
        self._alive_resolution_s = self.settings.heartbeat_period_s

    @property
    def state(self) -> PowerState:
        """The state to persist."""
        return self._state

    @property
    def in_outage(self) -> bool:
        """True between a detected cut and its restoration."""
        return self._qualifier.active

    def _voltage_says_lost(self, reading: Reading) -> bool:
        s = self.settings
        limit_v = s.supply_loss_v + (s.restore_hysteresis_v if self.in_outage else 0.0)
        phases = [reading.phase(ch) for ch in s.phases]
        no_current = all(p.current_a <= s.cut_max_current_a for p in phases)
        return no_current and all(p.voltage_v < limit_v for p in phases)

    def update(self, utc: _dt.datetime, mono_s: float, reading: Reading | None,
               inputs: InputStates) -> PowerUpdate:
        """Evaluate one cycle (reading None: keep the last voltage verdict)."""
        if reading is not None:
            self._voltage_lost = self._voltage_says_lost(reading)
        self._input_lost = inputs.power_fail
        return self._evaluate(utc, mono_s)

    def input_changed(self, utc: _dt.datetime, mono_s: float, asserted: bool) -> PowerUpdate:
        """The power-fail input changed (immediate path, not waiting for the next cycle)."""
        self._input_lost = asserted
        return self._evaluate(utc, mono_s)

    def _evaluate(self, utc: _dt.datetime, mono_s: float) -> PowerUpdate:
        edge = self._qualifier.update(self._voltage_lost or self._input_lost, mono_s, utc)
        if edge is not None and edge.active:
            self._state = replace(self._state, outage_start_utc=edge.utc, last_alive_utc=edge.utc)
            return PowerUpdate(down_utc=edge.utc, save=True)
        if edge is not None:
            failure = self._finish(edge.utc, estimated=False)
            self._heartbeat_mono = mono_s
            return PowerUpdate(restored=failure, save=True)
        return PowerUpdate(save=self._heartbeat(utc, mono_s))

    def _heartbeat(self, utc: _dt.datetime, mono_s: float) -> bool:
        if self.in_outage:
            return False
        due = self._heartbeat_mono is None or mono_s - self._heartbeat_mono >= self.settings.heartbeat_period_s
        if due:
            self._heartbeat_mono = mono_s
            self._state = replace(self._state, last_alive_utc=utc)
        return due

    def _finish(self, end_utc: _dt.datetime, estimated: bool) -> PowerFailure:
        start_utc = self._state.outage_start_utc or self._state.last_alive_utc or end_utc
        raw_s = (end_utc - start_utc).total_seconds()
        duration_s = max(0, round(raw_s))
        long = duration_s >= self.settings.long_failure_s
        s = self._state
        self._state = replace(
            s, outage_start_utc=None, last_alive_utc=end_utc, clean_stop=False, failures=s.failures + 1,
            long_failures=s.long_failures + int(long),
            long_failure_time_s=s.long_failure_time_s + (duration_s if long else 0))
        return PowerFailure(start_utc, end_utc, duration_s, long, estimated, clock_suspect=raw_s < 0)

    def alive_stale(self, utc: _dt.datetime, saved_alive: _dt.datetime | None,
                    durable_alive: _dt.datetime | None) -> bool:
        """True when the heartbeat must be persisted at ``utc``: running (not in an outage) and
        neither the persisted last-alive time ``saved_alive`` nor ``durable_alive`` (the newest
        energy checkpoint forced to the medium) is younger than ``heartbeat_period_s``."""
        if self.in_outage:
            return False
        newest = max((t for t in (saved_alive, durable_alive) if t is not None), default=None)
        return newest is None or (utc - newest).total_seconds() >= self.settings.heartbeat_period_s

    def mark_alive(self, utc: _dt.datetime, mono_s: float) -> None:
        """The meter is alive at ``utc``: the heartbeat taken now (to be persisted by the caller)."""
        if not self.in_outage:
            self._heartbeat_mono = mono_s
            self._state = replace(self._state, last_alive_utc=utc)

    def seen_alive(self, utc: _dt.datetime, resolution_s: float) -> bool:
        """Before :meth:`start`: a last-alive time kept with a finer ``resolution_s`` (s) than the
        persisted heartbeat. Used when it is newer than the persisted one (and there is no
        last-gasp time, which is exact); returns True when it was taken."""
        s = self._state
        if s.outage_start_utc is not None or s.clean_stop or s.last_alive_utc is None or utc <= s.last_alive_utc:
            return False
        self._state = replace(s, last_alive_utc=utc)
        self._alive_resolution_s = resolution_s
        return True

    def start(self, now_utc: _dt.datetime, host_kept: bool | None = None) -> PowerFailure | SoftwareRestart | None:
        """At meter start: the outage that stopped the meter, or None (first start, clean stop).

        ``host_kept`` (:attr:`StartEvidence.host_kept`): the host kept running while the meter
        was down. Then a stop that was not clean, with no cut seen before it (no last-gasp time),
        was a crash of the meter, not a power cut: a :class:`SoftwareRestart`, counters unchanged.
        A cut the meter saw (power-fail input, voltage) stays an outage whatever the host shows.
        """
        s = self._state
        if s.outage_start_utc is None and (s.clean_stop or s.last_alive_utc is None):
            self._state = replace(s, clean_stop=False, last_alive_utc=now_utc)
            return None
        if s.outage_start_utc is None and host_kept and s.last_alive_utc is not None:
            last = s.last_alive_utc
            self._state = replace(s, clean_stop=False, last_alive_utc=now_utc)
            down_s = max(0, round((now_utc - last).total_seconds()))
            return SoftwareRestart(last, now_utc, down_s, self._alive_resolution_s)
        estimated = s.outage_start_utc is None
        failure = self._finish(now_utc, estimated)
        if estimated:
            failure = replace(failure, start_uncertainty_s=self._alive_resolution_s)
        self._qualifier = Qualifier(self.settings.persistence, False)
        return failure

    def stop(self, utc: _dt.datetime) -> None:
        """A clean stop (service shutdown): the next start is not an outage."""
        if not self.in_outage:
            self._state = replace(self._state, clean_stop=True, last_alive_utc=utc)
