"""A real meterd process on simulated hardware, for tests that talk to it from outside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from meterd.client import MeterClient
from tests.dlms_fakes import make_keys
from tests.simmeter import sim_config_file

REPO = Path(__file__).resolve().parents[1]


class MeterdProcess:
    """``meterd run`` with throwaway DLMS test keys; ``status()`` reads its API. ``python_flags``:
    the interpreter's options (``meterd.app.simrun.METERD_PYTHON_FLAGS`` as the meter's systemd unit runs it)."""

    def __init__(self, tmp_path: Path, speed: str = "10", extra_toml: str = "", power_quality: bool = False,
                 python_flags: tuple[str, ...] = (), **replacements: str) -> None:
        self.state = tmp_path / "state"
        self.state.mkdir(parents=True, exist_ok=True)
        make_keys(self.state / "dlms-keys.toml").save()
        self.config = sim_config_file(tmp_path, extra_toml, power_quality, **replacements)
        env = dict(os.environ, METERD_LOG_LEVEL="WARNING")
        self.proc = subprocess.Popen([sys.executable, *python_flags, "-m", "meterd", "run", "--config", str(self.config),
                                      "--state-dir", str(self.state), "--speed", speed], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.view = self.status(wait_s=60.0)

    @property
    def socket(self) -> str:
        return str(self.state / "meterd.sock")

    @property
    def client(self) -> MeterClient:
        """The API client on the meter's UNIX socket."""
        return MeterClient(self.socket)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return self.client.request(method, path, body)

    def status(self, wait_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"meterd died: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                code, view = self.api("GET", "/status")
                if code == 200:
                    return view
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("meterd does not answer")
            time.sleep(0.05)

    @property
    def dlms_port(self) -> int:
        return int(self.view["links"]["dlms_tcp"].split()[0].rsplit(":", 1)[1])

    def pty(self, kind: str) -> str:
        return str(self.view["links"][kind].split()[0])

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)
