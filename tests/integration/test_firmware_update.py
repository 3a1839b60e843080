"""The A/B update end to end with the real rauc: the launcher (meterd.app.simrun) boots the
simulated board, meterd installs signed bundles through its API into the inactive file slot,
the board reboots into it with tryboot, the self-check confirms it or sends the meter back.

Two process-level tests (each runs the real RAUC service on a private D-Bus): a good update,
then four bundles refused before anything is installed; and (slow) an update whose self-check
fails under an injected chip fault (a scenario file of the simulated world: the SPI bus times
out), which the board answers with the old slot.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.rauc_board import build_bundle, needs_rauc, signing_keys, slot_bytes, start_board

pytestmark = needs_rauc


def test_update_confirmed_then_bad_bundles_refused(tmp_path: Path) -> None:
    cert, key = signing_keys(tmp_path / "keys", "signing")
    other_cert, other_key = signing_keys(tmp_path / "keys", "stranger")
    good = build_bundle(tmp_path / "good.raucb", "1.1.0", cert, key)
    meter = start_board(tmp_path, cert)
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
        slots = slot_bytes(board)
        truncated = tmp_path / "truncated.raucb"
        truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        refused = {
            "signature": build_bundle(tmp_path / "stranger.raucb", "1.3.0", other_cert, other_key),
            "hardware": build_bundle(tmp_path / "other-board.raucb", "1.3.0", cert, key, compatible="pmm9999-other"),
            "downgrade": build_bundle(tmp_path / "old.raucb", "1.0.0", cert, key),
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
        assert slot_bytes(board) == slots
        view = meter.wait("still running", lambda v: v["phase"] == "idle")
        assert view["version"] == "1.1.0" and view["slot"] == "B" and view["primary"] == "B"
        assert meter.registers()["total/active_import_wh"] >= after["total/active_import_wh"]
    finally:
        meter.stop()


@pytest.mark.slow
def test_a_failed_self_check_rolls_back_to_the_old_slot(tmp_path: Path) -> None:
    cert, key = signing_keys(tmp_path / "keys", "signing")
    failing = build_bundle(tmp_path / "next.raucb", "1.2.0", cert, key)
    # the simulated world's chip fault from each start on, for 60 s of meter time: the trial
    # slot's self-check finds the chip silent; the old slot, back, rides it out like any fault
    scenario = tmp_path / "chip-fault.toml"
    scenario.write_text('[[events]]\nat_s = 0.0\nsignal = "chip_fault"\n'
                        'value = { kind = "spi_timeout", duration_s = 60 }\n')
    meter = start_board(tmp_path, cert, scenario)
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
