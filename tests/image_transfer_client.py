"""The head end's side of the image transfer (0-0:44.0.0.255) through the gurux client, as the
firmware tests drive it: image_block_transfer requests made one at a time, the status read, a
bounded poll."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gurux_dlms import GXByteBuffer
from gurux_dlms.enums import DataType
from gurux_dlms.internal._GXCommon import _GXCommon
from gurux_dlms.objects import GXDLMSImageTransfer

from meterd.services.image_transfer import Status
from tests.dlms_gurux_client import GuruxSession


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


def status(gs: GuruxSession) -> Status:
    """image_transfer_status (attribute 6)."""
    return Status(int(gs.read(GXDLMSImageTransfer(), 6)))


def until(what: str, ok: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``ok()`` (each call a DLMS read) until it holds; bounded by ``timeout_s`` (s)."""
    deadline = time.monotonic() + timeout_s
    while not ok():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
