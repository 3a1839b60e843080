"""Struct-based A-XDR encoding for the hot paths (profile generic buffers), typed scalars and the
BER / A-XDR length octets.

gurux encodes values one by one through generic code (≈1.5 s for a 5760-row, 9-column load
profile); a profile buffer is a regular table, so each row is packed with one precompiled
``struct.Struct``. Type tags follow IEC 62056-6-2: 0x01 array, 0x02 structure, 0x05 double-long,
0x06 double-long-unsigned, 0x09 octet-string, 0x0A visible-string, 0x14 long64, 0x15
long64-unsigned, 0x18 float64.

Profile capture times go out as UTC with deviation 0 (the same instant for every client), through
:func:`meterd.cosem.datetime_codec.encode_utc`, the codec of every COSEM date-time.
"""

from __future__ import annotations

import datetime as _dt
import struct
from collections.abc import Sequence

from meterd.cosem.datetime_codec import DATETIME_LEN, encode_utc
from meterd.cosem.errors import ApduError

ARRAY, STRUCTURE, OCTET_STRING, VISIBLE_STRING = 0x01, 0x02, 0x09, 0x0A
INT32, UINT32, INT64, UINT64, FLOAT64 = 0x05, 0x06, 0x14, 0x15, 0x18

_VALUE_FORMATS = {INT32: "i", UINT32: "I", INT64: "q", UINT64: "Q", FLOAT64: "d"}


def length_bytes(n: int) -> bytes:
    """A-XDR length / element count (one octet below 0x80, else 0x8N + N octets)."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def read_ber_length(data: bytes, pos: int) -> tuple[int, int]:
    """(length, next position) of a BER/A-XDR length at ``pos``."""
    if pos >= len(data):
        raise ApduError("truncated length")
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 3 or pos + 1 + n > len(data):
        raise ApduError("bad length encoding")
    return int.from_bytes(data[pos + 1:pos + 1 + n], "big"), pos + 1 + n


Cell = int | float | str | bytes
"""One value of a profile row: a number, a visible string or an octet string (a date-time)."""


def column_type(values: Sequence[Cell]) -> int:
    """The narrowest A-XDR type holding every value of one column."""
    if values and all(isinstance(v, bytes) for v in values):
        return OCTET_STRING
    if any(isinstance(v, str | bytes) for v in values):
        return VISIBLE_STRING
    if any(isinstance(v, float) for v in values):
        return FLOAT64
    ints = [int(v) for v in values] or [0]
    low, high = min(ints), max(ints)
    if low >= 0:
        return UINT32 if high < 1 << 32 else UINT64
    return INT32 if low >= -(1 << 31) and high < 1 << 31 else INT64


class ProfileEncoder:
    """Encodes profile rows (capture time + values) as an A-XDR array of structures."""

    def __init__(self, value_types: Sequence[int], with_clock: bool = True) -> None:
        self._types = tuple(value_types)
        self._with_clock = with_clock
        self._fixed = all(t in _VALUE_FORMATS for t in self._types)
        fmt = ">BB" + ("BB12s" if with_clock else "") + "".join("B" + _VALUE_FORMATS.get(t, "") for t in self._types)
        self._row = struct.Struct(fmt) if self._fixed else None
        self._head = (STRUCTURE, len(self._types) + (1 if with_clock else 0))

    def encode(self, rows: Sequence[tuple[_dt.datetime, Sequence[Cell]] | tuple[_dt.datetime, Sequence[Cell], int]]) -> bytes:
        """The whole buffer: ``array`` of ``structure(clock, values...)``; a row may carry the
        clock status of its capture time as a third item."""
        out = bytearray((ARRAY,))
        out += length_bytes(len(rows))
        for row in rows:
            out += self.encode_row(row[0], row[1], row[2] if len(row) > 2 else 0)  # type: ignore[misc]
        return bytes(out)

    def encode_row(self, utc: _dt.datetime, values: Sequence[Cell], clock_status: int = 0) -> bytes:
        """One row: ``structure(clock?, values...)``; ``clock_status``: the capture time's status."""
        if len(values) != len(self._types):
            raise ApduError(f"row has {len(values)} values, expected {len(self._types)}")
        if self._row is not None:
            args: list[object] = list(self._head)
            if self._with_clock:
                args += (OCTET_STRING, DATETIME_LEN, encode_utc(utc, clock_status))
            for tag, value in zip(self._types, values, strict=True):
                args += (tag, value)
            return self._row.pack(*args)
        return self._encode_slow(utc, values, clock_status)

    def _encode_slow(self, utc: _dt.datetime, values: Sequence[Cell], clock_status: int) -> bytes:
        out = bytearray(self._head)
        if self._with_clock:
            out += bytes((OCTET_STRING, DATETIME_LEN)) + encode_utc(utc, clock_status)
        for tag, value in zip(self._types, values, strict=True):
            if tag in (OCTET_STRING, VISIBLE_STRING):
                raw = value if isinstance(value, bytes) else str(value).encode("ascii", "replace")
                out += bytes((tag,)) + length_bytes(len(raw)) + raw
            else:
                out += struct.pack(">B" + _VALUE_FORMATS[tag], tag, value)
        return bytes(out)


NULL, BOOLEAN, BIT_STRING, INT8, INT16, UINT8, UINT16, ENUM, FLOAT32 = 0x00, 0x03, 0x04, 0x0F, 0x10, 0x11, 0x12, 0x16, 0x17
_SCALAR_FORMATS = {**_VALUE_FORMATS, BOOLEAN: "?", INT8: "b", INT16: "h", UINT8: "B", UINT16: "H", ENUM: "B",
                   FLOAT32: "f"}
Scalar = int | float | bool | bytes | str | None


def encode_value(tag: int, value: Scalar) -> bytes:
    """A-XDR of one typed scalar: numbers, enum, boolean, octet / visible strings, null-data."""
    if tag == NULL:
        return b"\x00"
    if tag in (OCTET_STRING, VISIBLE_STRING):
        if isinstance(value, str):
            raw = value.encode("ascii", "replace")
        elif isinstance(value, bytes | bytearray):
            raw = bytes(value)
        elif value is None:
            raw = b""
        else:
            raise ApduError(f"octet or visible string expected, got {type(value).__name__}")
        return bytes((tag,)) + length_bytes(len(raw)) + raw
    fmt = _SCALAR_FORMATS.get(tag)
    if fmt is None:
        raise ApduError(f"no scalar encoding for type 0x{tag:02X}")
    return struct.pack(">B" + fmt, tag, value)


def encode_structure(*elements: bytes) -> bytes:
    """A-XDR structure of already encoded elements."""
    return bytes((STRUCTURE,)) + length_bytes(len(elements)) + b"".join(elements)


def encode_array(elements: Sequence[bytes]) -> bytes:
    """A-XDR array of already encoded elements."""
    return bytes((ARRAY,)) + length_bytes(len(elements)) + b"".join(elements)


def encode_scaler_unit(scaler: int, unit: int) -> bytes:
    """Register attribute 3: structure(scaler integer, unit enum)."""
    return encode_structure(encode_value(INT8, scaler), encode_value(ENUM, unit))


def encode_logical_name(obis: str) -> bytes:
    """octet-string(6) of an OBIS code written "a.b.c.d.e.f"."""
    return encode_value(OCTET_STRING, obis_bytes(obis))


def obis_bytes(obis: str) -> bytes:
    """The 6 octets of an OBIS code written "a.b.c.d.e.f"."""
    parts = [int(p) for p in obis.split(".")]
    if len(parts) != 6 or not all(0 <= p <= 255 for p in parts):
        raise ApduError(f"bad OBIS code {obis!r}")
    return bytes(parts)
