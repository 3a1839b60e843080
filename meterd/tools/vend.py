"""``vend``: make STS tokens for a simulated or lab meter (the vending side, for the lab only).

    python -m meterd.tools.vend credit --kwh 10 --config config/sim.toml
    python -m meterd.tools.vend currency --amount 12.50 --config ...
    python -m meterd.tools.vend max-power --watts 4000 --config ...
    python -m meterd.tools.vend clear-credit --config ...
    python -m meterd.tools.vend key-change --new-krn 2 --config ...     # 2 or 4 tokens, in order

The meter's decoder key is derived with DKGA04 from the ``[payment]`` section of the meter's
configuration (``meter_pan``, ``sgc``, ``ti``, ``krn``, ``kt``, ``ea``, ``base_date``) and a
vending key: by default the *public STS test vending key*, which is what a simulated meter is
commissioned with (a real meter's key comes from its keys file and real tokens from a vending
system). ``--krn`` names the meter's current key revision after a key change.

Token identifiers (TID, minutes since the base date) come from the host clock, kept strictly
increasing per meter in a small ledger file (``--ledger``, default ``<state_dir>/vend-ledger.json``)
so two tokens made in the same minute are both accepted. Prints the 20-digit token(s); ``--json``
prints details. Exit status 0, or 1 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from meterd.app.features import load_config
from meterd.app.features.payment import PaymentSection
from meterd.core.errors import ConfigError
from meterd.core.sts import dkga04
from meterd.core.sts.codec import BASE_DATES, TID_MAX
from meterd.core.sts.keys import TEST_VENDING_KEY_DKGA04
from meterd.core.sts.vending import (
    credit_token,
    currency_token,
    key_change_tokens,
    management_token,
    max_power_limit_token,
)
from meterd.services.sts_crypto import sts_cipher_factory

EXIT_OK, EXIT_USAGE = 0, 1
CLEAR_ALL = 0xFFFF


class VendError(Exception):
    """A request the tool cannot turn into a token."""


def _section(config: str) -> tuple[PaymentSection, Path]:
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise VendError(str(exc)) from None
    return cfg.feature("payment"), cfg.state_dir


def next_tid(ledger: Path, meter_pan: str, base_date: int, now_utc: _dt.datetime) -> int:
    """A TID for ``now_utc`` (minutes since the base date), above every TID issued before."""
    minutes = int((now_utc - BASE_DATES[base_date]).total_seconds() // 60)
    issued: dict[str, int] = {}
    if ledger.exists():
        try:
            issued = {str(k): int(v) for k, v in json.loads(ledger.read_text(encoding="utf-8")).items()}
        except (ValueError, AttributeError):
            raise VendError(f"vend ledger {ledger} is damaged") from None
    key = f"{meter_pan}/{base_date}"
    tid = max(minutes, issued.get(key, -1) + 1)
    if not 0 <= tid <= TID_MAX:
        raise VendError("the TID does not fit 24 bits for this base date")
    issued[key] = tid
    ledger.parent.mkdir(parents=True, exist_ok=True)
    tmp = ledger.with_suffix(".tmp")
    tmp.write_text(json.dumps(issued, sort_keys=True), encoding="utf-8")
    tmp.replace(ledger)
    return tid


def _amount(text: str, scale: int, what: str) -> int:
    try:
        value = Decimal(text) * scale
    except InvalidOperation:
        raise VendError(f"{what} is not a number: {text!r}") from None
    if value <= 0 or value != value.to_integral_value():
        raise VendError(f"{what} must be positive with at most {len(str(scale)) - 1} decimals")
    return int(value)


def make_tokens(args: argparse.Namespace, now_utc: _dt.datetime) -> dict[str, Any]:
    """The token(s) for one parsed command line."""
    section, state_dir = _section(args.config)
    vk = bytes.fromhex(args.vending_key) if args.vending_key else TEST_VENDING_KEY_DKGA04
    inputs = section.key_inputs(args.krn)
    cipher = sts_cipher_factory(section.ea, dkga04(vk, inputs))
    if args.command == "key-change":
        new_key = dkga04(vk, section.key_inputs(args.new_krn))
        sets = key_change_tokens(cipher, section.ea, new_key, krn=args.new_krn, kt=section.kt,
                                 ti=int(section.ti), ro=args.rollover)
        return {"tokens": [sets[s] for s in sorted(sets)], "krn": args.new_krn}
    ledger = Path(args.ledger) if args.ledger else state_dir / "vend-ledger.json"
    tid = args.tid if args.tid is not None else next_tid(ledger, section.meter_pan, section.base_date, now_utc)
    if args.command == "credit":
        tenths = _amount(args.kwh, 10, "--kwh")
        return {"tokens": [credit_token(cipher, tid, tenths)], "tid": tid, "kwh": str(Decimal(tenths) / 10)}
    if args.command == "currency":
        value = _amount(args.amount, 100_000, "--amount")
        return {"tokens": [currency_token(cipher, tid, value)], "tid": tid, "amount": args.amount}
    if args.command == "max-power":
        return {"tokens": [max_power_limit_token(cipher, tid, args.watts)], "tid": tid, "watts": args.watts}
    return {"tokens": [management_token(cipher, 1, tid, CLEAR_ALL)], "tid": tid}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vend", description="Make STS tokens for a simulated or lab meter")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", required=True, help="the meter's configuration file (its [payment] section)")
    common.add_argument("--krn", type=int, choices=range(1, 10), help="the meter's current key revision")
    common.add_argument("--vending-key", help="vending key, hex (default: the public STS test key)")
    common.add_argument("--tid", type=int, help="token identifier (minutes since the base date)")
    common.add_argument("--ledger", help="TID ledger file (default <state_dir>/vend-ledger.json)")
    common.add_argument("--json", action="store_true", help="print details as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("credit", parents=[common], help="electricity credit").add_argument("--kwh", required=True)
    sub.add_parser("currency", parents=[common], help="currency credit").add_argument("--amount", required=True)
    sub.add_parser("max-power", parents=[common], help="set maximum power limit").add_argument(
        "--watts", type=int, required=True)
    sub.add_parser("clear-credit", parents=[common], help="clear the credit register")
    key = sub.add_parser("key-change", parents=[common], help="move the meter to another key revision")
    key.add_argument("--new-krn", type=int, required=True, choices=range(1, 10))
    key.add_argument("--rollover", action="store_true", help="clear the TID memory (base date rollover)")
    return parser


def main(argv: Sequence[str] | None = None, now_utc: _dt.datetime | None = None) -> int:
    """Entry point; ``now_utc`` for tests (default: the host clock)."""
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        out = make_tokens(args, now_utc or _dt.datetime.now(_dt.UTC))
    except (VendError, ValueError) as exc:
        print(f"vend: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(out) if args.json else "\n".join(out["tokens"]))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
