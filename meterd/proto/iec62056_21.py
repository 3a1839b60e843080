"""IEC 62056-21 sign-on of the optical port (server side), modes C and E, sans-I/O.

Sequence (all at 300 Bd, 7E1, until the switch):

1. client request ``/?!\\r\\n``, or ``/?<device address>!\\r\\n``: answered only when the address is
   the meter's (its serial) or empty;
2. meter identification ``/XXXZ\\2<ident>\\r\\n``: XXX the manufacturer FLAG id, Z the highest
   baud-rate character offered ("0" 300 … "6" 19200 Bd), ``\\2`` announcing mode E (HDLC);
3. client acknowledgement / option select ``ACK V Z Y \\r\\n``:

   * ``V = 2, Y = 2`` (mode E): both sides switch to the agreed baud rate Z, 8N1, and HDLC
     (IEC 62056-46) follows;
   * ``V = 0, Y = 0`` (mode C data readout): both sides switch to the agreed baud rate Z (still
     7E1) and the meter sends the data message ``STX <data block> ! CR LF ETX BCC``: one data set
     ``<id>(<value>[*<unit>])`` CR LF per line of the data set list, the block check character
     BCC the exclusive or of every character after STX up to and including ETX; then it returns
     to 300 Bd 7E1 and waits for the next request.

The minimum reaction time (t_r >= 200 ms): the meter must not answer a request or an option select
before ``reaction_s`` (s) after it ended. The core does not keep time: :meth:`ModeESignOn.receive`
takes the arrival time ``now_s`` (s, the shell's clock) and each :class:`Send` carries its earliest
send time ``not_before_s``; the shell holds it (and every event after it) until then.

Anything else (another mode, programming mode, a rate above the offer, a bad address, garbage,
a reply time-out) returns to the idle state at 300 Bd. :meth:`ModeESignOn.receive` returns
:class:`Send`, :class:`SwitchBaud` and :class:`EnterHdlc` events; after HDLC ends the runtime
calls :meth:`ModeESignOn.reset`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BAUD_CHARS = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
ACK = 0x06
STX, ETX = 0x02, 0x03
MAX_REQUEST_LEN = 40
MAX_ADDRESS_LEN = 32
#: IEC 62056-21 minimum reaction time t_r (s): 200 ms.
MIN_REACTION_S = 0.2


@dataclass(frozen=True)
class Send:
    """Write these bytes at the current line settings, not before ``not_before_s`` (s, the clock
    of the ``now_s`` given to :meth:`ModeESignOn.receive`)."""

    data: bytes
    not_before_s: float = 0.0


@dataclass(frozen=True)
class SwitchBaud:
    """Change the line to ``baud`` Bd with ``framing`` ("7E1" during sign-on, "8N1" for HDLC)."""

    baud: int
    framing: str


@dataclass(frozen=True)
class EnterHdlc:
    """From now on the line carries HDLC frames."""


ModeEEvent = Send | SwitchBaud | EnterHdlc


@dataclass(frozen=True)
class DataSet:
    """One line of the mode C data readout: ``ident`` (the reduced OBIS code, e.g. "1.8.0"),
    ``value`` and ``unit`` ("" for none), at most 32 printable characters each."""

    ident: str
    value: str
    unit: str = ""

    def encode(self) -> bytes:
        """``ident(value*unit)`` CR LF (IEC 62056-21 data set)."""
        for text in (self.ident, self.value, self.unit):
            if len(text) > MAX_ADDRESS_LEN or not text.isprintable() or any(c in text for c in "()/!*"):
                raise ValueError(f"data set field {text!r}: at most 32 printable characters without ()/!*")
        unit = f"*{self.unit}" if self.unit else ""
        return f"{self.ident}({self.value}{unit})\r\n".encode("ascii")


def bcc(data: bytes) -> int:
    """The block check character: exclusive or of ``data`` (every character after STX, ETX included)."""
    check = 0
    for b in data:
        check ^= b
    return check


def data_message(sets: Sequence[DataSet]) -> bytes:
    """The mode C data message: STX, the data block, ``!`` CR LF, ETX, BCC."""
    body = b"".join(s.encode() for s in sets) + b"!\r\n" + bytes((ETX,))
    return bytes((STX,)) + body + bytes((bcc(body),))


class SignOnState(enum.Enum):
    """Where the sign-on stands."""

    IDLE = "idle"
    IDENTIFIED = "identified"
    HDLC = "hdlc"


class ModeESignOn:
    """Sign-on for one optical port: mode E (HDLC) and, with a ``readout``, mode C.

    ``flag_id``: 3-letter manufacturer id; ``ident``: identification (≤ 16 printable chars);
    ``max_baud``: highest rate offered (Bd); ``device_address``: accepted in ``/?addr!`` (an empty
    address is always accepted); ``readout``: the data set list of the mode C readout (None: mode
    C is not offered); ``reaction_s``: the reaction time (s, at least 200 ms).
    """

    def __init__(self, flag_id: str, ident: str, max_baud: int = 9600, device_address: str = "",
                 readout: Callable[[], Sequence[DataSet]] | None = None,
                 reaction_s: float = MIN_REACTION_S) -> None:
        if len(flag_id) != 3 or not flag_id.isalpha():
            raise ValueError("flag_id must be 3 letters")
        if not 0 < len(ident) <= 16 or not ident.isprintable() or "/" in ident or "!" in ident:
            raise ValueError("ident must be 1-16 printable characters without '/' or '!'")
        if len(device_address) > MAX_ADDRESS_LEN or not device_address.isprintable() or "!" in device_address:
            raise ValueError("device address must be at most 32 printable characters without '!'")
        if reaction_s < MIN_REACTION_S:
            raise ValueError(f"reaction time {reaction_s} s below the minimum {MIN_REACTION_S} s")
        chars = {v: k for k, v in BAUD_CHARS.items()}
        if max_baud not in chars:
            raise ValueError(f"unsupported baud rate {max_baud}")
        self._flag, self._ident = flag_id, ident
        self._baud_char = chars[max_baud]
        self._address = device_address
        self._readout = readout
        self._reaction_s = reaction_s
        self._buf = bytearray()
        self._now_s = 0.0
        self.state = SignOnState.IDLE

    @property
    def identification(self) -> bytes:
        """The identification message sent after a request."""
        return f"/{self._flag}{self._baud_char}\\2{self._ident}\r\n".encode("ascii")

    @property
    def signed_on(self) -> bool:
        """True once the option select switched the line to HDLC."""
        return self.state is SignOnState.HDLC

    def reset(self) -> list[ModeEEvent]:
        """Back to idle at 300 Bd 7E1 (after HDLC ended or a time-out)."""
        self._buf.clear()
        self.state = SignOnState.IDLE
        return [SwitchBaud(300, "7E1")]

    def timeout(self) -> list[ModeEEvent]:
        """No complete message within the reply time: drop partial input; back to idle."""
        if self.state is SignOnState.HDLC:
            return []
        return self.reset() if self.state is SignOnState.IDENTIFIED or self._buf else []

    def receive(self, data: bytes, now_s: float = 0.0) -> list[ModeEEvent]:
        """Consume sign-on octets (parity bit already stripped or ignored) that arrived at ``now_s`` (s)."""
        if self.state is SignOnState.HDLC:
            raise RuntimeError("sign-on is complete: route bytes to HDLC")
        self._now_s = now_s
        self._buf += bytes(b & 0x7F for b in data)
        events: list[ModeEEvent] = []
        while not self.signed_on:
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > MAX_REQUEST_LEN:
                    self._buf.clear()
                return events
            message = bytes(self._buf[:end])
            del self._buf[:end + 2]
            events += self._on_message(message)
        return events

    def _answer(self, data: bytes) -> Send:
        return Send(data, self._now_s + self._reaction_s)

    def _on_message(self, message: bytes) -> list[ModeEEvent]:
        start = message.rfind(b"/?")
        if start >= 0 and message.endswith(b"!"):
            address = message[start + 2:-1].decode("ascii", "replace")
            if address and address != self._address:
                return []
            self.state = SignOnState.IDENTIFIED
            return [self._answer(self.identification)]
        ack = message.rfind(bytes((ACK,)))
        if ack >= 0 and self.state is SignOnState.IDENTIFIED:
            return self._on_option_select(message[ack + 1:])
        return []

    def _on_option_select(self, option: bytes) -> list[ModeEEvent]:
        text = option.decode("ascii", "replace")
        if len(text) != 3 or text[1] not in BAUD_CHARS:
            return self.reset()
        baud = BAUD_CHARS[text[1]]
        if baud > BAUD_CHARS[self._baud_char]:
            return self.reset()
        if text[0] == "2" and text[2] == "2":
            self.state = SignOnState.HDLC
            return [SwitchBaud(baud, "8N1"), EnterHdlc()]
        if text[0] == "0" and text[2] == "0" and self._readout is not None:
            message = data_message(self._readout())
            self._buf.clear()
            self.state = SignOnState.IDLE
            return [SwitchBaud(baud, "7E1"), self._answer(message), SwitchBaud(300, "7E1")]
        return self.reset()
