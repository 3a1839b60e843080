"""Rate limit of the DLMS events any client can cause at will, one limiter per link.

An unauthenticated client can make the server record an event with every request (unknown client
SAP, malformed AARQ, a replayed ciphered AARQ or APDU, a wrong password or HLS response, an
association of the public client opened and closed): :data:`EVENT_ALLOWANCE` says how many of each
are recorded per window per link, and the count of those not recorded is reported with the next
recorded one or, once the window is over, in an event of its own (:meth:`EventLimiter.overdue`).

Sessions of the public client (no authentication, anyone can open one) are limited too: their
communication-log events (``REMOTE_SESSION_OPENED``/``CLOSED``, ``LOCAL_...`` on the optical port)
go through the limiter when :meth:`meterd.cosem.link_events.LinkEvents.session` is told the
session is not authenticated; sessions of authenticated clients are always recorded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from meterd.cosem.security import LockoutClock

EVENT_ALLOWANCE: dict[str, int] = {
    "ASSOCIATION_REJECTED": 1,
    "REPLAY_ATTACK": 1,
    "AUTHENTICATION_FAILURES": 8,
    "DECRYPTION_FAILURE": 8,
}
"""Event names (``meterd.core.event_codes``) any client can cause, and how many of each are recorded
per window per link: refused AARQs and replayed invocation counters once; authentication and
deciphering failures up to 8 times (each source is locked out after a few failures, see
:class:`meterd.cosem.security.AuthLockout`, so these come from many sources or are the lockouts'
own reports)."""

RATE_LIMITED_EVENTS = frozenset(EVENT_ALLOWANCE)
"""The names limited whatever the client (see :data:`EVENT_ALLOWANCE`)."""


@dataclass
class _EventWindow:
    start_mono: float  # when the first recorded event of this window was recorded (monotonic s)
    recorded: int = 1  # events recorded in this window
    suppressed: int = 0  # events not recorded since then
    client_sap: int = 0  # of the last one not recorded
    reason: str = ""


@dataclass(frozen=True)
class SuppressedEvents:
    """Events of one name not recorded in a window that is over, to report in one event."""

    name: str
    count: int
    client_sap: int
    reason: str


class EventLimiter:
    """At most :data:`EVENT_ALLOWANCE` events (one for names not listed there) per ``window_s``
    (s) per event name on one link (one limiter per link, shared by its sessions), so a client
    flooding refused AARQs or public associations cannot wear the event store.

    :meth:`admit` says whether an event is recorded and how many of its name were not recorded
    before it (that count goes into its detail); :meth:`overdue` gives, once, the counts of
    windows that are over, for an event of their own. Timed by the monotonic clock (a clock set
    neither ends nor stretches a window); the counts are in memory (a restart loses at most one
    window's count per name).
    """

    def __init__(self, clock: LockoutClock, window_s: float = 60.0) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self._clock = clock
        self.occurred: Counter[str] = Counter()
        """Every event of the link by name since start, recorded or not (the metrics' counters)."""
        self._windows: dict[str, _EventWindow] = {}
        self._pending = 0  # names with suppressed events

    def admit(self, name: str, client_sap: int, reason: str) -> int | None:
        """None: the window of ``name`` is running and its allowance used (counted, not
        recorded); otherwise the number of ``name`` events not recorded before this one (a first
        event or one after the window starts a new window)."""
        now = self._clock.mono()
        window = self._windows.get(name)
        if window is not None and 0.0 <= now - window.start_mono < self.window_s:
            if window.recorded < EVENT_ALLOWANCE.get(name, 1):
                window.recorded += 1
                return 0
            window.suppressed += 1
            window.client_sap, window.reason = client_sap, reason
            if window.suppressed == 1:
                self._pending += 1
            return None
        suppressed = window.suppressed if window is not None else 0
        if suppressed:
            self._pending -= 1
        self._windows[name] = _EventWindow(now)
        return suppressed

    def overdue(self) -> list[SuppressedEvents]:
        """Events not recorded in windows now over, each window reported once (the report is a
        recorded event: it starts a new window)."""
        if not self._pending:
            return []
        now = self._clock.mono()
        out: list[SuppressedEvents] = []
        for name, window in self._windows.items():
            if window.suppressed and not 0.0 <= now - window.start_mono < self.window_s:
                out.append(SuppressedEvents(name, window.suppressed, window.client_sap, window.reason))
                self._windows[name] = _EventWindow(now)
                self._pending -= 1
        return out
