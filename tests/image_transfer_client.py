"""The head end's side of the image transfer (0-0:44.0.0.255) through the gurux client, as the
firmware tests drive it: management associations opened as a head end opens them,
image_block_transfer requests made one at a time, the status read, a bounded poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gurux_dlms import GXByteBuffer
from gurux_dlms.enums import DataType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.objects import GXDLMSData, GXDLMSImageTransfer

from meterd.services.image_transfer import Status
from tests.dlms_gurux_client import GuruxSession, make_client
from tests.dlms_harness import PtyIO, SocketIO


def block_count(image: bytes, size: int) -> int:
    """How many blocks of ``size`` octets ``image`` takes (the last one may be short)."""
    return -(-len(image) // size)


def block_request(client: Any, it: GXDLMSImageTransfer, image: bytes, n: int) -> Any:
    """The request frames of image_block_transfer (method 2) for block ``n`` of ``image``:
    structure {block number (double-long-unsigned), block (octet-string)}."""
    size = int(it.imageBlockSize)
    data = GXByteBuffer()
    data.setUInt8(DataType.STRUCTURE)
    data.setUInt8(2)
    _GXCommon.setData(None, data, DataType.UINT32, n)
    _GXCommon.setData(None, data, DataType.OCTET_STRING, image[n * size:(n + 1) * size])
    return client.method(it, 2, data, DataType.ARRAY)


def send_blocks(gs: GuruxSession, it: GXDLMSImageTransfer, image: bytes, first: int = 0,
                stop: int | None = None) -> None:
    """image_block_transfer of blocks ``first`` .. ``stop`` - 1 (to the last one without
    ``stop``), each request made just before it is sent: gurux numbers HDLC frames when it makes
    them, and its own imageBlockTransfer makes them all at once."""
    count = block_count(image, int(it.imageBlockSize))
    for n in range(first, count if stop is None else stop):
        gs.exchange(block_request(gs.client, it, image, n))


class ManagementLine:
    """Management associations (client SAP 1) on a line, each started as a head end starts one:
    the public client (SAP 16) reads the frame counter 0-0:43.1.3.255 (after a restart the meter
    has moved it past what it accepted, in blocks), and the association's invocation counter goes
    on above it and above what the previous association used."""

    def __init__(self, hdlc: bool) -> None:
        self.hdlc = hdlc
        self.counter = 1
        self.io: SocketIO | PtyIO | None = None
        self.gs: GuruxSession | None = None

    def associate(self, line: Callable[[], SocketIO | PtyIO]) -> GuruxSession:
        """Read the frame counter on one ``line()``, then associate on a second one."""
        io = line()
        public = GuruxSession(make_client(16, hdlc=self.hdlc), io.send, io.receive)
        public.connect()
        self.counter = max(self.counter, int(public.read_raw(GXDLMSData("0.0.43.1.3.255"), 2)) + 1)
        public.close()
        io.close()
        self.io = line()
        self.gs = GuruxSession(make_client(1, hdlc=self.hdlc, invocation_counter=self.counter), self.io.send,
                               self.io.receive)
        self.gs.connect()
        return self.gs

    def send(self, frames: Any) -> None:
        """Send the request frames gurux made on the open association."""
        assert self.gs is not None
        self.gs.exchange(frames)

    def send_blocks(self, it: GXDLMSImageTransfer, image: bytes, first: int = 0, stop: int | None = None) -> None:
        """:func:`send_blocks` on the open association."""
        assert self.gs is not None
        send_blocks(self.gs, it, image, first, stop)

    def close(self) -> None:
        """Release the association and close its line; the counter goes on above what it used."""
        assert self.io is not None and self.gs is not None
        self.gs.close()
        self.counter = self.gs.client.ciphering.invocationCounter + 1
        self.io.close()
        self.io = self.gs = None


def status(gs: GuruxSession) -> Status:
    """image_transfer_status (attribute 6)."""
    return Status(int(gs.read(GXDLMSImageTransfer(), 6)))


def until(what: str, ok: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``ok()`` (each call a DLMS read) until it holds; bounded by ``timeout_s`` (s)."""
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
