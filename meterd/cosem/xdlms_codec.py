"""Octet-level codec of the xDLMS services the meter serves itself (IEC 62056-5-3 §9.4, DLMS UA
1000-2 Green Book §9.4.6): the *-with-list requests and responses, the SET data blocks and the
general-block-transfer (GBT) APDU. Pure code: no gurux, no I/O.

Every decoder raises :class:`~meterd.cosem.errors.ApduError` on a truncated, oversized or
nonsensical APDU; nothing is decoded past the end of the input and every count is bounded by
the octets that remain (and by :data:`MAX_LIST`), so a hostile length cannot make the server
allocate or loop.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from meterd.cosem.axdr import length_bytes, read_ber_length
from meterd.cosem.errors import ApduError

GET_REQUEST, SET_REQUEST, ACTION_REQUEST = 0xC0, 0xC1, 0xC3
GET_RESPONSE, SET_RESPONSE, ACTION_RESPONSE = 0xC4, 0xC5, 0xC7
GENERAL_BLOCK_TRANSFER = 0xE0

# request / response choices (IEC 62056-5-3 §9.5)
GET_NORMAL, GET_NEXT, GET_WITH_LIST = 1, 2, 3
GET_RESPONSE_WITH_DATABLOCK, GET_RESPONSE_WITH_LIST = 2, 3
SET_NORMAL, SET_FIRST_DATABLOCK, SET_DATABLOCK, SET_WITH_LIST, SET_WITH_LIST_FIRST_DATABLOCK = 1, 2, 3, 4, 5
SET_RESPONSE_DATABLOCK, SET_RESPONSE_LAST_DATABLOCK = 2, 3
SET_RESPONSE_LAST_DATABLOCK_WITH_LIST, SET_RESPONSE_WITH_LIST = 4, 5
ACTION_NORMAL, ACTION_WITH_LIST = 1, 3
ACTION_RESPONSE_WITH_LIST = 3

MAX_LIST = 64
"""The most elements a *-with-list request may name (a longer list is refused whole)."""
MAX_DEPTH = 16
"""The deepest nesting of arrays and structures accepted in a request's data."""

DESCRIPTOR_LEN = 9  # class id (2) + logical name (6) + attribute or method id (1)

# A-XDR data types of fixed size (IEC 62056-6-2 §4.1.5): tag -> octets
_FIXED = {0x00: 0, 0x03: 1, 0x05: 4, 0x06: 4, 0x0D: 1, 0x0F: 1, 0x10: 2, 0x11: 1, 0x12: 2, 0x14: 8, 0x15: 8,
          0x16: 1, 0x17: 4, 0x18: 8, 0x19: 12, 0x1A: 5, 0x1B: 4}
_COUNTED = {0x01, 0x02}        # array, structure: element count, then the elements
_OCTETS = {0x09, 0x0A, 0x0C}   # octet-, visible-, utf8-string: length, then the octets
_BIT_STRING = 0x04


def data_end(data: bytes, pos: int, depth: int = 0) -> int:
    """The position after the A-XDR ``Data`` element starting at ``pos``."""
    if pos >= len(data):
        raise ApduError("data element missing")
    if depth > MAX_DEPTH:
        raise ApduError("data nested too deep")
    tag = data[pos]
    pos += 1
    if tag in _FIXED:
        end = pos + _FIXED[tag]
    elif tag in _OCTETS:
        n, pos = read_ber_length(data, pos)
        end = pos + n
    elif tag == _BIT_STRING:
        bits, pos = read_ber_length(data, pos)
        end = pos + (bits + 7) // 8
    elif tag in _COUNTED:
        count, pos = read_ber_length(data, pos)
        if count > len(data) - pos:  # every element takes at least one octet
            raise ApduError("element count beyond the APDU")
        for _ in range(count):
            pos = data_end(data, pos, depth + 1)
        end = pos
    else:
        raise ApduError(f"data type 0x{tag:02X} not accepted")
    if end > len(data):
        raise ApduError("data element overruns the APDU")
    return end


def _count(data: bytes, pos: int) -> tuple[int, int]:
    count, pos = read_ber_length(data, pos)
    if count == 0 or count > MAX_LIST:
        raise ApduError(f"a list of {count} elements (1 to {MAX_LIST} accepted)")
    return count, pos


def _descriptor(data: bytes, pos: int) -> tuple[bytes, int]:
    end = pos + DESCRIPTOR_LEN
    if end > len(data):
        raise ApduError("descriptor cut short")
    return data[pos:end], end


def _access_selection(data: bytes, pos: int) -> int:
    """The position after an optional selective-access-descriptor (flag, selector, Data)."""
    if pos >= len(data):
        raise ApduError("access selection flag missing")
    if data[pos] == 0:
        return pos + 1
    if data[pos] != 1:
        raise ApduError("bad access selection flag")
    if pos + 2 > len(data):
        raise ApduError("access selector missing")
    return data_end(data, pos + 2)


@dataclass(frozen=True)
class ListRequest:
    """A GET-, SET- or ACTION-request-with-list: ``items`` are the descriptors of each element
    as they appear in the -normal request (with the access selection of an attribute), and
    ``values`` the data of each element (empty for GET)."""

    service: int
    invoke_id: int
    items: tuple[bytes, ...]
    values: tuple[bytes, ...]


def _attribute_items(data: bytes, pos: int) -> tuple[list[bytes], int]:
    count, pos = _count(data, pos)
    items: list[bytes] = []
    for _ in range(count):
        start = pos
        _, pos = _descriptor(data, pos)
        pos = _access_selection(data, pos)
        items.append(data[start:pos])
    return items, pos


def _values(data: bytes, pos: int, expected: int) -> tuple[list[bytes], int]:
    count, pos = read_ber_length(data, pos)
    if count != expected:
        raise ApduError(f"{count} values for {expected} elements")
    values: list[bytes] = []
    for _ in range(count):
        end = data_end(data, pos)
        values.append(data[pos:end])
        pos = end
    return values, pos


def parse_get_with_list(apdu: bytes) -> ListRequest:
    """Decode ``C0 03 invoke-id count {descriptor access-selection}``."""
    _expect(apdu, GET_REQUEST, GET_WITH_LIST)
    items, pos = _attribute_items(apdu, 3)
    _at_end(apdu, pos)
    return ListRequest(GET_REQUEST, apdu[2], tuple(items), ())


def parse_set_with_list(apdu: bytes) -> ListRequest:
    """Decode ``C1 04 invoke-id count {descriptor access-selection} count {Data}``."""
    _expect(apdu, SET_REQUEST, SET_WITH_LIST)
    items, pos = _attribute_items(apdu, 3)
    values, pos = _values(apdu, pos, len(items))
    _at_end(apdu, pos)
    return ListRequest(SET_REQUEST, apdu[2], tuple(items), tuple(values))


def parse_action_with_list(apdu: bytes) -> ListRequest:
    """Decode ``C3 03 invoke-id count {method descriptor} count {Data}``."""
    _expect(apdu, ACTION_REQUEST, ACTION_WITH_LIST)
    count, pos = _count(apdu, 3)
    items: list[bytes] = []
    for _ in range(count):
        item, pos = _descriptor(apdu, pos)
        items.append(item)
    values, pos = _values(apdu, pos, count)
    _at_end(apdu, pos)
    return ListRequest(ACTION_REQUEST, apdu[2], tuple(items), tuple(values))


def _expect(apdu: bytes, tag: int, choice: int) -> None:
    if len(apdu) < 3 or apdu[0] != tag or apdu[1] != choice:
        raise ApduError("not the expected request")


def _at_end(apdu: bytes, pos: int) -> None:
    if pos != len(apdu):
        raise ApduError(f"{len(apdu) - pos} octets after the request")


def normal_request(request: ListRequest, index: int) -> bytes:
    """The -normal request of element ``index`` of a with-list request."""
    head = bytes((request.service, 1, request.invoke_id)) + request.items[index]
    if request.service == GET_REQUEST:
        return head
    if request.service == SET_REQUEST:
        return head + request.values[index]
    return head + b"\x01" + request.values[index]


def get_with_list_response(invoke_id: int, results: list[bytes]) -> bytes:
    """``C4 03 invoke-id count {Get-Data-Result}``."""
    return bytes((GET_RESPONSE, GET_RESPONSE_WITH_LIST, invoke_id)) + list_body(results)


def list_body(results: list[bytes]) -> bytes:
    """A count and the encoded results (the part of a with-list response after the invoke-id)."""
    return length_bytes(len(results)) + b"".join(results)


def set_with_list_response(invoke_id: int, results: list[int]) -> bytes:
    """``C5 05 invoke-id count {Data-Access-Result}``."""
    return bytes((SET_RESPONSE, SET_RESPONSE_WITH_LIST, invoke_id)) + length_bytes(len(results)) + bytes(results)


def action_with_list_response(invoke_id: int, results: list[bytes]) -> bytes:
    """``C7 03 invoke-id count {Action-Response-With-Optional-Data}``."""
    return bytes((ACTION_RESPONSE, ACTION_RESPONSE_WITH_LIST, invoke_id)) + list_body(results)


def get_datablock_response(invoke_id: int, last: bool, number: int, raw: bytes) -> bytes:
    """``C4 02 invoke-id DataBlock-G``: last-block, block-number, raw-data (choice 0)."""
    return (bytes((GET_RESPONSE, GET_RESPONSE_WITH_DATABLOCK, invoke_id, int(last))) + struct.pack(">I", number)
            + b"\x00" + length_bytes(len(raw)) + raw)


def get_datablock_error(invoke_id: int, number: int, result: int) -> bytes:
    """``C4 02 invoke-id DataBlock-G`` ending a long GET with a Data-Access-Result (choice 1)."""
    return bytes((GET_RESPONSE, GET_RESPONSE_WITH_DATABLOCK, invoke_id, 1)) + struct.pack(">I", number) + bytes(
        (1, result))


def values_of(data: bytes, expected: int) -> list[bytes]:
    """The ``expected`` Data elements of a SEQUENCE OF Data filling ``data`` (count, elements)."""
    values, pos = _values(data, 0, expected)
    _at_end(data, pos)
    return values


# --- SET with data blocks -------------------------------------------------------------------------


@dataclass(frozen=True)
class SetBlock:
    """One SET-request data block: the first carries the element descriptors (``items``, one
    for -with-datablock, a list for -with-list-and-first-datablock); later ones carry none."""

    choice: int
    invoke_id: int
    items: tuple[bytes, ...]
    last: bool
    number: int
    raw: bytes


def parse_set_block(apdu: bytes) -> SetBlock:
    """Decode SET-request-with-first-datablock (2), -with-datablock (3) or
    -with-list-and-first-datablock (5)."""
    if len(apdu) < 3 or apdu[0] != SET_REQUEST or apdu[1] not in (
            SET_FIRST_DATABLOCK, SET_DATABLOCK, SET_WITH_LIST_FIRST_DATABLOCK):
        raise ApduError("not a SET data block")
    choice, pos = apdu[1], 3
    items: tuple[bytes, ...] = ()
    if choice == SET_FIRST_DATABLOCK:
        start = pos
        _, pos = _descriptor(apdu, pos)
        pos = _access_selection(apdu, pos)
        items = (apdu[start:pos],)
    elif choice == SET_WITH_LIST_FIRST_DATABLOCK:
        listed, pos = _attribute_items(apdu, pos)
        items = tuple(listed)
    if pos + 5 > len(apdu) or apdu[pos] > 1:
        raise ApduError("data block header cut short or malformed")
    last = apdu[pos] == 1
    (number,) = struct.unpack(">I", apdu[pos + 1:pos + 5])
    length, pos = read_ber_length(apdu, pos + 5)
    if pos + length != len(apdu):
        raise ApduError("raw data length does not match the APDU")
    return SetBlock(choice, apdu[2], items, last, number, apdu[pos:])


def set_block_ack(invoke_id: int, number: int) -> bytes:
    """``C5 02 invoke-id block-number``: a data block received, send the next."""
    return bytes((SET_RESPONSE, SET_RESPONSE_DATABLOCK, invoke_id)) + struct.pack(">I", number)


def set_last_block_response(invoke_id: int, result: int, number: int) -> bytes:
    """``C5 03 invoke-id result block-number``."""
    return bytes((SET_RESPONSE, SET_RESPONSE_LAST_DATABLOCK, invoke_id, result)) + struct.pack(">I", number)


def set_last_block_with_list_response(invoke_id: int, results: list[int], number: int) -> bytes:
    """``C5 04 invoke-id count {result} block-number``."""
    return (bytes((SET_RESPONSE, SET_RESPONSE_LAST_DATABLOCK_WITH_LIST, invoke_id)) + length_bytes(len(results))
            + bytes(results) + struct.pack(">I", number))


# --- general block transfer -----------------------------------------------------------------------

GBT_LAST, GBT_STREAMING, GBT_WINDOW_MASK = 0x80, 0x40, 0x3F


@dataclass(frozen=True)
class GbtBlock:
    """A general-block-transfer APDU (Green Book §9.4.6.13): ``last`` block, ``streaming``
    (more blocks follow without acknowledgement), the sender's receive ``window`` (blocks),
    its ``number``, the number it acknowledges (``ack``) and the block data."""

    last: bool
    streaming: bool
    window: int
    number: int
    ack: int
    data: bytes

    def encode(self) -> bytes:
        """``E0 block-control block-number block-number-ack block-data``."""
        control = (GBT_LAST if self.last else 0) | (GBT_STREAMING if self.streaming else 0)
        control |= self.window & GBT_WINDOW_MASK
        return (bytes((GENERAL_BLOCK_TRANSFER, control)) + struct.pack(">HH", self.number, self.ack)
                + length_bytes(len(self.data)) + self.data)


def parse_gbt(apdu: bytes) -> GbtBlock:
    """Decode a general-block-transfer APDU."""
    if len(apdu) < 6 or apdu[0] != GENERAL_BLOCK_TRANSFER:
        raise ApduError("general block transfer APDU cut short")
    control = apdu[1]
    number, ack = struct.unpack(">HH", apdu[2:6])
    length, pos = read_ber_length(apdu, 6)
    if pos + length != len(apdu):
        raise ApduError("block data length does not match the APDU")
    return GbtBlock(bool(control & GBT_LAST), bool(control & GBT_STREAMING), control & GBT_WINDOW_MASK,
                    number, ack, apdu[pos:])
