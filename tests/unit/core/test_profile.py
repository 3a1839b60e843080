"""Profile buffers: interval and cumulative capture, voltages, ring depth, selection, SQLite store."""

import datetime as dt

import pytest

from meterd.core.energy import Quantity
from meterd.core.model import ProfileBuffer, ProfileRow
from meterd.core.profile import (
    LOAD_PROFILE_OBIS,
    ColumnKind,
    LoadProfile,
    ProfileChannel,
    ProfileConfig,
    ProfileError,
    ProfileStatus,
    default_daily_profile_channels,
    default_load_profile_channels,
)
from meterd.core.reading import Channel
from meterd.store.profile_store import ProfileStoreError, SqliteProfileStore

AI = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)
Q1 = (Quantity.REACTIVE_Q1, Channel.TOTAL)
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(minutes):
    return T0 + dt.timedelta(minutes=minutes)


def test_default_columns_and_protocol():
    lp = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    buffer: ProfileBuffer = lp
    assert all(callable(getattr(buffer, m)) for m in ('entries_in_use', 'rows_between', 'rows_by_entry'))
    obis = [c.obis for c in lp.columns]
    assert obis[:3] == ["0.0.1.0.0.255", "0.0.96.10.1.255", "1.0.1.29.0.255"]
    assert "1.0.8.29.0.255" in obis and obis[-3:] == ["1.0.32.27.0.255", "1.0.52.27.0.255", "1.0.72.27.0.255"]
    assert len(obis) - 1 >= 8 and lp.capture_period_s == 900


def test_interval_values_voltage_average_and_status():
    lp = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    lp.start({AI: 1000})
    lp.add_voltages((230.0, 231.0, 229.0))
    lp.add_voltages((232.0, 231.0, 229.5))
    lp.pending |= ProfileStatus.CAD
    row = lp.capture(at(15), {AI: 1600, Q1: 40}, ProfileStatus.DST)
    assert row.utc == at(15)
    assert row.values[0] == ProfileStatus.DST | ProfileStatus.CAD
    assert row.values[1] == 600 and row.values[3] == 40
    assert row.values[-3:] == (23100, 23100, 22925)
    second = lp.capture(at(30), {AI: 1700, Q1: 40}, ProfileStatus(0))
    assert second.values[0] == 0 and second.values[1] == 100 and second.values[-1] == 0


def test_cumulative_daily_columns():
    daily = LoadProfile("1.0.99.2.0.255", ProfileConfig(default_daily_profile_channels(), 86400, 10))
    row = daily.capture(at(0), {AI: 123}, ProfileStatus(0))
    assert daily.columns[2].obis == "1.0.1.8.0.255" and row.values[1] == 123


def test_order_ring_and_selection():
    lp = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels(), 900, max_entries=4))
    for i in range(1, 7):
        lp.capture(at(15 * i), {AI: i}, ProfileStatus(0))
    assert lp.entries_in_use() == 4
    assert [r.utc for r in lp.rows_by_entry(1, 0)] == [at(45), at(60), at(75), at(90)]
    assert [r.utc for r in lp.rows_by_entry(2, 3)] == [at(60), at(75)]
    assert [r.utc for r in lp.rows_between(at(50), at(75))] == [at(60), at(75)]
    with pytest.raises(ProfileError):
        lp.capture(at(90), {AI: 9}, ProfileStatus(0))


def test_reconfigure_clears_and_config_checks():
    lp = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    lp.capture(at(15), {AI: 1}, ProfileStatus(0))
    lp.reconfigure(ProfileConfig(default_load_profile_channels(), 300))
    assert lp.entries_in_use() == 0 and lp.capture_period_s == 300
    with pytest.raises(ProfileError):
        ProfileConfig(default_load_profile_channels(), 7 * 60)
    with pytest.raises(ProfileError):
        ProfileConfig(default_load_profile_channels()[1:])
    with pytest.raises(ProfileError):
        ProfileChannel(ColumnKind.INTERVAL_ENERGY)
    config = ProfileConfig(default_load_profile_channels(), 60, 100)
    assert ProfileConfig.from_dict(config.to_dict()) == config


def test_state_round_trip():
    lp = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    lp.start({AI: 5})
    lp.add_voltages((230.0, 230.0, 230.0))
    lp.pending |= ProfileStatus.PDN
    other = LoadProfile(LOAD_PROFILE_OBIS, ProfileConfig(default_load_profile_channels()))
    other.restore_state(lp.state_dict())
    assert other.capture(at(15), {AI: 8}, ProfileStatus(0)) == lp.capture(at(15), {AI: 8}, ProfileStatus(0))


def test_sqlite_store_round_trip_trim_and_clear(tmp_path):
    path = tmp_path / "profiles.db"
    with SqliteProfileStore(path, depth={LOAD_PROFILE_OBIS: 3}) as store:
        for i in range(5):
            store.append_row(LOAD_PROFILE_OBIS, ProfileRow(at(15 * i), (at(15 * i).isoformat(), 0, i)))
        store.append_row("1.0.99.2.0.255", ProfileRow(at(0), ("x", 1)))
        assert store.count(LOAD_PROFILE_OBIS) == 3
    with SqliteProfileStore(path) as store:
        rows = store.load_rows(LOAD_PROFILE_OBIS, 10)
        assert [r.values[2] for r in rows] == [2, 3, 4] and rows[0].utc == at(30)
        assert store.load_rows(LOAD_PROFILE_OBIS, 1)[0].values[2] == 4
        store.clear(LOAD_PROFILE_OBIS)
        assert store.count(LOAD_PROFILE_OBIS) == 0 and store.count("1.0.99.2.0.255") == 1
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_refuses_newer_schema(tmp_path):
    path = tmp_path / "p.db"
    SqliteProfileStore(path).close()
    import sqlite3
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(ProfileStoreError):
        SqliteProfileStore(path)
