"""Token entry through the payment feature of a whole simulated meter: only electricity credit
credits this meter (other commodities are refused with FunctionError and change no state)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.sts.outcome import TokenOutcome
from meterd.core.sts.vending import credit_token, currency_token
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from tests.simmeter import SimMeter

NEVER_FRIENDLY = {"mode": "prepaid", "friendly_hours": "", "friendly_weekdays": (), "friendly_holidays": False}
CURRENCY = {"unit": "currency", "prices_minor_per_kwh": (2500,), "minor_digits": 2}


def cipher(ea: int = 7) -> Any:
    return sts_cipher_factory(ea, sim_key_register(PaymentSection(ea=ea)).key)


def submit(m: SimMeter, token: str, source: str = "keypad") -> TokenOutcome:
    return m.service(PaymentService).submit_token(token, source)  # type: ignore[no-any-return]


def memory(m: SimMeter) -> tuple[Any, ...]:
    """The credit account and the TID memory."""
    service = m.service(PaymentService)
    assert service.processor is not None
    return (service.account.to_dict(), service.processor.state.tid_memory)


@pytest.fixture
def currency_meter(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = SimMeter(tmp_path, payment={**NEVER_FRIENDLY, **CURRENCY})
    yield m
    m.close()


@pytest.mark.parametrize("subclass", [5, 6, 7])   # water, gas, time currency
def test_currency_credit_of_another_commodity_is_refused(currency_meter: SimMeter, subclass: int) -> None:
    m = currency_meter
    before = memory(m)
    result = submit(m, currency_token(cipher(), 400, 500_000, subclass=subclass))
    assert result.result == "FunctionError" and not result.accepted
    assert memory(m) == before and result.credit_after.credit == 0
    # the same TID as electricity currency is still free: nothing was recorded
    accepted = submit(m, currency_token(cipher(), 400, 500_000, subclass=4))
    assert accepted.result == "Accept" and accepted.credit_after.credit == 500


@pytest.mark.parametrize("subclass", [1, 2, 3])   # water, gas, time in units
def test_unit_credit_of_another_commodity_is_refused(tmp_path: Path, subclass: int) -> None:
    m = SimMeter(tmp_path, payment=NEVER_FRIENDLY)
    try:
        before = memory(m)
        assert submit(m, credit_token(cipher(), 410, 50, subclass=subclass)).result == "FunctionError"
        assert memory(m) == before
        assert submit(m, credit_token(cipher(), 410, 50)).result == "Accept"
    finally:
        m.close()


def test_keypad_lockout_survives_a_restart_of_the_meter(tmp_path: Path) -> None:
    wrong_key = sts_cipher_factory(7, bytes(8))
    m = SimMeter(tmp_path, payment=NEVER_FRIENDLY)
    for tid in range(3):
        assert submit(m, credit_token(wrong_key, 500 + tid, 10)).result == "CRCError"
    m.close()
    m = SimMeter(tmp_path, payment=NEVER_FRIENDLY)
    try:
        locked = submit(m, credit_token(cipher(), 510, 10))
        assert locked.result == "TokenLockout" and locked.lockout_s is not None and 0 < locked.lockout_s <= 10.0
        assert m.service(PaymentService).last_token.result == "TokenLockout"
        m.run(11)
        assert submit(m, credit_token(cipher(), 510, 10)).result == "Accept"
    finally:
        m.close()
