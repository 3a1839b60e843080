"""The profile store keeps each profile's capture definition beside its rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from meterd.core.model import ProfileRow
from meterd.core.profile import ProfileConfig, default_daily_profile_channels, default_load_profile_channels
from meterd.store.profile_store import SqliteProfileStore

T0 = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def test_definition_is_recorded_and_redefining_clears_rows(tmp_path: Path) -> None:
    lp = ProfileConfig(default_load_profile_channels())
    with SqliteProfileStore(tmp_path / "p.db") as store:
        assert store.load_definition("1.0.99.1.0.255") is None
        store.redefine("1.0.99.1.0.255", lp.definition(), clear=False)
        store.append_row("1.0.99.1.0.255", ProfileRow(T0, (0, 1)))
        store.append_row("1.0.99.2.0.255", ProfileRow(T0, (0, 2)))
    with SqliteProfileStore(tmp_path / "p.db") as store:
        assert store.load_definition("1.0.99.1.0.255") == lp.definition()
        other = ProfileConfig(default_load_profile_channels(), 600)
        assert other.definition() != lp.definition()
        assert ProfileConfig(default_load_profile_channels(), 900, 10).definition() == lp.definition()
        store.redefine("1.0.99.1.0.255", other.definition(), clear=True)
        assert store.count("1.0.99.1.0.255") == 0 and store.count("1.0.99.2.0.255") == 1
        assert store.load_definition("1.0.99.1.0.255") == other.definition()
        daily = ProfileConfig(default_daily_profile_channels(), 86400, 400)
        assert daily.definition() != other.definition()
