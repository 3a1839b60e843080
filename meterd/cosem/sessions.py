"""The framing sessions of the DLMS server: one per TCP connection or serial link.

Each is a :class:`meterd.proto.session.ByteSession` around an :class:`ApduServer` (the COSEM
server, :class:`meterd.cosem.server.CosemServer`): :class:`WrapperSession` frames APDUs with the
IEC 62056-47 wrapper (:mod:`meterd.proto.wrapper`), :class:`HdlcSession` with HDLC
(:mod:`meterd.proto.hdlc`, IEC 62056-46). Both release the association when the link ends.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Protocol

from meterd.cosem.config import ServerConfig
from meterd.proto import hdlc, wrapper

_log = logging.getLogger("meterd.cosem")


class ApduServer(Protocol):
    """APDU in, APDU out, for one association at a time."""

    @property
    def config(self) -> ServerConfig:
        """The link's settings (``server_sap`` is the wrapper's destination wPort)."""
        ...

    @property
    def associated(self) -> bool:
        """Whether an association is fully established (HLS included)."""
        ...

    def handle_apdus(self, client_sap: int, apdu: bytes) -> list[bytes]:
        """Serve one request APDU; the response APDUs in order (none, one, or the blocks of a
        streamed general block transfer window)."""
        ...

    def release(self, reason: str = "link closed") -> None:
        """Drop the association."""
        ...


class SessionMaker(Protocol):
    """Makes the session of a new connection or serial link (see
    :func:`meterd.cosem.server.build_session_factory`)."""

    def __call__(self, source: str = "") -> WrapperSession | HdlcSession:
        """A fresh session for a client at ``source``: the TCP peer's address (an IPv6 peer by its
        /64 prefix, see :func:`meterd.runtime.dlms_tcp.peer_source`); "" on a serial link, whose
        source is the link itself (every client on an RS-485 bus or at the optical port is
        there). Authentication failures lock out one source, never the client SAP for all."""
        ...


class WrapperSession:
    """IEC 62056-47 TCP/UDP wrapper framing (:mod:`meterd.proto.wrapper`) around a
    :class:`ApduServer` (a ByteSession); frames to another destination wPort are ignored."""

    def __init__(self, server: ApduServer, inactivity_timeout_s: float = 120.0,
                 max_apdu: int = wrapper.MAX_APDU) -> None:
        self.server = server
        self.decoder = wrapper.WrapperDecoder(max_apdu)
        self._timeout_s = inactivity_timeout_s

    @property
    def inactivity_timeout_s(self) -> float:
        return self._timeout_s

    @property
    def associated(self) -> bool:
        """Whether the client holds a fully established association (the TCP runtime closes a
        connection that stays without one; :class:`meterd.proto.wrapper.ConnectionGuard`)."""
        return self.server.associated

    def receive(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for event in self.decoder.feed(data):
            if isinstance(event, wrapper.Discarded):
                _log.info("wrapper: %s, %d octets of input discarded", event.reason, event.octets)
                continue
            if event.destination != self.server.config.server_sap:
                continue
            for response in self.server.handle_apdus(event.source, event.apdu):
                out.append(event.reply(response).encode())
        return out

    def timeout(self) -> list[bytes]:
        self.decoder.clear()
        self.server.release("inactivity")
        return []

    def close(self) -> None:
        self.server.release("connection closed")


class HdlcSession:
    """HDLC framing (IEC 62056-46) around a :class:`ApduServer` (a ByteSession and a
    :class:`~meterd.proto.session.TimedSession`: only valid frames for this station restart the
    inactivity time-out, ``inactivity_timeout_s``, s). An APDU broadcast to every station (an UI
    frame to the all-station address) is never answered; the server offers no unconfirmed
    service, so it is counted and dropped."""

    def __init__(self, server: ApduServer, params: hdlc.HdlcParameters | None = None,
                 inactivity_timeout_s: float = 120.0) -> None:
        self.server = server
        self.link = hdlc.HdlcLink(dataclasses.replace(params or hdlc.HdlcParameters(),
                                                      inactivity_s=inactivity_timeout_s))
        self._timeout_s = inactivity_timeout_s
        self._now_s = 0.0
        self.ended = False
        """True once the client disconnected the data link (DISC); the optical port then returns
        to its mode E sign-on."""

    @property
    def inactivity_timeout_s(self) -> float:
        return self._timeout_s

    @property
    def deadline_s(self) -> float | None:
        return self.link.deadline_s

    def receive(self, data: bytes) -> list[bytes]:
        return self.receive_at(data, self._now_s)

    def receive_at(self, data: bytes, now_s: float) -> list[bytes]:
        self._now_s = now_s
        return self._run(self.link.receive(data, now_s))

    def _run(self, events: list[hdlc.HdlcEvent]) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            if isinstance(event, hdlc.Send):
                out.append(event.data)
            elif isinstance(event, hdlc.ApduReceived):
                if event.broadcast:
                    _log.debug("hdlc: broadcast APDU of %d octets from client %d dropped (no unconfirmed"
                               " service)", len(event.apdu), event.client_sap)
                    continue
                for response in self.server.handle_apdus(event.client_sap, event.apdu):
                    out += self._run(self.link.send_apdu(response))
            else:
                self.server.release(event.reason)
                self.ended = self.ended or self.link.state is hdlc.LinkState.NDM
        return out

    def timeout(self) -> list[bytes]:
        return self._run(self.link.timeout())

    def close(self) -> None:
        self.server.release("link closed")
