"""IEC 62056-21 mode E sign-on of the optical port (server side), sans-I/O.

Sequence (all at 300 Bd, 7E1, until the switch):

1. client request ``/?!\\r\\n`` (or ``/?<device address>!\\r\\n``);
2. meter identification ``/XXXZ\\2<ident>\\r\\n``: XXX the manufacturer FLAG id, Z the highest
   baud-rate character offered ("0" 300 … "6" 19200 Bd), ``\\2`` announcing mode E (HDLC);
3. client acknowledgement / option select ``ACK 2 Z 2 \\r\\n`` (protocol control "2", the agreed
   baud-rate character, mode control "2" = binary HDLC);
4. both sides switch to the agreed baud rate, 8N1, and HDLC (IEC 62056-46) follows.

Anything else (another mode, a bad address, garbage, a reply time-out) returns to the idle
state at 300 Bd. :meth:`ModeESignOn.receive` returns :class:`Send`, :class:`SwitchBaud` and
:class:`EnterHdlc` events; after HDLC ends the runtime calls :meth:`ModeESignOn.reset`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

BAUD_CHARS = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
ACK = 0x06
MAX_REQUEST_LEN = 40


@dataclass(frozen=True)
class Send:
    """Write these bytes at the current line settings."""

    data: bytes


@dataclass(frozen=True)
class SwitchBaud:
    """Change the line to ``baud`` Bd with ``framing`` ("7E1" during sign-on, "8N1" for HDLC)."""

    baud: int
    framing: str


@dataclass(frozen=True)
class EnterHdlc:
    """From now on the line carries HDLC frames."""


ModeEEvent = Send | SwitchBaud | EnterHdlc


class SignOnState(enum.Enum):
    """Where the sign-on stands."""

    IDLE = "idle"
    IDENTIFIED = "identified"
    HDLC = "hdlc"


class ModeESignOn:
    """Mode E sign-on for one optical port.

    ``flag_id``: 3-letter manufacturer id; ``ident``: identification (≤ 16 printable chars);
    ``max_baud``: highest rate offered (Bd); ``device_address``: accepted in ``/?addr!`` (an empty
    address is always accepted).
    """

    def __init__(self, flag_id: str, ident: str, max_baud: int = 9600, device_address: str = "") -> None:
        if len(flag_id) != 3 or not flag_id.isalpha():
            raise ValueError("flag_id must be 3 letters")
        if not 0 < len(ident) <= 16 or not ident.isprintable() or "/" in ident or "!" in ident:
            raise ValueError("ident must be 1-16 printable characters without '/' or '!'")
        chars = {v: k for k, v in BAUD_CHARS.items()}
        if max_baud not in chars:
            raise ValueError(f"unsupported baud rate {max_baud}")
        self._flag, self._ident = flag_id, ident
        self._baud_char = chars[max_baud]
        self._address = device_address
        self._buf = bytearray()
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

    def receive(self, data: bytes) -> list[ModeEEvent]:
        """Consume sign-on octets (parity bit already stripped or ignored)."""
        if self.state is SignOnState.HDLC:
            raise RuntimeError("sign-on is complete: route bytes to HDLC")
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

    def _on_message(self, message: bytes) -> list[ModeEEvent]:
        start = message.rfind(b"/?")
        if start >= 0 and message.endswith(b"!"):
            address = message[start + 2:-1].decode("ascii", "replace")
            if address and address != self._address:
                return []
            self.state = SignOnState.IDENTIFIED
            return [Send(self.identification)]
        ack = message.rfind(bytes((ACK,)))
        if ack >= 0 and self.state is SignOnState.IDENTIFIED:
            return self._on_option_select(message[ack + 1:])
        return []

    def _on_option_select(self, option: bytes) -> list[ModeEEvent]:
        text = option.decode("ascii", "replace")
        if len(text) != 3 or text[0] != "2" or text[2] != "2" or text[1] not in BAUD_CHARS:
            return self.reset()
        if BAUD_CHARS[text[1]] > BAUD_CHARS[self._baud_char]:
            return self.reset()
        self.state = SignOnState.HDLC
        return [SwitchBaud(BAUD_CHARS[text[1]], "8N1"), EnterHdlc()]
