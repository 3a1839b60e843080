"""STS prepayment token decoding (IEC 62055-41): codec, ciphers, key generation, decoder state and
the token processor. Pure and stdlib-only; DES is injected (``meterd.services.sts_crypto``)."""

from meterd.core.sts.cipher import (
    EA_DES,
    EA_MISTY1,
    EA_STA,
    BlockCipher64,
    CipherFactory,
    core_cipher_factory,
)
from meterd.core.sts.codec import DecodedToken, decode_token, encode_token, tid_to_datetime
from meterd.core.sts.errors import StsError, StsStateError, TokenFormatError
from meterd.core.sts.keys import KeyInputs, dkga02, dkga04
from meterd.core.sts.processor import StsConfig, TokenGate, TokenProcessor, commission
from meterd.core.sts.results import ResultName, TokenResult
from meterd.core.sts.state import KeyRegister, StsState, StsStateStore

__all__ = [
    "EA_DES", "EA_MISTY1", "EA_STA", "BlockCipher64", "CipherFactory", "DecodedToken", "KeyInputs",
    "KeyRegister", "ResultName", "StsConfig", "StsError", "StsState", "StsStateError",
    "StsStateStore", "TokenFormatError", "TokenGate", "TokenProcessor", "TokenResult",
    "commission", "core_cipher_factory", "decode_token", "dkga02", "dkga04", "encode_token",
    "tid_to_datetime",
]
