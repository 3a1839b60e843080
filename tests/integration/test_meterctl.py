"""meterctl against a running meter: every command a user or the lab types."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.meterd_process import REPO, MeterdProcess


@pytest.fixture(scope="module")
def meter(tmp_path_factory):
    m = MeterdProcess(tmp_path_factory.mktemp("ctl"))
    yield m
    assert m.stop() == 0


def ctl(meter: MeterdProcess, *args: str, json_out: bool = True) -> subprocess.CompletedProcess[str]:
    fmt = ["--json"] if json_out else []
    return subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--socket", meter.socket, *fmt, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def text(meter: MeterdProcess, *args: str) -> str:
    out = ctl(meter, *args, json_out=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def ok(meter: MeterdProcess, *args: str) -> dict:
    out = ctl(meter, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_read_commands(meter):
    assert ok(meter, "status")["serial"] == meter.view["serial"]
    assert "credit" in json.dumps(ok(meter, "credit"))
    assert "relay" in json.dumps(ok(meter, "relay"))
    assert "rate" in json.dumps(ok(meter, "tariff"))
    events = ok(meter, "events", "--limit", "5")["events"]
    assert isinstance(events, list) and len(events) <= 5
    assert all({"utc", "code", "name", "logs"} <= set(e) for e in events)
    ok(meter, "pq")
    ok(meter, "ciu")


def test_a_vended_token_is_accepted_once(meter, tmp_path):
    vend = subprocess.run([sys.executable, "-m", "meterd.tools.vend", "credit", "--kwh", "5", "--config",
                           str(meter.config), "--ledger", str(tmp_path / "ledger.json"), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert vend.returncode == 0, vend.stderr
    token = json.loads(vend.stdout)["tokens"][0]
    first = ok(meter, "token", token)
    assert first["accepted"] is True
    again = ctl(meter, "token", token)
    assert again.returncode == 1 or json.loads(again.stdout)["accepted"] is False


def wait_output(meter: MeterdProcess, state: str) -> dict:
    """The relay's output state follows the command once the coil pulse has run and the next
    metering cycle has read the auxiliary contact; poll for it instead of racing the cycle."""
    deadline = time.monotonic() + 10
    while (relay := ok(meter, "relay"))["output_state"] != state:
        assert time.monotonic() < deadline, f"relay output did not become {state}"
        time.sleep(0.1)
    return relay


def test_control_commands(meter):
    answer = ok(meter, "relay", "disconnect")
    assert answer["accepted"] is True and answer["after"] == "ready_for_reconnection"
    relay = wait_output(meter, "disconnected")
    assert relay["control_state"] == "ready_for_reconnection"
    ok(meter, "relay", "reconnect")  # the coil pulse waits for the relay's minimum interval
    assert wait_output(meter, "connected")["control_state"] == "connected"
    events = ok(meter, "events", "--log", "disconnector", "--limit", "10")["events"]
    names = [e["name"] for e in events]
    assert names[:2] == ["MANUAL_CONNECTION", "MANUAL_DISCONNECTION"], names  # newest first
    assert all(e["logs"] == ["disconnector"] for e in events)
    human = text(meter, "events", "--log", "disconnector", "--limit", "10")
    assert "name=MANUAL_DISCONNECTION" in human and "events[0]" in human
    ok(meter, "display", "button", "next")
    ok(meter, "alarms-clear")
    ok(meter, "credit", "mode", "postpaid")


def test_usage_errors_exit_2(meter):
    assert ctl(meter, "credit", "mode", "free").returncode == 2
    assert ctl(meter, "relay", "mode").returncode == 2


def test_human_status_shows_readable_rows(meter):
    out = text(meter, "status")
    assert out.startswith(f"Meter {meter.view['serial']}")
    lines = out.splitlines()
    for heading in ("Relay", "Credit", "Links"):
        assert heading in lines, out
    assert re.search(r"(?m)^Tamper: (none|[a-z_, ]+)$", out), out
    assert re.search(r"(?m)^  control_state +(connected|disconnected|ready_for_reconnection)$", out), out
    assert re.search(r"(?m)^  limiter\.state +\w+$", out), out
    assert re.search(r"(?m)^  mode +(prepaid|postpaid)$", out), out
    assert re.search(r"(?m)^  dlms_tcp +127\.0\.0\.1:\d+ ", out), out
    assert re.search(r"(?m)^  relay_fault +(yes|no)$", out), out
    for python_repr in ("{'", "['", "': ", "None", "True", "False"):
        assert python_repr not in out, f"{python_repr!r} in {out}"


def test_human_answers_are_rows_and_json_is_unchanged(meter):
    relay = text(meter, "relay")
    assert re.search(r"(?m)^control_mode +\d$", relay), relay
    assert "{'" not in relay and "None" not in relay
    view = ok(meter, "status")
    assert isinstance(view["relay"], dict) and isinstance(view["tamper"], list)
    assert isinstance(view["credit"], dict) and isinstance(view["links"], dict)
