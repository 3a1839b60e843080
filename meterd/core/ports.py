"""Ports the services and adapters of meterd share: what they need of a clock and an event log.

One definition each, so a service, an adapter and a test fake agree on one shape. The meter clock
itself is :class:`meterd.core.clock.Clock` (UTC and monotonic time, settable). ``meterd.proto``
and the ``hw``/``ciu`` packages keep their own copies: they may not import the core.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Protocol


class MonoClock(Protocol):
    """Monotonic seconds (s): the part of the meter clock that times debounce, scrolling, timeouts."""

    def mono(self) -> float: ...


class TimeSource(MonoClock, Protocol):
    """Monotonic seconds and UTC, read only: what timers that also date their records need
    (:class:`meterd.core.clock.Clock` provides it)."""

    def utc(self) -> _dt.datetime: ...


class EventSink(Protocol):
    """Where a service records meter events (the supervision's
    :class:`~meterd.core.events.EventRecorder` fits): event ``code`` (the 0-0:96.11.x.255
    value) at ``utc`` with scalar ``detail``."""

    def record(self, code: int, utc: _dt.datetime, detail: Mapping[str, object] | None = None) -> object: ...
