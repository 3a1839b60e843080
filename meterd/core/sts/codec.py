"""IEC 62055-41 token codec: 20 digits <-> 66 bits, class-bit transposition, CRC-16, TID, amounts,
and the field layouts of classes 0, 1 and 2.

Pure functions. ``decode_token`` turns digits into a ``DecodedToken`` (fields only, no policy);
``encode_token`` does the reverse for test tools and fixtures (vending side). Bit numbering: bit 0 is
the least significant; the 66-bit token is bits 65..0, the 64-bit data block bits 63..0.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from meterd.core.sts.cipher import BlockCipher64, core_cipher_factory
from meterd.core.sts.errors import TokenFormatError

UTC = _dt.UTC
TOKEN_DIGITS = 20
TOKEN_LIMIT = 1 << 66
MASK64 = (1 << 64) - 1
TID_MAX = (1 << 24) - 1
_POW10: tuple[int, ...] = tuple(int(10**i) for i in range(40))

#: Base dates of the 24-bit TID minute counter (IEC 62055-41:2014 and later).
BASE_DATES: dict[int, _dt.datetime] = {
    1993: _dt.datetime(1993, 1, 1, tzinfo=UTC),
    2014: _dt.datetime(2014, 1, 1, tzinfo=UTC),
    2035: _dt.datetime(2035, 1, 1, tzinfo=UTC),
}

#: Units of the class 0 TransferAmount (one count = 0.1 of this unit), by subclass.
CREDIT_UNITS: dict[int, str] = {0: "kWh", 1: "m3", 2: "m3", 3: "min"}
CREDIT_COMMODITIES: dict[int, str] = {
    0: "electricity", 1: "water", 2: "gas", 3: "time",
    4: "electricity", 5: "water", 6: "gas", 7: "time",
}
CURRENCY_SUBCLASSES = frozenset({4, 5, 6, 7})
KCT_SUBCLASSES = frozenset({3, 4, 8, 9})


# --- digits and transposition -------------------------------------------------------------

def parse_digits(digits: str) -> int:
    """20 decimal digits -> the 66-bit token value; TokenFormatError otherwise."""
    text = digits.strip().replace(" ", "").replace("-", "")
    if len(text) != TOKEN_DIGITS or not text.isascii() or not text.isdigit():
        raise TokenFormatError("a token is exactly 20 decimal digits")
    value = int(text)
    if value >= TOKEN_LIMIT:
        raise TokenFormatError("token value does not fit in 66 bits")
    return value


def format_digits(value: int) -> str:
    """66-bit token value -> 20 digits (zero-padded)."""
    if not 0 <= value < TOKEN_LIMIT:
        raise TokenFormatError("token value does not fit in 66 bits")
    return f"{value:020d}"


def untranspose(token66: int) -> tuple[int, int]:
    """66-bit token -> (class, 64-bit transferred block). Class = token bits 28, 27."""
    token_class = (token66 >> 27) & 0b11
    block = token66 & MASK64 & ~(0b11 << 27)
    block |= ((token66 >> 64) & 0b11) << 27
    return token_class, block


def transpose(token_class: int, block: int) -> int:
    """(class, 64-bit transferred block) -> 66-bit token: block bits 28, 27 move to bits 65, 64."""
    top = (block >> 27) & 0b11
    return (top << 64) | (block & ~(0b11 << 27)) | ((token_class & 0b11) << 27)


# --- CRC ----------------------------------------------------------------------------------

def crc16_sts(data: bytes) -> int:
    """CRC-16 (poly 0x8005 reflected = 0xA001, init 0xFFFF, no final XOR; a.k.a. CRC-16/MODBUS)."""
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def token_crc(token_class: int, block: int) -> int:
    """The 16-bit CRC field for a token: CRC over class || block[63:16] (7 bytes), bytes swapped.

    Currency credit tokens (class 0, subclass 4-7) append one byte 0x01 before the CRC is run.
    """
    value50 = ((token_class & 0b11) << 48) | (block >> 16)
    data = value50.to_bytes(7, "big")
    if token_class == 0 and (block >> 60) in CURRENCY_SUBCLASSES:
        data += b"\x01"
    reg = crc16_sts(data)
    return ((reg & 0xFF) << 8) | (reg >> 8)


def crc_ok(token_class: int, block: int) -> bool:
    """True when the block's CRC field matches its content."""
    return token_crc(token_class, block) == block & 0xFFFF


# --- TID and amounts ----------------------------------------------------------------------

def tid_to_datetime(tid: int, base_date: int) -> _dt.datetime:
    """TID (minutes since 00:00 UTC on the base date) -> aware UTC datetime."""
    if base_date not in BASE_DATES:
        raise ValueError(f"unknown STS base date {base_date}")
    return BASE_DATES[base_date] + _dt.timedelta(minutes=tid)


def datetime_to_tid(when_utc: _dt.datetime, base_date: int) -> int:
    """Aware datetime -> TID on the base date (whole minutes, truncated)."""
    minutes = int((when_utc - BASE_DATES[base_date]).total_seconds() // 60)
    if not 0 <= minutes <= TID_MAX:
        raise ValueError("time outside the TID range of this base date")
    return minutes


def _band_base(exponent: int) -> int:
    """Sum of 16384 * 10^(i-1) for i = 1..exponent: the lowest value of band ``exponent``."""
    return sum(16384 * _POW10[i - 1] for i in range(1, exponent + 1))


def decode_amount16(field16: int) -> int:
    """16-bit exponent/mantissa field -> integer value (0.1 units for credit, W for MPL/MPPUL)."""
    exponent = (field16 >> 14) & 0b11
    mantissa = field16 & 0x3FFF
    return mantissa * _POW10[exponent] + _band_base(exponent)


def encode_amount16(value: int) -> int:
    """Integer value -> 16-bit field, rounding up to the next representable value (vending rule)."""
    if value < 0 or value > decode_amount16(0xFFFF):
        raise ValueError("amount outside the 16-bit STS range")
    for exponent in range(4):
        base = _band_base(exponent)
        mantissa = -(-(value - base) // _POW10[exponent])
        if mantissa < 16384:
            return (exponent << 14) | max(mantissa, 0)
    raise ValueError("amount outside the 16-bit STS range")  # unreachable after the range check


def decode_currency20(field20: int) -> int:
    """20-bit sign/exponent/mantissa currency field -> signed value in 0.00001 currency units."""
    sign = (field20 >> 19) & 1
    exponent = (field20 >> 14) & 0x1F
    magnitude = (field20 & 0x3FFF) * _POW10[exponent] + _band_base(exponent)
    return -magnitude if sign else magnitude


def encode_currency20(value_1e5: int) -> int:
    """Signed value in 0.00001 currency units -> 20-bit field, rounding towards +infinity."""
    sign = 1 if value_1e5 < 0 else 0
    magnitude = abs(value_1e5)
    for exponent in range(32):
        base = _band_base(exponent)
        span = magnitude - base
        step = _POW10[exponent]
        mantissa = span // step if sign else -(-span // step)
        if mantissa < 16384:
            return (sign << 19) | (exponent << 14) | max(mantissa, 0)
    raise ValueError("currency amount outside the 20-bit STS range")


# --- decoded token --------------------------------------------------------------------------

@dataclass(frozen=True)
class DecodedToken:
    """Fields of one token after transposition, decryption and CRC check (no policy applied).

    ``fields`` holds the class/subclass-specific values (see ``split_fields``); ``tid`` is the
    24-bit TID for tokens that carry one, else None.
    """

    token_class: int
    subclass: int
    block: int
    crc_ok: bool
    tid: int | None
    rnd: int | None
    fields: dict[str, Any] = field(default_factory=dict)

    def tid_datetime(self, base_date: int) -> _dt.datetime | None:
        """TID as an aware UTC datetime on ``base_date``, or None."""
        return None if self.tid is None else tid_to_datetime(self.tid, base_date)


def _credit_fields(subclass: int, block: int) -> dict[str, Any]:
    if subclass in CURRENCY_SUBCLASSES:
        field20 = (((block >> 56) & 0xF) << 16) | ((block >> 16) & 0xFFFF)
        return {"commodity": CREDIT_COMMODITIES[subclass], "currency_field20": field20,
                "currency_1e5": decode_currency20(field20)}
    if subclass in CREDIT_UNITS:
        field16 = (block >> 16) & 0xFFFF
        return {"commodity": CREDIT_COMMODITIES[subclass], "field16": field16,
                "amount_tenths": decode_amount16(field16), "unit": CREDIT_UNITS[subclass]}
    return {}


def _control_fields(subclass: int, block: int) -> dict[str, Any]:
    if subclass == 1:
        return {"control": (block >> 32) & 0xFFFFFFF, "mfr_code": (block >> 16) & 0xFFFF,
                "mfr_code_digits": 4}
    if subclass in (0, 2):
        return {"control": (block >> 24) & 0xFFFFFFFFF, "mfr_code": (block >> 16) & 0xFF,
                "mfr_code_digits": 2}
    return {"data": (block >> 16) & ((1 << 44) - 1)}


def _management_fields(subclass: int, block: int, ea: int) -> dict[str, Any]:
    field16 = (block >> 16) & 0xFFFF
    if subclass in (0, 6):
        name = "max_power_limit_w" if subclass == 0 else "max_phase_unbalance_w"
        return {"field16": field16, name: decode_amount16(field16)}
    if subclass == 1:
        return {"register_to_clear": field16}
    if subclass == 2:
        return {"rate": field16}
    if subclass == 5:
        return {"pad": field16}
    if subclass == 7:
        return {"water_factor": field16}
    if subclass == 10:
        return {"ext_index": field16 >> 10, "ext_value": field16 & 0x3FF}
    if subclass in KCT_SUBCLASSES:
        return _kct_fields(subclass, block, ea)
    return {"data": (block >> 16) & ((1 << 44) - 1)}


def _kct_fields(subclass: int, block: int, ea: int) -> dict[str, Any]:
    nk32 = (block >> 16) & 0xFFFFFFFF
    if subclass == 3:
        return {"section": 1, "kenho": (block >> 56) & 0xF, "krn": (block >> 52) & 0xF,
                "ro": (block >> 51) & 1, "kct3": (block >> 50) & 1, "kt": (block >> 48) & 0b11,
                "nkho": nk32}
    if subclass == 4:
        return {"section": 2, "kenlo": (block >> 56) & 0xF, "ti": (block >> 48) & 0xFF, "nklo": nk32}
    if subclass == 8 and ea != 11:
        return {"section": 3, "sgc": (block >> 36) & 0xFFFFFF, "pad": (block >> 16) & 0xFFFFF}
    if subclass == 8:
        return {"section": 3, "sgclo": (block >> 48) & 0xFFF, "nkmo2": nk32}
    return {"section": 4, "sgcho": (block >> 48) & 0xFFF, "nkmo1": nk32}


def split_fields(token_class: int, block: int, ea: int) -> DecodedToken:
    """Split a plain 64-bit block into the fields of its class/subclass (IEC 62055-41 layouts)."""
    subclass = (block >> 60) & 0xF
    ok = crc_ok(token_class, block)
    if token_class == 1:
        return DecodedToken(1, subclass, block, ok, None, None, _control_fields(subclass, block))
    if token_class == 2 and subclass in KCT_SUBCLASSES:
        return DecodedToken(2, subclass, block, ok, None, None, _kct_fields(subclass, block, ea))
    tid = (block >> 32) & 0xFFFFFF
    if token_class == 0:
        # Currency tokens carry amount bits 19..16 in the RND position; reported as rnd too.
        return DecodedToken(0, subclass, block, ok, tid, (block >> 56) & 0xF, _credit_fields(subclass, block))
    if token_class == 2:
        fields = _management_fields(subclass, block, ea)
        return DecodedToken(2, subclass, block, ok, tid, (block >> 56) & 0xF, fields)
    return DecodedToken(token_class, subclass, block, ok, None, None, {})


def decode_token(digits: str, key: bytes | None, ea: int, base_date: int = 1993,
                 cipher: BlockCipher64 | None = None) -> DecodedToken:
    """Decode 20 token digits with a decoder key (class 0/2) into fields and a CRC verdict.

    ``cipher`` overrides the cipher built from (``ea``, ``key``); class 1 tokens need neither.
    ``base_date`` is checked here but only used for display (``DecodedToken.tid_datetime``).
    Raises TokenFormatError for malformed digits; never raises for a wrong key (``crc_ok`` False).
    """
    if base_date not in BASE_DATES:
        raise ValueError(f"unknown STS base date {base_date}")
    token_class, transferred = untranspose(parse_digits(digits))
    if token_class in (0, 2):
        if cipher is None:
            if key is None:
                raise ValueError("class 0 and 2 tokens need a decoder key")
            cipher = core_cipher_factory(ea, key)
        block = int.from_bytes(cipher.decrypt_block(transferred.to_bytes(8, "big")), "big")
    else:
        block = transferred
    return split_fields(token_class, block, ea)


def build_block(token_class: int, block_without_crc: int) -> int:
    """Fill in the CRC field (bits 15..0) of a plain block."""
    block = block_without_crc & ~0xFFFF & MASK64
    return block | token_crc(token_class, block)


def encode_token(token_class: int, block_without_crc: int, cipher: BlockCipher64 | None) -> str:
    """Vending side: CRC, encrypt (class 0/2), transpose and print 20 digits. For tests and tools."""
    block = build_block(token_class, block_without_crc)
    if token_class in (0, 2):
        if cipher is None:
            raise ValueError("class 0 and 2 tokens need a cipher")
        block = int.from_bytes(cipher.encrypt_block(block.to_bytes(8, "big")), "big")
    return format_digits(transpose(token_class, block))
