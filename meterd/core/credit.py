"""Prepayment credit account: credit in energy or currency, run down by consumption, with low-credit
warning, emergency credit, friendly (non-disconnect) periods, and prepaid/postpaid modes.

Integer arithmetic throughout, exact:
* energy accounts hold the balance in mWh (so ``credit`` = balance // 1000 is in milli-kWh, i.e. Wh);
  an STS credit token of 0.1 kWh adds 100 000 mWh.
* currency accounts hold the balance in micro-minor units (1e-6 of the minor unit, e.g. of a cent);
  consumption of E mWh at P minor units per kWh costs exactly E * P micro-minor units, and an STS
  currency token of V * 0.00001 currency units adds V * 10**(minor_digits + 1) micro-minor units.

Durability: ``token_seq`` counts the tokens applied (credit and ClearCredit). The STS store saves
the account after a token in the same transaction as the token's TID (``companion``); the energy
checkpoint saves it every checkpoint. At start the copy with the higher ``token_seq`` wins
(:meth:`CreditAccount.newer`), so an accepted token is never lost nor applied twice.

The account never acts: it returns a ``CreditIntent`` (warn low, disconnect, reconnect allowed) that
the disconnect service executes. Time comes from an injected clock; whether "now" is a friendly
period (friendly hours, weekends, holidays) comes from an injected predicate, since the calendar
lives elsewhere.
"""

from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from meterd.core.clock import Clock
from meterd.core.errors import MeterError, StateError
from meterd.core.sts.results import ResultName, TokenResult

MWH_PER_TENTH_KWH = 100_000
MWH_PER_MILLI_KWH = 1_000
MICRO = 1_000_000
STATE_VERSION = 1

FriendlyPredicate = Callable[[_dt.datetime], bool]


class CreditError(MeterError):
    """A credit operation does not fit the account (wrong unit, bad amount)."""


class CreditMode(enum.StrEnum):
    """Prepaid: disconnect at zero credit. Postpaid: balance is only tracked."""

    PREPAID = "prepaid"
    POSTPAID = "postpaid"


class CreditUnit(enum.StrEnum):
    """What the credit counts."""

    ENERGY = "energy"
    CURRENCY = "currency"


@dataclass(frozen=True)
class CreditConfig:
    """Account policy. Amounts are in the account's display unit: milli-kWh (= Wh) for energy
    accounts, minor currency units (e.g. cents) for currency accounts.

    ``prices_minor_per_kwh`` maps tariff rate index -> price (minor units per kWh); needed for
    currency accounts only. ``emergency_threshold``: emergency credit may be requested while credit
    is below it. ``max_credit``: a credit token that would exceed it is refused (Overflow).
    """

    unit: CreditUnit = CreditUnit.ENERGY
    prices_minor_per_kwh: Mapping[int, int] = field(default_factory=dict)
    minor_digits: int = 2
    low_credit_threshold: int = 5_000
    emergency_amount: int = 0
    emergency_threshold: int = 1_000
    max_credit: int = 10**12

    @property
    def scale(self) -> int:
        """Internal balance units per display unit (mWh per Wh, or micro-minor per minor)."""
        return MWH_PER_MILLI_KWH if self.unit is CreditUnit.ENERGY else MICRO

    def price(self, rate_index: int) -> int:
        """Price in minor units per kWh for a tariff rate; CreditError if not configured."""
        try:
            return self.prices_minor_per_kwh[rate_index]
        except KeyError:
            raise CreditError(f"no price configured for rate {rate_index}") from None


@dataclass(frozen=True)
class CreditIntent:
    """What the account asks of the rest of the meter after an event.

    ``warn_low``: credit below the low-credit threshold (prepaid). ``disconnect``: open the relay
    (prepaid, no credit, not a friendly period). ``reconnect_allowed``: credit was just restored and
    the relay may be closed (after the customer's confirmation, per the disconnect service).
    """

    warn_low: bool = False
    disconnect: bool = False
    reconnect_allowed: bool = False
    credit: int = 0
    emergency_active: bool = False


class CreditAccount:
    """One credit register. ``credit`` is in display units (milli-kWh or minor units)."""

    def __init__(self, config: CreditConfig, clock: Clock, is_friendly: FriendlyPredicate,
                 mode: CreditMode = CreditMode.PREPAID) -> None:
        if config.minor_digits < 0 or config.minor_digits > 5:
            raise CreditError("minor_digits must be 0..5")
        self._config = config
        self._clock = clock
        self._is_friendly = is_friendly
        self.mode = mode
        self._balance = 0
        self._emergency_owed = 0
        self.token_seq = 0

    # --- reading ----------------------------------------------------------------------------

    @property
    def balance_units(self) -> int:
        """Exact balance in internal units (mWh or micro-minor units); may be negative."""
        return self._balance

    @property
    def credit(self) -> int:
        """Balance in display units (milli-kWh or minor units), rounded towards minus infinity."""
        return self._balance // self._config.scale

    @property
    def config(self) -> CreditConfig:
        """The account policy."""
        return self._config

    @property
    def emergency_owed(self) -> int:
        """Emergency credit still to be repaid, display units (0 when none is in use)."""
        return self._emergency_owed // self._config.scale

    @property
    def emergency_available(self) -> bool:
        """Emergency credit can be requested now."""
        cfg = self._config
        return (self.mode is CreditMode.PREPAID and cfg.emergency_amount > 0 and self._emergency_owed == 0
                and self._balance < cfg.emergency_threshold * cfg.scale)

    def intent(self, reconnect_allowed: bool = False) -> CreditIntent:
        """The account's current wishes."""
        prepaid = self.mode is CreditMode.PREPAID
        low = prepaid and self._balance < self._config.low_credit_threshold * self._config.scale
        empty = prepaid and self._balance <= 0
        disconnect = empty and not self._is_friendly(self._clock.utc())
        return CreditIntent(warn_low=low, disconnect=disconnect,
                            reconnect_allowed=reconnect_allowed and not empty, credit=self.credit,
                            emergency_active=self._emergency_owed > 0)

    # --- changing ---------------------------------------------------------------------------

    def consume(self, active_import_mwh: int, rate_index: int) -> CreditIntent:
        """Decrement by consumption: ``active_import_mwh`` (mWh, >= 0) billed at ``rate_index``."""
        if active_import_mwh < 0:
            raise CreditError("consumption cannot be negative")
        if self._config.unit is CreditUnit.ENERGY:
            self._balance -= active_import_mwh
        else:
            self._balance -= active_import_mwh * self._config.price(rate_index)
        return self.intent()

    def add_credit(self, amount_units: int) -> CreditIntent:
        """Add credit in internal units; emergency credit in use is repaid first."""
        if amount_units < 0:
            raise CreditError("use clear or consume to lower credit")
        repay = min(amount_units, self._emergency_owed)
        self._emergency_owed -= repay
        self._balance += amount_units - repay
        return self.intent(reconnect_allowed=True)

    def token_amount_units(self, result: TokenResult) -> int:
        """Internal units an accepted STS class 0 token adds; CreditError if it does not fit.

        Only electricity credit fits this meter: subclass 0 (0.1 kWh) for an energy account,
        subclass 4 (electricity currency) for a currency account. Water, gas and time credit
        (subclasses 1-3 and 5-7) never become electricity credit.
        """
        if result.token_class != 0:
            raise CreditError("not a credit token")
        if not is_electricity_credit(result):
            raise CreditError(f"{result.commodity or 'unknown'} credit does not fit an electricity meter")
        if self._config.unit is CreditUnit.ENERGY and result.amount_tenths is not None and result.unit == "kWh":
            return result.amount_tenths * MWH_PER_TENTH_KWH
        if self._config.unit is CreditUnit.CURRENCY and result.currency_1e5 is not None:
            if result.currency_1e5 < 0:
                raise CreditError("negative currency credit is not supported")
            return result.currency_1e5 * int(10 ** (self._config.minor_digits + 1))
        raise CreditError("token unit does not match the credit account")

    def apply_token(self, result: TokenResult) -> CreditIntent:
        """Apply an accepted class 0 token (electricity in kWh, or currency) or ClearCredit."""
        intent = self.clear() if is_clear_credit(result) else self.add_credit(self.token_amount_units(result))
        self.token_seq += 1
        return intent

    def clear(self) -> CreditIntent:
        """ClearCredit (STS class 2 subclass 1): balance and emergency credit to zero."""
        self._balance = 0
        self._emergency_owed = 0
        return self.intent()

    def request_emergency(self) -> CreditIntent:
        """Grant emergency credit if available; the intent allows reconnection when granted."""
        if not self.emergency_available:
            return self.intent()
        amount = self._config.emergency_amount * self._config.scale
        self._balance += amount
        self._emergency_owed = amount
        return self.intent(reconnect_allowed=True)

    def set_mode(self, mode: CreditMode) -> CreditIntent:
        """Switch prepaid/postpaid; the balance carries over."""
        self.mode = mode
        return self.intent(reconnect_allowed=mode is CreditMode.POSTPAID)

    # --- STS gate (TokenGate protocol) --------------------------------------------------------

    def vet(self, result: TokenResult) -> ResultName | None:
        """Refuse a credit token for another commodity (Function, as an unsupported subclass), one
        that does not fit the account's unit (Range) or would overflow the register (Overflow)."""
        if result.token_class != 0:
            return None
        if not is_electricity_credit(result):
            return ResultName.FUNCTION
        try:
            units = self.token_amount_units(result)
        except CreditError:
            return ResultName.RANGE
        limit = self._config.max_credit * self._config.scale
        return ResultName.OVERFLOW if self._balance + units > limit else None

    def companion(self, result: TokenResult) -> Mapping[str, Any] | None:
        """The account state after applying ``result`` (saved with the token's TID)."""
        if result.token_class != 0 and not is_clear_credit(result):
            return None
        preview = CreditAccount(self._config, self._clock, self._is_friendly, self.mode)
        preview.restore(self.to_dict())
        preview.apply_token(result)
        return preview.to_dict()

    # --- persistence --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state (config is not included; it comes from the configuration file)."""
        return {"version": STATE_VERSION, "unit": self._config.unit.value, "mode": self.mode.value,
                "balance_units": self._balance, "emergency_owed_units": self._emergency_owed,
                "token_seq": self.token_seq}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Load state saved by ``to_dict``; StateError if it does not fit this account."""
        if data.get("version") != STATE_VERSION or data.get("unit") != self._config.unit.value:
            raise StateError("credit state version or unit does not match the configuration")
        try:
            self.mode = CreditMode(data["mode"])
            self._balance = int(data["balance_units"])
            self._emergency_owed = int(data["emergency_owed_units"])
            self.token_seq = int(data.get("token_seq", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"bad credit state: {exc.__class__.__name__}") from None

    @staticmethod
    def newer(checkpoint: Mapping[str, Any] | None, companion: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Of the checkpointed and the token-time copies of the account, the one to restore: the
        companion when it saw more tokens (a token after the last checkpoint), else the checkpoint."""
        if companion is None:
            return checkpoint
        if checkpoint is None:
            return companion
        return companion if int(companion.get("token_seq", 0)) > int(checkpoint.get("token_seq", 0)) else checkpoint

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: CreditConfig, clock: Clock,
                  is_friendly: FriendlyPredicate) -> CreditAccount:
        """A new account restored from ``to_dict`` output."""
        account = cls(config, clock, is_friendly)
        account.restore(data)
        return account


@dataclass(frozen=True)
class EmergencyCreditView:
    """The emergency credit of a :class:`CreditView`; amounts in the account's display unit."""

    available: bool
    """Emergency credit can be requested now."""
    active: bool
    """Emergency credit is in use (not yet repaid)."""
    owed: int
    """Emergency credit still to be repaid (display units)."""
    amount: int
    """What one grant adds (display units)."""
    threshold: int
    """Emergency credit may be requested while the credit is below this (display units)."""


@dataclass(frozen=True)
class CreditView:
    """One snapshot of the credit account as the meter shows it (COSEM, LCD, CIU, local API).

    Amounts (``credit``, ``low_credit_threshold``, ``consumed``, the emergency amounts) are in the
    account's display unit: Wh for an energy account, minor currency units (e.g. cents) for a
    currency account. ``rate`` is the tariff rate charged (0-0:96.14.0), ``disconnect`` the
    account's relay intent, ``relay_off`` whether the payment function holds the relay open,
    ``key`` the STS decoder key attributes (KRN, KT, TI, KEN, SGC, EA, base date; never the key)
    or None without a decoder.
    """

    mode: CreditMode
    unit: CreditUnit
    credit: int
    currency: str | None
    """Currency name of a currency account; None for an energy account."""
    minor_digits: int
    """Decimal digits of the minor unit (0 for an energy account)."""
    low_credit: bool
    low_credit_threshold: int
    emergency: EmergencyCreditView
    friendly: bool
    rate: int
    disconnect: bool
    relay_off: bool
    consumed: int
    token_seq: int
    key: Mapping[str, int] | None

    @classmethod
    def of(cls, account: CreditAccount, currency_name: str, *, friendly: bool, rate: int, relay_off: bool,
           consumed_units: int, key: Mapping[str, int] | None) -> CreditView:
        """The view of ``account`` now; ``consumed_units`` in internal units (mWh or micro-minor units)."""
        cfg = account.config
        intent = account.intent()
        energy = cfg.unit is CreditUnit.ENERGY
        return cls(
            mode=account.mode, unit=cfg.unit, credit=account.credit, currency=None if energy else currency_name,
            minor_digits=0 if energy else cfg.minor_digits, low_credit=intent.warn_low,
            low_credit_threshold=cfg.low_credit_threshold,
            emergency=EmergencyCreditView(available=account.emergency_available, active=intent.emergency_active,
                                          owed=account.emergency_owed, amount=cfg.emergency_amount,
                                          threshold=cfg.emergency_threshold),
            friendly=friendly, rate=rate, disconnect=intent.disconnect, relay_off=relay_off,
            consumed=consumed_units // cfg.scale, token_seq=account.token_seq,
            key=None if key is None else MappingProxyType(dict(key)))

    @property
    def credit_unit(self) -> str:
        """The display unit: ``"Wh"``, or ``"<currency>/<10**minor_digits>"`` (e.g. ``EUR/100``)."""
        return "Wh" if self.currency is None else f"{self.currency}/{10**self.minor_digits}"

    @property
    def credit_kwh(self) -> float | None:
        """The credit of an energy account in kWh; None for a currency account."""
        return self.credit / 1000 if self.unit is CreditUnit.ENERGY else None

    @property
    def relay(self) -> str:
        """The relay intent as ``"connect"`` or ``"disconnect"``."""
        return "disconnect" if self.disconnect else "connect"

    @property
    def shown_credit(self) -> float:
        """The credit for a customer display, 3 decimals: kWh, or currency units (not minor units)."""
        kwh = self.credit_kwh
        return round(kwh if kwh is not None else self.credit / 10**self.minor_digits, 3)

    @property
    def shown_unit(self) -> str:
        """The unit beside :attr:`shown_credit`: ``kWh`` or the currency, with ``(postpaid)`` in
        postpaid mode (the balance is informative only)."""
        unit = "kWh" if self.currency is None else self.currency
        return f"{unit} (postpaid)" if self.mode is CreditMode.POSTPAID else unit


CLEAR_ALL_REGISTERS = 0xFFFF
ELECTRICITY_CREDIT_SUBCLASSES = frozenset({0, 4})
"""STS class 0 subclasses that carry electricity credit: 0 (0.1 kWh) and 4 (currency)."""


def is_electricity_credit(result: TokenResult) -> bool:
    """An STS class 0 token whose commodity is electricity (subclass 0 or 4)."""
    return (result.token_class == 0 and result.subclass in ELECTRICITY_CREDIT_SUBCLASSES
            and result.commodity in (None, "electricity"))


def is_clear_credit(result: TokenResult) -> bool:
    """An STS class 2 subclass 1 ClearCredit token for the electricity credit register (0) or all."""
    return (result.token_class == 2 and result.subclass == 1
            and result.management.get("register_to_clear") in (0, CLEAR_ALL_REGISTERS))
