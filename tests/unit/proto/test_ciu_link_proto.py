"""Unit tests of the sans-I/O CIU link core: codec, framing, deframing under noise, pairing."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    FLAG,
    CodecError,
    Deframer,
    Frame,
    FrameKind,
    LinkEndpoint,
    LinkError,
    LinkState,
    Message,
    MsgKind,
    PairingComplete,
    PairingFailed,
    Role,
    build_frame,
    crc16,
    short_code,
    token_submit,
)

KEY = bytes(range(32))


def rand(seed: int):
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def test_crc16_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1


def test_message_round_trip_with_all_field_types() -> None:
    msg = Message(MsgKind.STATUS, 42, {"credit": "153.25", "relay": True, "power_w": -2300, "unit": "كيلوواط"})
    assert Message.decode(msg.encode()) == msg


@given(st.dictionaries(st.text(min_size=1, max_size=20), st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1),
                                                                   st.text(max_size=60)), max_size=10),
       st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_message_codec_round_trips(fields: dict, request_id: int) -> None:
    msg = Message(MsgKind.SHORT_CODE_REPLY, request_id, fields)
    assert Message.decode(msg.encode()) == msg


@given(st.binary(max_size=80))
@settings(max_examples=300, deadline=None)
def test_message_decoder_never_crashes_on_garbage(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        Message.decode(data)


def test_token_message_requires_20_digits() -> None:
    with pytest.raises(CodecError):
        token_submit(1, "1234")
    assert token_submit(1, "0" * 20).fields == {"digits": "0" * 20}


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5), st.integers(1, 7))
@settings(max_examples=200, deadline=None)
def test_frames_survive_arbitrary_splitting_and_stuffing(payloads: list[bytes], chunk: int) -> None:
    wire = b"".join(build_frame(KEY, Role.CIU, FrameKind.DATA, i + 1, i + 1, 0, p) for i, p in enumerate(payloads))
    deframer = Deframer()
    out: list = []
    for i in range(0, len(wire), chunk):
        out += deframer.feed(wire[i : i + chunk])
    assert [f.payload for f in out if isinstance(f, Frame)] == payloads


def test_payload_with_flag_and_escape_bytes_is_stuffed() -> None:
    frame = build_frame(KEY, Role.METER, FrameKind.DATA, 1, 1, 0, bytes([FLAG, 0x7D, FLAG]))
    assert frame.count(FLAG) == 2


@given(st.binary(min_size=1, max_size=200))
@settings(max_examples=300, deadline=None)
def test_deframer_resynchronises_after_garbage(garbage: bytes) -> None:
    good = build_frame(KEY, Role.CIU, FrameKind.HEARTBEAT, 5, 0, 0, b"")
    out = Deframer().feed(garbage + bytes([FLAG]) + good)
    frames = [f for f in out if isinstance(f, Frame)]
    assert frames and frames[-1].ctr == 5


def test_corrupted_byte_is_detected_by_crc() -> None:
    frame = bytearray(build_frame(KEY, Role.CIU, FrameKind.DATA, 1, 1, 0, b"\x01hello"))
    frame[6] ^= 0x04
    assert Deframer().feed(bytes(frame)) == ["crc"]


def test_reflected_frame_is_refused() -> None:
    """A frame the meter sent, fed back to the meter, fails the MAC (role byte differs)."""
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    own = build_frame(KEY, Role.METER, FrameKind.HELLO, 0, 0, 0, bytes(16))
    assert [e.reason for e in meter.receive_bytes(own)] == ["mac"]


def _bus(meter: LinkEndpoint, ciu: LinkEndpoint, clock: SimClock, seconds: float, dt: float = 0.01) -> list:
    """Both ends on an ideal half-duplex bus for ``seconds``: each talks only when it holds the turn."""
    events: list = []
    for _ in range(int(round(seconds / dt))):
        clock.advance(dt)
        for a, b in ((meter, ciu), (ciu, meter)):
            events += a.poll()
            events += b.receive_bytes(a.data_to_send())  # every read, also an empty one
    return events


def test_pairing_with_the_right_code_gives_both_sides_the_same_key() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1))
    ciu = LinkEndpoint(Role.CIU, clock, rand(2))
    code = LinkEndpoint.new_pairing_code(rand(3))
    assert len(code) == 8 and code.isdigit()
    meter.start_pairing(code)
    assert ciu.start_pairing(code) == b""  # the CIU waits for its turn on the bus
    events = _bus(meter, ciu, clock, 1.0)
    done = [e for e in events if isinstance(e, PairingComplete)]
    assert len(done) == 2 and done[0].pair_key == done[1].pair_key and done[0].fingerprint == done[1].fingerprint
    assert meter.paired and ciu.paired
    assert "pair_key" not in repr(done[0])  # the key never shows up in logs
    _bus(meter, ciu, clock, 3.0)
    assert meter.state is LinkState.UP and ciu.state is LinkState.UP


def test_pairing_with_a_wrong_code_fails_on_both_sides() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1))
    ciu = LinkEndpoint(Role.CIU, clock, rand(2))
    meter.start_pairing("12345678")
    ciu.start_pairing("12345679")
    events = _bus(meter, ciu, clock, 1.0)
    assert [e for e in events if isinstance(e, PairingFailed)]
    assert not meter.paired and not ciu.paired


def test_pairing_times_out() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1))
    meter.start_pairing("12345678")
    clock.advance(121)
    assert meter.poll() == [PairingFailed("timeout")]


def test_queue_limit_and_bad_keys() -> None:
    clock = SimClock()
    with pytest.raises(LinkError):
        LinkEndpoint(Role.CIU, clock, rand(1), b"short")
    ciu = LinkEndpoint(Role.CIU, clock, rand(1), KEY)
    for i in range(64):
        ciu.send(short_code(i, 1))
    with pytest.raises(LinkError):
        ciu.send(short_code(99, 1))


@given(st.lists(st.tuples(st.sampled_from([1, 2, 3, 0x10, 0x11, 0x20, 0x21, 0x22, 0x99]), st.integers(0, 5),
                          st.integers(0, 3), st.integers(0, 3), st.binary(max_size=300)), max_size=6),
       st.sampled_from([Role.METER, Role.CIU]), st.booleans())
@settings(max_examples=300, deadline=None)
def test_endpoint_survives_well_formed_frames_with_hostile_content(frames, role: Role, pairing: bool) -> None:
    """Frames with a good CRC but arbitrary kind, counters, payload and MAC never crash an endpoint."""
    import struct

    clock = SimClock()
    end = LinkEndpoint(role, clock, rand(1), None if pairing else KEY)
    if pairing:
        end.start_pairing("12345678")
    for kind, ctr, seq, ack, payload in frames:
        body = struct.pack(">BBIII", 1, kind, ctr, seq, ack) + payload + bytes(8)
        raw = body + struct.pack(">H", crc16(body))
        stuffed = bytearray([FLAG])
        for b in raw:
            stuffed += bytes([0x7D, b ^ 0x20]) if b in (FLAG, 0x7D) else bytes([b])
        stuffed.append(FLAG)
        end.receive_bytes(bytes(stuffed))
        clock.advance(0.3)
        end.poll()
    assert not end.paired or not pairing


def _frames(data: bytes) -> list[Frame]:
    return [f for f in Deframer().feed(data) if isinstance(f, Frame)]


def test_ciu_talks_only_in_the_turn_a_final_meter_frame_gives_it() -> None:
    clock = SimClock()
    ciu = LinkEndpoint(Role.CIU, clock, rand(2), KEY)
    assert ciu.send(token_submit(1, "1" * 20)) == b"" and ciu.data_to_send() == b""
    clock.advance(5.0)
    ciu.poll()
    assert ciu.data_to_send() == b""  # no hello either: nobody polled
    poll = build_frame(bytes(32), Role.METER, FrameKind.POLL, 0, 0, 0, b"", final=False)
    ciu.receive_bytes(poll)
    clock.advance(0.01)
    assert ciu.data_to_send() == b""  # not final: the meter has not finished its turn
    ciu.receive_bytes(build_frame(bytes(32), Role.METER, FrameKind.POLL, 0, 0, 0, b""))
    assert ciu.data_to_send() == b""  # turnaround first
    clock.advance(ciu.config.turnaround_s)
    frames = _frames(ciu.data_to_send())
    assert [f.kind for f in frames] == [FrameKind.HELLO] and frames[-1].final and not frames[-1].from_meter
    assert ciu.data_to_send() == b""  # one answer per turn


def test_ciu_gives_up_a_turn_it_cannot_start_in_its_window() -> None:
    clock = SimClock()
    ciu = LinkEndpoint(Role.CIU, clock, rand(2), KEY)
    ciu.receive_bytes(b"")
    clock.advance(0.05)
    ciu.receive_bytes(build_frame(bytes(32), Role.METER, FrameKind.POLL, 0, 0, 0, b""))
    clock.advance(ciu.config.reply_window_s)  # the window counts from the read before
    assert ciu.data_to_send() == b"" and ciu.stats.late_turns == 1


def test_a_frame_still_coming_in_takes_the_turn_away() -> None:
    clock = SimClock()
    ciu = LinkEndpoint(Role.CIU, clock, rand(2), KEY)
    poll = build_frame(bytes(32), Role.METER, FrameKind.POLL, 0, 0, 0, b"")
    ciu.receive_bytes(poll[:-1])  # the closing flag lost ...
    ciu.receive_bytes(poll[-1:] + poll[1:8])  # ... the next frame's opening flag closes it, more follows
    clock.advance(0.01)
    assert not ciu.talking_allowed and ciu.data_to_send() == b""


def test_meter_polls_and_takes_the_turn_back_after_silence() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    first = _frames(meter.data_to_send())
    assert [f.kind for f in first] == [FrameKind.POLL] and first[0].final and first[0].from_meter
    clock.advance(meter.config.reply_timeout_s)
    assert meter.data_to_send() == b""  # still waiting (its own frame took time on the wire too)
    clock.advance(0.05)  # 180 ms of silence after the end of the poll, and the poll period is over
    assert [f.kind for f in _frames(meter.data_to_send())] == [FrameKind.POLL]
    assert meter.stats.reply_timeouts == 1


def test_own_echo_is_dropped_but_a_reflected_frame_is_still_refused() -> None:
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand(1), KEY)
    sent = meter.data_to_send()
    assert meter.receive_bytes(sent) == [] and meter.stats.echoes == 1
    assert [e.reason for e in meter.receive_bytes(build_frame(KEY, Role.METER, FrameKind.HELLO, 0, 0, 0,
                                                              bytes(16)))] == ["mac"]
