"""Decoder-key generation (DKGA02, DKGA04) and meter-number checks of IEC 62055-41.

These run on the vending side; the meter only holds the resulting decoder key. They are here for
test fixtures, commissioning tools and the CLI. DKGA02 needs DES, which is injected as a
``BlockCipher64`` factory (``meterd.services.sts_crypto.des_cipher``) to keep the core stdlib-only.
Only the public STS test vending keys may appear in tests; real keys come from the keys file.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from meterd.core.sts.cipher import BlockCipher64
from meterd.core.sts.errors import CipherKeyError

DesFactory = Callable[[bytes], BlockCipher64]

#: The public STS test vending key (DKGA04, STS 531-1 test specifications, tests/data/sts-vectors.json).
#: Simulated and lab meters only: a real meter's decoder key comes from its keys file.
TEST_VENDING_KEY_DKGA04 = bytes.fromhex("abababababababab949494949494949401234567")

KT_INITIALISATION = 0
KT_DEFAULT = 1
KT_UNIQUE = 2
KT_COMMON = 3


def luhn_check_digit(digits: str) -> int:
    """Luhn check digit to append to ``digits``."""
    total = 0
    for pos, char in enumerate(reversed(digits)):
        value = int(char)
        if pos % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def luhn_ok(number: str) -> bool:
    """True when the last digit of ``number`` is its Luhn check digit."""
    return number.isdigit() and len(number) > 1 and luhn_check_digit(number[:-1]) == int(number[-1])


@dataclass(frozen=True)
class KeyInputs:
    """Inputs of decoder-key generation (all as printed on vending records).

    ``meter_pan`` is the 18-digit MeterPAN (IIN || DRN || Luhn); ``sgc`` 6 digits; ``ti`` 2 digits.
    """

    meter_pan: str
    sgc: str
    ti: str
    krn: int
    kt: int
    base_date: int = 1993
    ea: int = 7

    def __post_init__(self) -> None:
        if len(self.meter_pan) != 18 or not self.meter_pan.isdigit():
            raise ValueError("MeterPAN is 18 digits")
        if len(self.sgc) != 6 or not self.sgc.isdigit() or len(self.ti) != 2 or not self.ti.isdigit():
            raise ValueError("SGC is 6 digits and TI 2 digits")
        if not 0 <= self.kt <= 3 or not 0 <= self.krn <= 9:
            raise ValueError("KT is 0..3 and KRN 0..9")

    @property
    def iin_length(self) -> int:
        """6 for IIN 600727 (11-digit DRN), 4 for IIN 0000 (13-digit DRN)."""
        return 6 if self.meter_pan.startswith("600727") else 4


def _pan_block_digits(inputs: KeyInputs) -> str:
    iin_drn = inputs.meter_pan[:17]
    if inputs.kt == KT_COMMON:
        iin_drn = iin_drn[: inputs.iin_length] + "0" * (17 - inputs.iin_length)
    return iin_drn[1:]


def dkga02(vending_key: bytes, inputs: KeyInputs, des: DesFactory) -> bytes:
    """DKGA02: DK = DES_VK(X) XOR X XOR VK, X = PANBlock XOR CONTROLBlock (8-byte key, EA07)."""
    if len(vending_key) != 8:
        raise CipherKeyError("a DKGA02 vending key is 8 bytes")
    pan_block = int(_pan_block_digits(inputs), 16)
    control = int(f"{inputs.kt}{inputs.sgc}{inputs.ti}{inputs.krn}FFFFFF", 16)
    x = pan_block ^ control
    vk = int.from_bytes(vending_key, "big")
    enc = int.from_bytes(des(vending_key).encrypt_block(x.to_bytes(8, "big")), "big")
    return (enc ^ x ^ vk).to_bytes(8, "big")


def _lv(text: str) -> bytes:
    data = text.encode("ascii")
    return bytes([len(data)]) + data


def dkga04_message(inputs: KeyInputs, key_bits: int) -> bytes:
    """The HMAC message of DKGA04: label, 0x00, context, output length in bits."""
    label = b"\x04" + _lv("04") + _lv(f"{inputs.base_date % 100:02d}") + _lv(f"{inputs.ea:02d}") + _lv(inputs.ti)
    context = (b"\x04" + _lv(inputs.sgc) + _lv(str(inputs.kt)) + _lv(str(inputs.krn))
               + _lv(inputs.meter_pan))
    return label + b"\x00" + context + key_bits.to_bytes(4, "big")


def dkga04(vending_key: bytes, inputs: KeyInputs) -> bytes:
    """DKGA04: first 8 (EA07) or 16 (EA11) bytes of HMAC-SHA-256(VK, message)."""
    key_bits = 128 if inputs.ea == 11 else 64
    mac = hmac.new(vending_key, dkga04_message(inputs, key_bits), hashlib.sha256).digest()
    return mac[: key_bits // 8]
