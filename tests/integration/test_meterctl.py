"""meterctl against a running meter: every command a user or the lab types."""

from __future__ import annotations

import json
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


def ctl(meter: MeterdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--socket", meter.socket, "--json", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def ok(meter: MeterdProcess, *args: str) -> dict:
    out = ctl(meter, *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_read_commands(meter):
    assert ok(meter, "status")["serial"] == meter.view["serial"]
    assert "credit" in json.dumps(ok(meter, "credit"))
    assert "relay" in json.dumps(ok(meter, "relay"))
    assert "rate" in json.dumps(ok(meter, "tariff"))
    ok(meter, "events", "--limit", "5")
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
    ok(meter, "display", "button", "next")
    ok(meter, "alarms-clear")
    ok(meter, "credit", "mode", "postpaid")


def test_usage_errors_exit_2(meter):
    assert ctl(meter, "credit", "mode", "free").returncode == 2
    assert ctl(meter, "relay", "mode").returncode == 2
