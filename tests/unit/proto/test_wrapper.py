"""IEC 62056-47 wrapper framing (meterd.proto.wrapper), byte by byte, plus fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.proto.wrapper import (
    HEADER_LEN,
    MAX_APDU,
    Discarded,
    WrapperDecoder,
    WrapperError,
    WrapperFrame,
)

GET = bytes.fromhex("C001C100080000010000FF0200")  # GET-Request-Normal of the clock 0-0:1.0.0.255/2


def test_frame_encoding_is_version_source_destination_length_apdu():
    # client SAP 16 -> logical device 1, 13 octets
    assert WrapperFrame(16, 1, GET).encode() == bytes.fromhex("0001" "0010" "0001" "000D") + GET


def test_reply_swaps_the_wports():
    frame = WrapperFrame(16, 1, GET)
    assert frame.reply(b"\xc4\x01\xc1\x00\x09\x00") == WrapperFrame(1, 16, b"\xc4\x01\xc1\x00\x09\x00")
    assert frame.reply(b"\x01").encode() == bytes.fromhex("0001000100100001") + b"\x01"


def test_encoding_refuses_what_does_not_fit_the_header():
    with pytest.raises(WrapperError, match="exceeds"):
        WrapperFrame(16, 1, bytes(MAX_APDU + 1)).encode()
    with pytest.raises(WrapperError, match="wPort"):
        WrapperFrame(0x10000, 1, GET).encode()
    with pytest.raises(WrapperError, match="wPort"):
        WrapperFrame(16, -1, GET).encode()
    assert len(WrapperFrame(16, 1, bytes(MAX_APDU)).encode()) == HEADER_LEN + MAX_APDU


def test_decoder_byte_by_byte_yields_the_frame_only_with_its_last_octet():
    raw = WrapperFrame(16, 1, GET).encode()
    dec = WrapperDecoder()
    for i, b in enumerate(raw[:-1]):
        assert dec.feed(bytes((b,))) == []
        assert dec.pending() == i + 1
    assert dec.feed(raw[-1:]) == [WrapperFrame(16, 1, GET)]
    assert dec.pending() == 0
    assert dec.discarded == 0


def test_decoder_splits_at_every_point_and_keeps_frames_in_order():
    a, b = WrapperFrame(16, 1, GET), WrapperFrame(17, 1, b"\x62\x00")
    raw = a.encode() + b.encode()
    for cut in range(len(raw) + 1):
        dec = WrapperDecoder()
        assert dec.feed(raw[:cut]) + dec.feed(raw[cut:]) == [a, b], cut


def test_decoder_holds_a_header_announcing_more_than_received():
    dec = WrapperDecoder()
    assert dec.feed(bytes.fromhex("000100100001000D") + GET[:5]) == []
    assert dec.pending() == HEADER_LEN + 5
    assert dec.feed(GET[5:]) == [WrapperFrame(16, 1, GET)]


def test_bad_version_drops_the_buffered_input_and_framing_restarts():
    dec = WrapperDecoder()
    bad = bytes.fromhex("0002" "0010" "0001" "000D") + GET
    good = WrapperFrame(16, 1, GET).encode()
    assert dec.feed(bad + good) == [Discarded("bad version 2", len(bad) + len(good))]
    assert dec.pending() == 0
    assert dec.discarded == len(bad) + len(good)
    assert dec.feed(good) == [WrapperFrame(16, 1, GET)]


def test_bad_version_is_seen_once_the_header_is_complete():
    dec = WrapperDecoder()
    header = bytes.fromhex("0000001000010001")
    for b in header[:-1]:
        assert dec.feed(bytes((b,))) == []
    assert dec.feed(header[-1:]) == [Discarded("bad version 0", HEADER_LEN)]


def test_length_above_the_maximum_drops_the_input():
    dec = WrapperDecoder(max_apdu=16)
    assert dec.feed(WrapperFrame(16, 1, bytes(16)).encode()) == [WrapperFrame(16, 1, bytes(16))]
    too_long = bytes.fromhex("0001001000010011") + bytes(3)  # 17 octets announced
    assert dec.feed(too_long) == [Discarded("length 17 above the maximum 16", HEADER_LEN + 3)]
    assert dec.pending() == 0


def test_empty_apdu_is_consumed_and_reported_without_losing_the_next_frame():
    dec = WrapperDecoder()
    empty = bytes.fromhex("0001001000010000")
    assert dec.feed(empty + WrapperFrame(16, 1, GET).encode()) == [Discarded("empty APDU", HEADER_LEN),
                                                                   WrapperFrame(16, 1, GET)]
    assert dec.discarded == HEADER_LEN


def test_frames_to_any_destination_are_delivered_with_their_ports():
    raw = WrapperFrame(0x1234, 0xFFFF, b"\xc0").encode()
    assert raw[:8] == bytes.fromhex("00011234FFFF0001")
    assert WrapperDecoder().feed(raw) == [WrapperFrame(0x1234, 0xFFFF, b"\xc0")]


def test_clear_forgets_a_partial_frame():
    dec = WrapperDecoder()
    dec.feed(WrapperFrame(16, 1, GET).encode()[:10])
    dec.clear()
    assert dec.pending() == 0
    assert dec.feed(WrapperFrame(1, 1, b"\x60").encode()) == [WrapperFrame(1, 1, b"\x60")]


def test_max_apdu_must_fit_the_length_field():
    for bad in (0, MAX_APDU + 1):
        with pytest.raises(ValueError, match="max_apdu"):
            WrapperDecoder(bad)


_frames = st.lists(st.builds(WrapperFrame, st.integers(0, MAX_APDU), st.integers(0, MAX_APDU),
                             st.binary(min_size=1, max_size=300)), max_size=5)


@settings(max_examples=200, deadline=None)
@given(_frames, st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_any_chunking_gives_back_the_frames(frames: list[WrapperFrame], sizes: list[int]) -> None:
    raw = b"".join(f.encode() for f in frames)
    dec, out, pos, i = WrapperDecoder(), [], 0, 0
    while pos < len(raw):
        step = sizes[i % len(sizes)]
        out += dec.feed(raw[pos:pos + step])
        pos, i = pos + step, i + 1
    assert out == frames
    assert dec.pending() == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_garbage_never_raises_and_accounts_for_every_octet(data: bytes) -> None:
    dec = WrapperDecoder()
    events = dec.feed(data)
    used = sum(HEADER_LEN + len(e.apdu) for e in events if isinstance(e, WrapperFrame))
    assert used + dec.discarded + dec.pending() == len(data)
