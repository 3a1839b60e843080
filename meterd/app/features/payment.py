"""Prepayment: STS token entry, the credit account (prepaid or postpaid) and its COSEM objects.

Section ``[payment]`` (:class:`PaymentSection`). The credit account (:mod:`meterd.core.credit`)
counts energy (Wh, internally mWh) or currency (minor units, internally micro-minor units) and is
run down every metering cycle by the active import energy of the cycle (1-0:1.8.0, mWh) at the
revenue feature's current rate (0-0:96.14.0; rate 1 without revenue). Prepaid: below
``low_credit_threshold`` a warning, at zero credit the relay opens through
``load_control.credit_disconnect()`` unless "now" is friendly (``friendly_hours`` local
``HH:MM-HH:MM``, ``friendly_weekdays`` 0 = Monday, and the special days (holidays) of the revenue
calendar when ``friendly_holidays``); when credit is back (token, emergency credit, postpaid mode,
or a friendly period) ``credit_reconnect()``. Postpaid: the balance is only tracked.

Tokens (IEC 62055-41 STS) come from the API (``POST /token``), the CIU keypad (through
``daemon.services["submit_token"]``) and DLMS (token gateway 0-0:19.40.0.255, method 1, management
association). Class 2 SetMaximumPowerLimit goes to ``load_control.set_max_power_w`` (W) and
SetMaximumPhasePowerUnbalanceLimit to ``load_control.set_max_phase_unbalance_w`` (W); 0 removes a
limit. Both are kept in the relay store and survive a restart.

Keys: the decoder key register comes once from the keys file ``keys_file`` (TOML ``[decoder]``,
mode 0600, path relative to the state directory) into the STS store ``store_file`` (SQLite, 0600);
key change tokens update the store. A simulated meter without a keys file gets one derived with
DKGA04 from the *public STS test vending key* and ``meter_pan``/``sgc``/``ti``/``krn``/``kt``/
``ea``/``base_date`` of this section, so ``python -m meterd.tools.vend`` can make tokens for it.
A real meter must be provisioned with its own keys file; without one, token entry answers
``NotCommissioned``.

Durability (kill -9): the credit account is a ``CycleListener`` saved in the energy checkpoint
(same loss bound as the energy registers for consumption), and the account after every accepted
credit / ClearCredit token is saved by the STS store in the same SQLite transaction as the
token's TID. At start the copy that saw more tokens wins (``CreditAccount.newer``): a token's
credit is never lost and never applied twice, and a replayed token is refused (UsedError).
Mode switches and emergency credit force an energy checkpoint at once. The token lockout counter
(and the end of a running lockout) and the last token entered (what the token gateway shows) are
kept in the STS store too, so a restart neither resets the lockout nor empties the gateway.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from meterd.api.server import ApiError
from meterd.app.config import choices, rng
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
    is_clear_credit,
)
from meterd.core.energy import Quantity
from meterd.core.errors import StateError
from meterd.core.reading import Channel
from meterd.core.sts import (
    KeyInputs,
    KeyRegister,
    StsConfig,
    StsError,
    TokenGate,
    TokenProcessor,
    commission,
    dkga04,
)
from meterd.core.sts.keys import TEST_VENDING_KEY_DKGA04
from meterd.core.sts.results import ResultName, TokenResult
from meterd.cosem.objects_payment import payment_objects
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.store.sts_store import SqliteStsStore, load_key_register, write_key_register

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

log = logging.getLogger("meterd.payment")

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
NOT_COMMISSIONED = "NotCommissioned"

#: Event codes this feature would like in the token log (not yet in meterd.core.event_codes;
#: recorded as soon as the table has them): name -> proposed code.
PROPOSED_EVENT_CODES = {"CREDIT_LOW": 247, "CREDIT_EXHAUSTED": 248, "EMERGENCY_CREDIT_GRANTED": 249}
_REJECT_EVENTS = {ResultName.USED: "TOKEN_REJECTED_USED", ResultName.OLD: "TOKEN_REJECTED_OLD",
                  ResultName.KEY_EXPIRED: "TOKEN_REJECTED_KEY_EXPIRED"}


@dataclass(frozen=True)
class PaymentSection:
    """``[payment]``: account policy, friendly periods, STS decoder and key commissioning.

    ``mode`` is the account mode at first start (later the persisted one wins; switch with
    ``POST /credit/mode`` or DLMS). It defaults to postpaid so a meter never disconnects before it
    was deliberately put into prepayment.

    Amounts are in the account's display unit: Wh for ``unit = "energy"``, minor currency units
    (e.g. cents) for ``"currency"``. ``prices_minor_per_kwh``: price of rate 1, 2, … (minor units
    per kWh); rates beyond the list use its last price.
    """

    mode: str = field(default="postpaid", metadata=choices("prepaid", "postpaid"))
    unit: str = field(default="energy", metadata=choices("energy", "currency"))
    prices_minor_per_kwh: tuple[int, ...] = ()
    minor_digits: int = field(default=2, metadata=rng(0, 5))
    currency_name: str = "EUR"
    low_credit_threshold: int = field(default=5_000, metadata=rng(0, 10**9))
    emergency_amount: int = field(default=2_000, metadata=rng(0, 10**9))
    emergency_threshold: int = field(default=1_000, metadata=rng(0, 10**9))
    max_credit: int = field(default=10**9, metadata=rng(1, 10**12))
    friendly_hours: str = "18:00-07:00"
    friendly_weekdays: tuple[int, ...] = (5, 6)
    friendly_holidays: bool = True
    store_file: str = "sts.db"
    keys_file: str = "sts-keys.toml"
    meter_pan: str = "600727000000000009"
    sgc: str = "201457"
    ti: str = "01"
    krn: int = field(default=1, metadata=rng(1, 9))
    kt: int = field(default=2, metadata=rng(0, 3))
    ea: int = field(default=7, metadata=choices(7, 11))
    base_date: int = field(default=2014, metadata=choices(1993, 2014, 2035))
    mfr_code: int = field(default=0, metadata=rng(0, 9999))
    tid_slots: int = field(default=50, metadata=rng(1, 1000))
    lockout_after: int = field(default=3, metadata=rng(0, 100))
    max_power_limit_w: int = field(default=18_201_624, metadata=rng(0, 18_201_624))

    def __post_init__(self) -> None:
        if self.friendly_hours and _HOURS.match(self.friendly_hours) is None:
            raise ValueError("friendly_hours must be HH:MM-HH:MM or empty")
        if not all(isinstance(d, int) and 0 <= d <= 6 for d in self.friendly_weekdays):
            raise ValueError("friendly_weekdays are 0 (Monday) … 6 (Sunday)")
        if not all(isinstance(p, int) and 0 <= p <= 10**7 for p in self.prices_minor_per_kwh):
            raise ValueError("prices_minor_per_kwh are integers 0 … 10000000")
        if self.unit == "currency" and not self.prices_minor_per_kwh:
            raise ValueError("a currency account needs prices_minor_per_kwh")
        KeyInputs(self.meter_pan, self.sgc, self.ti, self.krn, self.kt, self.base_date, self.ea)

    def key_inputs(self, krn: int | None = None) -> KeyInputs:
        """DKGA04 inputs of this meter (optionally for another key revision)."""
        return KeyInputs(self.meter_pan, self.sgc, self.ti, self.krn if krn is None else krn, self.kt,
                         self.base_date, self.ea)

    def credit_config(self) -> CreditConfig:
        """The account policy."""
        prices = dict(enumerate(self.prices_minor_per_kwh, start=1))
        if prices:
            last = self.prices_minor_per_kwh[-1]
            prices.update({r: last for r in range(len(prices) + 1, 65)})
        return CreditConfig(unit=CreditUnit(self.unit), prices_minor_per_kwh=prices, minor_digits=self.minor_digits,
                            low_credit_threshold=self.low_credit_threshold, emergency_amount=self.emergency_amount,
                            emergency_threshold=self.emergency_threshold, max_credit=self.max_credit)

    def sts_config(self) -> StsConfig:
        """The decoder policy."""
        # electricity credit only: 0.1 kWh (subclass 0) or electricity currency (subclass 4); water,
        # gas and time credit (1-3, 5-7) are refused with FunctionError and change nothing
        credit = frozenset({4}) if self.unit == "currency" else frozenset({0})
        return StsConfig(mfr_code=self.mfr_code, credit_subclasses=credit, lockout_after=self.lockout_after,
                         max_power_limit_w=self.max_power_limit_w)


SECTION = PaymentSection


def sim_key_register(section: PaymentSection, krn: int | None = None) -> KeyRegister:
    """The decoder key register of a simulated meter: DKGA04 from the public test vending key."""
    inputs = section.key_inputs(krn)
    return KeyRegister(key=dkga04(TEST_VENDING_KEY_DKGA04, inputs), ea=section.ea, kt=section.kt,
                       krn=inputs.krn, ti=int(section.ti), ken=255, sgc=int(section.sgc),
                       base_date=section.base_date)


class FriendlyPeriods:
    """Whether an instant is friendly (no credit disconnection), in local legal time."""

    def __init__(self, section: PaymentSection, services: Mapping[str, Any]) -> None:
        self._weekdays = frozenset(section.friendly_weekdays)
        self._holidays = section.friendly_holidays
        self._services = services
        self._window: tuple[int, int] | None = None
        m = _HOURS.match(section.friendly_hours)
        if m is not None:
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            self._window = (h1 * 60 + m1, h2 * 60 + m2)

    def _wall(self, utc: _dt.datetime) -> _dt.datetime:
        revenue = self._services.get("revenue")
        if revenue is not None:
            return revenue.local_time(utc).wall  # type: ignore[no-any-return]
        return utc.astimezone(_dt.UTC).replace(tzinfo=None)

    def _in_hours(self, wall: _dt.datetime) -> bool:
        if self._window is None:
            return False
        start, end = self._window
        minute = wall.hour * 60 + wall.minute
        return start <= minute < end if start <= end else (minute >= start or minute < end)

    def _holiday(self, wall: _dt.datetime) -> bool:
        revenue = self._services.get("revenue")
        if not self._holidays or revenue is None:
            return False
        return revenue.calendar.special_days.day_id_for(wall.date()) is not None

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
        """JSON-able form (UTC as ISO 8601)."""
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


class PaymentService:
    """Token entry, the credit account on the metering cycle, and the relay intent.

    A ``CycleListener`` (name ``"payment"``): its state rides in the energy checkpoint.
    """

    name = "payment"

    def __init__(self, section: PaymentSection, clock: Clock, services: dict[str, Any],
                 processor: TokenProcessor | None, persist: Callable[[], None],
                 companion: Mapping[str, Any] | None = None, memo: TokenMemo | None = None) -> None:
        self.section = section
        self._clock = clock
        self._services = services
        self.processor = processor
        self._persist = persist
        self.friendly = FriendlyPeriods(section, services)
        self.account = CreditAccount(section.credit_config(), clock, self.friendly, CreditMode(section.mode))
        self._companion = companion
        if companion is not None:
            self._restore_account(companion)
        self.consumed_units = 0
        self.last_charge_units = 0
        self.last_cycle_utc: _dt.datetime | None = None
        self.relay_off = False
        self._low = False
        self._memo = memo
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

    def state_dict(self) -> dict[str, Any]:
        """Account, charge totals and relay intent for the energy checkpoint."""
        return {"account": self.account.to_dict(), "consumed_units": self.consumed_units,
                "relay_off": self.relay_off, "low": self._low}

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load the checkpoint; a newer token-time copy from the STS store wins (see module doc)."""
        chosen = CreditAccount.newer(state.get("account"), self._companion)
        if chosen is not None:
            self._restore_account(chosen)
        self.consumed_units = int(state.get("consumed_units", 0))
        self.relay_off = bool(state.get("relay_off", False))
        self._low = bool(state.get("low", False))

    def _restore_account(self, data: Mapping[str, Any]) -> None:
        try:
            self.account.restore(data)
        except StateError as exc:
            log.error("credit account not restored (configuration changed?): %s", exc)

    # --- what others call -----------------------------------------------------------------------

    def rate(self) -> int:
        """The active tariff rate (revenue's 0-0:96.14.0), 1 without the revenue feature."""
        revenue = self._services.get("revenue")
        return int(revenue.current_rate) if revenue is not None else 1

    def submit_token(self, digits: str, source: str) -> dict[str, Any]:
        """Enter one STS token from ``source`` ("api", "keypad", "dlms", …); JSON-able result."""
        text = "".join(str(digits).split())
        if self.processor is None:
            self._remember(text, source, NOT_COMMISSIONED)
            return {"result": NOT_COMMISSIONED, "accepted": False, "display": "No key", "number": 0,
                    "credit": self.credit_view()}
        result = self.processor.submit(text)
        if result.result == ResultName.ACCEPT:
            self._execute(result)
        self._record_token_event(result, source)
        self._remember(text, source, result.result)
        return {**self._result_view(result), "credit": self.credit_view()}

    def set_mode(self, mode: str) -> dict[str, Any]:
        """Switch prepaid/postpaid (local API, DLMS); durable at once."""
        try:
            wanted = CreditMode(mode)
        except ValueError:
            raise CreditError(f"mode must be prepaid or postpaid, not {mode!r}") from None
        self._apply(self.account.set_mode(wanted))
        self._persist()
        return self.credit_view()

    def request_emergency(self) -> dict[str, Any]:
        """Grant emergency credit when available; durable at once."""
        granted = self.account.emergency_available
        intent = self.account.request_emergency()
        if granted:
            self._event("EMERGENCY_CREDIT_GRANTED", amount=self.section.emergency_amount)
            self._persist()
        self._apply(intent)
        return {"granted": granted, "credit": self.credit_view()}

    def credit_view(self) -> dict[str, Any]:
        """Mode, credit and unit, low credit, emergency credit, friendly period, relay intent."""
        acc, sec = self.account, self.section
        intent = acc.intent()
        energy = acc.config.unit is CreditUnit.ENERGY
        return {
            "mode": acc.mode.value, "unit": acc.config.unit.value,
            "credit": acc.credit, "credit_unit": "Wh" if energy else f"{sec.currency_name}/{10**sec.minor_digits}",
            "credit_kwh": acc.credit / 1000 if energy else None,
            "currency": None if energy else sec.currency_name, "minor_digits": 0 if energy else sec.minor_digits,
            "low_credit": intent.warn_low, "low_credit_threshold": sec.low_credit_threshold,
            "emergency": {"available": acc.emergency_available, "active": intent.emergency_active,
                          "owed": acc.emergency_owed, "amount": sec.emergency_amount,
                          "threshold": sec.emergency_threshold},
            "friendly": self.friendly(self._clock.utc()), "rate": self.rate(),
            "relay": "disconnect" if intent.disconnect else "connect", "relay_off": self.relay_off,
            "consumed": self.consumed_units // acc.config.scale, "token_seq": acc.token_seq,
            "key": self.processor.key_info() if self.processor is not None else None,
        }

    def charge_table(self) -> list[tuple[int, int]]:
        """Unit charge per rate: 1 Wh per Wh (energy) or the price in minor units per kWh."""
        if self.account.config.unit is CreditUnit.ENERGY:
            return [(1, 1)]
        return list(enumerate(self.section.prices_minor_per_kwh, start=1))

    def charge_scales(self) -> tuple[int, int]:
        """(commodity scale, price scale): Wh register; prices per kWh for currency accounts."""
        return (0, 0) if self.account.config.unit is CreditUnit.ENERGY else (-3, 0)

    # --- inside ----------------------------------------------------------------------------------

    def _set_limit(self, result: TokenResult, field_name: str, setter: str) -> None:
        """Hand a class 2 limit (W; 0 = no limit) to load control's ``setter``."""
        limit = result.management.get(field_name)
        load_control = self._services.get("load_control")
        if load_control is None:
            log.warning("%s token accepted but no load control to apply it", field_name)
            return
        getattr(load_control, setter)(float(limit) if limit else None)

    def _execute(self, result: TokenResult) -> None:
        if result.token_class == 0 or is_clear_credit(result):
            self._apply(self.account.apply_token(result))
            self._persist()
        elif result.token_class == 2 and result.subclass == 0:  # SetMaximumPowerLimit
            self._set_limit(result, "max_power_limit_w", "set_max_power_w")
        elif result.token_class == 2 and result.subclass == 6:  # SetMaximumPhasePowerUnbalanceLimit
            self._set_limit(result, "max_phase_unbalance_w", "set_max_phase_unbalance_w")
        elif result.token_class == 2 and result.subclass == 5:  # ClearTamper: the latched tamper alarms
            supervision = self._services.get("supervision")
            if supervision is not None:
                supervision.clear_alarms(self._clock.utc(), tamper_mask())
            else:
                log.warning("clear-tamper token accepted but no supervision to clear")
        # SetTariffRate (class 2, subclass 2) is "reserved for future definition" in IEC 62055-41
        # (2018): it is accepted, recorded in the token log and changes nothing.

    def _apply(self, intent: CreditIntent) -> None:
        if intent.warn_low and not self._low:
            self._event("CREDIT_LOW", credit=intent.credit)
        self._low = intent.warn_low
        if intent.disconnect and not self.relay_off:
            self.relay_off = True
            self._event("CREDIT_EXHAUSTED", credit=intent.credit)
            self._load_control("credit_disconnect")
        elif not intent.disconnect and self.relay_off:
            self.relay_off = False
            self._load_control("credit_reconnect")

    def _load_control(self, action: str) -> None:
        load_control = self._services.get("load_control")
        if load_control is not None:
            getattr(load_control, action)()

    def _event(self, name: str, **detail: Any) -> None:
        events = self._services.get("events")
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

    @staticmethod
    def _result_view(result: TokenResult) -> dict[str, Any]:
        out: dict[str, Any] = {"result": result.result, "accepted": result.accepted, "display": result.display,
                               "number": result.number, "class": result.token_class, "subclass": result.subclass,
                               "tid": result.tid}
        if result.amount_tenths is not None:
            out["amount"] = {"tenths": result.amount_tenths, "unit": result.unit}
        if result.currency_1e5 is not None:
            out["amount"] = {"currency_1e5": result.currency_1e5}
        if result.management:
            out["management"] = {k: v for k, v in result.management.items() if isinstance(v, int | str | bool)}
        if result.lockout_s is not None:
            out["lockout_s"] = round(result.lockout_s, 1)
        return out


# --- wiring -------------------------------------------------------------------------------------


def _open_processor(daemon: Daemon, section: PaymentSection, gate: TokenGate) -> tuple[
        SqliteStsStore, TokenProcessor | None]:
    cfg = daemon.cfg
    assert daemon.clock is not None
    store = SqliteStsStore(cfg.under_state(section.store_file))
    if store.load() is None:
        keys_path = cfg.under_state(section.keys_file)
        if cfg.hardware.backend == "sim" and not keys_path.exists():
            write_key_register(keys_path, sim_key_register(section),
                               "simulated meter: derived from the public STS test vending key (DKGA04)")
        try:
            commission(store, load_key_register(keys_path), slots=section.tid_slots)
        except StsError as exc:
            log.error("STS decoder not commissioned: %s", exc)
            return store, None
        log.info("STS decoder commissioned from %s", keys_path)
    return store, TokenProcessor(store, sts_cipher_factory, daemon.clock, section.sts_config(), gate,
                                 lockout_store=store)


class _Gate:
    """The processor's TokenGate: the live account, looked up at token time."""

    def __init__(self) -> None:
        self.account: CreditAccount | None = None

    def vet(self, result: TokenResult) -> ResultName | None:
        return None if self.account is None else self.account.vet(result)

    def companion(self, result: TokenResult) -> Mapping[str, Any] | None:
        return None if self.account is None else self.account.companion(result)


def attach(daemon: Daemon) -> None:
    """Open the STS store, build the account and token entry, register API, services and COSEM."""
    section: PaymentSection = daemon.cfg.feature("payment")
    assert daemon.clock is not None and daemon.meter is not None
    meter = daemon.meter
    gate = _Gate()
    store, processor = _open_processor(daemon, section, gate)
    service = PaymentService(section, daemon.clock, daemon.services, processor, meter.persist,
                             store.load_companion(), memo=store)
    gate.account = service.account
    meter.listeners.append(service)
    daemon.closers.append(store.close)
    daemon.services["payment"] = service
    daemon.services["submit_token"] = service.submit_token
    daemon.services["credit_view"] = service.credit_view
    daemon.status_extras["credit"] = service.credit_view
    daemon.cosem_factories.append(payment_objects(service))
    _routes(daemon, service)
    daemon.info["sts_keys"] = (f"{daemon.cfg.under_state(section.keys_file)}"
                               + ("" if processor is not None else " (missing: tokens refused)"))


def _routes(daemon: Daemon, service: PaymentService) -> None:
    api = daemon.api

    def token(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        digits = body.get("token")
        if not isinstance(digits, str | int):
            raise ApiError(400, "body needs 'token' (20 digits)")
        return 200, service.submit_token(str(digits), str(body.get("source", "api")))

    def credit(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, service.credit_view()

    def mode(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, service.set_mode(str(body.get("mode", "")))
        except CreditError as exc:
            raise ApiError(400, str(exc)) from None

    def emergency(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, service.request_emergency()

    api.route("POST", "/token", token)
    api.route("GET", "/credit", credit)
    api.route("POST", "/credit/mode", mode)
    api.route("POST", "/credit/emergency", emergency)


__all__ = ["SECTION", "FriendlyPeriods", "PaymentSection", "PaymentService", "attach", "sim_key_register"]
