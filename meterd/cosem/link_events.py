"""The security and communication events of one DLMS link, as its sessions record them.

Every event carries the client SAP, the link ("tcp", "rs485", "optical") and a reason cut to 80
characters, never key material; codes come from :mod:`meterd.core.event_codes`. The events any
client can cause at will go through the link's :class:`~meterd.cosem.event_limit.EventLimiter`.
The communication log tells local sessions (the optical port, :data:`LOCAL_LINKS`) from remote
ones. A failing event store is logged and never takes the link down.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Mapping

from meterd.core import event_codes
from meterd.core.ports import EventSink
from meterd.cosem.event_limit import RATE_LIMITED_EVENTS, EventLimiter
from meterd.cosem.objects import LOCAL_LINKS

_log = logging.getLogger("meterd.cosem")
REASON_LEN = 80  # characters of the reason kept in an event's detail


class LinkEvents:
    """Records the events of one session of link ``link_name`` into ``sink`` (None: log only),
    timed by ``now_utc``, rate-limited by the link's ``limiter``."""

    def __init__(self, sink: EventSink | None, link_name: str, limiter: EventLimiter,
                 now_utc: Callable[[], _dt.datetime]) -> None:
        self._sink = sink
        self._link = link_name
        self._limiter = limiter
        self._now = now_utc

    def record(self, name: str, client_sap: int, reason: str, **extra: object) -> bool:
        """Record event ``name`` with the client SAP, link and reason (never key material).

        :data:`RATE_LIMITED_EVENTS` go through the limiter: False when this one is only counted; a
        recorded one carries ``suppressed``, the count not recorded before it, when there were any.
        """
        return self._record(name, client_sap, reason, name in RATE_LIMITED_EVENTS, extra)

    def _record(self, name: str, client_sap: int, reason: str, limited: bool, extra: Mapping[str, object]) -> bool:
        self._limiter.occurred[name] += 1
        if limited:
            suppressed = self._limiter.admit(name, client_sap, reason)
            if suppressed is None:
                return False
            if suppressed:
                extra = {**extra, "suppressed": suppressed}
        self._write(name, {"client_sap": client_sap, "link": self._link, "reason": reason[:REASON_LEN], **extra})
        return True

    def report_suppressed(self) -> None:
        """One event per rate-limit window that is over with events not recorded: the last one's
        client SAP and reason, and ``suppressed``, their count."""
        for over in self._limiter.overdue():
            _log.warning("%d %s events on %s not recorded in %.0f s (rate limit)", over.count, over.name,
                         self._link, self._limiter.window_s)
            self._write(over.name, {"client_sap": over.client_sap, "link": self._link,
                                    "reason": over.reason[:REASON_LEN], "suppressed": over.count})

    def session(self, opened: bool, client_sap: int, reason: str, association: str,
                authenticated: bool = True) -> None:
        """The communication log: a session of ``association`` opened or closed; sessions without
        authentication (the public client: anyone can open them) go through the rate limit."""
        where = "LOCAL" if self._link in LOCAL_LINKS else "REMOTE"
        self._record(f"{where}_SESSION_{'OPENED' if opened else 'CLOSED'}", client_sap, reason,
                     not authenticated, {"association": association})

    def _write(self, name: str, detail: Mapping[str, object]) -> None:
        if self._sink is None:
            return
        try:
            self._sink.record(event_codes.code(name), self._now(), detail)
        except Exception:  # an event store failure must never take the link down
            _log.exception("DLMS event %s not recorded", name)
