"""hw.chrony and the chrony time source against a real chronyd.

A private chronyd (``-x``: it never touches the host clock; its own config, pid, drift and
command socket in a temporary directory) synchronises from a small SNTP server run here on a
loopback UDP port the OS chooses; the test then jumps the server's time by an hour and reads
the jump back through ``chronyc -c tracking`` / ``sources``. Skipped, with the reason, where
chronyd is not installed or cannot start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hw.chrony import Chronyc, ChronyError, Tracking
from meterd.core.time_trust import TrustSettings, TrustState
from meterd.runtime.time_sync_chrony import ChronySync
from meterd.services.time_service import TimeService

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
WAIT_S = 20.0


def _ntp_time(t: float) -> bytes:
    seconds = int(t)
    return struct.pack(">II", seconds + NTP_EPOCH_OFFSET, int((t - seconds) * 2**32) & 0xFFFFFFFF)


class SntpServer:
    """A stratum-1 SNTP server on 127.0.0.1 (port chosen by the OS) whose time is the host's plus
    ``offset_s`` (s); answers until :meth:`stop`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.offset_s = 0.0
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sntp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], 0.1)
            if not ready:
                continue
            data, addr = self.sock.recvfrom(512)
            if len(data) < 48:
                continue
            now = time.time() + self.offset_s
            version = (data[0] >> 3) & 7
            header = bytes(((version << 3) | 4, 1, data[2], 0xEC)) + bytes(8) + b"LOCL"
            self.sock.sendto(header + _ntp_time(now - 1) + data[40:48] + _ntp_time(now)
                             + _ntp_time(time.time() + self.offset_s), addr)
            self.answered += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def chronyd(tmp_path: Path) -> Iterator[tuple[Chronyc, SntpServer, Path]]:
    exe = shutil.which("chronyd") or ("/usr/sbin/chronyd" if os.path.exists("/usr/sbin/chronyd") else None)
    if exe is None or shutil.which("chronyc") is None:
        pytest.skip("chronyd/chronyc not installed")
    run_dir = tmp_path / "chrony"
    run_dir.mkdir(mode=0o700)
    run_dir.chmod(0o700)  # chronyd refuses a command socket in a directory others may enter
    server = SntpServer()
    conf = run_dir / "chrony.conf"
    conf.write_text(f"server 127.0.0.1 port {server.port} iburst minpoll -4 maxpoll -4\n"
                    "makestep 1 -1\n"
                    f"bindcmdaddress {run_dir}/chronyd.sock\ncmdport 0\nport 0\n"
                    f"pidfile {run_dir}/chronyd.pid\ndriftfile {run_dir}/drift\n")
    log_path = run_dir / "chronyd.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen([exe, "-x", "-d", "-f", str(conf), "-u", getpass.getuser()],
                                stdout=log_file, stderr=subprocess.STDOUT)
    chronyc = Chronyc(str(run_dir / "chronyd.sock"), timeout_s=5.0)
    try:
        deadline = time.monotonic() + WAIT_S
        while not (run_dir / "chronyd.sock").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"chronyd cannot start here: {log_path.read_text()[-400:]}")
            time.sleep(0.05)
        yield chronyc, server, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.stop()


def _wait_tracking(chronyc: Chronyc, ok: Callable[[Tracking], bool]) -> Tracking:
    deadline = time.monotonic() + WAIT_S
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = asyncio.run(chronyc.tracking())
        except ChronyError as exc:
            last = exc
        else:
            if ok(last):
                return last
        time.sleep(0.1)
    raise AssertionError(f"chronyd did not get there in {WAIT_S} s: {last}")


class ManualMono:
    def __init__(self) -> None:
        self.t = 100.0

    def mono(self) -> float:
        return self.t


def test_chrony_synchronises_and_a_jump_of_the_ntp_source_is_read_back(chronyd):
    chronyc, server, log_path = chronyd
    synced = _wait_tracking(chronyc, lambda t: t.synchronised and t.reference == "127.0.0.1")
    assert synced.stratum == 2 and synced.leap == "normal"
    assert abs(synced.last_offset_s) < 0.5
    assert synced.ref_time_utc is not None
    assert abs((synced.ref_time_utc - dt.datetime.now(dt.UTC)).total_seconds()) < WAIT_S
    sources = asyncio.run(chronyc.sources())
    assert [s.name for s in sources] == ["127.0.0.1"]
    assert sources[0].selected and sources[0].reach > 0

    # the meter's time source reads the same, and the time service trusts the time
    sync = ChronySync(chronyc)
    obs = asyncio.run(sync.poll_once())
    assert obs is not None and obs.synchronised and obs.reference == "127.0.0.1"
    steps: list[Any] = []
    service = TimeService(ManualMono(), TrustSettings(max_unsynced_h=1), sync, lambda *a: steps.append(a))
    now = dt.datetime.now(dt.UTC)
    service.start(now)
    assert service.trust.state is TrustState.SYNCHRONISED
    assert service.trust.record.last_sync_source == "ntp"

    # the NTP server jumps an hour ahead: chronyd sees the system clock an hour slow
    server.offset_s = 3600.0
    jumped = _wait_tracking(chronyc, lambda t: abs(t.last_offset_s + 3600.0) < 1.0)
    assert jumped.synchronised
    assert jumped.ref_time_utc is not None
    obs = asyncio.run(sync.poll_once())
    assert obs is not None and obs.offset_s == pytest.approx(-3600.0, abs=1.0)
    sources = asyncio.run(chronyc.sources())
    assert sources[0].measured_offset_s == pytest.approx(-3600.0, abs=1.0)
    # -x: chronyd wanted to step (makestep 1 -1) and was not allowed to touch this host's clock
    assert re.search(r"System clock wrong by (3599\.9|3600\.0)\d* seconds", log_path.read_text())


def test_chronyc_without_a_daemon_is_a_chrony_error(tmp_path):
    if shutil.which("chronyc") is None:
        pytest.skip("chronyc not installed")
    chronyc = Chronyc(str(tmp_path / "absent.sock"), timeout_s=5.0)
    with pytest.raises(ChronyError):
        asyncio.run(chronyc.tracking())
    sync = ChronySync(chronyc)
    assert asyncio.run(sync.poll_once()) is None and sync.latest() is None
