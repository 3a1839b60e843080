"""The meter end of the MCU-CIU link: tokens typed on the customer interface unit, credit and status to it.

Section ``[ciu]``:

* ``port``: ``""`` = simulator: a pair of pseudo-terminals joined by a thread that paces bytes
  at ``baud`` (10 bit times per character, like the cable); the CIU end goes into
  ``ctx.info["ciu_link"]``. Otherwise a device such as ``/dev/ttyAMA5``. ``"off"`` disables the link.
  The simulated cable takes faults on its bytes (scenario signals ``ciu_cable_cut``, true/false,
  and ``ciu_noise``, the probability of a byte with a bit flipped; rig faults ``ciu_cable_cut``
  and ``rs485_noise``): the link's own timers and checks find them.
* ``direction``: how the RS-485 transceiver's driver is switched on the 2-wire bus: ``"auto"``
  (an auto-direction transceiver, e.g. MAX13487E; no pin: the meter Pi has none free, and
  uart5's RTS, GPIO15, is the optical port's RX) or ``"kernel"`` (the kernel's RS-485 mode, the
  UART's RTS pin drives DE; ``de_pin`` names that GPIO, so the configuration's pin checks see
  it). The simulator's pty ignores it.
* ``baud`` (Bd, 9600 by default), ``key_file`` (pair key, hex, mode 0600, under the state dir).
* ``sim_prepair``: on the simulated meter, when no pair key exists yet, make a random throwaway
  key and write it both to ``key_file`` and to ``<state_dir>/<sim_ciu_dir>/pair.key`` (the
  simulated CIU's state dir, which ``make run`` passes to ``python -m ciu --state-dir``), so
  the two come up paired. The sim CIU's keypad socket ``<sim_ciu_dir>/keys.sock`` and screen
  ``<sim_ciu_dir>/screens/screen.png`` go into ``ctx.info`` (``ciu_keypad``, ``ciu_screens``).
* ``status_period_s`` (s) between STATUS pushes; ``poll_s`` (s) of the link timer (it must stay
  well under the link's turnaround budget: the meter talks within one tick of its turn).
* ``bus_poll_s`` (s): the meter polls the CIU at least this often (the CIU talks only when polled:
  a token typed waits for the next poll); docs/ciu-link.md has the arithmetic.
* ``results_file``: the last 32 token results by request id and the last token, kept across
  restarts (JSON under the state dir, replaced atomically), so a CIU resend after a meter restart
  gets its original answer.
* The CIU's firmware update (:mod:`meterd.services.ciu_update`, docs/firmware.md "The CIU"):
  ``update`` (on by default) carries a CIU bundle over the link; ``update_compatible`` (the
  CIU's RAUC compatible string), ``update_min_version``, ``update_allow_downgrade``;
  ``update_keyring`` (PEM) verifies the bundle's signature before anything is carried (empty:
  ``[firmware] keyring``, or its ``sim_keyring`` on the simulated meter, else RAUC's own
  configuration); ``update_line_share`` (0.1..0.95) the largest part of the line's time the
  blocks take. ``GET /ciu/firmware``, ``POST /ciu/firmware/install {"bundle": path}``
  (``meterctl firmware install --ciu``); the CIU's identification over DLMS (1-1:0.2.0.255,
  1-1:0.2.8.255) and on the LCD (item ``ciu_firmware``). It is also the DLMS image transfer's
  :class:`~meterd.services.image_target.ImageTarget` (:class:`~meterd.services.ciu_update.CiuImageTarget`):
  a CIU bundle sent by the head end to 0-0:44.0.0.255 is verified and carried the same way.

A real installation pairs with the documented procedure (docs/ciu-link.md): ``POST /ciu/pair``
(``meterctl ciu pair``) opens pairing and shows an 8-digit code on the meter LCD; the installer types
``80#``, the code and ``#`` on the CIU; both displays then show the same 6-digit fingerprint.

The service is :class:`meterd.services.ciu_meter.MeterCiu` (provided as ``MeterCiu``); the services it
works with are looked up once, here. Tokens go to the payment service (source ``"ciu"``); without
it the CIU gets ``accepted = False, code = "not_enabled"``. Display data:
:func:`~meterd.ui.live_values.live_values` (power W, energy kWh 1-0:1.8.0/2.8.0, credit
0-0:19.10.0, relay, tamper). TIME carries UTC and the legal time's offset from the revenue service
(the clock 0-0:1.0.0's deviation), so the CIU shows local time. Link lost/restored and pairing go
to the event recorder when present; pairing shows on the meter LCD when there is one. The line and
its runner are :mod:`meterd.runtime.ciu_port`; the link runs on real monotonic time (its timers are
protocol timers on a real line), independent of the simulated meter clock's speed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw.monotonic import MonotonicClock
from hw.rauc import RaucClient
from meterd.api.schema import Body, Field
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.interfaces import interface_board
from meterd.app.sim_lines import SimCiuCable
from meterd.core.events import EventRecorder
from meterd.cosem.objects_firmware import ciu_firmware_factory
from meterd.proto.ciu_link import FWU_VERSION, LinkConfig, LinkState, Message
from meterd.runtime.ciu_port import (
    CiuLine,
    CiuPortRunner,
    device_description,
    open_device_line,
    open_sim_line,
)
from meterd.services.ciu_meter import CiuLinks, CiuSettings, MeterCiu
from meterd.services.ciu_update import CiuImageTarget, CiuUpdatePolicy, CiuUpdateService
from meterd.services.image_target import ImageTarget
from meterd.services.load_control import LoadControl
from meterd.services.payment import PaymentService
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision
from meterd.store.ciu_results import JsonResultStore
from meterd.store.ciu_update_store import CiuUpdateFiles
from meterd.store.pair_key import PairKeyFile, read_key, sim_prepair
from meterd.ui.live_values import LiveSources, live_values
from meterd.ui.meter_display import MeterDisplay
from meterd.ui.screens import DEFAULT_ITEMS

log = logging.getLogger("meterd.ciu")


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
    poll_s: float = field(default=0.02, metadata=rng(0.005, 0.05))
    direction: str = field(default="auto", metadata=choices("auto", "kernel"))
    de_pin: int = field(default=-1, metadata=rng(-1, 27))  # kernel: the GPIO the UART's RTS drives DE on
    bus_poll_s: float = field(default=0.2, metadata=rng(0.1, 2.0))
    update: bool = True
    update_compatible: str = "pmm-ciu-rpi4"
    update_min_version: str = "0.0.0"
    update_allow_downgrade: bool = False
    update_keyring: str = ""
    update_line_share: float = field(default=0.8, metadata=rng(0.1, 0.95))

    def __post_init__(self) -> None:
        if self.direction == "auto" and self.de_pin != -1:
            raise ValueError(f'de_pin = {self.de_pin}: an auto-direction transceiver has no DE pin (-1), or use'
                             ' direction = "kernel"')
        if self.direction == "kernel" and self.de_pin == -1 and self.port.startswith("/"):
            raise ValueError('direction = "kernel" needs de_pin, the GPIO the UART\'s RTS drives DE on, or use'
                             ' direction = "auto"')


SECTION = CiuSection


def _later(delay_s: float, action: Callable[[], None]) -> object:
    """Run ``action`` after ``delay_s`` (s, real time) on the running loop."""
    return asyncio.get_running_loop().call_later(delay_s, action)


def attach(ctx: FeatureContext) -> None:
    """Build the CIU service (pre-paired in sim), its routes and status entry."""
    cfg: CiuSection = ctx.cfg.feature("ciu")
    if cfg.port == "off":
        return
    assert ctx.clock is not None and ctx.meter is not None
    reg = ctx.registry
    display = reg.find(MeterDisplay)
    links = CiuLinks(payment=reg.find(PaymentService), revenue=reg.find(RevenueService), events=reg.find(EventRecorder),
                     screen=display.lcd if display is not None else None)
    sources = LiveSources(ctx.meter, ctx.clock, payment=links.payment, revenue=links.revenue,
                          load_control=reg.find(LoadControl), supervision=reg.find(Supervision))
    key_path = ctx.cfg.under_state(cfg.key_file)
    ciu_dir = ctx.cfg.under_state(cfg.sim_ciu_dir)
    throwaway = ctx.hardware.backends.throwaway_keys and cfg.sim_prepair
    key = sim_prepair(key_path, ciu_dir / "pair.key") if throwaway else read_key(key_path)
    mono = MonotonicClock()  # the link's protocol timers run on real time
    settings = CiuSettings(cfg.port or "sim-pty", cfg.status_period_s)
    link_config = LinkConfig(baud=cfg.baud, poll_period_s=cfg.bus_poll_s)
    announce = {"fwu_v": FWU_VERSION} if cfg.update else {}  # a CIU that knows the update protocol identifies itself
    ciu = MeterCiu(MeterCiu.endpoint(mono, key, link_config), mono, ctx.clock, settings, links,
                   lambda: {**live_values(sources), **announce},
                   PairKeyFile(key_path), _later, JsonResultStore(ctx.cfg.under_state(cfg.results_file)))
    ctx.registry.provide(MeterCiu, ciu, by="ciu")
    if cfg.update:
        _attach_update(ctx, cfg, ciu, display)
    if not cfg.port and ctx.hardware.sim is not None:
        _add_cable_signals(ctx)
    ctx.status_extras["ciu"] = ciu.view
    ctx.api.route("GET", "/ciu", lambda _body: (200, ciu.view()))
    ctx.api.route("POST", "/ciu/pair", ciu.open_pairing,
                  description="Open pairing: a fresh 8-digit code on the meter LCD (and in the answer) for 120 s.")


def _add_cable_signals(ctx: FeatureContext) -> None:
    """Scenario signals ``ciu_cable_cut`` (true/false) and ``ciu_noise`` (rate, 0..1) acting on the
    bytes crossing the simulated cable; the link's own timers and checks find the fault."""
    assert ctx.hardware.sim is not None
    cable = SimCiuCable("CIU line")
    ctx.registry.provide(SimCiuCable, cable, by="ciu")
    ctx.hardware.sim.extra_signals["ciu_cable_cut"] = lambda value: cable.set("cut", value)
    ctx.hardware.sim.extra_signals["ciu_noise"] = lambda value: cable.set("noise", value)


def _open_sim_line(ctx: FeatureContext, cfg: CiuSection) -> CiuLine:
    """The meter end of the simulator's cable; where the CIU end is goes into ``ctx.info``."""
    line = open_sim_line(cfg.baud)
    cable = ctx.registry.find(SimCiuCable)
    if cable is not None:
        cable.faults = line.faults
    ciu_dir = ctx.cfg.under_state(cfg.sim_ciu_dir)
    ctx.info["ciu_keypad"] = str(ciu_dir / "keys.sock")
    ctx.info["ciu_screens"] = str(ciu_dir / "screens" / "screen.png")
    ctx.info["ciu_link"] = line.description
    return line


async def start(ctx: FeatureContext) -> None:
    """Open the meter end of the cable and run the service on the loop. A device that cannot be
    opened or fails later is off (interface board: one line, INTERFACE_OFF, ``meterctl status``)
    and reopened with back-off; the service, metering and the other links go on."""
    ciu = ctx.registry.find(MeterCiu)
    if ciu is None:
        return
    cfg: CiuSection = ctx.cfg.feature("ciu")
    board = interface_board(ctx)
    if cfg.port:
        kernel = cfg.direction == "kernel"
        what = f"CIU link on {cfg.port}"

        def changed(connected: bool, reason: str) -> None:
            if connected:
                board.on("ciu", what)
            else:
                board.off("ciu", what, reason)

        ctx.info["ciu_link"] = device_description(cfg.port, cfg.baud, kernel)
        ciu.runner = CiuPortRunner(ciu, None, cfg.poll_s, reopen=lambda: open_device_line(cfg.port, cfg.baud, kernel),
                                   on_state=changed)
    else:
        try:
            line = _open_sim_line(ctx, cfg)
        except OSError as exc:  # no pseudo-terminal to be had: metering goes on without the CIU
            board.off("ciu", "CIU link (simulated)", str(exc), retry=False)
            ctx.info["ciu_link"] = f"unavailable ({exc})"
            return
        board.on("ciu", "CIU link (simulated)")
        ciu.runner = CiuPortRunner(ciu, line, cfg.poll_s)
    ctx.links.append(ciu.runner)


class _LinkPort:
    """The CIU service's link as the update sees it."""

    def __init__(self, ciu: MeterCiu) -> None:
        self._ciu = ciu

    def send(self, message: Message) -> None:
        self._ciu.service.send(message)

    def up(self) -> bool:
        return self._ciu.service.link.state is LinkState.UP

    def pending(self) -> int:
        return self._ciu.service.link.pending_messages


def _update_keyring(ctx: FeatureContext, cfg: CiuSection) -> Path | None:
    """The keyring CIU bundles are verified with (module docstring)."""
    if cfg.update_keyring:
        return Path(cfg.update_keyring)
    try:
        firmware = ctx.cfg.feature("firmware")
    except (KeyError, AttributeError):
        return None
    sim_keyring = str(getattr(firmware, "sim_keyring", "") or "")
    keyring = str(getattr(firmware, "keyring", "") or "")
    if ctx.hardware.backends.simulated and sim_keyring:
        return Path(sim_keyring)
    return Path(keyring) if keyring else None


def _attach_update(ctx: FeatureContext, cfg: CiuSection, ciu: MeterCiu, display: MeterDisplay | None) -> None:
    """The CIU's update: the service, its routes, DLMS identification and the LCD item."""
    assert ctx.clock is not None
    policy = CiuUpdatePolicy(compatible=cfg.update_compatible, min_version=cfg.update_min_version,
                             allow_downgrade=cfg.update_allow_downgrade, line_share=cfg.update_line_share,
                             baud=cfg.baud)
    rauc = RaucClient(keyring=_update_keyring(ctx, cfg))
    update = CiuUpdateService(_LinkPort(ciu), rauc, CiuUpdateFiles(ctx.cfg.state_dir), ciu.links.events, ctx.clock,
                              MonotonicClock(), policy)
    ctx.registry.provide(CiuUpdateService, update, by="ciu")
    # the DLMS image transfer hands it a bundle whose compatible string is the CIU's
    ctx.registry.provide(ImageTarget, CiuImageTarget(update, rauc), by="ciu")  # type: ignore[type-abstract]

    ciu.listeners.append(update.on_events)  # the port runner writes what it queued after each call

    def identity() -> tuple[str, str]:
        return (update.ciu.fw_id, update.ciu.fw_sha256) if update.ciu is not None else ("", "")

    ctx.cosem_factories.append(ciu_firmware_factory(identity))
    if display is not None:  # appended to the default scroll list; a configured list names it or not
        configured = tuple(str(i) for i in ctx.cfg.feature("display").items)
        display.add_ciu_identification(identity, append=configured == tuple(i.ident for i in DEFAULT_ITEMS))

    async def install(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Verify a CIU bundle and carry it to the CIU, which installs it (docs/firmware.md)."""
        path = Path(str(body["bundle"]))
        if not path.is_absolute():
            return 400, {"error": "bundle: expected an absolute path on the meter"}
        verdict = await update.stage(path)
        code = 202 if verdict.ok else (409 if verdict.reason == "busy" else 422)
        return code, {"ok": verdict.ok, "reason": verdict.reason or None, "detail": verdict.detail,
                      "version": verdict.version}

    ctx.status_extras["ciu_firmware"] = update.view
    ctx.api.route("GET", "/ciu/firmware", lambda _body: (200, update.view()))
    ctx.api.route("POST", "/ciu/firmware/install", install,
                  description="Verify a CIU bundle and carry it to the CIU, which installs it (docs/firmware.md).",
                  body=Body((Field("bundle", str, "absolute path of the CIU's RAUC bundle on the meter",
                                   required=True),)))
