"""HDLC for DLMS (IEC 62056-46 / ISO 13239 frame format type 3), secondary station, sans-I/O.

Bytes in, events out: :meth:`HdlcLink.receive` returns :class:`Send` (frames to write),
:class:`ApduReceived` (a whole LLC-stripped APDU from a client) and :class:`LinkClosed` (DISC,
SNRM reset or inactivity: the association must be released). The upper layer answers an APDU
with :meth:`HdlcLink.send_apdu`, which segments it by the negotiated maximum information field
length and sends up to the negotiated transmit window of segments per poll.

Framing. Frames are delimited by their length field, not by scanning for flags: DLMS HDLC has
no byte stuffing, so 0x7E may appear inside a frame. The header (format, addresses, control) is
checked by its HCS as soon as it has arrived, before the rest of the frame is awaited, so a
corrupt length field (``7E A7 FF 03 23 ...``) never holds the receiver for a whole maximum frame.
A frame with a bad format, an impossible length (shorter than its header, or longer than the
largest information field of the DLMS profile allows), a bad address, a bad HCS or FCS, or a missing
closing flag is dropped and the receiver resynchronises on the next flag (counted in
:attr:`HdlcLink.dropped_frames`).

Addresses (IEC 62056-46 §6.4.2). The server address is 1, 2 or 4 octets: the upper HDLC address
(the logical device, :attr:`HdlcParameters.logical_address`) and, in the 2- and 4-octet forms,
the lower HDLC address (the physical device, :attr:`HdlcParameters.physical_address`: 0x10-0x7D
reachable in both forms, up to 0x3FFD in the 4-octet form only). A station with a physical
address (a multi-drop bus) takes a frame only when its lower address is that address or the
all-station address, so a 1-octet address, which names no physical device, is not for it; a
point-to-point station (no physical address: the optical port) takes any lower address. The
all-station address (0x7F in 1 and 2 octets, 0x3FFF in 4, in the upper or the lower part) is a
broadcast: the station accepts an UI frame sent to it (:class:`ApduReceived` with ``broadcast``
true) and never answers it; any other frame sent to it is ignored. The no-station (0x00) and
calling (0x7E / 0x3FFE) addresses never address a server.

Inactivity (IEC 62056-46 §6.4.4.3.3). The time comes from the caller (``now_s``, s, the shell's
injected clock). Only a valid frame individually addressed to this station restarts it: a head end
polling another station on the bus, broadcasts and garbage cannot keep a link open.
:attr:`HdlcLink.deadline_s` says when the link idles out, :meth:`HdlcLink.poll` acts on it.
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
#: The largest information field of the DLMS HDLC profile (octets, IEC 62056-46 / Green Book).
MAX_INFO = 2030
#: The smallest information field the link agrees to (octets).
MIN_INFO = 32
#: The largest window (frames) of modulo-8 numbering the DLMS profile allows.
MAX_WINDOW = 7
#: Octets of a frame besides its information field, at the longest addresses: format (2),
#: destination (4), source (4), control (1), HCS (2), FCS (2).
FRAME_OVERHEAD = 15
MIN_FRAME_LEN = 7  # format, 1-octet addresses, control, FCS

ALL_STATION = {1: 0x7F, 2: 0x7F, 4: 0x3FFF}
"""The all-station (broadcast) address of each address size (octets)."""
CALLING = {1: 0x7E, 2: 0x7E, 4: 0x3FFE}
NO_STATION = 0x00
#: The physical (lower) addresses a device may have: 0x10-0x7D (2 and 4 octets), to 0x3FFD (4 only).
PHYSICAL_RANGE = (0x10, 0x3FFD)


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


def max_frame_len(max_info: int) -> int:
    """The longest frame (length field, octets) carrying at most ``max_info`` octets of information."""
    return min(MAX_FRAME_LEN, max_info + FRAME_OVERHEAD)


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


def _address_end(buf: bytearray, pos: int) -> int | None:
    """Index after the address starting at ``pos`` (the octet with the end bit); -1 for an address
    of a size HDLC does not have; None when the buffer ends first."""
    start = pos
    while pos < len(buf) and not buf[pos] & 1:
        pos += 1
        if pos - start >= 4:
            return -1
    if pos >= len(buf):
        return None
    return pos + 1 if pos - start + 1 in (1, 2, 4) else -1


class FrameDecoder:
    """Length-delimited frame extraction with early HCS and FCS checks.

    ``max_len``: the longest length field accepted (octets, see :func:`max_frame_len`; by
    default that of the DLMS profile's largest information field, 2030 octets: a longer length,
    such as 0x7FF, is impossible).
    """

    def __init__(self, max_len: int = max_frame_len(MAX_INFO)) -> None:
        self._buf = bytearray()
        self._max = max_len
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

    def _drop(self) -> bool:
        """Drop the opening flag: the search goes on from the next flag."""
        del self._buf[:1]
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
            return self._drop()
        length = ((buf[1] & 0x07) << 8) | buf[2]
        if length < MIN_FRAME_LEN or length > self._max:
            return self._drop()
        header = self._check_header(length)
        if header is None:
            return None
        if not header:
            return self._drop()
        if len(buf) < length + 2:
            return None
        if buf[length + 1] != FLAG:
            return self._drop()
        frame = self._parse(bytes(buf[1:length + 1]))
        if frame is None:
            return self._drop()
        del buf[:length + 1]  # keep the closing flag: it may open the next frame
        return frame

    def _check_header(self, length: int) -> bool | None:
        """Whether the header fits the length and (for a frame with information) its HCS is right;
        None while it has not all arrived."""
        buf = self._buf
        dest_end = _address_end(buf, 3)
        if dest_end is None:
            return None
        if dest_end < 0:
            return False
        src_end = _address_end(buf, dest_end)
        if src_end is None:
            return None
        if src_end < 0:
            return False
        header_len = src_end  # flag excluded: format (2) + addresses + control
        if length == header_len + 2:
            return True  # no information: the FCS is the header's check, at the end
        if length < header_len + 2 + 2 + 1:
            return False  # too short for HCS, information and FCS
        if len(buf) < src_end + 3:
            return None
        return fcs16(buf[1:src_end + 1]) == buf[src_end + 1] | (buf[src_end + 2] << 8)

    @staticmethod
    def _parse(raw: bytes) -> Frame | None:
        end = len(raw) - 2
        if fcs16(raw[:end]) != raw[end] | (raw[end + 1] << 8):
            return None
        work = bytearray(raw)
        dest_end = _address_end(work, 2)
        src_end = _address_end(work, dest_end) if dest_end is not None and dest_end > 0 else -1
        if src_end is None or src_end < 0 or src_end >= end:
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
    """A complete APDU (LLC header removed) from client SAP ``client_sap``; ``broadcast``: sent
    to the all-station address in an UI frame, so never to be answered."""

    client_sap: int
    apdu: bytes
    broadcast: bool = False


@dataclass(frozen=True)
class LinkClosed:
    """The data link was disconnected or reset; release the association."""

    reason: str


HdlcEvent = Send | ApduReceived | LinkClosed


class LinkState(enum.Enum):
    """NDM: normal disconnected mode; NRM: normal response mode (connected)."""

    NDM = "NDM"
    NRM = "NRM"


class Addressed(enum.Enum):
    """How a frame's destination address concerns this station."""

    OURS = "ours"
    BROADCAST = "broadcast"
    OTHER = "other"


@dataclass(frozen=True)
class HdlcParameters:
    """Server side link parameters: addresses, the largest information fields (octets) and
    windows (frames) the link agrees to at most, the inactivity time-out (s, 0: none) and the
    inter-octet time-out (s, 0: none): a frame begun and not finished when input pauses longer is
    dropped, so a frame cut off on the line (its header valid) never holds the receiver.

    ``physical_address`` None: a point-to-point link (the optical port), any lower address is
    taken; otherwise the device's lower HDLC address on a multi-drop bus (0x10-0x3FFD; above 0x7D
    only the 4-octet address form reaches it).
    """

    logical_address: int = 1
    physical_address: int | None = None
    max_info_tx: int = DEFAULT_MAX_INFO
    max_info_rx: int = DEFAULT_MAX_INFO
    window_tx: int = 1
    window_rx: int = 1
    inactivity_s: float = 0.0
    inter_octet_s: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.logical_address <= 0x3FFD:
            raise ValueError(f"logical address {self.logical_address} outside 1..0x3FFD")
        low, high = PHYSICAL_RANGE
        if self.physical_address is not None and not low <= self.physical_address <= high:
            raise ValueError(f"physical address {self.physical_address:#x} outside {low:#x}..{high:#x}")
        for name in ("max_info_tx", "max_info_rx"):
            if not MIN_INFO <= getattr(self, name) <= MAX_INFO:
                raise ValueError(f"{name} {getattr(self, name)} outside {MIN_INFO}..{MAX_INFO} octets")
        for name in ("window_tx", "window_rx"):
            if not 1 <= getattr(self, name) <= MAX_WINDOW:
                raise ValueError(f"{name} {getattr(self, name)} outside 1..{MAX_WINDOW} frames")
        if self.inactivity_s < 0 or self.inter_octet_s < 0:
            raise ValueError("inactivity_s and inter_octet_s must not be negative")

    def addressed(self, dest: bytes) -> Addressed:
        """Whether a frame sent to ``dest`` is for this station, a broadcast it hears, or not for it."""
        try:
            upper, lower = decode_address(dest)
        except ValueError:
            return Addressed.OTHER
        everyone = ALL_STATION[len(dest)]
        if upper not in (self.logical_address, everyone):
            return Addressed.OTHER
        if lower is None:
            if self.physical_address is not None and upper != everyone:
                return Addressed.OTHER  # a 1-octet address names no device of a multi-drop bus
            return Addressed.BROADCAST if upper == everyone else Addressed.OURS
        if lower == everyone:
            return Addressed.BROADCAST
        if lower in (NO_STATION, CALLING[len(dest)]):
            return Addressed.OTHER
        if self.physical_address is not None and lower != self.physical_address:
            return Addressed.OTHER
        return Addressed.BROADCAST if upper == everyone else Addressed.OURS


@dataclass
class _Peer:
    client: bytes = b""
    server: bytes = b""
    tx_segments: list[bytes] = field(default_factory=list)
    rx_segments: list[bytes] = field(default_factory=list)
    in_flight: list[tuple[int, bytes, bool]] = field(default_factory=list)
    """Segments sent and not yet acknowledged: (N(S), information, more follow)."""
    last_sent: list[bytes] = field(default_factory=list)
    """The frames of the last answer (repeated when the client repeats its request)."""


class HdlcLink:
    """HDLC secondary station for one physical link (one client connection at a time)."""

    def __init__(self, params: HdlcParameters | None = None) -> None:
        self.params = params or HdlcParameters()
        self.decoder = FrameDecoder()
        self.state = LinkState.NDM
        self.max_info_tx = DEFAULT_MAX_INFO
        self.max_info_rx = DEFAULT_MAX_INFO
        self.window_tx = 1
        self.window_rx = 1
        self._vs = 0
        self._vr = 0
        self._peer = _Peer()
        self._last_valid_s = 0.0
        self._last_input_s: float | None = None
        self.foreign_frames = 0
        """Valid frames addressed to other stations (a multi-drop bus), ignored."""
        self.broadcast_frames = 0
        """Valid frames sent to the all-station address, never answered."""

    @property
    def dropped_frames(self) -> int:
        """Frames discarded for bad format, length, address, HCS or FCS."""
        return self.decoder.dropped

    @property
    def deadline_s(self) -> float | None:
        """When (s, the caller's clock) the link idles out; None while disconnected or without time-out."""
        if self.state is not LinkState.NRM or not self.params.inactivity_s:
            return None
        return self._last_valid_s + self.params.inactivity_s

    def receive(self, data: bytes, now_s: float = 0.0) -> list[HdlcEvent]:
        """Consume received octets at ``now_s`` (s); return the resulting events in order."""
        events: list[HdlcEvent] = []
        gap = self.params.inter_octet_s
        if gap and self._last_input_s is not None and now_s - self._last_input_s > gap and self.decoder.pending():
            self.decoder.clear()  # a frame cut off: what was begun before the pause is dropped
            self.decoder.dropped += 1
        self._last_input_s = now_s
        for frame in self.decoder.feed(data):
            target = self.params.addressed(frame.dest)
            if target is Addressed.OURS:
                self._last_valid_s = now_s
                events += self._on_frame(frame)
            elif target is Addressed.BROADCAST:
                self.broadcast_frames += 1
                events += self._on_broadcast(frame)
            else:
                self.foreign_frames += 1
        return events

    def poll(self, now_s: float) -> list[HdlcEvent]:
        """The inactivity time-out when ``now_s`` (s) reached :attr:`deadline_s`; else nothing."""
        deadline = self.deadline_s
        if deadline is None or now_s < deadline:
            return []
        return self.timeout()

    def timeout(self) -> list[HdlcEvent]:
        """Inactivity time-out: back to NDM without a frame (IEC 62056-46 §6.4.4.3.3)."""
        self.decoder.clear()
        if self.state is LinkState.NRM:
            self._disconnect()
            return [LinkClosed("inactivity")]
        return []

    def send_apdu(self, apdu: bytes) -> list[HdlcEvent]:
        """Send a response APDU (LLC added), segmented; returns the first window of segments to write."""
        if self.state is not LinkState.NRM:
            return []
        payload = LLC_RESPONSE + apdu
        size = self.max_info_tx
        self._peer.tx_segments = [payload[i:i + size] for i in range(0, len(payload), size)]
        self._peer.in_flight = []
        return self._send_window()

    # --- frame handling -----------------------------------------------------------------------

    def _reply(self, control: int, info: bytes = b"", segmented: bool = False) -> Send:
        raw = Frame(self._peer.client, self._peer.server, control, info, segmented).encode()
        return Send(raw)

    def _rr(self) -> Send:
        return self._reply(((self._vr << 5) | PF | 0x01) & 0xFF)

    def _on_broadcast(self, frame: Frame) -> list[HdlcEvent]:
        """An UI frame to everyone carries an APDU nobody answers; any other frame is ignored."""
        if frame.control & ~PF != UI or not frame.info.startswith(LLC_REQUEST):
            return []
        try:
            client_sap, _ = decode_address(frame.src)
        except ValueError:
            return []
        return [ApduReceived(client_sap, frame.info[len(LLC_REQUEST):], broadcast=True)]

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
            return self._on_receive_ready(frame.control >> 5, bool(frame.control & PF))
        return [self._reply(FRMR | PF, bytes((frame.control, (self._vr << 5) | (self._vs << 1), 0x01)))]

    def _on_snrm(self, frame: Frame) -> list[HdlcEvent]:
        was_connected = self.state is LinkState.NRM
        try:
            tx, rx, win_tx, win_rx = self._negotiate(frame.info)
        except ValueError:
            return [self._reply(FRMR | PF, bytes((frame.control, 0, 0x01)))]
        self.max_info_tx, self.max_info_rx = tx, rx
        self.window_tx, self.window_rx = win_tx, win_rx
        self._vs = self._vr = 0
        self._peer.tx_segments, self._peer.rx_segments, self._peer.in_flight = [], [], []
        self._peer.last_sent = []
        self.state = LinkState.NRM
        events: list[HdlcEvent] = [LinkClosed("snrm reset")] if was_connected else []
        events.append(self._reply(UA | PF, self._ua_info()))
        return events

    def _negotiate(self, info: bytes) -> tuple[int, int, int, int]:
        """(our max info TX, our max info RX, our window TX, our window RX) from the client's SNRM
        proposal (its transmit values bound our receive ones and the other way round), each
        within the configured maxima."""
        client = {0x05: DEFAULT_MAX_INFO, 0x06: DEFAULT_MAX_INFO, 0x07: 1, 0x08: 1}
        if info:
            if len(info) < 3 or info[0] != 0x81 or info[1] != 0x80 or info[2] != len(info) - 3:
                raise ValueError("bad SNRM parameter field")
            pos = 3
            while pos < len(info):
                if pos + 2 > len(info):
                    raise ValueError("truncated SNRM parameter")
                pid, plen = info[pos], info[pos + 1]
                if pos + 2 + plen > len(info) or not 1 <= plen <= 4:
                    raise ValueError("truncated SNRM parameter")
                if pid in client:
                    client[pid] = int.from_bytes(info[pos + 2:pos + 2 + plen], "big")
                pos += 2 + plen
        p = self.params
        tx = max(MIN_INFO, min(p.max_info_tx, client[0x06]))
        rx = max(MIN_INFO, min(p.max_info_rx, client[0x05]))
        win_tx = max(1, min(p.window_tx, client[0x08]))
        win_rx = max(1, min(p.window_rx, client[0x07]))
        return tx, rx, win_tx, win_rx

    def _ua_info(self) -> bytes:
        def param(pid: int, value: int, size: int) -> bytes:
            return bytes((pid, size)) + value.to_bytes(size, "big")

        body = (param(0x05, self.max_info_tx, 1 if self.max_info_tx < 256 else 2)
                + param(0x06, self.max_info_rx, 1 if self.max_info_rx < 256 else 2)
                + param(0x07, self.window_tx, 4) + param(0x08, self.window_rx, 4))
        return bytes((0x81, 0x80, len(body))) + body

    def _on_disc(self) -> list[HdlcEvent]:
        if self.state is LinkState.NDM:
            return [self._reply(DM | PF)]
        self._disconnect()
        return [LinkClosed("disc"), self._reply(UA | PF)]

    def _disconnect(self) -> None:
        self.state = LinkState.NDM
        self._peer.tx_segments, self._peer.rx_segments, self._peer.in_flight = [], [], []
        self._peer.last_sent = []

    def _on_information(self, frame: Frame) -> list[HdlcEvent]:
        ns, nr = (frame.control >> 1) & 0x07, frame.control >> 5
        poll = bool(frame.control & PF)
        if ns != self._vr:
            if ns == (self._vr - 1) % 8 and self._peer.last_sent and not self._peer.rx_segments:
                return [Send(raw) for raw in self._peer.last_sent]  # our answer was lost: repeat it
            return [self._rr()] if poll else []  # out of sequence: the client resends from V(R)
        self._acknowledge(nr)
        if self._peer.in_flight:
            return self._resend_in_flight()
        self._vr = (self._vr + 1) % 8
        if len(frame.info) > self.max_info_rx:
            return [self._reply(FRMR | PF, bytes((frame.control, (self._vr << 5) | (self._vs << 1), 0x04)))]
        self._peer.rx_segments.append(frame.info)
        if frame.segmented:
            return [self._rr()] if poll else []  # more of the window follows before the poll
        payload = b"".join(self._peer.rx_segments)
        self._peer.rx_segments = []
        self._peer.tx_segments = []
        if not payload.startswith(LLC_REQUEST):
            return [self._rr()]
        client_sap, _ = decode_address(frame.src)
        return [ApduReceived(client_sap, payload[len(LLC_REQUEST):])]

    def _acknowledge(self, nr: int) -> None:
        """Forget the segments the client's N(R) acknowledges (those numbered before it)."""
        flight = self._peer.in_flight
        if not flight:
            return
        numbers = [ns for ns, _, _ in flight]
        if nr in numbers:
            del flight[:numbers.index(nr)]
        elif nr == (numbers[-1] + 1) % 8:
            flight.clear()

    def _on_receive_ready(self, nr: int, poll: bool) -> list[HdlcEvent]:
        self._acknowledge(nr)
        if not poll:
            return []
        if self._peer.in_flight:
            return self._resend_in_flight()
        if self._peer.tx_segments:
            return self._send_window()
        if nr != self._vs and self._peer.last_sent:
            return [Send(raw) for raw in self._peer.last_sent]
        return [self._rr()]

    def _encode_segment(self, ns: int, segment: bytes, more: bool, final: bool) -> bytes:
        control = ((self._vr << 5) | (PF if final else 0) | (ns << 1)) & 0xFF
        return self._reply(control, segment, segmented=more).data

    def _send_window(self) -> list[HdlcEvent]:
        """The next segments, up to the transmit window; the poll/final bit on the last one."""
        peer = self._peer
        count = min(self.window_tx, len(peer.tx_segments))
        frames: list[bytes] = []
        for i in range(count):
            segment = peer.tx_segments.pop(0)
            more = bool(peer.tx_segments)
            peer.in_flight.append((self._vs, segment, more))
            frames.append(self._encode_segment(self._vs, segment, more, final=i == count - 1))
            self._vs = (self._vs + 1) % 8
        peer.last_sent = frames
        return [Send(raw) for raw in frames]

    def _resend_in_flight(self) -> list[HdlcEvent]:
        """Go back N: send again every segment the client has not acknowledged."""
        flight = self._peer.in_flight
        frames = [self._encode_segment(ns, segment, more, final=i == len(flight) - 1)
                  for i, (ns, segment, more) in enumerate(flight)]
        self._peer.last_sent = frames
        return [Send(raw) for raw in frames]
