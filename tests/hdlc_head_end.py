"""A scripted HDLC head end (primary station) for tests and benches: it negotiates an information
field and a window in its SNRM, sends each request in windows of segments and acknowledges each
window of the meter's answer with one RR, counting the octets both ways and the line turnarounds.
:func:`gurux_over` lets the gurux client make the APDUs (AARQ, GET, GET-next blocks; its wrapper
framing, header stripped) while the head end carries them, so any client-side window or
information field can be tried on the meter's real HDLC session (gurux's own HDLC layer handles
only window 1 on receive).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from meterd.cosem.sessions import HdlcSession
from meterd.proto import hdlc
from meterd.proto.hdlc import Frame, FrameDecoder, encode_address
from tests.dlms_gurux_client import GuruxSession, make_client

BAUD = 9600
BITS_PER_OCTET = 10
WRAPPER = struct.Struct(">HHHH")


@dataclass
class LineCount:
    """Octets each way and line turnarounds."""

    to_meter: int = 0
    from_meter: int = 0
    turnarounds: int = 0

    @property
    def line_s(self) -> float:
        """Line time (s) at :data:`BAUD`, 8N1."""
        return (self.to_meter + self.from_meter) * BITS_PER_OCTET / BAUD


class HeadEnd:
    """An HDLC primary station proposing ``info`` octets and a window of ``window`` frames."""

    def __init__(self, session: HdlcSession, info: int, window: int, client_sap: int = 17) -> None:
        self.session = session
        self.info, self.window = info, window
        self.count = LineCount()
        self.now_s = 0.0
        self._server = encode_address(1, None, 1)
        self._client = encode_address(client_sap, None, 1)
        self._decoder = FrameDecoder()
        self._vs = self._vr = 0
        self.server_rx, self.server_window_rx = hdlc.DEFAULT_MAX_INFO, 1

    def _exchange(self, frames: list[bytes]) -> list[Frame]:
        out = b"".join(frames)
        self.count.to_meter += len(out)
        self.now_s += len(out) * BITS_PER_OCTET / BAUD
        answer = b"".join(self.session.receive_at(out, self.now_s))
        self.count.from_meter += len(answer)
        self.now_s += len(answer) * BITS_PER_OCTET / BAUD
        self.count.turnarounds += 1
        return self._decoder.feed(answer)

    def connect(self) -> None:
        def param(pid: int, value: int, size: int) -> bytes:
            return bytes((pid, size)) + value.to_bytes(size, "big")

        body = (param(0x05, self.info, 2) + param(0x06, self.info, 2) + param(0x07, self.window, 4)
                + param(0x08, self.window, 4))
        (ua,) = self._exchange([Frame(self._server, self._client, 0x93, bytes((0x81, 0x80, len(body))) + body).encode()])
        values, pos = {}, 3
        while pos < len(ua.info):
            pid, size = ua.info[pos], ua.info[pos + 1]
            values[pid] = int.from_bytes(ua.info[pos + 2:pos + 2 + size], "big")
            pos += 2 + size
        self.server_rx, self.server_window_rx = values[0x06], values[0x08]
        self._vs = self._vr = 0

    def request(self, apdu: bytes) -> bytes:
        """Send ``apdu``; the meter's answer APDU."""
        payload = hdlc.LLC_REQUEST + apdu
        segments = [payload[i:i + self.server_rx] for i in range(0, len(payload), self.server_rx)]
        while True:
            burst = segments[:self.server_window_rx]
            del segments[:len(burst)]
            frames = []
            for i, segment in enumerate(burst):
                poll = hdlc.PF if i == len(burst) - 1 else 0
                frames.append(Frame(self._server, self._client, (self._vr << 5) | poll | (self._vs << 1),
                                    segment, segmented=bool(segments) or i < len(burst) - 1).encode())
                self._vs = (self._vs + 1) % 8
            answer = self._exchange(frames)
            if not segments:
                break
        received = b""
        while True:
            for frame in answer:
                if not frame.control & 1:
                    received += frame.info
                    self._vr = (self._vr + 1) % 8
            if not any(not frame.control & 1 for frame in answer):
                raise AssertionError(f"the meter answered no information frame: {answer}")
            if not answer[-1].control & 1 and not answer[-1].segmented:
                break
            answer = self._exchange([Frame(self._server, self._client, (self._vr << 5) | hdlc.PF | 0x01).encode()])
        assert received.startswith(hdlc.LLC_RESPONSE)
        return received[len(hdlc.LLC_RESPONSE):]


def gurux_over(head_end: HeadEnd, sap: int = 17, **kwargs: Any) -> GuruxSession:
    """A gurux client (wrapper framing) whose APDUs ``head_end`` carries over HDLC; not yet associated."""
    answers: list[bytes] = []

    def send(wrapped: bytes) -> None:
        version, source, destination, length = WRAPPER.unpack_from(wrapped)
        apdu = head_end.request(wrapped[WRAPPER.size:WRAPPER.size + length])
        answers.append(WRAPPER.pack(version, destination, source, len(apdu)) + apdu)

    return GuruxSession(make_client(sap, **kwargs), send, lambda: answers.pop(0))
