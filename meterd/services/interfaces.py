"""Which of the meter's interfaces are off, and why: a failing interface never stops metering.

An interface (a DLMS serial port, the DLMS server as a whole, the CIU port, the LCD) that
fails at start or while running is switched off by its owner, which tells the
:class:`InterfaceBoard`: :meth:`~InterfaceBoard.off` writes one ERROR line (no traceback) saying
which interface is off and why, and records INTERFACE_OFF (communication log, code 225) with
the interface and the reason; :meth:`~InterfaceBoard.on`, when the owner got it back (a port
reopened after its back-off), writes one line and records INTERFACE_ON (code 224). Only
changes are logged and recorded: a port retried every minute while its adapter is unplugged
gives one line and one event, not one per try. :meth:`~InterfaceBoard.view` is the
``interfaces`` entry of ``meterctl status``: per interface ``state`` ("on"/"off"), ``reason``,
``since`` (UTC) and how often it went off.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meterd.core import event_codes
from meterd.core.events import EventRecorder

log = logging.getLogger("meterd.interfaces")


@dataclass
class InterfaceState:
    """One interface: ``what`` it is in words, whether it is ``on``, why it is off, since when,
    and how many times it went off."""

    what: str
    on: bool
    reason: str
    since: _dt.datetime
    times_off: int = 0


class InterfaceBoard:
    """The state of every interface that reported to it; ``now`` gives UTC (the meter clock),
    ``events`` receives INTERFACE_OFF / INTERFACE_ON (None: logged only)."""

    def __init__(self, now: Callable[[], _dt.datetime], events: EventRecorder | None) -> None:
        self._now = now
        self._events = events
        self._states: dict[str, InterfaceState] = {}

    def state(self, name: str) -> InterfaceState | None:
        """The state of interface ``name`` (None: it never reported)."""
        return self._states.get(name)

    def is_off(self, name: str) -> bool:
        state = self._states.get(name)
        return state is not None and not state.on

    def off(self, name: str, what: str, reason: str, retry: bool = True) -> None:
        """Interface ``name`` (``what``, e.g. "DLMS HDLC link (RS-485) on /dev/ttyAMA3") is off
        because of ``reason``; ``retry``: its owner tries it again by itself (said in the line)."""
        state = self._states.get(name)
        if state is not None and not state.on:
            state.reason = reason
            return
        now = self._now()
        times = state.times_off + 1 if state is not None else 1
        self._states[name] = InterfaceState(what, False, reason, now, times)
        again = "; tried again with back-off" if retry else ""
        log.error("%s is off: %s%s; metering goes on", what, reason, again)
        self._record("INTERFACE_OFF", now, {"interface": name, "reason": reason})

    def on(self, name: str, what: str) -> None:
        """Interface ``name`` works (again): recorded when it was off."""
        state = self._states.get(name)
        now = self._now()
        if state is None:
            self._states[name] = InterfaceState(what, True, "", now)
            return
        if state.on:
            return
        log.warning("%s is back on (it was off: %s)", what, state.reason)
        self._states[name] = InterfaceState(what, True, "", now, state.times_off)
        self._record("INTERFACE_ON", now, {"interface": name})

    def _record(self, name: str, now: _dt.datetime, detail: dict[str, object]) -> None:
        if self._events is None:
            return
        try:
            self._events.record(event_codes.code(name), now, detail)
        except Exception as exc:  # noqa: BLE001 - an event store that fails must not take the interface's owner down
            log.warning("event %s not recorded: %s", name, exc)

    def view(self) -> dict[str, Any]:
        """``meterctl status``: per interface its state, reason, since (UTC, ISO 8601), times off."""
        return {name: {"state": "on" if s.on else "off", "what": s.what, "reason": s.reason,
                       "since": s.since.isoformat(), "times_off": s.times_off}
                for name, s in sorted(self._states.items())}
