"""Prepayment use case: STS token entry, the credit account on the metering cycle, and the relay intent.

The credit account (:mod:`meterd.core.credit`) counts energy (Wh, internally mWh) or currency
(minor units, internally micro-minor units) and is run down every metering cycle by the active
import energy of the cycle (1-0:1.8.0, mWh) at the revenue service's current rate (0-0:96.14.0;
rate 1 without revenue). Prepaid: below the low-credit threshold a warning, at zero credit the
relay opens through :meth:`LoadControl.credit_disconnect` unless "now" is friendly
(:class:`FriendlyPeriods`); when credit is back :meth:`LoadControl.credit_reconnect`.

Class 2 tokens: SetMaximumPowerLimit to :meth:`LoadControl.set_max_power_w` (W),
SetMaximumPhasePowerUnbalanceLimit to :meth:`LoadControl.set_max_phase_unbalance_w` (W; 0 removes
a limit), ClearTamper clears the latched tamper alarms of the supervision.

The service never sees the daemon: its neighbours (:class:`PaymentLinks`) come in its
constructor. It answers with typed views: :class:`~meterd.core.credit.CreditView` (built once per
change of the account, then shared by every reader until the next change) and
:class:`~meterd.core.sts.outcome.TokenOutcome`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meterd.core import event_codes
from meterd.core.alarms import tamper_mask
from meterd.core.clock import Clock
from meterd.core.credit import (
    CreditAccount,
    CreditConfig,
    CreditError,
    CreditIntent,
    CreditMode,
    CreditUnit,
    CreditView,
    is_clear_credit,
)
from meterd.core.energy import Quantity
from meterd.core.errors import StateError
from meterd.core.events import EventRecorder
from meterd.core.reading import Channel
from meterd.core.sts import StsError, TokenProcessor
from meterd.core.sts.outcome import NOT_COMMISSIONED, TokenOutcome
from meterd.core.sts.results import ResultName, TokenResult
from meterd.services.load_control import LoadControl
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision

log = logging.getLogger("meterd.payment")

FRIENDLY_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
"""Friendly hours, local ``HH:MM-HH:MM`` (the end may be before the start: over midnight)."""

#: Event codes this service would like in the token log (not yet in meterd.core.event_codes;
#: recorded as soon as the table has them): name -> proposed code.
PROPOSED_EVENT_CODES = {"CREDIT_LOW": 247, "CREDIT_EXHAUSTED": 248, "EMERGENCY_CREDIT_GRANTED": 249}
_REJECT_EVENTS = {ResultName.USED: "TOKEN_REJECTED_USED", ResultName.OLD: "TOKEN_REJECTED_OLD",
                  ResultName.KEY_EXPIRED: "TOKEN_REJECTED_KEY_EXPIRED"}


@dataclass(frozen=True)
class PaymentPolicy:
    """The account policy (amounts in display units, see :class:`CreditConfig`), the mode at first
    start, the currency name, the raw price list (minor units per kWh of rate 1, 2, …) and the
    friendly periods: local ``HH:MM-HH:MM`` hours ("" = none), weekdays (0 = Monday) and whether
    the special days (holidays) of the revenue calendar are friendly."""

    credit: CreditConfig
    mode: CreditMode = CreditMode.POSTPAID
    currency_name: str = "EUR"
    prices_minor_per_kwh: tuple[int, ...] = ()
    friendly_hours: str = ""
    friendly_weekdays: tuple[int, ...] = ()
    friendly_holidays: bool = False


@dataclass(frozen=True)
class PaymentLinks:
    """The services payment works with, each None when its feature is off: revenue (tariff rate,
    legal time, calendar), load control (relay, power limits), supervision (tamper alarms) and the
    event recorder."""

    revenue: RevenueService | None = None
    load_control: LoadControl | None = None
    supervision: Supervision | None = None
    events: EventRecorder | None = None


class FriendlyPeriods:
    """Whether an instant is friendly (no credit disconnection), in local legal time."""

    def __init__(self, policy: PaymentPolicy, revenue: RevenueService | None) -> None:
        self._weekdays = frozenset(policy.friendly_weekdays)
        self._holidays = policy.friendly_holidays
        self._revenue = revenue
        self._window: tuple[int, int] | None = None
        m = FRIENDLY_HOURS.match(policy.friendly_hours)
        if m is not None:
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            self._window = (h1 * 60 + m1, h2 * 60 + m2)

    def _wall(self, utc: _dt.datetime) -> _dt.datetime:
        if self._revenue is not None:
            return self._revenue.local_time(utc).wall
        return utc.astimezone(_dt.UTC).replace(tzinfo=None)

    def _in_hours(self, wall: _dt.datetime) -> bool:
        if self._window is None:
            return False
        start, end = self._window
        minute = wall.hour * 60 + wall.minute
        return start <= minute < end if start <= end else (minute >= start or minute < end)

    def _holiday(self, wall: _dt.datetime) -> bool:
        if not self._holidays or self._revenue is None:
            return False
        return self._revenue.calendar.special_days.day_id_for(wall.date()) is not None

    def __call__(self, utc: _dt.datetime) -> bool:
        wall = self._wall(utc)
        return wall.weekday() in self._weekdays or self._in_hours(wall) or self._holiday(wall)


@dataclass
class LastToken:
    """What the token gateway shows: the last token entered, when, how, and its result."""

    digits: str = ""
    utc: _dt.datetime | None = None
    source: str = ""
    result: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Storable form (UTC as ISO 8601)."""
        return {"digits": self.digits, "utc": self.utc.isoformat() if self.utc else None,
                "source": self.source, "result": self.result}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> LastToken:
        """Inverse of :meth:`to_dict`; an empty record for None or a damaged one."""
        if not data:
            return cls()
        try:
            utc = _dt.datetime.fromisoformat(data["utc"]) if data.get("utc") else None
            return cls(str(data["digits"])[:20], utc, str(data["source"]), str(data["result"]))
        except (KeyError, TypeError, ValueError):
            log.warning("last token record unusable; the token gateway starts empty")
            return cls()


class TokenMemo(Protocol):
    """Durable home of the last token entered (``SqliteStsStore`` fits)."""

    def load_last_token(self) -> dict[str, Any] | None: ...

    def save_last_token(self, record: Mapping[str, Any]) -> None: ...


class AccountGate:
    """The token processor's ``TokenGate``: the live account, bound once the service exists."""

    def __init__(self) -> None:
        self.account: CreditAccount | None = None

    def vet(self, result: TokenResult) -> ResultName | None:
        return None if self.account is None else self.account.vet(result)

    def companion(self, result: TokenResult) -> Mapping[str, Any] | None:
        return None if self.account is None else self.account.companion(result)


class PaymentService:
    """Token entry, the credit account on the metering cycle, and the relay intent.

    A ``CycleListener`` (name ``"payment"``): its state rides in the energy checkpoint.
    ``persist`` forces an energy checkpoint (after a credit token, a mode switch, emergency credit).
    """

    name = "payment"

    def __init__(self, policy: PaymentPolicy, clock: Clock, processor: TokenProcessor | None,
                 persist: Callable[[], None], links: PaymentLinks | None = None,
                 companion: Mapping[str, Any] | None = None, memo: TokenMemo | None = None) -> None:
        self.policy = policy
        self._clock = clock
        self.links = links or PaymentLinks()
        self.processor = processor
        self._persist = persist
        self.friendly = FriendlyPeriods(policy, self.links.revenue)
        self.account = CreditAccount(policy.credit, clock, self.friendly, policy.mode)
        self._companion = companion
        if companion is not None:
            self._restore_account(companion)
        self.consumed_units = 0
        self.last_charge_units = 0
        self.last_cycle_utc: _dt.datetime | None = None
        self.relay_off = False
        self._low = False
        self._memo = memo
        self._view: CreditView | None = None
        self.last_token = LastToken.from_dict(memo.load_last_token()) if memo is not None else LastToken()

    # --- CycleListener ------------------------------------------------------------------------

    def on_cycle(self, utc: _dt.datetime, deltas: Mapping[Any, int], registers: Any, reading: Any) -> None:
        """Run the account down by the cycle's active import (mWh) at the current rate."""
        mwh = deltas.get((Quantity.ACTIVE_IMPORT, Channel.TOTAL), 0)
        before = self.account.balance_units
        try:
            intent = self.account.consume(max(mwh, 0), self.rate())
        except CreditError as exc:  # configuration hole: say so, keep metering
            log.error("credit not charged: %s", exc)
            intent = self.account.intent()
        self.last_charge_units = before - self.account.balance_units
        self.consumed_units += self.last_charge_units
        self.last_cycle_utc = utc
        self._apply(intent)
        self._view = None  # time moved on: friendly period and rate may have changed too

    def state_dict(self) -> dict[str, Any]:
        """Account, charge totals and relay intent for the energy checkpoint."""
        return {"account": self.account.to_dict(), "consumed_units": self.consumed_units,
                "relay_off": self.relay_off, "low": self._low}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load the checkpoint; a newer token-time copy from the STS store wins (``CreditAccount.newer``)."""
        chosen = CreditAccount.newer(state.get("account"), self._companion)
        if chosen is not None:
            self._restore_account(chosen)
        self.consumed_units = int(state.get("consumed_units", 0))
        self.relay_off = bool(state.get("relay_off", False))
        self._low = bool(state.get("low", False))
        self._view = None

    def _restore_account(self, data: Mapping[str, Any]) -> None:
        try:
            self.account.restore(data)
        except StateError as exc:
            log.error("credit account not restored (configuration changed?): %s", exc)

    # --- what others call -----------------------------------------------------------------------

    def rate(self) -> int:
        """The active tariff rate (revenue's 0-0:96.14.0), 1 without the revenue service."""
        revenue = self.links.revenue
        return int(revenue.current_rate) if revenue is not None else 1

    def credit_view(self) -> CreditView:
        """The credit account: built on the first read after a change (a cycle, a token, a mode switch,
        emergency credit, a restore), then shared by every reader until the next change. The
        friendly period and the rate in it are those of that moment; cycles refresh them."""
        if self._view is None:
            key = self.processor.key_info() if self.processor is not None else None
            self._view = CreditView.of(self.account, self.policy.currency_name,
                                       friendly=self.friendly(self._clock.utc()), rate=self.rate(),
                                       relay_off=self.relay_off, consumed_units=self.consumed_units, key=key)
        return self._view

    def submit_token(self, digits: str, source: str) -> TokenOutcome:
        """Enter one STS token from ``source`` ("api", "keypad", "ciu", "dlms:<link>", …)."""
        text = "".join(str(digits).split())
        before = self.credit_view()
        if self.processor is None:
            self._remember(text, source, NOT_COMMISSIONED)
            return TokenOutcome.not_commissioned(before)
        result = self.processor.submit(text)
        if result.result == ResultName.ACCEPT:
            self._execute(result)
        if result.accepted:
            self._view = None  # credit, limits or the key register changed
        self._record_token_event(result, source)
        self._remember(text, source, result.result)
        return TokenOutcome.of(result, before, self.credit_view())

    def set_mode(self, mode: str) -> CreditView:
        """Switch prepaid/postpaid (local API, DLMS); durable at once."""
        try:
            wanted = CreditMode(mode)
        except ValueError:
            raise CreditError(f"mode must be prepaid or postpaid, not {mode!r}") from None
        self._apply(self.account.set_mode(wanted))
        self._view = None
        self._persist()
        return self.credit_view()

    def request_emergency(self) -> bool:
        """Grant emergency credit when available (durable at once); True when granted."""
        granted = self.account.emergency_available
        intent = self.account.request_emergency()
        if granted:
            self._event("EMERGENCY_CREDIT_GRANTED", amount=self.policy.credit.emergency_amount)
            self._persist()
        self._apply(intent)
        self._view = None
        return granted

    def charge_table(self) -> list[tuple[int, int]]:
        """Unit charge per rate: 1 Wh per Wh (energy) or the price in minor units per kWh."""
        if self.account.config.unit is CreditUnit.ENERGY:
            return [(1, 1)]
        return list(enumerate(self.policy.prices_minor_per_kwh, start=1))

    def charge_scales(self) -> tuple[int, int]:
        """(commodity scale, price scale): Wh register; prices per kWh for currency accounts."""
        return (0, 0) if self.account.config.unit is CreditUnit.ENERGY else (-3, 0)

    # --- inside ----------------------------------------------------------------------------------

    def _execute(self, result: TokenResult) -> None:
        if result.token_class == 0 or is_clear_credit(result):
            self._apply(self.account.apply_token(result))
            self._persist()
        elif result.token_class == 2 and result.subclass == 0:  # SetMaximumPowerLimit
            load_control = self._load_control("max_power_limit_w")
            if load_control is not None:
                load_control.set_max_power_w(_limit_w(result, "max_power_limit_w"))
        elif result.token_class == 2 and result.subclass == 6:  # SetMaximumPhasePowerUnbalanceLimit
            load_control = self._load_control("max_phase_unbalance_w")
            if load_control is not None:
                load_control.set_max_phase_unbalance_w(_limit_w(result, "max_phase_unbalance_w"))
        elif result.token_class == 2 and result.subclass == 5:  # ClearTamper: the latched tamper alarms
            supervision = self.links.supervision
            if supervision is not None:
                supervision.clear_alarms(self._clock.utc(), tamper_mask())
            else:
                log.warning("clear-tamper token accepted but no supervision to clear")
        # SetTariffRate (class 2, subclass 2) is "reserved for future definition" in IEC 62055-41
        # (2018): it is accepted, recorded in the token log and changes nothing.

    def _load_control(self, limit: str) -> LoadControl | None:
        if self.links.load_control is None:
            log.warning("%s token accepted but no load control to apply it", limit)
        return self.links.load_control

    def _apply(self, intent: CreditIntent) -> None:
        if intent.warn_low and not self._low:
            self._event("CREDIT_LOW", credit=intent.credit)
        self._low = intent.warn_low
        load_control = self.links.load_control
        if intent.disconnect and not self.relay_off:
            self.relay_off = True
            self._event("CREDIT_EXHAUSTED", credit=intent.credit)
            if load_control is not None:
                load_control.credit_disconnect()
        elif not intent.disconnect and self.relay_off:
            self.relay_off = False
            if load_control is not None:
                load_control.credit_reconnect()

    def _event(self, name: str, **detail: Any) -> None:
        events = self.links.events
        code = event_codes.BY_NAME.get(name)
        if events is not None and code is not None:
            events.record(code.code, self._clock.utc(), detail)

    def _record_token_event(self, result: TokenResult, source: str) -> None:
        name = ResultName(result.result)
        if result.accepted:
            if result.token_class == 2 and result.management.get("action") == "key_change":
                event = "KEY_CHANGE_TOKEN_ACCEPTED"
            elif result.token_class == 0:
                event = "TOKEN_ACCEPTED"
            elif result.result == ResultName.ACCEPT:
                event = "TOKEN_MANAGEMENT_ACCEPTED"
            else:
                return  # a staged key change section: the complete set is recorded
        else:
            event = _REJECT_EVENTS.get(name, "TOKEN_REJECTED_INVALID")
        detail: dict[str, Any] = {"source": source, "result": result.result}
        if result.tid is not None:
            detail["tid"] = result.tid
        self._event(event, **detail)

    def _remember(self, digits: str, source: str, result: str) -> None:
        self.last_token = LastToken(digits[:20], self._clock.utc(), source, result)
        if self._memo is not None:
            try:
                self._memo.save_last_token(self.last_token.to_dict())
            except StsError as exc:  # the token itself was handled; only the display record is lost
                log.error("last token not saved: %s", exc)


def _limit_w(result: TokenResult, field_name: str) -> float | None:
    """A class 2 limit (W) of an accepted token; None for 0 (no limit)."""
    limit = result.management.get(field_name)
    return float(limit) if limit else None


__all__ = ["FRIENDLY_HOURS", "AccountGate", "FriendlyPeriods", "LastToken", "PaymentLinks", "PaymentPolicy",
           "PaymentService", "TokenMemo"]
