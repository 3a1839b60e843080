"""General block transfer (GBT, DLMS UA 1000-2 Green Book §9.4.6.13) of one association: long
requests reassembled, long responses cut into blocks and streamed a window at a time.

Pure and sans-I/O: :class:`GbtTransfer` takes the client's general-block-transfer APDUs
(:class:`~meterd.cosem.xdlms_codec.GbtBlock`) and says what to do (:class:`Deliver` a whole
request, :class:`Send` blocks, or wait for more of a streamed window); :meth:`GbtTransfer.send`
cuts a whole response. GBT wraps the APDU as it goes on the wire: a ciphered APDU is ciphered
whole and then cut, and a ciphered request is deciphered after it is reassembled.

Windows: the meter sends at most the client's receive window (the window field of the client's
last GBT APDU; 1 until the client has sent one) before it waits for an acknowledgement, and
advertises its own receive window ``window`` in every block it sends. A lost block is sent again
from the block after the last one acknowledged. A request may hold at most ``max_request``
octets; a block out of sequence ends the transfer (the caller answers with an exception-response).
"""

from __future__ import annotations

from dataclasses import dataclass

from meterd.cosem.errors import ApduError
from meterd.cosem.xdlms_codec import GbtBlock

BLOCK_OVERHEAD = 10
"""Octets of a GBT APDU around its data: tag, control, block number, acknowledged number and a
length of up to three octets (and one spare)."""
MAX_WINDOW = 63
"""The largest window the 6-bit window field can carry (blocks)."""


@dataclass(frozen=True)
class Deliver:
    """The last block of a request arrived: serve ``apdu``, acknowledging block ``ack``."""

    apdu: bytes
    ack: int


@dataclass(frozen=True)
class Send:
    """Send these GBT APDUs (blocks of the response, or an acknowledgement without data)."""

    apdus: tuple[bytes, ...]


WAIT = Send(())
"""Nothing to send: more blocks of a streamed window are coming."""


class GbtTransfer:
    """The general block transfers of one association.

    ``window``: the meter's receive window (blocks, 1–63), advertised in its blocks and the
    most blocks it streams in a row; ``block_size``: the most octets of one GBT APDU (the
    client's max PDU); ``max_request``: the most octets a reassembled request may hold."""

    def __init__(self, window: int, block_size: int, max_request: int) -> None:
        if not 1 <= window <= MAX_WINDOW:
            raise ValueError(f"GBT window {window} outside 1..{MAX_WINDOW}")
        if block_size <= BLOCK_OVERHEAD:
            raise ValueError("GBT block size too small")
        self.window = window
        self._data_size = block_size - BLOCK_OVERHEAD
        self._max_request = max_request
        self._peer_window = 1
        self._request = bytearray()
        self._expected = 1
        self._blocks: list[bytes] = []  # the data of each block of the response going out
        self._ack = 0

    @property
    def sending(self) -> bool:
        """True while a response is going out and blocks are left to acknowledge."""
        return bool(self._blocks)

    def reset(self) -> None:
        """Forget any transfer in progress (an error, or the association ended)."""
        self._request.clear()
        self._expected = 1
        self._blocks = []

    def receive(self, block: GbtBlock) -> Deliver | Send:
        """What a GBT APDU from the client asks for (raises :class:`ApduError` and resets on a
        block out of sequence or a request too long)."""
        self._peer_window = max(1, block.window)
        if self._blocks and not block.data:
            self._ack = block.number  # an acknowledgement is a numbered block of the client's too
            return self._acknowledged(block.ack)
        if self._blocks:  # a new request while a response goes out: the response is abandoned
            self._blocks = []
        if block.number != self._expected:
            self.reset()
            raise ApduError(f"GBT block {block.number} received, {self._expected} expected")
        if len(self._request) + len(block.data) > self._max_request:
            self.reset()
            raise ApduError(f"GBT request longer than {self._max_request} octets")
        self._request += block.data
        self._expected += 1
        if block.last:
            apdu = bytes(self._request)
            self._request.clear()
            self._expected = 1
            return Deliver(apdu, block.number)
        if block.streaming:
            return WAIT
        return Send((GbtBlock(False, False, self.window, 0, block.number, b"").encode(),))

    def send(self, response: bytes, ack: int = 0) -> Send:
        """Cut ``response`` into blocks and send the first window; ``ack``: the number of the
        request's last block (0: the request came whole)."""
        size = self._data_size
        self._blocks = [response[i:i + size] for i in range(0, len(response), size)] or [b""]
        self._ack = ack
        return self._window_from(1)

    def _acknowledged(self, ack: int) -> Send:
        if ack >= len(self._blocks):
            self._blocks = []
            return WAIT
        return self._window_from(ack + 1)

    def _window_from(self, first: int) -> Send:
        """Blocks ``first`` … up to the peer's window (the streaming bit on all but the last).
        The blocks are kept until the client acknowledges the last one or sends a new request,
        so a lost block can be asked for again."""
        total = len(self._blocks)
        last = min(total, first - 1 + min(self._peer_window, self.window))
        return Send(tuple(
            GbtBlock(number == total, number < last, self.window, number, self._ack, self._blocks[number - 1]).encode()
            for number in range(first, last + 1)))
