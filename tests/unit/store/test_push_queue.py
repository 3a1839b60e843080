"""The push queue's SQLite store: one transaction per change, ids never reused, marks with the message."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from meterd.store.push_queue import SqlitePushQueue

T0 = dt.datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


def test_enqueue_keeps_message_and_marks_and_evicts_in_one_go(tmp_path: Path) -> None:
    store = SqlitePushQueue(tmp_path / "push.db")
    a = store.enqueue("0.4.25.9.0.255", True, T0, b"\x00\x01", {"rows:x": "2026-01-01T00:00:00+00:00"}, None)
    b = store.enqueue("0.1.25.9.0.255", False, T0, b"\x00\x02", {}, None)
    c = store.enqueue("0.1.25.9.0.255", False, T0, b"\x00\x03", {"rows:x": "2026-01-02T00:00:00+00:00"}, evict=b)
    pending = store.pending()
    assert [m.id for m in pending] == [a, c]
    assert pending[0].priority and not pending[1].priority
    assert pending[0].created_utc == T0 and pending[1].body == b"\x00\x03"
    assert store.marks() == {"rows:x": "2026-01-02T00:00:00+00:00"}
    store.close()


def test_ids_grow_after_the_newest_message_was_delivered_and_reopened(tmp_path: Path) -> None:
    store = SqlitePushQueue(tmp_path / "push.db")
    first = store.enqueue("s", False, T0, b"x", {}, None)
    store.delivered(first)
    store.close()
    store = SqlitePushQueue(tmp_path / "push.db")
    assert store.pending() == []
    assert store.enqueue("s", False, T0, b"y", {}, None) == first + 1
    store.set_mark("installation", T0.isoformat())
    store.save_settings("s", {"retries": 4})
    store.close()
    store = SqlitePushQueue(tmp_path / "push.db")
    assert store.marks()["installation"] == T0.isoformat()
    assert store.load_settings() == {"s": {"retries": 4}}
    store.close()
