"""Drives the gurux DLMS *client* (an independent implementation) against a byte transport.

``transport(frame) -> None`` writes; ``receive() -> bytes`` returns the next chunk (blocking with
a timeout). :class:`InMemoryTransport` connects directly to a ByteSession for fast unit tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from gurux_dlms import GXByteBuffer, GXDateTime, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.secure import GXDLMSSecureClient

from tests.dlms_fakes import CLIENT_TITLE, SERVER_TITLE, TEST_GAK, TEST_GUEK, TEST_PASSWORD


class DlmsClientError(Exception):
    """The meter answered with an error; ``code`` is gurux's error code (for a GET/SET the
    data-access-result, e.g. 3 read-write-denied, 4 object-undefined)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class InMemoryTransport:
    """Feeds frames straight into a ByteSession and queues its answers."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._pending = bytearray()
        self.bytes_out = 0
        self.bytes_in = 0

    def send(self, data: bytes) -> None:
        self.bytes_out += len(data)
        for chunk in self.session.receive(bytes(data)):
            self._pending += chunk
            self.bytes_in += len(chunk)

    def receive(self) -> bytes:
        if not self._pending:
            raise TimeoutError("no answer from the meter")
        data, self._pending = bytes(self._pending), bytearray()
        return data


class Spy(InMemoryTransport):
    """An in-memory transport of a wrapper session keeping every APDU (without the wrapper
    header) both ways."""

    def __init__(self, session: object) -> None:
        super().__init__(session)
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(bytes(data)[8:])
        before = len(self._pending)
        super().send(data)
        self.received.append(bytes(self._pending[before:])[8:])


def make_client(sap: int, hdlc: bool = False, password: bytes = TEST_PASSWORD,
                guek: bytes = TEST_GUEK, gak: bytes = TEST_GAK, invocation_counter: int = 1,
                max_info: int = 128) -> Any:
    """A gurux client for the public (16), reader (17, LLS) or management (1, HLS-GMAC) SAP."""
    interface = InterfaceType.HDLC if hdlc else InterfaceType.WRAPPER
    auth = {16: Authentication.NONE, 17: Authentication.LOW, 1: Authentication.HIGH_GMAC}.get(sap, Authentication.NONE)
    client = GXDLMSSecureClient(True, sap, 1, auth, password if auth == Authentication.LOW else None, interface)
    if auth == Authentication.HIGH_GMAC:
        c = client.ciphering
        c.security = Security.AUTHENTICATION_ENCRYPTION
        c.systemTitle = bytearray(CLIENT_TITLE)
        c.blockCipherKey = bytearray(guek)
        c.authenticationKey = bytearray(gak)
        c.invocationCounter = invocation_counter
    if hdlc:
        client.hdlcSettings.maxInfoRX = max_info
        client.hdlcSettings.maxInfoTX = max_info
    return client


class GuruxSession:
    """A connected gurux client: associate, read, write, act, release."""

    def __init__(self, client: Any, send: Callable[[bytes], None], receive: Callable[[], bytes]) -> None:
        self.client = client
        self._send = send
        self._receive = receive

    def _packet(self, data: bytes | None, reply: Any) -> None:
        if data is None:
            return
        self._send(bytes(data))
        rd = GXByteBuffer()
        while not self.client.getData(rd, reply, None):
            rd.set(self._receive())
        if reply.error != 0:
            raise DlmsClientError(f"meter error {reply.error}", int(reply.error))

    def exchange(self, frames: Any) -> Any:
        """Send the request frames gurux made (one or a list) and return the reply's value."""
        reply = GXReplyData()
        self._block(frames, reply)
        return reply.value

    def _block(self, frames: Any, reply: Any) -> None:
        if isinstance(frames, bytes | bytearray):
            frames = [frames]
        for frame in frames:
            reply.clear()
            self._packet(frame, reply)
            while reply.isMoreData():
                data = None if reply.isStreaming() else self.client.receiverReady(reply)
                self._packet(data, reply)

    def connect(self) -> None:
        reply = GXReplyData()
        if self.client.interfaceType == InterfaceType.HDLC:
            self._packet(self.client.snrmRequest(), reply)
            self.client.parseUAResponse(reply.data)
            reply.clear()
        self._block(self.client.aarqRequest(), reply)
        self.client.parseAareResponse(reply.data)
        reply.clear()
        if self.client.authentication > Authentication.LOW:
            # the reply_to_HLS answer may come in HDLC segments (small info fields): RR for the rest
            self._block(self.client.getApplicationAssociationRequest(), reply)
            self.client.parseApplicationAssociationResponse(reply.data)

    def read(self, obj: Any, attribute: int) -> Any:
        reply = GXReplyData()
        self._block(self.client.read(obj, attribute), reply)
        return self.client.updateValue(obj, attribute, reply.value)

    def read_raw(self, obj: Any, attribute: int) -> Any:
        reply = GXReplyData()
        self._block(self.client.read(obj, attribute), reply)
        return reply.value

    def write(self, obj: Any, attribute: int) -> None:
        reply = GXReplyData()
        self._block(self.client.write(obj, attribute), reply)

    def method(self, obj: Any, index: int, data: Any, type_: Any) -> Any:
        reply = GXReplyData()
        self._block(self.client.method(obj, index, data, type_), reply)
        return reply.value

    def rows_by_range(self, pg: Any, start: dt.datetime, end: dt.datetime) -> Any:
        reply = GXReplyData()
        self._block(self.client.readRowsByRange(pg, GXDateTime(start), GXDateTime(end)), reply)
        return self.client.updateValue(pg, 2, reply.value)

    def rows_by_entry(self, pg: Any, index: int, count: int) -> Any:
        reply = GXReplyData()
        self._block(self.client.readRowsByEntry(pg, index, count), reply)
        return self.client.updateValue(pg, 2, reply.value)

    def object_list(self) -> Any:
        reply = GXReplyData()
        self._block(self.client.getObjectsRequest(), reply)
        return self.client.parseObjects(reply.data, True)

    def close(self) -> None:
        reply = GXReplyData()
        try:
            self._block(self.client.releaseRequest(), reply)
        finally:
            if self.client.interfaceType == InterfaceType.HDLC:
                reply.clear()
                self._packet(self.client.disconnectRequest(), reply)


class Encoded:
    """A certificate as gurux's ``importCertificate`` reads it: DER octets in ``.encoded``."""

    def __init__(self, data: bytes) -> None:
        self.encoded = bytearray(data)


def ber_element(apdu: bytes, tag: int) -> bytes:
    """The value of the first BER element ``tag`` of an AARQ/AARE, inside its 0x80 wrapper."""
    pos = 2
    while pos < len(apdu):
        element, length = apdu[pos], apdu[pos + 1]
        value = apdu[pos + 2:pos + 2 + length]
        if element == tag:
            assert value[0] == 0x80
            return value[2:2 + value[1]]
        pos += 2 + length
    raise AssertionError(f"no element 0x{tag:02X}")


def connect_in_memory(session: Any, sap: int, **kwargs: Any) -> tuple[GuruxSession, InMemoryTransport]:
    """A gurux client associated with ``session`` through an in-memory transport."""
    transport = InMemoryTransport(session)
    client = make_client(sap, hdlc=hasattr(session, "link"), **kwargs)
    gs = GuruxSession(client, transport.send, transport.receive)
    gs.connect()
    return gs, transport


__all__ = ["SERVER_TITLE", "DlmsClientError", "Encoded", "GuruxSession", "InMemoryTransport", "Spy", "ber_element",
           "connect_in_memory", "make_client"]


def send_wrong_hls_reply(session: Any, invocation_counter: int = 1) -> None:
    """Open an HLS-GMAC association (SAP 1) on an in-memory ``session`` and answer the meter's
    challenge as if it had been all zeros; the meter must refuse the reply (DlmsClientError)."""
    transport = InMemoryTransport(session)
    client = make_client(1, invocation_counter=invocation_counter)
    gs = GuruxSession(client, transport.send, transport.receive)
    reply = GXReplyData()
    gs._block(client.aarqRequest(), reply)
    client.parseAareResponse(reply.data)
    client.settings.stoCChallenge = bytearray(16)  # answer a challenge the meter did not send
    reply.clear()
    try:
        for frame in client.getApplicationAssociationRequest():
            gs._packet(frame, reply)
    except DlmsClientError:
        return
    raise AssertionError("the meter accepted a wrong HLS-GMAC reply")
