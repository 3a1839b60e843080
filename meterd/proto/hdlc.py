"""HDLC for DLMS (IEC 62056-46 / ISO 13239 frame format type 3), secondary station, sans-I/O.

Bytes in, events out: :meth:`HdlcLink.receive` returns :class:`Send` (a frame to write),
:class:`ApduReceived` (a whole LLC-stripped APDU from a client) and :class:`LinkClosed` (DISC,
SNRM reset or inactivity: the association must be released). The upper layer answers an APDU
with :meth:`HdlcLink.send_apdu`, which segments it by the negotiated maximum information field
length; the next segments go out when the client polls with RR (window size 1).

Frames are delimited by their length field, not by scanning for flags: DLMS HDLC has no byte
stuffing, so 0x7E may appear inside a frame. A frame with a bad format, a missing closing flag,
or a bad HCS/FCS is dropped and the receiver resynchronises on the next flag (counted in
:attr:`HdlcLink.dropped_frames`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

FLAG = 0x7E
LLC_REQUEST = b"\xe6\xe6\x00"
LLC_RESPONSE = b"\xe6\xe7\x00"

SNRM, DISC, UA, DM, FRMR, UI = 0x83, 0x43, 0x63, 0x0F, 0x87, 0x03
PF = 0x10
MAX_FRAME_LEN = 0x7FF
DEFAULT_MAX_INFO = 128


def _make_fcs_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_FCS_TABLE = _make_fcs_table()


def fcs16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/X-25 as used for HDLC HCS and FCS (transmitted least significant byte first)."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _FCS_TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFF


def encode_address(upper: int, lower: int | None, size: int) -> bytes:
    """HDLC address of ``size`` octets (1, 2 or 4); the last octet carries the end bit."""
    if size == 1:
        return bytes((((upper & 0x7F) << 1) | 1,))
    if size == 2:
        return bytes(((upper & 0x7F) << 1, (((lower or 0) & 0x7F) << 1) | 1))
    low = lower or 0
    return bytes((((upper >> 7) & 0x7F) << 1, (upper & 0x7F) << 1, ((low >> 7) & 0x7F) << 1,
                  ((low & 0x7F) << 1) | 1))


def decode_address(raw: bytes) -> tuple[int, int | None]:
    """(upper, lower) of a 1, 2 or 4 octet address (lower is None for 1 octet)."""
    groups = [b >> 1 for b in raw]
    if len(raw) == 1:
        return groups[0], None
    if len(raw) == 2:
        return groups[0], groups[1]
    if len(raw) == 4:
        return (groups[0] << 7) | groups[1], (groups[2] << 7) | groups[3]
    raise ValueError(f"HDLC address of {len(raw)} octets")


@dataclass(frozen=True)
class Frame:
    """A decoded HDLC frame (addresses as raw octets)."""

    dest: bytes
    src: bytes
    control: int
    info: bytes = b""
    segmented: bool = False

    def encode(self) -> bytes:
        """The frame with flags, length, HCS and FCS."""
        header_len = 2 + len(self.dest) + len(self.src) + 1
        length = header_len + (2 + len(self.info) + 2 if self.info else 2)
        if length > MAX_FRAME_LEN:
            raise ValueError("HDLC frame too long")
        fmt = 0xA000 | (0x0800 if self.segmented else 0) | length
        head = bytes((fmt >> 8, fmt & 0xFF)) + self.dest + self.src + bytes((self.control,))
        if not self.info:
            fcs = fcs16(head)
            return bytes((FLAG,)) + head + bytes((fcs & 0xFF, fcs >> 8, FLAG))
        hcs = fcs16(head)
        body = head + bytes((hcs & 0xFF, hcs >> 8)) + self.info
        fcs = fcs16(body)
        return bytes((FLAG,)) + body + bytes((fcs & 0xFF, fcs >> 8, FLAG))


def _read_address(buf: bytearray, pos: int, end: int) -> int:
    start = pos
    while pos < end and not buf[pos] & 1:
        pos += 1
    if pos >= end or pos - start + 1 not in (1, 2, 4):
        return -1
    return pos + 1


class FrameDecoder:
    """Length-delimited frame extraction with HCS/FCS checks."""

    def __init__(self, max_frame_len: int = MAX_FRAME_LEN) -> None:
        self._buf = bytearray()
        self._max = max_frame_len
        self.dropped = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Append received bytes; return the complete, valid frames."""
        self._buf += data
        frames: list[Frame] = []
        while True:
            result = self._next()
            if result is None:
                return frames
            if isinstance(result, Frame):
                frames.append(result)

    def pending(self) -> int:
        """Octets held for an incomplete frame."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget a partial frame (inter-octet timeout)."""
        self._buf.clear()

    def _drop(self, n: int) -> bool:
        del self._buf[:n]
        self.dropped += 1
        return False

    def _next(self) -> Frame | bool | None:
        buf = self._buf
        start = buf.find(FLAG)
        if start < 0:
            buf.clear()
            return None
        del buf[:start]
        while len(buf) > 1 and buf[1] == FLAG:
            del buf[:1]
        if len(buf) < 3:
            return None
        if buf[1] & 0xF0 != 0xA0:
            return self._drop(1)
        length = ((buf[1] & 0x07) << 8) | buf[2]
        if length < 7 or length > self._max:
            return self._drop(1)
        if len(buf) < length + 2:
            return None
        if buf[length + 1] != FLAG:
            return self._drop(1)
        frame = self._parse(bytes(buf[1:length + 1]))
        del buf[:length + 1]  # keep the closing flag: it may open the next frame
        if frame is None:
            self.dropped += 1
            return False
        return frame

    @staticmethod
    def _parse(raw: bytes) -> Frame | None:
        end = len(raw) - 2
        if fcs16(raw[:end]) != raw[end] | (raw[end + 1] << 8):
            return None
        work = bytearray(raw)
        dest_end = _read_address(work, 2, end)
        src_end = _read_address(work, dest_end, end) if dest_end > 0 else -1
        if src_end < 0 or src_end >= end:
            return None
        control = raw[src_end]
        info = b""
        header_end = src_end + 1
        if header_end < end:
            if header_end + 2 > end or fcs16(raw[:header_end]) != raw[header_end] | (raw[header_end + 1] << 8):
                return None
            info = raw[header_end + 2:end]
        return Frame(raw[2:dest_end], raw[dest_end:src_end], control, info, bool(raw[0] & 0x08))


@dataclass(frozen=True)
class Send:
    """Write these bytes to the link."""

    data: bytes


@dataclass(frozen=True)
class ApduReceived:
    """A complete APDU (LLC header removed) from client SAP ``client_sap``."""

    client_sap: int
    apdu: bytes


@dataclass(frozen=True)
class LinkClosed:
    """The data link was disconnected or reset; release the association."""

    reason: str


HdlcEvent = Send | ApduReceived | LinkClosed


class LinkState(enum.Enum):
    """NDM: normal disconnected mode; NRM: normal response mode (connected)."""

    NDM = "NDM"
    NRM = "NRM"


@dataclass
class HdlcParameters:
    """Server side link parameters: addresses and the largest info fields we accept (octets)."""

    logical_address: int = 1
    physical_address: int | None = None
    max_info_tx: int = DEFAULT_MAX_INFO
    max_info_rx: int = DEFAULT_MAX_INFO


@dataclass
class _Peer:
    client: bytes = b""
    server: bytes = b""
    tx_segments: list[bytes] = field(default_factory=list)
    rx_segments: list[bytes] = field(default_factory=list)
    last_sent: bytes = b""


class HdlcLink:
    """HDLC secondary station for one physical link (one client connection at a time)."""

    def __init__(self, params: HdlcParameters | None = None) -> None:
        self.params = params or HdlcParameters()
        self.decoder = FrameDecoder()
        self.state = LinkState.NDM
        self.max_info_tx = DEFAULT_MAX_INFO
        self.max_info_rx = DEFAULT_MAX_INFO
        self._vs = 0
        self._vr = 0
        self._peer = _Peer()

    @property
    def dropped_frames(self) -> int:
        """Frames discarded for bad format, HCS or FCS."""
        return self.decoder.dropped

    def receive(self, data: bytes) -> list[HdlcEvent]:
        """Consume received octets; return the resulting events in order."""
        events: list[HdlcEvent] = []
        for frame in self.decoder.feed(data):
            if self._addressed_to_us(frame.dest):
                events += self._on_frame(frame)
        return events

    def timeout(self) -> list[HdlcEvent]:
        """Inactivity time-out: back to NDM without a frame (IEC 62056-46 §6.4.4.3.3)."""
        self.decoder.clear()
        if self.state is LinkState.NRM:
            self._disconnect()
            return [LinkClosed("inactivity")]
        return []

    def send_apdu(self, apdu: bytes) -> list[HdlcEvent]:
        """Send a response APDU (LLC added), segmented; returns the first segment to write."""
        if self.state is not LinkState.NRM:
            return []
        payload = LLC_RESPONSE + apdu
        size = self.max_info_tx
        self._peer.tx_segments = [payload[i:i + size] for i in range(0, len(payload), size)]
        return [self._send_next_segment()]

    # --- frame handling -----------------------------------------------------------------------

    def _addressed_to_us(self, dest: bytes) -> bool:
        try:
            upper, lower = decode_address(dest)
        except ValueError:
            return False
        if upper != self.params.logical_address:
            return False
        return lower is None or self.params.physical_address is None or lower == self.params.physical_address

    def _reply(self, control: int, info: bytes = b"", segmented: bool = False) -> Send:
        raw = Frame(self._peer.client, self._peer.server, control, info, segmented).encode()
        return Send(raw)

    def _on_frame(self, frame: Frame) -> list[HdlcEvent]:
        ctrl = frame.control & ~PF
        self._peer.client, self._peer.server = frame.src, frame.dest
        if ctrl == SNRM:
            return self._on_snrm(frame)
        if ctrl == DISC:
            return self._on_disc()
        if ctrl == UI:
            return []
        if self.state is LinkState.NDM:
            return [self._reply(DM | PF)]
        if not frame.control & 1:
            return self._on_information(frame)
        if ctrl & 0x0F in (0x01, 0x05):
            return self._on_receive_ready(frame.control >> 5)
        return [self._reply(FRMR | PF, bytes((frame.control, (self._vr << 5) | (self._vs << 1), 0x01)))]

    def _on_snrm(self, frame: Frame) -> list[HdlcEvent]:
        was_connected = self.state is LinkState.NRM
        try:
            tx, rx = self._negotiate(frame.info)
        except ValueError:
            return [self._reply(FRMR | PF, bytes((frame.control, 0, 0x01)))]
        self.max_info_tx, self.max_info_rx = tx, rx
        self._vs = self._vr = 0
        self._peer.tx_segments, self._peer.rx_segments = [], []
        self.state = LinkState.NRM
        events: list[HdlcEvent] = [LinkClosed("snrm reset")] if was_connected else []
        events.append(self._reply(UA | PF, self._ua_info()))
        return events

    def _negotiate(self, info: bytes) -> tuple[int, int]:
        """(our max info TX, our max info RX) from the client's SNRM proposal."""
        client_tx, client_rx = DEFAULT_MAX_INFO, DEFAULT_MAX_INFO
        if info:
            if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80 or info[2] != len(info) - 3:
                raise ValueError("bad SNRM parameter field")
            pos = 3
            while pos < len(info):
                if pos + 2 > len(info):
                    raise ValueError("truncated SNRM parameter")
                pid, plen = info[pos], info[pos + 1]
                value = int.from_bytes(info[pos + 2:pos + 2 + plen], "big")
                if pos + 2 + plen > len(info):
                    raise ValueError("truncated SNRM parameter")
                if pid == 0x05:
                    client_tx = value
                elif pid == 0x06:
                    client_rx = value
                pos += 2 + plen
        tx = max(32, min(self.params.max_info_tx, client_rx))
        rx = max(32, min(self.params.max_info_rx, client_tx))
        return tx, rx

    def _ua_info(self) -> bytes:
        def param(pid: int, value: int, size: int) -> bytes:
            return bytes((pid, size)) + value.to_bytes(size, "big")

        body = (param(0x05, self.max_info_tx, 1 if self.max_info_tx < 256 else 2)
                + param(0x06, self.max_info_rx, 1 if self.max_info_rx < 256 else 2)
                + param(0x07, 1, 4) + param(0x08, 1, 4))
        return bytes((0x81, 0x80, len(body))) + body

    def _on_disc(self) -> list[HdlcEvent]:
        if self.state is LinkState.NDM:
            return [self._reply(DM | PF)]
        self._disconnect()
        return [LinkClosed("disc"), self._reply(UA | PF)]

    def _disconnect(self) -> None:
        self.state = LinkState.NDM
        self._peer.tx_segments, self._peer.rx_segments = [], []

    def _on_information(self, frame: Frame) -> list[HdlcEvent]:
        ns, nr = (frame.control >> 1) & 0x07, frame.control >> 5
        if ns != self._vr:
            if ns == (self._vr - 1) % 8 and self._peer.last_sent:
                return [Send(self._peer.last_sent)]  # our answer was lost: repeat it
            return [self._reply(((self._vr << 5) | PF | 0x01) & 0xFF)]
        if nr != self._vs and self._peer.last_sent:
            return [Send(self._peer.last_sent)]
        self._vr = (self._vr + 1) % 8
        if len(frame.info) > self.max_info_rx:
            return [self._reply(FRMR | PF, bytes((frame.control, (self._vr << 5) | (self._vs << 1), 0x04)))]
        self._peer.rx_segments.append(frame.info)
        if frame.segmented:
            return [self._reply(((self._vr << 5) | PF | 0x01) & 0xFF)]
        payload = b"".join(self._peer.rx_segments)
        self._peer.rx_segments = []
        self._peer.tx_segments = []
        if not payload.startswith(LLC_REQUEST):
            return [self._reply(((self._vr << 5) | PF | 0x01) & 0xFF)]
        client_sap, _ = decode_address(frame.src)
        return [ApduReceived(client_sap, payload[len(LLC_REQUEST):])]

    def _on_receive_ready(self, nr: int) -> list[HdlcEvent]:
        if nr != self._vs and self._peer.last_sent:
            return [Send(self._peer.last_sent)]
        if self._peer.tx_segments:
            return [self._send_next_segment()]
        return [self._reply(((self._vr << 5) | PF | 0x01) & 0xFF)]

    def _send_next_segment(self) -> Send:
        segment = self._peer.tx_segments.pop(0)
        more = bool(self._peer.tx_segments)
        control = ((self._vr << 5) | PF | (self._vs << 1)) & 0xFF
        self._vs = (self._vs + 1) % 8
        sent = self._reply(control, segment, segmented=more)
        self._peer.last_sent = sent.data
        return sent
