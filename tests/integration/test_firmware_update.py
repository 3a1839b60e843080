"""The A/B update end to end with the real rauc: the launcher (meterd.app.simrun) boots the
simulated board, meterd installs signed bundles through its API into the inactive file slot,
the board reboots into it with tryboot, the self-check confirms it or sends the meter back.

Two process-level tests (each runs the real RAUC service on a private D-Bus): a good update,
then four bundles refused before anything is installed; and (slow) an update whose self-check
fails under an injected chip fault (a scenario file of the simulated world: the SPI bus times
out), which the board answers with the old slot.
"""

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
pytestmark = pytest.mark.skipif(any(shutil.which(p) is None for p in NEEDS),
                                reason=f"needs {', '.join(NEEDS)} (RAUC's plain bundles and service)")


def _keys(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.cert.pem", directory / f"{name}.key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
                    f"/O=test/CN={name}", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _bundle(out: Path, version: str, cert: Path, key: Path, compatible: str = "pmm1221-rpi4") -> Path:
    subprocess.run(["bash", str(BUILD), "--version", version, "--size-mb", "1", "--compatible", compatible,
                    "--cert", str(cert), "--key", str(key), "--out", str(out)], check=True, capture_output=True,
                   env={**os.environ, "PYTHON": sys.executable})
    return out


class Launcher:
    """``python -m meterd.app.simrun`` on a config of its own; the API through its socket."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.state = tmp_path / "state"
        self.log = open(tmp_path / "simrun.log", "wb")  # noqa: SIM115  closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "meterd.app.simrun", "--config", str(config),
                                      "--state-dir", str(self.state), "--speed", "10"], cwd=REPO,
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

    def output(self) -> str:
        self.log.flush()
        return (self.tmp / "simrun.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.log.close()


def _slot_bytes(board: Path) -> dict[str, bytes]:
    return {s: (board / f"slot{s}.img").read_bytes() for s in ("A", "B")}


def _start(tmp_path: Path, cert: Path, scenario: Path | None = None) -> Launcher:
    (tmp_path / "state").mkdir()
    make_keys(tmp_path / "state" / "dlms-keys.toml").save()
    settings = {"sim_keyring": f'"{cert}"', "self_check_cycles": "3", "reboot_delay_s": "0.2", "port": '"off"'}
    if scenario is not None:
        settings["# scenario"] = f'"{scenario}"\nscenario = "{scenario}"'
    meter = Launcher(tmp_path, sim_config_file(tmp_path, **settings))
    first = meter.wait("first start", lambda v: v["engine"] == "rauc")
    assert first["slot"] == "A" and first["version"] == "0.1.0" and first["outcome"] == "none"
    return meter


def test_update_confirmed_then_bad_bundles_refused(tmp_path: Path) -> None:
    cert, key = _keys(tmp_path / "keys", "signing")
    other_cert, other_key = _keys(tmp_path / "keys", "stranger")
    good = _bundle(tmp_path / "good.raucb", "1.1.0", cert, key)
    meter = _start(tmp_path, cert)
    try:
        before = meter.registers()
        events_before = len(meter.firmware_events())
        credit_before = meter.api("GET", "/credit")[1]
        profile_before = [r["utc"] for r in meter.api("GET", "/load-profile")[1]["rows"]]

        # a good update: installed to B, trial boot, self-check passes, B confirmed
        code, answer = meter.api("POST", "/firmware/install", {"bundle": str(good)})
        assert code == 202 and answer["ok"] and answer["bundle"]["slot"] == "B", answer
        confirmed = meter.wait("the update confirmed", lambda v: v["version"] == "1.1.0" and v["phase"] == "idle"
                               and v["outcome"] == "confirmed")
        assert confirmed["slot"] == "B" and confirmed["primary"] == "B"
        assert confirmed["slots"]["B"]["boot_status"] == "good"
        assert confirmed["last_update"]["from_version"] == "0.1.0"
        after = meter.registers()
        for name, value in before.items():  # continued: never below what the old slot showed
            assert after[name] >= value, name
        credit_after = meter.api("GET", "/credit")[1]  # the account and its tokens carried over
        assert credit_after["token_seq"] == credit_before["token_seq"]
        assert credit_after["consumed"] >= credit_before["consumed"]
        profile_after = [r["utc"] for r in meter.api("GET", "/load-profile")[1]["rows"]]
        assert set(profile_before) <= set(profile_after) or profile_after[0] > profile_before[-1]
        events = meter.firmware_events()
        assert [e["name"] for e in events[events_before:]] == [
            "FIRMWARE_INSTALLED", "FIRMWARE_SELF_CHECK_OK", "FIRMWARE_ACTIVATED"], events
        assert events[-1]["detail"]["from_version"] == "0.1.0" and events[-1]["detail"]["to_version"] == "1.1.0"

        # refused before anything is installed: each with its reason in the firmware log
        board = tmp_path / "state" / "firmware-sim"
        slots = _slot_bytes(board)
        truncated = tmp_path / "truncated.raucb"
        truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        refused = {
            "signature": _bundle(tmp_path / "stranger.raucb", "1.3.0", other_cert, other_key),
            "hardware": _bundle(tmp_path / "other-board.raucb", "1.3.0", cert, key, compatible="pmm9999-other"),
            "downgrade": _bundle(tmp_path / "old.raucb", "1.0.0", cert, key),
            "truncated": truncated,
        }
        for reason, bundle in refused.items():
            code, answer = meter.api("POST", "/firmware/install", {"bundle": str(bundle)})
            assert code == 422 and answer["reason"] == reason, (reason, answer)
            last = meter.firmware_events()[-1]
            assert last["name"] == "FIRMWARE_VERIFY_FAILED" and last["detail"]["reason"] == reason, last
        # the operator's command line: the same verdicts, exit status 1 when refused
        meterctl = [sys.executable, "-m", "meterd.app.meterctl", "--socket", str(meter.state / "meterd.sock")]
        told = subprocess.run([*meterctl, "firmware", "verify", str(refused["hardware"])], capture_output=True,
                              text=True, check=False, cwd=REPO)
        assert told.returncode == 1 and "bundle refused: hardware: bundle is for 'pmm9999-other'" in told.stderr
        shown = subprocess.run([*meterctl, "--json", "status"], capture_output=True, text=True, check=True, cwd=REPO)
        assert '"firmware": {' in shown.stdout and '"confirmed 0.1.0 -> 1.1.0"' in shown.stdout
        assert _slot_bytes(board) == slots
        view = meter.wait("still running", lambda v: v["phase"] == "idle")
        assert view["version"] == "1.1.0" and view["slot"] == "B" and view["primary"] == "B"
        assert meter.registers()["total/active_import_wh"] >= after["total/active_import_wh"]
    finally:
        meter.stop()


@pytest.mark.slow
def test_a_failed_self_check_rolls_back_to_the_old_slot(tmp_path: Path) -> None:
    cert, key = _keys(tmp_path / "keys", "signing")
    failing = _bundle(tmp_path / "next.raucb", "1.2.0", cert, key)
    # the simulated world's chip fault from each start on, for 60 s of meter time: the trial
    # slot's self-check finds the chip silent; the old slot, back, rides it out like any fault
    scenario = tmp_path / "chip-fault.toml"
    scenario.write_text('[[events]]\nat_s = 0.0\nsignal = "chip_fault"\n'
                        'value = { kind = "spi_timeout", duration_s = 60 }\n')
    meter = _start(tmp_path, cert, scenario)
    try:
        meter.wait("the chip fault over", lambda v: "metrology_fault" not in meter.api("GET", "/status")[1]
                   ["status_flags"], timeout_s=120)
        before = meter.registers()
        code, answer = meter.api("POST", "/firmware/install", {"bundle": str(failing)})
        assert code == 202 and answer["bundle"]["slot"] == "B", answer
        back = meter.wait("the rollback", lambda v: v["outcome"] == "rolled_back" and v["phase"] == "idle")
        assert back["version"] == "0.1.0" and back["slot"] == "A" and back["primary"] == "A"
        assert back["slots"]["B"]["boot_status"] == "bad"
        events = meter.firmware_events()
        failed = next(e for e in events if e["name"] == "FIRMWARE_SELF_CHECK_FAILED")
        assert failed["detail"]["to_version"] == "1.2.0" and "metering_chip" in failed["detail"]["failure"]
        rolled = events[-1]
        assert rolled["name"] == "FIRMWARE_ROLLED_BACK", events
        assert rolled["detail"]["tried_version"] == "1.2.0" and rolled["detail"]["running_version"] == "0.1.0"
        after = meter.registers()
        for name, value in before.items():
            assert after[name] >= value, name
    finally:
        meter.stop()
