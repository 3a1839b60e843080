"""meter-clock: DLMS clock writes reach the system clock and the RTC through the privileged helper."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import threading

import pytest

from meterd.runtime.clock_helper import ClockHelper, ClockHelperClient, serve_forever
from meterd.runtime.clocks import HostClock
from meterd.runtime.rtc import VL_DATA_INVALID, RtcError, SimRtc, pack_rtc_time, unpack_rtc_time

UTC = dt.UTC
T = dt.datetime(2026, 3, 29, 1, 59, 58, tzinfo=UTC)


def test_rtc_time_struct_round_trip():
    raw = pack_rtc_time(T)
    assert len(raw) == 36
    sec, minute, hour, mday, mon, year, wday, yday, isdst = struct.unpack("9i", raw)
    assert (sec, minute, hour, mday, mon, year, wday, yday, isdst) == (58, 59, 1, 29, 2, 126, 0, 87, 0)
    assert unpack_rtc_time(raw) == T
    with pytest.raises(RtcError):
        unpack_rtc_time(struct.pack("9i", 0, 0, 0, 31, 1, 126, 0, 0, 0))  # 31 February


def test_helper_sets_system_clock_and_rtc():
    stepped: list[dt.datetime] = []
    rtc = SimRtc(vl_flags=VL_DATA_INVALID)
    helper = ClockHelper(rtc, settime=stepped.append)
    answer = helper.handle({"set_utc": T.isoformat(), "source": "dlms:management"})
    assert answer["ok"] and stepped == [T] and rtc.time_utc == T and rtc.writes == 1
    assert helper.handle({"get": "rtc"}) == {"ok": True, "rtc": T.isoformat(), "flags": 0}


@pytest.mark.parametrize("request_", [
    {"set_utc": "2020-01-01T00:00:00+00:00"},       # before the build date
    {"set_utc": "2026-03-01T12:00:00"},             # no offset
    {"set_utc": "yesterday"},
    {"set_utc": T.isoformat(), "shell": "rm -rf /"},
    {"reboot": True},
])
def test_helper_refuses_bad_requests_and_changes_nothing(request_):
    stepped: list[dt.datetime] = []
    rtc = SimRtc()
    answer = ClockHelper(rtc, settime=stepped.append).handle(request_)
    assert answer["ok"] is False and answer["error"]
    assert stepped == [] and rtc.writes == 0


def test_invalid_rtc_is_reported():
    answer = ClockHelper(SimRtc(vl_flags=VL_DATA_INVALID)).handle({"get": "rtc"})
    assert answer["ok"] is False and answer["flags"] == VL_DATA_INVALID


def test_meterd_sets_the_clock_through_the_socket(tmp_path):
    stepped: list[dt.datetime] = []
    rtc = SimRtc()
    helper = ClockHelper(rtc, settime=stepped.append)
    path = tmp_path / "clock.sock"
    loop = asyncio.new_event_loop()
    loop.create_task(serve_forever(path, helper, group=None))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        client = ClockHelperClient(str(path))
        for _ in range(100):
            if path.exists():
                break
            threading.Event().wait(0.02)
        clock = HostClock(setter=lambda utc: client.set_utc(utc, "dlms:management"))
        clock.set_utc(T)
        assert stepped == [T] and rtc.time_utc == T
        with pytest.raises(OSError, match="refused"):
            client.set_utc(dt.datetime(2001, 1, 1, tzinfo=UTC))
        assert client.call({"get": "rtc"})["rtc"] == T.isoformat()
    finally:
        async def stop() -> None:
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
