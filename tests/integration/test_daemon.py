"""meterd as a process: systemd notify and watchdog, the local API, meterctl, clean SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meterd.app.meterctl import request
from tests.simmeter import sim_config_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.05)
    yield path, sock
    sock.close()


def wait_status(sock_path: Path, proc: subprocess.Popen, timeout_s: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "meterd died"
        try:
            code, view = request(str(sock_path), "GET", "/status", timeout=5)
            if code == 200:
                return view
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("no status")


def meterctl(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--socket", str(state / "meterd.sock"), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=30)


def test_daemon_end_to_end(tmp_path, notify_socket):
    path, sock = notify_socket
    state = tmp_path / "state"
    env = dict(os.environ, NOTIFY_SOCKET=str(path), WATCHDOG_USEC="200000")
    proc = subprocess.Popen([sys.executable, "-m", "meterd", "run", "--config", str(sim_config_file(tmp_path)),
                             "--state-dir", str(state), "--speed", "20"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        view = wait_status(state / "meterd.sock", proc)
        messages = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("WATCHDOG=1" in m for m in messages):
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())
        assert any(m.startswith("READY=1") and "STATUS=" in m and f"MAINPID={proc.pid}" in m for m in messages)
        assert any("WATCHDOG=1" in m for m in messages)

        assert set(view["phases"]) == {"L1", "L2", "L3"}
        for phase in view["phases"].values():
            assert set(phase) >= {"voltage_v", "current_a", "active_power_w", "reactive_power_var",
                                  "apparent_power_va", "power_factor", "frequency_hz"}
        assert view["phases"]["L1"]["voltage_v"] == pytest.approx(230.0, abs=0.05)

        out = meterctl(state, "sim", "set", "--phase", "A", "--voltage", "230", "--current", "5", "--pf", "0.5L")
        assert out.returncode == 0, out.stderr
        time.sleep(1.0)
        status = json.loads(meterctl(state, "--json", "status").stdout)
        l1 = status["phases"]["L1"]
        assert l1["power_factor"] == pytest.approx(0.5, abs=0.01)
        assert l1["reactive_power_var"] == pytest.approx(230 * 5 * 0.866, rel=0.01)
        assert status["energy"]["total"]["active_import_wh"] > 0
        links = status["links"]
        assert links["dlms_tcp"].startswith("127.0.0.1:") and "/dev/pts/" in links["dlms_hdlc"]
        assert "mode E" in links["dlms_optical"]
        table = meterctl(state, "status").stdout
        assert "active_import_wh" in table and "L1" in table

        bad = meterctl(state, "sim", "set", "--phase", "A", "--pf", "2.5L")
        assert bad.returncode == 1 and "power factor" in bad.stderr
        scen = meterctl(state, "sim", "scenario", "config/scenarios/evening.toml")
        assert scen.returncode == 0, scen.stderr
    finally:
        try:  # drain, so the STOPPING datagram finds room in the queue
            while True:
                sock.recv(4096)
        except TimeoutError:
            pass
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 0
    stopping = []
    try:
        while True:
            stopping.append(sock.recv(4096).decode())
    except TimeoutError:
        pass
    assert any("STOPPING=1" in m for m in stopping)
    assert b"stopped cleanly" in proc.stderr.read()


def test_meterctl_without_meter_exits_2(tmp_path):
    out = meterctl(tmp_path, "status")
    assert out.returncode == 2 and "meterd is not running (no socket at" in out.stderr
