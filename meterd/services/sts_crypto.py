"""Library-backed ciphers for the STS decoder: DES (pycryptodome) for DKGA02 and EA09.

The pure core computes STA (EA07) and MISTY1 (EA11) itself; this module adds DES behind the same
``BlockCipher64`` protocol and offers the cipher factory the application injects into
``TokenProcessor``.
"""

from __future__ import annotations

from Crypto.Cipher import DES

from meterd.core.sts.cipher import EA_DES, BlockCipher64, core_cipher_factory
from meterd.core.sts.errors import CipherKeyError


class DesCipher:
    """Single DES, ECB, one 8-byte key (parity bits ignored); a ``BlockCipher64``."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 8:
            raise CipherKeyError("DES needs an 8-byte key")
        self._cipher = DES.new(key, DES.MODE_ECB)

    def encrypt_block(self, block: bytes) -> bytes:
        """Encrypt one 8-byte block."""
        return bytes(self._cipher.encrypt(_checked(block)))

    def decrypt_block(self, block: bytes) -> bytes:
        """Decrypt one 8-byte block."""
        return bytes(self._cipher.decrypt(_checked(block)))


def _checked(block: bytes) -> bytes:
    if len(block) != 8:
        raise ValueError("a block is 8 bytes")
    return block


def des_cipher(key: bytes) -> BlockCipher64:
    """DES factory for ``meterd.core.sts.keys.dkga02``."""
    return DesCipher(key)


def sts_cipher_factory(ea: int, key: bytes) -> BlockCipher64:
    """Cipher for a key register: EA07 STA, EA11 MISTY1 (core) or EA09 DES (withdrawn, for old stock)."""
    if ea == EA_DES:
        return DesCipher(key)
    return core_cipher_factory(ea, key)
