"""IEC 62056-21 sign-on of the optical port (meterd.proto.iec62056_21), byte by byte: the minimum
reaction time as an earliest send time, the addressed sign-on ``/?SERIAL!`` and the mode C data
readout (identification, baud-rate change, data message with BCC)."""

from __future__ import annotations

import pytest

from meterd.proto.iec62056_21 import (
    ETX,
    STX,
    DataSet,
    EnterHdlc,
    ModeESignOn,
    Send,
    SignOnState,
    SwitchBaud,
    bcc,
    data_message,
)

SERIAL = "PMM1221000042"
SETS = [DataSet("C.1.0", SERIAL), DataSet("1.8.0", "0001234.567", "kWh"), DataSet("F.F", "00000005")]


def _port(**kw: object) -> ModeESignOn:
    return ModeESignOn("PMM", SERIAL, max_baud=9600, device_address=SERIAL, readout=lambda: SETS, **kw)  # type: ignore[arg-type]


def _bytewise(port: ModeESignOn, data: bytes, now_s: float) -> list[object]:
    events: list[object] = []
    for b in data:
        events += port.receive(bytes((b,)), now_s)
    return events


def test_no_answer_before_the_minimum_reaction_time():
    port = _port()
    (ident,) = _bytewise(port, b"/?!\r\n", 100.0)
    assert isinstance(ident, Send) and ident.not_before_s == pytest.approx(100.2)
    slow = _port(reaction_s=0.5)
    (ident,) = slow.receive(b"/?!\r\n", 3.0)
    assert isinstance(ident, Send) and ident.not_before_s == pytest.approx(3.5)
    with pytest.raises(ValueError):
        _port(reaction_s=0.001)  # the 1 ms answer is not allowed


def test_addressed_sign_on_is_answered_only_with_the_meters_serial_or_no_address():
    port = _port()
    assert _bytewise(port, b"/?PMM1221000043!\r\n", 0.0) == []
    assert port.state is SignOnState.IDLE
    assert _bytewise(port, f"/?{SERIAL}!\r\n".encode(), 0.0) == [Send(port.identification, 0.2)]
    assert _port().receive(b"/?!\r\n", 0.0) == [Send(port.identification, 0.2)]


def test_mode_c_readout_at_the_agreed_rate_with_its_bcc_then_back_to_300_bd():
    port = _port()
    _bytewise(port, b"/?!\r\n", 0.0)
    events = _bytewise(port, b"\x06050\r\n", 1.0)  # ACK, protocol 0, 9600 Bd, data readout
    assert events[0] == SwitchBaud(9600, "7E1") and events[2] == SwitchBaud(300, "7E1")
    message = events[1]
    assert isinstance(message, Send) and message.not_before_s == pytest.approx(1.2)
    data = message.data
    assert data[0] == STX and data[-2] == ETX
    assert data[1:-2] == b"C.1.0(PMM1221000042)\r\n1.8.0(0001234.567*kWh)\r\nF.F(00000005)\r\n!\r\n"
    check = 0
    for b in data[1:-1]:  # after STX, up to and including ETX
        check ^= b
    assert data[-1] == check == bcc(data[1:-1])
    assert port.state is SignOnState.IDLE
    assert port.receive(b"/?!\r\n", 2.0) == [Send(port.identification, 2.2)]  # ready for the next


def test_mode_c_at_the_initial_rate_and_mode_e_still_offered():
    port = _port()
    port.receive(b"/?!\r\n", 0.0)
    assert port.receive(b"\x06000\r\n", 0.5)[0] == SwitchBaud(300, "7E1")
    port.receive(b"/?!\r\n", 1.0)
    assert port.receive(b"\x06252\r\n", 1.5) == [SwitchBaud(9600, "8N1"), EnterHdlc()]


@pytest.mark.parametrize("option", [b"\x06060\r\n", b"\x06051\r\n", b"\x06150\r\n", b"\x0605\r\n"])
def test_refused_option_selects_return_to_idle(option):
    """A rate above the offer, programming mode, secondary protocol, a short message."""
    port = _port()
    port.receive(b"/?!\r\n", 0.0)
    assert port.receive(option, 0.5) == [SwitchBaud(300, "7E1")]
    assert port.state is SignOnState.IDLE


def test_data_message_of_no_sets_and_refused_fields():
    assert data_message([]) == bytes((STX,)) + b"!\r\n" + bytes((ETX, bcc(b"!\r\n" + bytes((ETX,)))))
    for bad in (DataSet("1.8.0", "1(2)"), DataSet("1.8.0", "x" * 33), DataSet("1.8.0", "1", "k*Wh")):
        with pytest.raises(ValueError):
            bad.encode()
