"""RevenueService edges: capture-object change clears the buffer and store; gap catch-up is bounded."""

import datetime as dt

from meterd.core.demand import DemandQuantity
from meterd.core.energy import EnergyRegisters
from meterd.core.profile import LOAD_PROFILE_OBIS, ProfileConfig, ProfileStatus, default_load_profile_channels
from meterd.services.revenue import RevenueConfig, RevenueService
from meterd.store.profile_store import SqliteProfileStore
from tests.revenue_helpers import AI, T0, run


def test_reconfigure_clears_buffer_and_store(tmp_path):
    with SqliteProfileStore(tmp_path / "p.db") as store:
        svc, regs = RevenueService(profile_store=store), EnergyRegisters()
        run(svc, regs, T0, 60)
        assert svc.load_profile.entries_in_use() == 4 == store.count(LOAD_PROFILE_OBIS)
        assert svc.load_profile.last_row.values[1] == 15_000
        svc.set_load_profile_config(ProfileConfig(default_load_profile_channels(), 300))
        assert svc.load_profile.entries_in_use() == 0 == store.count(LOAD_PROFILE_OBIS)
        run(svc, regs, T0 + dt.timedelta(hours=1), 10)
        assert [r.values[1] for r in svc.load_profile.rows_by_entry(1, 0)] == [5000, 5000]


def test_long_gap_catch_up_is_bounded_by_depth():
    config = RevenueConfig(load_profile=ProfileConfig(default_load_profile_channels(), 900, 10))
    svc, regs = RevenueService(config), EnergyRegisters()
    run(svc, regs, T0, 15)
    svc.on_cycle(T0 + dt.timedelta(days=30, minutes=15), {}, regs)
    rows = svc.load_profile.rows_by_entry(1, 0)
    assert len(rows) == 10 and rows[-1].utc == T0 + dt.timedelta(days=30, minutes=15)
    assert all(r.values[0] & ProfileStatus.PDN for r in rows)
    assert svc.demand.started


def test_mdi_reset_counts_and_clears_md():
    svc, regs = RevenueService(), EnergyRegisters()
    run(svc, regs, T0, 30)
    assert svc.demand.max_demand(DemandQuantity.ACTIVE_IMPORT).value_milli == 60_000      # 15 Wh / 15 min
    snap = svc.mdi_reset(T0 + dt.timedelta(minutes=30))
    assert snap.counter == 1 and snap.reason == "command" and snap.registers[AI] == 30_000
    assert snap.max_demand[(DemandQuantity.ACTIVE_IMPORT, 0)].value_milli == 60_000
    assert all(m.capture_utc is None for m in svc.demand.all_max().values())
