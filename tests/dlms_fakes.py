"""In-memory meter model, load profile and throwaway keys for the DLMS/COSEM tests.

Nothing here is a real secret: the keys are test constants used only against this fake meter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from meterd.core.clock import SimClock
from meterd.core.energy import ALL_KEYS
from meterd.core.model import CaptureColumn, MeterIdentity, MeterSnapshot, ProfileBuffer, ProfileRow
from meterd.core.reading import Channel, ChannelEnergy, PhaseValues, Reading
from meterd.cosem.config import ServerConfig
from meterd.cosem.event_limit import EventLimiter
from meterd.cosem.keys import DlmsKeys, KeyRing
from meterd.cosem.security import LockoutPolicy, MemoryCounterStore
from meterd.cosem.server import build_session_factory

UTC = dt.UTC
SERVER_TITLE = bytes.fromhex("504D4D0000000001")
CLIENT_TITLE = bytes.fromhex("4758580000000001")
TEST_GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
TEST_GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
TEST_KEK = bytes.fromhex("101112131415161718191A1B1C1D1E1F")
TEST_PASSWORD = b"TESTPASS"


def make_keys(path: Path | None = None) -> DlmsKeys:
    """Throwaway keys (never used outside tests)."""
    return DlmsKeys(SERVER_TITLE, TEST_PASSWORD, TEST_GUEK, TEST_GAK, TEST_KEK, path)


def make_keyring(path: Path | None = None) -> KeyRing:
    """A key ring with :func:`make_keys`, saved to ``path`` when given."""
    keys = make_keys(path)
    if path is not None:
        keys.save()
    return KeyRing(keys, persist=path is not None)


LP_COLUMNS = (
    CaptureColumn("0.0.1.0.0.255", 8, 2),
    CaptureColumn("0.0.96.10.1.255", 1, 2),
    CaptureColumn("1.0.1.29.0.255", 3, 2),
    CaptureColumn("1.0.2.29.0.255", 3, 2),
    CaptureColumn("1.0.3.29.0.255", 3, 2),
    CaptureColumn("1.0.4.29.0.255", 3, 2),
    CaptureColumn("1.0.32.27.0.255", 3, 2),
    CaptureColumn("1.0.52.27.0.255", 3, 2),
    CaptureColumn("1.0.72.27.0.255", 3, 2),
)


class FakeProfile(ProfileBuffer):
    """A load profile with ``rows`` entries every ``period_s`` seconds from ``start``."""

    def __init__(self, rows: int, start: dt.datetime, period_s: int = 900,
                 columns: Sequence[CaptureColumn] = LP_COLUMNS) -> None:
        self._columns = tuple(columns)
        self._period = period_s
        n = len(self._columns) - 1
        self._rows = [
            ProfileRow(start + dt.timedelta(seconds=i * period_s),
                       tuple((i * 7 + k * 1000 + 0x7E7E) % 4_000_000 for k in range(n)))
            for i in range(rows)
        ]

    @property
    def columns(self) -> Sequence[CaptureColumn]:
        return self._columns

    @property
    def capture_period_s(self) -> int:
        return self._period

    def entries_in_use(self) -> int:
        return len(self._rows)

    def rows_between(self, start_utc: dt.datetime, end_utc: dt.datetime) -> list[ProfileRow]:
        return [r for r in self._rows if start_utc <= r.utc <= end_utc]

    def rows_by_entry(self, first: int, last: int) -> list[ProfileRow]:
        end = len(self._rows) if last == 0 else last
        return self._rows[first - 1:end]


def sample_reading() -> Reading:
    """A plausible three-phase reading (V, A, W, var, VA)."""
    phases = tuple(PhaseValues(voltage_v=230.0 + i, current_a=5.0 + i, active_power_w=1100.0 + 10 * i,
                               reactive_power_var=-120.0, apparent_power_va=1160.0 + 10 * i,
                               power_factor=0.95) for i in range(3))
    return Reading(mono_s=1.0, phases=phases, energy={Channel.TOTAL: ChannelEnergy()},  # type: ignore[arg-type]
                   total_active_power_w=3330.0, total_reactive_power_var=-360.0,
                   total_apparent_power_va=3510.0, total_power_factor=0.949, frequency_hz=50.02,
                   neutral_current_a=0.123)


class FakeMeter:
    """A MeterModel held in memory; ``clock_sets`` records every set_clock call."""

    def __init__(self, profile_rows: int = 96, clock: SimClock | None = None) -> None:
        self.clock = clock or SimClock(dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
        self.identity = MeterIdentity(serial="PMM1221000042", logical_device_name="PMM0001221000042",
                                      manufacturer_flag="PMM", firmware_version="meterd-0.1.0",
                                      firmware_signature="ab" * 32)
        self.registers = {key: 1_000_000 * (i + 1) + 123 for i, key in enumerate(ALL_KEYS)}
        self.reading: Reading | None = sample_reading()
        self.status_word = 0x0000_0005
        start = dt.datetime(2026, 1, 1, tzinfo=UTC)
        self.load_profile = FakeProfile(profile_rows, start) if profile_rows else None
        self.clock_sets: list[tuple[dt.datetime, str]] = []

    def snapshot(self) -> MeterSnapshot:
        return MeterSnapshot(self.clock.utc(), self.reading, dict(self.registers), self.status_word)

    def now_utc(self) -> dt.datetime:
        return self.clock.utc()

    def set_clock(self, new_utc: dt.datetime, source: str) -> None:
        self.clock_sets.append((new_utc, source))
        self.clock.set_utc(new_utc)

    def profile(self, obis: str) -> ProfileBuffer | None:
        return self.load_profile if obis == "1.0.99.1.0.255" else None


class ListSink:
    """An event sink keeping (code, utc, detail)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dt.datetime, dict[str, object]]] = []

    def record(self, code: int, utc: dt.datetime, detail: Mapping[str, object] | None = None) -> None:
        self.events.append((code, utc, dict(detail or {})))

    def codes(self) -> list[int]:
        return [c for c, _, _ in self.events]

    def of(self, code: int) -> list[dict[str, object]]:
        return [d for c, _, d in self.events if c == code]


RIG_START = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class WrapperRig:
    """Wrapper links of a fake meter on a :class:`SimClock`, sharing one event list, one counter
    store and one key ring.

    ``factories[name]``: the session factory of link ``name`` (``link_name`` and ``links``; each
    call opens a fresh connection, the connections of a link share its lockout and event limit);
    ``factory``: that of ``link_name``. ``window_s`` sets the event rate limit's window (s)."""

    def __init__(self, *, store: Any = None, policy: LockoutPolicy | None = None, clock: SimClock | None = None,
                 sink: ListSink | None = None, link_name: str = "tcp", links: tuple[str, ...] = (),
                 window_s: float | None = None) -> None:
        self.clock = clock or SimClock(RIG_START)
        self.meter = FakeMeter(clock=self.clock)
        self.sink = sink or ListSink()
        self.store = store if store is not None else MemoryCounterStore()
        self.keys = make_keyring()
        self.policy = policy or LockoutPolicy()
        self.limit = EventLimiter(self.clock, window_s) if window_s else None
        self.factories = {name: self.build(name) for name in (link_name, *links)}
        self.factory = self.factories[link_name]

    def build(self, link_name: str) -> Any:
        """A new session factory of link ``link_name`` on this rig's meter, store and keys."""
        config = ServerConfig(events=self.sink, link_name=link_name, lockout=self.policy)
        return build_session_factory(self.meter, self.store, self.keys, config, clock=self.clock,
                                     event_limit=self.limit)

    def send(self, frame: bytes, link: str | None = None) -> bytes:
        """The answer to ``frame`` on a fresh connection of ``link`` (default: ``factory``'s)."""
        factory = self.factory if link is None else self.factories[link]
        answer: bytes = factory().receive(frame)[0]
        return answer

    def aarq(self, frame: bytes) -> tuple[int, int]:
        """(association result, diagnostic) of the AARE answering ``frame`` on a fresh connection."""
        answer = self.send(frame)
        result = answer.index(b"\xa2\x03\x02\x01") + 4
        diagnostic = answer.index(b"\xa3\x05", result) + 6
        return answer[result], answer[diagnostic]
