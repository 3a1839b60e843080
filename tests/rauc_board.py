"""The simulated board with the real rauc, for process-level update tests: throwaway signing
keys, bundles built by ``image/rauc/build-bundle.sh``, and the launcher (``meterd.app.simrun``)
that boots the board and restarts meterd in the slot the simulated firmware chooses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from meterd.client import MeterClient
from tests.dlms_fakes import make_keys
from tests.paths import REPO
from tests.simmeter import sim_config_file

BUILD = REPO / "image" / "rauc" / "build-bundle.sh"
NEEDS = ("rauc", "dbus-daemon", "mksquashfs", "openssl")
needs_rauc = pytest.mark.skipif(any(shutil.which(p) is None for p in NEEDS),
                                reason=f"needs {', '.join(NEEDS)} (RAUC's plain bundles and service)")


def signing_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM) made for one test: ``(cert, key)``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
                    f"/O=test/CN={name}", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def build_bundle(out: Path, version: str, cert: Path, key: Path, compatible: str = "pmm1221-rpi4",
                 rootfs: Path | None = None) -> Path:
    """A signed plain bundle of ``version``: 1 MiB of random payload, or the file ``rootfs``."""
    payload = ["--rootfs", str(rootfs)] if rootfs is not None else ["--size-mb", "1"]
    subprocess.run(["bash", str(BUILD), "--version", version, *payload, "--compatible", compatible,
                    "--cert", str(cert), "--key", str(key), "--out", str(out)], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable})
    return out


class Launcher:
    """``python -m meterd.app.simrun`` on a config of its own; the API through its socket. A
    second launcher on the same ``tmp_path`` is the board powered on again (the log goes on)."""

    def __init__(self, tmp_path: Path, config: Path, speed: str = "10") -> None:
        self.state = tmp_path / "state"
        self.config = config
        self.log = open(tmp_path / "simrun.log", "ab")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "meterd.app.simrun", "--config", str(config),
                                      "--state-dir", str(self.state), "--speed", speed], cwd=REPO,
                                     env={**os.environ, "METERD_LOG_LEVEL": "WARNING"},
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.tmp = tmp_path

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        return MeterClient(str(self.state / "meterd.sock"), timeout_s=60).request(method, path, body)

    def wait(self, what: str, ok: Any, timeout_s: float = 90.0) -> dict[str, Any]:
        """Poll GET /firmware until ``ok(view)`` (a restart in between is expected)."""
        deadline = time.monotonic() + timeout_s
        view: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"simrun ended: {self.output()}"
            try:
                code, view = self.api("GET", "/firmware")
                if code == 200 and ok(view):
                    return view
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{what}: last view {view}\n{self.output()}")

    def firmware_events(self) -> list[dict[str, Any]]:
        code, answer = self.api("POST", "/events", {"limit": 50, "log": "firmware"})
        assert code == 200, answer
        return list(reversed(answer["events"]))  # oldest first

    def registers(self) -> dict[str, Any]:
        code, view = self.api("GET", "/status")
        assert code == 200
        return {f"{channel}/{name}": value for channel, values in view["energy"].items()
                for name, value in values.items()}

    def link(self, kind: str) -> str:
        """Where a link of meterd is now (``dlms_tcp``: host:port, ``dlms_hdlc``: the pty's path),
        chosen anew at each start of meterd."""
        code, view = self.api("GET", "/status")
        assert code == 200
        return str(view["links"][kind].split()[0])

    def dlms_port(self) -> int:
        """The DLMS TCP wrapper's port."""
        return int(self.link("dlms_tcp").rsplit(":", 1)[1])

    def output(self) -> str:
        self.log.flush()
        return (self.tmp / "simrun.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()


def slot_bytes(board: Path) -> dict[str, bytes]:
    """The simulated board's two slot files."""
    return {s: (board / f"slot{s}.img").read_bytes() for s in ("A", "B")}


def start_board(tmp_path: Path, cert: Path, scenario: Path | None = None, extra_toml: str = "") -> Launcher:
    """The launcher on a new state directory whose board trusts ``cert``; slot A runs 0.1.0."""
    (tmp_path / "state").mkdir()
    make_keys(tmp_path / "state" / "dlms-keys.toml").save()
    settings = {"sim_keyring": f'"{cert}"', "self_check_cycles": "3", "reboot_delay_s": "0.2", "port": '"off"'}
    if scenario is not None:
        settings["# scenario"] = f'"{scenario}"\nscenario = "{scenario}"'
    meter = Launcher(tmp_path, sim_config_file(tmp_path, extra_toml, **settings))
    first = meter.wait("first start", lambda v: v["engine"] == "rauc")
    assert first["slot"] == "A" and first["version"] == "0.1.0" and first["outcome"] == "none"
    return meter
