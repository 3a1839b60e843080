"""The typed credit view and token outcome: frozen, built once per change of the account (not per
reader), and their JSON form (the local API's only serialisation) key for key as the API has
always answered."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from meterd.api.views import credit_json, emergency_json, token_json
from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.clock import SimClock
from meterd.core.credit import CreditMode, CreditUnit, CreditView
from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.core.sts.outcome import TokenOutcome
from meterd.core.sts.results import TokenResult
from meterd.core.sts.vending import credit_token
from meterd.services.ciu_meter import MeterCiu
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from tests.simmeter import SimMeter

THURSDAY_MIDNIGHT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # inside the default friendly hours 18:00-07:00
NEVER_FRIENDLY = {"mode": "prepaid", "friendly_hours": "", "friendly_weekdays": (), "friendly_holidays": False}
CURRENCY = {"unit": "currency", "prices_minor_per_kwh": (2537, 1200), "minor_digits": 2}


def service(**section: Any) -> tuple[PaymentService, SimClock]:
    """A payment service without decoder and without neighbours, on a clock that moves when told."""
    clock = SimClock(THURSDAY_MIDNIGHT)
    return PaymentService(PaymentSection(**section).policy(), clock, None, lambda: None), clock


def cycle(svc: PaymentService, clock: SimClock, import_mwh: int) -> None:
    clock.advance(1.0)
    svc.on_cycle(clock.utc(), {(Quantity.ACTIVE_IMPORT, Channel.TOTAL): import_mwh}, None, None)


def test_the_views_are_frozen() -> None:
    svc, _ = service()
    view = svc.credit_view()
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.credit = 10**6  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.emergency.owed = 0  # type: ignore[misc]
    outcome = TokenOutcome.of(TokenResult("Accept", 2, 0, tid=5, management={"max_power_limit_w": 4000}),
                              view, view)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.result = "UsedError"  # type: ignore[misc]
    with pytest.raises(TypeError):
        outcome.management["max_power_limit_w"] = 0  # type: ignore[index]
    keyed = dataclasses.replace(view, key={"krn": 1})
    assert keyed.key == {"krn": 1}
    built = CreditView.of(svc.account, "EUR", friendly=False, rate=1, relay_off=False, consumed_units=0,
                          key={"krn": 1})
    with pytest.raises(TypeError):
        built.key["krn"] = 2  # type: ignore[index]


def test_the_view_is_built_once_per_change_and_shared_by_every_reader() -> None:
    svc, clock = service(**NEVER_FRIENDLY)
    with mock.patch.object(CreditView, "of", wraps=CreditView.of) as built:
        first = svc.credit_view()
        assert svc.credit_view() is first and svc.credit_view() is first and built.call_count == 1
        cycle(svc, clock, 50_000)  # 50 Wh: a change
        after_cycle = svc.credit_view()
        assert after_cycle is not first and after_cycle.credit == -50 and built.call_count == 2
        assert svc.set_mode("postpaid") is svc.credit_view() and built.call_count == 3
        assert svc.request_emergency() is False and svc.credit_view().mode is CreditMode.POSTPAID
        assert built.call_count == 4
        outcome = svc.submit_token("1" * 20, "api")  # no decoder: nothing changes
        assert outcome.result == "NotCommissioned" and outcome.credit_before is outcome.credit_after
        assert outcome.credit_after is svc.credit_view() and built.call_count == 4


def test_a_token_from_the_ciu_builds_the_credit_view_once(tmp_path: Path) -> None:
    m = SimMeter(tmp_path, payment=NEVER_FRIENDLY)
    try:
        m.run(2)  # the LCD read this cycle's view
        payment, ciu = m.service(PaymentService), m.service(MeterCiu)
        before = payment.credit_view()
        token = credit_token(sts_cipher_factory(7, sim_key_register(PaymentSection()).key), 100, 10)
        with mock.patch.object(CreditView, "of", wraps=CreditView.of) as built:
            fields = ciu.submit_token(token)
            ciu.service.push_status()  # the STATUS push after a token reads the same view
            assert built.call_count == 1
        after = payment.credit_view()
        assert after.credit == before.credit + 1000
        assert fields["accepted"] and fields["amount"] == 1.0 and fields["credit"] == round(after.shown_credit, 2)
    finally:
        m.close()


def test_credit_json_of_an_energy_account() -> None:
    svc, _ = service()
    out = credit_json(svc.credit_view())
    assert list(out) == ["mode", "unit", "credit", "credit_unit", "credit_kwh", "currency", "minor_digits",
                         "low_credit", "low_credit_threshold", "emergency", "friendly", "rate", "relay",
                         "relay_off", "consumed", "token_seq", "key"]
    assert out == {"mode": "postpaid", "unit": "energy", "credit": 0, "credit_unit": "Wh", "credit_kwh": 0.0,
                   "currency": None, "minor_digits": 0, "low_credit": False, "low_credit_threshold": 5000,
                   "emergency": {"available": False, "active": False, "owed": 0, "amount": 2000, "threshold": 1000},
                   "friendly": True, "rate": 1, "relay": "connect", "relay_off": False, "consumed": 0,
                   "token_seq": 0, "key": None}
    assert type(out["mode"]) is str and type(out["unit"]) is str
    assert list(out["emergency"]) == ["available", "active", "owed", "amount", "threshold"]


def test_credit_json_of_a_prepaid_currency_account_after_consumption() -> None:
    svc, clock = service(**NEVER_FRIENDLY, **CURRENCY)
    cycle(svc, clock, 2_000_000)  # 2 kWh at 25.37 cents: 5074 cents owed
    view = svc.credit_view()
    assert view.unit is CreditUnit.CURRENCY and view.shown_credit == -50.74 and view.shown_unit == "EUR"
    assert credit_json(view) == {
        "mode": "prepaid", "unit": "currency", "credit": -5074, "credit_unit": "EUR/100", "credit_kwh": None,
        "currency": "EUR", "minor_digits": 2, "low_credit": True, "low_credit_threshold": 5000,
        "emergency": {"available": True, "active": False, "owed": 0, "amount": 2000, "threshold": 1000},
        "friendly": False, "rate": 1, "relay": "disconnect", "relay_off": True, "consumed": 5074,
        "token_seq": 0, "key": None}
    granted = svc.request_emergency()
    out = emergency_json(granted, svc.credit_view())
    assert out["granted"] is True and out["credit"]["emergency"]["active"] and out["credit"]["credit"] == -3074


def test_token_json_key_for_key() -> None:
    svc, _ = service()
    view = svc.credit_view()
    credit = credit_json(view)
    accept = TokenResult("Accept", 0, 0, tid=123, amount_tenths=25, unit="kWh", commodity="electricity")
    out = token_json(TokenOutcome.of(accept, view, view))
    assert list(out) == ["result", "accepted", "display", "number", "class", "subclass", "tid", "amount", "credit"]
    assert out == {"result": "Accept", "accepted": True, "display": "Accept", "number": 1, "class": 0,
                   "subclass": 0, "tid": 123, "amount": {"tenths": 25, "unit": "kWh"}, "credit": credit}
    money = TokenResult("Accept", 0, 4, tid=124, commodity="electricity", currency_1e5=500_000)
    assert token_json(TokenOutcome.of(money, view, view))["amount"] == {"currency_1e5": 500_000}
    limit = TokenResult("Accept", 2, 0, tid=125, management={"max_power_limit_w": 4000, "table": [1, 2]})
    assert token_json(TokenOutcome.of(limit, view, view)) == {
        "result": "Accept", "accepted": True, "display": "Accept", "number": 1, "class": 2, "subclass": 0,
        "tid": 125, "management": {"max_power_limit_w": 4000}, "credit": credit}
    locked = token_json(TokenOutcome.of(TokenResult("TokenLockout", lockout_s=9.96), view, view))
    assert locked == {"result": "TokenLockout", "accepted": False, "display": "Locked", "number": 15,
                      "class": None, "subclass": None, "tid": None, "lockout_s": 10.0, "credit": credit}
    assert token_json(TokenOutcome.not_commissioned(view)) == {
        "result": "NotCommissioned", "accepted": False, "display": "No key", "number": 0, "credit": credit}
