"""The power-quality database ``pq.db`` with EN 50160 weeks, interruption records and run-time thresholds.

:class:`SqlitePqWeekStore` extends :class:`~meterd.store.profile_store.SqlitePqStore` (PQ profile
rows, the Pst of the running Plt) with four tables, added without a version change (older files
gain them empty):

* ``pq_week_values``: the EN 50160 samples of each 10-min interval of the running week, one row
  per interval (end, flag, samples packed as little-endian records of quantity code (uint16),
  phase (uint8), flag (uint8) and value (float32)); written in batches (one transaction per
  batch, :class:`meterd.services.pq_week.WeekTracker` writes one an hour); the intervals of a week
  are deleted in the transaction that stores its record;
* ``pq_weeks`` / ``pq_week_results``: the record of each closed week and its result per limit,
  the newest ``keep_weeks`` (52) kept;
* ``pq_interruptions``: interruption records (measured, or from the power-fail evidence),
  one transaction each, the last 400 days kept;
* ``pq_thresholds``: the PQ settings written at run time (name → value), one transaction per change.

Implements :class:`meterd.services.pq_week.WeekStore`,
:class:`meterd.services.pq_interruptions.InterruptionStore` and
:class:`meterd.services.pq_thresholds.ThresholdStore`.
"""

from __future__ import annotations

import datetime as _dt
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from meterd.pq.en50160 import LIMITS, LimitResult, Quantity, Sample, Verdict, WeekRecord
from meterd.services.pq_interruptions import InterruptionRecord
from meterd.services.pq_week import StoredInterval
from meterd.store.profile_store import SqlitePqStore, from_us, to_us
from meterd.store.sqlite import closed_on_failure

_SAMPLE = struct.Struct("<HBBf")
_TABLES = (
    "CREATE TABLE IF NOT EXISTS pq_week_values (end_us INTEGER PRIMARY KEY, flagged INTEGER NOT NULL,"
    " samples BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pq_weeks (start_us INTEGER PRIMARY KEY, end_us INTEGER NOT NULL,"
    " verdict INTEGER NOT NULL, intervals INTEGER NOT NULL, flagged INTEGER NOT NULL,"
    " short_interruptions INTEGER NOT NULL, long_interruptions INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pq_week_results (start_us INTEGER NOT NULL, key TEXT NOT NULL,"
    " verdict INTEGER NOT NULL, within_pct REAL, p95 REAL, p5 REAL, n_values INTEGER NOT NULL,"
    " n_flagged INTEGER NOT NULL, n_outside INTEGER NOT NULL, worst_phase INTEGER NOT NULL,"
    " PRIMARY KEY (start_us, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS pq_interruptions (start_us INTEGER NOT NULL, source TEXT NOT NULL,"
    " end_us INTEGER NOT NULL, duration_s REAL NOT NULL, estimated INTEGER NOT NULL,"
    " uncertainty_s REAL NOT NULL, PRIMARY KEY (start_us, source)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS pq_thresholds (name TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID",
)
INTERRUPTIONS_KEEP_S = 400 * 86400
_ORDER = {limit.key: i for i, limit in enumerate(LIMITS)}


def pack_samples(samples: Sequence[Sample]) -> bytes:
    """The samples as packed records (value as float32)."""
    return b"".join(_SAMPLE.pack(s.quantity.value, s.phase, int(s.flagged), s.value) for s in samples)


def unpack_samples(blob: bytes) -> list[Sample]:
    """Inverse of :func:`pack_samples`; records of unknown quantities are skipped."""
    out: list[Sample] = []
    for code, phase, flagged, value in _SAMPLE.iter_unpack(blob):
        quantity = Quantity.from_code(code)
        if quantity is not None:
            out.append(Sample(quantity, phase, float(value), bool(flagged)))
    return out


class SqlitePqWeekStore(SqlitePqStore):
    """``pq.db``: profile rows, Pst, EN 50160 weeks, interruption records and run-time thresholds."""

    def __init__(self, path: Path | str, depth: Mapping[str, int] | None = None, default_depth: int = 5760,
                 synchronous: str = "FULL", keep_weeks: int = 52) -> None:
        super().__init__(path, depth, default_depth, synchronous)
        self._keep_weeks = keep_weeks
        with closed_on_failure(self._conn):
            have = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not all(t.split("EXISTS", 1)[1].split("(", 1)[0].strip() in have for t in _TABLES):
                with self._conn:
                    self._conn.execute("BEGIN")
                    for statement in _TABLES:
                        self._conn.execute(statement)

    def _transaction(self, statements: Sequence[tuple[str, Sequence[object]]],
                     many: Sequence[tuple[str, Sequence[Sequence[object]]]] = ()) -> None:
        def body() -> None:
            for sql, rows in many:
                self._conn.executemany(sql, rows)
            for sql, args in statements:
                self._conn.execute(sql, args)

        self._write(body)

    # --- EN 50160 weeks ----------------------------------------------------------------------
    def save_intervals(self, intervals: Sequence[StoredInterval]) -> None:
        """Store the samples of these 10-min intervals (one transaction)."""
        rows = [(to_us(end), int(flagged), pack_samples(samples)) for end, flagged, samples in intervals]
        self._transaction((), [("INSERT OR REPLACE INTO pq_week_values VALUES (?, ?, ?)", rows)])

    def load_intervals(self, since_utc: _dt.datetime) -> list[StoredInterval]:
        """The intervals ending after ``since_utc``, oldest first."""
        cur = self._conn.execute("SELECT end_us, flagged, samples FROM pq_week_values WHERE end_us > ?"
                                 " ORDER BY end_us", (to_us(since_utc),))
        return [(from_us(e), bool(f), unpack_samples(bytes(b))) for e, f, b in cur.fetchall()]

    def last_interval_utc(self) -> _dt.datetime | None:
        """The end of the newest stored interval (None: none)."""
        last = self._conn.execute("SELECT MAX(end_us) FROM pq_week_values").fetchone()[0]
        return from_us(int(last)) if last is not None else None

    def save_week(self, record: WeekRecord) -> None:
        """Store a closed week and its results, drop its intervals and the weeks beyond ``keep_weeks``."""
        start, end = to_us(record.start_utc), to_us(record.end_utc)
        results = [(start, r.key, int(r.verdict), r.within_pct, r.p95, r.p5, r.n_values, r.n_flagged,
                    r.n_outside, r.worst_phase) for r in record.results]
        oldest_kept = ("SELECT start_us FROM pq_weeks ORDER BY start_us DESC LIMIT 1 OFFSET ?",)
        self._transaction(
            [("INSERT OR REPLACE INTO pq_weeks VALUES (?, ?, ?, ?, ?, ?, ?)",
              (start, end, int(record.verdict), record.intervals, record.flagged_intervals,
               record.short_interruptions, record.long_interruptions)),
             ("DELETE FROM pq_week_values WHERE end_us <= ?", (end,)),
             (f"DELETE FROM pq_week_results WHERE start_us <= ({oldest_kept[0]})", (self._keep_weeks,)),
             (f"DELETE FROM pq_weeks WHERE start_us <= ({oldest_kept[0]})", (self._keep_weeks,))],
            [("DELETE FROM pq_week_results WHERE start_us = ?", [(start,)]),
             ("INSERT INTO pq_week_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", results)])

    def load_weeks(self, limit: int) -> list[WeekRecord]:
        """The newest ``limit`` closed weeks, oldest first."""
        weeks = self._conn.execute("SELECT * FROM pq_weeks ORDER BY start_us DESC LIMIT ?", (limit,)).fetchall()
        out: list[WeekRecord] = []
        for start, end, verdict, intervals, flagged, short, long_ in reversed(weeks):
            rows = self._conn.execute("SELECT key, verdict, within_pct, p95, p5, n_values, n_flagged, n_outside,"
                                      " worst_phase FROM pq_week_results WHERE start_us = ?", (start,)).fetchall()
            results = tuple(sorted((LimitResult(k, Verdict(v), w, p95, p5, n, nf, no, wp)
                                    for k, v, w, p95, p5, n, nf, no, wp in rows),
                                   key=lambda r: _ORDER.get(r.key, len(_ORDER))))  # the table's order
            out.append(WeekRecord(from_us(start), from_us(end), Verdict(verdict), results, intervals, flagged,
                                  short, long_))
        return out

    # --- interruption records ------------------------------------------------------------------
    def add_interruption(self, record: InterruptionRecord) -> None:
        """Store one record and drop those that ended more than 400 days before it (one transaction)."""
        end = to_us(record.end_utc)
        self._transaction([
            ("INSERT OR REPLACE INTO pq_interruptions VALUES (?, ?, ?, ?, ?, ?)",
             (to_us(record.start_utc), record.source, end, record.duration_s, int(record.estimated_start),
              record.start_uncertainty_s)),
            ("DELETE FROM pq_interruptions WHERE end_us < ?", (end - INTERRUPTIONS_KEEP_S * 1_000_000,))])

    def load_interruptions(self, since_utc: _dt.datetime) -> list[InterruptionRecord]:
        """The records that ended after ``since_utc``, oldest first."""
        cur = self._conn.execute("SELECT start_us, end_us, duration_s, source, estimated, uncertainty_s"
                                 " FROM pq_interruptions WHERE end_us > ? ORDER BY start_us", (to_us(since_utc),))
        return [InterruptionRecord(from_us(s), from_us(e), float(d), str(src), bool(est), float(u))
                for s, e, d, src, est, u in cur.fetchall()]

    # --- run-time thresholds -------------------------------------------------------------------
    def save_thresholds(self, values: Mapping[str, float]) -> None:
        """Store the written values (one transaction)."""
        self._transaction((), [("INSERT OR REPLACE INTO pq_thresholds VALUES (?, ?)",
                                [(k, float(v)) for k, v in values.items()])])

    def load_thresholds(self) -> dict[str, float]:
        """Every stored value (name → value)."""
        return {str(k): float(v) for k, v in self._conn.execute("SELECT name, value FROM pq_thresholds")}
