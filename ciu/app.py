"""Composition root of the CIU daemon: read the configuration, build keypad, display and link, run the loop.

On the CIU's Pi: ``ciu --config /etc/ciu/ciu.toml`` (``systemd/ciu.service``). The simulated CIU
next to a simulated meter (``make run`` starts it): ``python -m ciu --port /dev/pts/N --state-dir
var/run-sim/ciu``; its files are then ``<state-dir>/pair.key`` (pair key, 0600),
``<state-dir>/keys.sock`` (the keypad: ``python -m ciu.keys <that socket>``; stdin too when it is
a terminal) and ``<state-dir>/screens/screen.png`` (the current screen, plus the last frames).
Configuration (TOML, every key optional; unknown keys are refused)::

    [link]     port = "/dev/ttyAMA5"  baud = 9600  key_file = "/var/lib/ciu/pair.key"  direction = "auto"
    [display]  kind = "st7789"  width = 240  height = 240  spi_port = 0  spi_device = 0
               gpio_dc = 24  gpio_rst = 25  gpio_light = 18  capture_dir = "var/ciu/screens"
    [keypad]   kind = "matrix"  rows = [5, 6, 13, 19]  cols = [12, 16, 20, 21]  socket = "var/ciu/keys.sock"
    [ui]       lang = "en"
    [buzzer]   pin = 23  pin_factory = "auto"  low_credit_repeat_s = 600.0
    [update]   enabled = true  state_dir = "/var/lib/ciu"  compatible = "pmm-ciu-rpi4"  rauc_conf = ""
               keyring = ""  min_version = "0.0.0"  allow_downgrade = false  trial_timeout_s = 120.0
               check_after_s = 5.0

``link.direction`` is how the RS-485 transceiver's driver is switched on the 2-wire bus: ``"auto"``
(an auto-direction transceiver such as the MAX13487E: no pin; also a pty in simulation) or
``"kernel"`` (the kernel's RS-485 mode: the UART's RTS drives DE; only where that pin is free:
uart5's RTS is GPIO15, uart0's RX in the CIU pin plan, see image/README.md). The port is opened again by itself when it
vanishes (the meter restarted, the cable or adapter pulled): the screen says the meter is not
reachable meanwhile.
Without a file the back ends are the PC ones: ``display.kind = "png"`` and ``keypad.kind = "sim"``
(the UNIX socket keypad, plus stdin when it is a terminal); the Pi's file names ``st7789`` and
``matrix``. The buzzer (``pin`` BCM, -1 = none; a gpiozero ``Buzzer``, active high) beeps on low
credit (again every ``low_credit_repeat_s``) and on a token result; short code 81 mutes it.
``pin_factory = "auto"`` is gpiozero's default factory (lgpio) with the matrix keypad and a mock pin
with the PC back ends, so the simulated CIU runs the same buzzer code.

``[update]`` (off unless ``enabled``; on the CIU's Pi ``/etc/ciu/ciu.toml`` turns it on): the CIU's
own A/B update (:mod:`ciu.runtime.update`, docs/firmware.md "The CIU"): the bundle the meter
carries goes to ``state_dir/update/`` (the data partition), RAUC (``rauc_conf``: its system.conf,
empty = ``/etc/rauc/system.conf``; ``keyring``: a PEM keyring overriding its one) verifies and
installs it, the board reboots with tryboot (``systemctl reboot '0 tryboot'``), and the trial's
self-check (the meter link paired and answering, the display drawn, the keypad driver up, the
state files readable; within ``trial_timeout_s``, judged after ``check_after_s``) confirms the
slot or marks it bad and reboots into the old one.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import secrets
import signal
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ciu.core.buzzer import Buzzer
from ciu.core.state import CiuState
from ciu.core.update_rules import UpdatePolicy
from ciu.runtime.client import CiuLinkClient
from ciu.runtime.daemon import CiuLoop
from ciu.runtime.update import CiuUpdater, UpdateSettings
from hw import gpio
from hw.boot import BootError, PiBoard, read_boot
from hw.errors import HwError
from hw.keypad import CompositeKeypad, MatrixKeypad, NoKeypad, SocketKeypad, StreamKeypad
from hw.lcd import make_device, raqm_available
from hw.monotonic import MonotonicClock
from hw.rauc import RaucClient
from hw.secret_file import SecretFileError, SecretFileMissing, read_secret_text, write_secret_text
from hw.serial_link import ReopeningPort, open_port
from hw.systemd_notify import Notifier
from meterd.proto.ciu_link import KEY_LEN, LinkConfig, LinkEndpoint, Role

log = logging.getLogger("ciu")

DEFAULTS: dict[str, dict[str, Any]] = {
    "link": {"port": "/dev/ttyAMA5", "baud": 9600, "key_file": "/var/lib/ciu/pair.key", "direction": "auto"},
    "display": {"kind": "png", "width": 240, "height": 240, "spi_port": 0, "spi_device": 0, "gpio_dc": 24,
                "gpio_rst": 25, "gpio_light": 18, "capture_dir": "var/ciu/screens"},
    "keypad": {"kind": "sim", "rows": [5, 6, 13, 19], "cols": [12, 16, 20, 21], "socket": "var/ciu/keys.sock"},
    "ui": {"lang": "en"},
    "buzzer": {"pin": 23, "pin_factory": "auto", "low_credit_repeat_s": 600.0},
    "update": {"enabled": False, "state_dir": "/var/lib/ciu", "compatible": "pmm-ciu-rpi4", "rauc_conf": "",
               "keyring": "", "min_version": "0.0.0", "allow_downgrade": False, "trial_timeout_s": 120.0,
               "check_after_s": 5.0},
}


class CiuConfigError(Exception):
    """The CIU configuration is invalid: file, key and reason in the message."""


def load_config(path: str | None, overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Defaults, then the TOML file, then command-line overrides; unknown sections/keys raise."""
    config = {section: dict(values) for section, values in DEFAULTS.items()}
    layers: list[tuple[str, dict[str, Any]]] = []
    if path:
        with open(path, "rb") as fh:
            layers.append((path, tomllib.load(fh)))
    layers.append(("command line", overrides))
    for source, layer in layers:
        for section, values in layer.items():
            if section not in config:
                raise CiuConfigError(f"{source}: [{section}]: unknown section")
            for key, value in values.items():
                if key not in config[section]:
                    raise CiuConfigError(f"{source}: {section}.{key}: unknown key")
                if not isinstance(value, type(config[section][key])):
                    raise CiuConfigError(f"{source}: {section}.{key}: expected {type(config[section][key]).__name__}")
                config[section][key] = value
    if config["link"]["direction"] not in ("auto", "kernel"):
        raise CiuConfigError("link.direction: must be auto (auto-direction transceiver, or a pty) or kernel "
                             "(kernel RS-485 mode, RTS drives DE)")
    if config["ui"]["lang"] not in ("en", "ar"):
        raise CiuConfigError("ui.lang: must be en or ar")
    if not -1 <= config["buzzer"]["pin"] <= 27:
        raise CiuConfigError("buzzer.pin: must be a BCM pin 0-27, or -1 for none")
    keypad = config["keypad"]
    if keypad["kind"] == "matrix" and config["buzzer"]["pin"] in (*keypad["rows"], *keypad["cols"]):
        raise CiuConfigError(f"buzzer.pin: GPIO{config['buzzer']['pin']} is a keypad line (keypad.rows/cols)")
    if config["buzzer"]["low_credit_repeat_s"] < 10.0:
        raise CiuConfigError("buzzer.low_credit_repeat_s: must be at least 10 s")
    return config


def read_pair_key(path: Path) -> bytes | None:
    """The pair key (64 hex digits, file mode 0600 or stricter) or None before pairing."""
    try:
        text = read_secret_text(path, encoding="ascii")
    except SecretFileMissing:
        return None
    except SecretFileError as exc:
        raise CiuConfigError(f"pair key file {exc}") from None
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise CiuConfigError(f"{path}: pair key is not hexadecimal") from None
    if len(key) != KEY_LEN:
        raise CiuConfigError(f"{path}: pair key must be {KEY_LEN} bytes")
    return key


def write_pair_key(path: Path, key: bytes) -> None:
    """Store the pair key with mode 0600, atomically (write, fsync, rename, directory fsync)."""
    write_secret_text(path, key.hex() + "\n", encoding="ascii")
    log.info("pair key stored in %s", path)


class TerminalKeypad(StreamKeypad):
    """Keys typed on stdin; a terminal is put in cbreak mode (no echo) and restored on close."""

    def __init__(self) -> None:
        super().__init__(sys.stdin.fileno())
        self._saved: list[Any] | None = None
        if sys.stdin.isatty():
            import termios
            import tty

            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)

    def close(self) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None


def build_keypad(cfg: dict[str, Any]) -> Any:
    """``matrix`` (GPIO), ``stdin``, ``socket`` (UNIX socket) or ``sim`` (socket, plus stdin on a terminal)."""
    kind = cfg["kind"]
    if kind == "matrix":
        return MatrixKeypad(cfg["rows"], cfg["cols"])
    if kind == "stdin":
        return TerminalKeypad()
    if kind in ("socket", "sim"):
        Path(cfg["socket"]).parent.mkdir(parents=True, exist_ok=True)
        pads: list[Any] = [SocketKeypad(cfg["socket"])]
        if kind == "sim" and sys.stdin.isatty():
            pads.append(TerminalKeypad())
        return pads[0] if len(pads) == 1 else CompositeKeypad(pads)
    raise CiuConfigError(f"keypad.kind: unknown keypad {kind!r} (matrix, stdin, socket, sim)")


def build_buzzer(cfg: dict[str, Any], keypad_kind: str, clock: MonotonicClock) -> tuple[Buzzer | None, Any]:
    """The buzzer and its gpiozero device (to close), or (None, None) without a pin."""
    if cfg["pin"] < 0:
        return None, None
    name = cfg["pin_factory"]
    if name == "auto":
        name = "" if keypad_kind == "matrix" else "mock"
    factory = gpio.make_pin_factory(name) if name else None
    device = gpio.buzzer(cfg["pin"], factory)
    return Buzzer(lambda on: device.on() if on else device.off(), clock, cfg["low_credit_repeat_s"]), device


def interface_or_none(name: str, build: Callable[[], Any], none: Callable[[], Any]) -> Any:
    """The keypad or display ``build`` makes, or, when its hardware is missing (no SPI device, no
    GPIO lines), ``none()`` with one ERROR line: the CIU goes on without it (the link, the other one)."""
    try:
        return build()
    except HwError as exc:
        log.error("%s is off: %s; the CIU goes on without it", name, exc)
        return none()


def build_display(cfg: dict[str, Any]) -> Any:
    kind = cfg["kind"]
    mode = "RGB"
    if kind in ("dummy", "capture", "gif", "png"):
        return make_device(kind, cfg["width"], cfg["height"], mode, capture_dir=cfg["capture_dir"])
    return make_device(kind, cfg["width"], cfg["height"], mode, spi_port=cfg["spi_port"], spi_device=cfg["spi_device"],
                       gpio_dc=cfg["gpio_dc"], gpio_rst=cfg["gpio_rst"], gpio_light=cfg["gpio_light"],
                       bus_speed_hz=32_000_000)


def open_link_port(cfg: dict[str, Any], clock: MonotonicClock) -> ReopeningPort:
    """The meter cable, opened again by itself after the device vanished (meter restart, cable,
    adapter); ``direction = "kernel"`` opens it in the kernel's RS-485 mode (the UART's RTS drives
    the transceiver's DE), ``"auto"`` for an auto-direction transceiver or a pty."""
    rs485 = cfg["direction"] == "kernel"
    port = ReopeningPort(lambda: open_port(cfg["port"], cfg["baud"], timeout_s=0.0, rs485=rs485), clock.mono,
                         retry_s=1.0)
    if not port.connected:
        log.warning("meter not reachable: %s (trying again every second)", port.last_error)
    return port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ciu", description="PMM customer interface unit daemon")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--port", help="serial port path or pyserial URL of the meter link")
    parser.add_argument("--state-dir", help="directory for pair.key, keys.sock and screens/ (simulated CIU)")
    parser.add_argument("--key-file", help="file holding the pair key")
    parser.add_argument("--display", help="png, dummy, capture, gif, st7789 or st7567")
    parser.add_argument("--capture-dir", help="directory for captured frames (capture, gif)")
    parser.add_argument("--keypad", help="matrix, stdin, socket:PATH or sim (socket and stdin)")
    parser.add_argument("--lang", choices=["en", "ar"])
    parser.add_argument("--run-seconds", type=float, default=0.0, help="stop after this many seconds (tests)")
    parser.add_argument("--tick-s", type=float, default=0.02, help="loop period (s)")
    return parser.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"link": {}, "display": {}, "keypad": {}, "ui": {}}
    if args.state_dir:
        state = Path(args.state_dir)
        out["link"]["key_file"] = str(state / "pair.key")
        out["display"]["capture_dir"] = str(state / "screens")
        out["keypad"]["socket"] = str(state / "keys.sock")
    for value, section, key in ((args.port, "link", "port"), (args.key_file, "link", "key_file"),
                                (args.display, "display", "kind"), (args.capture_dir, "display", "capture_dir"),
                                (args.lang, "ui", "lang")):
        if value is not None:
            out[section][key] = value
    if args.keypad:
        kind, _, path = args.keypad.partition(":")
        out["keypad"]["kind"] = kind
        if path:
            out["keypad"]["socket"] = path
    return out


def announce(config: dict[str, dict[str, Any]]) -> None:
    """Tell the user where the simulated keypad and the screen images are (stdout, one line each)."""
    keypad, display = config["keypad"], config["display"]
    if keypad["kind"] in ("socket", "sim"):
        extra = " and this terminal" if keypad["kind"] == "sim" and sys.stdin.isatty() else ""
        print(f"CIU keypad: {keypad['socket']} (type: python -m ciu.keys {keypad['socket']}){extra}", flush=True)
    if display["kind"] == "png":
        print(f"CIU screens: {Path(display['capture_dir']) / 'screen.png'} (last frames beside it)", flush=True)
    elif display["kind"] in ("capture", "gif"):
        print(f"CIU screens: {display['capture_dir']}", flush=True)


class StopRequest:
    """SIGTERM/SIGINT handler that only records the request; the loop ends at its next check.

    Nothing is raised from the handler, so a second signal (``make run`` forwards SIGINT to the
    CIU and then sends SIGTERM) can arrive at any point, clean-up included, without a traceback.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signum is None:
            self.signum = signum

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self)


def self_check(config: dict[str, dict[str, Any]], state: CiuState, loop: CiuLoop, keypad: Any,
               key_path: Path) -> dict[str, bool]:
    """The trial's self-check: the meter link paired and answering (a session and the meter's
    STATUS), the display drawn, the keypad driver up, the state files readable."""
    view = state.view()
    try:
        files = read_pair_key(key_path) is not None
        (Path(config["update"]["state_dir"]) / "update").stat()
    except (OSError, CiuConfigError):
        files = False
    return {"meter_link": view.link_up and bool(view.status), "display": loop.frames > 0,
            "keypad": not isinstance(keypad, NoKeypad), "state_files": files}


def build_updater(config: dict[str, dict[str, Any]], clock: MonotonicClock,
                  checks: Callable[[], dict[str, bool]]) -> CiuUpdater | None:
    """The update agent when ``[update] enabled`` (module docstring); it judges this boot first."""
    cfg = config["update"]
    if not cfg["enabled"]:
        return None
    try:
        boot = read_boot()
    except BootError as exc:
        log.warning("CIU update off: %s", exc)
        return None
    engine = RaucClient(Path(cfg["rauc_conf"]) if cfg["rauc_conf"] else None,
                        keyring=Path(cfg["keyring"]) if cfg["keyring"] else None)
    updater = CiuUpdater(Path(cfg["state_dir"]), engine, PiBoard(), boot,
                         UpdatePolicy(cfg["compatible"], cfg["min_version"], cfg["allow_downgrade"]), checks,
                         clock.mono, UpdateSettings(cfg["trial_timeout_s"], cfg["check_after_s"]))
    try:
        verdict = updater.start()
    except HwError as exc:
        log.warning("CIU update: RAUC not reachable (%s); updates are refused until it is", exc)
        return updater
    log.info("CIU firmware %s in slot %s (%s)", updater.version, updater.slot, verdict.value)
    return updater


def run(config: dict[str, dict[str, Any]], run_seconds: float = 0.0, tick_s: float = 0.02) -> int:
    stop = StopRequest()
    stop.install()  # first: a stop request during start-up ends the loop before its first step
    if not raqm_available():
        log.warning("Pillow has no raqm layout (libfribidi0 missing): Arabic falls back to reshaper + bidi")
    clock = MonotonicClock()
    key_path = Path(config["link"]["key_file"])
    link = LinkEndpoint(Role.CIU, clock, secrets.token_bytes, read_pair_key(key_path),
                        LinkConfig(baud=config["link"]["baud"]))
    port = open_link_port(config["link"], clock)
    state = CiuState(clock, lambda: secrets.randbits(32), lang=config["ui"]["lang"])
    client = CiuLinkClient(state, link, port, on_pair_key=lambda key: write_pair_key(key_path, key))
    keypad = interface_or_none("keypad", lambda: build_keypad(config["keypad"]), NoKeypad)
    buzzer, buzzer_device = build_buzzer(config["buzzer"], config["keypad"]["kind"], clock)
    display = interface_or_none("display", lambda: build_display(config["display"]),
                                lambda: make_device("dummy", config["display"]["width"], config["display"]["height"],
                                                    "RGB"))
    loop = CiuLoop(client, keypad, display, buzzer)
    client.updater = build_updater(config, clock, lambda: self_check(config, state, loop, keypad, key_path))
    announce(config)
    notifier = Notifier()
    notifier.ready("CIU running")
    log.info("CIU running on %s (%s)", config["link"]["port"], "paired" if link.paired else "not paired")
    watchdog_s = notifier.watchdog_interval_s
    start = next_ping = clock.mono()
    last_screen = None
    try:
        while not stop.requested and (not run_seconds or clock.mono() - start < run_seconds):
            loop.step()
            view = state.view()
            if (view.screen, view.notice, view.link_up) != last_screen:
                last_screen = (view.screen, view.notice, view.link_up)
                log.info("screen %s notice=%s link=%s result=%s", view.screen.value, view.notice or "-",
                         "up" if view.link_up else "down", dict(view.result) or "-")
            if watchdog_s is not None and clock.mono() >= next_ping:
                notifier.watchdog()
                next_ping = clock.mono() + watchdog_s
            time.sleep(tick_s)
    finally:
        notifier.stopping()  # signals still only set the flag: the clean-up always completes
        with contextlib.suppress(AttributeError, OSError):
            keypad.close()
        if buzzer_device is not None:
            buzzer_device.close()
        port.close()
        if client.updater is not None:
            client.updater.close()
    if stop.signum is not None:
        log.info("CIU stopped (%s)", signal.Signals(stop.signum).name)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ciu`` command."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        config = load_config(args.config, overrides_from(args))
    except (CiuConfigError, OSError, tomllib.TOMLDecodeError) as exc:
        log.error("configuration: %s", exc)
        return 2
    try:
        return run(config, args.run_seconds, args.tick_s)
    except CiuConfigError as exc:  # e.g. a pair key file others may read
        log.error("configuration: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
