"""The byte-session port between link runtimes and protocol servers.

A runtime (TCP wrapper, RS-485 HDLC, optical port) owns one :class:`ByteSession` per link or
connection. It feeds every received chunk to :meth:`ByteSession.receive` and writes back the
returned chunks in order; it never knows what protocol runs inside. The composition root injects a
:class:`SessionFactory`, so runtimes never import the COSEM server.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class ByteSession(Protocol):
    """One protocol endpoint on one link."""

    def receive(self, data: bytes) -> list[bytes]:
        """Consume received bytes; return the chunks to send, in order (possibly none)."""
        ...

    def timeout(self) -> list[bytes]:
        """The link was idle for the inactivity time: drop link state; return chunks to send."""
        ...

    def close(self) -> None:
        """The link is gone: release the association and any held resources."""
        ...

    @property
    def inactivity_timeout_s(self) -> float:
        """Idle time (s) after which the runtime calls :meth:`timeout`; 0 disables it."""
        ...


@runtime_checkable
class TimedSession(ByteSession, Protocol):
    """A session whose inactivity time-out only some input restarts (HDLC: valid frames addressed
    to this station, never garbage nor frames for other stations on the bus). The runtime gives
    each chunk its arrival time (s, the runtime's clock) and arms its timer at
    :attr:`deadline_s`, calling :meth:`ByteSession.timeout` when it is reached."""

    def receive_at(self, data: bytes, now_s: float) -> list[bytes]:
        """:meth:`ByteSession.receive` of bytes that arrived at ``now_s`` (s)."""
        ...

    @property
    def deadline_s(self) -> float | None:
        """When (s, the clock of ``receive_at``) the session idles out; None: no time-out pending."""
        ...


@runtime_checkable
class AssociatingSession(ByteSession, Protocol):
    """A session that tells whether its client holds an association (the TCP runtime closes
    connections that stay without one, and displaces them first when it is full)."""

    @property
    def associated(self) -> bool:
        """Whether an association is fully established."""
        ...


class SessionFactory(Protocol):
    """Builds a fresh session for a new connection or a restarted serial link."""

    def __call__(self) -> ByteSession:
        """A new session with no association."""
        ...
