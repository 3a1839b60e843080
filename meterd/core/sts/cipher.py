"""The block-cipher port of the STS decoder and the factory that picks a cipher for an EA.

The core ships the two algorithms it can compute in pure Python (EA07 STA, EA11 MISTY1). DES (used
by DKGA02 on the vending side and by the withdrawn EA09) comes from a library and is injected by
``meterd.services.sts_crypto``, so the core stays stdlib-only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from meterd.core.sts.errors import UnsupportedAlgorithmError
from meterd.core.sts.misty1 import Misty1Cipher
from meterd.core.sts.sta import StaCipher

EA_STA = 7
EA_DES = 9
EA_MISTY1 = 11

#: Decoder-key length in bytes for each encryption algorithm.
KEY_BYTES_BY_EA: dict[int, int] = {EA_STA: 8, EA_DES: 8, EA_MISTY1: 16}


class BlockCipher64(Protocol):
    """A keyed 64-bit block cipher (one 8-byte block in, one out)."""

    def encrypt_block(self, block: bytes) -> bytes:
        """Encrypt exactly 8 bytes."""
        ...

    def decrypt_block(self, block: bytes) -> bytes:
        """Decrypt exactly 8 bytes."""
        ...


#: Builds a cipher for (EA, decoder key). Raises UnsupportedAlgorithmError for an unknown EA.
CipherFactory = Callable[[int, bytes], BlockCipher64]


def core_cipher_factory(ea: int, key: bytes) -> BlockCipher64:
    """Ciphers the pure core provides: EA07 (STA) and EA11 (MISTY1)."""
    if ea == EA_STA:
        return StaCipher(key)
    if ea == EA_MISTY1:
        return Misty1Cipher(key)
    raise UnsupportedAlgorithmError(f"no cipher for EA{ea:02d} in the core")
