"""Dating a power cut without a last gasp: the fine last-alive time (every second, in a RAM file
or an RTC's battery-backed RAM) narrows the estimate the 5-min SQLite heartbeat gives."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.power_fail import PowerFailSettings
from meterd.services.supervision import Supervision, SupervisionSettings
from meterd.store.alive_file import AliveFile, alive_path
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
SETTINGS = SupervisionSettings(power=PowerFailSettings(heartbeat_period_s=300.0))


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def run(sup: Supervision, first_s: int, last_s: int, power_fail: bool = False) -> None:
    for s in range(first_s, last_s):
        sup.on_cycle(at(s), None, {"power_fail": power_fail}, mono_s=float(s))


def down_event(sup: Supervision) -> tuple[dt.datetime, dict[str, object]]:
    entry = [e for e in sup.recorder.log(LogId.STANDARD).entries() if e.code == ec.code("POWER_DOWN")][-1]
    return entry.utc, dict(entry.detail)


@pytest.mark.parametrize(("cell", "start_s", "uncertainty_s"), [(True, 437, 1.0), (False, 300, 300.0)])
def test_outage_without_last_gasp_is_dated_by_the_finest_last_alive_time(
        tmp_path: Path, cell: bool, start_s: int, uncertainty_s: float) -> None:
    alive = AliveFile(tmp_path / "alive") if cell else None
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=alive)
        sup.on_start(T0)
        run(sup, 0, 438)  # the meter dies after its cycle at 437 s, no last gasp
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive") if cell else None)
        failure = sup.on_start(at(1000))
        assert failure is not None and failure.estimated_start
        assert failure.start_utc == at(start_s) and failure.duration_s == 1000 - start_s
        assert failure.start_uncertainty_s == uncertainty_s
        assert down_event(sup) == (at(start_s), {"estimated": True, "start_uncertainty_s": uncertainty_s})


def test_a_last_gasp_time_wins_over_the_alive_cell(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))
        sup.on_start(T0)
        run(sup, 0, 20)
        sup.on_power_fail_input(at(20.5), 20.5, True)
        run(sup, 21, 30, power_fail=True)  # on the hold-up capacitor: no more alive writes
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))
        failure = sup.on_start(at(100))
        assert failure is not None and not failure.estimated_start
        assert failure.start_utc == at(20.5) and failure.start_uncertainty_s == 0.0


def test_a_clean_stop_is_no_outage_even_with_an_alive_cell(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))
        sup.on_start(T0)
        run(sup, 0, 10)
        sup.on_stop(at(10))
    with SqliteEventStore(tmp_path / "events.db") as store:
        assert Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive")).on_start(at(50)) is None


def test_alive_file_round_trip_and_rejects_torn_or_foreign_content(tmp_path: Path) -> None:
    cell = AliveFile(tmp_path / "alive")
    assert cell.read() is None
    cell.write(at(12.3456))
    assert cell.read() == at(12.345)
    assert (tmp_path / "alive").stat().st_size == 16
    raw = bytearray((tmp_path / "alive").read_bytes())
    raw[9] ^= 0x40  # a torn write
    (tmp_path / "alive").write_bytes(bytes(raw))
    assert cell.read() is None
    (tmp_path / "alive").write_bytes(b"\x00" * 56)  # an erased RTC RAM
    assert cell.read() is None
    AliveFile(tmp_path / "missing-dir" / "alive").write(at(1))  # logged, not raised


def test_alive_path_choices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert alive_path("off", tmp_path, sim=False) is None
    assert alive_path("/sys/bus/nvmem/devices/ds1307_nvram0/nvmem", tmp_path, sim=False) == \
        Path("/sys/bus/nvmem/devices/ds1307_nvram0/nvmem")
    assert alive_path("", tmp_path, sim=True) == tmp_path / "alive"
    monkeypatch.setenv("RUNTIME_DIRECTORY", "/run/meterd")
    assert alive_path("", tmp_path, sim=False) == Path("/run/meterd/alive")
