"""Prepayment: STS token entry, the credit account (prepaid or postpaid) and its COSEM objects.

Section ``[payment]`` (:class:`PaymentSection`): the account policy (amounts in Wh or minor
currency units), friendly periods (``friendly_hours`` local ``HH:MM-HH:MM``, ``friendly_weekdays``
0 = Monday, the revenue calendar's special days when ``friendly_holidays``) and the STS decoder.
The use case is :class:`meterd.services.payment.PaymentService` (provided as ``PaymentService``;
how the account runs down, disconnects and applies class 2 tokens is told there); its
neighbours (revenue, load control, supervision, events) are looked up once, here. Tokens (IEC
62055-41 STS) come from the API (``POST /token``), the CIU keypad (the CIU feature calls the
service) and DLMS (token gateway 0-0:19.40.0.255, method 1, management association); the STS
power limits are kept in the relay store and survive a restart.

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

import logging
from dataclasses import dataclass, field
from typing import Any

from meterd.api.server import ApiError
from meterd.api.views import credit_json, emergency_json, token_json
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.interfaces import interface_board
from meterd.core.credit import CreditConfig, CreditError, CreditMode, CreditUnit
from meterd.core.events import EventRecorder
from meterd.core.sts import KeyInputs, KeyRegister, StsConfig, StsError, TokenProcessor, commission, dkga04
from meterd.core.sts.cipher import BlockCipher64
from meterd.core.sts.keys import TEST_VENDING_KEY_DKGA04
from meterd.cosem.objects_payment import payment_objects
from meterd.services.load_control import LoadControl
from meterd.services.payment import FRIENDLY_HOURS, AccountGate, PaymentLinks, PaymentPolicy, PaymentService
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision
from meterd.store.sts_store import SqliteStsStore, load_key_register, write_key_register

log = logging.getLogger("meterd.payment")


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
        if self.friendly_hours and FRIENDLY_HOURS.match(self.friendly_hours) is None:
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

    def policy(self) -> PaymentPolicy:
        """The payment service's policy."""
        return PaymentPolicy(credit=self.credit_config(), mode=CreditMode(self.mode), currency_name=self.currency_name,
                             prices_minor_per_kwh=self.prices_minor_per_kwh, friendly_hours=self.friendly_hours,
                             friendly_weekdays=self.friendly_weekdays, friendly_holidays=self.friendly_holidays)

    def sts_config(self) -> StsConfig:
        """The decoder policy."""
        # electricity credit only: 0.1 kWh (subclass 0) or electricity currency (subclass 4); water,
        # gas and time credit (1-3, 5-7) are refused with FunctionError and change nothing
        credit = frozenset({4}) if self.unit == "currency" else frozenset({0})
        return StsConfig(mfr_code=self.mfr_code, credit_subclasses=credit, lockout_after=self.lockout_after,
                         max_power_limit_w=self.max_power_limit_w)


SECTION = PaymentSection


def _sts_cipher(ea: int, key: bytes) -> BlockCipher64:
    """The STS cipher for a key register (:func:`meterd.services.sts_crypto.sts_cipher_factory`);
    pycryptodome (DES) is imported at the first token, not at start."""
    from meterd.services.sts_crypto import sts_cipher_factory

    return sts_cipher_factory(ea, key)


def sim_key_register(section: PaymentSection, krn: int | None = None) -> KeyRegister:
    """The decoder key register of a simulated meter: DKGA04 from the public test vending key."""
    inputs = section.key_inputs(krn)
    return KeyRegister(key=dkga04(TEST_VENDING_KEY_DKGA04, inputs), ea=section.ea, kt=section.kt,
                       krn=inputs.krn, ti=int(section.ti), ken=255, sgc=int(section.sgc),
                       base_date=section.base_date)


# --- wiring -------------------------------------------------------------------------------------


def _open_processor(ctx: FeatureContext, section: PaymentSection, gate: AccountGate) -> tuple[
        SqliteStsStore, TokenProcessor | None]:
    cfg = ctx.cfg
    assert ctx.clock is not None
    store = SqliteStsStore(cfg.under_state(section.store_file))
    if store.load() is None:
        keys_path = cfg.under_state(section.keys_file)
        if ctx.hardware.backends.throwaway_keys and not keys_path.exists():
            write_key_register(keys_path, sim_key_register(section),
                               "simulated meter: derived from the public STS test vending key (DKGA04)")
        try:
            commission(store, load_key_register(keys_path), slots=section.tid_slots)
        except StsError as exc:  # no keys: tokens are refused, metering goes on
            interface_board(ctx).off("sts", "STS token decoder (tokens refused)", f"not commissioned: {exc}",
                                     retry=False)
            return store, None
        log.info("STS decoder commissioned from %s", keys_path)
    return store, TokenProcessor(store, _sts_cipher, ctx.clock, section.sts_config(), gate,
                                 lockout_store=store)


def attach(ctx: FeatureContext) -> None:
    """Open the STS store, build the account and token entry, register API, services and COSEM."""
    section: PaymentSection = ctx.cfg.feature("payment")
    assert ctx.clock is not None and ctx.meter is not None
    meter = ctx.meter
    reg = ctx.registry
    links = PaymentLinks(revenue=reg.find(RevenueService), load_control=reg.find(LoadControl),
                         supervision=reg.find(Supervision), events=reg.find(EventRecorder))
    gate = AccountGate()
    store, processor = _open_processor(ctx, section, gate)
    service = PaymentService(section.policy(), ctx.clock, processor, meter.persist, links,
                             store.load_companion(), memo=store)
    gate.account = service.account
    meter.listeners.append(service)
    ctx.closers.append(store.close)
    ctx.registry.provide(PaymentService, service, by="payment")
    ctx.status_extras["credit"] = lambda: credit_json(service.credit_view())
    ctx.cosem_factories.append(payment_objects(service))
    _routes(ctx, service)
    ctx.info["sts_keys"] = (f"{ctx.cfg.under_state(section.keys_file)}"
                               + ("" if processor is not None else " (missing: tokens refused)"))


def _routes(ctx: FeatureContext, service: PaymentService) -> None:
    api = ctx.api

    def token(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        digits = body.get("token")
        if not isinstance(digits, str | int):
            raise ApiError(400, "body needs 'token' (20 digits)")
        return 200, token_json(service.submit_token(str(digits), str(body.get("source", "api"))))

    def credit(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, credit_json(service.credit_view())

    def mode(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, credit_json(service.set_mode(str(body.get("mode", ""))))
        except CreditError as exc:
            raise ApiError(400, str(exc)) from None

    def emergency(_: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        granted = service.request_emergency()
        return 200, emergency_json(granted, service.credit_view())

    api.route("POST", "/token", token)
    api.route("GET", "/credit", credit)
    api.route("POST", "/credit/mode", mode)
    api.route("POST", "/credit/emergency", emergency)


__all__ = ["SECTION", "PaymentSection", "attach", "sim_key_register"]
