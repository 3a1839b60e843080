"""general-signing and general-ciphering APDUs (IEC 62056-5-3 §9.2.7.2.4, Green Book §9.2.7):
codecs and the content keys of general-ciphering.

Both start with the same header, each field an A-XDR octet string (length, octets)::

    transaction-id, originator-system-title, recipient-system-title, date-time, other-information

general-signing (tag 0xDF) continues with ``content`` (an xDLMS APDU, usually a ciphered one) and
``signature`` (``r || s``, :mod:`meterd.cosem.ecdsa_auth`) over the octets from the tag to the end
of ``content``. general-ciphering (tag 0xDD) continues with an optional ``key-info`` (presence
octet, then a CHOICE) and ``ciphered-content`` (``SC || IC || ciphertext || tag``); its GCM
additional data is ``SC || AK || header`` (the five fields as encoded), its IV the originator's
system title and IC. The key-info choices:

* ``[0]`` identified-key: key-id 0, the global unicast key (1, the broadcast key, is not held);
* ``[1]`` wrapped-key: kek-id 0 (the master key) and the content key wrapped with it (RFC 3394);
* ``[2]`` agreed-key: key-parameters 0x01 (one-pass Diffie-Hellman C(1e,1s): key-ciphered-data is
  the originator's ephemeral public key X || Y) or 0x02 (static unified model C(0e,2s): empty),
  the content key derived from the ECDH secret Z with the key-agreement keys of the suite by the
  NIST SP 800-56A concatenation KDF (the suite's hash): OtherInfo = AlgorithmID (the OID of
  AES-GCM-128, 2.16.756.5.8.3.0, or AES-GCM-256, 2.16.756.5.8.3.1) || ST_U || len(transaction-id)
  || transaction-id || ST_V.

A response answers in the form of its request with the same content key (no key-info: the client
made or agreed it for this transaction) and the same transaction-id.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from meterd.cosem.axdr import length_bytes, read_ber_length
from meterd.cosem.errors import ApduError, SecurityError
from meterd.cosem.pki import curve_of_suite, hash_of_suite
from meterd.cosem.security import key_length

GENERAL_CIPHERING, GENERAL_SIGNING = 0xDD, 0xDF
KEY_INFO_IDENTIFIED, KEY_INFO_WRAPPED, KEY_INFO_AGREED = 0, 1, 2
KEY_ID_GLOBAL_UNICAST, KEY_ID_GLOBAL_BROADCAST = 0, 1
KEK_MASTER = 0
AGREED_ONE_PASS_DH, AGREED_STATIC_UNIFIED = 0x01, 0x02
ALGORITHM_IDS = {1: bytes.fromhex("60857405080300"), 2: bytes.fromhex("60857405080301")}
"""AlgorithmID of the KDF per suite: the OID of AES-GCM-128 (suite 1) and AES-GCM-256 (suite 2)."""


@dataclass(frozen=True)
class Header:
    """The five leading fields of general-signing and general-ciphering (octets each)."""

    transaction_id: bytes
    originator: bytes
    recipient: bytes
    date_time: bytes = b""
    other_information: bytes = b""

    def encode(self) -> bytes:
        """The fields as A-XDR octet strings, in order."""
        return b"".join(_octets(f) for f in (self.transaction_id, self.originator, self.recipient,
                                               self.date_time, self.other_information))

    def answer(self) -> Header:
        """The header of the response: same transaction, originator and recipient swapped."""
        return Header(self.transaction_id, self.recipient, self.originator)


@dataclass(frozen=True)
class KeyInfo:
    """The key-info of a general-ciphering APDU: ``choice`` (0 identified, 1 wrapped, 2 agreed),
    ``key_id`` (identified key id, kek-id or key-parameters) and ``data`` (the wrapped key or the
    key-ciphered-data; empty for an identified key)."""

    choice: int
    key_id: int
    data: bytes = b""

    def encode(self) -> bytes:
        if self.choice == KEY_INFO_IDENTIFIED:
            return bytes((KEY_INFO_IDENTIFIED, self.key_id))
        if self.choice == KEY_INFO_WRAPPED:
            return bytes((KEY_INFO_WRAPPED, self.key_id)) + _octets(self.data)
        return bytes((KEY_INFO_AGREED,)) + _octets(bytes((self.key_id,))) + _octets(self.data)


@dataclass(frozen=True)
class GeneralSigning:
    """A general-signing APDU; ``signed`` the octets its signature covers."""

    header: Header
    content: bytes
    signature: bytes
    signed: bytes


@dataclass(frozen=True)
class GeneralCiphering:
    """A general-ciphering APDU."""

    header: Header
    key_info: KeyInfo | None
    ciphered_content: bytes


def _octets(value: bytes) -> bytes:
    return length_bytes(len(value)) + value


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def octet(self) -> int:
        if self.pos >= len(self.data):
            raise ApduError("general APDU truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def octets(self) -> bytes:
        n, pos = read_ber_length(self.data, self.pos)
        if pos + n > len(self.data):
            raise ApduError("general APDU field overruns the APDU")
        self.pos = pos + n
        return self.data[pos:pos + n]

    def header(self) -> Header:
        return Header(*(self.octets() for _ in range(5)))

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ApduError("octets after the end of a general APDU")


def parse_general_signing(apdu: bytes) -> GeneralSigning:
    """Decode a general-signing APDU (:class:`ApduError` when malformed or truncated)."""
    if not apdu or apdu[0] != GENERAL_SIGNING:
        raise ApduError("not a general-signing APDU")
    reader = _Reader(apdu, 1)
    header = reader.header()
    content = reader.octets()
    signed = apdu[:reader.pos]
    signature = reader.octets()
    reader.end()
    return GeneralSigning(header, content, signature, signed)


def build_general_signing(header: Header, content: bytes, signature_of: Callable[[bytes], bytes]) -> bytes:
    """A general-signing APDU; ``signature_of(octets) -> signature`` signs from the tag to the end
    of ``content``."""
    signed = bytes((GENERAL_SIGNING,)) + header.encode() + _octets(content)
    return signed + _octets(signature_of(signed))


def parse_general_ciphering(apdu: bytes) -> GeneralCiphering:
    """Decode a general-ciphering APDU (:class:`ApduError` when malformed or truncated)."""
    if not apdu or apdu[0] != GENERAL_CIPHERING:
        raise ApduError("not a general-ciphering APDU")
    reader = _Reader(apdu, 1)
    header = reader.header()
    key_info = None
    present = reader.octet()
    if present > 1:
        raise ApduError("key-info presence flag neither 0 nor 1")
    if present:
        choice = reader.octet()
        if choice == KEY_INFO_IDENTIFIED:
            key_info = KeyInfo(choice, reader.octet())
        elif choice == KEY_INFO_WRAPPED:
            key_info = KeyInfo(choice, reader.octet(), reader.octets())
        elif choice == KEY_INFO_AGREED:
            params = reader.octets()
            if len(params) != 1:
                raise ApduError("agreed-key parameters of one octet expected")
            key_info = KeyInfo(choice, params[0], reader.octets())
        else:
            raise ApduError(f"unknown key-info choice {choice}")
    content = reader.octets()
    reader.end()
    return GeneralCiphering(header, key_info, content)


def build_general_ciphering(header: Header, key_info: KeyInfo | None, ciphered_content: bytes) -> bytes:
    """A general-ciphering APDU."""
    info = b"\x00" if key_info is None else b"\x01" + key_info.encode()
    return bytes((GENERAL_CIPHERING,)) + header.encode() + info + _octets(ciphered_content)


def unwrap_content_key(master_key: bytes, wrapped: bytes, suite: int) -> bytes:
    """The content key of a wrapped-key key-info (RFC 3394 with the master key)."""
    try:
        key = aes_key_unwrap(master_key, wrapped)
    except (InvalidUnwrap, ValueError):
        raise SecurityError("wrapped key does not unwrap with the master key") from None
    if len(key) != key_length(suite):
        raise SecurityError(f"wrapped key of {len(key)} octets, suite {suite} needs {key_length(suite)}")
    return key


def public_key_of(raw: bytes, suite: int) -> ec.EllipticCurvePublicKey:
    """The public key ``X || Y`` (the DLMS encoding) on the suite's curve."""
    size = {1: 32, 2: 48}.get(suite)
    if size is None or len(raw) != 2 * size:
        raise SecurityError(f"public key of {len(raw)} octets is not a point of suite {suite}")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve_of_suite(suite), b"\x04" + raw)
    except ValueError:
        raise SecurityError("public key is not a point of the suite's curve") from None


def raw_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """``X || Y`` of a public key (the DLMS encoding)."""
    return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]


def derive_key(shared_secret: bytes, suite: int, originator: bytes, recipient: bytes, transaction_id: bytes) -> bytes:
    """The content key of an agreed-key key-info from the ECDH secret Z (see the module text)."""
    other = ALGORITHM_IDS[suite] + originator + _octets(transaction_id) + recipient
    kdf = ConcatKDFHash(hash_of_suite(suite), key_length(suite), other)
    return kdf.derive(shared_secret)


def agree(own: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey) -> bytes:
    """The ECDH shared secret Z of ``own`` and ``peer`` (:class:`SecurityError` across curves)."""
    if not isinstance(peer.curve, type(own.curve)):
        raise SecurityError("the peer's key-agreement key is on another curve")
    return own.exchange(ec.ECDH(), peer)
