"""The cellular modem's supervision: bearer up with back-off, events and diagnostics.

ModemManager owns the modem and, through Simple.Connect, the data bearer; the meter never
speaks AT commands. The I/O shell (:mod:`meterd.runtime.modem_link`) hands every snapshot of
the modem (:class:`~meterd.core.modem.ModemStatus`) to :meth:`ModemSupervisor.observe` and
carries out what :meth:`ModemSupervisor.tick` asks through the :class:`ModemControl` port.
This module decides, on the meter's monotonic clock:

* when to (re)connect: the modem usable (SIM ready, registered), the bearer down, the auto
  connect mode allowing it now (``always``: permanently connected; ``windows``: only inside the
  connection windows, disconnected outside; ``never``), no attempt running, and the back-off
  over. The back-off starts at ``reconnect_min_s`` and doubles after each failed attempt (an
  attempt that has no bearer after ``connect_timeout_s`` failed) up to ``reconnect_max_s``; a
  bearer that stayed up for ``stable_s`` resets it, so a bearer dropping every few minutes is
  reconnected ever more slowly rather than hammered;
* what is recorded (communication log): MODEM_FAULT (179) when the modem cannot carry data (no
  modem, modem failed, no SIM, SIM locked, registration denied, not registered; once per
  distinct fault), MODEM_BEARER_LOST (180) with how long it was up and the fault if any,
  MODEM_BEARER_UP (181) with the IPv4 address and the attempts it took. The interface board
  shows ``modem`` off with the reason while there is no bearer, and on again with it.

Nothing here touches metering or the other links: a dead modem costs one event per change and
one log line, never a cycle.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from meterd.core import event_codes
from meterd.core.modem import SIM_LOCKED, ModemState, ModemStatus
from meterd.core.ports import EventSink, TimeSource
from meterd.services.interfaces import InterfaceBoard

log = logging.getLogger("meterd.modem")

INTERFACE = "modem"
WHAT = "cellular modem (ModemManager)"
AUTO_CONNECT_MODES = {"never": 0, "always": 101, "windows": 102}
"""Auto connect (class 29) ``mode`` values: 0 no auto dialling, 101 permanently connected,
102 connected within the calling windows."""


@dataclass(frozen=True)
class Window:
    """A connection window: start and end as seconds of the UTC day (end < start wraps midnight)."""

    start_s: int
    end_s: int

    def contains(self, second_of_day: int) -> bool:
        if self.start_s <= self.end_s:
            return self.start_s <= second_of_day < self.end_s
        return second_of_day >= self.start_s or second_of_day < self.end_s

    @classmethod
    def parse(cls, text: str) -> Window:
        """``"HH:MM-HH:MM"`` (UTC; ``24:00`` = end of day); ValueError otherwise."""
        try:
            start, end = (part.strip() for part in text.split("-"))
            return cls(_seconds(start), _seconds(end))
        except ValueError as exc:
            raise ValueError(f"connection window {text!r}: expected HH:MM-HH:MM ({exc})") from None


def _seconds(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    value = int(hours) * 3600 + int(minutes) * 60
    if not 0 <= int(minutes) < 60 or not 0 <= value <= 86400:
        raise ValueError(f"{hhmm} is not a time of day")
    return value


@dataclass(frozen=True)
class ModemSettings:
    """The APN (and optional user) the bearer is brought up with, the IP type, the auto connect
    ``mode`` (``always``/``windows``/``never``) and its ``windows``, and the back-off (s)."""

    apn: str
    user: str = ""
    ip_type: str = "ipv4"
    mode: str = "always"
    windows: tuple[Window, ...] = ()
    reconnect_min_s: float = 10.0
    reconnect_max_s: float = 600.0
    connect_timeout_s: float = 90.0
    stable_s: float = 300.0

    def __post_init__(self) -> None:
        if self.mode not in AUTO_CONNECT_MODES:
            raise ValueError(f"mode {self.mode!r}: choose from {sorted(AUTO_CONNECT_MODES)}")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError("need 0 < reconnect_min_s <= reconnect_max_s")
        if self.mode == "windows" and not self.windows:
            raise ValueError('mode = "windows" needs at least one connection window')


class ModemControl(Protocol):
    """What the supervision asks of the modem stack; results come back as snapshots."""

    def connect(self, settings: ModemSettings) -> None:
        """Bring the data bearer up (ModemManager Simple.Connect) with the APN of ``settings``."""
        ...

    def disconnect(self) -> None:
        """Take the data bearer down (outside the connection windows)."""
        ...


class ModemSupervisor:
    """Reconnects the bearer with back-off and says what happened (module docstring)."""

    def __init__(self, settings: ModemSettings, control: ModemControl | None, clock: TimeSource,
                 events: EventSink | None, board: InterfaceBoard | None,
                 has_pin: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self._has_pin = has_pin
        self._pin_refused = False
        self.control = control
        self._clock = clock
        self._events = events
        self._board = board
        self.status = ModemStatus()
        self._fault = ""
        self._recorded_fault = ""
        self._backoff_s = settings.reconnect_min_s
        self._next_attempt_mono = clock.mono()
        self._attempt_since_mono: float | None = None
        self._up_since_mono: float | None = None
        self.attempts = 0          # attempts since the bearer was last up
        self.total_attempts = 0
        self.connects = 0
        self.drops = 0
        self.last_error = ""
        self._observed = False

    # --- snapshots from the modem stack ---

    def observe(self, status: ModemStatus) -> None:
        """A new snapshot of the modem: record what changed."""
        before = self.status
        if status.captured_utc is None:
            status = replace(status, captured_utc=self._clock.utc())
        self.status = status
        now = self._clock.mono()
        fault = status.fault()
        if fault and fault != self._recorded_fault:
            log.warning("cellular modem: %s", fault)
            self._record("MODEM_FAULT", {"fault": fault, "state": status.state.value})
            self._recorded_fault = fault
        elif not fault:
            self._recorded_fault = ""
        self._fault = fault
        was_up = before.bearer.connected and self._observed
        self._observed = True
        if status.bearer.connected and not was_up:
            self.connects += 1
            self._up_since_mono = now
            self._attempt_since_mono = None
            log.info("cellular bearer up: %s on %s after %d attempt(s)", status.bearer.ipv4,
                     status.bearer.interface, self.attempts)
            self._record("MODEM_BEARER_UP", {"ipv4": status.bearer.ipv4, "interface": status.bearer.interface,
                                             "attempts": self.attempts,
                                             "operator": status.operator_name, "technology": status.technology.name})
            self.attempts = 0
            self.last_error = ""
            if self._board is not None:
                self._board.on(INTERFACE, WHAT)
        elif was_up and not status.bearer.connected:
            self.drops += 1
            up_s = now - self._up_since_mono if self._up_since_mono is not None else 0.0
            if up_s >= self.settings.stable_s:
                self._backoff_s = self.settings.reconnect_min_s
            self._up_since_mono = None
            self._next_attempt_mono = now + self._backoff_s
            reason = fault or "bearer disconnected"
            self._record("MODEM_BEARER_LOST", {"up_s": round(up_s), "reason": reason})
            self._off(reason)
        elif not status.bearer.connected and fault:
            self._off(fault)

    def _may_dial(self) -> bool:
        """No fault, or only a locked SIM with a PIN to unlock it (Simple.Connect sends it) that
        has not been refused: a PIN the SIM refused is never sent again until a new one is
        provisioned, so the meter cannot use up the SIM's attempts and lock it to its PUK."""
        if not self._fault:
            return True
        return self._fault == SIM_LOCKED and self._has_pin() and not self._pin_refused

    def pin_changed(self) -> None:
        """A new PIN was provisioned: it may be tried (once)."""
        self._pin_refused = False
        self._next_attempt_mono = self._clock.mono()

    def connect_failed(self, reason: str) -> None:
        """The stack refused or failed the attempt (e.g. Simple.Connect returned an error)."""
        if self._fault == SIM_LOCKED:
            self._pin_refused = True
            log.error("cellular modem: the SIM stays locked after the PIN was sent (%s); the PIN is not sent again"
                      " until a new one is provisioned", reason)
        self.last_error = reason
        if self._attempt_since_mono is not None:
            self._attempt_since_mono = None
            self._fail_attempt(reason)

    # --- the per-cycle decision ---

    def tick(self) -> None:
        """Called every cycle: time out a hanging attempt, start one when due, keep the mode."""
        now = self._clock.mono()
        status = self.status
        if self._attempt_since_mono is not None and not status.bearer.connected:
            if now - self._attempt_since_mono >= self.settings.connect_timeout_s:
                self._attempt_since_mono = None
                self._fail_attempt(f"no bearer {self.settings.connect_timeout_s:g} s after connect")
            return
        allowed = self.allowed_now()
        if status.bearer.connected:
            if not allowed and self.control is not None:
                log.info("cellular bearer: outside the connection windows, disconnecting")
                self.control.disconnect()
            return
        if not allowed or not self._may_dial() or not self._observed or self.control is None:
            return
        if status.state in (ModemState.CONNECTING, ModemState.DISCONNECTING):
            return
        if now < self._next_attempt_mono:
            return
        self.attempts += 1
        self.total_attempts += 1
        self._attempt_since_mono = now
        self._next_attempt_mono = now + self._backoff_s
        log.info("cellular bearer: connect attempt %d (APN %s)", self.attempts, self.settings.apn)
        self.control.connect(self.settings)

    def _fail_attempt(self, reason: str) -> None:
        self.last_error = reason
        now = self._clock.mono()
        self._next_attempt_mono = now + self._backoff_s
        log.warning("cellular bearer: attempt %d failed (%s); next in %.0f s", self.attempts, reason, self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2.0, self.settings.reconnect_max_s)
        self._off(reason)

    def connect_now(self) -> bool:
        """Auto connect's ``connect`` method: an attempt at the next tick instead of after the
        back-off; False when the modem cannot carry data or the mode forbids a connection now."""
        if not self._may_dial() or not self.allowed_now() or self.control is None:
            return False
        self._next_attempt_mono = self._clock.mono()
        return True

    def set_apn(self, apn: str) -> None:
        """A new APN (remote configuration), used from the next connect."""
        self.settings = replace(self.settings, apn=apn)
        log.info("cellular APN set to %s", apn)

    def allowed_now(self) -> bool:
        """Whether the auto connect mode wants the bearer up now."""
        mode = self.settings.mode
        if mode == "never":
            return False
        if mode == "always":
            return True
        second = utc_second(self._clock.utc())
        return any(w.contains(second) for w in self.settings.windows)

    @property
    def backoff_s(self) -> float:
        """The wait (s) after the next failed attempt."""
        return self._backoff_s

    @property
    def connected(self) -> bool:
        return self.status.bearer.connected

    def _off(self, reason: str) -> None:
        if self._board is not None:
            self._board.off(INTERFACE, WHAT, reason)

    def _record(self, name: str, detail: dict[str, object]) -> None:
        if self._events is None:
            return
        try:
            self._events.record(event_codes.code(name), self._clock.utc(), detail)
        except Exception as exc:  # noqa: BLE001 - an event store that fails must not stop the modem's supervision
            log.warning("event %s not recorded: %s", name, exc)

    def view(self) -> dict[str, Any]:
        """``meterctl modem``: the snapshot plus the supervision's counters."""
        now = self._clock.mono()
        return {**self.status.view(),
                "apn": self.settings.apn, "mode": self.settings.mode,
                "windows": [_window_text(w) for w in self.settings.windows],
                "connect_allowed": self.allowed_now(), "attempts": self.attempts,
                "total_attempts": self.total_attempts, "connects": self.connects, "drops": self.drops,
                "backoff_s": self._backoff_s, "last_error": self.last_error, "pin_refused": self._pin_refused,
                "next_attempt_in_s": None if self.status.bearer.connected
                else round(max(0.0, self._next_attempt_mono - now), 1),
                "connected_for_s": round(now - self._up_since_mono) if self._up_since_mono is not None else None}


def _window_text(w: Window) -> str:
    return f"{w.start_s // 3600:02d}:{w.start_s % 3600 // 60:02d}-{w.end_s // 3600:02d}:{w.end_s % 3600 // 60:02d}"


def parse_windows(texts: Sequence[str]) -> tuple[Window, ...]:
    """Connection windows from ``"HH:MM-HH:MM"`` strings (UTC)."""
    return tuple(Window.parse(t) for t in texts)


def utc_second(utc: _dt.datetime) -> int:
    """Seconds since midnight of ``utc`` (UTC)."""
    utc = utc.astimezone(_dt.UTC)
    return utc.hour * 3600 + utc.minute * 60 + utc.second
