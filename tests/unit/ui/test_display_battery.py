"""The RTC battery watch of the meter LCD: flags read on a period, one event per occurrence, unknown flags."""

from __future__ import annotations

from pathlib import Path

from meterd.runtime.rtc import VL_BACKUP_EMPTY, VL_BACKUP_LOW, LinuxRtc, SimRtc
from meterd.store.json_file import JsonFile
from meterd.ui.battery import BatteryWatch
from meterd.ui.display_data import DisplayData
from meterd.ui.screens import ITEMS_BY_ID, screen_key
from tests.fakes import ManualMono

LOW = VL_BACKUP_LOW | VL_BACKUP_EMPTY  # the flags the meter reads as a low battery


def test_low_and_empty_flags_record_once_and_only_when_due(tmp_path: Path) -> None:
    rtc, mono, recorded = SimRtc(vl_flags=0), ManualMono(0.0), []
    watch = BatteryWatch(rtc, mono, 60.0, recorded.append, JsonFile(tmp_path / "s.json"), LOW)
    watch.poll()
    assert watch.low is False
    rtc.vl_flags = VL_BACKUP_LOW
    mono.t = 30.0
    watch.poll()
    assert watch.low is False and recorded == []  # not due yet
    mono.t = 60.0
    watch.poll()
    assert watch.low is True and recorded == [{"flags": VL_BACKUP_LOW}]
    rtc.vl_flags = VL_BACKUP_EMPTY
    mono.t = 120.0
    watch.poll()
    assert watch.low is True and len(recorded) == 1
    again = BatteryWatch(rtc, mono, 60.0, recorded.append, JsonFile(tmp_path / "s.json"), LOW)  # restart, still low
    again.poll()
    assert len(recorded) == 1


def test_missing_rtc_or_no_flags_means_unknown(tmp_path: Path) -> None:
    recorded: list[dict] = []
    watch = BatteryWatch(LinuxRtc(str(tmp_path / "no-rtc")), ManualMono(0.0), 60.0, recorded.append, JsonFile(tmp_path / "s.json"),
                         LOW)
    watch.poll()
    assert watch.low is None and recorded == []
    watch = BatteryWatch(SimRtc(vl_flags=None), ManualMono(0.0), 60.0, recorded.append, JsonFile(tmp_path / "s.json"), LOW)
    watch.poll()
    assert watch.low is None
    key = screen_key(ITEMS_BY_ID["battery"], DisplayData(battery_known=False, battery_low=True), "en", False)
    assert key[-1] == ("--", "unknown", "غير معروف")
    assert key[3][1] is False  # no low-battery symbol in the header while unknown
