"""Credit account: run-down, warning, disconnect outside friendly periods, reconnect, emergency
credit, currency arithmetic, persistence, and its use as the STS token gate."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterd.core.clock import UTC, SimClock
from meterd.core.credit import (
    CreditAccount,
    CreditConfig,
    CreditError,
    CreditMode,
    CreditUnit,
)
from meterd.core.errors import StateError
from meterd.core.sts import KeyRegister, ResultName, StsConfig, TokenProcessor, TokenResult, commission
from meterd.core.sts.cipher import core_cipher_factory
from meterd.core.sts.vending import credit_token
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.store.sts_store import SqliteStsStore

KWH_MWH = 1_000_000


def never(_: dt.datetime) -> bool:
    return False


def weekends(when: dt.datetime) -> bool:
    return when.weekday() >= 5


def energy_account(clock: SimClock | None = None, friendly=never, **cfg: int) -> CreditAccount:  # type: ignore[no-untyped-def]
    config = CreditConfig(low_credit_threshold=cfg.get("low", 2_000), emergency_amount=cfg.get("ec", 0),
                          emergency_threshold=cfg.get("ec_below", 1_000))
    return CreditAccount(config, clock or SimClock(dt.datetime(2026, 3, 4, tzinfo=UTC)), friendly)


def token(tenths: int) -> TokenResult:
    return TokenResult(ResultName.ACCEPT.value, 0, 0, 1234, None, amount_tenths=tenths, unit="kWh")


def test_runs_down_under_load_and_warns_then_disconnects() -> None:
    acc = energy_account(low=2_000)  # warn below 2 kWh
    acc.apply_token(token(50))  # 5.0 kWh
    assert acc.credit == 5_000
    intents = [acc.consume(250_000, 1) for _ in range(20)]  # 0.25 kWh per step
    warn_at = next(i for i, x in enumerate(intents) if x.warn_low)
    cut_at = next(i for i, x in enumerate(intents) if x.disconnect)
    assert warn_at == 12 and intents[warn_at].credit == 1_750
    assert cut_at == 19 and intents[cut_at].credit == 0
    assert not any(x.disconnect for x in intents[:cut_at])


def test_no_disconnect_inside_friendly_period_then_disconnect_after() -> None:
    clock = SimClock(dt.datetime(2026, 3, 7, 10, tzinfo=UTC))  # a Saturday
    acc = energy_account(clock, friendly=weekends)
    acc.apply_token(token(1))
    intent = acc.consume(300_000, 1)
    assert intent.credit == -200 and intent.warn_low and not intent.disconnect
    clock.advance(2 * 86400)  # Monday
    assert acc.consume(0, 1).disconnect


def test_reconnect_after_credit_token_only_when_credit_positive() -> None:
    acc = energy_account()
    acc.consume(1_000_000, 1)
    assert acc.intent().disconnect
    small = acc.apply_token(token(5))  # 0.5 kWh does not cover the 1 kWh debt
    assert not small.reconnect_allowed and small.disconnect
    enough = acc.apply_token(token(10))
    assert enough.reconnect_allowed and not enough.disconnect and enough.credit == 500


def test_emergency_credit_granted_below_threshold_and_repaid_first() -> None:
    acc = energy_account(ec=3_000, ec_below=1_000)
    acc.apply_token(token(20))
    assert not acc.emergency_available
    acc.consume(1_500_000, 1)
    assert acc.emergency_available
    granted = acc.request_emergency()
    assert granted.reconnect_allowed and granted.emergency_active and granted.credit == 3_500
    assert not acc.emergency_available and acc.request_emergency().credit == 3_500  # once only
    acc.consume(2_000_000, 1)
    after = acc.apply_token(token(100))  # 10 kWh, of which 3 kWh repay the emergency credit
    assert after.credit == 1_500 + 10_000 - 3_000 and not after.emergency_active
    assert acc.emergency_owed == 0


def test_emergency_partly_repaid_by_small_token() -> None:
    acc = energy_account(ec=3_000)
    acc.request_emergency()
    acc.apply_token(token(10))
    assert acc.emergency_owed == 2_000 and acc.credit == 3_000


def test_postpaid_never_disconnects_and_mode_switch_keeps_balance() -> None:
    acc = energy_account()
    acc.set_mode(CreditMode.POSTPAID)
    intent = acc.consume(5 * KWH_MWH, 1)
    assert intent.credit == -5_000 and not intent.disconnect and not intent.warn_low
    assert acc.set_mode(CreditMode.PREPAID).disconnect


def test_currency_account_is_exact_per_rate() -> None:
    cfg = CreditConfig(unit=CreditUnit.CURRENCY, prices_minor_per_kwh={1: 1537, 2: 999}, minor_digits=2,
                       low_credit_threshold=100)
    acc = CreditAccount(cfg, SimClock(), never)
    cur = TokenResult(ResultName.ACCEPT.value, 0, 4, 1, None, currency_1e5=100_004)  # 1.00004 units
    acc.apply_token(cur)
    assert acc.balance_units == 100_004_000 and acc.credit == 100
    acc.consume(1, 1)  # 1 mWh at 15.37 /kWh
    acc.consume(3, 2)
    assert acc.balance_units == 100_004_000 - 1537 - 3 * 999
    with pytest.raises(CreditError):
        acc.consume(1, 9)
    assert acc.vet(token(10)) == ResultName.RANGE  # energy token into a currency account


@given(st.lists(st.tuples(st.integers(0, 10**7), st.sampled_from([1, 2])), max_size=40))
def test_currency_consumption_is_exact_in_any_split(steps: list[tuple[int, int]]) -> None:
    prices = {1: 1537, 2: 999}
    cfg = CreditConfig(unit=CreditUnit.CURRENCY, prices_minor_per_kwh=prices)
    acc = CreditAccount(cfg, SimClock(), never)
    for mwh, rate in steps:
        acc.consume(mwh, rate)
    assert acc.balance_units == -sum(m * prices[r] for m, r in steps)


def test_clear_and_round_trip() -> None:
    acc = energy_account(ec=1_000)
    acc.request_emergency()
    acc.consume(123_456, 1)
    data = acc.to_dict()
    again = CreditAccount.from_dict(data, CreditConfig(emergency_amount=1_000), SimClock(), never)
    assert again.balance_units == acc.balance_units and again.emergency_owed == 1_000
    with pytest.raises(StateError):
        CreditAccount.from_dict(data, CreditConfig(unit=CreditUnit.CURRENCY), SimClock(), never)
    assert acc.clear().credit == 0 and acc.emergency_owed == 0


def test_negative_consumption_refused() -> None:
    with pytest.raises(CreditError):
        energy_account().consume(-1, 1)


def test_credit_account_as_sts_gate_persists_credit_with_tid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = bytes.fromhex("87f3ecbb2e46b48f")  # public STS test decoder key
    store = SqliteStsStore(tmp_path / "sts.db")
    commission(store, KeyRegister(key, 7, 2, 1, 1, 255, 201457, 2014))
    acc = CreditAccount(CreditConfig(max_credit=100_000), SimClock(), never)
    proc = TokenProcessor(store, sts_cipher_factory, SimClock(), StsConfig(), gate=acc)
    c = core_cipher_factory(7, key)
    result = proc.submit(credit_token(c, 6_000_000, 500))
    assert result.result == ResultName.ACCEPT
    acc.apply_token(result)
    assert store.load_companion() == acc.to_dict()
    assert proc.submit(credit_token(c, 6_000_001, 1_000_000)).result == ResultName.OVERFLOW
    assert acc.credit == 50_000


def test_token_sequence_picks_the_newer_copy_and_clear_credit_is_a_token() -> None:
    from meterd.core.credit import is_clear_credit

    account = energy_account()
    checkpoint = account.to_dict()
    companion = account.companion(token(10))
    assert companion is not None and companion["token_seq"] == 1 and companion["balance_units"] == 1_000_000  # 1 kWh in mWh
    assert CreditAccount.newer(checkpoint, companion) is companion  # token after the checkpoint
    account.apply_token(token(10))
    account.consume(1_000, 1)
    later = account.to_dict()
    assert CreditAccount.newer(later, companion) is later  # checkpoint after the token
    assert CreditAccount.newer(None, companion) is companion and CreditAccount.newer(later, None) is later
    clear = TokenResult("Accept", 2, 1, 77, management={"action": "clear_credit", "register_to_clear": 0})
    other_register = TokenResult("Accept", 2, 1, 78, management={"register_to_clear": 3})
    assert is_clear_credit(clear) and not is_clear_credit(other_register)
    assert account.companion(other_register) is None
    after_clear = account.companion(clear)
    assert after_clear is not None and after_clear["balance_units"] == 0 and after_clear["token_seq"] == 2
    account.apply_token(clear)
    assert account.credit == 0 and account.token_seq == 2


@pytest.mark.parametrize("subclass, commodity", [(1, "water"), (2, "gas"), (3, "time"),
                                                 (5, "water"), (6, "gas"), (7, "time")])
def test_other_commodities_never_become_electricity_credit(subclass: int, commodity: str) -> None:
    for unit in (CreditUnit.ENERGY, CreditUnit.CURRENCY):
        acc = CreditAccount(CreditConfig(unit=unit, prices_minor_per_kwh={1: 100}), SimClock(), never)
        other = TokenResult(ResultName.ACCEPT.value, 0, subclass, 5, None, amount_tenths=10, unit="m3",
                            commodity=commodity, currency_1e5=100_000 if subclass >= 4 else None)
        assert acc.vet(other) == ResultName.FUNCTION
        with pytest.raises(CreditError):
            acc.apply_token(other)
        assert acc.balance_units == 0 and acc.token_seq == 0
    electricity = TokenResult(ResultName.ACCEPT.value, 0, 4, 5, None, commodity="electricity", currency_1e5=100_000)
    currency = CreditAccount(CreditConfig(unit=CreditUnit.CURRENCY, prices_minor_per_kwh={1: 100}), SimClock(), never)
    assert currency.vet(electricity) is None
