"""Rate registers: exact split, invariant against the totals, reconcile, persistence."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.core.energy import ALL_KEYS, Derived, EnergyRegisters, Quantity
from meterd.core.errors import StateError
from meterd.core.reading import Channel
from meterd.core.tariff import TariffError, TariffRegisters

cycle = st.tuples(st.dictionaries(st.sampled_from(ALL_KEYS), st.integers(0, 10**7), max_size=12),
                  st.integers(1, 4))


@settings(max_examples=200, deadline=None)
@given(st.lists(cycle, max_size=60))
def test_rate_registers_sum_exactly_to_totals(cycles):
    totals, rates = EnergyRegisters(), TariffRegisters(4)
    for deltas, rate in cycles:
        totals.add(deltas)
        rates.apply(deltas, rate)
    assert rates.totals() == totals.snapshot()
    for q in (*Quantity, *Derived):
        for ch in Channel:
            assert rates.total(q, ch) == totals.get(q, ch)
    assert TariffRegisters.from_dict(rates.to_dict()).totals() == totals.snapshot()


def test_split_goes_to_one_rate_only():
    rates = TariffRegisters(4)
    key = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
    rates.apply({key: 500, (Quantity.REACTIVE_Q2, Channel.L1): 7}, 2)
    rates.apply({key: 300}, 3)
    assert [rates.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in (1, 2, 3, 4)] == [0, 500, 300, 0]
    assert rates.get(Derived.REACTIVE_IMPORT, Channel.L1, 2) == 7


def test_bad_rate_and_negative_delta():
    rates = TariffRegisters(4)
    with pytest.raises(TariffError):
        rates.apply({}, 5)
    with pytest.raises(TariffError):
        rates.apply({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): -1}, 1)
    with pytest.raises(TariffError):
        TariffRegisters(9)


def test_reconcile_books_energy_that_predates_the_tariff():
    totals = EnergyRegisters({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 1000})
    rates = TariffRegisters(2)
    rates.apply({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 100}, 2)
    missing = rates.reconcile(totals.snapshot(), 1)
    assert missing == {(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 900}
    assert rates.totals() == totals.snapshot()
    rates.apply({(Quantity.ACTIVE_IMPORT, Channel.TOTAL): 1}, 1)
    with pytest.raises(StateError):
        rates.reconcile(totals.snapshot(), 1)


def test_resized_widens_at_zero_and_narrowing_returns_removed_energy() -> None:
    regs = TariffRegisters(3, (Channel.TOTAL,))
    a = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
    q1 = (Quantity.REACTIVE_Q1, Channel.TOTAL)
    for rate, wh in ((1, 5), (2, 7), (3, 11)):
        regs.apply({a: wh * 1000, q1: wh}, rate)
    wider, dropped = regs.resized(5, (Channel.TOTAL,))
    assert dropped == {}
    assert [wider.get(Quantity.ACTIVE_IMPORT, Channel.TOTAL, r) for r in range(1, 6)] == [5000, 7000, 11000, 0, 0]
    narrower, dropped = regs.resized(2, (Channel.TOTAL,))
    assert narrower.rates == 2 and narrower.total(Quantity.ACTIVE_IMPORT) == 12000
    assert dropped == {a: 11000, q1: 11}
    with pytest.raises(TariffError):
        narrower.apply({a: 1}, 3)
