"""Prepayment in a real meterd process: a token entered through the local API survives kill -9
(its credit is kept exactly once) and the replayed token is refused after the restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterd.tools import vend
from tests.meterd_process import MeterdProcess

PAYMENT_TOML = ('[payment]\nmode = "prepaid"\nfriendly_hours = ""\nfriendly_weekdays = []\n'
                'friendly_holidays = false\n')


def start(tmp_path: Path) -> MeterdProcess:
    return MeterdProcess(tmp_path, speed="10", extra_toml=PAYMENT_TOML)


def test_token_survives_kill_9_and_its_replay_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meter = start(tmp_path)
    try:
        assert meter.api("GET", "/credit")[1]["mode"] == "prepaid"
        assert vend.main(["credit", "--kwh", "5", "--config", str(meter.config),
                          "--ledger", str(tmp_path / "ledger.json")]) == 0
        token = capsys.readouterr().out.strip()
        code, result = meter.api("POST", "/token", {"token": token})
        assert code == 200 and result["result"] == "Accept" and result["credit"]["token_seq"] == 1
        credited = result["credit"]["credit"]
        assert 4900 < credited <= 5000  # Wh: 5 kWh less what ran before (no credit yet)
    finally:
        meter.proc.kill()  # kill -9: no final checkpoint
        meter.proc.wait(timeout=30)
    again = start(tmp_path)
    try:
        view = again.api("GET", "/credit")[1]
        assert view["token_seq"] == 1 and credited - 200 < view["credit"] <= credited
        code, replay = again.api("POST", "/token", {"token": token})
        assert code == 200 and replay["result"] == "UsedError" and not replay["accepted"]
        assert replay["credit"]["token_seq"] == 1
    finally:
        assert again.stop() == 0
