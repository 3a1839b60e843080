"""``sts decode`` command line: one token, JSON lines on stdin, error exit status."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from meterd.tools.sts_cli import main

DK_EA07 = "87f3ecbb2e46b48f"  # public STS test key (DKGA04, test vending key)
DK_EA11 = "f94b6ed353c3bfdb113e2d3a7ea3c41d"


def run(argv: list[str], stdin: str = "") -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    status = main(argv, stdin=io.StringIO(stdin), stdout=out)
    return status, [json.loads(line) for line in out.getvalue().splitlines()]


def test_decode_credit_vector() -> None:
    status, [doc] = run(["decode", "70630503470028726114", "--key", DK_EA07, "--ea", "7", "--base-date", "2014"])
    assert status == 0
    assert doc["class"] == 0 and doc["subclass"] == 0 and doc["rnd"] == 5 and doc["tid"] == 85740
    assert doc["tid_datetime"] == "2014-03-01T13:00" and doc["crc_ok"] is True
    assert doc["amount_tenths"] == 1 and doc["amount"] == "0.1" and doc["unit"] == "kWh"
    assert DK_EA07 not in json.dumps(doc)


def test_decode_management_and_class1() -> None:
    status, [mpl] = run(["decode", "68961683064326234122", "--key", DK_EA07, "--base-date", "2014"])
    assert status == 0 and mpl["class"] == 2 and mpl["max_power_limit_w"] == 1000
    status, [test] = run(["decode", "00000000000150997584"])
    assert status == 0 and test["class"] == 1 and test["control"] == 1 and test["mfr_code"] == 0


def test_stdin_json_lines_mixed_results() -> None:
    lines = "\n".join(json.dumps(x) for x in [
        {"token": "59386323472137426967", "key_hex": DK_EA11, "ea": 11, "base_date": 1993},
        {"token": "70630504470028726114", "key_hex": DK_EA07, "ea": 7, "base_date": 2014},
        {"token": "12", "key_hex": DK_EA07, "ea": 7, "base_date": 2014},
    ]) + "\n"
    status, docs = run(["decode", "--stdin"], lines)
    assert status == 2 and len(docs) == 3
    assert docs[0]["tid_datetime"] == "2004-03-01T13:00" and docs[0]["amount"] == "0.1"
    assert docs[1]["error"] == "crc" and docs[2]["error"] == "format"


def test_wrong_key_length_is_an_error_not_a_crash() -> None:
    status, [doc] = run(["decode", "70630503470028726114", "--key", "abcd", "--ea", "7"])
    assert status == 2 and doc["error"] == "key"


def test_usage_error() -> None:
    assert run(["decode"])[0] == 1
    assert run(["nonsense"])[0] == 1


def test_runs_as_a_module() -> None:
    proc = subprocess.run([sys.executable, "-m", "meterd.tools.sts_cli", "decode", "70630504470028726114",
                           "--key", DK_EA07, "--base-date", "2014"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"] == "crc"
