"""The waveform bridge's wire format (docs/waveform-bridge.md), sans-I/O: no I/O, no numpy.

The bridge (an RP2040 receiving the waveform ATM90E36's DMA stream as an SPI slave) sends the
chip's sample sets over USB CDC in frames::

    offset size  field
    0      2     magic "WB" (0x57 0x42)
    2      1     version (1)
    3      1     flags: bit 0 SYNC_LOST, bit 1 OVERRUN, bit 2 RESTART (other bits 0)
    4      2     seq: frame counter, +1 per frame sent, wraps at 2^16 (little-endian)
    6      1     n_sets: sample sets in the payload (1 … 64)
    7      1     width: bytes per sample (2, 3 or 4; the chip's CH_BITWIDTH)
    8      4     first_index: index of the first set, an 8 kHz count of every set the chip
                 clocked out (also the ones the bridge dropped), wraps at 2^32 (little-endian)
    12     2     dma_ctrl: the DMACtrl value the bridge programmed (channel selection, width)
    14     1     sync_losses: DMA framing losses since the bridge started, wraps at 256
    15     1     reserved (0)
    16     n     payload: n_sets × channels × width bytes, exactly as clocked out of the chip
                 (channels in the chip's order I4, I1, V1, I2, V2, I3, V3, each MSB first)
    16+n   4     CRC-32 (IEEE 802.3, as zlib.crc32) of bytes 0 … 15+n, little-endian

Bytes in, events out: :meth:`BridgeDecoder.feed` takes received bytes in chunks of any size and
returns, in order, a :class:`BridgeFrame` for every frame whose CRC holds and a
:class:`BridgeDiscard` for bytes it had to skip. A bad header or a bad CRC costs the frame it
started: the decoder drops one byte and hunts for the next magic, so it is back in step with
the first intact frame after the damage. Counters say what happened (``frames``,
``crc_errors``, ``header_errors``, ``bytes_discarded``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"WB"
VERSION = 1
HEADER = struct.Struct("<2sBBHBBIHBB")
HEADER_LEN = HEADER.size  # 16 bytes
CRC_LEN = 4
MAX_SETS = 64
WIDTHS = (2, 3, 4)

FLAG_SYNC_LOST = 0x01
"""The bridge saw a set with the wrong number of clocks (DMA framing lost) and dropped it; it
regained the framing at this frame's first set."""
FLAG_OVERRUN = 0x02
"""The bridge's buffer was full (the host did not read): sets before this frame were dropped."""
FLAG_RESTART = 0x04
"""The bridge (re)programmed the chip and restarted the stream: the indices start again."""
KNOWN_FLAGS = FLAG_SYNC_LOST | FLAG_OVERRUN | FLAG_RESTART

#: DMACtrl bits 15:9, ADC_CH_SEL, from bit 15 down: the chip's channel order on the wire.
CHIP_CHANNELS: tuple[str, ...] = ("I4", "I1", "V1", "I2", "V2", "I3", "V3")
_WIDTH_OF_CODE = {0b00: 4, 0b01: 3, 0b10: 2}


class BridgeFormatError(ValueError):
    """A frame that cannot be encoded (too many sets, a payload of the wrong length)."""


def channels_of(dma_ctrl: int) -> tuple[str, ...]:
    """The channels a DMACtrl value selects, in the order the chip sends them."""
    return tuple(name for bit, name in zip(range(15, 8, -1), CHIP_CHANNELS, strict=True) if dma_ctrl >> bit & 1)


def width_of(dma_ctrl: int) -> int | None:
    """Bytes per sample for a DMACtrl value's CH_BITWIDTH (bits 7:6); None for the reserved code."""
    return _WIDTH_OF_CODE.get(dma_ctrl >> 6 & 0b11)


@dataclass(frozen=True)
class BridgeFrame:
    """One intact frame: header fields and the payload as the chip clocked it out."""

    seq: int
    flags: int
    first_index: int
    n_sets: int
    width: int
    dma_ctrl: int
    sync_losses: int
    payload: bytes

    @property
    def channels(self) -> tuple[str, ...]:
        """The channels of each set, in wire order."""
        return channels_of(self.dma_ctrl)

    def encode(self) -> bytes:
        """The frame on the wire, CRC included."""
        expected = self.n_sets * len(self.channels) * self.width
        if not 1 <= self.n_sets <= MAX_SETS or self.width not in WIDTHS:
            raise BridgeFormatError(f"{self.n_sets} sets of width {self.width} cannot be framed")
        if len(self.payload) != expected:
            raise BridgeFormatError(f"payload of {len(self.payload)} bytes, expected {expected}")
        head = HEADER.pack(MAGIC, VERSION, self.flags, self.seq & 0xFFFF, self.n_sets, self.width,
                           self.first_index & 0xFFFFFFFF, self.dma_ctrl, self.sync_losses & 0xFF, 0)
        body = head + self.payload
        return body + struct.pack("<I", zlib.crc32(body))


@dataclass(frozen=True)
class BridgeDiscard:
    """Bytes skipped while hunting for a frame; ``reason`` is ``"crc"``, ``"header"`` or ``"noise"``."""

    n_bytes: int
    reason: str


BridgeEvent = BridgeFrame | BridgeDiscard


class BridgeDecoder:
    """Frames out of a byte stream, with resynchronisation after damage."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.crc_errors = 0
        self.header_errors = 0
        self.bytes_discarded = 0

    def reset(self) -> None:
        """Forget buffered bytes (the link was reopened); counters are kept."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[BridgeEvent]:
        """Decode ``data`` (any chunk size); the frames and discards it completes, in order."""
        self._buf += data
        out: list[BridgeEvent] = []
        skipped, reason = 0, "noise"
        while True:
            start = self._buf.find(MAGIC)
            if start < 0:
                # keep a trailing first magic byte: the next chunk may complete it
                keep = 1 if self._buf[-1:] == MAGIC[:1] else 0
                skipped += len(self._buf) - keep
                del self._buf[: len(self._buf) - keep]
                break
            if start:
                skipped += start
                del self._buf[:start]
            if len(self._buf) < HEADER_LEN:
                break
            size = self._frame_size()
            if size is None:
                self.header_errors += 1
                reason = "header"
                skipped += 1
                del self._buf[:1]
                continue
            if len(self._buf) < size:
                break
            body = bytes(self._buf[: size - CRC_LEN])
            (crc,) = struct.unpack_from("<I", self._buf, size - CRC_LEN)
            if zlib.crc32(body) != crc:
                self.crc_errors += 1
                reason = "crc"
                skipped += 1
                del self._buf[:1]
                continue
            if skipped:
                out.append(self._discard(skipped, reason))
                skipped, reason = 0, "noise"
            out.append(_frame(body))
            self.frames += 1
            del self._buf[:size]
        if skipped:
            out.append(self._discard(skipped, reason))
        return out

    def _discard(self, n: int, reason: str) -> BridgeDiscard:
        self.bytes_discarded += n
        return BridgeDiscard(n, reason)

    def _frame_size(self) -> int | None:
        """Total frame length (bytes) the header at the buffer's start announces; None if invalid."""
        fields: tuple[int, ...] = HEADER.unpack_from(self._buf)[1:]
        version, flags, _, n_sets, width, _, dma_ctrl, _, reserved = fields
        n_channels = len(channels_of(dma_ctrl))
        if (version != VERSION or flags & ~KNOWN_FLAGS or reserved or not 1 <= n_sets <= MAX_SETS
                or width not in WIDTHS or width != width_of(dma_ctrl) or n_channels == 0):
            return None
        return int(HEADER_LEN + n_sets * n_channels * width + CRC_LEN)


def _frame(body: bytes) -> BridgeFrame:
    _, _, flags, seq, n_sets, width, first, dma_ctrl, losses, _ = HEADER.unpack_from(body)
    return BridgeFrame(seq=seq, flags=flags, first_index=first, n_sets=n_sets, width=width,
                       dma_ctrl=dma_ctrl, sync_losses=losses, payload=body[HEADER_LEN:])
