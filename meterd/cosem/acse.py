"""Association control (ACSE, IEC 62056-5-3 §9.3): AARQ/AARE, RLRQ/RLRE and xDLMS initiate.

Own BER code replaces gurux's ``_GXAPDU`` on the server side (its AARE encoder writes wrong BER
lengths for the responding AP title and authentication value, and its initiate parser does not
clamp the PDU size). Only the fields a meter needs are decoded; unknown AARQ elements are skipped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterd.cosem.axdr import length_bytes, read_ber_length
from meterd.cosem.errors import ApduError

AARQ, AARE, RLRQ, RLRE = 0x60, 0x61, 0x62, 0x63
_CONTEXT_PREFIX = bytes.fromhex("608574050801")    # 2.16.756.5.8.1.x application context name
_MECHANISM_PREFIX = bytes.fromhex("608574050802")  # 2.16.756.5.8.2.x authentication mechanism
CONTEXT_LN, CONTEXT_LN_CIPHERED = 1, 3
MECH_NONE, MECH_LLS, MECH_HLS_GMAC, MECH_HLS_ECDSA = 0, 1, 5, 7

RESULT_ACCEPTED, RESULT_REJECTED_PERMANENT, RESULT_REJECTED_TRANSIENT = 0, 1, 2
DIAG_NONE, DIAG_NO_REASON = 0, 1
DIAG_CONTEXT_NOT_SUPPORTED, DIAG_CALLING_AP_TITLE_NOT_RECOGNISED = 2, 3
DIAG_MECHANISM_NOT_RECOGNISED, DIAG_MECHANISM_REQUIRED = 11, 12
DIAG_AUTH_FAILURE, DIAG_AUTH_REQUIRED = 13, 14

INITIATE_REQUEST, INITIATE_RESPONSE, CONFIRMED_SERVICE_ERROR = 0x01, 0x08, 0x0E
INIT_ERR_DLMS_VERSION_TOO_LOW, INIT_ERR_INCOMPATIBLE_CONFORMANCE, INIT_ERR_PDU_TOO_SHORT = 1, 2, 3

# conformance bits as sent on the wire (bit 0 = MSB of the 24-bit string)
CONF_GENERAL_PROTECTION = 1 << (23 - 1)
CONF_GENERAL_BLOCK_TRANSFER = 1 << (23 - 2)
CONF_ATTR0_SET, CONF_ATTR0_GET = 1 << (23 - 8), 1 << (23 - 10)
CONF_BLOCK_GET, CONF_BLOCK_SET, CONF_BLOCK_ACTION = 1 << (23 - 11), 1 << (23 - 12), 1 << (23 - 13)
CONF_MULTIPLE_REFERENCES = 1 << (23 - 14)
CONF_GET, CONF_SET, CONF_SELECTIVE_ACCESS, CONF_ACTION = 1 << 4, 1 << 3, 1 << 2, 1 << 0
SERVER_CONFORMANCE = (CONF_GENERAL_PROTECTION | CONF_GENERAL_BLOCK_TRANSFER | CONF_BLOCK_GET | CONF_BLOCK_SET
                      | CONF_MULTIPLE_REFERENCES | CONF_GET | CONF_SET | CONF_SELECTIVE_ACCESS | CONF_ACTION)
"""Offered; what is granted is the part the client proposes (general block transfer only when
it proposes it)."""


def wire_to_gurux_conformance(wire: int) -> int:
    """gurux numbers conformance bits LSB-first (bit n of the string = 1 << n)."""
    return sum(1 << n for n in range(24) if wire & (1 << (23 - n)))


@dataclass
class InitiateRequest:
    """xDLMS InitiateRequest fields (client max receive PDU size in octets, 0 = no limit)."""

    dedicated_key: bytes | None
    dlms_version: int
    conformance: int
    max_pdu_size: int


@dataclass
class Aarq:
    """The fields of an AARQ the server acts on."""

    context_id: int = 0
    calling_title: bytes | None = None
    mechanism: int = MECH_NONE
    auth_value: bytes | None = None
    user_information: bytes | None = None


def _tlvs(data: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        tag = data[pos]
        length, pos = read_ber_length(data, pos + 1)
        if pos + length > len(data):
            raise ApduError(f"element 0x{tag:02X} overruns the APDU")
        out.append((tag, data[pos:pos + length]))
        pos += length
    return out


def _oid_last(value: bytes, prefix: bytes) -> int:
    if len(value) < 2 or value[0] != 0x06:
        raise ApduError("object identifier expected")
    oid = value[2:2 + value[1]]
    if len(oid) != len(prefix) + 1 or not oid.startswith(prefix):
        raise ApduError("unknown object identifier")
    return oid[-1]


def _inner(value: bytes, expected_tag: int) -> bytes:
    tlvs = _tlvs(value)
    if not tlvs or tlvs[0][0] != expected_tag:
        raise ApduError(f"expected element 0x{expected_tag:02X}")
    return tlvs[0][1]


def parse_aarq(apdu: bytes) -> Aarq:
    """Decode an AARQ (raises :class:`ApduError` on malformed input)."""
    if not apdu or apdu[0] != AARQ:
        raise ApduError("not an AARQ")
    length, pos = read_ber_length(apdu, 1)
    if pos + length != len(apdu):
        raise ApduError("AARQ length mismatch")
    aarq = Aarq()
    for tag, value in _tlvs(apdu[pos:]):
        if tag == 0xA1:
            aarq.context_id = _oid_last(value, _CONTEXT_PREFIX)
        elif tag == 0xA6:
            aarq.calling_title = _inner(value, 0x04)
        elif tag == 0x8B:
            aarq.mechanism = _oid_last(bytes((0x06, len(value))) + value, _MECHANISM_PREFIX)
        elif tag == 0xAC:
            aarq.auth_value = _inner(value, 0x80)
        elif tag == 0xBE:
            aarq.user_information = _inner(value, 0x04)
    return aarq


def parse_initiate_request(data: bytes) -> InitiateRequest:
    """Decode an xDLMS InitiateRequest (tag 0x01)."""
    try:
        if data[0] != INITIATE_REQUEST:
            raise ApduError("not an InitiateRequest")
        pos, key = 1, None
        if data[pos]:
            key = data[pos + 2:pos + 2 + data[pos + 1]]
            pos += 2 + data[pos + 1]
        else:
            pos += 1
        pos += 2 if data[pos] else 1            # response-allowed
        pos += 2 if data[pos] else 1            # proposed-quality-of-service
        version = data[pos]
        if data[pos + 1:pos + 4] != b"\x5F\x1F\x04":
            raise ApduError("conformance block expected")
        conformance = int.from_bytes(data[pos + 5:pos + 8], "big")
        (pdu,) = struct.unpack(">H", data[pos + 8:pos + 10])
    except (IndexError, struct.error) as exc:
        raise ApduError("truncated InitiateRequest") from exc
    return InitiateRequest(key, version, conformance, pdu)


def initiate_response(conformance: int, max_pdu_size: int) -> bytes:
    """xDLMS InitiateResponse for LN referencing (vaa-name 0x0007)."""
    return (bytes((INITIATE_RESPONSE, 0x00, 0x06, 0x5F, 0x1F, 0x04, 0x00)) + conformance.to_bytes(3, "big")
            + struct.pack(">H", max_pdu_size) + b"\x00\x07")


def initiate_error(code: int) -> bytes:
    """confirmed-service-error: initiate-error (service-error initiate, ``code``)."""
    return bytes((CONFIRMED_SERVICE_ERROR, 0x01, 0x06, code))


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + length_bytes(len(value)) + value


@dataclass
class Aare:
    """The fields of an AARE the server sends."""

    context_id: int
    result: int
    diagnostic: int
    mechanism: int = MECH_NONE
    responding_title: bytes | None = None
    stoc: bytes | None = None
    user_information: bytes | None = None

    def encode(self) -> bytes:
        """BER encoding."""
        body = _tlv(0xA1, bytes((0x06, 0x07)) + _CONTEXT_PREFIX + bytes((self.context_id,)))
        body += _tlv(0xA2, bytes((0x02, 0x01, self.result)))
        diag_choice = 0xA1
        body += _tlv(0xA3, _tlv(diag_choice, bytes((0x02, 0x01, self.diagnostic))))
        if self.responding_title is not None:
            body += _tlv(0xA4, _tlv(0x04, self.responding_title))
        if self.stoc is not None:
            body += bytes((0x88, 0x02, 0x07, 0x80))
            body += _tlv(0x89, _MECHANISM_PREFIX + bytes((self.mechanism,)))
            body += _tlv(0xAA, _tlv(0x80, self.stoc))
        if self.user_information is not None:
            body += _tlv(0xBE, _tlv(0x04, self.user_information))
        return _tlv(AARE, body)


def parse_rlrq(apdu: bytes) -> bytes | None:
    """Validate an RLRQ; returns its user information (or None)."""
    if not apdu or apdu[0] != RLRQ:
        raise ApduError("not an RLRQ")
    length, pos = read_ber_length(apdu, 1)
    if pos + length != len(apdu):
        raise ApduError("RLRQ length mismatch")
    for tag, value in _tlvs(apdu[pos:]):
        if tag == 0xBE:
            return _inner(value, 0x04)
    return None


def rlre(user_information: bytes | None = None) -> bytes:
    """RLRE with reason normal (0) and optional user information."""
    body = bytes((0x80, 0x01, 0x00))
    if user_information is not None:
        body += _tlv(0xBE, _tlv(0x04, user_information))
    return _tlv(RLRE, body)
