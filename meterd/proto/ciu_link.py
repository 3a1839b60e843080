"""Sans-I/O core of the MCU-CIU link: framing, authentication, reliable delivery, supervision, pairing.

Bytes go in through :meth:`LinkEndpoint.receive_bytes`, events come out; bytes to write are taken
with :meth:`LinkEndpoint.data_to_send` (or returned by :meth:`LinkEndpoint.send`). Timers
(retransmission, heartbeats, loss detection, hello retries) run on an injected monotonic clock
when :meth:`LinkEndpoint.poll` is called. No I/O, no threads, no system clock: the same object
runs in tests, in the simulator and on the devices. The wire format is described in
``docs/ciu-link.md``.

Frame on the wire (HDLC-like byte stuffing, FLAG 0x7E, ESC 0x7D, escaped byte XOR 0x20)::

    FLAG | ver(1) kind(1) ctr(4) seq(4) ack(4) payload(n) mac(8) crc(2) | FLAG

``mac`` is HMAC-SHA-256 truncated to 8 bytes over the sender's role byte and ver..payload, keyed
with the session key (HELLO frames: the pair key). ``crc`` is CRC-16/CCITT-FALSE over
ver..mac. ``ctr`` is a per-session, per-direction frame counter that must strictly increase
(replay protection for every frame); ``seq`` numbers DATA frames within a session (stop-and-wait ARQ, duplicates
are re-acknowledged but not delivered twice); ``ack`` acknowledges a DATA ``seq`` in ACK frames and
carries the session-independent message number in DATA frames, so a message re-sent in a new
session after a lost acknowledgement is recognised and not delivered again.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import struct
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

VERSION = 2  # 2: the kind byte carries the bus bits (sender, final frame of a turn)
FLAG = 0x7E
ESC = 0x7D
MAC_LEN = 8
NONCE_LEN = 16
KEY_LEN = 32
MAX_FRAME_LEN = 1024
RECENT_MESSAGES = 64  # message numbers remembered to drop repeats across sessions
MAX_OCTETS = 768  # longest octet field (B): an image block and its frame stay under MAX_FRAME_LEN
_HEADER = struct.Struct(">BBIII")
_U32 = 0xFFFFFFFF
_NO_KEY = bytes(32)  # pairing and poll frames carry their own proof (or none); their MAC only pads the format
KIND_MASK = 0x3F
FROM_METER = 0x40  # kind bit: the meter (bus master) sent this frame
FINAL = 0x80  # kind bit: last frame of the sender's turn; the other station may speak

FieldValue = int | str | bool | bytes
Fields = Mapping[str, FieldValue]


class LinkError(Exception):
    """Base of the errors raised by the CIU link core."""


class CodecError(LinkError):
    """A message payload could not be encoded or decoded."""


class Role(enum.Enum):
    """Which end of the link an endpoint is; the byte is mixed into every MAC (no reflection)."""

    METER = b"M"
    CIU = b"C"

    @property
    def peer(self) -> Role:
        return Role.CIU if self is Role.METER else Role.METER


class FrameKind(enum.IntEnum):
    """Link-level frame kinds."""

    DATA = 0x01
    ACK = 0x02
    HEARTBEAT = 0x03
    POLL = 0x04  # meter without a session: "your turn" (no key yet, nothing to authenticate)
    HELLO = 0x10
    HELLO_ACK = 0x11
    PAIR_INIT = 0x20
    PAIR_RESP = 0x21
    PAIR_DONE = 0x22


class MsgKind(enum.IntEnum):
    """Application messages carried in DATA frames."""

    TOKEN_SUBMIT = 0x01  # CIU -> meter: request_id, fields {digits}
    TOKEN_RESULT = 0x02  # meter -> CIU: request_id, fields {accepted, code, ...}
    STATUS = 0x03  # meter -> CIU: fields {credit, unit, mode, relay, power_w, tamper, low_credit...}
    SHORT_CODE = 0x04  # CIU -> meter: request_id, fields {code}
    SHORT_CODE_REPLY = 0x05  # meter -> CIU: request_id, fields {code, ...}
    TIME = 0x06  # meter -> CIU: fields {utc_s} (v1); v2 adds {time_v, utc_offset_s, dst}
    # the CIU's firmware update (update protocol ``fwu_v`` 1, docs/ciu-link.md "The CIU's update"):
    # sent only to a peer that announced ``fwu_v``, because a receiver that does not know a kind
    # drops the frame unacknowledged (``codec``)
    CIU_IDENT = 0x07  # CIU -> meter: {fwu_v, version, compatible, fw_id, fw_sha256, slot, update_*}
    FW_OFFER = 0x08  # meter -> CIU: request_id = transfer number; {fwu_v, sha256, size, version}
    FW_BLOCK = 0x09  # meter -> CIU: request_id = transfer number; {off, data (octets)}
    FW_STATE = 0x0A  # CIU -> meter: request_id = transfer number; {state, next, reason, detail}


class ShortCode(enum.IntEnum):
    """Keypad short codes a customer types (code then ENTER) to ask the meter for information."""

    CREDIT = 1
    LAST_TOKEN = 2
    POWER = 3
    TAMPER = 4
    TIME = 5
    RELAY = 6
    ENERGY = 7


class MonoClock(Protocol):
    """The part of the meter clock this core needs: monotonic seconds (s)."""

    def mono(self) -> float: ...


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One application message: its kind, a request id (0 when unused) and scalar fields."""

    kind: MsgKind
    request_id: int = 0
    fields: Fields = field(default_factory=dict)

    def encode(self) -> bytes:
        """Binary form: kind u8, request_id u32, count u8, then per field key, tag, value."""
        if not 0 <= self.request_id <= _U32:
            raise CodecError("request_id out of range")
        if len(self.fields) > 255:
            raise CodecError("too many fields")
        out = bytearray(struct.pack(">BIB", int(self.kind), self.request_id, len(self.fields)))
        for key, value in self.fields.items():
            out += _encode_field(key, value)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Inverse of :meth:`encode`; raises :class:`CodecError` on malformed input."""
        if len(data) < 6:
            raise CodecError("message too short")
        kind_b, request_id, count = struct.unpack_from(">BIB", data, 0)
        try:
            kind = MsgKind(kind_b)
        except ValueError as exc:
            raise CodecError(f"unknown message kind {kind_b}") from exc
        pos = 6
        fields: dict[str, FieldValue] = {}
        for _ in range(count):
            key, value, pos = _decode_field(data, pos)
            fields[key] = value
        if pos != len(data):
            raise CodecError("trailing bytes in message")
        return cls(kind, request_id, fields)


def _encode_field(key: str, value: FieldValue) -> bytes:
    key_b = key.encode("utf-8")
    if not 0 < len(key_b) <= 255:
        raise CodecError("bad field key")
    head = bytes([len(key_b)]) + key_b
    if isinstance(value, bool):
        return head + b"b" + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise CodecError(f"field {key} out of int64 range")
        return head + b"i" + struct.pack(">q", value)
    if isinstance(value, str):
        text = value.encode("utf-8")
        if len(text) > 255:
            raise CodecError(f"field {key} too long")
        return head + b"s" + bytes([len(text)]) + text
    if isinstance(value, bytes):  # octets (update protocol 1: image blocks); u16 length
        if len(value) > MAX_OCTETS:
            raise CodecError(f"field {key} too long")
        return head + b"x" + struct.pack(">H", len(value)) + value
    raise CodecError(f"field {key}: unsupported type {type(value).__name__}")


def _take(data: bytes, pos: int, n: int) -> bytes:
    if pos + n > len(data):
        raise CodecError("truncated message")
    return data[pos : pos + n]


def _decode_field(data: bytes, pos: int) -> tuple[str, FieldValue, int]:
    key_len = _take(data, pos, 1)[0]
    try:
        key = _take(data, pos + 1, key_len).decode("utf-8")
        pos += 1 + key_len
        tag = _take(data, pos, 1)
        pos += 1
        if tag == b"b":
            return key, _take(data, pos, 1) != b"\x00", pos + 1
        if tag == b"i":
            return key, int(struct.unpack(">q", _take(data, pos, 8))[0]), pos + 8
        if tag == b"s":
            n = _take(data, pos, 1)[0]
            return key, _take(data, pos + 1, n).decode("utf-8"), pos + 1 + n
        if tag == b"x":
            n = struct.unpack(">H", _take(data, pos, 2))[0]
            return key, _take(data, pos + 2, n), pos + 2 + n
    except UnicodeDecodeError as exc:
        raise CodecError("bad utf-8 in message") from exc
    raise CodecError(f"unknown field tag {tag!r}")


def token_submit(request_id: int, digits: str) -> Message:
    """CIU -> meter: a token of 20 decimal digits typed by the customer."""
    if len(digits) != 20 or not digits.isdigit():
        raise CodecError("a token has exactly 20 decimal digits")
    return Message(MsgKind.TOKEN_SUBMIT, request_id, {"digits": digits})


def short_code(request_id: int, code: int) -> Message:
    """CIU -> meter: a keypad short code (see :class:`ShortCode`)."""
    return Message(MsgKind.SHORT_CODE, request_id, {"code": int(code)})


#: Version of the time fields: 1 = ``utc_s`` only; 2 adds ``utc_offset_s`` and ``dst``.
TIME_FIELDS_VERSION = 2


def time_fields(utc_s: int, utc_offset_s: int | None = None, dst: bool = False) -> dict[str, FieldValue]:
    """Time fields of TIME (and of the short-code 5 reply): ``utc_s`` (POSIX s), and with the
    meter's legal time ``time_v`` = 2, ``utc_offset_s`` (local minus UTC, s) and ``dst``.
    A v1 receiver reads ``utc_s`` and ignores the rest."""
    fields: dict[str, FieldValue] = {"utc_s": int(utc_s)}
    if utc_offset_s is not None:
        fields.update(time_v=TIME_FIELDS_VERSION, utc_offset_s=int(utc_offset_s), dst=bool(dst))
    return fields


def parse_time_fields(fields: Fields) -> tuple[int, int | None]:
    """``(utc_s, utc_offset_s)`` from time fields; the offset is None from a v1 sender (or an
    implausible one, beyond ±18 h)."""
    utc_s = fields.get("utc_s", 0)
    offset = fields.get("utc_offset_s")
    version = fields.get("time_v", 1)
    utc = utc_s if isinstance(utc_s, int) and not isinstance(utc_s, bool) else 0
    if not isinstance(version, int) or version < 2 or not isinstance(offset, int) or isinstance(offset, bool) \
            or abs(offset) > 18 * 3600:
        return utc, None
    return utc, offset


# ---------------------------------------------------------------------------------------------
# The CIU's firmware update (update protocol 1)
# ---------------------------------------------------------------------------------------------

#: Version of the update protocol (CIU_IDENT, FW_OFFER, FW_BLOCK, FW_STATE). The meter announces
#: it as the STATUS field ``fwu_v``; a CIU that knows it answers with CIU_IDENT (``fwu_v``), and
#: only then does the meter send FW_OFFER/FW_BLOCK. A peer of either side that knows nothing of
#: it never sees the new kinds: an old CIU ignores the STATUS field, an old meter is never sent
#: CIU_IDENT (no ``fwu_v`` in its STATUS).
FWU_VERSION = 1
FW_BLOCK_BYTES = 512
"""Octets of image per FW_BLOCK (B): a 560-octet DATA frame, about 0.6 s at 9600 Bd."""


def _text(fields: Fields, key: str) -> str:
    value = fields.get(key, "")
    return value if isinstance(value, str) else ""


def _int(fields: Fields, key: str) -> int | None:
    value = fields.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _short(text: str) -> str:
    """``text`` cut to a string field's 255 octets of UTF-8."""
    return text.encode("utf-8")[:255].decode("utf-8", errors="ignore")


@dataclass(frozen=True)
class FwOffer:
    """Meter -> CIU: a bundle to carry. ``transfer`` (request id) numbers this transfer;
    ``sha256`` (hex) of the whole bundle identifies it (a CIU that holds a part of the same bundle
    resumes there); ``size`` (B); ``version`` the bundle's release version."""

    transfer: int
    sha256: str
    size: int
    version: str

    def message(self) -> Message:
        return Message(MsgKind.FW_OFFER, self.transfer, {"fwu_v": FWU_VERSION, "sha256": self.sha256,
                                                         "size": self.size, "version": self.version})

    @classmethod
    def parse(cls, message: Message) -> FwOffer | None:
        """The offer in ``message``, or None when a field is missing or out of range."""
        size = _int(message.fields, "size")
        digest = _text(message.fields, "sha256")
        if size is None or size <= 0 or len(digest) != 64:
            return None
        return cls(message.request_id, digest, size, _text(message.fields, "version"))


def fw_block(transfer: int, offset: int, data: bytes) -> Message:
    """Meter -> CIU: ``data`` of the bundle at ``offset`` (B) of transfer ``transfer``."""
    return Message(MsgKind.FW_BLOCK, transfer, {"off": offset, "data": data})


def parse_fw_block(message: Message) -> tuple[int, bytes] | None:
    """``(offset, data)`` of a FW_BLOCK, or None when malformed."""
    offset = _int(message.fields, "off")
    data = message.fields.get("data")
    if offset is None or offset < 0 or not isinstance(data, bytes):
        return None
    return offset, data


class FwPhase(enum.Enum):
    """Where the CIU is with a transfer (FW_STATE ``state``)."""

    RECEIVING = "receiving"    # wants the octets from ``next`` on
    VERIFYING = "verifying"    # has the whole bundle: checking and installing it
    REBOOTING = "rebooting"    # installed; trial boot (tryboot) of the new slot next
    REFUSED = "refused"        # the bundle is refused (``reason``, ``detail``); nothing installed
    FAILED = "failed"          # the install failed (``detail``); the running slot unchanged


@dataclass(frozen=True)
class FwState:
    """CIU -> meter: the state of transfer ``transfer`` (see :class:`FwPhase`); ``next`` (B) the
    first octet it does not hold durably; ``version`` the bundle's, once read."""

    transfer: int
    phase: FwPhase
    next: int = 0
    reason: str = ""
    detail: str = ""
    version: str = ""

    def message(self) -> Message:
        return Message(MsgKind.FW_STATE, self.transfer, {
            "state": self.phase.value, "next": self.next, "reason": _short(self.reason),
            "detail": _short(self.detail), "version": _short(self.version)})

    @classmethod
    def parse(cls, message: Message) -> FwState | None:
        try:
            phase = FwPhase(_text(message.fields, "state"))
        except ValueError:
            return None
        return cls(message.request_id, phase, _int(message.fields, "next") or 0, _text(message.fields, "reason"),
                   _text(message.fields, "detail"), _text(message.fields, "version"))


@dataclass(frozen=True)
class CiuIdent:
    """CIU -> meter, at each session once the meter announced ``fwu_v``: the CIU's running
    software (``version``, ``compatible``, ``fw_id`` its identifier, ``fw_sha256`` its SHA-256,
    ``slot`` A/B) and the outcome of its last update: ``outcome`` (``""``, ``confirmed``,
    ``rolled_back``), ``outcome_from``/``outcome_to`` versions, ``outcome_detail`` (the failed
    checks) and ``outcome_id`` (the same for every report of one outcome: the meter records it once)."""

    version: str
    compatible: str
    fw_id: str
    fw_sha256: str
    slot: str
    outcome: str = ""
    outcome_from: str = ""
    outcome_to: str = ""
    outcome_detail: str = ""
    outcome_id: str = ""
    fwu_v: int = FWU_VERSION

    def message(self) -> Message:
        return Message(MsgKind.CIU_IDENT, 0, {
            "fwu_v": self.fwu_v, "version": _short(self.version), "compatible": _short(self.compatible),
            "fw_id": _short(self.fw_id), "fw_sha256": _short(self.fw_sha256), "slot": _short(self.slot),
            "outcome": _short(self.outcome), "outcome_from": _short(self.outcome_from),
            "outcome_to": _short(self.outcome_to), "outcome_detail": _short(self.outcome_detail),
            "outcome_id": _short(self.outcome_id)})

    @classmethod
    def parse(cls, message: Message) -> CiuIdent:
        f = message.fields
        return cls(_text(f, "version"), _text(f, "compatible"), _text(f, "fw_id"), _text(f, "fw_sha256"),
                   _text(f, "slot"), _text(f, "outcome"), _text(f, "outcome_from"), _text(f, "outcome_to"),
                   _text(f, "outcome_detail"), _text(f, "outcome_id"), _int(f, "fwu_v") or 0)


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of ``data``."""
    return binascii.crc_hqx(data, 0xFFFF)


def mac(key: bytes, sender: Role, body: bytes) -> bytes:
    """HMAC-SHA-256 of the sender's role byte and ``body``, truncated to :data:`MAC_LEN` bytes."""
    return hmac.new(key, sender.value + body, hashlib.sha256).digest()[:MAC_LEN]


def stuff(frame: bytes) -> bytes:
    """Delimit and byte-stuff a frame for the wire."""
    out = bytearray([FLAG])
    for b in frame:
        if b in (FLAG, ESC):
            out += bytes([ESC, b ^ 0x20])
        else:
            out.append(b)
    out.append(FLAG)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    """A decoded frame (CRC already checked, MAC not yet)."""

    kind: int
    ctr: int
    seq: int
    ack: int
    payload: bytes
    tag: bytes
    bus_bits: int = 0
    """:data:`FROM_METER` and :data:`FINAL` as sent (covered by the MAC with the rest of the header)."""

    @property
    def body(self) -> bytes:
        return _HEADER.pack(VERSION, self.kind | self.bus_bits, self.ctr, self.seq, self.ack) + self.payload

    @property
    def from_meter(self) -> bool:
        return bool(self.bus_bits & FROM_METER)

    @property
    def final(self) -> bool:
        return bool(self.bus_bits & FINAL)


def build_frame(key: bytes, sender: Role, kind: FrameKind, ctr: int, seq: int, ack: int, payload: bytes,
                final: bool = True) -> bytes:
    """Encode, authenticate, checksum and stuff one frame (``final``: the last of the sender's turn)."""
    bits = (FROM_METER if sender is Role.METER else 0) | (FINAL if final else 0)
    body = _HEADER.pack(VERSION, int(kind) | bits, ctr & _U32, seq & _U32, ack & _U32) + payload
    raw = body + mac(key, sender, body)
    return stuff(raw + struct.pack(">H", crc16(raw)))


class Deframer:
    """Splits a byte stream into frames; resynchronises on FLAG after garbage or overruns."""

    def __init__(self, max_len: int = MAX_FRAME_LEN) -> None:
        self._buf = bytearray()
        self._escaped = False
        self._in_frame = False
        self._max_len = max_len

    @property
    def mid_frame(self) -> bool:
        """True while bytes of a frame not yet closed are buffered (someone is talking)."""
        return self._in_frame and bool(self._buf)

    def feed(self, data: bytes) -> list[Frame | str]:
        """Return decoded frames, or a short reason string for each rejected one."""
        out: list[Frame | str] = []
        for b in data:
            if b == FLAG:
                if self._in_frame and self._buf:
                    out.append(_parse(bytes(self._buf)))
                self._buf.clear()
                self._escaped = False
                self._in_frame = True
            elif not self._in_frame:
                continue
            elif b == ESC:
                self._escaped = True
            else:
                self._buf.append(b ^ 0x20 if self._escaped else b)
                self._escaped = False
                if len(self._buf) > self._max_len:
                    out.append("overrun")
                    self._buf.clear()
                    self._in_frame = False
        return out


def _parse(raw: bytes) -> Frame | str:
    if len(raw) < _HEADER.size + MAC_LEN + 2:
        return "short"
    if crc16(raw[:-2]) != struct.unpack(">H", raw[-2:])[0]:
        return "crc"
    ver, kind, ctr, seq, ack = _HEADER.unpack_from(raw, 0)
    if ver != VERSION:
        return "version"
    return Frame(kind & KIND_MASK, ctr, seq, ack, raw[_HEADER.size : -2 - MAC_LEN], raw[-2 - MAC_LEN : -2],
                 kind & (FROM_METER | FINAL))


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkUp:
    """A fresh authenticated session is established."""

    session: int


@dataclass(frozen=True)
class LinkDown:
    """The session ended: ``reason`` is ``"timeout"`` (no valid frame), ``"no-ack"`` or ``"rehello"``."""

    reason: str


@dataclass(frozen=True)
class MessageReceived:
    """A new (never delivered before in this session) application message from the peer."""

    message: Message


@dataclass(frozen=True)
class MessageDelivered:
    """The peer acknowledged one of our messages."""

    message: Message


@dataclass(frozen=True)
class FrameRejected:
    """A frame was dropped: ``crc``, ``short``, ``overrun``, ``version``, ``mac``, ``replay``, ``state``, ``codec``."""

    reason: str


@dataclass(frozen=True)
class PairingComplete:
    """Pairing succeeded: store ``pair_key`` (32 bytes, secret); show ``fingerprint`` on both displays."""

    pair_key: bytes = field(repr=False)
    fingerprint: str


@dataclass(frozen=True)
class PairingFailed:
    """Pairing failed (wrong code, or timeout)."""

    reason: str


LinkEvent = LinkUp | LinkDown | MessageReceived | MessageDelivered | FrameRejected | PairingComplete | PairingFailed


# ---------------------------------------------------------------------------------------------
# Pairing: finite-field Diffie-Hellman (RFC 3526 group 14) bound to the code shown on the meter LCD
# ---------------------------------------------------------------------------------------------

DH_P = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    16,
)
DH_G = 2
DH_LEN = 256


def _dh_public(secret: int) -> bytes:
    return pow(DH_G, secret, DH_P).to_bytes(DH_LEN, "big")


def _dh_shared(secret: int, peer_public: bytes) -> bytes:
    y = int.from_bytes(peer_public, "big")
    if not 1 < y < DH_P - 1:
        raise CodecError("bad DH public value")
    return pow(y, secret, DH_P).to_bytes(DH_LEN, "big")


@dataclass
class _Pairing:
    code: str
    secret: int
    public: bytes
    deadline_mono: float
    transcript: bytes = b""
    code_key: bytes = b""


def _code_key(code: str, shared: bytes, transcript: bytes) -> bytes:
    """Key binding the DH secret and transcript to the pairing code typed by the installer."""
    return hmac.new(hashlib.sha256(code.encode()).digest(), shared + transcript, hashlib.sha256).digest()


def _derive_pair_key(code_key: bytes, transcript: bytes) -> bytes:
    return hmac.new(code_key, b"pmm-ciu pair key" + transcript, hashlib.sha256).digest()


def _confirm(code_key: bytes, who: bytes, transcript: bytes) -> bytes:
    return hmac.new(code_key, who + transcript, hashlib.sha256).digest()


def fingerprint(transcript: bytes) -> str:
    """6-digit number both displays show after pairing; the installer checks they are equal."""
    return f"{int.from_bytes(hashlib.sha256(transcript).digest()[:4], 'big') % 1_000_000:06d}"


# ---------------------------------------------------------------------------------------------
# The endpoint
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkConfig:
    """Timers (s) and limits of the link on the half-duplex bus. Defaults suit 9600 Bd; the
    arithmetic behind them is in ``docs/ciu-link.md`` ("Bus timing").

    Answers before a session is authenticated (the meter's HELLO_ACK and PAIR_RESP) are rate
    limited: a token bucket of ``pre_auth_burst`` answers refilled at ``pre_auth_per_s`` (s⁻¹);
    a HELLO_ACK is about 60 octets, so at 9600 Bd HELLOs, replayed or not, take at most ~6 % of
    the line; requests beyond it are dropped unanswered (rejected as ``"rate"``). The nonces of
    the last ``hello_memory`` HELLOs with a valid MAC are remembered: one seen again is a replay,
    dropped unanswered (``"replay"``) without spending a token or touching the session being set
    up. So a replayed HELLO is answered at most once, and the CIU's own re-HELLO (a fresh nonce
    each second) gets through as soon as the replayer has used up its recorded HELLOs (at most
    ``hello_memory`` of them); the established session is never touched by a HELLO that is not
    answered.
    """

    baud: int = 9600
    """Line rate (Bd): one 8N1 character is 10 bit times."""
    poll_period_s: float = 0.2
    """The meter (bus master) gives the CIU a turn at least this often."""
    turnaround_s: float = 0.005
    """Silence after the other station's final frame before a station starts to talk."""
    driver_delay_s: float = 0.001
    """RS-485 driver enable before the first start bit plus disable after the last stop bit."""
    reply_window_s: float = 0.12
    """The CIU starts its answer within this time of its previous read (before which the meter's final
    frame cannot have ended), or stays silent for that turn."""
    reply_timeout_s: float = 0.18
    """The meter takes the turn back after this much silence (> the CIU's window + margin)."""
    max_retries: int = 8
    """Turns a DATA frame goes unacknowledged before the session is declared dead (``no-ack``)."""
    loss_timeout_s: float = 7.0
    hello_retry_s: float = 1.0
    pairing_timeout_s: float = 120.0
    max_queue: int = 64
    pre_auth_burst: int = 3
    pre_auth_per_s: float = 1.0
    hello_memory: int = 1024

    @property
    def char_s(self) -> float:
        """Time of one character on the wire (s)."""
        return 10.0 / self.baud


class LinkState(enum.Enum):
    """Session state of an endpoint."""

    DOWN = "down"
    UP = "up"


@dataclass
class _Session:
    key: bytes
    ident: int
    tx_ctr: int = 0
    rx_ctr: int = 0
    tx_seq: int = 0
    rx_seq: int = 0


@dataclass
class _Outgoing:
    message: Message
    msg_no: int  # session-independent message number, carried in the ack field of DATA frames


@dataclass
class _InFlight:
    message: Message
    msg_no: int
    seq: int
    tries: int
    on_air: bool = False  # transmitted in an earlier turn (not only queued in the current burst)


@dataclass
class LinkStats:
    """Counters for diagnostics (frames, retransmissions, rejections)."""

    frames_tx: int = 0
    frames_rx: int = 0
    retransmissions: int = 0
    turns: int = 0
    """Turns this station talked in."""
    reply_timeouts: int = 0
    """Meter: turns taken back after silence (the CIU's answer was lost or never came)."""
    late_turns: int = 0
    """CIU: turns given up because the answer could not start inside the reply window."""
    echoes: int = 0
    """Own frames heard back from the bus (a 2-wire transceiver listens while it talks)."""
    rejected: dict[str, int] = field(default_factory=dict)


class LinkEndpoint:
    """One end of the MCU-CIU link on a half-duplex bus.

    The meter is the bus master: it talks when it has something to say, and otherwise every
    ``poll_period_s``; the last frame of its turn carries :data:`FINAL`. The CIU talks only in the
    turn such a frame gives it (answering within ``reply_window_s``), and always ends its turn
    with a final frame too. The meter takes the turn back on the CIU's final frame or after
    ``reply_timeout_s`` of silence. Retransmissions happen in the next turn of the sender, so the
    master's polls pace every retry. Sessions and pairing are started by the CIU (in its turns).
    """

    def __init__(
        self,
        role: Role,
        clock: MonoClock,
        random_bytes: Callable[[int], bytes],
        pair_key: bytes | None = None,
        config: LinkConfig | None = None,
    ) -> None:
        if pair_key is not None and len(pair_key) != KEY_LEN:
            raise LinkError("pair key must be 32 bytes")
        self.role = role
        self.config = config or LinkConfig()
        self.stats = LinkStats()
        self._clock = clock
        self._rand = random_bytes
        self._pair_key = pair_key
        self._deframer = Deframer()
        self._burst: list[tuple[bytes, FrameKind, int, int, int, bytes]] = []  # frames of the next turn
        self._outbox: deque[_Outgoing] = deque()
        self._next_msg_no = int.from_bytes(random_bytes(4), "big") | 1
        self._recent_rx: deque[int] = deque(maxlen=RECENT_MESSAGES)
        self._inflight: _InFlight | None = None
        self._session: _Session | None = None
        self._pending: _Session | None = None  # meter: offered by HELLO_ACK, not yet confirmed
        self._hello_nonce: bytes | None = None
        self._last_rx_mono = clock.mono()
        self._last_hello_mono = float("-inf")
        self._last_pair_init_mono = float("-inf")
        # turn-taking: the meter starts with the turn, the CIU waits to be given one
        self._my_turn = role is Role.METER
        self._turn_at = clock.mono()  # earliest start of this station's talk (turnaround)
        self._turn_deadline = float("inf")  # CIU: latest start of its answer
        self._next_poll_mono = clock.mono()
        self._urgent = False  # meter: the CIU sent DATA last turn and may have more
        self._line_mono = float("-inf")  # meter: end of its own talk or last byte heard
        self._echo_expected = 0
        self._last_feed_mono = self._prev_feed_mono = clock.mono()  # receive_bytes calls (with or without data)
        self._pending_down: list[LinkDown] = []  # found while composing a turn, reported by poll()
        self._pairing: _Pairing | None = None
        self._sessions = 0
        self._pre_auth = _TokenBucket(self.config.pre_auth_burst, self.config.pre_auth_per_s, clock.mono())
        self._hello_seen: dict[bytes, None] = {}  # nonces of the HELLOs with a valid MAC, oldest first

    # -- public API ------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return LinkState.UP if self._session is not None else LinkState.DOWN

    @property
    def paired(self) -> bool:
        return self._pair_key is not None

    @property
    def pending_messages(self) -> int:
        """Messages not yet acknowledged by the peer (queued or in flight)."""
        return len(self._outbox) + (1 if self._inflight else 0)

    def set_pair_key(self, pair_key: bytes) -> None:
        """Install a (new) pair key; drops the current session."""
        if len(pair_key) != KEY_LEN:
            raise LinkError("pair key must be 32 bytes")
        self._pair_key = pair_key
        self._session = self._pending = None
        self._hello_seen.clear()  # HELLOs under the old key are no replays under the new one

    def send(self, message: Message) -> bytes:
        """Queue ``message`` for reliable delivery (kept across sessions) and return bytes to write."""
        if len(self._outbox) >= self.config.max_queue:
            raise LinkError("link queue full")
        message.encode()  # validate now, not at transmission
        self._outbox.append(_Outgoing(message, self._next_msg_no))
        self._next_msg_no = (self._next_msg_no + 1) & _U32 or 1
        self._pump_outbox()
        return self.data_to_send()

    def data_to_send(self) -> bytes:
        """Bytes to write to the wire now (and forget): a whole turn, or nothing when this
        station may not talk yet. Call it after :meth:`receive_bytes` and :meth:`poll`."""
        now = self._clock.mono()
        self._update_turn(now)
        if not self._my_turn or now < self._turn_at:
            return b""
        if self.role is Role.CIU and now > self._turn_deadline:
            self._my_turn = False  # too late: the meter may take the turn back at any moment
            self.stats.late_turns += 1
            return b""
        if self.role is Role.METER and not (self._burst or self._urgent or now >= self._next_poll_mono):
            return b""
        self._compose_turn(now)
        if not self._burst:
            self._my_turn = False  # nothing to say (a CIU not paired): the meter's timeout ends the turn
            return b""
        out = bytearray()
        last = len(self._burst) - 1
        for i, (key, kind, ctr, seq, ack, payload) in enumerate(self._burst):
            out += build_frame(key, self.role, kind, ctr, seq, ack, payload, final=i == last)
        self.stats.frames_tx += len(self._burst)
        self.stats.turns += 1
        self._echo_expected += len(self._burst)
        self._burst.clear()
        if self._inflight is not None:
            self._inflight.on_air = True
        self._my_turn = self._urgent = False
        self._next_poll_mono = now + self.config.poll_period_s
        self._line_mono = now + len(out) * self.config.char_s + self.config.driver_delay_s
        return bytes(out)

    @property
    def talking_allowed(self) -> bool:
        """True while this station holds the turn (diagnostics and tests)."""
        return self._my_turn

    def _update_turn(self, now: float) -> None:
        """Meter: take the turn back after ``reply_timeout_s`` of silence on the bus."""
        if self.role is Role.METER and not self._my_turn and now - self._line_mono > self.config.reply_timeout_s:
            self._my_turn = True
            self._turn_at = now
            self.stats.reply_timeouts += 1

    def _compose_turn(self, now: float) -> None:
        """Add what a turn needs besides queued frames: retransmissions, hellos, polls."""
        inflight = self._inflight
        if inflight is not None and inflight.on_air and self._session is not None:
            if inflight.tries > self.config.max_retries:
                self._pending_down.append(self._drop_session("no-ack"))
            else:
                inflight.tries += 1
                self.stats.retransmissions += 1
                self._emit(FrameKind.DATA, inflight.seq, inflight.msg_no, inflight.message.encode())
        if self.role is Role.CIU:
            self._compose_ciu(now)
        elif not self._burst:
            if self._session is not None:
                self._emit(FrameKind.HEARTBEAT, 0, 0, b"")
            else:
                self._send_raw(_NO_KEY, FrameKind.POLL, 0, 0, 0, b"")

    def _compose_ciu(self, now: float) -> None:
        pairing = self._pairing
        if pairing is not None:
            if not self._burst and now - self._last_pair_init_mono >= self.config.hello_retry_s:
                self._send_raw(_NO_KEY, FrameKind.PAIR_INIT, 0, 0, 0, pairing.public)
            if self._burst:
                self._last_pair_init_mono = now
            return
        if self._session is None:
            self._maybe_hello(now)
        elif not self._burst:
            self._emit(FrameKind.HEARTBEAT, 0, 0, b"")

    def receive_bytes(self, data: bytes) -> list[LinkEvent]:
        """Feed received bytes; returns the events they cause (acks go to :meth:`data_to_send`).

        Call it on every read, also when nothing came: the CIU's reply window counts from the
        previous call (the meter's final frame ended after it)."""
        events: list[LinkEvent] = []
        now = self._clock.mono()
        self._prev_feed_mono, self._last_feed_mono = self._last_feed_mono, now
        if data:
            self._line_mono = max(self._line_mono, now)
        for item in self._deframer.feed(data):
            if isinstance(item, str):
                events.append(self._reject(item))
            else:
                events.extend(self._on_frame(item))
        if self._deframer.mid_frame and self._my_turn:
            # a frame is still coming in (a final frame seen late, its closing flag lost and the next
            # frame's opening flag closing it): the other station talks, so this one does not
            self._my_turn = False
        return events

    def poll(self) -> list[LinkEvent]:
        """Run the timers; call every few tens of milliseconds (and after clock steps in tests)."""
        now = self._clock.mono()
        events: list[LinkEvent] = list(self._pending_down)
        self._pending_down.clear()
        events.extend(self._poll_pairing(now))
        if self._session is not None and now - self._last_rx_mono > self.config.loss_timeout_s:
            events.append(self._drop_session("timeout"))
        self._update_turn(now)
        return events

    def start_pairing(self, code: str) -> bytes:
        """Enter pairing with the code shown on the meter LCD (both ends call this with the same code).

        The CIU sends PAIR_INIT at once; the meter waits for it. Returns bytes to write.
        """
        if not (6 <= len(code) <= 12 and code.isdigit()):
            raise LinkError("pairing code is 6 to 12 digits")
        secret = int.from_bytes(self._rand(32), "big") | 1
        self._pairing = _Pairing(code, secret, _dh_public(secret), self._clock.mono() + self.config.pairing_timeout_s)
        if self.role is Role.CIU:
            self._burst.clear()  # session frames are moot now
            self._send_raw(_NO_KEY, FrameKind.PAIR_INIT, 0, 0, 0, self._pairing.public)
        return self.data_to_send()

    @staticmethod
    def new_pairing_code(random_bytes: Callable[[int], bytes], digits: int = 8) -> str:
        """A random decimal pairing code for the meter LCD."""
        return f"{int.from_bytes(random_bytes(8), 'big') % 10**digits:0{digits}d}"

    # -- frames in -------------------------------------------------------------------------

    def _reject(self, reason: str) -> FrameRejected:
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        return FrameRejected(reason)

    def _on_frame(self, frame: Frame) -> list[LinkEvent]:
        own = frame.from_meter == (self.role is Role.METER)
        if own and self._echo_expected > 0:  # our own frame, heard back from the bus
            self._echo_expected -= 1
            self.stats.echoes += 1
            return []
        self.stats.frames_rx += 1
        if not own:
            self._echo_expected = 0  # the peer talks: our echo is over (a line without echo)
            self._take_turn(frame)
        kind = frame.kind
        if kind in (FrameKind.PAIR_INIT, FrameKind.PAIR_RESP, FrameKind.PAIR_DONE):
            return self._on_pairing(frame)
        if self._pair_key is None:
            return [self._reject("state")]
        if kind == FrameKind.HELLO and self.role is Role.METER:
            return self._on_hello(frame)
        if kind == FrameKind.HELLO_ACK and self.role is Role.CIU:
            return self._on_hello_ack(frame)
        if kind in (FrameKind.DATA, FrameKind.ACK, FrameKind.HEARTBEAT):
            return self._on_session_frame(frame)
        if kind == FrameKind.POLL and self.role is Role.CIU:
            return []  # only the turn it gives matters
        return [self._reject("state")]

    def _take_turn(self, frame: Frame) -> None:
        """The peer's frame may hand the bus over (its final frame) or announce more data."""
        now = self._clock.mono()
        if self.role is Role.METER and frame.kind == FrameKind.DATA:
            self._urgent = True
        if frame.final:
            self._my_turn = True
            self._turn_at = now + self.config.turnaround_s
            self._turn_deadline = self._prev_feed_mono + self.config.reply_window_s

    def _check(self, key: bytes, frame: Frame) -> bool:
        return hmac.compare_digest(mac(key, self.role.peer, frame.body), frame.tag)

    def _on_hello(self, frame: Frame) -> list[LinkEvent]:
        assert self._pair_key is not None
        if not self._check(self._pair_key, frame) or len(frame.payload) != NONCE_LEN:
            return [self._reject("mac")]
        if frame.payload in self._hello_seen:
            return [self._reject("replay")]
        self._hello_seen[frame.payload] = None
        if len(self._hello_seen) > self.config.hello_memory:
            del self._hello_seen[next(iter(self._hello_seen))]
        if not self._pre_auth.take(self._clock.mono()):
            return [self._reject("rate")]
        nonce_m = self._rand(NONCE_LEN)
        key = _session_key(self._pair_key, frame.payload, nonce_m)
        self._sessions += 1
        self._pending = _Session(key, self._sessions)
        self._send_raw(self._pair_key, FrameKind.HELLO_ACK, 0, 0, 0, frame.payload + nonce_m)
        return []

    def _on_hello_ack(self, frame: Frame) -> list[LinkEvent]:
        assert self._pair_key is not None
        if not self._check(self._pair_key, frame):
            return [self._reject("mac")]
        if self._hello_nonce is None or frame.payload[:NONCE_LEN] != self._hello_nonce:
            return [self._reject("replay")]
        if len(frame.payload) != 2 * NONCE_LEN:
            return [self._reject("short")]
        key = _session_key(self._pair_key, self._hello_nonce, frame.payload[NONCE_LEN:])
        self._hello_nonce = None
        self._sessions += 1
        events: list[LinkEvent] = []
        if self._session is not None:
            events.append(self._drop_session("rehello"))
        self._start_session(_Session(key, self._sessions))
        events.append(LinkUp(self._sessions))
        self._emit(FrameKind.HEARTBEAT, 0, 0, b"")  # confirms the session to the meter
        self._pump_outbox()
        return events

    def _on_session_frame(self, frame: Frame) -> list[LinkEvent]:
        events: list[LinkEvent] = []
        session = self._session
        if session is None or not self._check(session.key, frame):
            pending = self._pending
            if pending is None or not self._check(pending.key, frame):
                return [self._reject("mac")]
            if session is not None:
                events.append(self._drop_session("rehello"))
            self._pending = None
            self._start_session(pending)
            events.append(LinkUp(pending.ident))
            session = pending
        if frame.ctr <= session.rx_ctr:
            return [*events, self._reject("replay")]
        session.rx_ctr = frame.ctr
        self._last_rx_mono = self._clock.mono()
        if frame.kind == FrameKind.ACK:
            events.extend(self._on_ack(frame.ack))
        elif frame.kind == FrameKind.DATA:
            events.extend(self._on_data(session, frame))
        self._pump_outbox()
        return events

    def _on_ack(self, seq: int) -> list[LinkEvent]:
        inflight = self._inflight
        if inflight is None or inflight.seq != seq:
            return []
        self._inflight = None
        return [MessageDelivered(inflight.message)]

    def _on_data(self, session: _Session, frame: Frame) -> list[LinkEvent]:
        if frame.seq == session.rx_seq:  # a retransmission we already delivered: ack again only
            self._emit(FrameKind.ACK, 0, frame.seq, b"")
            return []
        if frame.seq != session.rx_seq + 1:
            return [self._reject("state")]
        try:
            message = Message.decode(frame.payload)
        except CodecError:
            return [self._reject("codec")]
        session.rx_seq = frame.seq
        self._emit(FrameKind.ACK, 0, frame.seq, b"")
        if frame.ack in self._recent_rx:  # delivered in an earlier session, its ack was lost
            return []
        self._recent_rx.append(frame.ack)
        return [MessageReceived(message)]

    # -- frames out ------------------------------------------------------------------------

    def _send_raw(self, key: bytes, kind: FrameKind, ctr: int, seq: int, ack: int, payload: bytes) -> None:
        """Queue one frame for this station's next turn."""
        self._burst.append((key, kind, ctr, seq, ack, payload))

    def _emit(self, kind: FrameKind, seq: int, ack: int, payload: bytes) -> None:
        session = self._session
        assert session is not None
        session.tx_ctr += 1
        self._send_raw(session.key, kind, session.tx_ctr, seq, ack, payload)

    def _pump_outbox(self) -> None:
        session = self._session
        if session is None or self._inflight is not None or not self._outbox:
            return
        item = self._outbox.popleft()
        session.tx_seq += 1
        self._inflight = _InFlight(item.message, item.msg_no, session.tx_seq, 1)
        self._emit(FrameKind.DATA, session.tx_seq, item.msg_no, item.message.encode())

    def _maybe_hello(self, now: float) -> None:
        if self.role is not Role.CIU or self._pair_key is None or self._pairing is not None:
            return
        if now - self._last_hello_mono < self.config.hello_retry_s:
            return
        self._last_hello_mono = now
        self._hello_nonce = self._rand(NONCE_LEN)
        self._send_raw(self._pair_key, FrameKind.HELLO, 0, 0, 0, self._hello_nonce)

    def _start_session(self, session: _Session) -> None:
        self._session = session
        self._last_rx_mono = self._clock.mono()
        self._requeue_inflight()  # not acknowledged: send again first in the new session

    def _requeue_inflight(self) -> None:
        if self._inflight is not None:
            self._outbox.appendleft(_Outgoing(self._inflight.message, self._inflight.msg_no))
            self._inflight = None

    def _drop_session(self, reason: str) -> LinkDown:
        self._session = None
        self._requeue_inflight()
        self._last_hello_mono = float("-inf")
        return LinkDown(reason)

    # -- pairing ---------------------------------------------------------------------------

    def _poll_pairing(self, now: float) -> list[LinkEvent]:
        pairing = self._pairing
        if pairing is None:
            return []
        if now > pairing.deadline_mono:
            self._pairing = None
            return [PairingFailed("timeout")]
        return []

    def _on_pairing(self, frame: Frame) -> list[LinkEvent]:
        pairing = self._pairing
        if pairing is None:
            return [self._reject("state")]
        try:
            if frame.kind == FrameKind.PAIR_INIT and self.role is Role.METER:
                return self._on_pair_init(pairing, frame)
            if frame.kind == FrameKind.PAIR_RESP and self.role is Role.CIU:
                return self._on_pair_resp(pairing, frame)
            if frame.kind == FrameKind.PAIR_DONE and self.role is Role.METER:
                return self._on_pair_done(pairing, frame)
        except CodecError:
            return [self._reject("codec")]
        return [self._reject("state")]

    def _on_pair_init(self, pairing: _Pairing, frame: Frame) -> list[LinkEvent]:
        if len(frame.payload) != DH_LEN:
            return [self._reject("short")]
        if not self._pre_auth.take(self._clock.mono()):
            return [self._reject("rate")]
        shared = _dh_shared(pairing.secret, frame.payload)
        pairing.transcript = frame.payload + pairing.public
        pairing.code_key = _code_key(pairing.code, shared, pairing.transcript)
        confirm = _confirm(pairing.code_key, b"M", pairing.transcript)
        self._send_raw(_NO_KEY, FrameKind.PAIR_RESP, 0, 0, 0, pairing.public + confirm)
        return []

    def _on_pair_resp(self, pairing: _Pairing, frame: Frame) -> list[LinkEvent]:
        if len(frame.payload) != DH_LEN + 32:
            return [self._reject("short")]
        meter_public, confirm = frame.payload[:DH_LEN], frame.payload[DH_LEN:]
        transcript = pairing.public + meter_public
        code_key = _code_key(pairing.code, _dh_shared(pairing.secret, meter_public), transcript)
        self._pairing = None
        if not hmac.compare_digest(confirm, _confirm(code_key, b"M", transcript)):
            return [PairingFailed("code")]
        self._send_raw(_NO_KEY, FrameKind.PAIR_DONE, 0, 0, 0, _confirm(code_key, b"C", transcript))
        pair_key = _derive_pair_key(code_key, transcript)
        self.set_pair_key(pair_key)
        return [PairingComplete(pair_key, fingerprint(transcript))]

    def _on_pair_done(self, pairing: _Pairing, frame: Frame) -> list[LinkEvent]:
        if not pairing.code_key:
            return [self._reject("state")]
        self._pairing = None
        if not hmac.compare_digest(frame.payload, _confirm(pairing.code_key, b"C", pairing.transcript)):
            return [PairingFailed("code")]
        pair_key = _derive_pair_key(pairing.code_key, pairing.transcript)
        self.set_pair_key(pair_key)
        return [PairingComplete(pair_key, fingerprint(pairing.transcript))]


class _TokenBucket:
    """``burst`` tokens, refilled at ``per_s`` tokens per second (s⁻¹) of the monotonic clock."""

    def __init__(self, burst: int, per_s: float, now: float) -> None:
        if burst < 1 or per_s <= 0:
            raise LinkError("the pre-authentication rate limit needs a burst >= 1 and a positive rate")
        self._burst, self._per_s = float(burst), per_s
        self._tokens, self._at = float(burst), now

    def take(self, now: float) -> bool:
        """Spend one token if there is one (True), else False."""
        self._tokens = min(self._burst, self._tokens + max(0.0, now - self._at) * self._per_s)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def _session_key(pair_key: bytes, nonce_c: bytes, nonce_m: bytes) -> bytes:
    return hmac.new(pair_key, b"pmm-ciu session" + nonce_c + nonce_m, hashlib.sha256).digest()
