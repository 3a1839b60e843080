"""Dip, swell, interruption (Urms(1/2), polyphase) and sustained under/over-voltage (10/12-cycle RMS).

Rules of IEC 61000-4-30 / EN 50160 as restated in power-quality.md §5.2–5.4 and §5.11:
a dip starts when any channel goes below the dip threshold and ends when every channel is at or
above threshold + hysteresis; a swell mirrors it; an interruption starts when all channels are below
the interruption threshold and ends when any is at or above threshold + hysteresis. Values of all
channels are processed in timestamp order; each condition uses the latest value of every channel.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass

from meterd.pq.rms import HalfCycleValue
from meterd.pq.settings import PqSettings
from meterd.pq.source import ROW_NAMES, VOLTAGE_ROWS

DIP, SWELL, INTERRUPTION = "dip", "swell", "interruption"
UNDERVOLTAGE, OVERVOLTAGE = "undervoltage", "overvoltage"


@dataclass(frozen=True)
class PqEvent:
    """A finished power-quality event.

    kind: "dip" / "swell" / "interruption" / "undervoltage" / "overvoltage".
    phases: phases (1…3) that crossed the threshold. start_utc: UTC of the start (ms resolution).
    duration_s: duration (s). residual_v: lowest RMS during a dip, interruption or under-voltage (V);
    max_v: highest RMS during a swell or over-voltage (V); worst_phase: the phase of that extreme.
    start_index / end_index: sample indices of the start and end stamps.
    """

    kind: str
    phases: tuple[int, ...]
    start_utc: _dt.datetime
    duration_s: float
    residual_v: float | None
    max_v: float | None
    worst_phase: int
    start_index: float
    end_index: float

    @property
    def is_long_interruption(self) -> bool:
        """EN 50160: an interruption longer than 180 s is long, otherwise short."""
        return self.kind == INTERRUPTION and self.duration_s > 180.0


def phase_of_row(row: int) -> int:
    """Phase number 1…3 of a voltage row of the waveform block."""
    return int(ROW_NAMES[row][1])


class _Rule:
    """One polyphase rule: start/end predicates over the latest value of every channel."""

    def __init__(self, kind: str, threshold_v: float, end_v: float, channels: int = len(VOLTAGE_ROWS)) -> None:
        self.kind = kind
        self.channels = channels  # voltage channels measured (3P4W: 3, 1P2W: 1)
        self.threshold_v = threshold_v
        self.end_v = end_v
        self.active = False
        self.start_index = 0.0
        self.extreme_v = 0.0
        self.extreme_row = 0
        self.rows: set[int] = set()

    def beyond(self, v: float) -> bool:
        return v > self.threshold_v if self.kind == SWELL else v < self.threshold_v

    def recovered(self, v: float) -> bool:
        return v <= self.end_v if self.kind == SWELL else v >= self.end_v

    def starts(self, latest: dict[int, float]) -> bool:
        if self.kind == INTERRUPTION:
            return len(latest) == self.channels and all(self.beyond(v) for v in latest.values())
        return any(self.beyond(v) for v in latest.values())

    def ends(self, latest: dict[int, float]) -> bool:
        if self.kind == INTERRUPTION:
            return any(self.recovered(v) for v in latest.values())
        return all(self.recovered(v) for v in latest.values())

    def more_extreme(self, v: float) -> bool:
        return v > self.extreme_v if self.kind == SWELL else v < self.extreme_v


class RmsEventDetector:
    """Dip, swell and interruption detection on merged Urms(1/2) values of the voltages measured
    (three on 3P4W, U1 alone on 1P2W: ``PqSettings.voltage_rows``)."""

    def __init__(self, settings: PqSettings, to_utc: Callable[[float], _dt.datetime], fs_hz: float) -> None:
        h = settings.hysteresis_pct
        self._rules = [
            _Rule(DIP, settings.volts(settings.dip_threshold_pct), settings.volts(settings.dip_threshold_pct + h)),
            _Rule(SWELL, settings.volts(settings.swell_threshold_pct),
                  settings.volts(settings.swell_threshold_pct - h)),
            _Rule(INTERRUPTION, settings.volts(settings.interruption_threshold_pct),
                  settings.volts(settings.interruption_threshold_pct + h), len(settings.voltage_rows)),
        ]
        self._latest: dict[int, float] = {}
        # a value within [quiet_low, quiet_high] while no event is in progress starts none: the
        # common case, decided without asking each rule
        self._quiet_low = max(self._rules[0].threshold_v, self._rules[2].threshold_v)
        self._quiet_high = self._rules[1].threshold_v
        self._active = 0  # rules in progress
        self._to_utc = to_utc
        self._fs = fs_hz
        self.closed: list[tuple[float, float]] = []  # (start, end) of finished events, for flags

    def feed(self, value: HalfCycleValue) -> list[PqEvent]:
        """Process one Urms(1/2) value (in timestamp order); return events that ended with it."""
        v = value.rms_v
        self._latest[value.row] = v
        if not self._active and self._quiet_low <= v <= self._quiet_high:
            return []
        out: list[PqEvent] = []
        for rule in self._rules:
            if rule.active:
                self._track(rule, value)
                if rule.ends(self._latest):
                    out.append(self._finish(rule, value.end_index))
            elif rule.beyond(value.rms_v) and rule.starts(self._latest):  # only the new value can start it
                self._begin(rule, value.end_index)
        return out

    def _begin(self, rule: _Rule, at: float) -> None:
        rule.active = True
        self._active += 1
        rule.start_index = at
        rule.rows = set()
        worst = min if rule.kind != SWELL else max
        rule.extreme_row = worst(self._latest, key=lambda r: self._latest[r])
        rule.extreme_v = self._latest[rule.extreme_row]
        rule.rows = {r for r, v in self._latest.items() if rule.beyond(v)}

    def _track(self, rule: _Rule, value: HalfCycleValue) -> None:
        if rule.more_extreme(value.rms_v):
            rule.extreme_v = value.rms_v
            rule.extreme_row = value.row
        if rule.beyond(value.rms_v):
            rule.rows.add(value.row)

    def _finish(self, rule: _Rule, at: float) -> PqEvent:
        rule.active = False
        self._active -= 1
        self.closed.append((rule.start_index, at))
        low = rule.kind != SWELL
        return PqEvent(
            kind=rule.kind,
            phases=tuple(sorted(phase_of_row(r) for r in rule.rows)),
            start_utc=self._to_utc(rule.start_index),
            duration_s=(at - rule.start_index) / self._fs,
            residual_v=rule.extreme_v if low else None,
            max_v=None if low else rule.extreme_v,
            worst_phase=phase_of_row(rule.extreme_row),
            start_index=rule.start_index,
            end_index=at,
        )

    def active_kinds(self) -> list[str]:
        """Kinds of the events in progress."""
        return [r.kind for r in self._rules if r.active]

    def touched(self, start: float, stop: float) -> bool:
        """True if any dip, swell or interruption was in progress during part of [start, stop]."""
        if any(r.active and r.start_index <= stop for r in self._rules):
            return True
        return any(s <= stop and e >= start for s, e in self.closed)

    def forget_before(self, index: float) -> None:
        """Drop finished intervals that ended before ``index`` (keeps memory small)."""
        self.closed = [(s, e) for s, e in self.closed if e >= index]


class SustainedDetector:
    """Under-/over-voltage per phase on 10/12-cycle RMS values with a minimum duration (§5.11)."""

    def __init__(self, settings: PqSettings, to_utc: Callable[[float], _dt.datetime], fs_hz: float) -> None:
        h = settings.hysteresis_pct
        self._under = (settings.volts(settings.undervoltage_threshold_pct),
                       settings.volts(settings.undervoltage_threshold_pct + h),
                       settings.undervoltage_min_duration_s)
        self._over = (settings.volts(settings.overvoltage_threshold_pct),
                      settings.volts(settings.overvoltage_threshold_pct - h),
                      settings.overvoltage_min_duration_s)
        self._state: dict[tuple[str, int], tuple[float, float]] = {}  # (kind,row) -> (start, extreme)
        self._to_utc = to_utc
        self._fs = fs_hz

    def feed(self, row: int, start_index: float, end_index: float, rms_v: float) -> list[PqEvent]:
        """Process one 10/12-cycle value of voltage ``row``; return events that ended."""
        out = []
        for kind, (thr, end_v, min_s) in ((UNDERVOLTAGE, self._under), (OVERVOLTAGE, self._over)):
            low = kind == UNDERVOLTAGE
            key = (kind, row)
            if key in self._state:
                start, ext = self._state[key]
                ext = min(ext, rms_v) if low else max(ext, rms_v)
                self._state[key] = (start, ext)
                if (rms_v >= end_v) if low else (rms_v <= end_v):
                    del self._state[key]
                    duration_s = (start_index - start) / self._fs
                    if duration_s >= min_s:
                        out.append(self._event(kind, row, start, start_index, ext))
            elif (rms_v < thr) if low else (rms_v > thr):
                self._state[key] = (start_index, rms_v)
        return out

    def _event(self, kind: str, row: int, start: float, end: float, ext: float) -> PqEvent:
        low = kind == UNDERVOLTAGE
        return PqEvent(kind, (phase_of_row(row),), self._to_utc(start), (end - start) / self._fs,
                       ext if low else None, None if low else ext, phase_of_row(row), start, end)
