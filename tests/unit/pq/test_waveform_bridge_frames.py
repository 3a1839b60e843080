"""The waveform bridge's frame decoder: framing, CRC, resynchronisation, the header's checks."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from meterd.pq.bridge_frames import (
    FLAG_SYNC_LOST,
    HEADER_LEN,
    BridgeDecoder,
    BridgeDiscard,
    BridgeFormatError,
    BridgeFrame,
    channels_of,
    width_of,
)

DMA_CTRL = 0xFE44


def frame(seq: int, first: int = 0, n_sets: int = 4, flags: int = 0) -> BridgeFrame:
    payload = bytes((seq + i) & 0xFF for i in range(n_sets * 7 * 3))
    return BridgeFrame(seq=seq, flags=flags, first_index=first, n_sets=n_sets, width=3, dma_ctrl=DMA_CTRL,
                       sync_losses=0, payload=payload)


def frames_of(events: list[BridgeFrame | BridgeDiscard]) -> list[BridgeFrame]:
    return [e for e in events if isinstance(e, BridgeFrame)]


def test_dma_ctrl_gives_channels_in_wire_order_and_width() -> None:
    assert channels_of(0xFE44) == ("I4", "I1", "V1", "I2", "V2", "I3", "V3")
    assert channels_of(0x7E44) == ("I1", "V1", "I2", "V2", "I3", "V3")  # the chip's default: no I4
    assert (width_of(0xFE44), width_of(0xFE84), width_of(0xFE04), width_of(0xFEC4)) == (3, 2, 4, None)


def test_header_layout_and_crc_follow_the_document() -> None:
    wire = frame(seq=0x1234, first=0xDEADBEEF, n_sets=1, flags=FLAG_SYNC_LOST).encode()
    assert wire[:2] == b"WB" and wire[2] == 1 and wire[3] == FLAG_SYNC_LOST
    assert wire[4:6] == b"\x34\x12" and wire[6] == 1 and wire[7] == 3
    assert wire[8:12] == b"\xef\xbe\xad\xde" and wire[12:14] == b"\x44\xfe"
    assert len(wire) == HEADER_LEN + 21 + 4
    assert struct.unpack("<I", wire[-4:])[0] == zlib.crc32(wire[:-4])


def test_frames_come_out_whatever_the_chunk_size() -> None:
    wire = b"".join(frame(s, first=4 * s).encode() for s in range(20))
    rng = random.Random(1)
    dec = BridgeDecoder()
    out: list[BridgeFrame] = []
    pos = 0
    while pos < len(wire):
        step = rng.randint(1, 90)
        out += frames_of(dec.feed(wire[pos:pos + step]))
        pos += step
    assert [f.seq for f in out] == list(range(20))
    assert out[7] == frame(7, first=28)
    assert (dec.frames, dec.crc_errors, dec.bytes_discarded) == (20, 0, 0)


def test_a_corrupted_frame_is_lost_alone_and_counted() -> None:
    wires = [bytearray(frame(s, first=4 * s).encode()) for s in range(6)]
    wires[2][HEADER_LEN + 10] ^= 0x40  # a payload bit
    wires[4][5] ^= 0x01  # the sequence number
    dec = BridgeDecoder()
    events = dec.feed(b"".join(bytes(w) for w in wires))
    assert [f.seq for f in frames_of(events)] == [0, 1, 3, 5]
    assert dec.crc_errors == 2
    discards = [e for e in events if isinstance(e, BridgeDiscard)]
    assert [d.n_bytes for d in discards] == [len(wires[2]), len(wires[4])]
    assert dec.bytes_discarded == len(wires[2]) + len(wires[4])


def test_noise_and_a_cut_frame_before_the_stream_are_skipped() -> None:
    good = frame(9).encode()
    dec = BridgeDecoder()
    events = dec.feed(b"\x00\xffW" + good[:30] + good + good)
    assert [f.seq for f in frames_of(events)] == [9, 9]
    assert dec.bytes_discarded == 3 + 30


def test_a_header_that_cannot_be_is_refused_and_the_next_frame_found() -> None:
    bad_width = bytearray(frame(1).encode())
    bad_width[7] = 5
    bad_version = bytearray(frame(2).encode())
    bad_version[2] = 9
    dec = BridgeDecoder()
    events = dec.feed(bytes(bad_width) + bytes(bad_version) + frame(3).encode())
    assert [f.seq for f in frames_of(events)] == [3]
    assert dec.header_errors == 2


def test_a_magic_split_across_chunks_is_kept() -> None:
    wire = frame(4).encode()
    dec = BridgeDecoder()
    assert dec.feed(b"\x00" + wire[:1]) == [BridgeDiscard(1, "noise")]
    assert frames_of(dec.feed(wire[1:])) == [frame(4)]


def test_encode_refuses_a_payload_that_does_not_fit_the_header() -> None:
    with pytest.raises(BridgeFormatError):
        BridgeFrame(0, 0, 0, 2, 3, DMA_CTRL, 0, b"\x00" * 41).encode()
    with pytest.raises(BridgeFormatError):
        BridgeFrame(0, 0, 0, 65, 3, DMA_CTRL, 0, b"\x00" * 65 * 21).encode()
