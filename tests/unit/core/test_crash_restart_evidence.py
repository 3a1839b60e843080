"""A crash of the meter is not a power cut: a stop that was not clean, with no cut seen before it,
while the host kept running (the journal's boot token unchanged) is recorded as "watchdog error"
(IDIS 15) with its down time; a cut the meter saw, or a host that went down, stays an outage."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from meterd.core import event_codes as ec
from meterd.core.alarms import Alarm
from meterd.core.event_codes import LogId
from meterd.core.power_fail import (
    PowerFailMonitor,
    PowerFailSettings,
    PowerFailure,
    SoftwareRestart,
    StartEvidence,
)
from meterd.core.tamper import InputStates
from meterd.services.supervision import Supervision, SupervisionSettings
from meterd.store.alive_file import AliveFile
from meterd.store.event_store import SqliteEventStore

T0 = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
SETTINGS = SupervisionSettings(power=PowerFailSettings(heartbeat_period_s=300.0))
KEPT = StartEvidence(host_kept=True)
POWER_NAMES = {"POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE", "LONG_POWER_FAILURE"}


def at(s: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=s)


def run(sup: Supervision, first_s: int, last_s: int, power_fail: bool = False) -> None:
    for s in range(first_s, last_s):
        sup.on_cycle(at(s), None, {"power_fail": power_fail}, mono_s=float(s))


def names(sup: Supervision, log: LogId = LogId.STANDARD) -> list[str]:
    return [ec.lookup(e.code).name for e in sup.recorder.log(log).entries()]


def crashed_meter(tmp_path: Path, last_s: int = 438) -> None:
    """A meter that ran from 0 s and died after its cycle at ``last_s - 1`` s: no clean stop."""
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))
        assert sup.on_start(T0) is None
        run(sup, 0, last_s)


def restarted(tmp_path: Path, store: SqliteEventStore) -> Supervision:
    return Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))


def test_a_crash_while_the_host_kept_running_is_a_software_restart(tmp_path: Path) -> None:
    crashed_meter(tmp_path)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = restarted(tmp_path, store)
        outcome = sup.on_start(at(450), KEPT)
        assert outcome == SoftwareRestart(last_alive_utc=at(437), start_utc=at(450), down_s=13,
                                          start_uncertainty_s=1.0)
        [entry] = sup.recorder.log(LogId.STANDARD).entries()
        assert (ec.lookup(entry.code).name, entry.code, entry.utc) == ("WATCHDOG_ERROR", 15, at(450))
        assert dict(entry.detail) == {"restart": "software", "down_s": 13, "last_alive_utc": at(437).isoformat(),
                                      "start_uncertainty_s": 1.0}
        assert sup.recorder.log(LogId.POWER_FAILURE).entries() == []
        assert sup.power_counters() == {"failures": 0, "long_failures": 0, "long_failure_time_s": 0}
        register = sup.alarm_register()
        assert register & Alarm.WATCHDOG_ERROR.mask and not register & Alarm.LONG_POWER_FAILURE.mask
        run(sup, 450, 460)
        sup.on_stop(at(460))
    with SqliteEventStore(tmp_path / "events.db") as store:  # recorded once, not again at the next start
        sup = restarted(tmp_path, store)
        assert sup.on_start(at(500), KEPT) is None
        assert names(sup) == ["WATCHDOG_ERROR"]


@pytest.mark.parametrize("evidence", [None, StartEvidence(None), StartEvidence(False)],
                         ids=["no evidence", "unknown", "host restarted"])
def test_without_the_host_kept_running_the_stop_stays_a_power_failure(
        tmp_path: Path, evidence: StartEvidence | None) -> None:
    crashed_meter(tmp_path)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = restarted(tmp_path, store)
        failure = sup.on_start(at(450), evidence)
        assert isinstance(failure, PowerFailure) and failure.estimated_start and not failure.long
        assert (failure.start_utc, failure.duration_s) == (at(437), 13)
        assert names(sup) == ["POWER_DOWN", "POWER_UP", "SHORT_POWER_FAILURE"]
        assert names(sup, LogId.POWER_FAILURE) == ["SHORT_POWER_FAILURE"]
        assert sup.power_counters()["failures"] == 1
        assert not sup.alarm_register() & Alarm.WATCHDOG_ERROR.mask


def test_a_cut_announced_by_the_power_fail_input_stays_an_outage_when_the_host_kept_running(tmp_path: Path) -> None:
    """The supply supervisor's last gasp came before the stop: the cut was real (the host rode it
    out, or its RAM survived on the hold-up), whatever the boot token says."""
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))
        sup.on_start(T0)
        run(sup, 0, 20)
        sup.on_power_fail_input(at(20.5), 20.5, True)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = restarted(tmp_path, store)
        failure = sup.on_start(at(300), KEPT)
        assert isinstance(failure, PowerFailure) and failure.long and not failure.estimated_start
        assert failure.start_utc == at(20.5)
        assert names(sup) == ["POWER_DOWN", "POWER_UP"]
        assert names(sup, LogId.POWER_FAILURE) == ["LONG_POWER_FAILURE"]
        assert "WATCHDOG_ERROR" not in names(sup)


def test_a_clean_stop_is_neither_an_outage_nor_a_restart_event(tmp_path: Path) -> None:
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = Supervision(SETTINGS, store, alive=AliveFile(tmp_path / "alive"))
        sup.on_start(T0)
        run(sup, 0, 10)
        sup.on_stop(at(10))
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = restarted(tmp_path, store)
        assert sup.on_start(at(50), KEPT) is None
        assert names(sup) == []


def test_crash_restarts_then_a_real_outage(tmp_path: Path) -> None:
    """Two crashes give two restart events and leave the outage accounting as it was: a power
    cut (host down, no last gasp) afterwards is dated from the last-alive time as always."""
    crashed_meter(tmp_path, 100)
    for start_s, end_s in ((110, 200), (205, 300)):
        with SqliteEventStore(tmp_path / "events.db") as store:
            sup = restarted(tmp_path, store)
            assert isinstance(sup.on_start(at(start_s), KEPT), SoftwareRestart)
            run(sup, start_s, end_s)
    with SqliteEventStore(tmp_path / "events.db") as store:
        sup = restarted(tmp_path, store)
        failure = sup.on_start(at(1000), StartEvidence(False))
        assert isinstance(failure, PowerFailure) and failure.long and failure.start_utc == at(299)
        assert names(sup) == ["WATCHDOG_ERROR", "WATCHDOG_ERROR", "POWER_DOWN", "POWER_UP"]
        restarts = [e.detail["down_s"] for e in sup.recorder.log(LogId.STANDARD).entries() if e.code == 15]
        assert restarts == [11, 6]
        assert sup.power_counters() == {"failures": 1, "long_failures": 1, "long_failure_time_s": 701}


def test_monitor_alone_dates_the_restart_from_the_persisted_heartbeat() -> None:
    """Without a finer last-alive time the down time runs from the last saved heartbeat (s)."""
    monitor = PowerFailMonitor(PowerFailSettings(heartbeat_period_s=300.0))
    assert monitor.start(T0, host_kept=True) is None  # first start: nothing to account
    monitor.update(at(1), 1.0, None, InputStates())
    saved = monitor.state
    again = PowerFailMonitor(PowerFailSettings(heartbeat_period_s=300.0), saved)
    outcome = again.start(at(120), host_kept=True)
    assert outcome == SoftwareRestart(at(1), at(120), 119, 300.0)
    assert again.state.failures == 0 and not again.state.clean_stop and again.state.last_alive_utc == at(120)
