"""The RTC battery watch of the meter LCD: flags read on a period, one event per occurrence, unknown flags."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from meterd.runtime.rtc import VL_BACKUP_EMPTY, VL_BACKUP_LOW, VL_DATA_INVALID, LinuxRtc, SimRtc
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


def test_data_invalid_flags_the_clock_once_until_the_rtc_is_written_or_reads_valid(tmp_path: Path) -> None:
    rtc, mono = SimRtc(vl_flags=0), ManualMono(0.0)
    low: list[dict] = []
    invalid: list[dict] = []
    watch = BatteryWatch(rtc, mono, 60.0, low.append, JsonFile(tmp_path / "s.json"), LOW, VL_DATA_INVALID,
                         invalid.append)
    watch.poll()
    assert watch.clock_invalid is False
    rtc.vl_flags = VL_BACKUP_EMPTY | VL_DATA_INVALID
    mono.t = 60.0
    watch.poll()
    assert watch.clock_invalid is True and invalid == [{"flags": VL_BACKUP_EMPTY | VL_DATA_INVALID}]
    mono.t = 120.0
    watch.poll()
    assert watch.clock_invalid is True and len(invalid) == 1  # one occurrence, one event
    rtc.write(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
    watch.clock_set()  # a clock set writes the RTC: DATA_INVALID is gone
    assert watch.clock_invalid is False
    watch.poll()  # read at once, whatever the period
    assert watch.clock_invalid is False and len(invalid) == 1
    rtc.vl_flags = (rtc.vl_flags or 0) | VL_DATA_INVALID  # lost again: a second occurrence
    mono.t = 240.0
    watch.poll()
    assert watch.clock_invalid is True and len(invalid) == 2
    rtc.vl_flags = 0  # the RTC reads valid again
    mono.t = 300.0
    watch.poll()
    assert watch.clock_invalid is False
