"""PQ event thresholds changed at run time (DLMS management association, local API): validated, persisted, applied, evented.

:class:`PqThresholds` holds the settings in force: the configured
:class:`~meterd.pq.settings.PqSettings` with the values written at run time on top (persisted,
so they survive a restart). :meth:`PqThresholds.change` builds the new settings from the
changes and lets :class:`PqSettings` validate them: an invalid value (out of range, a dip
threshold plus hysteresis not below 100 %, an unknown name) raises
:class:`~meterd.pq.errors.PqConfigError` and nothing changes. A valid change is persisted first,
then handed to the running monitor (:meth:`meterd.pq.monitor.PqMonitor.apply_settings`: from the
next block with no event in progress, without a restart) and recorded as event 186
(``PQ_THRESHOLDS_CHANGED``, power-quality and standard logs) with each ``name old -> new`` and
who wrote it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meterd.core import event_codes as ec
from meterd.core.ports import EventSink
from meterd.pq.errors import PqConfigError
from meterd.pq.settings import PqSettings

log = logging.getLogger(__name__)

WRITABLE: tuple[str, ...] = (
    "udin_v", "dip_threshold_pct", "swell_threshold_pct", "interruption_threshold_pct", "hysteresis_pct",
    "undervoltage_threshold_pct", "overvoltage_threshold_pct", "undervoltage_min_duration_s",
    "overvoltage_min_duration_s")
"""The :class:`PqSettings` fields that may change at run time (V, % of Udin, s)."""


@dataclass(frozen=True)
class ThresholdChange:
    """One setting changed: field name, old and new value."""

    name: str
    old: float
    new: float

    def text(self) -> str:
        """``name old -> new``."""
        return f"{self.name} {self.old:g} -> {self.new:g}"


class ThresholdStore(Protocol):
    """Durable run-time thresholds (:class:`meterd.store.pq_store.SqlitePqWeekStore`)."""

    def save_thresholds(self, values: Mapping[str, float]) -> None:
        """Store the written values (name → value), replacing those of the same names (one transaction)."""
        ...

    def load_thresholds(self) -> dict[str, float]:
        """Every stored value (name → value)."""
        ...


class PqThresholds:
    """The PQ settings in force and their run-time changes."""

    def __init__(self, configured: PqSettings, store: ThresholdStore | None, events: EventSink | None,
                 apply: Callable[[PqSettings], None] | None = None) -> None:
        self._store = store
        self._events = events
        self.apply = apply  # hands new settings to the running analysis (PqMonitor.apply_settings)
        self.settings = configured
        saved: dict[str, Any] = {k: v for k, v in (store.load_thresholds() if store is not None else {}).items() if k in WRITABLE}
        if saved:
            try:
                self.settings = dataclasses.replace(configured, **saved)
            except PqConfigError as exc:  # e.g. the configuration changed under them: the configuration wins
                log.warning("stored PQ thresholds ignored: %s", exc)

    def values(self) -> dict[str, float]:
        """The writable settings in force (name → value)."""
        return {name: float(getattr(self.settings, name)) for name in WRITABLE}

    def change(self, changes: Mapping[str, float], utc: _dt.datetime, source: str) -> list[ThresholdChange]:
        """Apply ``changes`` (name → value) written by ``source`` ("dlms", "api"); returns what changed.

        Raises PqConfigError (nothing changed) for an unknown name, a value that is not a finite
        number or settings :class:`PqSettings` refuses.
        """
        unknown = sorted(set(changes) - set(WRITABLE))
        if unknown:
            raise PqConfigError(f"{', '.join(unknown)}: not a writable PQ setting (writable: {', '.join(WRITABLE)})")
        for name, value in changes.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
                    or value in (float("inf"), float("-inf")):
                raise PqConfigError(f"{name}: must be a finite number")
        floats: dict[str, Any] = {k: float(v) for k, v in changes.items()}
        new = dataclasses.replace(self.settings, **floats)  # PqSettings validates
        done = [ThresholdChange(k, float(getattr(self.settings, k)), float(getattr(new, k)))
                for k in WRITABLE if k in changes and getattr(self.settings, k) != getattr(new, k)]
        if not done:
            return []
        if self._store is not None:
            self._store.save_thresholds({c.name: c.new for c in done})
        if self.apply is not None:
            self.apply(new)
        self.settings = new
        if self._events is not None:
            self._events.record(ec.code("PQ_THRESHOLDS_CHANGED"), utc,
                                {"source": source, "changes": "; ".join(c.text() for c in done)})
        log.info("PQ thresholds changed by %s: %s", source, "; ".join(c.text() for c in done))
        return done
