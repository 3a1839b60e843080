"""Demand limiter (COSEM interface class 71, OBIS 0-0:17.0.0.255) plus overload protection.

The limiter watches one monitored value each metering cycle:

* ``Monitored.ACTIVE_POWER``: total import active power (W), OBIS 1-0:1.7.0.255;
* ``Monitored.CURRENT``: the highest phase current (A), OBIS 1-0:31.7.0 / 51.7.0 / 71.7.0.

``threshold_active`` is ``threshold_normal`` or, while an emergency profile is active (its id in
the emergency group list, between its activation time and activation + duration),
``threshold_emergency``. A value above the active threshold for at least
``min_over_threshold_duration_s`` runs the over-threshold action (a local disconnect); once the
value has stayed at or below the threshold for ``min_under_threshold_duration_s`` *and*
``reconnect_delay_s`` has passed since the trip, the under-threshold action (a local reconnect)
runs. After ``max_reconnect_attempts`` automatic reconnections that end in another trip, the
limiter locks out until a person clears it (manual or remote reconnection); the attempt count
resets after ``attempt_reset_s`` without a trip.

The same trip/reconnect logic also carries:

* the STS maximum power limit (class 2 sub 0 token, W) via :meth:`Limiter.set_max_power_w`,
  compared with total active power whatever the monitored value is;
* the STS maximum phase power unbalance limit (class 2 sub 6 token, W) via
  :meth:`Limiter.set_max_phase_unbalance_w`, compared with the spread of the phase active powers
  (highest minus lowest of 1-0:21.7.0 / 41.7.0 / 61.7.0, W); like the power limit it must be
  exceeded for ``min_over_threshold_duration_s`` before it trips;
* per-phase over-current protection (A, ``phase_current_limit_a`` for ``overcurrent_duration_s``);
* overload protection on total active power (W, ``overload_power_w`` for ``overload_duration_s``).

Pure: time comes from ``Reading.mono_s`` (s, monotonic) and a UTC datetime passed in.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meterd.core.errors import MeterError
from meterd.core.reading import Reading


class LimiterConfigError(MeterError, ValueError):
    """A limiter setting is out of range."""


class Monitored(enum.Enum):
    """The monitored value (class 71 attribute 2); the value is its OBIS code."""

    ACTIVE_POWER = "1-0:1.7.0.255"
    CURRENT = "1-0:31.7.0.255"


class Cause(enum.Enum):
    """Why the limiter trips."""

    THRESHOLD = "threshold"
    MAX_POWER = "max_power"
    UNBALANCE = "unbalance"
    OVERCURRENT = "overcurrent"
    OVERLOAD = "overload"


class LimiterState(enum.Enum):
    """ARMED: supply may be on, watching; TRIPPED: waiting to reconnect; LOCKED_OUT: a person
    must reconnect."""

    ARMED = "armed"
    TRIPPED = "tripped"
    LOCKED_OUT = "locked_out"


class ActionKind(enum.Enum):
    """What the limiter asks its owner to do."""

    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    LOCKOUT = "lockout"


@dataclass(frozen=True)
class LimiterAction:
    """An intent from the limiter: kind, the cause, the value (W or A) and the threshold that
    applied (W or A), and the reading time (s, monotonic)."""

    kind: ActionKind
    cause: Cause
    value: float
    threshold: float
    mono_s: float


@dataclass(frozen=True)
class EmergencyProfile:
    """Class 71 attribute 7: profile id, activation time (UTC), duration (s)."""

    profile_id: int
    activation_utc: _dt.datetime
    duration_s: float

    def active_at(self, now_utc: _dt.datetime) -> bool:
        """True from activation to activation + duration."""
        end = self.activation_utc + _dt.timedelta(seconds=self.duration_s)
        return self.activation_utc <= now_utc < end


@dataclass(frozen=True)
class LimiterConfig:
    """Limiter and protection settings; units: W for power, A for current, s for durations.

    Defaults suit the PMM1221 (3 x 230 V, Imax 100 A): overload at 3 x 230 V x 100 A.
    """

    monitored: Monitored = Monitored.ACTIVE_POWER
    threshold_normal: float = 20_000.0
    threshold_emergency: float = 5_000.0
    min_over_threshold_duration_s: float = 60.0
    min_under_threshold_duration_s: float = 30.0
    reconnect_delay_s: float = 60.0
    max_reconnect_attempts: int = 3
    attempt_reset_s: float = 3600.0
    phase_current_limit_a: float = 100.0
    overcurrent_duration_s: float = 5.0
    overload_power_w: float = 69_000.0
    overload_duration_s: float = 10.0
    emergency_profile: EmergencyProfile | None = None
    emergency_group_ids: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        for name in ("threshold_normal", "threshold_emergency", "phase_current_limit_a",
                     "overload_power_w"):
            if getattr(self, name) <= 0:
                raise LimiterConfigError(f"{name} must be > 0")
        for name in ("min_over_threshold_duration_s", "min_under_threshold_duration_s",
                     "reconnect_delay_s", "attempt_reset_s", "overcurrent_duration_s",
                     "overload_duration_s"):
            if getattr(self, name) < 0:
                raise LimiterConfigError(f"{name} must be >= 0 s")
        if self.max_reconnect_attempts < 0:
            raise LimiterConfigError("max_reconnect_attempts must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (W, A, s; the emergency activation as ISO 8601 UTC)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _SCALARS}
        out["monitored"] = self.monitored.value
        profile = self.emergency_profile
        out["emergency_profile"] = None if profile is None else {
            "profile_id": profile.profile_id, "activation_utc": profile.activation_utc.isoformat(),
            "duration_s": profile.duration_s}
        out["emergency_group_ids"] = sorted(self.emergency_group_ids)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LimiterConfig:
        """Inverse of :meth:`to_dict`; LimiterConfigError when a field is missing or out of range."""
        try:
            values: dict[str, Any] = {name: type(getattr(_DEFAULTS, name))(data[name]) for name in _SCALARS}
            raw = data["emergency_profile"]
            profile = None if raw is None else EmergencyProfile(
                int(raw["profile_id"]), _dt.datetime.fromisoformat(str(raw["activation_utc"])),
                float(raw["duration_s"]))
            return cls(monitored=Monitored(data["monitored"]), emergency_profile=profile,
                       emergency_group_ids=frozenset(int(i) for i in data["emergency_group_ids"]), **values)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LimiterConfigError):
                raise
            raise LimiterConfigError(f"bad limiter settings record: {exc.__class__.__name__}") from None


_SCALARS = ("threshold_normal", "threshold_emergency", "min_over_threshold_duration_s",
            "min_under_threshold_duration_s", "reconnect_delay_s", "max_reconnect_attempts",
            "attempt_reset_s", "phase_current_limit_a", "overcurrent_duration_s", "overload_power_w",
            "overload_duration_s")
_DEFAULTS = LimiterConfig()


class Limiter:
    """Two-stage demand limiter with STS power limit and over-current/overload protection."""

    def __init__(self, config: LimiterConfig | None = None) -> None:
        self.config = config or LimiterConfig()
        self.state = LimiterState.ARMED
        self.attempts = 0
        self.max_power_w: float | None = None
        self.max_phase_unbalance_w: float | None = None
        self.trip_cause: Cause | None = None
        self._over_since: dict[Cause, float] = {}
        self._under_since: float | None = None
        self._trip_mono: float | None = None
        self._last_reconnect_mono: float | None = None

    # ------------------------------------------------------------------ settings

    def set_max_power_w(self, limit_w: float | None) -> None:
        """STS maximum power limit (W) from a class 2 sub 0 token; None or 0 removes it."""
        if limit_w is not None and limit_w < 0:
            raise LimiterConfigError("maximum power limit must be >= 0 W")
        self.max_power_w = limit_w or None
        self._over_since.pop(Cause.MAX_POWER, None)

    def set_max_phase_unbalance_w(self, limit_w: float | None) -> None:
        """STS maximum phase power unbalance limit (W) from a class 2 sub 6 token; None or 0
        removes it (as for the maximum power limit)."""
        if limit_w is not None and limit_w < 0:
            raise LimiterConfigError("maximum phase power unbalance limit must be >= 0 W")
        self.max_phase_unbalance_w = limit_w or None
        self._over_since.pop(Cause.UNBALANCE, None)

    def set_config(self, config: LimiterConfig) -> None:
        """Replace the settings (thresholds changed by DLMS); running timers restart."""
        self.config = config
        self._over_since.clear()

    def emergency_active(self, now_utc: _dt.datetime) -> bool:
        """Class 71 attribute 9 (emergency_profile_active)."""
        profile = self.config.emergency_profile
        return (profile is not None and profile.profile_id in self.config.emergency_group_ids
                and profile.active_at(now_utc))

    def threshold_active(self, now_utc: _dt.datetime) -> float:
        """Class 71 attribute 3: the threshold in force (W or A)."""
        if self.emergency_active(now_utc):
            return self.config.threshold_emergency
        return self.config.threshold_normal

    def clear(self) -> None:
        """A person reconnected (manual or remote): leave lockout/trip and forget attempts."""
        self.state = LimiterState.ARMED
        self.attempts = 0
        self.trip_cause = None
        self._over_since.clear()
        self._under_since = None
        self._trip_mono = None

    def restore(self, state: LimiterState, attempts: int, trip_cause: Cause | None,
                now_mono: float) -> None:
        """Put back a persisted state after a restart. The monotonic clock restarted, so a trip's
        reconnect delay and the attempt-reset time count again from ``now_mono`` (s); a lockout
        stays until a person clears it."""
        self.state = state
        self.attempts = max(0, attempts)
        tripped = state is not LimiterState.ARMED
        self.trip_cause = (trip_cause or Cause.THRESHOLD) if tripped else None
        self._over_since.clear()
        self._under_since = None
        self._trip_mono = now_mono if tripped else None
        self._last_reconnect_mono = now_mono if self.attempts else None

    # ------------------------------------------------------------------ per cycle

    def monitored_value(self, reading: Reading) -> float:
        """The monitored value of a reading: W (total active power) or A (highest phase)."""
        if self.config.monitored is Monitored.CURRENT:
            return max(p.current_a for p in reading.phases)
        return reading.total_active_power_w

    def limits(self, reading: Reading, now_utc: _dt.datetime) -> dict[Cause, tuple[float, float, float]]:
        """Per cause: (value, limit, minimum duration s) for this reading."""
        cfg = self.config
        power_w = reading.total_active_power_w
        out = {
            Cause.THRESHOLD: (self.monitored_value(reading), self.threshold_active(now_utc),
                              cfg.min_over_threshold_duration_s),
            Cause.OVERCURRENT: (max(p.current_a for p in reading.phases), cfg.phase_current_limit_a,
                                cfg.overcurrent_duration_s),
            Cause.OVERLOAD: (power_w, cfg.overload_power_w, cfg.overload_duration_s),
        }
        if self.max_power_w is not None:
            out[Cause.MAX_POWER] = (power_w, self.max_power_w, cfg.min_over_threshold_duration_s)
        if self.max_phase_unbalance_w is not None:
            out[Cause.UNBALANCE] = (phase_unbalance_w(reading), self.max_phase_unbalance_w,
                                    cfg.min_over_threshold_duration_s)
        return out

    def evaluate(self, reading: Reading, now_utc: _dt.datetime) -> list[LimiterAction]:
        """Feed one reading; returns the actions to carry out (usually none)."""
        now = reading.mono_s
        limits = self.limits(reading, now_utc)
        over = self._update_over(limits, now)
        if self.state is LimiterState.ARMED:
            return self._armed(limits, over, now)
        if self.state is LimiterState.TRIPPED:
            return self._tripped(limits, now)
        return []

    def _update_over(self, limits: dict[Cause, tuple[float, float, float]], now: float) -> list[Cause]:
        """Track how long each cause has been over its limit; return causes past their duration."""
        due = []
        for cause, (value, limit, duration_s) in limits.items():
            if value > limit:
                since = self._over_since.setdefault(cause, now)
                if now - since >= duration_s:
                    due.append(cause)
            else:
                self._over_since.pop(cause, None)
        for cause in list(self._over_since):
            if cause not in limits:
                del self._over_since[cause]
        return due

    def _armed(self, limits: dict[Cause, tuple[float, float, float]], due: list[Cause],
               now: float) -> list[LimiterAction]:
        self._maybe_reset_attempts(now)
        if not due:
            return []
        cause = _most_severe(due)
        value, limit, _ = limits[cause]
        self.trip_cause = cause
        self._trip_mono = now
        self._under_since = None
        actions = [LimiterAction(ActionKind.DISCONNECT, cause, value, limit, now)]
        if self.attempts >= self.config.max_reconnect_attempts:
            self.state = LimiterState.LOCKED_OUT
            actions.append(LimiterAction(ActionKind.LOCKOUT, cause, value, limit, now))
        else:
            self.state = LimiterState.TRIPPED
        return actions

    def _tripped(self, limits: dict[Cause, tuple[float, float, float]], now: float) -> list[LimiterAction]:
        if any(value > limit for value, limit, _ in limits.values()):
            self._under_since = None
            return []
        if self._under_since is None:
            self._under_since = now
        assert self._trip_mono is not None and self.trip_cause is not None
        under_long_enough = now - self._under_since >= self.config.min_under_threshold_duration_s
        delay_over = now - self._trip_mono >= self.config.reconnect_delay_s
        if not (under_long_enough and delay_over):
            return []
        cause = self.trip_cause
        value, limit, _ = limits.get(cause, (0.0, 0.0, 0.0))
        self.state = LimiterState.ARMED
        self.attempts += 1
        self._last_reconnect_mono = now
        self.trip_cause = None
        self._over_since.clear()
        return [LimiterAction(ActionKind.RECONNECT, cause, value, limit, now)]

    def _maybe_reset_attempts(self, now: float) -> None:
        last = self._last_reconnect_mono
        if self.attempts and last is not None and now - last >= self.config.attempt_reset_s:
            self.attempts = 0


_SEVERITY = (Cause.OVERCURRENT, Cause.OVERLOAD, Cause.MAX_POWER, Cause.UNBALANCE, Cause.THRESHOLD)


def phase_unbalance_w(reading: Reading) -> float:
    """Phase power unbalance (W): the highest minus the lowest phase active power."""
    powers = [p.active_power_w for p in reading.phases]
    return max(powers) - min(powers)


def _most_severe(causes: list[Cause]) -> Cause:
    return min(causes, key=_SEVERITY.index)
