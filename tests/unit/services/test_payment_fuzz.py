"""Fuzz of token entry at payment level: random 20-digit strings (and one-digit corruptions of
valid tokens) through the payment feature of a whole simulated meter with a prepaid credit
account, for an EA07 (DES) and an EA11 (MISTY1) decoder key. Token entry never raises, and the
credit account and the STS decoder state (TID memory, key register) change only when the token
is accepted. The two negative vectors of tests/data/sts-vectors.json are refused as CRC errors.

``PMM_SOAK=1`` runs many more examples (slow); the default is a short form for ``make test``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterd.api.views import token_json
from meterd.app.features.payment import PaymentSection, sim_key_register
from meterd.core.sts.vending import credit_token
from meterd.services.payment import PaymentService
from meterd.services.sts_crypto import sts_cipher_factory
from tests.paths import DATA
from tests.simmeter import SimMeter

SOAK = bool(os.environ.get("PMM_SOAK"))
EXAMPLES = 2000 if SOAK else 150
PREPAID = {"mode": "prepaid", "friendly_hours": "", "friendly_weekdays": (), "friendly_holidays": False,
           "lockout_after": 0}   # no keypad lockout, so every fuzzed token reaches the decoder
VECTORS = json.loads((DATA / "sts-vectors.json").read_text())
NEGATIVE = [v["token"] for v in VECTORS if v["kind"] == "negative_token"]

digits20 = st.text(alphabet="0123456789", min_size=20, max_size=20)


def snapshot(m: SimMeter) -> tuple[Any, ...]:
    """The credit account and the whole STS decoder state."""
    service = m.service(PaymentService)
    assert service.processor is not None
    return service.account.to_dict(), service.processor.state.to_dict()


def fuzz(m: SimMeter, ea: int) -> None:
    submit = m.service(PaymentService).submit_token
    valid = credit_token(sts_cipher_factory(ea, sim_key_register(PaymentSection(ea=ea)).key), 700, 10)
    accepted: list[str] = []

    def check(token: str) -> None:
        before = snapshot(m)
        result = submit(token, "keypad")
        assert set(token_json(result)) >= {"result", "accepted", "credit"}
        if not result.accepted:
            assert snapshot(m) == before, result.result
        elif result.result == "Accept" and result.tid is not None:
            accepted.append(token)           # (KCT sections and class 1 tests carry no TID)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not SOAK,
              suppress_health_check=[HealthCheck.too_slow])
    @given(token=digits20)
    def random_digits(token: str) -> None:
        check(token)

    @settings(max_examples=EXAMPLES // 3, deadline=None, derandomize=not SOAK)
    @given(position=st.integers(0, 19), digit=st.sampled_from("0123456789"))
    def corrupted(position: int, digit: str) -> None:
        check(valid[:position] + digit + valid[position + 1:])

    random_digits()
    corrupted()
    for token in accepted:        # every accepted TID was recorded: a replay changes nothing
        before = snapshot(m)
        assert not submit(token, "keypad").accepted and snapshot(m) == before


@pytest.mark.parametrize("ea", [7, 11])
def test_random_tokens_never_crash_nor_change_state_unless_accepted(tmp_path: Path, ea: int) -> None:
    m = SimMeter(tmp_path, payment={**PREPAID, "ea": ea})
    try:
        assert m.service(PaymentService).processor.key_info()["ea"] == ea
        fuzz(m, ea)
    finally:
        m.close()


@pytest.mark.parametrize("token", NEGATIVE)
def test_negative_vectors_through_the_payment_feature_are_crc_errors(tmp_path: Path, token: str) -> None:
    m = SimMeter(tmp_path, payment=PREPAID)   # the sim meter's key is the vectors' decoder key
    try:
        before = snapshot(m)
        result = m.service(PaymentService).submit_token(token, "keypad")
        assert result.result == "CRCError" and result.display == "Reject" and snapshot(m) == before
    finally:
        m.close()
