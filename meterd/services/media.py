"""Automatic fallback between communication media: which medium carries the traffic to the head end.

The media are configured in priority order (e.g. ``ethernet`` then ``cellular``). Each has a
health check that proves the head end reachable *through that medium* (the I/O shell,
:mod:`meterd.runtime.media_uplink`, opens a TCP connection to the head end bound to the medium's
interface or source address); "interface up" is not enough. This module is the decision logic
only: it says which checks are due, takes their results and picks the current medium. Time is
the meter's monotonic clock, so it is tested with a manual clock.

Rules (:class:`MediaPolicy`, all in s):

* the current medium is checked every ``check_period_s``; after a failed check it is checked
  again after ``recheck_s``; ``confirm_failures`` failed checks in a row make it unhealthy
  (MEDIUM_UNHEALTHY, code 176). The other media are checked every ``standby_check_s``, and at
  once when the current one has just failed and their health is not known;
* when the current medium is unhealthy the meter switches to the healthy medium of highest
  priority (MEDIUM_SWITCHED, 175, with from/to/reason). From the moment the head end becomes
  unreachable this takes at most :meth:`MediaPolicy.switch_bound_s`: one period, the rechecks,
  each check's connect time-out, and one check of the fallback when its health was not known;
* a medium of higher priority than the current one is switched back to only after it passed
  every check for ``switch_back_s`` (hysteresis: a flapping Ethernet does not drag the traffic
  to and fro);
* no healthy medium at all: NO_MEDIUM (178) once; the uplink then says "down" and pushes wait.
  A medium that passes a check again after being unhealthy: MEDIUM_HEALTHY (177);
* a medium whose link just came up (the cellular bearer) is checked at once
  (:meth:`MediaSelector.check_soon`), not at its standby period;
* a send that fails on the current medium asks for an immediate check of it
  (:meth:`MediaSelector.send_failed`); it is not itself counted as a failed check (the head end
  may have refused the session, not the network).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meterd.core import event_codes
from meterd.core.ports import EventSink, TimeSource

log = logging.getLogger("meterd.media")


@dataclass(frozen=True)
class MediaPolicy:
    """Timing of health checks and switches (s); see the module docstring."""

    check_period_s: float = 10.0
    recheck_s: float = 2.0
    confirm_failures: int = 2
    connect_timeout_s: float = 3.0
    standby_check_s: float = 300.0
    switch_back_s: float = 600.0

    def __post_init__(self) -> None:
        if self.confirm_failures < 1:
            raise ValueError("confirm_failures must be at least 1")
        if min(self.check_period_s, self.recheck_s, self.connect_timeout_s, self.standby_check_s) <= 0:
            raise ValueError("check periods and the connect time-out must be positive")
        if self.switch_back_s < 0:
            raise ValueError("switch_back_s must not be negative")

    def switch_bound_s(self) -> float:
        """The longest time (s) from the head end becoming unreachable over the current medium to
        the switch: until the next check, the rechecks, every check's time-out, and one check of
        a fallback whose health was not known."""
        checks = self.confirm_failures + 1
        return self.check_period_s + (self.confirm_failures - 1) * self.recheck_s + checks * self.connect_timeout_s


@dataclass
class MediumHealth:
    """What is known of one medium: ``healthy`` (None: never checked), failures in a row, since
    when it passes every check (monotonic s), the next check (monotonic s), a check running, the
    last failure's reason, and counters."""

    name: str
    healthy: bool | None = None
    fail_streak: int = 0
    ok_since_mono: float | None = None
    next_check_mono: float = 0.0
    checking: bool = False
    reason: str = ""
    checks: int = 0
    failures: int = 0


@dataclass(frozen=True)
class MediaState:
    """The current medium, whether it reaches the head end, and why not."""

    current: str
    up: bool
    reason: str = ""


class MediaSelector:
    """Picks the medium for traffic to the head end (module docstring). ``media``: names in
    priority order (first = preferred)."""

    def __init__(self, media: Sequence[str], policy: MediaPolicy, clock: TimeSource,
                 events: EventSink | None) -> None:
        if not media:
            raise ValueError("at least one medium is needed")
        if len(set(media)) != len(media):
            raise ValueError(f"media listed twice: {list(media)}")
        self.policy = policy
        self._clock = clock
        self._events = events
        now = clock.mono()
        self._media = {name: MediumHealth(name, next_check_mono=now) for name in media}
        self._order = tuple(media)
        self._current = self._order[0]
        self._none_recorded = False
        self.switches = 0

    @property
    def media(self) -> tuple[str, ...]:
        """The media in priority order."""
        return self._order

    def health(self, name: str) -> MediumHealth:
        """What is known of medium ``name``."""
        return self._media[name]

    def state(self) -> MediaState:
        """The current medium and whether it reaches the head end."""
        cur = self._media[self._current]
        if cur.healthy:
            return MediaState(self._current, True)
        if cur.healthy is None:
            return MediaState(self._current, False, f"{self._current}: not checked yet")
        return MediaState(self._current, False, f"no medium reaches the head end ({self._summary()})")

    def _summary(self) -> str:
        return "; ".join(f"{m.name}: {m.reason or 'not checked'}" for m in self._media.values())

    def due(self) -> list[str]:
        """Media whose health check is due now (none already running); the caller runs each and
        reports through :meth:`started` and :meth:`result`."""
        now = self._clock.mono()
        return [m.name for m in self._media.values() if not m.checking and m.next_check_mono <= now]

    def started(self, name: str) -> None:
        """A check of ``name`` is running."""
        self._media[name].checking = True

    def send_failed(self, name: str) -> None:
        """A send over ``name`` failed: check it now."""
        self.check_soon(name)

    def check_soon(self, name: str) -> None:
        """Check ``name`` now rather than at its period (e.g. its link just came up)."""
        medium = self._media.get(name)
        if medium is not None and not medium.checking:
            medium.next_check_mono = min(medium.next_check_mono, self._clock.mono())

    def result(self, name: str, ok: bool, reason: str = "") -> None:
        """The outcome of a check of ``name``: ``ok`` (the head end accepted a TCP connection
        through it) or not, with the ``reason``."""
        now = self._clock.mono()
        medium = self._media[name]
        medium.checking = False
        medium.checks += 1
        current = name == self._current
        if ok:
            if medium.healthy is False:
                self._record("MEDIUM_HEALTHY", {"medium": name})
            if not medium.healthy:
                medium.ok_since_mono = now
            medium.healthy, medium.fail_streak, medium.reason = True, 0, ""
            medium.next_check_mono = now + (self.policy.check_period_s if current else self.policy.standby_check_s)
        else:
            medium.failures += 1
            medium.fail_streak += 1
            medium.reason = reason or "check failed"
            medium.ok_since_mono = None
            confirmed = medium.fail_streak >= self.policy.confirm_failures or not current
            if confirmed and medium.healthy is not False:
                if medium.healthy:
                    log.warning("medium %s lost the head end: %s", name, medium.reason)
                    self._record("MEDIUM_UNHEALTHY", {"medium": name, "reason": medium.reason})
                medium.healthy = False
            if current and not confirmed:
                medium.next_check_mono = now + self.policy.recheck_s
            elif current:
                medium.next_check_mono = now + min(self.policy.check_period_s, self.policy.standby_check_s)
            else:
                medium.next_check_mono = now + self.policy.standby_check_s
        self._decide(now)

    def _decide(self, now: float) -> None:
        cur = self._media[self._current]
        rank = self._order.index(self._current)
        # back to a better medium after the hysteresis
        for name in self._order[:rank]:
            better = self._media[name]
            if better.healthy and better.ok_since_mono is not None \
                    and now - better.ok_since_mono >= self.policy.switch_back_s:
                self._switch(name, f"{name} healthy for {self.policy.switch_back_s:g} s")
                return
        if cur.healthy is not False:
            if cur.healthy:
                self._none_recorded = False
            return
        for name in self._order:
            if name != self._current and self._media[name].healthy:
                self._switch(name, f"{self._current}: {cur.reason}")
                return
        waiting = False
        for name in self._order:  # fallbacks not known yet: check them now
            other = self._media[name]
            if name != self._current and other.healthy is None:
                waiting = True
                if not other.checking:
                    other.next_check_mono = min(other.next_check_mono, now)
        if not waiting and not self._none_recorded:
            self._none_recorded = True
            log.error("no communication medium reaches the head end (%s)", self._summary())
            self._record("NO_MEDIUM", {"reason": self._summary()[:120]})

    def _switch(self, name: str, reason: str) -> None:
        before = self._current
        self._current = name
        self.switches += 1
        self._none_recorded = False
        medium = self._media[name]
        medium.next_check_mono = min(medium.next_check_mono, self._clock.mono() + self.policy.check_period_s)
        log.warning("communication medium %s -> %s (%s)", before, name, reason)
        self._record("MEDIUM_SWITCHED", {"from": before, "to": name, "reason": reason[:120]})

    def _record(self, name: str, detail: dict[str, object]) -> None:
        if self._events is None:
            return
        try:
            self._events.record(event_codes.code(name), self._clock.utc(), detail)
        except Exception as exc:  # noqa: BLE001 - an event store that fails must not stop the media
            log.warning("event %s not recorded: %s", name, exc)

    def view(self) -> dict[str, Any]:
        """``/status`` and ``meterctl modem``: the current medium and each medium's health."""
        state = self.state()
        now = self._clock.mono()
        return {"current": state.current, "up": state.up, "reason": state.reason, "switches": self.switches,
                "priority": list(self._order),
                "media": {m.name: {"healthy": m.healthy, "reason": m.reason, "checks": m.checks,
                                   "failures": m.failures,
                                   "healthy_for_s": round(now - m.ok_since_mono, 1) if m.ok_since_mono is not None
                                   else None} for m in self._media.values()}}
