"""IEC 62056-21 mode E sign-on state machine (meterd.proto.iec62056_21)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.proto.iec62056_21 import EnterHdlc, ModeESignOn, Send, SignOnState, SwitchBaud


def _sign_on() -> ModeESignOn:
    return ModeESignOn("PMM", "PMM1221000042", max_baud=9600, device_address="42")


def test_full_sign_on_switches_to_hdlc_at_the_agreed_rate():
    s = _sign_on()
    assert s.receive(b"/?!\r\n") == [Send(b"/PMM5\\2PMM1221000042\r\n", 0.2)]
    assert s.state is SignOnState.IDENTIFIED
    assert s.receive(b"\x06" + b"252\r\n") == [SwitchBaud(9600, "8N1"), EnterHdlc()]
    assert s.signed_on
    with pytest.raises(RuntimeError):
        s.receive(b"x")


def test_byte_by_byte_with_parity_bits_set():
    s = _sign_on()
    events = []
    for b in b"/?!\r\n":
        events += s.receive(bytes((b | 0x80 if bin(b).count("1") % 2 else b,)))  # 7E1 parity in bit 7
    assert events == [Send(s.identification, 0.2)]


def test_device_address_must_match_when_given():
    s = _sign_on()
    assert s.receive(b"/?99!\r\n") == []
    assert s.receive(b"/?42!\r\n") == [Send(s.identification, 0.2)]


def test_lower_rate_may_be_chosen_higher_is_refused():
    s = _sign_on()
    s.receive(b"/?!\r\n")
    assert s.receive(b"\x06242\r\n") == [SwitchBaud(4800, "8N1"), EnterHdlc()]
    s2 = _sign_on()
    s2.receive(b"/?!\r\n")
    assert s2.receive(b"\x06262\r\n") == [SwitchBaud(300, "7E1")]
    assert s2.state is SignOnState.IDLE


def test_mode_c_readout_request_is_not_served_without_a_data_set_list():
    s = _sign_on()
    s.receive(b"/?!\r\n")
    assert s.receive(b"\x06050\r\n") == [SwitchBaud(300, "7E1")]


def test_ack_without_request_is_ignored_and_timeout_returns_to_idle():
    s = _sign_on()
    assert s.receive(b"\x06252\r\n") == []
    s.receive(b"/?!\r\n")
    assert s.timeout() == [SwitchBaud(300, "7E1")]
    assert s.state is SignOnState.IDLE
    assert s.timeout() == []


def test_overlong_garbage_is_dropped():
    s = _sign_on()
    assert s.receive(b"x" * 100) == []
    assert s.receive(b"/?!\r\n") == [Send(s.identification, 0.2)]


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        ModeESignOn("PM", "x")
    with pytest.raises(ValueError):
        ModeESignOn("PMM", "bad/ident")
    with pytest.raises(ValueError):
        ModeESignOn("PMM", "ok", max_baud=1234)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=30), max_size=20))
def test_fuzz_never_raises_before_hdlc(chunks):
    s = _sign_on()
    for chunk in chunks:
        if s.signed_on:
            break
        for event in s.receive(chunk):
            assert isinstance(event, Send | SwitchBaud | EnterHdlc)
