"""The meter's wiring: which phases of the supply exist, from ``[meter] wiring``.

``"3P4W"`` (the default): three phases and neutral, L1-L3 supervised. ``"1P2W"``: a single-phase
two-wire supply, L1 and neutral; the features that watch phases (supervision, tamper, power
failure, power quality, the display and ``meterctl status``) take L1 alone, metering is unchanged
(the unused channels read 0). ``[power_quality] phases`` follows the wiring; it is still accepted
as the older spelling: ``phases = 1`` alone makes the meter 1P2W, and a value that contradicts
``[meter] wiring = "1P2W"`` is refused at start (:class:`~meterd.core.errors.ConfigError`).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterd.app.config import Config
from meterd.core.errors import ConfigError
from meterd.core.reading import PHASES, Channel


@dataclass(frozen=True)
class Wiring:
    """The resolved wiring: ``name`` ("3P4W" or "1P2W") and the phases that exist."""

    name: str
    phases: tuple[Channel, ...]

    @property
    def single_phase(self) -> bool:
        """True for 1P2W."""
        return len(self.phases) == 1


THREE_PHASE = Wiring("3P4W", PHASES)
SINGLE_PHASE = Wiring("1P2W", (Channel.L1,))


def meter_wiring(cfg: Config) -> Wiring:
    """The wiring of the configured meter; raises :class:`ConfigError` when ``[power_quality]
    phases`` contradicts ``[meter] wiring``."""
    pq_phases = int(getattr(cfg.features.get("power_quality"), "phases", 0))
    if cfg.meter.wiring == "1P2W":
        if pq_phases not in (0, 1):
            raise ConfigError(cfg.path, "power_quality.phases",
                              f'{pq_phases} contradicts [meter] wiring = "1P2W" (a single-phase supply); '
                              "remove power_quality.phases (it follows the wiring) or set it to 1")
        return SINGLE_PHASE
    return SINGLE_PHASE if pq_phases == 1 else THREE_PHASE
