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
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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
