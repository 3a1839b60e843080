"""``make run``: the whole simulated meter on this PC — meterd on simulated hardware and its CIU.

Starts ``meterd run`` with the given config, waits for its API, prints where everything is
(API socket, DLMS ports and ptys, CIU link, screen images) and how to drive it, then starts the
CIU daemon on the meter's CIU link when the meter offers one. Ctrl-C stops both cleanly.

The launcher supervises its children: when one of them ends, it says which and how (exit status
or signal), stops the other cleanly and exits with status 1. The children die with the launcher
(``PR_SET_PDEATHSIG``: the kernel sends them SIGTERM when it ends, ``kill -9`` included), so no
orphan meter keeps writing the state directory. A state directory a running meterd holds is
refused before anything starts (exit status 2).

The launcher is also the simulated board's power and boot (:class:`hw.boot_sim.SimBoard`, when
``[firmware] sim_keyring`` names a keyring: ``make bundle`` makes the development one,
``image/keys/dev/keyring.pem``): it prepares the board under ``<state_dir>/firmware-sim``, lets the simulated firmware
choose the slot (tryboot once, else the permanent one), starts the board's D-Bus and RAUC
service for that slot, then meterd. When meterd ends because it rebooted the board (an update's
trial boot, or the way back after a failed self-check), the launcher stops the CIU and the
board's services, boots again and starts both anew: the meter restarts in the slot the firmware
chose, on the same state directory (the data partition).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hw.boot_sim import SimBoard, SimServices
from hw.errors import HwError
from hw.memory import malloc_env
from meterd.app.config import Config
from meterd.app.features import load_config
from meterd.app.meterctl import SIM_RUN_SOCKET, request
from meterd.core.errors import ConfigError
from meterd.runtime.state_lock import probe

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_S = 0.05         # how often the launcher looks at its children and the API (s)
STOP_TIMEOUT_S = 15.0  # a child that has not stopped this long after SIGTERM is killed (s)


METERD_PYTHON_FLAGS = ("-OO", "-X", "no_debug_ranges")
"""The interpreter's options for meterd, the same as ``systemd/meterd.service`` runs it with:
``-OO`` leaves out docstrings and ``assert`` statements, 5 MiB less resident code of meterd and
its libraries (the image compiles their bytecode so, docs/architecture.md); nothing meterd does
depends on either (its API descriptions are given where the routes are made).
``-X no_debug_ranges`` keeps the line of each instruction but not its columns (0.7 MiB less; a
traceback then marks no columns under the failing line)."""


class StopFlag:
    """SIGINT/SIGTERM only set this flag: a second Ctrl-C during the shutdown raises nothing."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self, _signum: int, _frame: object) -> None:
        self.set = True


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process ends (Linux
    ``prctl(PR_SET_PDEATHSIG)``), and end at once if this process is already gone."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls it
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the launcher died between fork and prctl
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def how_it_ended(returncode: int) -> str:
    """``exited with status N`` or ``was killed by signal SIGKILL`` (Popen's returncode)."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"exited with status {returncode}"


@dataclasses.dataclass
class Child:
    """One supervised process."""

    name: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> str | None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`; a note when it had to be killed."""
        if self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            return None
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"{self.name} (pid {self.proc.pid}) did not stop within {STOP_TIMEOUT_S:.0f} s: killed"


def meterd_env() -> dict[str, str]:
    """meterd's environment: ours with the allocator policy the systemd unit sets (:mod:`hw.memory`)."""
    return dict(os.environ, **malloc_env())


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> Child:
    """Start ``cmd`` as a child that dies with the launcher (``env``: its environment, default ours)."""
    return Child(name, subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent()))  # noqa: PLW1509  no threads here


def wait_for_api(socket_path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0,
                 stop: StopFlag | None = None) -> dict[str, Any] | None:
    """Poll the API until meterd answers (None when a stop was asked for first); raises
    RuntimeError if meterd dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if stop is not None and stop.set:
            return None
        if proc.poll() is not None:
            raise RuntimeError(f"meterd (pid {proc.pid}) {how_it_ended(proc.returncode)} before its API answered")
        try:
            status, view = request(str(socket_path), "GET", "/status", timeout=2.0)
            if status == 200:
                return view
        except OSError:
            pass
        time.sleep(POLL_S)
    raise RuntimeError(f"meterd did not answer within {timeout_s:.0f} s")


def api_tokens(socket_path: Path) -> dict[str, Any] | None:
    """The network API's address and tokens (None when it is off)."""
    try:
        status, answer = request(str(socket_path), "GET", "/api/tokens", timeout=2.0)
    except OSError:
        return None
    return answer if status == 200 else None


def banner(view: dict[str, Any], socket_path: Path, config: str, tokens: dict[str, Any] | None = None) -> str:
    """What the user needs to know, in a few lines."""
    links = view.get("links", {})
    lines = [
        f"PMM1221 simulated meter {view['serial']} is running.",
        f"  local API socket : {socket_path}",
    ]
    if tokens is not None:
        lines.append(f"  network API      : {tokens['url']}   (docs/api.md; OpenAPI at {tokens['url']}/openapi.json)")
        lines.append(f"  API read token   : {' '.join(tokens['read']) or '-'}")
        lines.append(f"  API control token: {' '.join(tokens['control']) or '-'}")
    for key in sorted(links):
        if key not in ("api_socket", "api_url"):
            lines.append(f"  {key:17}: {links[key]}")
    lines += ["", "Try, in another terminal (after `source .venv/bin/activate`):",
              f"  export METERD_SOCKET={socket_path.resolve()}"
              + ("   # needed only outside this directory" if socket_path.resolve() == SIM_RUN_SOCKET.resolve()
                 else "")]
    lines += [
        "  meterctl status",
        "  meterctl sim set --phase A --voltage 230 --current 10 --pf 0.5L",
        "  meterctl sim scenario config/scenarios/evening.toml",
    ]
    if tokens is not None:
        lines.append(f"  curl -H 'Authorization: Bearer {tokens['read'][0] if tokens['read'] else 'TOKEN'}' "
                     f"{tokens['url']}/status")
    if "ciu_keypad" in links:
        lines.append(f"  type a token on the CIU keypad: python -m ciu.keys {links['ciu_keypad']}")
        lines.append("  make a token for this meter: python -m meterd.tools.vend credit --kwh 10 --config "
                     f"{config}")
    if "ciu_screens" in links:
        lines.append(f"  CIU screen images: {links['ciu_screens']}")
    lines.append(f"Stop with Ctrl-C. Config: {config}")
    return "\n".join(lines)


def supervise(children: list[Child], stop: StopFlag) -> Child | None:
    """Wait until a stop is asked for (None) or a child ends (that child)."""
    while not stop.set:
        for child in children:
            if child.proc.poll() is not None:
                return child
        time.sleep(POLL_S)
    return None


def sim_board(cfg: Config, state_dir: Path) -> SimBoard | None:
    """The simulated board when the configuration gives it a keyring that exists (else None,
    with a note: the meter then runs without an update engine)."""
    section = cfg.feature("firmware") if "firmware" in cfg.features else None
    keyring = Path(section.sim_keyring) if section is not None and section.sim_keyring else None
    if section is None or keyring is None or not keyring.is_file():
        if keyring is not None:
            print(f"simrun: no firmware keyring at {keyring} (make bundle makes one): no update engine",
                  file=sys.stderr)
        return None
    board = SimBoard(state_dir / "firmware-sim")
    board.prepare(keyring, section.compatible)
    return board


def power_on(board: SimBoard | None) -> SimServices | None:
    """The board boots (the firmware's slot choice) and its services start."""
    if board is None:
        return None
    boot = board.boot()
    print(f"simrun: board booted slot {boot.slot}{' (trial: tryboot)' if boot.trial else ''}", file=sys.stderr,
          flush=True)
    return board.start_services(preexec=die_with_parent())


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
    holder = probe(state_dir)
    if holder is not None:
        print(f"simrun: state directory {state_dir} is in use by another meterd (pid {holder}); "
              "stop it first or choose another --state-dir", file=sys.stderr)
        return 2
    state_dir.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=str(state_dir)))
    socket_path = cfg.under_state(cfg.api.socket)
    cmd = [sys.executable, *METERD_PYTHON_FLAGS, "-m", "meterd", "run", "--config", args.config,
           "--state-dir", str(state_dir)]
    if args.speed is not None:
        cmd += ["--speed", str(args.speed)]
    stop = StopFlag()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        board = sim_board(cfg, state_dir)
        services = power_on(board)
    except HwError as exc:
        print(f"simrun: simulated board: {exc}", file=sys.stderr)
        return 1
    status = 0
    first = True
    while True:
        meterd = spawn("meterd", cmd, env=meterd_env())
        children = [meterd]
        rebooted = False
        try:
            view = wait_for_api(socket_path, meterd.proc, stop=stop)
            if view is None:
                break
            if first:
                print(banner(view, socket_path, args.config, api_tokens(socket_path)), flush=True)
            else:
                print(f"simrun: meterd restarted (firmware {view.get('firmware', {}).get('version', '?')}, "
                      f"slot {view.get('firmware', {}).get('slot', '?')})", file=sys.stderr, flush=True)
            first = False
            ciu_port = view.get("links", {}).get("ciu_link")
            if ciu_port:
                children.append(spawn("ciu", [sys.executable, "-m", "ciu", "--port", str(ciu_port),
                                              "--state-dir", str(state_dir / "ciu")]))
            ended = supervise(children, stop)
            if ended is meterd and board is not None and board.take_reboot():
                rebooted = True
            elif ended is not None:
                others = [c.name for c in children if c is not ended and c.proc.poll() is None]
                print(f"simrun: {ended.name} (pid {ended.proc.pid}) {how_it_ended(ended.proc.returncode)}"
                      + (f"; stopping {', '.join(others)}" if others else ""), file=sys.stderr, flush=True)
                status = 1
        except RuntimeError as exc:
            print(f"simrun: {exc}", file=sys.stderr)
            status = 1
        finally:
            for child in reversed(children):  # the CIU first, then the meter it talks to
                note = child.stop()
                if note:
                    print(f"simrun: {note}", file=sys.stderr)
            if services is not None:
                services.stop()
                services = None
        if not rebooted or stop.set:
            break
        try:
            services = power_on(board)
        except HwError as exc:
            print(f"simrun: simulated board: {exc}", file=sys.stderr)
            return 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
