"""``sts`` command line: decode IEC 62055-41 tokens to JSON (``meterctl sts decode`` delegates here).

    sts decode TOKEN [--key HEX] [--ea 7|11] [--base-date 1993|2014|2035]
    sts decode --stdin        # JSON lines {"token", "key_hex", "ea", "base_date"} -> JSON lines

Exit status: 0 all decoded, 2 a token failed (format, decryption or CRC), 1 usage error.
The key is never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from meterd.core.sts.codec import CURRENCY_SUBCLASSES, DecodedToken, decode_token
from meterd.core.sts.errors import StsError, TokenFormatError
from meterd.services.sts_crypto import sts_cipher_factory

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_TOKEN_ERROR = 2
HEX_FIELDS = ("nkho", "nklo", "nkmo1", "nkmo2")


class TokenDecodeFailure(Exception):
    """One token could not be decoded; ``kind`` is format, key or crc."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _tenths_text(tenths: int) -> str:
    return f"{tenths // 10}.{tenths % 10}"


def _currency_text(value_1e5: int) -> str:
    sign = "-" if value_1e5 < 0 else ""
    whole, frac = divmod(abs(value_1e5), 100_000)
    return f"{sign}{whole}.{frac:05d}"


def _value_fields(decoded: DecodedToken) -> dict[str, Any]:
    f = decoded.fields
    if decoded.token_class == 0 and decoded.subclass in CURRENCY_SUBCLASSES:
        return {"commodity": f["commodity"], "currency_1e5": f["currency_1e5"],
                "amount": _currency_text(f["currency_1e5"]), "unit": "currency"}
    if decoded.token_class == 0 and "amount_tenths" in f:
        return {"commodity": f["commodity"], "amount_tenths": f["amount_tenths"],
                "amount": _tenths_text(f["amount_tenths"]), "unit": f["unit"]}
    if decoded.token_class == 1:
        out = dict(f)
        if "control" in out:
            out["control_hex"] = f"0x{out['control']:x}"
        return out
    return {k: (f"{v:08x}" if k in HEX_FIELDS else v) for k, v in f.items() if k != "field16"}


def decode_to_json(token: str, key_hex: str | None, ea: int, base_date: int) -> dict[str, Any]:
    """Decode one token into the CLI's JSON object; TokenDecodeFailure when it does not decode."""
    try:
        key = bytes.fromhex(key_hex) if key_hex else None
    except ValueError:
        raise TokenDecodeFailure("key", "the key is not hexadecimal") from None
    try:
        cipher = sts_cipher_factory(ea, key) if key is not None else None
        decoded = decode_token(token, key, ea, base_date, cipher)
    except StsError as exc:
        kind = "format" if isinstance(exc, TokenFormatError) else "key"
        raise TokenDecodeFailure(kind, str(exc)) from None
    except ValueError as exc:
        raise TokenDecodeFailure("key", str(exc)) from None
    if not decoded.crc_ok:
        raise TokenDecodeFailure("crc", "CRC mismatch: wrong key, wrong meter or mistyped digit")
    when = decoded.tid_datetime(base_date)
    return {
        "token": token.strip(), "class": decoded.token_class, "subclass": decoded.subclass,
        "rnd": decoded.rnd, "tid": decoded.tid,
        "tid_datetime": None if when is None else when.strftime("%Y-%m-%dT%H:%M"),
        "crc_ok": True, "block_hex": f"{decoded.block:016x}", **_value_fields(decoded),
    }


def _error_json(token: str, failure: TokenDecodeFailure) -> dict[str, Any]:
    return {"token": token, "error": failure.kind, "message": str(failure), "crc_ok": False}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sts", description="Decode STS (IEC 62055-41) tokens")
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode a token to JSON")
    dec.add_argument("token", nargs="?", help="20 digits")
    dec.add_argument("--key", help="decoder key, hex (8 bytes EA07, 16 bytes EA11)")
    dec.add_argument("--ea", type=int, choices=(7, 9, 11), default=7)
    dec.add_argument("--base-date", type=int, choices=(1993, 2014, 2035), default=1993)
    dec.add_argument("--stdin", action="store_true", help="read JSON lines from standard input")
    return parser


def _decode_one(args: argparse.Namespace, out: TextIO) -> int:
    try:
        doc = decode_to_json(args.token, args.key, args.ea, args.base_date)
    except TokenDecodeFailure as failure:
        print(json.dumps(_error_json(args.token, failure)), file=out)
        return EXIT_TOKEN_ERROR
    print(json.dumps(doc), file=out)
    return EXIT_OK


def _decode_lines(lines: TextIO, out: TextIO) -> int:
    status = EXIT_OK
    for line in lines:
        if not line.strip():
            continue
        token = ""
        try:
            req = json.loads(line)
            token = str(req["token"])
            doc = decode_to_json(token, req.get("key_hex"), int(req.get("ea", 7)), int(req.get("base_date", 1993)))
        except TokenDecodeFailure as failure:
            doc, status = _error_json(token, failure), EXIT_TOKEN_ERROR
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            doc = _error_json(token, TokenDecodeFailure("request", "bad request line"))
            status = EXIT_TOKEN_ERROR
        print(json.dumps(doc), file=out, flush=True)
    return status


def main(argv: Sequence[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """Entry point; returns the exit status."""
    out = stdout or sys.stdout
    try:
        args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if args.stdin:
        return _decode_lines(stdin or sys.stdin, out)
    if not args.token:
        print(json.dumps({"error": "usage", "message": "give a TOKEN or --stdin"}), file=out)
        return EXIT_USAGE
    return _decode_one(args, out)


if __name__ == "__main__":
    raise SystemExit(main())
