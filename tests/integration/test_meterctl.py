"""meterctl against a running meter: every command a user or the lab types."""

from __future__ import annotations

import json
import os
import re
import socket
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
    assert again.returncode == 1 and json.loads(again.stdout)["accepted"] is False
    assert again.stderr == "meterctl: token refused: UsedError (Used)\n"
    human = ctl(meter, "token", token, json_out=False)
    assert human.returncode == 1 and re.search(r"(?m)^result +UsedError$", human.stdout), human.stdout


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
    human = text(meter, "events", "--log", "disconnector", "--limit", "10").splitlines()
    assert human[0].split() == ["time", "(UTC)", "log", "code", "name", "details"]
    rows = [line.split()[:4] for line in human[1:]]
    assert [r[1:] for r in rows[:2]] == [["disconnector", str(events[0]["code"]), "MANUAL_CONNECTION"],
                                         ["disconnector", str(events[1]["code"]), "MANUAL_DISCONNECTION"]]
    assert rows[0][0] == events[0]["utc"]
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


def test_options_after_the_command(meter):
    out = subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "status", "--json", "--socket", meter.socket],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["serial"] == meter.view["serial"]
    out = subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "sim", "set", "--phase", "A", "--current", "5",
                          "--socket", meter.socket, "--json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["phase"] == "A", out.stderr
    out = subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--json", "relay", "--socket", meter.socket],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0 and "control_state" in json.loads(out.stdout), out.stderr


def plain_ctl(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("METERD_SOCKET", "METERD_CONFIG")}
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "meterd.app.meterctl", *args], capture_output=True, text=True,
                          cwd=cwd, env={**environ, **(env or {})}, timeout=60)


def test_socket_found_from_config_environment_and_make_run_directory(meter, tmp_path):
    config = tmp_path / "meter.toml"
    config.write_text(re.sub(r"(?m)^state_dir = .*$", f'state_dir = "{meter.state}"', meter.config.read_text()))
    by_config = plain_ctl("--json", "status", "--config", str(config), cwd=tmp_path)
    assert by_config.returncode == 0 and json.loads(by_config.stdout)["serial"] == meter.view["serial"], by_config.stderr
    by_env = plain_ctl("--json", "status", cwd=tmp_path, env={"METERD_SOCKET": meter.socket})
    assert by_env.returncode == 0, by_env.stderr
    by_config_env = plain_ctl("--json", "status", cwd=tmp_path, env={"METERD_CONFIG": str(config)})
    assert by_config_env.returncode == 0, by_config_env.stderr
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "run-sim").symlink_to(meter.state)  # the directory `make run` uses, seen from here
    here = plain_ctl("--json", "status", cwd=tmp_path)
    assert here.returncode == 0 and json.loads(here.stdout)["serial"] == meter.view["serial"], here.stderr


def test_not_running_and_stale_socket_are_told_apart(tmp_path):
    missing = plain_ctl("--socket", str(tmp_path / "meterd.sock"), "status", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == f"meterctl: meterd is not running (no socket at {tmp_path / 'meterd.sock'})\n"
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(stale))  # bound, never listening: a connection is refused
        out = plain_ctl("status", "--socket", str(stale), cwd=tmp_path)
    assert out.returncode == 2 and out.stderr == f"meterctl: meterd is not running (stale socket {stale})\n"
    nothing = plain_ctl("status", cwd=tmp_path)  # no make run here, and no /etc/meterd on a test machine
    if not os.path.exists("/etc/meterd/meterd.toml"):
        assert nothing.returncode == 2 and "no meterd socket found" in nothing.stderr, nothing.stderr


def test_quiet_on_a_closed_pipe(meter):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before meterctl writes a byte
    try:
        proc = subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--socket", meter.socket, "tariff"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=60)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141


def test_credit_decimals_are_the_same_everywhere(meter):
    credit = text(meter, "credit")
    kwh = re.search(r"(?m)^credit_kwh +(\S+)$", credit)
    assert kwh and re.fullmatch(r"-?\d+\.\d{3}", kwh.group(1)), credit
    status = text(meter, "status")
    in_status = re.search(r"(?m)^  credit_kwh +(\S+)$", status)
    assert in_status and re.fullmatch(r"-?\d+\.\d{3}", in_status.group(1)), status
    negative_zero = re.compile(r"(?<![\d.])-0(\.0+)?(?![\d.])")
    assert not negative_zero.search(credit) and not negative_zero.search(status)


def test_a_chip_fault_from_meterctl_is_flagged_and_clears(meter):
    def flags() -> list[str]:
        return ok(meter, "status")["status_flags"]

    assert ok(meter, "sim", "fault", "spi_timeout") == {"fault": "spi_timeout", "duration_s": None}
    deadline = time.monotonic() + 10
    while "metrology_fault" not in flags():
        assert time.monotonic() < deadline, "fault not flagged"
        time.sleep(0.1)
    assert ok(meter, "status")["metrology"]["faults"] == ["spi_error"]
    assert ok(meter, "sim", "fault-clear") == {"cleared": ["spi_timeout"]}
    deadline = time.monotonic() + 10
    while "metrology_fault" in flags():
        assert time.monotonic() < deadline, "metering did not resume"
        time.sleep(0.1)
    assert ok(meter, "status")["metrology"]["fault_count"] == 1
    events = ok(meter, "events", "--log", "standard", "--limit", "10")["events"]
    assert "MEASUREMENT_SYSTEM_ERROR" in [e["name"] for e in events]
    assert ctl(meter, "sim", "fault", "smoke").returncode != 0


def test_a_rig_fault_with_parameters_from_meterctl(meter):
    answer = ok(meter, "sim", "fault", "voltage_dip", "--param", "phase=L2", "--param", "residual_pct=40",
                "--duration", "30")
    assert answer == {"fault": "voltage_dip", "group": "grid", "duration_s": 30.0,
                      "params": {"phase": "L2", "residual_pct": 40.0}}
    listing = ok(meter, "sim", "faults")
    assert {"kind": "reversed_ct", "group": "wiring"}.items() <= next(
        k for k in listing["kinds"] if k["kind"] == "reversed_ct").items()
    assert [a["kind"] for a in listing["active"]] == ["voltage_dip"]
    assert ok(meter, "sim", "fault-clear", "voltage_dip") == {"cleared": ["voltage_dip"]}
    assert ok(meter, "sim", "faults")["active"] == []
    assert ctl(meter, "sim", "fault", "voltage_dip", "--param", "residual_pct").returncode == 2
    refused = ctl(meter, "sim", "fault", "voltage_dip", "--param", "residual_pct=0")
    assert refused.returncode == 1 and "residual_pct=0.0 out of range" in refused.stderr
