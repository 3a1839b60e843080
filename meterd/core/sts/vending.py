"""Vending-side token builders (the inverse of the decoder), for test fixtures, the simulator,
HIL scripts and the CLI. A meter never runs these; they hold no keys of their own.
"""

from __future__ import annotations

from meterd.core.sts.cipher import EA_MISTY1, BlockCipher64
from meterd.core.sts.codec import encode_amount16, encode_currency20, encode_token

FIELD16_MASK = 0xFFFF


def _tid_block(subclass: int, rnd: int, tid: int, field16: int) -> int:
    if not (0 <= subclass <= 15 and 0 <= rnd <= 15 and 0 <= tid < 1 << 24 and 0 <= field16 <= FIELD16_MASK):
        raise ValueError("token field out of range")
    return (subclass << 60) | (rnd << 56) | (tid << 32) | (field16 << 16)


def credit_token(cipher: BlockCipher64, tid: int, amount_tenths: int, subclass: int = 0, rnd: int = 5) -> str:
    """Class 0 TransferCredit (subclass 0-3), amount in 0.1 units, rounded up to representable."""
    return encode_token(0, _tid_block(subclass, rnd, tid, encode_amount16(amount_tenths)), cipher)


def currency_token(cipher: BlockCipher64, tid: int, value_1e5: int, subclass: int = 4) -> str:
    """Class 0 currency credit (subclass 4-7), value in 0.00001 currency units."""
    field20 = encode_currency20(value_1e5)
    return encode_token(0, _tid_block(subclass, field20 >> 16, tid, field20 & FIELD16_MASK), cipher)


def management_token(cipher: BlockCipher64, subclass: int, tid: int, field16: int, rnd: int = 5) -> str:
    """Class 2 non-key-change token with a raw 16-bit value field."""
    return encode_token(2, _tid_block(subclass, rnd, tid, field16), cipher)


def max_power_limit_token(cipher: BlockCipher64, tid: int, limit_w: int) -> str:
    """Class 2 subclass 0 SetMaximumPowerLimit (W, rounded up to representable)."""
    return management_token(cipher, 0, tid, encode_amount16(limit_w))


def max_phase_unbalance_limit_token(cipher: BlockCipher64, tid: int, limit_w: int) -> str:
    """Class 2 subclass 6 SetMaximumPhasePowerUnbalanceLimit (W, rounded up to representable)."""
    return management_token(cipher, 6, tid, encode_amount16(limit_w))


def meter_test_token(control: int, mfr_code: int = 0, four_digit_mfr: bool = False) -> str:
    """Class 1 InitiateMeterTest/Display (not encrypted)."""
    if four_digit_mfr:
        block = (1 << 60) | ((control & 0xFFFFFFF) << 32) | ((mfr_code & 0xFFFF) << 16)
    else:
        block = ((control & 0xFFFFFFFFF) << 24) | ((mfr_code & 0xFF) << 16)
    return encode_token(1, block, None)


def key_change_tokens(cipher: BlockCipher64, ea: int, new_key: bytes, krn: int, kt: int, ti: int,
                      ken: int = 255, ro: bool = False, sgc: int | None = None) -> dict[int, str]:
    """Key change set (by subclass 3, 4[, 8[, 9]]) encrypted with the meter's *current* key.

    EA07: 2 tokens, or 3 when ``sgc`` is given (3KCT bit set, subclass 8 carries the SGC).
    EA11: always 4 tokens (``sgc`` defaults to 0).
    """
    words = [int.from_bytes(new_key[i : i + 4], "big") for i in range(0, len(new_key), 4)]
    three = ea != EA_MISTY1 and sgc is not None
    first = ((3 << 60) | ((ken >> 4) << 56) | (krn << 52) | (int(ro) << 51) | (int(three) << 50)
             | (kt << 48) | (words[0] << 16))
    second = (4 << 60) | ((ken & 0xF) << 56) | (ti << 48) | (words[-1] << 16)
    tokens = {3: encode_token(2, first, cipher), 4: encode_token(2, second, cipher)}
    if ea == EA_MISTY1:
        group = sgc or 0
        third = (8 << 60) | ((group & 0xFFF) << 48) | (words[1] << 16)
        fourth = (9 << 60) | ((group >> 12) << 48) | (words[2] << 16)
        tokens[8] = encode_token(2, third, cipher)
        tokens[9] = encode_token(2, fourth, cipher)
    elif three and sgc is not None:
        tokens[8] = encode_token(2, (8 << 60) | (sgc << 36), cipher)
    return tokens
