"""``make run``: the whole simulated meter on this PC — meterd on simulated hardware and its CIU.

Starts ``meterd run`` with the given config, waits for its API, prints where everything is
(API socket, DLMS ports and ptys, CIU link, screen images) and how to drive it, then starts the
CIU daemon on the meter's CIU link when the meter offers one. Ctrl-C stops both cleanly.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from meterd.app.features import load_config
from meterd.app.meterctl import request
from meterd.core.errors import ConfigError


class StopFlag:
    """SIGINT/SIGTERM only set this flag: a second Ctrl-C during the shutdown raises nothing."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, _signum: int, _frame: object) -> None:
        self.set = True


def wait_for_api(socket_path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0,
                 stop: StopFlag | None = None) -> dict[str, Any] | None:
    """Poll the API until meterd answers (None when a stop was asked for first); raises
    RuntimeError if meterd dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop is not None and stop.set:
            return None
        if proc.poll() is not None:
            raise RuntimeError(f"meterd exited with status {proc.returncode}")
        try:
            status, view = request(str(socket_path), "GET", "/status", timeout=2.0)
            if status == 200:
                return view
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("meterd did not answer within 30 s")


def banner(view: dict[str, Any], socket_path: Path, config: str) -> str:
    """What the user needs to know, in a few lines."""
    links = view.get("links", {})
    ctl = f"meterctl --socket {socket_path}"
    lines = [
        f"PMM1221 simulated meter {view['serial']} is running.",
        f"  local API socket : {socket_path}",
    ]
    for key in sorted(links):
        if key != "api_socket":
            lines.append(f"  {key:17}: {links[key]}")
    lines += [
        "",
        "Try, in another terminal (after `source .venv/bin/activate`):",
        f"  {ctl} status",
        f"  {ctl} sim set --phase A --voltage 230 --current 10 --pf 0.5L",
        f"  {ctl} sim scenario config/scenarios/evening.toml",
    ]
    if "ciu_keypad" in links:
        lines.append(f"  type a token on the CIU keypad: python -m ciu.keys {links['ciu_keypad']}")
        lines.append("  make a token for this meter: python -m meterd.tools.vend credit --kwh 10 --config "
                     f"{config}")
    if "ciu_screens" in links:
        lines.append(f"  CIU screen images: {links['ciu_screens']}")
    lines.append(f"Stop with Ctrl-C. Config: {config}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simrun", description=__doc__)
    parser.add_argument("--config", default="config/sim.toml")
    parser.add_argument("--state-dir", default="var/run-sim")
    parser.add_argument("--speed", type=float)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"simrun: config error: {exc}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    socket_path = state_dir / cfg.api.socket
    cmd = [sys.executable, "-m", "meterd", "run", "--config", args.config, "--state-dir", str(state_dir)]
    if args.speed is not None:
        cmd += ["--speed", str(args.speed)]
    stop = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    meterd = subprocess.Popen(cmd)
    children = [meterd]
    try:
        view = wait_for_api(socket_path, meterd, stop=stop)
        if view is None:
            return 0
        print(banner(view, socket_path, args.config), flush=True)
        ciu_port = view.get("links", {}).get("ciu_link")
        if ciu_port:
            ciu_cmd = [sys.executable, "-m", "ciu", "--port", str(ciu_port), "--state-dir", str(state_dir / "ciu")]
            children.append(subprocess.Popen(ciu_cmd))
        while not stop.set and all(child.poll() is None for child in children):
            time.sleep(0.1)
    except RuntimeError as exc:
        print(f"simrun: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
