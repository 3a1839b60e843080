"""TokenProcessor: acceptance rules, TID memory, key change, key expiry, persistence and fuzzing."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterd.core.clock import UTC, SimClock
from meterd.core.sts import (
    KeyRegister,
    ResultName,
    StsConfig,
    StsState,
    StsStateError,
    TokenProcessor,
    TokenResult,
    commission,
)
from meterd.core.sts.cipher import core_cipher_factory
from meterd.core.sts.codec import encode_token
from meterd.core.sts.vending import (
    credit_token,
    currency_token,
    key_change_tokens,
    management_token,
    max_power_limit_token,
    meter_test_token,
)
from meterd.services.sts_crypto import sts_cipher_factory
from meterd.store.sts_store import SqliteStsStore
from tests.paths import DATA

# Public STS test keys (DKGA04 with the public test vending key; see tests/data/sts-vectors.json).
DK_EA07 = bytes.fromhex("87f3ecbb2e46b48f")          # SGC 201457, TI 01, KRN 1, BD 2014
DK_EA07_TI02 = bytes.fromhex("7f78cdd220be39b8")     # after the CTSA05 key change set (TI 02)
DK_EA11 = bytes.fromhex("929bd3a415c9420a05ec5ee9f3ce91c3")
DK_EA11_TI02 = bytes.fromhex("b199270a77af96d3156c51b0964a8782")


class MemoryStore:
    """In-memory StsStateStore double that records every save."""

    def __init__(self) -> None:
        self.saved: list[StsState] = []
        self.companions: list[Mapping[str, Any] | None] = []

    def load(self) -> StsState | None:
        return self.saved[-1] if self.saved else None

    def save(self, state: StsState, companion: Mapping[str, Any] | None = None) -> None:
        self.saved.append(state)
        self.companions.append(companion)


def register(key: bytes = DK_EA07, ea: int = 7, kt: int = 2, ken: int = 255) -> KeyRegister:
    return KeyRegister(key=key, ea=ea, kt=kt, krn=1, ti=1, ken=ken, sgc=201457, base_date=2014)


def make(reg: KeyRegister | None = None, slots: int = 50, config: StsConfig | None = None,
         store: Any = None, clock: SimClock | None = None) -> tuple[TokenProcessor, Any, SimClock]:
    store = store if store is not None else MemoryStore()
    if store.load() is None:
        commission(store, reg or register(), slots=slots)
    clock = clock or SimClock(dt.datetime(2026, 1, 1, tzinfo=UTC))
    return TokenProcessor(store, sts_cipher_factory, clock, config or StsConfig()), store, clock


def cipher(key: bytes = DK_EA07, ea: int = 7) -> Any:
    return core_cipher_factory(ea, key)


# --- scenario from the reference vectors --------------------------------------------------------

def test_used_and_old_scenario_from_vectors() -> None:
    proc, _, _ = make()
    first = proc.submit("40774607583449589001")
    assert first.result == ResultName.ACCEPT and first.amount_tenths == 16383 and first.unit == "kWh"
    assert first.tid == 5389955
    assert proc.submit("40774607583449589001").result == ResultName.USED
    assert proc.submit("35564630509785701608").result == ResultName.ACCEPT  # zero slots remain
    assert proc.submit("44332531357987631349").amount_tenths == 16384


def test_old_token_outside_the_memory_window() -> None:
    proc, _, _ = make(slots=3)
    c = cipher()
    for tid in (1000, 1001, 1002):
        assert proc.submit(credit_token(c, tid, 10)).result == ResultName.ACCEPT
    old = proc.submit(credit_token(c, 999, 10))
    assert old.result == ResultName.OLD and old.tid == 999
    assert proc.submit(credit_token(c, 1003, 10)).result == ResultName.ACCEPT
    assert proc.submit(credit_token(c, 1000, 10)).result == ResultName.OLD  # pushed out of the window
    assert proc.submit(credit_token(c, 1001, 10)).result == ResultName.USED


def test_manufacture_time_floor_makes_earlier_tokens_old() -> None:
    store = MemoryStore()
    commission(store, register(), manufacture_utc=dt.datetime(2025, 1, 1, tzinfo=UTC))
    proc, _, _ = make(store=store)
    early = proc.submit(credit_token(cipher(), 100, 1))
    assert early.result == ResultName.OLD


def test_wrong_key_is_crc_error_and_changes_nothing() -> None:
    proc, store, _ = make()
    before = len(store.saved)
    other = cipher(bytes.fromhex("0123456789abcdef"))
    assert proc.submit(credit_token(other, 5000, 10)).result == ResultName.CRC
    assert len(store.saved) == before


@pytest.mark.parametrize("digits", ["1234", "7378697629483820646x", "73786976294838206464", ""])
def test_format_errors(digits: str) -> None:
    proc, _, _ = make()
    assert proc.submit(digits).result == ResultName.FORMAT


def test_restart_refuses_replayed_token(tmp_path: Path) -> None:
    db = tmp_path / "sts.db"
    with SqliteStsStore(db) as store:
        proc, _, _ = make(store=store)
        token = credit_token(cipher(), 6_000_000, 100)
        assert proc.submit(token).result == ResultName.ACCEPT
    with SqliteStsStore(db) as store:  # "power cycle": a new processor on the same file
        proc2, _, _ = make(store=store)
        assert proc2.submit(token).result == ResultName.USED
        assert store.generation() == 2
    assert db.stat().st_mode & 0o077 == 0


def test_state_is_saved_before_the_result_is_reported() -> None:
    class FailingStore(MemoryStore):
        fail = False

        def save(self, state: StsState, companion: Mapping[str, Any] | None = None) -> None:
            if self.fail:
                raise StsStateError("disk full")
            super().save(state, companion)

    store = FailingStore()
    proc, _, _ = make(store=store)
    store.fail = True
    token = credit_token(cipher(), 6_000_000, 100)
    with pytest.raises(StsStateError):
        proc.submit(token)
    store.fail = False
    assert proc.submit(token).result == ResultName.ACCEPT  # not recorded, so not "used"


# --- key change ---------------------------------------------------------------------------------

def test_published_key_change_set_moves_meter_to_new_key() -> None:
    proc, _, _ = make()
    old_key_token = credit_token(cipher(), 6_000_000, 10)
    assert proc.submit("06510894141453018386").result == ResultName.KCT_1ST
    done = proc.submit("22979178279997208272")
    assert done.result == ResultName.ACCEPT and done.management["ti"] == 2
    assert "key" not in str(done.management).replace("key_change", "")
    assert proc.state.key_register.key == DK_EA07_TI02
    assert proc.state.previous_key is not None and proc.state.previous_key.key == DK_EA07
    assert proc.submit(old_key_token).result == ResultName.CRC
    assert proc.submit(credit_token(cipher(DK_EA07_TI02), 6_000_001, 10)).result == ResultName.ACCEPT


@pytest.mark.parametrize("order", [(3, 4), (4, 3)])
def test_two_token_set_in_either_order(order: tuple[int, int]) -> None:
    proc, _, _ = make()
    new_key = bytes.fromhex("1122334455667788")
    tokens = key_change_tokens(cipher(), 7, new_key, krn=2, kt=2, ti=5, ken=200)
    first = proc.submit(tokens[order[0]])
    assert first.result == (ResultName.KCT_1ST if order[0] == 3 else ResultName.KCT_2ND)
    assert proc.state.key_register.key == DK_EA07
    assert proc.submit(tokens[order[1]]).result == ResultName.ACCEPT
    reg = proc.state.key_register
    assert (reg.key, reg.krn, reg.ti, reg.ken, reg.kt) == (new_key, 2, 5, 200, 2)
    assert proc.state.staged_kct == {}


def test_three_token_ea07_set_carries_sgc() -> None:
    proc, _, _ = make()
    tokens = key_change_tokens(cipher(), 7, bytes(range(8)), krn=3, kt=2, ti=1, sgc=654321)
    assert proc.submit(tokens[8]).result == ResultName.KCT_3RD
    assert proc.submit(tokens[3]).result == ResultName.KCT_1ST
    assert proc.submit(tokens[4]).result == ResultName.ACCEPT
    assert proc.state.key_register.sgc == 654321 and proc.state.key_register.krn == 3


def test_four_token_ea11_set_any_order() -> None:
    proc, _, _ = make(register(DK_EA11, ea=11))
    new_key = bytes(range(16, 32))
    tokens = key_change_tokens(cipher(DK_EA11, 11), 11, new_key, krn=4, kt=2, ti=7, sgc=123457)
    for sub in (9, 4, 3):
        assert proc.submit(tokens[sub]).result != ResultName.ACCEPT
    assert proc.submit(tokens[8]).result == ResultName.ACCEPT
    reg = proc.state.key_register
    assert (reg.key, reg.krn, reg.ti, reg.sgc, reg.ea) == (new_key, 4, 7, 123457, 11)


def test_published_ea11_section_4_decodes_with_current_key() -> None:
    proc, _, _ = make(register(DK_EA11, ea=11))
    assert proc.submit("19019128690902932218").result == ResultName.KCT_4TH


def test_rollover_clears_tid_memory_and_advances_base_date() -> None:
    proc, _, _ = make()
    c = cipher()
    assert proc.submit(credit_token(c, 9_000_000, 10)).result == ResultName.ACCEPT
    new_key = bytes.fromhex("0f1e2d3c4b5a6978")
    for tok in key_change_tokens(c, 7, new_key, krn=2, kt=2, ti=1, ro=True).values():
        proc.submit(tok)
    assert proc.state.key_register.base_date == 2035
    assert set(proc.state.tid_memory) == {0}
    assert proc.submit(credit_token(cipher(new_key), 10, 10)).result == ResultName.ACCEPT


def test_partial_set_is_forgotten_after_timeout() -> None:
    proc, _, clock = make(config=StsConfig(kct_timeout_s=600))
    tokens = key_change_tokens(cipher(), 7, bytes(8), krn=2, kt=2, ti=1)
    proc.submit(tokens[3])
    clock.advance(601)
    assert proc.submit(tokens[4]).result == ResultName.KCT_2ND
    assert set(proc.state.staged_kct) == {4}
    assert proc.state.key_register.key == DK_EA07


def test_key_type_initialisation_refused_and_nothing_changes() -> None:
    proc, store, _ = make()
    tokens = key_change_tokens(cipher(), 7, bytes(8), krn=2, kt=0, ti=1)
    proc.submit(tokens[3])
    saves = len(store.saved)
    assert proc.submit(tokens[4]).result == ResultName.KEY_TYPE
    assert len(store.saved) == saves and proc.state.key_register.key == DK_EA07


def test_key_expiry() -> None:
    proc, _, _ = make(register(ken=170))
    c = cipher()
    assert proc.submit(credit_token(c, 11206655, 10)).result == ResultName.ACCEPT
    expired = proc.submit(credit_token(c, 11206656, 10))
    assert expired.result == ResultName.KEY_EXPIRED
    assert proc.submit(management_token(c, 5, 11206657, 0)).result == ResultName.KEY_EXPIRED
    # a key change is not KEN-checked and renews the expiry
    for tok in key_change_tokens(c, 7, bytes(8), krn=2, kt=2, ti=1, ken=255).values():
        proc.submit(tok)
    assert proc.submit(credit_token(cipher(bytes(8)), 11206656, 10)).result == ResultName.ACCEPT


def test_default_key_refuses_credit_but_not_management() -> None:
    proc, _, _ = make(register(kt=1))
    assert proc.submit(credit_token(cipher(), 5000, 10)).result == ResultName.DDTK
    assert proc.submit(management_token(cipher(), 5, 5001, 0)).result == ResultName.ACCEPT


# --- classes and functions ------------------------------------------------------------------------

def test_management_tokens_are_reported() -> None:
    proc, _, _ = make()
    c = cipher()
    mpl = proc.submit(max_power_limit_token(c, 7000, 5000))
    assert mpl.management == {"action": "set_max_power_limit", "max_power_limit_w": 5000}
    clear = proc.submit(management_token(c, 1, 7001, 0xFFFF))
    assert clear.management["action"] == "clear_credit" and clear.management["register_to_clear"] == 0xFFFF
    assert proc.submit(management_token(c, 5, 7002, 0)).management["clear_tamper"] is True
    unbalance = proc.submit(management_token(c, 6, 7003, 0x8000))
    assert unbalance.management["max_phase_unbalance_w"] == 180224
    assert proc.submit(management_token(c, 10, 7004, 0)).result == ResultName.FUNCTION


def test_max_power_limit_over_configured_range() -> None:
    proc, _, _ = make(config=StsConfig(max_power_limit_w=100_000))
    assert proc.submit(max_power_limit_token(cipher(), 7000, 200_000)).result == ResultName.RANGE


def test_unsupported_commodity_and_currency_opt_in() -> None:
    proc, _, _ = make()
    c = cipher()
    assert proc.submit(credit_token(c, 8000, 10, subclass=1)).result == ResultName.FUNCTION
    assert proc.submit(currency_token(c, 8001, 500000)).result == ResultName.FUNCTION
    proc2, _, _ = make(config=StsConfig(credit_subclasses=frozenset({0, 4})))
    cur = proc2.submit(currency_token(c, 8001, 500000))
    assert cur.result == ResultName.ACCEPT and cur.currency_1e5 is not None and cur.currency_1e5 >= 500000


def test_class1_test_tokens() -> None:
    proc, store, _ = make(config=StsConfig(mfr_code=42))
    saves = len(store.saved)
    published = proc.submit("00000000000150997584")
    assert published.result == ResultName.ACCEPT and published.control == {"control": 1, "mfr_code": 0}
    assert proc.submit(meter_test_token(0x10, 42)).result == ResultName.ACCEPT
    assert proc.submit(meter_test_token(0x10, 41)).result == ResultName.MFR_CODE
    assert proc.submit(meter_test_token(0x100, 0, four_digit_mfr=True)).control["control"] == 0x100
    assert len(store.saved) == saves  # class 1 changes no state


def test_lockout_after_repeated_rejects() -> None:
    proc, _, clock = make(config=StsConfig(lockout_after=3, lockout_base_s=10))
    bad = credit_token(cipher(bytes(8)), 5000, 10)
    for _ in range(3):
        assert proc.submit(bad).result == ResultName.CRC
    locked = proc.submit(credit_token(cipher(), 5000, 10))
    assert locked.result == ResultName.LOCKOUT and locked.lockout_s == pytest.approx(10)
    clock.advance(10.5)
    assert proc.submit(credit_token(cipher(), 5000, 10)).result == ResultName.ACCEPT


def test_gate_vetoes_overflow_and_supplies_companion() -> None:
    class Gate:
        def vet(self, result: TokenResult) -> ResultName | None:
            return ResultName.OVERFLOW if (result.amount_tenths or 0) > 1000 else None

        def companion(self, result: TokenResult) -> Mapping[str, Any] | None:
            return {"credit_tenths": result.amount_tenths}

    store = MemoryStore()
    commission(store, register())
    proc = TokenProcessor(store, sts_cipher_factory, SimClock(), StsConfig(), gate=Gate())
    assert proc.submit(credit_token(cipher(), 5000, 2000)).result == ResultName.OVERFLOW
    assert proc.submit(credit_token(cipher(), 5000, 20)).result == ResultName.ACCEPT
    assert store.companions[-1] == {"credit_tenths": 20}


def test_uncommissioned_store_is_refused() -> None:
    with pytest.raises(StsStateError):
        TokenProcessor(MemoryStore(), sts_cipher_factory, SimClock(), StsConfig())


def test_state_round_trips_and_hides_key_in_repr() -> None:
    proc, store, _ = make()
    proc.submit("06510894141453018386")
    state = store.saved[-1]
    assert StsState.from_dict(state.to_dict()) == state
    assert DK_EA07.hex() not in repr(state)


# --- fuzz -------------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=20, max_size=20))
def test_random_digits_never_crash_and_change_state_only_when_accepted(digits: str) -> None:
    proc, store, _ = make(config=StsConfig(lockout_after=0))
    before = store.saved[-1]
    result = proc.submit(digits)
    assert isinstance(result.result, str) and ResultName(result.result)
    if not result.accepted:
        assert store.saved[-1] is before and proc.state == before


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 24) - 1), st.integers(min_value=0, max_value=0xFFFF))
def test_any_valid_credit_token_round_trips(tid: int, field16: int) -> None:
    proc, _, _ = make(register(ken=255))
    from meterd.core.sts.codec import decode_amount16
    token = credit_token(cipher(), tid, decode_amount16(field16))
    result = proc.submit(token)
    if tid == 0:
        assert result.result == ResultName.USED  # slots are pre-filled with TID 0
    else:
        assert result.result == ResultName.ACCEPT and result.amount_tenths == decode_amount16(field16)


_VECTORS = json.loads((DATA / "sts-vectors.json").read_text())
NEGATIVE = [v for v in _VECTORS if v["kind"] == "negative_token"]


@pytest.mark.parametrize("vec", NEGATIVE, ids=[v["id"] for v in NEGATIVE])
def test_negative_vectors_through_the_processor_are_crc_errors(vec: dict[str, Any]) -> None:
    key_inputs = vec["key_inputs"]
    reg = KeyRegister(key=bytes.fromhex(vec["decoder_key_hex"]), ea=vec["ea"], kt=key_inputs["kt"],
                      krn=key_inputs["krn"], ti=int(key_inputs["ti"]), ken=key_inputs["ken"],
                      sgc=int(key_inputs["sgc"]), base_date=key_inputs["base_date"])
    proc, store, _ = make(reg)
    saves = len(store.saved)
    result = proc.submit(vec["token"])
    assert result.result == ResultName.CRC and not result.accepted and result.number == 13
    assert len(store.saved) == saves and proc.state.tid_memory == store.saved[-1].tid_memory


def test_reserved_class_3_is_a_function_error_when_its_crc_holds() -> None:
    proc, store, _ = make()
    saves = len(store.saved)
    well_formed = encode_token(3, (4 << 60) | (5 << 56) | (123 << 32) | (77 << 16), None)
    assert proc.submit(well_formed).result == ResultName.FUNCTION
    assert proc.lockout_rejects == 0 and len(store.saved) == saves
