"""Every published STS vector in tests/data/sts-vectors.json: KATs, key derivation, CRC, amounts and
tokens decode to their expected fields; negative tokens are rejected."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meterd.core.sts import sta
from meterd.core.sts.codec import (
    decode_amount16,
    decode_currency20,
    decode_token,
    encode_amount16,
    encode_token,
    token_crc,
)
from meterd.core.sts.keys import KeyInputs, dkga02, dkga04
from meterd.core.sts.misty1 import Misty1Cipher
from meterd.services.sts_crypto import DesCipher, des_cipher, sts_cipher_factory
from tests.paths import DATA

VECTORS: list[dict[str, Any]] = json.loads(
    (DATA / "sts-vectors.json").read_text())


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [v for v in VECTORS if v["kind"] == kind]


def ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in vectors]


def test_vector_file_is_complete() -> None:
    assert len(VECTORS) == 104
    assert len(of_kind("token")) == 78


@pytest.mark.parametrize("vec", of_kind("des_kat"), ids=ids(of_kind("des_kat")))
def test_des_kat(vec: dict[str, Any]) -> None:
    cipher = DesCipher(bytes.fromhex(vec["key_hex"]))
    assert cipher.encrypt_block(bytes.fromhex(vec["plaintext_hex"])).hex() == vec["ciphertext_hex"]
    assert cipher.decrypt_block(bytes.fromhex(vec["ciphertext_hex"])).hex() == vec["plaintext_hex"]


@pytest.mark.parametrize("vec", of_kind("misty1_kat"), ids=ids(of_kind("misty1_kat")))
def test_misty1_rfc2994(vec: dict[str, Any]) -> None:
    cipher = Misty1Cipher(bytes.fromhex(vec["key_hex"]))
    assert cipher.encrypt_block(bytes.fromhex(vec["plaintext_hex"])).hex() == vec["ciphertext_hex"]
    assert cipher.decrypt_block(bytes.fromhex(vec["ciphertext_hex"])).hex() == vec["plaintext_hex"]


def test_sta_worked_example() -> None:
    cipher = sta.StaCipher(bytes.fromhex("e653341f9d5bf36f"))
    assert cipher.encrypt_block(bytes.fromhex("05599863000119e6")).hex() == "492083c0ae7ce455"
    assert cipher.decrypt_block(bytes.fromhex("492083c0ae7ce455")).hex() == "05599863000119e6"
    assert encode_token(0, 0x05599863000119E6, cipher) == "23716100501183194197"


def test_sta_tables_are_permutations() -> None:
    assert sorted(sta.S1) == sorted(sta.S2) == list(range(16))
    assert sorted(sta.P) == list(range(64))
    assert all(sta.S1_INV[sta.S1[x]] == x for x in range(16))
    assert all(sta.P_INV[sta.P[i]] == i for i in range(64))


def key_inputs(raw: dict[str, Any]) -> KeyInputs:
    return KeyInputs(meter_pan=raw["meter_pan"], sgc=raw["sgc"], ti=raw["ti"], krn=raw["krn"],
                     kt=raw["kt"], base_date=raw["base_date"], ea=raw["ea"])


def derive(raw: dict[str, Any]) -> bytes:
    vk = bytes.fromhex(raw["vending_key_hex"])
    if raw["dkga"] == 2:
        return dkga02(vk, key_inputs(raw), des_cipher)
    return dkga04(vk, key_inputs(raw))


@pytest.mark.parametrize("vec", of_kind("dkga02") + of_kind("dkga04"),
                         ids=ids(of_kind("dkga02") + of_kind("dkga04")))
def test_decoder_key_generation(vec: dict[str, Any]) -> None:
    assert derive(vec["key_inputs"]).hex() == vec["decoder_key_hex"]


def test_token_key_inputs_reproduce_their_decoder_keys() -> None:
    checked = 0
    for vec in of_kind("token") + of_kind("negative_token"):
        for inputs_name, key_name in (("key_inputs", "decoder_key_hex"),
                                      ("new_key_inputs", "new_decoder_key_hex")):
            raw = vec.get(inputs_name)
            if raw is not None and raw.get("meter_pan") and vec.get(key_name):
                assert derive(raw).hex() == vec[key_name], vec["id"]
                checked += 1
    assert checked > 60


def test_crc_worked_example() -> None:
    vec = of_kind("crc")[0]
    block = (vec["subclass"] << 60) | (vec["rnd"] << 56) | (vec["tid"] << 32) | (int(vec["amount_field_hex"], 16) << 16)
    assert token_crc(vec["cls"], block) == int(vec["expected_crc_hex"], 16)


@pytest.mark.parametrize("vec", of_kind("amount"), ids=ids(of_kind("amount")))
def test_amount_encoding(vec: dict[str, Any]) -> None:
    field = encode_amount16(vec["requested_tenths"])
    assert field == int(vec["encoded_hex"], 16)
    assert decode_amount16(field) == vec["decoded_tenths"]


def test_currency_rounding_towards_plus_infinity() -> None:
    from meterd.core.sts.codec import encode_currency20
    # reference 2.4: 1 currency unit -> 1.00004, -1 -> -0.99994 (0.00001 units)
    assert decode_currency20(encode_currency20(100000)) == 100004
    assert decode_currency20(encode_currency20(-100000)) == -99994
    assert decode_currency20(encode_currency20(16383)) == 16383


EXPECTED_SCALARS = ("rnd", "tid", "amount_tenths", "unit", "section", "kenho", "kenlo", "krn", "ro",
                    "kt", "ti", "sgclo", "sgcho", "ext_index", "ext_value")


def check_fields(vec: dict[str, Any], decoded: Any) -> None:
    exp = vec["expected"]
    fields = decoded.fields
    assert decoded.token_class == exp["class"] and decoded.subclass == exp["subclass"]
    assert decoded.crc_ok and decoded.block == int(exp["datablock_hex"], 16)
    merged = {**fields, "rnd": decoded.rnd, "tid": decoded.tid}
    for name in EXPECTED_SCALARS:
        if name in exp and not (name == "unit" and exp["unit"].startswith("kl")):
            assert merged[name] == exp[name], name
    for name in ("nkho", "nklo", "nkmo1", "nkmo2"):
        if f"{name}_hex" in exp:
            assert fields[name] == int(exp[f"{name}_hex"], 16)
    if "res_or_3kct" in exp:
        assert fields["kct3"] == exp["res_or_3kct"]
    if "value_watts" in exp:
        assert exp["value_watts"] in (fields.get("max_power_limit_w"), fields.get("max_phase_unbalance_w"))
    if "register_to_clear_hex" in exp:
        assert fields["register_to_clear"] == int(exp["register_to_clear_hex"], 16)
    if "currency_value_1e5_units" in exp:
        assert fields["currency_1e5"] == exp["currency_value_1e5_units"]
    if "control_hex" in exp:
        assert fields["control"] == int(exp["control_hex"], 16)
        assert fields["mfr_code"] == exp["mfrcode"] and fields["mfr_code_digits"] == exp["mfrcode_digits"]


@pytest.mark.parametrize("vec", of_kind("token"), ids=ids(of_kind("token")))
def test_token_decodes_to_expected_fields(vec: dict[str, Any]) -> None:
    exp = vec["expected"]
    key = bytes.fromhex(vec["decoder_key_hex"]) if vec.get("decoder_key_hex") else None
    ea = vec["ea"] or 7
    base_date = (vec.get("key_inputs") or {}).get("base_date", 1993)
    decoded = decode_token(vec["token"], key, ea, base_date)
    check_fields(vec, decoded)
    if "tid_datetime" in exp:
        assert decoded.tid_datetime(base_date).strftime("%Y-%m-%dT%H:%M") == exp["tid_datetime"]
    if exp["class"] != 1:
        cipher = sts_cipher_factory(ea, key) if key else None
        assert encode_token(exp["class"], decoded.block, cipher) == vec["token"]


@pytest.mark.parametrize("vec", of_kind("negative_token"), ids=ids(of_kind("negative_token")))
def test_negative_tokens_fail_crc(vec: dict[str, Any]) -> None:
    decoded = decode_token(vec["token"], bytes.fromhex(vec["decoder_key_hex"]), vec["ea"], 2014)
    assert not decoded.crc_ok
