"""The IEC 62056-47 wrapper (DLMS over TCP/UDP), sans-I/O.

Every APDU travels behind an 8-octet header of four big-endian 16-bit fields::

    version (1) | source wPort | destination wPort | length (octets of APDU that follow)

A client's wPort is its client SAP (16 public, 17 reader, 1 management, ...), the server's is the
logical device (1). Bytes in, events out: :meth:`WrapperDecoder.feed` takes received octets in
chunks of any size and returns, in order, a :class:`WrapperFrame` for every complete frame and a
:class:`Discarded` for input it cannot use. A header with a version other than 1 or a length above
the decoder's ``max_apdu`` leaves no way to find the next frame: the buffered input is dropped and
framing restarts with the next octets fed. A frame with length 0 carries no APDU: it is consumed
and reported as :class:`Discarded`. :meth:`WrapperFrame.encode` builds a frame and
:meth:`WrapperFrame.reply` the answer to one (ports swapped).

:class:`ConnectionGuard` keeps a wrapper server's connections within its limits (time in s from
the caller's clock): at most ``max_connections`` at once; a connection without an association
(none requested yet, one never completed, or one released) is closed ``association_timeout_s``
after it became so, whatever it sends meanwhile; and when every place is taken a new connection
takes the place of the connection without an association that has been idle longest, so an
association can always be opened while anyone holding places has none. Only when every
connection is associated is a new one refused. What it did is reported through
:meth:`ConnectionGuard.report` at most once per ``report_window_s`` per kind, with the count.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

VERSION = 1
HEADER = struct.Struct(">HHHH")
HEADER_LEN = HEADER.size  # 8 octets
MAX_APDU = 0xFFFF  # the length field is 16 bits (octets)
MAX_WPORT = 0xFFFF


class WrapperError(ValueError):
    """A frame that cannot be encoded (APDU too long, wPort out of range)."""


@dataclass(frozen=True)
class WrapperFrame:
    """One wrapper frame: ``source`` and ``destination`` wPorts and the APDU it carries."""

    source: int
    destination: int
    apdu: bytes

    def encode(self) -> bytes:
        """Header and APDU; raises :class:`WrapperError` when a field does not fit."""
        if len(self.apdu) > MAX_APDU:
            raise WrapperError(f"APDU of {len(self.apdu)} octets exceeds the wrapper maximum {MAX_APDU}")
        for port in (self.source, self.destination):
            if not 0 <= port <= MAX_WPORT:
                raise WrapperError(f"wPort {port} outside 0..{MAX_WPORT}")
        return HEADER.pack(VERSION, self.source, self.destination, len(self.apdu)) + self.apdu

    def reply(self, apdu: bytes) -> WrapperFrame:
        """The frame answering this one with ``apdu`` (source and destination swapped)."""
        return WrapperFrame(self.destination, self.source, apdu)


@dataclass(frozen=True)
class Discarded:
    """Received input dropped: ``octets`` of it, for ``reason``."""

    reason: str
    octets: int


WrapperEvent = WrapperFrame | Discarded


class WrapperDecoder:
    """Length-delimited frame extraction from a byte stream (one per connection).

    ``max_apdu`` (octets, at most :data:`MAX_APDU`) is the longest APDU accepted; a header
    announcing more is treated like a bad version.
    """

    def __init__(self, max_apdu: int = MAX_APDU) -> None:
        if not 0 < max_apdu <= MAX_APDU:
            raise ValueError(f"max_apdu must be 1..{MAX_APDU}, got {max_apdu}")
        self._buf = bytearray()
        self._max = max_apdu
        self.discarded = 0
        """Octets dropped so far (bad headers and empty frames)."""

    def feed(self, data: bytes) -> list[WrapperEvent]:
        """Append received octets; return the complete frames and discards, in order."""
        self._buf += data
        events: list[WrapperEvent] = []
        while len(self._buf) >= HEADER_LEN:
            version, source, destination, length = HEADER.unpack_from(self._buf)
            if version != VERSION:
                events.append(self._drop_all(f"bad version {version}"))
                break
            if length > self._max:
                events.append(self._drop_all(f"length {length} above the maximum {self._max}"))
                break
            if len(self._buf) < HEADER_LEN + length:
                break
            apdu = bytes(self._buf[HEADER_LEN:HEADER_LEN + length])
            del self._buf[:HEADER_LEN + length]
            if length == 0:
                self.discarded += HEADER_LEN
                events.append(Discarded("empty APDU", HEADER_LEN))
                continue
            events.append(WrapperFrame(source, destination, apdu))
        return events

    def pending(self) -> int:
        """Octets held for an incomplete frame."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget a partial frame (inactivity)."""
        self._buf.clear()

    def _drop_all(self, reason: str) -> Discarded:
        dropped = Discarded(reason, len(self._buf))
        self.discarded += len(self._buf)
        self._buf.clear()
        return dropped


@dataclass(frozen=True)
class TcpLimits:
    """Limits of a wrapper server: ``max_connections`` at once, ``association_timeout_s`` (s) a
    connection may stay without an association, ``report_window_s`` (s) between two reports of
    one kind."""

    max_connections: int = 8
    association_timeout_s: float = 10.0
    report_window_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if self.association_timeout_s <= 0 or self.report_window_s < 0:
            raise ValueError("association_timeout_s must be positive, report_window_s not negative")


@dataclass(frozen=True)
class Admission:
    """The answer to a new connection: its id (None: refused) and the id of the connection to
    drop to make room for it (None: none)."""

    conn_id: int | None
    displaced: int | None = None


@dataclass
class _Connection:
    opened_s: float
    last_input_s: float
    unassociated_since_s: float | None


@dataclass
class _Report:
    count: int = 0
    last_s: float | None = None


@dataclass
class ConnectionGuard:
    """Admission and association time-out of one wrapper server's connections, sans-I/O."""

    limits: TcpLimits = field(default_factory=TcpLimits)
    _conns: dict[int, _Connection] = field(default_factory=dict)
    _next_id: int = 0
    _reports: dict[str, _Report] = field(default_factory=dict)

    @property
    def open(self) -> int:
        """Connections held now."""
        return len(self._conns)

    def admit(self, now_s: float) -> Admission:
        """A new connection at ``now_s``: admitted (perhaps displacing one without an association) or refused."""
        displaced = None
        if len(self._conns) >= self.limits.max_connections:
            idle = [(c.last_input_s, c.opened_s, i) for i, c in self._conns.items()
                    if c.unassociated_since_s is not None]
            if not idle:
                return Admission(None)
            displaced = min(idle)[2]
            del self._conns[displaced]
        self._next_id += 1
        self._conns[self._next_id] = _Connection(now_s, now_s, now_s)
        return Admission(self._next_id, displaced)

    def input(self, conn_id: int, now_s: float, associated: bool) -> None:
        """Input on ``conn_id`` was served at ``now_s``; ``associated``: whether it has an association now."""
        conn = self._conns.get(conn_id)
        if conn is None:
            return
        conn.last_input_s = now_s
        if associated:
            conn.unassociated_since_s = None
        elif conn.unassociated_since_s is None:
            conn.unassociated_since_s = now_s  # released: the association time-out runs again

    def closed(self, conn_id: int) -> None:
        """``conn_id`` is gone."""
        self._conns.pop(conn_id, None)

    def held(self, conn_id: int) -> bool:
        """Whether ``conn_id`` still has its place (False once displaced or closed)."""
        return conn_id in self._conns

    def deadline_s(self, conn_id: int) -> float | None:
        """When ``conn_id`` is closed for want of an association; None while it has one."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.unassociated_since_s is None:
            return None
        return conn.unassociated_since_s + self.limits.association_timeout_s

    def report(self, kind: str, now_s: float) -> int | None:
        """One more ``kind`` at ``now_s``: the count to report now (those held back since the last
        report included), or None while the last report of this kind is younger than the window."""
        rep = self._reports.setdefault(kind, _Report())
        rep.count += 1
        if rep.last_s is not None and now_s - rep.last_s < self.limits.report_window_s:
            return None
        count, rep.count, rep.last_s = rep.count, 0, now_s
        return count
