"""A multi-drop RS-485 bus in memory for DLMS HDLC tests: one head end and several meters'
sessions on one half-duplex pair, with a manual clock (s).

Every byte takes one character time on the line (10 bit times: 8N1, as the paced line counts).
The head end's transmission reaches every meter, each at the end of the frame
(:meth:`~meterd.proto.session.TimedSession.receive_at`); every meter also hears what the
others answer, as a real bus carries it. Answers start a turnaround time after the request's
last byte; two meters answering at once overlap on the line and the head end receives their
bytes garbled (counted in :attr:`MultiDropBus.collisions`). :attr:`MultiDropBus.line_s` is the
time the line carried bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from meterd.proto.session import TimedSession


class NoAnswer(TimeoutError):
    """No station answered the head end."""


@dataclass
class MultiDropBus:
    """The bus; ``baud`` (Bd), ``turnaround_s`` (s) between a request and an answer."""

    baud: int = 9600
    turnaround_s: float = 0.005
    now_s: float = 0.0
    line_s: float = 0.0
    collisions: int = 0
    meters: dict[str, TimedSession] = field(default_factory=dict)
    answered_by: list[str] = field(default_factory=list)
    _rx: bytearray = field(default_factory=bytearray)

    @property
    def char_s(self) -> float:
        """One character on the line (s)."""
        return 10.0 / self.baud

    def attach(self, name: str, session: TimedSession) -> None:
        """Put a meter's session on the bus."""
        self.meters[name] = session

    def advance(self, seconds: float) -> None:
        """Let time pass with the line quiet."""
        self.now_s += seconds

    def send(self, data: bytes) -> None:
        """The head end transmits ``data``; the meters' answers are queued for :meth:`receive`."""
        self._transmit(data)
        heard = {name: data for name in self.meters}
        for _ in range(8):  # answers heard by the other meters may (wrongly) cause answers again
            answers = {name: b"".join(self.meters[name].receive_at(chunk, self.now_s))
                       for name, chunk in heard.items() if chunk}
            answers = {name: out for name, out in answers.items() if out}
            if not answers:
                return
            self.answered_by += sorted(answers)
            self.now_s += self.turnaround_s
            self._rx += self._on_line(list(answers.values()))
            heard = {name: b"".join(out for other, out in answers.items() if other != name) for name in self.meters}
        raise AssertionError("the meters keep answering each other")

    def _transmit(self, data: bytes) -> None:
        self.now_s += len(data) * self.char_s
        self.line_s += len(data) * self.char_s

    def _on_line(self, answers: list[bytes]) -> bytes:
        """What the head end receives of answers sent at the same instant."""
        longest = max(len(a) for a in answers)
        self._transmit(bytes(longest))
        if len(answers) == 1:
            return answers[0]
        self.collisions += 1
        garbled = bytearray(longest)
        for answer in answers:
            for i, b in enumerate(answer):
                garbled[i] ^= b
        return bytes(garbled)

    def receive(self) -> bytes:
        """What the head end has received since the last call; :class:`NoAnswer` when nothing."""
        if not self._rx:
            raise NoAnswer("no answer on the bus")
        data = bytes(self._rx)
        self._rx.clear()
        return data

    def pending(self) -> int:
        """Octets received by the head end and not yet taken."""
        return len(self._rx)
