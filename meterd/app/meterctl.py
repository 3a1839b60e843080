"""meterctl: the command-line client of meterd's local API.

  meterctl status
  meterctl sim set --phase A|B|C|all [--voltage V] [--current A] [--pf 0.5L|0.8C|1] [--frequency Hz]
  meterctl sim scenario FILE
  meterctl sim power-fail | power-restore
  meterctl sim fault KIND [--duration S] [--param NAME=VALUE ...] [--rate R] [--seed N] | fault-clear [KIND]
  meterctl sim faults
  meterctl token 12345678901234567890
  meterctl events [--limit N] [--log standard|fraud|disconnector|power_quality|...]
  meterctl alarms-clear [--mask M]
  meterctl pq
  meterctl credit [mode prepaid|postpaid | emergency]
  meterctl relay [disconnect|reconnect|remote-disconnect|remote-reconnect|mode N|button [--long]]
  meterctl tariff | billing-reset
  meterctl ciu [pair]
  meterctl display button next|previous
  meterctl firmware [status | verify BUNDLE | install BUNDLE]   (the A/B update, docs/firmware.md)
  meterctl firmware --ciu [status | install BUNDLE]            (the CIU's, carried over the link)
  meterctl api-tokens          (the network API's address and tokens; UNIX socket only)
  meterctl certificates        (DLMS suites 1 and 2: certificates and server key pairs held; read-only)
  meterctl sts decode TOKEN --key HEX --ea 7|11 --base-date 1993|2014|2035   (offline)

``--json`` (raw JSON instead of tables), ``--socket PATH`` and ``--config FILE`` go before or
after the command. The socket is the first of: ``--socket``; the ``[api] socket`` under the
``[storage] state_dir`` of ``--config``; ``$METERD_SOCKET`` (``make run`` prints it); the
config named by ``$METERD_CONFIG``; ``var/run-sim/meterd.sock`` (what ``make run`` makes) when
it exists here; the config ``/etc/meterd/meterd.toml``.

Energy and credit are printed with the same decimals everywhere (kWh and Wh with three), never
as a negative zero. Exit status: 0 ok; 1 the meter refused (a token rejected, a command not
accepted, an API error); 2 usage error, or meterd not reachable (not running, stale socket);
141 when the reader of the output went away (``meterctl events | head``), silently.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from meterd.api.views import status_table, text_table, text_value
from meterd.client import MeterClient


def request(socket_path: str, method: str, path: str, body: dict[str, Any] | None = None,
            timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    """One API call over the UNIX socket; returns (HTTP status, JSON object)."""
    return MeterClient(socket_path, timeout_s=timeout).request(method, path, body)


SIM_RUN_SOCKET = Path("var/run-sim/meterd.sock")  # where `make run` puts it, from the source tree
SYSTEM_CONFIG = "/etc/meterd/meterd.toml"
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CLOSED_PIPE = 128 + 13  # as a tool killed by SIGPIPE
FIRMWARE_TIMEOUT_S = 1800.0  # a firmware verify or install of a large bundle on an SD card (s)


class Failure(Exception):
    """A failed command: one line for stderr and the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def config_socket(config: str) -> str:
    """The API socket a meterd run with ``config`` listens on (``[api] socket`` under
    ``[storage] state_dir``, as the daemon computes it)."""
    from meterd.app.features import load_config  # the client reads the same config as the daemon

    cfg = load_config(config)
    return str(cfg.under_state(cfg.api.socket))


def find_socket(args: argparse.Namespace) -> str:
    """Resolve the API socket path: --socket, --config, $METERD_SOCKET, $METERD_CONFIG, the
    `make run` socket when it exists here, the system config."""
    if args.socket:
        return str(args.socket)
    if args.config:
        return config_socket(args.config)
    if os.environ.get("METERD_SOCKET"):
        return os.environ["METERD_SOCKET"]
    if os.environ.get("METERD_CONFIG"):
        return config_socket(os.environ["METERD_CONFIG"])
    if SIM_RUN_SOCKET.exists():
        return str(SIM_RUN_SOCKET)
    if not Path(SYSTEM_CONFIG).exists():
        raise Failure(f"no meterd socket found: give --socket PATH or --config FILE, set METERD_SOCKET, or run "
                      f"`make run` here ({SIM_RUN_SOCKET}); {SYSTEM_CONFIG} does not exist", EXIT_USAGE)
    return config_socket(SYSTEM_CONFIG)


def common_options(top: bool) -> argparse.ArgumentParser:
    """--socket, --config and --json, accepted before and after the command words (after it,
    without a default, so that they do not undo what was given before)."""
    parser = argparse.ArgumentParser(add_help=False)
    unset = None if top else argparse.SUPPRESS
    parser.add_argument("--socket", default=unset, help="API socket path")
    parser.add_argument("--config", default=unset, help="meterd config file (to find the socket)")
    parser.add_argument("--json", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="print the API's JSON instead of tables")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterctl", description="Talk to the local meterd.",
                                     parents=[common_options(top=True)])
    common = common_options(top=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_with_parents(common))
    sub.add_parser("status", help="instantaneous values, energy registers and status")
    sim = sub.add_parser("sim", help="drive the simulated grid").add_subparsers(
        dest="sim_command", required=True, parser_class=_with_parents(common))
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
    sf = sim.add_parser("fault", help="inject a fault: the grid, wiring, relay, supply, tamper inputs, RTC battery "
                                      "or the metering IC (`meterctl sim faults` lists the kinds)")
    sf.add_argument("kind")
    sf.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a fault parameter, e.g. --param phase=L2 --param residual_pct=40 (repeatable)")
    sf.add_argument("--duration", type=float, help="meter seconds (default: until fault-clear)")
    sf.add_argument("--rate", type=float, help="bit_flips: probability per SDO bit (default 0.001)")
    sf.add_argument("--seed", type=int, help="bit_flips: random seed (default 0)")
    ss = sim.add_parser("slow-storage", help="make every energy-database write take DELAY s longer (0: normal)")
    ss.add_argument("delay", type=float, help="extra time per write (s)")
    ss.add_argument("--duration", type=float, help="meter seconds (default: until changed)")
    sfc = sim.add_parser("fault-clear", help="end an injected fault (all when no kind)")
    sim.add_parser("faults", help="the fault kinds with their parameters, and the faults in force")
    sfc.add_argument("kind", nargs="?")
    tok = sub.add_parser("token", help="enter a 20-digit STS token")
    tok.add_argument("digits")
    ev = sub.add_parser("events", help="recent events from all logs (or one)")
    ev.add_argument("--limit", type=int, default=50)
    ev.add_argument("--log", help="one log: standard, fraud, disconnector, power_quality, communication, ...")
    al = sub.add_parser("alarms-clear", help="clear the alarm register (0-0:97.98.0.255)")
    al.add_argument("--mask", type=lambda v: int(v, 0), help="bits to clear (default all)")
    sub.add_parser("pq", help="power quality: RMS, THD, harmonics, flicker, aggregates, EN 50160 week verdict")
    pqt = sub.add_parser("pq-thresholds", help="PQ event thresholds in force; --set NAME=VALUE changes them")
    pqt.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="e.g. dip_threshold_pct=85 (Udin in V, thresholds in %% of Udin, durations in s)")
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
    sub.add_parser("modem", help="cellular modem diagnostics (registration, signal, operator, bearer, IP, "
                   "counters) and the communication media")
    dp = sub.add_parser("display", help="meter LCD")
    dp.add_argument("action", choices=["button"])
    dp.add_argument("button", choices=["next", "previous"])
    sub.add_parser("push", help="pushes to the head end: each push setup, the medium and the queue")
    sub.add_parser("api-tokens", help="the network API's address and its read and control tokens")
    sub.add_parser("certificates", help="DLMS suites 1 and 2: the certificates and server key pairs held")
    fw = sub.add_parser("firmware", help="running firmware and slots; verify or install an update bundle")
    fw.add_argument("action", nargs="?", default="status", choices=["status", "verify", "install"])
    fw.add_argument("bundle", nargs="?", help="the RAUC bundle (verify, install)")
    fw.add_argument("--ciu", action="store_true",
                    help="the CIU's firmware: status, or install (verified, then carried to the CIU over the link)")
    sts = sub.add_parser("sts", help="offline STS tools", add_help=False)
    sts.add_argument("rest", nargs=argparse.REMAINDER)
    from meterd.tools.calibration_cli import add_commands  # calibrate, accuracy-test

    add_commands(sub)
    return parser


def _with_parents(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    """An ArgumentParser class whose instances (the sub-command parsers) all take ``common``'s
    options."""

    class SubParser(argparse.ArgumentParser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["parents"] = [*kwargs.get("parents", []), common]
            super().__init__(*args, **kwargs)

    return SubParser


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None,
          ok: tuple[int, ...] = (200,), timeout: float = 10.0) -> dict[str, Any]:
    socket_path = find_socket(args)
    try:
        status, payload = request(socket_path, method, path, body, timeout=timeout)
    except FileNotFoundError:
        raise Failure(f"meterd is not running (no socket at {socket_path})", EXIT_USAGE) from None
    except ConnectionRefusedError:
        raise Failure(f"meterd is not running (stale socket {socket_path})", EXIT_USAGE) from None
    except PermissionError:
        raise Failure(f"no permission to use {socket_path} (meterd's user and group may)", EXIT_USAGE) from None
    except TimeoutError:
        raise Failure(f"meterd did not answer on {socket_path}", EXIT_USAGE) from None
    except OSError as exc:
        raise Failure(f"cannot reach meterd on {socket_path}: {exc.strerror or exc}", EXIT_USAGE) from None
    if status not in ok:
        raise Failure(str(payload.get("error", f"HTTP status {status}")), EXIT_REFUSED)
    return payload


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        return _main(argv)
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_CLOSED_PIPE


def _main(argv: list[str]) -> int:
    command_at = _first_positional(argv)
    if command_at is not None and argv[command_at] == "sts":
        from meterd.tools.sts_cli import main as sts_main  # offline: no meterd needed

        return sts_main(argv[command_at + 1:])
    args = build_parser().parse_args(argv)
    try:
        status = _dispatch(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler
        return status
    except Failure as exc:
        sys.stdout.flush()
        print(f"meterctl: {exc}", file=sys.stderr)
        return exc.status
    except SystemExit as exc:
        return int(exc.code or 0)
    except BrokenPipeError:
        raise
    except Exception as exc:  # config errors and the like: one line, status 2
        print(f"meterctl: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _quiet_stdout() -> None:
    """The reader is gone: point stdout at /dev/null so that the interpreter's final flush
    finds nothing to complain about."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
        print(json.dumps(view, sort_keys=True) if args.json else status_table(_status_numbers(view)))
    elif args.command == "sim":
        if args.sim_command == "set":
            body: dict[str, Any] = {k: v for k, v in {"phase": args.phase, "voltage_v": args.voltage, "current_a": args.current,
                                      "power_factor": args.pf, "frequency_hz": args.frequency}.items()
                    if v is not None}
            _print(args, _call(args, "POST", "/sim/set", body))
        elif args.sim_command == "scenario":
            text = Path(args.file).read_text(encoding="utf-8")
            _print(args, _call(args, "POST", "/sim/scenario", {"toml": text, "name": args.file}))
        elif args.sim_command == "fault":
            fault = {k: v for k, v in {"kind": args.kind, "duration_s": args.duration, "rate": args.rate,
                                       "seed": args.seed}.items() if v is not None}
            fault.update(_fault_params(args.param))
            _print(args, _call(args, "POST", "/sim/fault", fault))
        elif args.sim_command == "slow-storage":
            slow = {k: v for k, v in {"delay_s": args.delay, "duration_s": args.duration}.items() if v is not None}
            _print(args, _call(args, "POST", "/sim/slow-storage", slow))
        elif args.sim_command == "faults":
            _print(args, _call(args, "GET", "/sim/faults"))
        elif args.sim_command == "fault-clear":
            _print(args, _call(args, "POST", "/sim/fault-clear", {"kind": args.kind} if args.kind else {}))
        else:
            _print(args, _call(args, "POST", f"/sim/{args.sim_command}", {}))
    elif args.command == "token":
        answer = _call(args, "POST", "/token", {"token": args.digits})
        _print(args, answer)
        if answer.get("accepted") is False:
            reason = answer.get("result", "refused")
            shown = answer.get("display")
            raise Failure(f"token refused: {reason}" + (f" ({shown})" if shown and shown != reason else ""),
                          EXIT_REFUSED)
    elif args.command == "credit":
        answer = _credit(args)
        _print(args, answer)
        if answer.get("granted") is False:
            raise Failure("emergency credit not granted", EXIT_REFUSED)
    elif args.command == "relay":
        answer = _relay(args)
        _print(args, answer)
        if answer.get("accepted") is False:
            raise Failure(f"relay command not accepted{_reason(answer)}", EXIT_REFUSED)
    elif args.command == "tariff":
        _print(args, _call(args, "GET", "/tariff"))
    elif args.command == "billing-reset":
        _print(args, _call(args, "POST", "/billing/reset", {}))
    elif args.command == "ciu":
        _print(args, _call(args, "POST", "/ciu/pair", {}) if args.action else _call(args, "GET", "/ciu"))
    elif args.command == "display":
        _print(args, _call(args, "POST", "/display/button", {"button": args.button}))
    elif args.command == "modem":
        view = _call(args, "GET", "/modem", ok=(200, 404))
        if "error" in view:
            raise Failure("this meter runs no modem or media fallback ([comms] enabled = false in its configuration)",
                          EXIT_REFUSED)
        _print(args, view)
    elif args.command == "events":
        body = {"limit": args.limit}
        if args.log:
            body["log"] = args.log
        answer = _call(args, "POST", "/events", body)
        print(json.dumps(answer, sort_keys=True) if args.json else events_table(answer.get("events", [])))
    elif args.command == "alarms-clear":
        _print(args, _call(args, "POST", "/alarms/clear", {} if args.mask is None else {"mask": args.mask}))
    elif args.command == "pq":
        _pq(args, _call(args, "GET", "/pq"))
    elif args.command == "pq-thresholds":
        try:
            changes = {k: float(v) for k, _, v in (item.partition("=") for item in args.set)}
        except ValueError:
            raise SystemExit(f"meterctl: --set takes NAME=NUMBER, got {' '.join(args.set)}") from None
        _print(args, _call(args, "POST", "/pq/thresholds", changes) if changes else _call(args, "GET", "/pq/thresholds"))
    elif args.command == "push":
        _print(args, _call(args, "GET", "/push"))
    elif args.command == "api-tokens":
        _print(args, _call(args, "GET", "/api/tokens"))
    elif args.command == "certificates":
        view = _call(args, "GET", "/certificates", ok=(200, 404))
        if "error" in view:
            raise Failure("this meter holds no DLMS keys or certificates (its DLMS server is off)", EXIT_REFUSED)
        print(json.dumps(view, sort_keys=True) if args.json else certificates_table(view))
    elif args.command in ("calibrate", "accuracy-test"):
        _print(args, _calibration(args))
    elif args.command == "firmware":
        _firmware(args)
    return 0


def _firmware(args: argparse.Namespace) -> None:
    """``meterctl firmware``: status, or a bundle verified or installed (refused: exit 1)."""
    base = "/ciu/firmware" if args.ciu else "/firmware"
    if args.action == "status":
        _print(args, _call(args, "GET", base))
        return
    if not args.bundle:
        raise Failure(f"meterctl firmware {args.action} needs a bundle", EXIT_USAGE)
    if args.ciu and args.action != "install":
        raise Failure("meterctl firmware --ciu: status or install (the meter verifies before it carries)", EXIT_USAGE)
    bundle = Path(args.bundle).resolve()
    # RAUC reads the whole bundle to check its signature and, to install, writes a whole slot
    answer = _call(args, "POST", f"{base}/{args.action}", {"bundle": str(bundle)}, ok=(200, 202, 409, 422),
                   timeout=FIRMWARE_TIMEOUT_S)
    _print(args, answer)
    if not answer.get("ok"):
        raise Failure(f"bundle refused: {answer.get('reason')}: {answer.get('detail')}", EXIT_REFUSED)


def _calibration(args: argparse.Namespace) -> dict[str, Any]:
    from meterd.core.calibration import CalibrationRejected
    from meterd.tools.calibration_cli import run

    try:
        return run(args, lambda method, path, body: _call(args, method, path, body),
                   lambda text: print(text, file=sys.stderr))
    except CalibrationRejected as exc:
        raise Failure(str(exc), EXIT_REFUSED) from None


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


def _reason(answer: dict[str, Any]) -> str:
    """``: why`` from an answer's reason field, when it has one."""
    for key in ("reason", "error", "result"):
        if isinstance(answer.get(key), str):
            return f": {answer[key]}"
    return ""


def _fault_params(pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` fault parameters: numbers as numbers, anything else (a phase) as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            print(f"meterctl: --param {pair!r}: expected NAME=VALUE", file=sys.stderr)
            raise SystemExit(2)
        try:
            params[name] = float(value)
        except ValueError:
            params[name] = value
    return params


def _pq(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """``meterctl pq``: the PQ values, then the last closed EN 50160 week's verdict per quantity."""
    week = (payload.get("en50160") or {}).get("last_week")
    if args.json or week is None:
        _print(args, payload)
        return
    from meterd.api.pq_views import en50160_table

    _print(args, {k: v for k, v in payload.items() if k != "en50160"})
    print(en50160_table(week))


def _print(args: argparse.Namespace, payload: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(payload, sort_keys=True))
    else:
        print(text_table(readable_numbers(payload)))


ENERGY_SUFFIXES = ("_kwh", "_wh", "_varh", "_vah")
ENERGY_DECIMALS = 3  # kWh to the Wh, Wh to the mWh: the registers' resolution


def readable_numbers(value: Any, key: str = "") -> Any:
    """A copy of an API answer for the tables: energy and credit in kWh, Wh, varh or VAh (keys
    ending ``_kwh``, ``_wh``, ...) with :data:`ENERGY_DECIMALS` decimals, and no negative zero
    anywhere."""
    if isinstance(value, dict):
        return {k: readable_numbers(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [readable_numbers(v, key) for v in value]
    if isinstance(value, float):
        if key.endswith(ENERGY_SUFFIXES):
            return fixed(value, ENERGY_DECIMALS)
        return _no_negative_zero(value)
    return value


def _status_numbers(view: dict[str, Any]) -> dict[str, Any]:
    """The status view for :func:`status_table`: no negative zero; the credit section (printed
    as rows) with the energy decimals of :func:`readable_numbers`."""
    out = {k: _no_negative_zero(v) for k, v in view.items()}
    if isinstance(view.get("credit"), dict):
        out["credit"] = readable_numbers(view["credit"])
    return out


def _no_negative_zero(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _no_negative_zero(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_negative_zero(v) for v in value]
    if isinstance(value, float) and value == 0:
        return 0.0
    return value


def fixed(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, never ``-0.000``."""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def certificates_table(view: dict[str, Any]) -> str:
    """The certificates (entity, use, serial, subject, valid until, issuer) and the server key
    pairs (use, suite) of ``GET /certificates`` as text."""
    certs = view.get("certificates", [])
    rows = [(str(c.get("entity", "-")), str(c.get("use", "-")), str(c.get("serial", "-")), str(c.get("subject", "-")),
             str(c.get("not_after", "-")), str(c.get("issuer", "-"))) for c in certs]
    head = ("entity", "use", "serial", "subject", "valid until (UTC)", "issuer")
    lines = ["no certificates"]
    if rows:
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]
        lines = ["  ".join(f"{cell:<{w}}" for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
                 for row in [head, *rows]]
    pairs = ", ".join(f"{k.get('use')} (suite {k.get('suite')})" for k in view.get("key_pairs", []))
    lines.append(f"server key pairs: {pairs or 'none'}")
    return "\n".join(lines)


def events_table(events: list[dict[str, Any]]) -> str:
    """Events as a table: time (UTC), log(s), code, name, details (newest first, as the API
    gives them)."""
    if not events:
        return "no events"
    rows = [(str(e.get("utc", "-")), ",".join(e.get("logs", [])) or "-", str(e.get("code", "-")),
             str(e.get("name", "-")), _details(e)) for e in events]
    head = ("time (UTC)", "log", "code", "name", "details")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    return "\n".join("  ".join(f"{cell:<{w}}" for cell, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
                     for row in [head, *rows]).rstrip()


def _details(event: dict[str, Any]) -> str:
    """An event's details as ``key=value`` pairs, else its text."""
    detail = event.get("detail")
    if isinstance(detail, dict) and detail:
        return text_value(readable_numbers(detail))
    return str(event.get("text") or "-")


if __name__ == "__main__":
    raise SystemExit(main())
