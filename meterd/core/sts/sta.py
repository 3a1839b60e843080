"""EA07 Standard Transfer Algorithm (STA): the 64-bit block cipher of IEC 62055-41.

STA is a 16-round substitution-permutation network on a 64-bit block with a 64-bit decoder key.
The two 4-bit substitution tables and the 64-bit permutation below are algorithm constants of
IEC 62055-41 (EA07), as published with the standard's public implementations; the set here is the
one that reproduces every published STS compliance vector.

Encryption (vending side, used to build test tokens): k = ror64(NOT K, 12); 16 rounds of
(nibble substitution selected by key bit 4n+3: 0 -> S1, 1 -> S2; bit permutation P; k = rol64(k, 1)).
Decryption undoes the rounds in reverse order.
"""

from __future__ import annotations

from meterd.core.sts.errors import CipherKeyError

MASK64 = (1 << 64) - 1
ROUNDS = 16

# IEC 62055-41 EA07 substitution tables (index = 4-bit input nibble).
S1: tuple[int, ...] = (14, 10, 7, 9, 12, 3, 2, 5, 13, 0, 15, 1, 4, 8, 6, 11)
S2: tuple[int, ...] = (12, 8, 2, 13, 7, 6, 1, 3, 11, 5, 9, 15, 0, 4, 10, 14)

# IEC 62055-41 EA07 permutation: bit i of the block moves to bit P[i].
P: tuple[int, ...] = (
    55, 42, 10, 18, 24, 21, 44, 35, 2, 22, 56, 43, 27, 58, 9, 50,
    6, 36, 12, 61, 37, 38, 53, 16, 62, 3, 7, 4, 32, 20, 63, 25,
    51, 52, 54, 33, 49, 19, 46, 29, 48, 31, 23, 30, 41, 28, 13, 5,
    40, 60, 39, 11, 15, 17, 1, 0, 57, 34, 59, 8, 47, 14, 45, 26,
)


def _inverse(table: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(table)
    for src, dst in enumerate(table):
        inv[dst] = src
    return tuple(inv)


S1_INV = _inverse(S1)
S2_INV = _inverse(S2)
P_INV = _inverse(P)


def _byte_tables(perm: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """For each byte position, the permuted 64-bit image of every byte value (fast bit permutation)."""
    tables = []
    for pos in range(8):
        row = []
        for value in range(256):
            out = 0
            for bit in range(8):
                if value >> bit & 1:
                    out |= 1 << perm[pos * 8 + bit]
            row.append(out)
        tables.append(tuple(row))
    return tuple(tables)


_P_BYTES = _byte_tables(P)
_P_INV_BYTES = _byte_tables(P_INV)


def _permute(block: int, tables: tuple[tuple[int, ...], ...]) -> int:
    out = 0
    for pos in range(8):
        out |= tables[pos][(block >> (8 * pos)) & 0xFF]
    return out


def _substitute(block: int, key: int, box_0: tuple[int, ...], box_1: tuple[int, ...]) -> int:
    """Replace nibble n by box_0[x] when key bit 4n+3 is 0, else box_1[x]."""
    out = 0
    for n in range(16):
        shift = 4 * n
        box = box_1 if key >> (shift + 3) & 1 else box_0
        out |= box[(block >> shift) & 0xF] << shift
    return out


def _rol(value: int, count: int) -> int:
    count %= 64
    return ((value << count) | (value >> (64 - count))) & MASK64


def _round_keys(key_int: int) -> list[int]:
    start = _rol(~key_int & MASK64, 64 - 12)
    return [_rol(start, r) for r in range(ROUNDS)]


class StaCipher:
    """EA07 STA with one 8-byte decoder key; implements the ``BlockCipher64`` protocol."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 8:
            raise CipherKeyError("STA (EA07) needs an 8-byte decoder key")
        self._round_keys = _round_keys(int.from_bytes(key, "big"))

    def encrypt_block(self, block: bytes) -> bytes:
        """Encrypt one 8-byte block (vending side; used to build test tokens)."""
        data = _check_block(block)
        for k in self._round_keys:
            data = _permute(_substitute(data, k, S1, S2), _P_BYTES)
        return data.to_bytes(8, "big")

    def decrypt_block(self, block: bytes) -> bytes:
        """Decrypt one 8-byte block (meter side)."""
        data = _check_block(block)
        for k in reversed(self._round_keys):
            data = _substitute(_permute(data, _P_INV_BYTES), k, S1_INV, S2_INV)
        return data.to_bytes(8, "big")


def _check_block(block: bytes) -> int:
    if len(block) != 8:
        raise ValueError("a block is 8 bytes")
    return int.from_bytes(block, "big")
