"""Trusted time in the simulated meter: NTP jumps, a lost RTC, a month without sync.

The simulated NTP source (``[time] source = "sim"``) is driven through the public rig faults
(``ntp_jump``, ``ntp_lost``, ``rtc_battery_lost``); the meter finds what happened through its
real code: the step detector, the time service, the RTC watch, the legal-time rules of the
revenue service. Stepped with the manual clock (``SimMeter.run``), no real sleeps.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.objects import GXDLMSClock

from meterd.core import event_codes as ec
from meterd.core.energy import Quantity
from meterd.core.events import EventRecorder
from meterd.core.profile import ProfileStatus
from meterd.core.reading import Channel
from meterd.core.time_trust import CLOCK_STATUS_DOUBTFUL, CLOCK_STATUS_INVALID, TrustState
from meterd.cosem import axdr
from meterd.cosem.profile import ProfileReader
from meterd.services.revenue import RevenueService
from meterd.services.time_service import TimeService
from tests.dlms_fakes import make_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

U = dt.UTC
AI = Quantity.ACTIVE_IMPORT
# Friday 2 January 2026, 06:40 CET: rate 1 until the 07:00 CET (06:00 UTC) switch to rate 2
START = dt.datetime(2026, 1, 2, 5, 40, tzinfo=U)


def _sim_at(tmp_path: Path, start: dt.datetime, **time: Any) -> SimMeter:
    """A simulated meter from ``start`` (UTC) with ``[time]`` fields replaced."""
    return SimMeter(tmp_path, sim={"current_a": 0.2, "start_utc": start.isoformat()}, display={"kind": "dummy"},
                    revenue={"max_cycle_gap_s": 2000.0}, **({"time": time} if time else {}))


def _run_until(m: SimMeter, utc: dt.datetime, cycle_s: float = 60.0) -> None:
    while m.clock.utc() < utc:
        m.daemon.step(cycle_s)


def _events(m: SimMeter, *names: str) -> list[Any]:
    codes = {ec.code(n) for n in names}
    return [e for e in reversed(m.service(EventRecorder).recent(10_000)) if e.code in codes]


def _lp_column(svc: RevenueService, obis: str) -> int:
    return [c.obis for c in svc.load_profile.columns].index(obis) - 1


def _profile_energy(svc: RevenueService) -> int:
    i = _lp_column(svc, "1.0.1.29.0.255")
    return sum(int(r.values[i]) for r in svc.load_profile.rows_by_entry(1, 0))


def _scenario(m: SimMeter, step: Any) -> None:
    """+1 h at 05:52 UTC (over the 06:00 UTC tariff switch and four profile boundaries), then −1 h
    at 06:58 (back over them), then on to 07:30: ``step(offset_s)`` makes each change."""
    _run_until(m, dt.datetime(2026, 1, 2, 5, 52, tzinfo=U))
    step(3600)
    _run_until(m, dt.datetime(2026, 1, 2, 6, 58, tzinfo=U))
    step(-3600)
    _run_until(m, dt.datetime(2026, 1, 2, 7, 30, tzinfo=U))


def test_ntp_jump_forward_and_back_follows_the_clock_set_rules(tmp_path: Path) -> None:
    ntp = _sim_at(tmp_path / "ntp", START)
    dlms = _sim_at(tmp_path / "dlms", START)
    try:
        faults: list[str] = []

        def ntp_step(offset: float) -> None:
            if offset > 0:
                ntp.world.inject({"kind": "ntp_jump", "offset_s": offset})
                faults.append("ntp_jump")
            else:
                ntp.world.clear("ntp_jump")  # the server comes right again: it jumps back
            ntp.daemon.step(60)  # the simulated chronyd polls after the cycle; the meter sees it next
            ntp.daemon.step(60)

        def dlms_step(offset: float) -> None:
            dlms.daemon.step(60)
            dlms.meter.set_clock(dlms.clock.utc() + dt.timedelta(seconds=offset), "dlms:management")
            dlms.daemon.step(60)

        _scenario(ntp, ntp_step)
        _scenario(dlms, dlms_step)
        svc_n, svc_d = ntp.service(RevenueService), dlms.service(RevenueService)
        time_n = ntp.service(TimeService)
        assert time_n.steps == 2 and time_n.trust.state is TrustState.SYNCHRONISED

        # the same rows (times, energy, status) as the DLMS clock writes produce: the legal-time rules
        rows_n, rows_d = svc_n.load_profile.rows_by_entry(1, 0), svc_d.load_profile.rows_by_entry(1, 0)
        assert [r.utc for r in rows_n] == [r.utc for r in rows_d]
        assert [r.values for r in rows_n] == [r.values for r in rows_d]
        times = [r.utc for r in rows_n]
        assert times == sorted(set(times)), "a profile row doubled"
        s = _lp_column(svc_n, "0.0.96.10.1.255")
        assert any(int(r.values[s]) & ProfileStatus.CAD for r in rows_n)
        assert all(not int(r.values[s]) & ProfileStatus.CIV for r in rows_n)

        # no energy lost or doubled: the profile rows and the open period hold every Wh once,
        # the rate registers add up to the total, and both rates got the energy of their time
        reg = ntp.meter.registers.snapshot()
        total = svc_n.tariff.total(AI)
        assert sum(svc_n.tariff.get(AI, Channel.TOTAL, r) for r in (1, 2, 3)) == total
        assert svc_n.tariff.get(AI, Channel.TOTAL, 1) > 0 and svc_n.tariff.get(AI, Channel.TOTAL, 2) > 0
        assert [svc_n.tariff.get(AI, Channel.TOTAL, r) for r in (1, 2, 3)] == \
            [svc_d.tariff.get(AI, Channel.TOTAL, r) for r in (1, 2, 3)]
        assert _profile_energy(svc_n) <= total
        last_capture = rows_n[-1].utc
        assert last_capture == dt.datetime(2026, 1, 2, 7, 30, tzinfo=U)
        assert _profile_energy(svc_n) == total == reg[(AI, Channel.TOTAL)]

        # each step is an event pair with old and new time and the source
        pairs = _events(ntp, "CLOCK_ADJUSTED_OLD", "CLOCK_ADJUSTED_NEW")
        assert [(e.definition.name, e.detail["source"]) for e in pairs] == [
            ("CLOCK_ADJUSTED_OLD", "ntp"), ("CLOCK_ADJUSTED_NEW", "ntp")] * 2
        assert (pairs[1].utc - pairs[0].utc).total_seconds() == pytest.approx(3600)
        assert (pairs[3].utc - pairs[2].utc).total_seconds() == pytest.approx(-3600)
        assert not _events(ntp, "TIME_UNTRUSTED")
    finally:
        ntp.close()
        dlms.close()


@pytest.mark.parametrize("days, limit_h", [
    (3, 12.0),
    pytest.param(30, 168.0, marks=pytest.mark.slow),
])
def test_days_without_sync_doubtful_after_the_limit_then_trusted_again(tmp_path: Path, days: int,
                                                                       limit_h: float) -> None:
    m = _sim_at(tmp_path, START, max_unsynced_h=limit_h)
    try:
        svc, time_svc = m.service(RevenueService), m.service(TimeService)
        m.run(3600, 900)
        m.world.inject({"kind": "ntp_lost"})
        m.run(days * 86400, 900)
        assert time_svc.trust.state is TrustState.FREE_RUNNING
        assert "clock_doubtful" in m.meter.status_flags()
        assert m.meter.snapshot().status_word & (1 << 13)
        untrusted = _events(m, "TIME_UNTRUSTED")
        assert len(untrusted) == 1
        assert untrusted[0].detail["state"] == "free_running"
        limit = dt.datetime.fromisoformat(str(untrusted[0].detail["last_sync"])) + dt.timedelta(hours=limit_h)
        assert limit < untrusted[0].utc <= limit + dt.timedelta(seconds=900)

        # the profile periods after the limit carry CIV, their capture times "doubtful"
        s = _lp_column(svc, "0.0.96.10.1.255")
        rows = svc.load_profile.rows_by_entry(1, 0)
        before = [r for r in rows if r.utc <= limit]
        after = [r for r in rows if r.utc > limit + dt.timedelta(seconds=900)]
        assert before and after and all(int(r.values[s]) & ProfileStatus.CIV for r in after)
        assert all(r.clock_status == CLOCK_STATUS_DOUBTFUL for r in after)
        assert all(r.clock_status == 0 and not int(r.values[s]) & ProfileStatus.CIV for r in before)
        assert svc.daily_profile.rows_by_entry(1, 0)[-1].clock_status == CLOCK_STATUS_DOUBTFUL
        billed = [(b.utc, b.clock_status) for b in svc.billing.snapshots if b.utc > START]
        assert all(status == (CLOCK_STATUS_DOUBTFUL if utc > limit else 0) for utc, status in billed)
        assert billed or days < 30  # the month's end (1 February) is billed in the long form
        # over DLMS: the status octet (the 12th) of the newest row's capture time, clock column only
        n = len(rows)
        raw = ProfileReader(svc.load_profile).buffer(2, [n, n, 1, 1])
        assert raw[:5] == bytes((axdr.ARRAY, 1, axdr.STRUCTURE, 1, axdr.OCTET_STRING))
        assert raw[6 + 11] == CLOCK_STATUS_DOUBTFUL

        m.world.clear("ntp_lost")
        m.run(1800, 900)
        assert time_svc.trust.state is TrustState.SYNCHRONISED
        assert "clock_doubtful" not in m.meter.status_flags()
        trusted = _events(m, "TIME_TRUSTED")
        assert len(trusted) == 1 and trusted[0].detail["previous"] == "free_running"
        m.run(1800, 900)
        assert svc.load_profile.rows_by_entry(1, 0)[-1].clock_status == 0
    finally:
        m.close()


def _api(m: SimMeter, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    status, answer = asyncio.run(m.daemon.api.dispatch(method, path, body or {}))
    assert status == 200, answer
    return answer


def _clock_status(m: SimMeter) -> tuple[int, int]:
    """The clock 0-0:1.0.0.255 read by gurux: the status octet of attribute 2 and attribute 4."""
    with Client(m, 17) as gs:
        clock = GXDLMSClock()
        gs.read(clock, 2)
        gs.read(clock, 4)
        return int(clock.time.status), int(clock.status)


def test_rtc_battery_lost_is_invalid_until_a_dlms_write(tmp_path: Path) -> None:
    make_keys(tmp_path / "dlms-keys.toml").save()
    m = _sim_at(tmp_path, START)
    try:
        svc, time_svc = m.service(RevenueService), m.service(TimeService)
        _api(m, "POST", "/sim/fault", {"kind": "ntp_lost"})  # the public rig-fault interface
        m.run(120)
        assert _clock_status(m) == (0, 0)
        _api(m, "POST", "/sim/fault", {"kind": "rtc_battery_lost", "when": "now"})
        m.run(1800, 60)
        assert time_svc.trust.state is TrustState.INVALID
        assert time_svc.status_bits() == CLOCK_STATUS_INVALID
        assert "clock_invalid" in m.meter.status_flags()
        assert _clock_status(m) == (CLOCK_STATUS_INVALID, CLOCK_STATUS_INVALID)  # winter: no DST bit
        view = _api(m, "GET", "/time")
        assert view["state"] == "invalid" and view["clock_status"] == 1 and view["sync"]["synchronised"]
        assert _api(m, "GET", "/status")["time"]["state"] == "invalid"
        assert [e.detail["state"] for e in _events(m, "TIME_UNTRUSTED")] == ["invalid"]
        assert _events(m, "CLOCK_INVALID")
        # events recorded meanwhile carry "invalid value" in their capture time
        _api(m, "POST", "/sim/fault", {"kind": "terminal_cover_open"})
        m.run(120)
        cover = _events(m, "TERMINAL_COVER_REMOVED")[-1]
        assert cover.detail["clock_status"] == CLOCK_STATUS_INVALID
        rows = svc.load_profile.rows_by_entry(1, 0)
        assert rows[-1].clock_status == CLOCK_STATUS_INVALID
        assert int(rows[-1].values[_lp_column(svc, "0.0.96.10.1.255")]) & ProfileStatus.TIME_INVALID

        # the head end writes the clock (management association, HLS-GMAC)
        with Client(m, 1) as gs:
            clock = GXDLMSClock()
            clock.time = GXDateTime(m.clock.utc())
            gs.write(clock, 2)
        m.run(60)
        assert time_svc.trust.state is TrustState.SYNCHRONISED
        assert time_svc.trust.record.last_sync_source.startswith("dlms:")
        assert "clock_invalid" not in m.meter.status_flags()
        assert _clock_status(m) == (0, 0)
        assert [e.detail["state"] for e in _events(m, "TIME_TRUSTED")] == ["synchronised"]
        assert [e.detail["source"] for e in _events(m, "CLOCK_ADJUSTED_NEW")][-1].startswith("dlms:")
    finally:
        m.close()


def test_state_survives_a_restart_without_repeating_events(tmp_path: Path) -> None:
    m = _sim_at(tmp_path, START, max_unsynced_h=1.0)
    m.world.inject({"kind": "ntp_lost"})
    m.run(2 * 3600, 60)
    assert m.service(TimeService).trust.state is TrustState.FREE_RUNNING
    m.close()
    again = _sim_at(tmp_path, START, sim_ntp=False, max_unsynced_h=1.0)
    try:
        again.run(120)
        assert again.service(TimeService).trust.state is TrustState.FREE_RUNNING
        assert len(_events(again, "TIME_UNTRUSTED")) == 1
    finally:
        again.close()


def test_a_new_meter_without_a_time_source_is_never_synchronised(tmp_path: Path) -> None:
    m = _sim_at(tmp_path, START, sim_ntp=False)
    try:
        m.run(60)
        time_svc = m.service(TimeService)
        assert time_svc.trust.state is TrustState.NEVER_SYNCHRONISED
        assert "clock_doubtful" in m.meter.status_flags()
        assert [e.detail["state"] for e in _events(m, "TIME_UNTRUSTED")] == ["never_synchronised"]
    finally:
        m.close()
