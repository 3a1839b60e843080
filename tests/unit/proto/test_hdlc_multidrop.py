"""HDLC on a multi-drop bus (meterd.proto.hdlc): physical addresses, broadcast, resynchronisation
after a corrupt header, the inactivity time-out only this station's frames restart, and the
negotiated windows and information fields, byte by byte."""

from __future__ import annotations

import pytest

from meterd.proto import hdlc
from meterd.proto.hdlc import (
    Addressed,
    ApduReceived,
    Frame,
    FrameDecoder,
    HdlcLink,
    HdlcParameters,
    LinkClosed,
    LinkState,
    Send,
    encode_address,
)

CLIENT = encode_address(16, None, 1)
PHYS = 0x23


def _bus_link(**kw: object) -> HdlcLink:
    params: dict[str, object] = {"physical_address": PHYS, "max_info_tx": 2030, "max_info_rx": 2030,
                                 "window_tx": 7, "window_rx": 7, "inactivity_s": 120.0}
    params.update(kw)
    return HdlcLink(HdlcParameters(**params))  # type: ignore[arg-type]


def _bytewise(link: HdlcLink, raw: bytes, now_s: float = 0.0) -> list[hdlc.HdlcEvent]:
    events: list[hdlc.HdlcEvent] = []
    for b in raw:
        events += link.receive(bytes((b,)), now_s)
    return events


def _frames(events: list[hdlc.HdlcEvent]) -> list[Frame]:
    out: list[Frame] = []
    for e in events:
        if isinstance(e, Send):
            out += FrameDecoder().feed(e.data)
    return out


def _snrm(dest: bytes, info: bytes = b"") -> bytes:
    return Frame(dest, CLIENT, 0x93, info).encode()


@pytest.mark.parametrize("dest,expected", [
    (encode_address(1, PHYS, 2), Addressed.OURS),
    (encode_address(1, PHYS, 4), Addressed.OURS),
    (encode_address(1, PHYS + 1, 2), Addressed.OTHER),            # the meter next to it
    (encode_address(1, PHYS + 1, 4), Addressed.OTHER),
    (encode_address(1, None, 1), Addressed.OTHER),                # names no device of the bus
    (encode_address(2, PHYS, 2), Addressed.OTHER),                # a logical device it lacks
    (encode_address(1, 0x7F, 2), Addressed.BROADCAST),            # all stations, logical device 1
    (encode_address(0x7F, PHYS, 2), Addressed.BROADCAST),         # every logical device of this one
    (encode_address(0x3FFF, 0x3FFF, 4), Addressed.BROADCAST),
    (encode_address(0x7F, None, 1), Addressed.BROADCAST),
    (encode_address(1, 0x7E, 2), Addressed.OTHER),                # calling address
    (encode_address(1, 0x00, 2), Addressed.OTHER),                # no station
])
def test_a_bus_station_takes_its_own_address_and_the_all_station_address(dest, expected):
    assert HdlcParameters(physical_address=PHYS).addressed(dest) is expected


def test_a_physical_address_above_0x7d_is_reached_by_the_four_octet_form_only():
    params = HdlcParameters(physical_address=0x1234)
    assert params.addressed(encode_address(1, 0x1234, 4)) is Addressed.OURS
    assert params.addressed(encode_address(1, 0x1234 & 0x7F, 2)) is Addressed.OTHER


def test_point_to_point_station_takes_any_lower_address():
    params = HdlcParameters()
    assert params.addressed(encode_address(1, None, 1)) is Addressed.OURS
    assert params.addressed(encode_address(1, 0x45, 2)) is Addressed.OURS
    assert params.addressed(encode_address(1, 0x7F, 2)) is Addressed.BROADCAST


@pytest.mark.parametrize("bad", [{"physical_address": 0x0F}, {"physical_address": 0x3FFE},
                                 {"max_info_rx": 2031}, {"max_info_tx": 31}, {"window_tx": 8},
                                 {"window_rx": 0}, {"inactivity_s": -1.0}])
def test_parameters_outside_the_profile_are_refused(bad):
    with pytest.raises(ValueError):
        HdlcParameters(**bad)


def test_only_its_own_address_gets_an_answer():
    link = _bus_link()
    assert _bytewise(link, _snrm(encode_address(1, PHYS + 1, 2))) == []
    assert link.state is LinkState.NDM and link.foreign_frames == 1
    assert _bytewise(link, _snrm(encode_address(1, None, 1))) == []
    (ua,) = _frames(_bytewise(link, _snrm(encode_address(1, PHYS, 2))))
    assert ua.control == 0x73 and ua.src == encode_address(1, PHYS, 2) and ua.dest == CLIENT
    assert link.state is LinkState.NRM


def test_broadcast_ui_is_accepted_and_never_answered():
    link = _bus_link()
    everyone = encode_address(1, 0x7F, 2)
    ui = Frame(everyone, CLIENT, 0x13, hdlc.LLC_REQUEST + b"\xc1\x01").encode()
    assert _bytewise(link, ui) == [ApduReceived(16, b"\xc1\x01", broadcast=True)]
    for control in (0x93, 0x53, 0x11, 0x10):  # SNRM, DISC, RR, I to everyone: ignored, no answer
        info = hdlc.LLC_REQUEST + b"\xc0" if control == 0x10 else b""
        assert _bytewise(link, Frame(everyone, CLIENT, control, info).encode()) == []
    assert link.state is LinkState.NDM and link.broadcast_frames == 5


def test_corrupt_length_field_does_not_deafen_the_line():
    """``7E A7 FF 03 23`` (length 0x7FF) and then an SNRM every 5 s: the first SNRM gets its UA."""
    link = _bus_link(physical_address=None)
    snrm = _snrm(encode_address(1, None, 1))
    events = _bytewise(link, bytes.fromhex("7EA7FF0323"), 0.0)
    events += _bytewise(link, snrm, 5.0)
    assert [f.control for f in _frames(events)] == [0x73]
    assert link.dropped_frames >= 1


@pytest.mark.parametrize("garbage", [
    bytes.fromhex("7EA0FF0323"),                      # a length the header's HCS belies
    bytes.fromhex("7EA01F03219310"),                  # an information frame whose HCS is wrong
    bytes.fromhex("7EA005"),                          # shorter than any header
    bytes.fromhex("7EA0200303030303"),                # an address of five octets
    bytes.fromhex("7EB0"),                            # not frame format type 3
])
def test_any_corrupt_header_is_dropped_at_once(garbage):
    link = _bus_link(physical_address=None)
    events = _bytewise(link, garbage + _snrm(encode_address(1, None, 1)))
    assert [f.control for f in _frames(events)] == [0x73]


def test_bad_fcs_resynchronises_on_the_next_flag():
    link = _bus_link(physical_address=None)
    bad = bytearray(Frame(encode_address(1, None, 1), CLIENT, 0x93, b"\x81\x80\x00").encode())
    bad[-2] ^= 0x01
    good = _snrm(encode_address(1, None, 1))
    events = _bytewise(link, bytes(bad[:-1]) + good)  # shares its closing flag with the next frame
    assert [f.control for f in _frames(events)] == [0x73]


def test_inactivity_runs_from_the_last_valid_frame_for_this_station():
    link = _bus_link(inactivity_s=120.0)
    ours = encode_address(1, PHYS, 2)
    _bytewise(link, _snrm(ours), 0.0)
    assert link.deadline_s == 120.0
    other = encode_address(1, PHYS + 1, 2)
    for t in range(5, 200, 5):  # the head end polls the next meter, and noise comes in between
        _bytewise(link, _snrm(other), float(t))
        _bytewise(link, b"\x7e\xa0\x19\x00garbage", float(t))
        _bytewise(link, Frame(encode_address(1, 0x7F, 2), CLIENT, 0x13, hdlc.LLC_REQUEST + b"x").encode(), float(t))
        if t < 120:
            assert link.poll(float(t)) == []
    assert link.deadline_s == 120.0
    assert link.poll(120.0) == [LinkClosed("inactivity")]
    assert link.state is LinkState.NDM and link.deadline_s is None


def test_a_valid_frame_for_this_station_restarts_the_inactivity_time():
    link = _bus_link(inactivity_s=120.0)
    ours = encode_address(1, PHYS, 2)
    _bytewise(link, _snrm(ours), 0.0)
    _bytewise(link, Frame(ours, CLIENT, 0x11).encode(), 100.0)  # RR
    assert link.deadline_s == 220.0 and link.poll(219.9) == []


def _proposal(tx: int, rx: int, win_tx: int, win_rx: int) -> bytes:
    body = (bytes((0x05, 2)) + tx.to_bytes(2, "big") + bytes((0x06, 2)) + rx.to_bytes(2, "big")
            + bytes((0x07, 4)) + win_tx.to_bytes(4, "big") + bytes((0x08, 4)) + win_rx.to_bytes(4, "big"))
    return bytes((0x81, 0x80, len(body))) + body


def test_snrm_negotiates_info_2030_and_window_7_within_the_configuration():
    link = _bus_link(physical_address=None, max_info_tx=1024, max_info_rx=2030, window_tx=7, window_rx=3)
    (ua,) = _frames(_bytewise(link, _snrm(encode_address(1, None, 1), _proposal(2030, 2030, 7, 7))))
    # UA from the server's side: its TX 1024 (configured), RX 2030, window TX 7, RX 3 (configured)
    assert ua.info == bytes.fromhex("818014" "05020400" "060207EE" "070400000007" "080400000003")
    assert (link.max_info_tx, link.max_info_rx, link.window_tx, link.window_rx) == (1024, 2030, 7, 3)


def test_client_proposal_below_the_configuration_wins():
    link = _bus_link(physical_address=None)
    _bytewise(link, _snrm(encode_address(1, None, 1), _proposal(512, 256, 2, 4)))
    assert (link.max_info_tx, link.max_info_rx, link.window_tx, link.window_rx) == (256, 512, 4, 2)


def _connected(win: int, info: int = 128) -> tuple[HdlcLink, bytes]:
    link = _bus_link(physical_address=None)
    dest = encode_address(1, None, 1)
    _bytewise(link, _snrm(dest, _proposal(info, info, win, win)))
    return link, dest


def test_window_of_three_sends_three_segments_per_poll_final_bit_on_the_last():
    link, dest = _connected(3, 128)
    (req,) = link.receive(Frame(dest, CLIENT, 0x10, hdlc.LLC_REQUEST + b"\xc0").encode())
    assert isinstance(req, ApduReceived)
    apdu = bytes(range(256)) * 4  # 1027 octets with the LLC: 9 segments of 128
    first = _frames(link.send_apdu(apdu))
    assert [f.control for f in first] == [0x20, 0x22, 0x34]  # N(R)=1; N(S) 0,1,2; F on the third
    assert all(f.segmented for f in first)
    payload = b"".join(f.info for f in first)
    nr = 3
    while True:
        burst = _frames(link.receive(Frame(dest, CLIENT, (nr << 5) | 0x11).encode()))
        payload += b"".join(f.info for f in burst)
        nr = (nr + len(burst)) % 8
        assert burst[-1].control & hdlc.PF and not any(f.control & hdlc.PF for f in burst[:-1])
        if not burst[-1].segmented:
            break
    assert payload == hdlc.LLC_RESPONSE + apdu


def test_window_go_back_n_after_a_lost_segment():
    link, dest = _connected(3, 128)
    link.receive(Frame(dest, CLIENT, 0x10, hdlc.LLC_REQUEST + b"\xc0").encode())
    first = _frames(link.send_apdu(bytes(600)))
    # the client got N(S)=0 only: RR N(R)=1 -> segments 1 and 2 again
    again = _frames(link.receive(Frame(dest, CLIENT, (1 << 5) | 0x11).encode()))
    assert [f.info for f in again] == [f.info for f in first[1:]]
    assert [(f.control >> 1) & 7 for f in again] == [1, 2] and again[-1].control & hdlc.PF


def test_client_window_frames_without_poll_get_no_answer_until_the_poll():
    link, dest = _connected(3, 128)
    body = hdlc.LLC_REQUEST + b"B" * 300
    assert link.receive(Frame(dest, CLIENT, 0x00, body[:128], segmented=True).encode()) == []
    assert link.receive(Frame(dest, CLIENT, 0x02, body[128:256], segmented=True).encode()) == []
    events = link.receive(Frame(dest, CLIENT, 0x14, body[256:]).encode())
    assert events == [ApduReceived(16, b"B" * 300)]


def test_out_of_sequence_client_frame_gets_rr_with_the_expected_number():
    link, dest = _connected(3, 128)
    body = hdlc.LLC_REQUEST + b"C" * 300
    link.receive(Frame(dest, CLIENT, 0x00, body[:128], segmented=True).encode())
    # N(S)=1 lost; N(S)=2 with the poll: out of sequence, RR N(R)=1 asks for it again
    (rr,) = _frames(link.receive(Frame(dest, CLIENT, 0x14, body[256:]).encode()))
    assert rr.control == 0x31


def test_info_2030_frames_round_trip_byte_by_byte():
    link, dest = _connected(1, 2030)
    body = hdlc.LLC_REQUEST + bytes(2027)
    events = _bytewise(link, Frame(dest, CLIENT, 0x10, body).encode())
    assert events == [ApduReceived(16, bytes(2027))]
    (answer,) = _frames(link.send_apdu(bytes(2027)))
    assert len(answer.info) == 2030 and not answer.segmented


def test_a_frame_cut_off_on_the_line_is_dropped_after_the_inter_octet_time():
    """A valid header announcing 2030 octets, then the transmission stops: the SNRM that comes
    after the pause is answered at once, not after 2030 octets more."""
    link = _bus_link(physical_address=None, inter_octet_s=0.5)
    cut = Frame(encode_address(1, 0x7F, 2), CLIENT, 0x10, bytes(2030)).encode()[:40]
    assert _bytewise(link, cut, 1.0) == []
    events = _bytewise(link, _snrm(encode_address(1, None, 1)), 1.6)
    assert [f.control for f in _frames(events)] == [0x73]
    assert link.dropped_frames == 1


def test_octets_closer_than_the_inter_octet_time_are_one_frame():
    link = _bus_link(physical_address=None, inter_octet_s=0.5)
    raw = _snrm(encode_address(1, None, 1))
    events: list[hdlc.HdlcEvent] = []
    for i, b in enumerate(raw):
        events += link.receive(bytes((b,)), 10.0 + i * 0.4)  # slow, but never a pause of 0.5 s
    assert [f.control for f in _frames(events)] == [0x73]
