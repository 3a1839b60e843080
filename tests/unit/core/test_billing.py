"""Billing: schedule, snapshots with MD reset, ring of periods, billing profile, SQLite store."""

import datetime as dt

import pytest

from meterd.core.billing import BillingError, BillingPeriods, BillingSchedule, BillingSnapshot
from meterd.core.demand import DemandConfig, DemandQuantity, DemandRegisters
from meterd.core.energy import EnergyRegisters, Quantity
from meterd.core.model import ProfileBuffer
from meterd.core.reading import Channel
from meterd.core.tariff import TariffRegisters
from meterd.store.billing_store import BillingStoreError, SqliteBillingStore

AI = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_schedule_next_after():
    s = BillingSchedule()
    assert s.next_after(dt.datetime(2026, 1, 1)) == dt.datetime(2026, 2, 1)
    assert s.next_after(dt.datetime(2026, 12, 31, 23, 59)) == dt.datetime(2027, 1, 1)
    assert BillingSchedule(15, 6).next_after(dt.datetime(2026, 3, 15, 5)) == dt.datetime(2026, 3, 15, 6)
    with pytest.raises(BillingError):
        BillingSchedule(29)


def setup_meter():
    totals, rates, demand = EnergyRegisters(), TariffRegisters(4), DemandRegisters(DemandConfig(900, 1))
    demand.begin(T0, totals.snapshot())
    for i, rate in enumerate((1, 2, 2), start=1):
        d = {AI: 1000 * i}
        totals.add(d)
        rates.apply(d, rate)
        demand.close(T0 + dt.timedelta(minutes=15 * i), totals.snapshot(), rate)
    return totals, rates, demand


def test_close_period_snapshots_and_resets_md():
    totals, rates, demand = setup_meter()
    periods = BillingPeriods()
    snap = periods.close_period(T0 + dt.timedelta(hours=1), "command", totals.snapshot(), rates, demand)
    assert snap.counter == periods.counter == 1 and periods.last_billing_utc == snap.utc
    assert snap.registers[AI] == 6000
    assert snap.rate_registers[1][AI] == 1000 and snap.rate_registers[2][AI] == 5000
    assert snap.max_demand[(DemandQuantity.ACTIVE_IMPORT, 0)].value_milli == 12000
    assert snap.max_demand[(DemandQuantity.ACTIVE_IMPORT, 1)].value_milli == 4000
    assert demand.max_demand(DemandQuantity.ACTIVE_IMPORT).value_milli == 0
    assert BillingSnapshot.from_dict(snap.to_dict()) == snap


def test_ring_keeps_twelve_and_profile_rows():
    totals, rates, demand = setup_meter()
    periods = BillingPeriods()
    buffer: ProfileBuffer = periods
    assert buffer.capture_period_s == 0 and buffer.entries_in_use() == 0
    for month in range(1, 15):
        periods.close_period(dt.datetime(2026 + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC), "schedule",
                             totals.snapshot(), rates, demand)
    assert periods.entries_in_use() == 12 and periods.counter == 14
    rows = periods.rows_by_entry(1, 0)
    assert rows[0].values[0] == 3 and rows[-1].values[0] == 14
    assert len(rows[0].values) == len(periods.columns) - 1  # the clock column is the row time
    cols = [(c.obis, c.attribute) for c in periods.columns]
    assert ("1.0.1.6.0.255", 5) in cols and ("1.0.1.8.2.255", 2) in cols
    first = periods.rows_by_entry(1, 1)[0]
    assert first.values[cols.index(("1.0.1.8.2.255", 2)) - 1] == 5000
    assert periods.rows_between(rows[1].utc, rows[2].utc) == rows[1:3]
    with pytest.raises(BillingError):
        BillingPeriods(max_periods=11)


def test_sqlite_billing_store(tmp_path):
    totals, rates, demand = setup_meter()
    periods = BillingPeriods()
    with SqliteBillingStore(tmp_path / "billing.db", keep=13) as store:
        for month in range(2, 17):
            snap = periods.close_period(T0 + dt.timedelta(days=31 * month), "schedule", totals.snapshot(),
                                        rates, demand)
            store.save_snapshot(snap)
        with pytest.raises(BillingStoreError):
            store.save_snapshot(snap)
    with SqliteBillingStore(tmp_path / "billing.db") as store:
        loaded = store.load_snapshots(100)
    assert [s.counter for s in loaded] == list(range(3, 16))
    assert loaded[-12:] == list(periods.snapshots)
