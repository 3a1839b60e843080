"""meterctl: the command-line client of meterd's local API.

  meterctl [--json] status
  meterctl sim set --phase A|B|C|all [--voltage V] [--current A] [--pf 0.5L|0.8C|1] [--frequency Hz]
  meterctl sim scenario FILE
  meterctl sim power-fail | power-restore
  meterctl token 12345678901234567890
  meterctl events [--limit N] [--log standard|fraud|disconnector|power_quality|...]
  meterctl alarms-clear [--mask M]
  meterctl pq
  meterctl credit [mode prepaid|postpaid | emergency]
  meterctl relay [disconnect|reconnect|remote-disconnect|remote-reconnect|mode N|button [--long]]
  meterctl tariff | billing-reset
  meterctl ciu [pair]
  meterctl display button next|previous
  meterctl sts decode TOKEN --key HEX --ea 7|11 --base-date 1993|2014|2035   (offline)

The socket comes from --socket, else $METERD_SOCKET, else the [api] socket of --config /
$METERD_CONFIG / /etc/meterd/meterd.toml. Exit status: 0 ok, 1 the meter refused, 2 usage or
connection error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from meterd.api.views import status_table, text_table


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a UNIX stream socket."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def request(socket_path: str, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """One API call; returns (HTTP status, JSON object)."""
    conn = UnixHTTPConnection(socket_path, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = json.loads(resp.read() or b"{}")
        return resp.status, payload
    finally:
        conn.close()


def find_socket(args: argparse.Namespace) -> str:
    """Resolve the API socket path from the arguments, the environment or the config."""
    if args.socket:
        return str(args.socket)
    if os.environ.get("METERD_SOCKET"):
        return os.environ["METERD_SOCKET"]
    config = args.config or os.environ.get("METERD_CONFIG") or "/etc/meterd/meterd.toml"
    from meterd.app.features import load_config  # the client reads the same config as the daemon

    cfg = load_config(config)
    return str(cfg.under_state(cfg.api.socket))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterctl", description="Talk to the local meterd.")
    parser.add_argument("--socket", help="API socket path")
    parser.add_argument("--config", help="meterd config file (to find the socket)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="instantaneous values, energy registers and status")
    sim = sub.add_parser("sim", help="drive the simulated grid").add_subparsers(dest="sim_command", required=True)
    s = sim.add_parser("set", help="set a phase's voltage, current, power factor")
    s.add_argument("--phase", default="all", choices=["A", "B", "C", "all", "L1", "L2", "L3"])
    s.add_argument("--voltage", type=float, help="RMS voltage (V)")
    s.add_argument("--current", type=float, help="RMS current (A)")
    s.add_argument("--pf", help="power factor: 1, 0.5L (lagging), 0.8C (leading); negative = export")
    s.add_argument("--frequency", type=float, help="frequency (Hz)")
    sc = sim.add_parser("scenario", help="load a TOML scenario file")
    sc.add_argument("file")
    sim.add_parser("power-fail", help="cut the supply and raise the power-fail input")
    sim.add_parser("power-restore", help="restore the supply")
    tok = sub.add_parser("token", help="enter a 20-digit STS token")
    tok.add_argument("digits")
    ev = sub.add_parser("events", help="recent events from all logs (or one)")
    ev.add_argument("--limit", type=int, default=50)
    ev.add_argument("--log", help="one log: standard, fraud, disconnector, power_quality, communication, ...")
    al = sub.add_parser("alarms-clear", help="clear the alarm register (0-0:97.98.0.255)")
    al.add_argument("--mask", type=lambda v: int(v, 0), help="bits to clear (default all)")
    sub.add_parser("pq", help="power quality: RMS, THD, harmonics, flicker, aggregates")
    cr = sub.add_parser("credit", help="prepayment credit; switch payment mode; emergency credit")
    cr.add_argument("action", nargs="*", help="mode prepaid|postpaid, or emergency")
    rl = sub.add_parser("relay", help="relay state; local or remote disconnect/reconnect; control mode; button")
    rl.add_argument("action", nargs="?",
                    choices=["disconnect", "reconnect", "remote-disconnect", "remote-reconnect", "mode", "button"])
    rl.add_argument("value", nargs="?", type=int, help="control mode 0..6 (with 'mode')")
    rl.add_argument("--long", action="store_true", help="a long button press (local disconnect)")
    sub.add_parser("tariff", help="active rate, rate registers, maximum demand")
    sub.add_parser("billing-reset", help="end the billing period now (MD reset)")
    ci = sub.add_parser("ciu", help="CIU link state; open pairing")
    ci.add_argument("action", nargs="?", choices=["pair"])
    dp = sub.add_parser("display", help="meter LCD")
    dp.add_argument("action", choices=["button"])
    dp.add_argument("button", choices=["next", "previous"])
    sts = sub.add_parser("sts", help="offline STS tools", add_help=False)
    sts.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        status, payload = request(find_socket(args), method, path, body)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        print(f"meterctl: cannot reach meterd: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if status != 200:
        print(f"meterctl: {payload.get('error', status)}", file=sys.stderr)
        raise SystemExit(1)
    return payload


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command_at = _first_positional(argv)
    if command_at is not None and argv[command_at] == "sts":
        from meterd.tools.sts_cli import main as sts_main  # offline: no meterd needed

        return sts_main(argv[command_at + 1:])
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except Exception as exc:  # config errors and the like: one line, status 2
        print(f"meterctl: {exc}", file=sys.stderr)
        return 2


def _first_positional(argv: list[str]) -> int | None:
    """Index of the command word, skipping the global options."""
    i = 0
    while i < len(argv):
        if argv[i] in ("--socket", "--config"):
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "status":
        view = _call(args, "GET", "/status")
        print(json.dumps(view, sort_keys=True) if args.json else status_table(view))
    elif args.command == "sim":
        if args.sim_command == "set":
            body: dict[str, Any] = {k: v for k, v in {"phase": args.phase, "voltage_v": args.voltage, "current_a": args.current,
                                      "power_factor": args.pf, "frequency_hz": args.frequency}.items()
                    if v is not None}
            _print(args, _call(args, "POST", "/sim/set", body))
        elif args.sim_command == "scenario":
            text = Path(args.file).read_text(encoding="utf-8")
            _print(args, _call(args, "POST", "/sim/scenario", {"toml": text, "name": args.file}))
        else:
            _print(args, _call(args, "POST", f"/sim/{args.sim_command}", {}))
    elif args.command == "token":
        _print(args, _call(args, "POST", "/token", {"token": args.digits}))
    elif args.command == "credit":
        _print(args, _credit(args))
    elif args.command == "relay":
        _print(args, _relay(args))
    elif args.command == "tariff":
        _print(args, _call(args, "GET", "/tariff"))
    elif args.command == "billing-reset":
        _print(args, _call(args, "POST", "/billing/reset", {}))
    elif args.command == "ciu":
        _print(args, _call(args, "POST", "/ciu/pair", {}) if args.action else _call(args, "GET", "/ciu"))
    elif args.command == "display":
        _print(args, _call(args, "POST", "/display/button", {"button": args.button}))
    elif args.command == "events":
        body = {"limit": args.limit}
        if args.log:
            body["log"] = args.log
        _print(args, _call(args, "POST", "/events", body))
    elif args.command == "alarms-clear":
        _print(args, _call(args, "POST", "/alarms/clear", {} if args.mask is None else {"mask": args.mask}))
    elif args.command == "pq":
        _print(args, _call(args, "GET", "/pq"))
    return 0


def _relay(args: argparse.Namespace) -> dict[str, Any]:
    if args.action is None:
        return _call(args, "GET", "/relay")
    if args.action == "mode":
        if args.value is None:
            print("meterctl: relay mode N (0..6)", file=sys.stderr)
            raise SystemExit(2)
        return _call(args, "POST", "/relay", {"control_mode": args.value})
    if args.action == "button":
        return _call(args, "POST", "/relay/button", {"long": args.long})
    return _call(args, "POST", "/relay", {"action": args.action.replace("-", "_")})


def _credit(args: argparse.Namespace) -> dict[str, Any]:
    action = args.action
    if not action:
        return _call(args, "GET", "/credit")
    if action[0] == "mode" and len(action) == 2 and action[1] in ("prepaid", "postpaid"):
        return _call(args, "POST", "/credit/mode", {"mode": action[1]})
    if action == ["emergency"]:
        return _call(args, "POST", "/credit/emergency", {})
    print("meterctl: credit [mode prepaid|postpaid | emergency]", file=sys.stderr)
    raise SystemExit(2)


def _print(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(payload, sort_keys=True))
    else:
        print(text_table(payload))


if __name__ == "__main__":
    raise SystemExit(main())
