"""meterctl's tables: energy and credit decimals, no negative zero, the events table."""

from __future__ import annotations

from meterd.api.views import text_table
from meterd.app.meterctl import events_table, fixed, readable_numbers


def test_energy_and_credit_keep_three_decimals_and_no_negative_zero() -> None:
    assert fixed(14.44, 3) == "14.440" and fixed(14.426, 3) == "14.426"
    assert fixed(-0.0, 3) == "0.000" and fixed(-0.0004, 3) == "0.000" and fixed(-0.0005001, 3) == "-0.001"
    credit = {"credit": -0, "credit_kwh": -0.0, "emergency": {"amount_kwh": 2.0}, "rate": -0.0,
              "energy": {"active_import_wh": 1234.5, "reactive_q1_varh": 0.25}}
    rows = text_table(readable_numbers(credit)).splitlines()
    assert rows == [f"{key:25}{value}" for key, value in [
        ("credit", "0"), ("credit_kwh", "0.000"), ("emergency.amount_kwh", "2.000"), ("rate", "0"),
        ("energy.active_import_wh", "1234.500"), ("energy.reactive_q1_varh", "0.250")]]


def test_events_table_columns() -> None:
    events = [{"utc": "2026-01-01T00:00:49+00:00", "logs": ["token"], "code": 242, "name": "TOKEN_REJECTED_USED",
               "detail": {"result": "UsedError", "tid": 6797864}, "text": "Token rejected: already used"},
              {"utc": "2026-01-01T00:00:06+00:00", "logs": ["standard", "power_failure"], "code": 1,
               "name": "POWER_DOWN", "detail": {}, "text": "Power down"}]
    assert events_table(events).splitlines() == [
        "time (UTC)                 log                     code  name                 details",
        "2026-01-01T00:00:49+00:00  token                   242   TOKEN_REJECTED_USED  result=UsedError tid=6797864",
        "2026-01-01T00:00:06+00:00  standard,power_failure  1     POWER_DOWN           Power down",
    ]
    assert events_table([]) == "no events"
