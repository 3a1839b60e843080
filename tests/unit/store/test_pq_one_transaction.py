"""pq.db's writes of one block committed together: the profile row, the Pst of its interval and
the EN 50160 batch in one transaction (one WAL commit, one sync) instead of one each."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meterd.core.model import ProfileRow
from meterd.services.power_quality import PQ_PROFILE_OBIS, OneTransaction
from meterd.store.pq_store import SqlitePqWeekStore

T0 = dt.datetime(2026, 6, 1, 0, 10, tzinfo=dt.UTC)


def commits(store: SqlitePqWeekStore) -> list[str]:
    """The COMMIT statements the store's connection runs from now on."""
    seen: list[str] = []
    store._conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


def write_interval(store: SqlitePqWeekStore, i: int) -> None:
    end = T0 + dt.timedelta(minutes=10 * i)
    store.save_pst(end, [(1, 0.1 * i, False), (2, 0.2, False), (3, 0.3, True)])
    store.append_row(PQ_PROFILE_OBIS, ProfileRow(end, (230.0 + i, 1.5, 0)))
    store.save_intervals([(end, False, [])])


def test_the_store_is_a_one_transaction_store(tmp_path: Path) -> None:
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:
        assert isinstance(store, OneTransaction)


def test_one_block_of_writes_is_one_commit_and_durable_at_its_end(tmp_path: Path) -> None:
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:
        seen = commits(store)
        with store.one_transaction():
            write_interval(store, 1)
            with store.one_transaction():  # a nested scope joins the outer one
                write_interval(store, 2)
            assert seen == []  # nothing committed inside the block
        assert len(seen) == 1
        write_interval(store, 3)  # outside a scope: one transaction per write, as before
        assert len(seen) == 4
    with SqlitePqWeekStore(tmp_path / "pq.db") as again:
        assert [r.values[0] for r in again.load_rows(PQ_PROFILE_OBIS, 10)] == [231.0, 232.0, 233.0]
        assert len(again.load_pst()) == 9
        assert len(again.load_intervals(T0)) == 3


def test_writes_before_an_exception_in_the_block_are_still_committed(tmp_path: Path) -> None:
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:
        with pytest.raises(RuntimeError), store.one_transaction():
            write_interval(store, 1)
            raise RuntimeError("analysis failed")
        write_interval(store, 2)  # the scope is closed: writes go on one by one
    with SqlitePqWeekStore(tmp_path / "pq.db") as again:
        assert [r.values[0] for r in again.load_rows(PQ_PROFILE_OBIS, 10)] == [231.0, 232.0]
        assert len(again.load_pst()) == 6


def test_a_full_disk_keeps_the_block_whole_and_writes_it_later(tmp_path: Path) -> None:
    with SqlitePqWeekStore(tmp_path / "pq.db") as store:
        real = store._conn
        refused = {"on": True}

        class FullDisk:
            """The connection of a full disk: every COMMIT is refused while ``refused``."""

            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def execute(self, sql: str, *args: object) -> object:
                if sql == "COMMIT" and refused["on"]:
                    import sqlite3

                    raise sqlite3.OperationalError("database or disk is full")
                return real.execute(sql, *args)

        store._conn = FullDisk()  # type: ignore[assignment]
        with store.one_transaction():
            write_interval(store, 1)
        assert store._backlog.pending == 1  # the whole block waits, as one write
        refused["on"] = False
        write_interval(store, 2)
        assert store._backlog.pending == 0
        store._conn = real
    with SqlitePqWeekStore(tmp_path / "pq.db") as again:
        assert [r.values[0] for r in again.load_rows(PQ_PROFILE_OBIS, 10)] == [231.0, 232.0]
