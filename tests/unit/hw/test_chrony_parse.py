"""chronyc's CSV output as hw.chrony reads it (lines as chrony 4.3 prints them)."""

from __future__ import annotations

import datetime as dt

import pytest

from hw.chrony import Chronyc, ChronyError, parse_sources, parse_tracking

TRACKING = ("7F000001,127.0.0.1,2,1796426263.649422804,0.000000015,-3600.000000000,3481.758789062,"
            "-0.065,-0.004,0.516,0.000162345,0.000003392,0.1,Normal\n")
UNSYNCED = "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised\n"
SOURCES = ("^,*,127.0.0.1,1,-4,377,0,-0.000001654,-0.000001770,0.000039268\n"
           "^,?,192.0.2.1,0,6,0,-,0.000000000,0.000000000,0.000000000\n")


def test_tracking_fields_and_sign():
    t = parse_tracking(TRACKING)
    assert t.ref_id == 0x7F000001 and t.reference == "127.0.0.1" and t.stratum == 2
    assert t.ref_time_utc == dt.datetime.fromtimestamp(1796426263.649422804, tz=dt.UTC)
    assert t.last_offset_s == -3600.0  # the server ran an hour ahead: the clock is slow
    assert t.leap == "normal" and t.synchronised


def test_tracking_not_synchronised():
    t = parse_tracking(UNSYNCED)
    assert not t.synchronised and t.ref_time_utc is None and t.leap == "unsynchronised"


def test_sources():
    sources = parse_sources(SOURCES)
    assert [s.name for s in sources] == ["127.0.0.1", "192.0.2.1"]
    assert sources[0].selected and sources[0].reach == 0o377 and sources[0].poll_log2_s == -4
    assert not sources[1].selected and sources[1].reach == 0 and sources[1].last_rx_s is None


@pytest.mark.parametrize("text", ["", "506 Cannot talk to daemon\n", "a,b,c\n", TRACKING.replace("2,", "x,", 1)])
def test_garbage_is_a_chrony_error(text):
    with pytest.raises(ChronyError):
        parse_tracking(text)


def test_argv_is_numeric_csv_on_the_monitoring_port_by_default():
    assert Chronyc().argv(["tracking"]) == ["chronyc", "-c", "-n", "-h", "127.0.0.1", "tracking"]
    assert Chronyc("/run/chrony/chronyd.sock").argv(["sources"])[-3:] == ["-h", "/run/chrony/chronyd.sock", "sources"]
