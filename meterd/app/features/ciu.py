"""The meter end of the MCU-CIU link: tokens typed on the customer interface unit, credit and status to it.

Section ``[ciu]``:

* ``port``: ``""`` = simulator: a pair of pseudo-terminals joined by a thread that paces bytes
  at ``baud`` (10 bit times per character, like the cable); the CIU end goes into
  ``daemon.info["ciu_link"]``. Otherwise a device such as ``/dev/ttyAMA5`` opened in the
  kernel's RS-485 mode. ``"off"`` disables the link.
* ``baud`` (Bd, 9600 by default), ``key_file`` (pair key, hex, mode 0600, under the state dir).
* ``sim_prepair``: on the simulated meter, when no pair key exists yet, make a random throwaway
  key and write it both to ``key_file`` and to ``<state_dir>/<sim_ciu_dir>/pair.key`` (the
  simulated CIU's state dir, which ``make run`` passes to ``python -m ciu --state-dir``), so
  the two come up paired. The sim CIU's keypad socket ``<sim_ciu_dir>/keys.sock`` and screen
  ``<sim_ciu_dir>/screens/screen.png`` go into ``daemon.info`` (``ciu_keypad``, ``ciu_screens``).
* ``status_period_s`` (s) between STATUS pushes; ``poll_s`` (s) of the link timer.
* ``results_file``: the last 32 token results by request id and the last token, kept across
  restarts (JSON under the state dir, replaced atomically), so a CIU resend after a meter restart
  gets its original answer.

A real installation pairs with the documented procedure (docs/ciu-link.md): ``POST /ciu/pair``
(``meterctl ciu pair``) opens pairing and shows an 8-digit code on the meter LCD; the installer types
``80#``, the code and ``#`` on the CIU; both displays then show the same 6-digit fingerprint.

Tokens go to ``services["submit_token"](digits, "ciu")`` (the payment feature); without it the CIU
gets ``accepted = False, code = "not_enabled"``. Display data: :func:`~meterd.app.features.display.live_values`
(power W, energy kWh 1-0:1.8.0/2.8.0, credit 0-0:19.10.0, relay, tamper). TIME carries UTC and the
legal time's offset from ``services["revenue"]`` (the clock 0-0:1.0.0's deviation), so the CIU shows local time. Link lost/restored and
pairing go to ``services["events"]`` when present. The link runs on real monotonic time (its
timers are protocol timers on a real line), independent of the simulated meter clock's speed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterd.app.config import choices, rng
from meterd.app.features.display import credit_values, live_values, read_json, write_json_atomic
from meterd.core import event_codes
from meterd.proto.ciu_link import (
    KEY_LEN,
    FieldValue,
    LinkDown,
    LinkEndpoint,
    LinkEvent,
    LinkUp,
    PairingComplete,
    PairingFailed,
    Role,
)
from meterd.services.ciu_service import CiuService

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

log = logging.getLogger("meterd.ciu")
READ_CHUNK = 4096
FINGERPRINT_SHOWN_S = 60.0


@dataclass(frozen=True)
class CiuSection:
    """``[ciu]``: port ("" sim pty pair, "off", or a device), baud (Bd), pair key file, sim pairing, timers (s)."""

    port: str = ""
    baud: int = field(default=9600, metadata=choices(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))
    key_file: str = "ciu-pair.key"
    sim_prepair: bool = True
    sim_ciu_dir: str = "ciu"
    status_period_s: float = field(default=5.0, metadata=rng(1.0, 600.0))
    results_file: str = "ciu-results.json"
    poll_s: float = field(default=0.05, metadata=rng(0.01, 0.5))


SECTION = CiuSection

#: STS result names (IEC 62055-41) -> the short codes the CIU has texts for.
RESULT_CODES = {
    "Accept": "accepted", "1stKCT": "accepted", "2ndKCT": "accepted", "3rdKCT": "accepted", "4thKCT": "accepted",
    "OldError": "old", "UsedError": "used", "KeyExpiredError": "key_expired", "CRCError": "crc",
    "FormatError": "format", "OverflowError": "limit", "MfrCodeError": "wrong_meter", "TokenLockout": "locked",
    "NotCommissioned": "not_commissioned",
}


class RealMono:
    """Real monotonic seconds for the link's protocol timers (the composition root owns real time)."""

    def mono(self) -> float:
        return time.monotonic()


# ---------------------------------------------------------------------------------------------
# Pair key file
# ---------------------------------------------------------------------------------------------


def read_key(path: Path) -> bytes | None:
    """The pair key (64 hex digits) or None when there is no usable file."""
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):
        log.error("CIU pair key file %s is unreadable; the CIU must be paired again", path)
        return None
    return key if len(key) == KEY_LEN else None


def write_key(path: Path, key: bytes) -> None:
    """Store a pair key, mode 0600, atomically (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def sim_prepair(meter_key: Path, ciu_key: Path) -> bytes:
    """Simulator only: one throwaway pair key in both state dirs (kept when already there)."""
    key = read_key(meter_key)
    if key is None:
        key = secrets.token_bytes(KEY_LEN)
        write_key(meter_key, key)
        log.info("simulated CIU pre-paired with a throwaway key")
    if read_key(ciu_key) != key:
        write_key(ciu_key, key)
    return key


# ---------------------------------------------------------------------------------------------
# Token results kept across restarts
# ---------------------------------------------------------------------------------------------


def _scalars(value: Any) -> dict[str, FieldValue]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, bool | int | str)}


class JsonResultStore:
    """The CIU service's recent token results and last token in one JSON file, replaced atomically
    (write, fsync, rename) after each applied token. An unreadable file counts as empty."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[list[tuple[int, dict[str, FieldValue]]], dict[str, FieldValue]]:
        saved = read_json(self.path)
        entries = saved.get("results")
        entries = entries if isinstance(entries, list) else []
        results = [(int(e[0]), _scalars(e[1])) for e in entries if isinstance(e, list) and len(e) == 2 and isinstance(e[0], int) and not isinstance(e[0], bool)
                   and isinstance(e[1], dict)]
        return results, _scalars(saved.get("last_token"))

    def save(self, results: list[tuple[int, dict[str, FieldValue]]], last_token: dict[str, FieldValue]) -> None:
        write_json_atomic(self.path, {"version": 1, "results": [[rid, fields] for rid, fields in results],
                                      "last_token": last_token})


# ---------------------------------------------------------------------------------------------
# The feature object
# ---------------------------------------------------------------------------------------------


class MeterCiu:
    """CIU service wiring: token adapter, display data, pairing, events; I/O by :class:`CiuPortRunner`."""

    def __init__(self, daemon: Daemon, cfg: CiuSection) -> None:
        self._daemon = daemon
        self.cfg = cfg
        self.key_path = daemon.cfg.under_state(cfg.key_file)
        self.ciu_dir = daemon.cfg.under_state(cfg.sim_ciu_dir)
        self.sim = daemon.cfg.hardware.backend == "sim"
        key = sim_prepair(self.key_path, self.ciu_dir / "pair.key") if self.sim and cfg.sim_prepair \
            else read_key(self.key_path)
        clock = RealMono()
        link = LinkEndpoint(Role.METER, clock, secrets.token_bytes, key)
        self.service = CiuService(link, clock, self.submit_token, lambda: live_values(daemon), utc_s=self._utc_s,
                                  legal_offset=self._legal_offset, status_period_s=cfg.status_period_s,
                                  result_store=JsonResultStore(daemon.cfg.under_state(cfg.results_file)))
        self.pairing_code: str | None = None
        self.fingerprint: str | None = None
        self._was_up = False
        self._lost = False
        self.runner: CiuPortRunner | None = None

    # -- callbacks of the service ------------------------------------------------------------

    def _utc_s(self) -> int:
        assert self._daemon.clock is not None
        return int(self._daemon.clock.utc().timestamp())

    def _legal_offset(self) -> tuple[int, bool] | None:
        """The meter's legal time as (local minus UTC in s, DST active), from ``services["revenue"]``."""
        revenue = self._daemon.services.get("revenue")
        if revenue is None or self._daemon.clock is None:
            return None
        local = revenue.local_time(self._daemon.clock.utc())
        return int(local.utc_offset_min) * 60, bool(local.dst_active)

    def submit_token(self, digits: str) -> dict[str, Any]:
        """Apply a token typed on the CIU through the payment feature; fields for TOKEN_RESULT."""
        submit = self._daemon.services.get("submit_token")
        if submit is None:
            return {"accepted": False, "code": "not_enabled", "display": "Prepayment not enabled"}
        before = credit_values(self._daemon)
        raw = submit(digits, "ciu")
        return token_fields(raw, before, credit_values(self._daemon))

    # -- link events -------------------------------------------------------------------------

    def on_events(self, events: list[LinkEvent]) -> None:
        """Record link loss and recovery, handle pairing results."""
        for event in events:
            if isinstance(event, LinkUp):
                if self._lost or not self._was_up:
                    self._record("CIU_LINK_RESTORED", {"session": event.session})
                self._was_up, self._lost = True, False
                log.info("CIU link up (session %d)", event.session)
            elif isinstance(event, LinkDown) and event.reason != "rehello":
                if not self._lost:
                    self._record("CIU_LINK_LOST", {"reason": event.reason})
                self._lost = True
                log.warning("CIU link down (%s)", event.reason)
            elif isinstance(event, PairingComplete):
                self._paired(event)
            elif isinstance(event, PairingFailed):
                self._pairing_failed(event.reason)

    def _paired(self, event: PairingComplete) -> None:
        write_key(self.key_path, event.pair_key)
        self.pairing_code, self.fingerprint = None, event.fingerprint
        log.info("CIU paired, fingerprint %s", event.fingerprint)
        self._record("CIU_PAIRED", {"fingerprint": event.fingerprint})
        display = self._daemon.services.get("display")
        if display is not None:
            display.lcd.show_pairing("", event.fingerprint)
            asyncio.get_running_loop().call_later(FINGERPRINT_SHOWN_S, display.lcd.end_pairing)

    def _pairing_failed(self, reason: str) -> None:
        log.warning("CIU pairing failed (%s)", reason)
        self.pairing_code = None
        self._record("CIU_PAIRING_FAILED", {"reason": reason})
        display = self._daemon.services.get("display")
        if display is not None:
            display.lcd.end_pairing()

    def _record(self, name: str, detail: dict[str, Any]) -> None:
        events = self._daemon.services.get("events")
        definition = event_codes.BY_NAME.get(name)
        if events is None or definition is None or self._daemon.clock is None:
            return
        events.record(definition.code, self._daemon.clock.utc(), detail)

    # -- API ---------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """Link state for ``/status`` and ``GET /ciu`` (never the key)."""
        link = self.service.link
        return {"port": self.cfg.port or "sim-pty", "state": link.state.value, "paired": link.paired,
                "pairing_open": self.pairing_code is not None, "fingerprint": self.fingerprint,
                "tokens": self.service.tokens_submitted, "frames_tx": link.stats.frames_tx,
                "frames_rx": link.stats.frames_rx, "retransmissions": link.stats.retransmissions,
                "rejected": dict(link.stats.rejected)}

    def open_pairing(self, _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Open pairing: a fresh 8-digit code on the meter LCD (and in the answer) for 120 s."""
        self.pairing_code = self.service.open_pairing(secrets.token_bytes)
        self.fingerprint = None
        if self.runner is not None:
            self.runner.flush()
        display = self._daemon.services.get("display")
        if display is not None:
            display.lcd.show_pairing(self.pairing_code)
            display.lcd.tick()
        return 200, {"pairing_code": self.pairing_code, "timeout_s": self.service.link.config.pairing_timeout_s,
                     "next": "on the CIU type 80 #, then this code and #; compare the fingerprints"}


def token_fields(raw: dict[str, Any], before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """The payment feature's token answer as TOKEN_RESULT fields: accepted, code, result, amount, credit, unit."""
    accepted = bool(raw.get("accepted", False))
    result = str(raw.get("result", ""))
    fields: dict[str, Any] = {"accepted": accepted, "result": result,
                              "code": RESULT_CODES.get(result, "accepted" if accepted else "invalid")}
    if raw.get("display"):
        fields["display"] = str(raw["display"])[:32]
    if after is not None:
        fields["credit"] = round(after["credit"], 2)
        fields["unit"] = after["unit"]
        if accepted and before is not None and after["credit"] > before["credit"]:
            fields["amount"] = round(after["credit"] - before["credit"], 2)
    return fields


# ---------------------------------------------------------------------------------------------
# I/O on the loop
# ---------------------------------------------------------------------------------------------


class CiuPortRunner:
    """Runs the CIU service on the daemon's loop: ``add_reader`` on the line, a ``poll_s`` timer."""

    def __init__(self, ciu: MeterCiu, fd: int, closer: Any) -> None:
        self._ciu = ciu
        self._fd = fd
        self._closer = closer
        self._out = bytearray()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_readable)
        self._tick()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # pty peer gone (EIO): the link timers report the loss
            log.debug("CIU line read: %s", exc)
            return
        if data:
            self._ciu.on_events(self._ciu.service.receive_bytes(data))
            self.flush()

    def _tick(self) -> None:
        self._ciu.on_events(self._ciu.service.poll())
        self.flush()
        self._timer = self._loop.call_later(self._ciu.cfg.poll_s, self._tick)

    def flush(self) -> None:
        """Write what the service has to send (the rest when the line can take it)."""
        self._out += self._ciu.service.data_to_send()
        if not self._out:
            return
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            log.debug("CIU line write: %s", exc)
            n = len(self._out)  # the line is gone: drop, the link layer retransmits
        del self._out[:n]
        if self._out:
            self._loop.add_writer(self._fd, self._drain)
        else:
            self._loop.remove_writer(self._fd)

    def _drain(self) -> None:
        self.flush()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._closer()


def _open_sim(ciu: MeterCiu, daemon: Daemon) -> tuple[int, Any]:
    from hw.serial_link import PtyWire

    wire = PtyWire(ciu.cfg.baud)
    fd = os.open(wire.path_a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    daemon.info["ciu_link"] = wire.path_b
    daemon.info["ciu_keypad"] = str(ciu.ciu_dir / "keys.sock")
    daemon.info["ciu_screens"] = str(ciu.ciu_dir / "screens" / "screen.png")

    def close() -> None:
        os.close(fd)
        wire.close()

    return fd, close


def _open_device(ciu: MeterCiu, daemon: Daemon) -> tuple[int, Any]:
    from hw.serial_link import open_port

    port = open_port(ciu.cfg.port, ciu.cfg.baud, rs485=True)
    daemon.info["ciu_link"] = f"{ciu.cfg.port} ({ciu.cfg.baud} Bd, RS-485)"
    return port.fileno(), port.close


def attach(daemon: Daemon) -> None:
    """Build the CIU service (pre-paired in sim), its routes and status entry."""
    cfg: CiuSection = daemon.cfg.feature("ciu")
    if cfg.port == "off":
        return
    ciu = MeterCiu(daemon, cfg)
    daemon.services["ciu"] = ciu
    daemon.status_extras["ciu"] = ciu.view
    daemon.api.route("GET", "/ciu", lambda _body: (200, ciu.view()))
    daemon.api.route("POST", "/ciu/pair", ciu.open_pairing)


async def start(daemon: Daemon) -> None:
    """Open the meter end of the cable and run the service on the loop."""
    ciu: MeterCiu | None = daemon.services.get("ciu")
    if ciu is None:
        return
    from hw.serial_link import SerialLinkError

    try:
        fd, closer = _open_sim(ciu, daemon) if not ciu.cfg.port else _open_device(ciu, daemon)
    except (OSError, SerialLinkError) as exc:  # metering goes on without the CIU; say so loudly
        log.error("CIU link on %s not available: %s", ciu.cfg.port or "a pty", exc)
        daemon.info["ciu_link"] = f"unavailable ({exc})"
        return
    ciu.runner = CiuPortRunner(ciu, fd, closer)
    daemon.links.append(ciu.runner)
