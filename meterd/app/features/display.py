"""The meter's own LCD (128x64): live values each cycle, scroll list, button, battery mode, English/Arabic.

Section ``[display]``:

* ``kind``: ``"auto"`` (``png`` on the simulated meter, ``st7567`` on a Pi), ``"png"`` (the
  current screen as ``<state_dir>/<capture_dir>/screen.png`` plus the last 32 frames),
  ``"dummy"`` (in memory), ``"st7567"`` (luma.lcd on SPI ``spi_port``.``spi_device`` with BCM
  ``gpio_dc``, ``gpio_rst``, ``gpio_light``; -1 = no backlight line) or ``"off"``.
* ``items``: the scroll list, each entry an item id (``"credit"``, ``"import"``, ``"voltage_l1"``…)
  or its OBIS code (``"1-0:1.8.0.255"`` import energy, ``"0-0:19.10.0.255"`` credit, ...);
  ``scroll_s`` (s) between items, ``button_pause_s`` (s) of auto-scroll pause after a button press.
  A single-phase meter (``[meter] wiring = "1P2W"``) leaves the items of L2 and L3 out and draws
  the phasors of L1 only.
* ``lang``: ``"en"`` or ``"ar"``.
* ``button_pin``: BCM pin of the scroll push button (to GND, internal pull-up; -1 = none), debounced
  in software for ``button_debounce_s`` (s) against the meter clock (the relay button's
  :class:`hw.inputs.PushButton`); a press shows the next item and
  pauses auto-scroll, like ``POST /display/button``.
* ``rtc_device``: the RTC whose backup-battery flags (``RTC_VL_READ``: BACKUP_LOW, BACKUP_EMPTY)
  feed the battery item, read every ``battery_check_s`` (s); ``""`` = none (battery shown as
  unknown). The simulated meter has a simulated RTC instead, driven by the scenario signal
  ``battery_low`` (true/false). A low battery records BATTERY_VOLTAGE_LOW (standard event log,
  code 8) once per occurrence (remembered across restarts in ``<state_dir>/display-state.json``;
  the code table has no "battery ok" code, so the end is not logged). The same read's
  DATA_INVALID flag (the RTC lost its time: a supply loss with the battery gone) sets the meter's
  ``clock_invalid`` status bit and records CLOCK_INVALID (code 6) once per occurrence; a clock
  set (DLMS, API, sync: it writes the RTC) or the RTC reading valid again ends it. Scenario
  signal ``rtc_lost`` (true, ``"power_cut"``, false) makes the simulated RTC lose its battery and
  its time (at once, or at the next supply loss), or gets both back.

Values shown: per-phase U (V), I (A), PF and phasors, total P (kW), f (Hz), import/export
energy 1-0:1.8.0 / 1-0:2.8.0 (kWh, the last committed checkpoint: never a value a crash could take
back, at most the checkpoint bound behind the live register),
maximum demand 1-0:1.6.0 from the revenue service, credit from the payment service's credit view,
relay from load control (else the ``relay_open`` status flag), tamper from the supervision (else
the ``tamper`` flag), the RTC backup battery (OK, LOW or unknown), battery mode while the
power-fail input is active. A frame is drawn only when the visible text or symbols change, or on
a scroll. Those services are looked up once, here (:class:`~meterd.ui.live_values.LiveSources`);
the controller is :class:`~meterd.ui.meter_display.MeterDisplay` (provided as ``MeterDisplay``).

API: ``POST /display/button`` ``{"button": "next"|"previous"}``, ``POST /display/show``
``{"item": id-or-OBIS}``, ``POST /display/lang`` ``{"lang": "en"|"ar"}``, ``GET /display``.
Scenario signal ``display_button`` (any value: one press of "next").

A missing LCD (the SPI device absent, the driver failing at start) switches the display off with
one line and INTERFACE_OFF (``meterctl status``: ``interfaces.display``); the meter runs on
without it (no ``MeterDisplay``: the CIU pairing code is then shown on the CIU alone).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hw.errors import HwError
from hw.inputs import PushButton
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.interfaces import interface_board
from meterd.app.wiring import meter_wiring
from meterd.core import event_codes
from meterd.core.events import EventRecorder
from meterd.runtime.rtc import VL_BACKUP_EMPTY, VL_BACKUP_LOW, VL_DATA_INVALID, LinuxRtc, SimRtc
from meterd.services.load_control import LoadControl
from meterd.services.payment import PaymentService
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision
from meterd.store.json_file import JsonFile
from meterd.ui.battery import BatteryWatch
from meterd.ui.live_values import LiveSources
from meterd.ui.meter_display import MeterDisplay, resolve_items
from meterd.ui.meter_lcd import MeterLcd
from meterd.ui.screens import DEFAULT_ITEMS, items_for_phases

log = logging.getLogger("meterd.display")


@dataclass(frozen=True)
class DisplaySection:
    """``[display]``: device, scroll list (item ids or OBIS codes), timing (s), language, wiring (BCM)."""

    kind: str = field(default="auto", metadata=choices("auto", "png", "dummy", "st7567", "off"))
    capture_dir: str = "lcd"
    items: tuple[str, ...] = tuple(item.ident for item in DEFAULT_ITEMS)
    scroll_s: float = field(default=6.0, metadata=rng(1.0, 600.0))
    button_pause_s: float = field(default=30.0, metadata=rng(1.0, 3600.0))
    lang: str = field(default="en", metadata=choices("en", "ar"))
    spi_port: int = field(default=1, metadata=rng(0, 6))
    spi_device: int = field(default=0, metadata=rng(0, 3))
    gpio_dc: int = field(default=24, metadata=rng(0, 27))
    gpio_rst: int = field(default=25, metadata=rng(0, 27))
    gpio_light: int = field(default=-1, metadata=rng(-1, 27))
    button_pin: int = field(default=-1, metadata=rng(-1, 27))
    button_debounce_s: float = field(default=0.05, metadata=rng(0.0, 1.0))
    rtc_device: str = "/dev/rtc0"
    battery_check_s: float = field(default=60.0, metadata=rng(1.0, 3600.0))

    def __post_init__(self) -> None:
        resolve_items(self.items)  # unknown ids or OBIS codes are refused when the config is read


SECTION = DisplaySection


# ---------------------------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------------------------


def _device(ctx: FeatureContext, cfg: DisplaySection) -> Any:
    from hw.lcd import make_device

    kind = cfg.kind
    if kind == "auto":
        kind = ctx.hardware.backends.lcd
    if kind in ("png", "dummy"):
        return make_device(kind, 128, 64, "1", capture_dir=ctx.cfg.under_state(cfg.capture_dir))
    assert ctx.hardware is not None
    return make_device("st7567", 128, 64, "1", spi_port=cfg.spi_port, spi_device=cfg.spi_device,
                       gpio_dc=cfg.gpio_dc, gpio_rst=cfg.gpio_rst,
                       gpio_light=None if cfg.gpio_light < 0 else cfg.gpio_light,
                       pin_factory=ctx.hardware.pin_factory)


def attach(ctx: FeatureContext) -> None:
    """Build the LCD, feed it every cycle, provide it as ``MeterDisplay`` (pairing code screen)."""
    cfg: DisplaySection = ctx.cfg.feature("display")
    if cfg.kind == "off":
        return
    assert ctx.clock is not None and ctx.hardware is not None and ctx.meter is not None
    reg = ctx.registry
    phases = len(meter_wiring(ctx.cfg).phases)
    sources = LiveSources(ctx.meter, ctx.clock, payment=reg.find(PaymentService), revenue=reg.find(RevenueService),
                          load_control=reg.find(LoadControl), supervision=reg.find(Supervision), phases=phases)
    events = reg.find(EventRecorder)
    try:
        device = _device(ctx, cfg)
    except HwError as exc:  # no LCD (SPI device absent, a driver that fails): the meter runs without it
        interface_board(ctx).off("display", f"LCD ({cfg.kind})", str(exc), retry=False)
        ctx.info["lcd"] = f"off ({exc})"
        return
    interface_board(ctx).on("display", f"LCD ({cfg.kind})")
    items = items_for_phases(resolve_items(cfg.items), phases) or resolve_items(cfg.items)  # 1P2W: no L2, L3
    if sources.payment is None:  # no prepayment in this meter: no credit screen
        items = tuple(i for i in items if i.ident != "credit") or items
    lcd = MeterLcd(device, ctx.clock, items, lang=cfg.lang, scroll_s=cfg.scroll_s,
                   button_pause_s=cfg.button_pause_s)
    inputs = ctx.hardware.inputs
    display = MeterDisplay(sources, lcd, device, lambda: not inputs.states().get("power_fail", False),
                           _battery_watch(ctx, cfg, events), _scroll_button(ctx, cfg))
    ctx.registry.provide(MeterDisplay, display, by="display")
    ctx.cycle_hooks.append(display.on_cycle)
    ctx.status_extras["display"] = display.view
    ctx.api.route("GET", "/display", lambda _body: (200, display.view()))
    ctx.api.route("POST", "/display/button", display.button,
                  description='Press a display button: {"button": "next"|"previous"}.')
    ctx.api.route("POST", "/display/show", display.show,
                  description='Show one display item: {"item": id or OBIS code}.')
    ctx.api.route("POST", "/display/lang", display.set_lang,
                  description='The display language: {"lang": "en"|"ar"}.')
    if ctx.hardware.sim is not None:
        _add_scenario_signal(ctx, display)
    ctx.closers.append(device.cleanup)
    if display.scroll_button is not None:
        ctx.closers.append(display.scroll_button.close)
    screen = getattr(device, "screen_path", None)
    if screen is not None:
        ctx.info["lcd_screen"] = str(screen)


def _scroll_button(ctx: FeatureContext, cfg: DisplaySection) -> Any:
    """The scroll push button on ``button_pin`` (None when -1), debounced on the meter clock."""
    if cfg.button_pin < 0:
        return None
    assert ctx.clock is not None and ctx.hardware is not None
    return PushButton(cfg.button_pin, ctx.hardware.pin_factory, ctx.clock.mono, cfg.button_debounce_s)


def _battery_watch(ctx: FeatureContext, cfg: DisplaySection, events: Any) -> BatteryWatch | None:
    """The RTC battery watch: a simulated RTC in sim, ``rtc_device`` on a Pi, none for ``""``."""
    assert ctx.clock is not None and ctx.hardware is not None
    if ctx.hardware.sim is not None:
        rtc: Any = SimRtc(vl_flags=0)
    elif cfg.rtc_device:
        rtc = LinuxRtc(cfg.rtc_device)
    else:
        return None
    clock = ctx.clock

    def recorder(name: str) -> Callable[[dict[str, Any]], None]:
        def record(detail: dict[str, Any]) -> None:
            if events is not None:
                events.record(event_codes.code(name), clock.utc(), detail)
        return record

    latch = JsonFile(ctx.cfg.state_dir / "display-state.json")
    watch = BatteryWatch(rtc, clock.mono, cfg.battery_check_s, recorder("BATTERY_VOLTAGE_LOW"), latch,
                         VL_BACKUP_LOW | VL_BACKUP_EMPTY, VL_DATA_INVALID, recorder("CLOCK_INVALID"))
    assert ctx.meter is not None
    ctx.meter.status_sources.append(lambda: {"clock_invalid"} if watch.clock_invalid else set())

    def on_clock_set(_old: dt.datetime, new: dt.datetime, _source: str) -> None:
        if isinstance(rtc, SimRtc):  # the simulated clock helper: a clock set writes the RTC
            rtc.write(new)
        watch.clock_set()
    ctx.meter.clock_listeners.append(on_clock_set)
    return watch


def _set_sim_battery(display: MeterDisplay, low: Any) -> None:
    """Scenario signal ``battery_low``: the simulated RTC's BACKUP_LOW flag set (true) or cleared."""
    assert display.battery is not None
    rtc = display.battery.rtc
    assert isinstance(rtc, SimRtc)
    flags = rtc.vl_flags or 0
    rtc.vl_flags = flags | VL_BACKUP_LOW if low else flags & ~VL_BACKUP_LOW


class _SimRtcBattery:
    """Scenario signal ``rtc_lost`` on the simulated RTC: true, its backup battery gone and its
    time lost (BACKUP_EMPTY and DATA_INVALID, as after a supply loss without the battery);
    ``"power_cut"``, the battery gone now (BACKUP_EMPTY) and the time lost at the next supply loss;
    false, a new battery and the RTC set again from the meter's time (both flags cleared)."""

    def __init__(self, display: MeterDisplay, clock: Any) -> None:
        assert display.battery is not None and isinstance(display.battery.rtc, SimRtc)
        self.watch = display.battery
        self.rtc: SimRtc = display.battery.rtc
        self.clock = clock
        self.battery_gone = False

    def signal(self, value: Any) -> None:
        flags = self.rtc.vl_flags or 0
        if value:  # true or "power_cut"
            self.battery_gone = True
            self.rtc.vl_flags = flags | VL_BACKUP_EMPTY
            if value != "power_cut":
                self.lose_time()
        else:
            self.battery_gone = False
            self.rtc.vl_flags = flags & ~VL_BACKUP_EMPTY
            self.rtc.write(self.clock.utc())
        self.watch.poll_now()

    def supply(self, lost: bool) -> None:
        """Without its battery the RTC stops with the supply: its time is lost."""
        if lost and self.battery_gone:
            self.lose_time()
            self.watch.poll_now()

    def lose_time(self) -> None:
        self.rtc.time_utc = None
        self.rtc.vl_flags = (self.rtc.vl_flags or 0) | VL_DATA_INVALID


def _add_scenario_signal(ctx: FeatureContext, display: MeterDisplay) -> None:
    """Scenario signals ``display_button`` (a press of the scroll button) and ``battery_low``."""
    assert ctx.hardware is not None and ctx.hardware.sim is not None
    ctx.hardware.sim.extra_signals["display_button"] = lambda _value: display.lcd.button_next()
    ctx.hardware.sim.extra_signals["battery_low"] = lambda value: _set_sim_battery(display, bool(value))
    if display.battery is not None and isinstance(display.battery.rtc, SimRtc):
        battery = _SimRtcBattery(display, ctx.clock)
        ctx.hardware.sim.extra_signals["rtc_lost"] = battery.signal
        ctx.hardware.sim.supply_listeners.append(battery.supply)
