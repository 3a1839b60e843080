"""HDLC frame codec and secondary-station link (meterd.proto.hdlc), byte by byte, plus fuzzing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.proto import hdlc
from meterd.proto.hdlc import (
    ApduReceived,
    Frame,
    FrameDecoder,
    HdlcLink,
    HdlcParameters,
    LinkClosed,
    LinkState,
    Send,
    decode_address,
    encode_address,
    fcs16,
)

CLIENT = encode_address(16, None, 1)      # client SAP 16 -> 0x21
SERVER = encode_address(1, None, 1)       # logical device 1 -> 0x03


def test_fcs16_is_crc16_x25():
    assert fcs16(b"123456789") == 0x906E


def test_snrm_frame_of_the_green_book_example():
    # 7E A0 07 03 21 93 0F 01 7E: SNRM from client 16 to server 1 (1-octet addresses)
    assert Frame(SERVER, CLIENT, 0x93).encode() == bytes.fromhex("7EA00703219 30F017E".replace(" ", ""))


def test_address_round_trip():
    for upper, lower, size in ((1, None, 1), (1, 17, 2), (0x3FFF, 0x1234, 4)):
        assert decode_address(encode_address(upper, lower, size)) == (upper, lower)


def test_decoder_frames_by_length_with_flags_in_payload():
    info = b"\x7e" * 20 + b"x\x7e\x7e"
    raw = Frame(CLIENT, SERVER, 0x10, info).encode()
    dec = FrameDecoder()
    frames = []
    for b in raw:  # byte by byte
        frames += dec.feed(bytes((b,)))
    assert frames == [Frame(CLIENT, SERVER, 0x10, info)]
    assert dec.dropped == 0


def test_decoder_drops_bad_fcs_and_resynchronises():
    good = Frame(SERVER, CLIENT, 0x93).encode()
    bad = bytearray(Frame(SERVER, CLIENT, 0x10, b"\xe6\xe6\x00abc").encode())
    bad[-2] ^= 0xFF
    dec = FrameDecoder()
    assert dec.feed(b"\x00garbage" + bytes(bad) + good) == [Frame(SERVER, CLIENT, 0x93)]
    assert dec.dropped >= 1


def test_decoder_accepts_shared_flags_between_frames():
    a = Frame(SERVER, CLIENT, 0x93).encode()
    b = Frame(SERVER, CLIENT, 0x53).encode()
    assert [f.control for f in FrameDecoder().feed(a + b[1:])] == [0x93, 0x53]


def _link(max_info: int = 128) -> HdlcLink:
    return HdlcLink(HdlcParameters(max_info_tx=max_info, max_info_rx=max_info))


def _sends(events):
    return [FrameDecoder().feed(e.data)[0] for e in events if isinstance(e, Send)]


def _connect(link: HdlcLink, info: bytes = b"") -> Frame:
    (ua,) = _sends(link.receive(Frame(SERVER, CLIENT, 0x93, info).encode()))
    return ua


def test_snrm_ua_negotiates_the_smaller_info_length():
    link = _link(2030)
    proposal = bytes.fromhex("818014050207EE060207EE070400000001080400000001")
    ua = _connect(link, proposal)
    assert ua.control == 0x73 and link.state is LinkState.NRM
    assert ua.info == bytes.fromhex("818014050207EE060207EE070400000001080400000001")
    link2 = _link(2030)
    ua2 = _connect(link2)  # no parameters: defaults 128
    assert ua2.info == bytes.fromhex("8180120501800601800704000000010804000000 01".replace(" ", ""))
    assert link2.max_info_tx == 128


def test_frames_before_snrm_get_dm_and_disc_in_ndm_gets_dm():
    link = _link()
    (dm,) = _sends(link.receive(Frame(SERVER, CLIENT, 0x10, b"\xe6\xe6\x00\xc0").encode()))
    assert dm.control == 0x1F
    (dm2,) = _sends(link.receive(Frame(SERVER, CLIENT, 0x53).encode()))
    assert dm2.control == 0x1F


def test_frames_for_another_server_address_are_ignored():
    link = _link()
    other = encode_address(2, None, 1)
    assert link.receive(Frame(other, CLIENT, 0x93).encode()) == []


def test_information_exchange_segmentation_and_disconnect():
    link = _link(128)
    _connect(link)
    events = link.receive(Frame(SERVER, CLIENT, 0x10, b"\xe6\xe6\x00\xc0\x01").encode())
    assert events == [ApduReceived(16, b"\xc0\x01")]
    apdu = bytes(range(256)) * 2
    first = _sends(link.send_apdu(apdu))[0]
    assert first.segmented and first.control == 0x30  # N(R)=1, F, N(S)=0
    payload = first.info
    while True:
        (frame,) = _sends(link.receive(Frame(SERVER, CLIENT, (link._vs << 5) | 0x11).encode()))
        payload += frame.info
        if not frame.segmented:
            break
    assert payload == hdlc.LLC_RESPONSE + apdu
    events = link.receive(Frame(SERVER, CLIENT, 0x53).encode())
    assert isinstance(events[0], LinkClosed) and _sends(events)[0].control == 0x73
    assert link.state is LinkState.NDM


def test_client_segments_are_reassembled():
    link = _link(128)
    _connect(link)
    body = b"\xe6\xe6\x00" + b"A" * 200
    (rr,) = _sends(link.receive(Frame(SERVER, CLIENT, 0x10, body[:128], segmented=True).encode()))
    assert rr.control & 0x0F == 0x01 and rr.control >> 5 == 1
    events = link.receive(Frame(SERVER, CLIENT, 0x12 | (0 << 5), body[128:]).encode())
    assert events == [ApduReceived(16, b"A" * 200)]


def test_lost_answer_is_repeated_on_a_repeated_request():
    link = _link()
    _connect(link)
    request = Frame(SERVER, CLIENT, 0x10, b"\xe6\xe6\x00\xc0").encode()
    link.receive(request)
    answer = link.send_apdu(b"\xc4\x01")[0]
    assert link.receive(request) == [answer]


def test_oversized_information_field_gets_frmr():
    link = _link(128)
    _connect(link)
    (frmr,) = _sends(link.receive(Frame(SERVER, CLIENT, 0x10, b"\xe6\xe6\x00" + b"x" * 300).encode()))
    assert frmr.control == 0x97


def test_inactivity_timeout_returns_to_ndm():
    link = _link()
    _connect(link)
    assert link.timeout() == [LinkClosed("inactivity")]
    assert link.state is LinkState.NDM
    assert link.timeout() == []


def test_snrm_while_connected_resets_the_association():
    link = _link()
    _connect(link)
    events = link.receive(Frame(SERVER, CLIENT, 0x93).encode())
    assert isinstance(events[0], LinkClosed)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from([b"\x7e", b"\x7e\xa0", b"\x7e\xa8\x07"])),
                max_size=30))
def test_fuzz_decoder_never_raises_and_recovers(chunks):
    dec = FrameDecoder()
    for chunk in chunks:
        dec.feed(chunk)
    marker = Frame(SERVER, CLIENT, 0x93).encode()
    # a corrupt length can hold at most one maximum frame; valid frames after it are recovered
    frames = dec.feed(marker * (hdlc.MAX_FRAME_LEN // len(marker) + 2))
    assert Frame(SERVER, CLIENT, 0x93) in frames
    dec.feed(b"\x7e\xa0")
    dec.clear()  # inter-octet time-out
    assert dec.feed(marker) == [Frame(SERVER, CLIENT, 0x93)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=10), st.binary(max_size=200))
def test_fuzz_link_never_raises(chunks, info):
    link = _link()
    _connect(link)
    for chunk in chunks:
        for event in link.receive(chunk):
            assert isinstance(event, Send | ApduReceived | LinkClosed)
    link.receive(Frame(SERVER, CLIENT, 0x10, info).encode())
    link.send_apdu(info)
