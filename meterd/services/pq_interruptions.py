"""The PQ interruption records: from the waveform, and from the power-fail evidence while the meter was unpowered.

A supply interruption the waveform analysis measured (IEC 61000-4-30, all voltages below the
interruption threshold) is recorded by :class:`~meterd.services.power_quality.PowerQualityService`
in the power-quality log and kept here too (start, end, duration). An interruption that stopped
the meter itself cannot be measured: the supervision knows it from its power-fail evidence (the
last-gasp save or the last-alive time against the RTC at the next start: the
:class:`~meterd.core.power_fail.PowerFailure` whose record also goes to the power-failure log
1-0:99.97.0.255). :meth:`InterruptionLog.from_power_failure` enters it once: as a short (≤ 180 s)
or long interruption (EN 50160) in the power-quality log at its start, with its end, duration
and ``source = "power_fail"`` (and whether its start was estimated from the last-alive time),
unless a measured interruption overlaps it (the meter saw it itself) or it was entered already.
Both kinds count in the EN 50160 interruption statistics of the week they started in.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from meterd.core import event_codes as ec
from meterd.core.ports import EventSink
from meterd.core.power_fail import PowerFailure
from meterd.pq.events import PqEvent

LONG_INTERRUPTION_S = 180.0
WAVEFORM = "waveform"
POWER_FAIL = "power_fail"


@dataclass(frozen=True)
class InterruptionRecord:
    """One supply interruption: start/end UTC, duration (s); ``source`` "waveform" (measured) or
    "power_fail" (the meter was unpowered: from the power-fail/RTC evidence); ``estimated_start``
    when the start comes from the last-alive time, known to ``start_uncertainty_s`` (s)."""

    start_utc: _dt.datetime
    end_utc: _dt.datetime
    duration_s: float
    source: str
    estimated_start: bool = False
    start_uncertainty_s: float = 0.0

    @property
    def long(self) -> bool:
        """Longer than 180 s (EN 50160 long interruption)."""
        return self.duration_s > LONG_INTERRUPTION_S


class InterruptionStore(Protocol):
    """Durable interruption records (:class:`meterd.store.pq_store.SqlitePqWeekStore`)."""

    def add_interruption(self, record: InterruptionRecord) -> None:
        """Store one record (one transaction)."""
        ...

    def load_interruptions(self, since_utc: _dt.datetime) -> list[InterruptionRecord]:
        """The records that ended after ``since_utc``, oldest first."""
        ...


class InterruptionLog:
    """The interruption records of the last ``keep_days`` days (RAM and store)."""

    def __init__(self, store: InterruptionStore | None, events: EventSink | None, now_utc: _dt.datetime,
                 keep_days: int = 400) -> None:
        self._store = store
        self._events = events
        self._keep = _dt.timedelta(days=keep_days)
        self.records: list[InterruptionRecord] = (store.load_interruptions(now_utc - self._keep)
                                                  if store is not None else [])

    def _add(self, record: InterruptionRecord) -> None:
        if self._store is not None:
            self._store.add_interruption(record)
        self.records.append(record)
        self.records = [r for r in self.records if r.end_utc > record.end_utc - self._keep]

    def from_waveform(self, event: PqEvent) -> None:
        """Keep a measured interruption (the event itself is logged by the PQ service)."""
        end = event.start_utc + _dt.timedelta(seconds=event.duration_s)
        self._add(InterruptionRecord(event.start_utc, end, event.duration_s, WAVEFORM))

    def from_power_failure(self, failure: PowerFailure) -> InterruptionRecord | None:
        """Enter the outage that stopped the meter; None when it is known already (measured or entered)."""
        if any(r.start_utc < failure.end_utc and r.end_utc > failure.start_utc for r in self.records
               if r.source == WAVEFORM) or any(r.source == POWER_FAIL and r.start_utc == failure.start_utc
                                               for r in self.records):
            return None
        record = InterruptionRecord(failure.start_utc, failure.end_utc, float(failure.duration_s), POWER_FAIL,
                                    failure.estimated_start, failure.start_uncertainty_s)
        self._add(record)
        if self._events is not None:
            self._events.record(ec.code("LONG_INTERRUPTION" if record.long else "SHORT_INTERRUPTION"),
                                record.start_utc, {
                                    "kind": "interruption", "phases": "1,2,3", "duration_s": record.duration_s,
                                    "end_utc": record.end_utc.isoformat(), "source": POWER_FAIL,
                                    "estimated_start": record.estimated_start,
                                    "start_uncertainty_s": record.start_uncertainty_s})
        return record

    def counts(self, start_utc: _dt.datetime, end_utc: _dt.datetime) -> tuple[int, int]:
        """(short, long) interruptions that started in [start_utc, end_utc)."""
        inside = [r for r in self.records if start_utc <= r.start_utc < end_utc]
        return sum(1 for r in inside if not r.long), sum(1 for r in inside if r.long)

    def recent(self, limit: int = 20) -> Sequence[InterruptionRecord]:
        """The newest ``limit`` records, oldest first."""
        return self.records[-limit:]
