"""The prepayment feature on a whole simulated meter (tests/simmeter.SimMeter): credit runs down
under load, low-credit warning, disconnect at zero outside friendly periods only, reconnect after a
token, emergency credit, mode switch, currency accounts, replay after restart (also after a crash
between token and checkpoint), key change, the API routes and the vend tool."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from meterd.api.server import ApiError
from meterd.api.views import credit_json
from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.calendar import (
    ActivityCalendar,
    SpecialDay,
    SpecialDaysTable,
    YearDate,
    single_rate_calendar,
)
from meterd.core.credit import CreditView
from meterd.core.energy import Quantity
from meterd.core.reading import Channel
from meterd.core.sts.keys import TEST_VENDING_KEY_DKGA04, dkga04
from meterd.core.sts.outcome import TokenOutcome
from meterd.core.sts.vending import credit_token, currency_token, key_change_tokens, max_power_limit_token
from meterd.services.load_control import LoadControl
from meterd.services.payment import FriendlyPeriods, PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.services.supervision import Supervision
from meterd.store.sts_store import load_key_register
from meterd.tools import vend
from tests import simmeter
from tests.simmeter import SimMeter

UTC = dt.UTC
WH_PER_S_AT_DEFAULT_LOAD = 3 * 230 * 5 / 3600  # the sim's default load: 3 x 230 V x 5 A, pf 1


class FakeLoadControl:
    """Records what the payment feature asks of the disconnector."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.max_power_w: float | None = None

    def credit_disconnect(self) -> None:
        self.calls.append("disconnect")

    def credit_reconnect(self) -> None:
        self.calls.append("reconnect")

    def set_max_power_w(self, limit_w: float | None) -> None:
        self.max_power_w = limit_w


class FakeEvents:
    def __init__(self) -> None:
        self.codes: list[int] = []

    def record(self, code: int, utc: dt.datetime, detail: Any = None) -> None:
        self.codes.append(code)


def build(state_dir: Path, **payment: Any) -> SimMeter:
    """A SimMeter whose config carries ``[payment]`` with ``payment`` fields."""
    original = simmeter.sim_config

    def with_payment(sd: Path, **sections: Any) -> Any:
        cfg = original(sd, **sections)
        return dataclasses.replace(cfg, features={**cfg.features, "payment": PaymentSection(**payment)})

    with mock.patch.object(simmeter, "sim_config", with_payment):
        return SimMeter(state_dir)


def never_friendly(**extra: Any) -> dict[str, Any]:
    return {"mode": "prepaid", "friendly_hours": "", "friendly_weekdays": (), "friendly_holidays": False, **extra}


def cipher(krn: int = 1) -> Any:
    return sts_cipher_factory(7, sim_key_register(PaymentSection(), krn).key)


def with_fakes(meter: SimMeter) -> tuple[FakeLoadControl, FakeEvents]:
    """Recorders seen by the payment feature only (other features keep the real services)."""
    lc, ev = FakeLoadControl(), FakeEvents()
    service = meter.service(PaymentService)
    service.links = dataclasses.replace(service.links, load_control=lc, events=ev)
    return lc, ev


def view(meter: SimMeter) -> CreditView:
    return meter.service(PaymentService).credit_view()  # type: ignore[no-any-return]


def submit(meter: SimMeter, token: str, source: str = "test") -> TokenOutcome:
    return meter.service(PaymentService).submit_token(token, source)  # type: ignore[no-any-return]


def import_mwh(meter: SimMeter) -> int:
    return int(meter.meter.registers.snapshot()[(Quantity.ACTIVE_IMPORT, Channel.TOTAL)])


@pytest.fixture
def prepaid(tmp_path: Path):  # type: ignore[no-untyped-def]
    m = build(tmp_path, **never_friendly(low_credit_threshold=50, emergency_amount=30, emergency_threshold=10))
    yield m
    m.close()


def test_sim_meter_is_commissioned_with_the_public_test_key(tmp_path: Path) -> None:
    m = build(tmp_path)
    try:
        keys = tmp_path / "sts-keys.toml"
        assert os.stat(keys).st_mode & 0o777 == 0o600
        # the DKGA04/EA07 vector of tests/data/sts-vectors.json (STS 531-1-07 test data)
        assert load_key_register(keys).key.hex() == "87f3ecbb2e46b48f"
        assert view(m).key is not None and view(m).key["krn"] == 1
        assert "key_hex" not in json.dumps(credit_json(view(m)))
        assert view(m).mode == "postpaid"  # the default: never disconnects until switched
    finally:
        m.close()


def test_credit_runs_down_warns_disconnects_at_zero_and_reconnects_after_a_token(prepaid: SimMeter) -> None:
    lc, ev = with_fakes(prepaid)
    assert submit(prepaid, credit_token(cipher(), 100, 1)).accepted  # 0.1 kWh = 100 Wh
    start_mwh = import_mwh(prepaid)
    prepaid.run(40)
    v = view(prepaid)
    used = import_mwh(prepaid) - start_mwh
    assert prepaid.service(PaymentService).account.balance_units == 100_000 - used  # exact, in mWh
    assert used == pytest.approx(40 * WH_PER_S_AT_DEFAULT_LOAD * 1000, rel=0.02)
    assert not v.low_credit and lc.calls == []
    prepaid.run(20)  # 100 Wh - 60 s x 0.958 Wh/s < 50 Wh threshold
    assert view(prepaid).low_credit
    assert lc.calls == []
    prepaid.run(50)  # past zero
    v = view(prepaid)
    assert v.credit <= 0 and v.relay == "disconnect" and lc.calls == ["disconnect"]
    prepaid.run(10)
    assert lc.calls == ["disconnect"]  # asked once
    result = submit(prepaid, credit_token(cipher(), 101, 10))  # 1 kWh
    assert result.result == "Accept" and result.credit_after.relay == "connect"
    assert lc.calls == ["disconnect", "reconnect"]
    assert ev.codes.count(240) == 2  # TOKEN_ACCEPTED, both tokens


def test_no_disconnect_inside_friendly_hours_then_disconnect_after(tmp_path: Path) -> None:
    # sim time starts 2026-01-01 00:00 UTC (a Thursday) = 01:00 local time (the revenue calendar's
    # default zone is CET, UTC+1 in winter); friendly 01:00-01:30 local only
    m = build(tmp_path, mode="prepaid", friendly_hours="01:00-01:30", friendly_weekdays=(), friendly_holidays=False)
    try:
        lc, _ = with_fakes(m)
        m.run(600, cycle_s=10)  # no credit at all, 10 min into the friendly period
        v = view(m)
        assert v.credit < 0 and v.friendly and v.relay == "connect" and lc.calls == []
        m.run(1300, cycle_s=10)  # 00:31:40: friendly period over
        assert view(m).relay == "disconnect" and lc.calls == ["disconnect"]
    finally:
        m.close()


def test_weekends_and_calendar_holidays_are_friendly() -> None:
    section = PaymentSection(friendly_hours="22:00-06:00", friendly_weekdays=(5, 6))

    class Revenue:
        calendar = ActivityCalendar(single_rate_calendar(), SpecialDaysTable(
            (SpecialDay(1, YearDate(12, 25), 1),)))

        @staticmethod
        def local_time(utc: dt.datetime) -> Any:
            return mock.Mock(wall=(utc + dt.timedelta(hours=1)).replace(tzinfo=None))  # UTC+1

    without = FriendlyPeriods(section.policy(), None)
    with_calendar = FriendlyPeriods(section.policy(), Revenue())  # type: ignore[arg-type]
    wednesday_noon = dt.datetime(2025, 12, 24, 12, 0, tzinfo=UTC)
    assert not without(wednesday_noon) and not with_calendar(wednesday_noon)
    assert without(dt.datetime(2025, 12, 27, 12, 0, tzinfo=UTC))  # Saturday
    assert without(dt.datetime(2025, 12, 24, 23, 0, tzinfo=UTC)) and without(dt.datetime(2025, 12, 24, 5, 59, tzinfo=UTC))
    assert not without(dt.datetime(2025, 12, 24, 6, 0, tzinfo=UTC))
    christmas = dt.datetime(2025, 12, 25, 12, 0, tzinfo=UTC)
    assert with_calendar(christmas) and not without(christmas)
    # local time from the revenue feature: 05:30 UTC is 06:30 local, outside 22:00-06:00
    assert not with_calendar(dt.datetime(2025, 12, 24, 5, 30, tzinfo=UTC))


def test_emergency_credit_and_mode_switch(prepaid: SimMeter) -> None:
    lc, _ = with_fakes(prepaid)
    prepaid.run(5)
    assert lc.calls == ["disconnect"]
    granted = prepaid.service(PaymentService).request_emergency()
    assert granted and view(prepaid).emergency.active and lc.calls[-1] == "reconnect"
    assert not prepaid.service(PaymentService).request_emergency()  # once until repaid
    prepaid.run(60)  # 30 Wh of emergency credit lasts about 31 s
    assert lc.calls[-1] == "disconnect"
    v = prepaid.service(PaymentService).set_mode("postpaid")
    assert v.mode == "postpaid" and v.relay == "connect" and lc.calls[-1] == "reconnect"
    prepaid.run(30)
    assert lc.calls[-1] == "reconnect" and view(prepaid).credit < 0
    # a token first repays the emergency credit
    submit(prepaid, credit_token(cipher(), 200, 10))
    assert view(prepaid).emergency.owed == 0


def test_currency_account_charges_the_rate_price_exactly(tmp_path: Path) -> None:
    m = build(tmp_path, **never_friendly(unit="currency", prices_minor_per_kwh=(2537, 1200), minor_digits=2,
                                        low_credit_threshold=100))
    try:
        with_fakes(m)
        r = submit(m, currency_token(cipher(), 300, 500_000))  # 5.00000 currency units = 500 cents
        account = m.service(PaymentService).account
        credited = account.balance_units  # the token value, rounded up to what the field can carry
        assert r.accepted and view(m).credit == 500 and 500 * 10**6 <= credited < 501 * 10**6
        before = import_mwh(m)
        m.run(60)
        used = import_mwh(m) - before
        assert account.balance_units == credited - used * 2537  # micro-cents, exact at rate 1
        assert submit(m, credit_token(cipher(), 301, 10)).result == "FunctionError"  # kWh token, money meter
    finally:
        m.close()


def test_replayed_token_refused_after_restart_and_credit_kept(tmp_path: Path) -> None:
    m = build(tmp_path, **never_friendly())
    token = credit_token(cipher(), 400, 50)  # 5 kWh
    assert submit(m, token).accepted
    m.run(30)
    credit = view(m).credit
    m.close()
    again = build(tmp_path, **never_friendly())
    try:
        assert view(again).credit == credit
        assert submit(again, token).result == "UsedError"
        assert view(again).credit == credit
    finally:
        again.close()


def test_token_credit_survives_a_crash_before_the_energy_checkpoint(tmp_path: Path) -> None:
    m = build(tmp_path, **never_friendly())
    m.run(20)
    m.meter.persist()  # the last checkpoint before the token
    service = m.service(PaymentService)
    with mock.patch.object(service, "_persist", lambda: None):  # the crash comes before any checkpoint
        assert submit(m, credit_token(cipher(), 500, 20)).accepted
    for closer in reversed(m.daemon.closers):  # release files and pins, but no final checkpoint:
        closer()                               # what kill -9 leaves behind
    m.hardware.close()
    m.daemon.store.close()
    again = build(tmp_path, **never_friendly())
    try:
        v = view(again)
        assert v.token_seq == 1 and 1900 < v.credit <= 2000
        assert submit(again, credit_token(cipher(), 500, 20)).result == "UsedError"
        assert view(again).credit == v.credit
    finally:
        again.close()


def test_key_change_moves_the_meter_to_the_new_key(prepaid: SimMeter) -> None:
    new_key = dkga04(TEST_VENDING_KEY_DKGA04, PaymentSection().key_inputs(2))
    kct = key_change_tokens(cipher(1), 7, new_key, krn=2, kt=2, ti=1)
    assert submit(prepaid, kct[3]).result == "1stKCT"
    done = submit(prepaid, kct[4])
    assert done.result == "Accept" and done.credit_after.key is not None and done.credit_after.key["krn"] == 2
    assert submit(prepaid, credit_token(cipher(1), 600, 10)).result == "CRCError"  # old key refused
    assert submit(prepaid, credit_token(cipher(2), 601, 10)).result == "Accept"
    assert view(prepaid).credit == 1000


def test_max_power_token_goes_to_load_control(prepaid: SimMeter) -> None:
    lc, _ = with_fakes(prepaid)
    assert submit(prepaid, max_power_limit_token(cipher(), 700, 4000)).result == "Accept"
    assert lc.max_power_w == 4000


def test_api_routes(prepaid: SimMeter) -> None:
    routes = prepaid.daemon.api.routes
    code, body = routes[("POST", "/token")]({"token": credit_token(cipher(), 800, 25)})
    assert code == 200 and body["result"] == "Accept" and body["credit"]["credit"] == 2500
    code, body = routes[("POST", "/token")]({"token": "1234"})
    assert code == 200 and body["result"] == "FormatError" and not body["accepted"] and body["display"]
    with pytest.raises(ApiError):
        routes[("POST", "/token")]({})
    assert routes[("GET", "/credit")]({})[1]["credit"] == 2500
    assert routes[("POST", "/credit/mode")]({"mode": "postpaid"})[1]["mode"] == "postpaid"
    with pytest.raises(ApiError):
        routes[("POST", "/credit/mode")]({"mode": "free"})
    assert routes[("POST", "/credit/emergency")]({})[1]["granted"] is False  # postpaid: none


def test_vend_tool_makes_tokens_the_sim_meter_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = simmeter.sim_config_file(tmp_path, state_dir=f'"{tmp_path / "state"}"')
    m = build(tmp_path / "state", **never_friendly())
    try:
        now = dt.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        assert vend.main(["credit", "--kwh", "2.5", "--config", str(config)], now_utc=now) == 0
        assert vend.main(["credit", "--kwh", "1", "--config", str(config)], now_utc=now) == 0  # same minute
        first, second = capsys.readouterr().out.split()
        assert submit(m, first).result == "Accept" and submit(m, second).result == "Accept"
        assert view(m).credit == 3500
        assert vend.main(["key-change", "--new-krn", "3", "--config", str(config)], now_utc=now) == 0
        for token in capsys.readouterr().out.split():
            last = submit(m, token)
        assert last.result == "Accept" and view(m).key is not None and view(m).key["krn"] == 3
        assert vend.main(["credit", "--kwh", "1", "--krn", "3", "--json", "--config", str(config)], now_utc=now) == 0
        assert submit(m, json.loads(capsys.readouterr().out)["tokens"][0]).result == "Accept"
        assert vend.main(["credit", "--kwh", "-1", "--config", str(config)], now_utc=now) == 1
    finally:
        m.close()


def test_real_relay_opens_at_zero_credit_and_closes_after_a_token(tmp_path: Path) -> None:
    m = build(tmp_path, **never_friendly())
    try:
        lc = m.daemon.registry.find(LoadControl)
        if lc is None:
            pytest.skip("the load_control feature is not in this build")
        m.run(5)
        assert view(m).relay == "disconnect" and not lc.status().output_state
        before = import_mwh(m)
        m.run(10)
        assert import_mwh(m) == before  # the simulated contact cut the load
        assert submit(m, credit_token(cipher(), 900, 10)).result == "Accept"
        m.run(10)
        assert lc.status().output_state and import_mwh(m) > before
    finally:
        m.close()


def test_clear_tamper_token_clears_the_latched_tamper_alarms(prepaid) -> None:  # type: ignore[no-untyped-def]
    from meterd.core.alarms import Alarm
    from meterd.core.sts.vending import management_token

    supervision = prepaid.service(Supervision)
    prepaid.hardware.sim.signal_handlers()["magnetic_field"](True)
    prepaid.run(30)
    prepaid.hardware.sim.signal_handlers()["magnetic_field"](False)
    prepaid.run(30)
    assert supervision.alarm_register() & Alarm.MAGNETIC_FIELD.mask
    assert submit(prepaid, management_token(cipher(), 5, 300, 0)).accepted  # ClearTamper
    assert not supervision.alarm_register() & Alarm.MAGNETIC_FIELD.mask
    rate = submit(prepaid, management_token(cipher(), 2, 301, 7))  # SetTariffRate: accepted, no effect
    assert rate.accepted
