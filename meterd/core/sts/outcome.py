"""What the meter answers for one submitted STS token: the decoder's result and the credit around it.

A :class:`TokenOutcome` is built once per token by the payment service from the decoder's
:class:`~meterd.core.sts.results.TokenResult` and the credit views before and after the token;
the local API, the CIU link and the token gateway (0-0:19.40.0.255) read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from meterd.core.credit import CreditView
from meterd.core.sts.results import TokenResult

NOT_COMMISSIONED = "NotCommissioned"
"""The result when the meter has no decoder key (no keys file): every token is refused."""
NOT_COMMISSIONED_DISPLAY = "No key"

ManagementValue = int | str | bool


@dataclass(frozen=True)
class TokenOutcome:
    """The answer to one submitted token.

    * ``result``: an STS result name (IEC 62055-41, e.g. ``Accept``, ``UsedError``) or
      ``NotCommissioned``; ``accepted``, ``display`` (8-character text) and ``number`` (token-status
      register number, 0 when none) follow from it.
    * ``decoded``: False when there was no decoder to read the token (``NotCommissioned``): then
      class, subclass and TID are not known and not reported.
    * ``amount_tenths`` (0.1 ``unit``: kWh, m3, min) or ``currency_1e5`` (0.00001 currency units)
      of a class 0 token; ``management``: the scalar attributes of a class 2 token (W for power
      limits; never key material); ``lockout_s`` (s) left of a keypad lockout.
    * ``credit_before`` / ``credit_after``: the credit account before and after the token (the same
      view when the token changed nothing).
    """

    result: str
    accepted: bool
    display: str
    number: int
    credit_before: CreditView
    credit_after: CreditView
    decoded: bool = True
    token_class: int | None = None
    subclass: int | None = None
    tid: int | None = None
    amount_tenths: int | None = None
    unit: str | None = None
    currency_1e5: int | None = None
    management: Mapping[str, ManagementValue] = field(default_factory=lambda: MappingProxyType({}))
    lockout_s: float | None = None

    @classmethod
    def of(cls, result: TokenResult, before: CreditView, after: CreditView) -> TokenOutcome:
        """The outcome of a token the decoder processed."""
        management = {k: v for k, v in result.management.items() if isinstance(v, int | str | bool)}
        return cls(result=result.result, accepted=result.accepted, display=result.display, number=result.number,
                   credit_before=before, credit_after=after, token_class=result.token_class,
                   subclass=result.subclass, tid=result.tid, amount_tenths=result.amount_tenths, unit=result.unit,
                   currency_1e5=result.currency_1e5, management=MappingProxyType(management),
                   lockout_s=result.lockout_s)

    @classmethod
    def not_commissioned(cls, credit: CreditView) -> TokenOutcome:
        """The outcome of any token on a meter without a decoder key."""
        return cls(result=NOT_COMMISSIONED, accepted=False, display=NOT_COMMISSIONED_DISPLAY, number=0,
                   credit_before=credit, credit_after=credit, decoded=False)
