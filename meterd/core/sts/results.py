"""Token results of the STS decoder: standard result names and the result record.

Names follow IEC 62055-41 (Accept, 1stKCT, OldError, ...); numbers follow the token-status register
numbering of 5.2 in the project's STS reference (Conlog BEC62 order), for display and DLMS.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass, field
from typing import Any


class ResultName(enum.StrEnum):
    """Standard STS token result names."""

    ACCEPT = "Accept"
    KCT_1ST = "1stKCT"
    KCT_2ND = "2ndKCT"
    KCT_3RD = "3rdKCT"
    KCT_4TH = "4thKCT"
    OVERFLOW = "OverflowError"
    KEY_TYPE = "KeyTypeError"
    FORMAT = "FormatError"
    RANGE = "RangeError"
    FUNCTION = "FunctionError"
    OLD = "OldError"
    USED = "UsedError"
    KEY_EXPIRED = "KeyExpiredError"
    DDTK = "DDTKError"
    CRC = "CRCError"
    MFR_CODE = "MfrCodeError"
    LOCKOUT = "TokenLockout"


#: Token-status register numbers (0 = none assigned).
RESULT_NUMBERS: dict[ResultName, int] = {
    ResultName.ACCEPT: 1, ResultName.KCT_1ST: 2, ResultName.KCT_2ND: 3, ResultName.OVERFLOW: 4,
    ResultName.KEY_TYPE: 5, ResultName.FORMAT: 6, ResultName.RANGE: 7, ResultName.FUNCTION: 8,
    ResultName.OLD: 9, ResultName.USED: 10, ResultName.KEY_EXPIRED: 11, ResultName.DDTK: 12,
    ResultName.CRC: 13, ResultName.MFR_CODE: 14, ResultName.LOCKOUT: 15,
}

#: Short texts for an 8-character display.
RESULT_DISPLAY: dict[ResultName, str] = {
    ResultName.ACCEPT: "Accept", ResultName.KCT_1ST: "KCT 1", ResultName.KCT_2ND: "KCT 2",
    ResultName.KCT_3RD: "KCT 3", ResultName.KCT_4TH: "KCT 4", ResultName.OVERFLOW: "Overflow",
    ResultName.KEY_TYPE: "Key type", ResultName.FORMAT: "Format", ResultName.RANGE: "Range",
    ResultName.FUNCTION: "Function", ResultName.OLD: "Old", ResultName.USED: "Used",
    ResultName.KEY_EXPIRED: "Key exp", ResultName.DDTK: "DDTK", ResultName.CRC: "Reject",
    ResultName.MFR_CODE: "Mfr code", ResultName.LOCKOUT: "Locked",
}


@dataclass(frozen=True)
class TokenResult:
    """Outcome of one submitted token, as reported to the credit account, limiter, UI and DLMS.

    * ``result``: a ``ResultName`` value (a str).
    * class 0: ``amount_tenths`` (0.1 ``unit``: kWh, m3, min) or ``currency_1e5`` (0.00001 currency
      units, signed) and ``commodity``.
    * class 1: ``control`` (``control`` bits, ``mfr_code``).
    * class 2: ``management`` (e.g. ``max_power_limit_w``, ``register_to_clear``,
      ``max_phase_unbalance_w``, ``clear_tamper``, ``rate``, or ``key_change`` attributes - never keys).
    """

    result: str
    token_class: int | None = None
    subclass: int | None = None
    tid: int | None = None
    tid_datetime: _dt.datetime | None = None
    amount_tenths: int | None = None
    unit: str | None = None
    commodity: str | None = None
    currency_1e5: int | None = None
    control: dict[str, int] = field(default_factory=dict)
    management: dict[str, Any] = field(default_factory=dict)
    lockout_s: float | None = None

    @property
    def accepted(self) -> bool:
        """True for Accept (and staged key-change sections, which are also accepted input)."""
        return self.result in (ResultName.ACCEPT, ResultName.KCT_1ST, ResultName.KCT_2ND,
                               ResultName.KCT_3RD, ResultName.KCT_4TH)

    @property
    def number(self) -> int:
        """Token-status register number (0 when none is assigned)."""
        return RESULT_NUMBERS.get(ResultName(self.result), 0)

    @property
    def display(self) -> str:
        """Short display text."""
        return RESULT_DISPLAY[ResultName(self.result)]
