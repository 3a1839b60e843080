"""Dual power source selection: automatic changeover between grid and solar supply.

Each source is judged from its voltage (V, for three phases the lowest phase RMS voltage):
it is *lost* once the voltage has stayed below ``loss_voltage_v`` for ``loss_duration_s`` (s) and
*healthy* again once it has stayed at or above ``restore_voltage_v`` for ``restore_duration_s``
(s); the gap between the two voltages is the hysteresis. The selector swaps to the other source
when the active one is lost and the other is healthy, and (with ``auto_return``) back to the
preferred source once it is healthy again. Every swap is returned as a :class:`SwapEvent`; the
owner drives the changeover contactors and logs the event. Pure: time is passed in (s, monotonic).

The solar source may instead be judged from a voltage-detect input (present / absent, already
debounced against contact bounce by its owner): absent counts as below ``loss_voltage_v`` and
present as at or above ``restore_voltage_v``, with the same minimum durations.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from meterd.core.errors import MeterError
from meterd.core.reading import Reading


class SupplyConfigError(MeterError, ValueError):
    """A changeover setting is out of range."""


class Source(enum.Enum):
    """A supply source; the value matches the changeover driver's source names."""

    GRID = "grid"
    SOLAR = "solar"

    @property
    def other(self) -> Source:
        """The other source."""
        return Source.SOLAR if self is Source.GRID else Source.GRID


class SwapReason(enum.Enum):
    """Why the selector acts."""

    LOSS = "active source lost"
    RETURN = "preferred source restored"
    BOTH_LOST = "both sources lost"


@dataclass(frozen=True)
class SupplyConfig:
    """Thresholds (V) and minimum durations (s). Defaults: 60 % and 85 % of Un = 230 V (the
    PMM1221 works down to 60 % Un), 2 s to declare a loss, 30 s to trust a return."""

    preferred: Source = Source.GRID
    loss_voltage_v: float = 138.0
    restore_voltage_v: float = 195.5
    loss_duration_s: float = 2.0
    restore_duration_s: float = 30.0
    auto_return: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.loss_voltage_v <= self.restore_voltage_v:
            raise SupplyConfigError("need 0 < loss_voltage_v <= restore_voltage_v")
        if self.loss_duration_s < 0 or self.restore_duration_s < 0:
            raise SupplyConfigError("durations must be >= 0 s")


@dataclass(frozen=True)
class SwapEvent:
    """A decision: switch from ``from_source`` to ``to_source`` (equal for BOTH_LOST, where
    nothing switches), with the voltages (V) and time (s, monotonic) that led to it."""

    from_source: Source
    to_source: Source
    reason: SwapReason
    mono_s: float
    grid_voltage_v: float
    solar_voltage_v: float | None
    solar_present: bool | None = None


class _Health:
    """Debounced healthy/lost judgement of one source."""

    def __init__(self) -> None:
        self.healthy: bool | None = None
        self._since: float | None = None

    def update(self, voltage_v: float, now: float, cfg: SupplyConfig) -> None:
        self.update_levels(voltage_v < cfg.loss_voltage_v, voltage_v >= cfg.restore_voltage_v, now, cfg)

    def update_levels(self, low: bool, good: bool, now: float, cfg: SupplyConfig) -> None:
        """``low``: below the loss level; ``good``: at or above the restore level."""
        if self.healthy is None:
            self.healthy = not low
            return
        if self.healthy:
            self._track(low, now, cfg.loss_duration_s)
        else:
            self._track(good, now, cfg.restore_duration_s)

    def _track(self, condition: bool, now: float, duration_s: float) -> None:
        if not condition:
            self._since = None
            return
        if self._since is None:
            self._since = now
        if now - self._since >= duration_s:
            self.healthy = not self.healthy
            self._since = None


class SupplySelector:
    """Chooses the active source from both source voltages, one sample per call."""

    def __init__(self, config: SupplyConfig | None = None, active: Source | None = None) -> None:
        self.config = config or SupplyConfig()
        self.active = active or self.config.preferred
        self._health = {Source.GRID: _Health(), Source.SOLAR: _Health()}
        self._both_lost_reported = False

    def healthy(self, source: Source) -> bool | None:
        """The debounced judgement of ``source`` (None before the first sample)."""
        return self._health[source].healthy

    def restore(self, active: Source) -> None:
        """Put back the source selected before a restart. When it is not the preferred one, the
        preferred source must first stay healthy for ``restore_duration_s`` before a return."""
        self.active = active
        if active is not self.config.preferred:
            self._health[self.config.preferred].healthy = False

    def update(self, grid_voltage_v: float, solar_voltage_v: float | None, now_mono: float,
               solar_present: bool | None = None) -> SwapEvent | None:
        """Feed one sample at ``now_mono`` (s): the grid voltage (V) and either the solar voltage
        (V) or, when ``solar_present`` is given, the solar voltage-detect input (the voltage is
        then ignored); returns a swap or None."""
        cfg = self.config
        self._health[Source.GRID].update(grid_voltage_v, now_mono, cfg)
        if solar_present is not None:
            self._health[Source.SOLAR].update_levels(not solar_present, solar_present, now_mono, cfg)
            solar_voltage_v = None
        else:
            self._health[Source.SOLAR].update(solar_voltage_v or 0.0, now_mono, cfg)
        target, reason = self._decide()
        if reason is None:
            return None
        event = SwapEvent(self.active, target, reason, now_mono, grid_voltage_v, solar_voltage_v,
                          solar_present)
        self.active = target
        return event

    def _decide(self) -> tuple[Source, SwapReason | None]:
        active, other = self.active, self.active.other
        if self._health[active].healthy:
            self._both_lost_reported = False
            preferred = self.config.preferred
            if self.config.auto_return and active is not preferred and self._health[preferred].healthy:
                return preferred, SwapReason.RETURN
            return active, None
        if self._health[other].healthy:
            self._both_lost_reported = False
            return other, SwapReason.LOSS
        if self._both_lost_reported:
            return active, None
        self._both_lost_reported = True
        return active, SwapReason.BOTH_LOST


def lowest_phase_voltage_v(reading: Reading) -> float:
    """The lowest of the three phase voltages of a reading (V): a three-phase source is only as
    good as its weakest phase."""
    return min(p.voltage_v for p in reading.phases)
