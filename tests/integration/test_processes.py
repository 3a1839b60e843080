"""Real processes crashing and stopping: the `make run` launcher and its children, two meters on one
state directory, a clean stop leaving no socket and no callback behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

from meterd.runtime.state_lock import LOCK_NAME, probe
from tests.dlms_fakes import make_keys
from tests.meterd_process import REPO, MeterdProcess
from tests.simmeter import sim_config_file

DEADLINE_S = 30.0


def wait_until(what: str, condition: Callable[[], bool], timeout_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pid: int) -> dict[str, int]:
    """The running children of ``pid``: {"meterd" | "ciu": child pid}."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if ppid == pid and alive(int(entry.name)):
            module = argv[argv.index(b"-m") + 1] if b"-m" in argv[:-1] else b""  # python [options] -m module
            name = module.decode() if module in (b"meterd", b"ciu") else argv[0].decode()
            found[name] = int(entry.name)
    return found


class Launcher:
    """``python -m meterd.app.simrun`` as `make run` starts it, output in files."""

    def __init__(self, tmp_path: Path, config: Path, state: Path, name: str = "simrun") -> None:
        self.out_path, self.err_path = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        self.out: IO[bytes] = self.out_path.open("wb")
        self.err: IO[bytes] = self.err_path.open("wb")
        env = dict(os.environ, METERD_LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen([sys.executable, "-m", "meterd.app.simrun", "--config", str(config),
                                      "--state-dir", str(state), "--speed", "10"], cwd=REPO, env=env,
                                     stdout=self.out, stderr=self.err, stdin=subprocess.DEVNULL)

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_running(self) -> dict[str, int]:
        """Wait for the banner and the CIU; returns the children."""
        wait_until("the launcher prints its banner",
                   lambda: "Stop with Ctrl-C" in self.stdout() or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.stderr()
        wait_until("meterd and the CIU run", lambda: set(children_of(self.proc.pid)) == {"meterd", "ciu"})
        return children_of(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=DEADLINE_S)
        self.out.close()
        self.err.close()


@pytest.fixture
def meter_files(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    state.mkdir()
    make_keys(state / "dlms-keys.toml").save()
    return sim_config_file(tmp_path), state


@pytest.fixture
def launchers(tmp_path: Path) -> Iterator[list[Launcher]]:
    started: list[Launcher] = []
    yield started
    for launcher in started:
        launcher.close()


def test_children_stop_cleanly_when_the_launcher_is_killed(tmp_path, meter_files, launchers):
    config, state = meter_files
    launchers.append(first := Launcher(tmp_path, config, state))
    kids = first.wait_running()
    first.proc.kill()
    assert first.proc.wait(timeout=DEADLINE_S) == -signal.SIGKILL
    wait_until("meterd and the CIU end with their launcher", lambda: not any(alive(pid) for pid in kids.values()))
    errors = first.stderr()
    assert "Traceback" not in errors, errors
    assert not (state / "meterd.sock").exists() and not (state / LOCK_NAME).exists()  # a clean stop
    # a second `make run` on the same state directory starts normally
    launchers.append(second := Launcher(tmp_path, config, state, name="again"))
    again = second.wait_running()
    assert probe(state) == again["meterd"]


def test_launcher_tells_which_child_died_and_stops_the_other(tmp_path, meter_files, launchers):
    config, state = meter_files
    launchers.append(launcher := Launcher(tmp_path, config, state))
    kids = launcher.wait_running()
    os.kill(kids["meterd"], signal.SIGKILL)
    assert launcher.proc.wait(timeout=DEADLINE_S) == 1
    assert (f"simrun: meterd (pid {kids['meterd']}) was killed by signal SIGKILL; stopping ciu\n"
            in launcher.stderr()), launcher.stderr()
    assert not alive(kids["ciu"])  # stopped (and reaped) before the launcher exited
    assert probe(state) is None  # the kernel dropped the killed meter's lock


def test_a_killed_ciu_is_named_and_meterd_stops_cleanly_and_starts_again(tmp_path, meter_files, launchers):
    config, state = meter_files
    launchers.append(launcher := Launcher(tmp_path, config, state))
    kids = launcher.wait_running()
    os.kill(kids["ciu"], signal.SIGKILL)
    assert launcher.proc.wait(timeout=DEADLINE_S) == 1
    assert (f"simrun: ciu (pid {kids['ciu']}) was killed by signal SIGKILL; stopping meterd\n"
            in launcher.stderr()), launcher.stderr()
    assert not alive(kids["meterd"])
    assert "Traceback" not in launcher.stderr(), launcher.stderr()
    assert not (state / "meterd.sock").exists() and not (state / LOCK_NAME).exists()  # meterd stopped cleanly
    launchers.append(second := Launcher(tmp_path, config, state, name="again"))
    second.wait_running()  # and the meter starts again on its saved state


def test_second_meter_on_a_state_directory_is_refused(tmp_path):
    first = MeterdProcess(tmp_path, speed="10")
    try:
        second = subprocess.run([sys.executable, "-m", "meterd", "run", "--config", str(first.config),
                                 "--state-dir", str(first.state)], cwd=REPO, capture_output=True, text=True,
                                timeout=DEADLINE_S, env=dict(os.environ, METERD_LOG_LEVEL="WARNING"))
        assert second.returncode == 2
        assert second.stderr == (f"meterd: state directory {first.state} is in use by another meterd "
                                 f"(pid {first.proc.pid}): lock {first.state / LOCK_NAME} is held; "
                                 "stop that meter first\n")
        launcher = subprocess.run([sys.executable, "-m", "meterd.app.simrun", "--config", str(first.config),
                                   "--state-dir", str(first.state)], cwd=REPO, capture_output=True, text=True,
                                  timeout=DEADLINE_S)
        assert launcher.returncode == 2
        assert launcher.stderr == (f"simrun: state directory {first.state} is in use by another meterd "
                                   f"(pid {first.proc.pid}); stop it first or choose another --state-dir\n")
        # the first meter keeps its socket and keeps metering
        before = first.status()["energy"]["total"]["active_import_wh"]
        wait_until("energy still counts", lambda: first.status()["energy"]["total"]["active_import_wh"] > before)
    finally:
        assert first.stop() == 0


def test_stop_at_full_speed_leaves_no_socket_and_no_callback(tmp_path):
    meter = MeterdProcess(tmp_path, speed="0")
    assert meter.status()["energy"]["total"]["active_import_wh"] > 0  # pulses are being scheduled
    assert meter.stop() == 0
    assert meter.proc.stderr is not None
    log = meter.proc.stderr.read().decode()
    assert "Exception in callback" not in log and "Traceback" not in log, log
    assert not Path(meter.socket).exists()
    out = subprocess.run([sys.executable, "-m", "meterd.app.meterctl", "--socket", meter.socket, "status"],
                         cwd=REPO, capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 2 and out.stderr == f"meterctl: meterd is not running (no socket at {meter.socket})\n"
