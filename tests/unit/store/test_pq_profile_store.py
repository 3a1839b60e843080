"""The power-quality profile 1-0:99.14.0.255 persisted in SQLite: rows restored after a restart,
bounded to the depth, written before they are visible, never written twice for one interval."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from meterd.pq.aggregation import Aggregate
from meterd.services.power_quality import PQ_PROFILE_OBIS, PowerQualityService, PqProfile
from meterd.store.profile_store import SqliteProfileStore

T0 = dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC)


def aggregate(i: int, flagged: bool = False) -> Aggregate:
    rms = np.full(7, 230.0 + i)
    sub = np.zeros((7, 51))
    sub[:, 1] = 230.0
    sub[:, 5] = 2.3 * (i % 3)
    zeros = np.zeros(7)
    return Aggregate("10-min", T0 + dt.timedelta(minutes=10 * (i + 1)), 3000, flagged, rms, rms, rms, sub,
                     zeros, zeros)


def store(path: Path, depth: int = 5) -> SqliteProfileStore:
    return SqliteProfileStore(path / "pq.db", depth={PQ_PROFILE_OBIS: depth})


def test_rows_survive_a_restart_and_stay_bounded(tmp_path: Path) -> None:
    with store(tmp_path) as s:
        profile = PqProfile(5, s)
        written = [profile.add(aggregate(i, flagged=i == 6), {1: 0.1 * i, 2: 0.2, 3: 0.3}) for i in range(8)]
    with store(tmp_path) as s:
        again = PqProfile(5, s)
        assert again.entries_in_use() == 5
        assert again.rows_by_entry(1, 0) == written[3:]
        assert again.rows_between(written[5].utc, written[6].utc) == written[5:7]
        assert again.rows_by_entry(4, 4)[0].values[-1] == 1  # the flag column
        assert s.count(PQ_PROFILE_OBIS) == 5


def test_a_row_the_store_refused_is_not_visible(tmp_path: Path) -> None:
    with store(tmp_path) as s:
        profile = PqProfile(5, s)
        profile.add(aggregate(0), {})
        s.close()
        with pytest.raises(Exception):  # noqa: B017  the closed database refuses the row
            profile.add(aggregate(1), {})
        assert profile.entries_in_use() == 1


class _Monitor:
    """Hands out a fixed 10-min aggregate as the monitor's latest values."""

    def __init__(self, agg: Aggregate) -> None:
        from meterd.pq.monitor import PqValues
        self.values = PqValues(aggregates={"10-min": agg})

    def feed(self, _block: object) -> list[object]:
        return []

    def latest(self) -> object:
        return self.values


def test_the_interval_held_before_a_restart_is_not_written_again(tmp_path: Path) -> None:
    with store(tmp_path) as s:
        service = PowerQualityService(_Monitor(aggregate(2)), None, 5, store=s)  # type: ignore[arg-type]
        service.feed(None)  # type: ignore[arg-type]
        service.feed(None)  # type: ignore[arg-type]
        assert service.profile.entries_in_use() == 1
    with store(tmp_path) as s:
        service = PowerQualityService(_Monitor(aggregate(2)), None, 5, store=s)  # type: ignore[arg-type]
        service.feed(None)  # type: ignore[arg-type]
        assert s.count(PQ_PROFILE_OBIS) == 1
        service.monitor = _Monitor(aggregate(3))  # type: ignore[assignment]
        service.feed(None)  # type: ignore[arg-type]
        assert [r.utc for r in service.profile.rows_by_entry(1, 0)] == [aggregate(2).end_utc, aggregate(3).end_utc]
