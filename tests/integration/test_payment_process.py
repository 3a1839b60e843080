"""Prepayment in a real meterd process: a token entered through the local API survives kill -9
(its credit is kept exactly once) and the replayed token is refused after the restart; the STS
power and phase-unbalance limits survive kill -9 too."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.sts.vending import max_phase_unbalance_limit_token, max_power_limit_token
from meterd.services.sts_crypto import sts_cipher_factory
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


def test_sts_limits_survive_kill_9(tmp_path: Path) -> None:
    cipher = sts_cipher_factory(7, sim_key_register(PaymentSection()).key)
    power = max_power_limit_token(cipher, 900, 16_000)
    unbalance = max_phase_unbalance_limit_token(cipher, 901, 12_000)
    meter = start(tmp_path)
    try:
        assert meter.api("POST", "/token", {"token": power, "source": "keypad"})[1]["result"] == "Accept"
        assert meter.api("POST", "/token", {"token": unbalance, "source": "keypad"})[1]["result"] == "Accept"
    finally:
        meter.proc.kill()  # kill -9 right after the tokens
        meter.proc.wait(timeout=30)
    again = start(tmp_path)
    try:
        limiter = again.api("GET", "/relay")[1]["limiter"]
        assert limiter["max_power_w"] == 16_000.0 and limiter["max_phase_unbalance_w"] == 12_000.0
        assert again.api("POST", "/token", {"token": power})[1]["result"] == "UsedError"
    finally:
        assert again.stop() == 0
