"""The STS token lockout counter and the last token entered survive a restart (SQLite STS store,
schema 2; a schema 1 file is migrated in place)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from meterd.core.clock import UTC, SimClock
from meterd.core.sts import ResultName, StsConfig, TokenProcessor, commission
from meterd.core.sts.errors import StsStateError
from meterd.core.sts.vending import credit_token
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.store.sts_store import SCHEMA_VERSION, SqliteStsStore
from tests.unit.core.test_sts_processor import cipher, register

CONFIG = StsConfig(lockout_after=3, lockout_base_s=10.0, lockout_max_s=1280.0)
BAD = credit_token(cipher(bytes(8)), 5000, 10)         # another key: CRCError here


def processor(path: Path, clock: SimClock) -> tuple[TokenProcessor, SqliteStsStore]:
    store = SqliteStsStore(path)
    if store.load() is None:
        commission(store, register())
    return TokenProcessor(store, sts_cipher_factory, clock, CONFIG, lockout_store=store), store


def test_a_running_lockout_goes_on_after_a_restart(tmp_path: Path) -> None:
    clock = SimClock(dt.datetime(2026, 1, 1, tzinfo=UTC))
    proc, store = processor(tmp_path / "sts.db", clock)
    for _ in range(3):
        assert proc.submit(BAD).result == ResultName.CRC
    clock.advance(4.0)
    store.close()
    # restart: a new monotonic clock origin, UTC goes on
    clock2 = SimClock(dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC), start_mono=0.0)
    proc, store = processor(tmp_path / "sts.db", clock2)
    locked = proc.submit(credit_token(cipher(), 5000, 10))
    assert locked.result == ResultName.LOCKOUT and locked.lockout_s == pytest.approx(5.0)
    assert proc.lockout_rejects == 3
    clock2.advance(5.5)
    assert proc.submit(BAD).result == ResultName.CRC       # 4th reject in a row: 20 s now, not 10 s
    assert proc.submit(credit_token(cipher(), 5000, 10)).lockout_s == pytest.approx(20.0)
    store.close()


def test_the_counter_survives_a_restart_below_the_limit_and_an_accept_clears_it(tmp_path: Path) -> None:
    clock = SimClock(dt.datetime(2026, 1, 1, tzinfo=UTC))
    proc, store = processor(tmp_path / "sts.db", clock)
    for _ in range(2):
        proc.submit(BAD)
    store.close()
    proc, store = processor(tmp_path / "sts.db", clock)
    assert proc.lockout_rejects == 2
    assert proc.submit(BAD).result == ResultName.CRC        # the 3rd in a row locks
    assert proc.submit(credit_token(cipher(), 5000, 10)).result == ResultName.LOCKOUT
    clock.advance(11.0)
    assert proc.submit(credit_token(cipher(), 5000, 10)).result == ResultName.ACCEPT
    store.close()
    proc, store = processor(tmp_path / "sts.db", clock)
    assert proc.lockout_rejects == 0 and store.load_lockout() == (0, None)
    store.close()


def test_a_lockout_end_far_in_the_future_is_bounded_by_the_maximum(tmp_path: Path) -> None:
    clock = SimClock(dt.datetime(2026, 1, 1, tzinfo=UTC))
    with SqliteStsStore(tmp_path / "sts.db") as store:
        commission(store, register())
        store.save_lockout(9, dt.datetime(2027, 1, 1, tzinfo=UTC))   # e.g. after a clock step back
    proc, store = processor(tmp_path / "sts.db", clock)
    assert proc.submit(credit_token(cipher(), 5000, 10)).lockout_s == pytest.approx(1280.0)
    store.close()


def test_schema_1_store_is_migrated_and_keeps_its_state(tmp_path: Path) -> None:
    path = tmp_path / "sts.db"
    with SqliteStsStore(path) as store:
        commission(store, register())
        state = store.load()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE sts_memo; UPDATE sts_meta SET value = '1' WHERE name = 'schema';")
    db.close()
    with SqliteStsStore(path) as store:
        assert store.load() == state and store.load_lockout() == (0, None) and store.load_last_token() is None
        store.save_last_token({"digits": "1" * 20, "utc": None, "source": "keypad", "result": "CRCError"})
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM sts_meta WHERE name = 'schema'").fetchone()[0] == str(SCHEMA_VERSION) == "2"
    db.execute("UPDATE sts_meta SET value = '3' WHERE name = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(StsStateError):
        SqliteStsStore(path)
