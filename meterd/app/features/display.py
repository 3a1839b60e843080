"""The meter's own LCD (128x64): live values each cycle, scroll list, button, battery mode, English/Arabic.

Section ``[display]``:

* ``kind``: ``"auto"`` (``png`` on the simulated meter, ``st7567`` on a Pi), ``"png"`` (the
  current screen as ``<state_dir>/<capture_dir>/screen.png`` plus the last 32 frames),
  ``"dummy"`` (in memory), ``"st7567"`` (luma.lcd on SPI ``spi_port``.``spi_device`` with BCM
  ``gpio_dc``, ``gpio_rst``, ``gpio_light``; -1 = no backlight line) or ``"off"``.
* ``items``: the scroll list, each entry an item id (``"credit"``, ``"import"``, ``"voltage_l1"``…)
  or its OBIS code (``"1-0:1.8.0.255"`` import energy, ``"0-0:19.10.0.255"`` credit, ...);
  ``scroll_s`` (s) between items, ``button_pause_s`` (s) of auto-scroll pause after a button press.
* ``lang``: ``"en"`` or ``"ar"``.
* ``button_pin``: BCM pin of the scroll push button (to GND, internal pull-up; -1 = none), debounced
  in software for ``button_debounce_s`` (s) against the meter clock (the relay button's
  :class:`~meterd.app.features.load_control.DebouncedButton`); a press shows the next item and
  pauses auto-scroll, like ``POST /display/button``.
* ``rtc_device``: the RTC whose backup-battery flags (``RTC_VL_READ``: BACKUP_LOW, BACKUP_EMPTY)
  feed the battery item, read every ``battery_check_s`` (s); ``""`` = none (battery shown as
  unknown). The simulated meter has a simulated RTC instead, driven by the scenario signal
  ``battery_low`` (true/false). A low battery records BATTERY_VOLTAGE_LOW (standard event log,
  code 8) once per occurrence (remembered across restarts in ``<state_dir>/display-state.json``;
  the code table has no "battery ok" code, so the end is not logged).

Values shown: per-phase U (V), I (A), PF and phasors, total P (kW), f (Hz), import/export
energy 1-0:1.8.0 / 1-0:2.8.0 (kWh, the last committed checkpoint: never a value a crash could take
back, at most the checkpoint bound behind the live register),
maximum demand 1-0:1.6.0 from ``services["revenue"]``, credit from ``services["credit_view"]``,
relay from ``services["load_control"]`` (else the ``relay_open`` status flag), tamper from
``services["supervision"]`` (else the ``tamper`` flag), the RTC backup battery (OK, LOW or
unknown), battery mode while the power-fail input is active. A frame is drawn only when the visible text or symbols change, or on a scroll.

API: ``POST /display/button`` ``{"button": "next"|"previous"}``, ``POST /display/show``
``{"item": id-or-OBIS}``, ``POST /display/lang`` ``{"lang": "en"|"ar"}``, ``GET /display``.
Scenario signal ``display_button`` (any value: one press of "next").
:func:`live_values` (also used by the CIU feature) gathers the values for other displays.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meterd.app.config import choices, rng
from meterd.core import event_codes
from meterd.core.energy import Quantity
from meterd.runtime.rtc import VL_BACKUP_EMPTY, VL_BACKUP_LOW, LinuxRtc, SimRtc
from meterd.ui.display_data import DisplayData
from meterd.ui.meter_lcd import MeterLcd
from meterd.ui.screens import DEFAULT_ITEMS, ITEMS_BY_ID, DisplayItem

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

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


def resolve_items(entries: tuple[str, ...] | list[str]) -> tuple[DisplayItem, ...]:
    """Display items from ids or OBIS codes (ValueError naming the unknown ones)."""
    by_obis = {item.obis: item for item in DEFAULT_ITEMS}
    found: list[DisplayItem] = []
    unknown: list[str] = []
    for entry in map(str, entries):
        item = ITEMS_BY_ID.get(entry) or by_obis.get(entry)
        if item is None:
            unknown.append(entry)
        else:
            found.append(item)
    if unknown:
        raise ValueError(f"unknown display items: {', '.join(unknown)} (known: {', '.join(ITEMS_BY_ID)})")
    if not found:
        raise ValueError("the display list is empty")
    return tuple(found)


# ---------------------------------------------------------------------------------------------
# Live values, shared with the CIU
# ---------------------------------------------------------------------------------------------


def credit_values(daemon: Daemon) -> dict[str, Any] | None:
    """Credit as ``{credit, unit, low_credit, mode, emergency}`` from ``services["credit_view"]``, or None.

    Energy accounts show kWh (``credit_kwh``); currency accounts the balance in currency units
    (``credit`` in minor units / 10**``minor_digits``, unit = ``currency``).
    """
    view_fn = daemon.services.get("credit_view")
    if view_fn is None:
        return None
    view = view_fn()
    if view.get("credit_kwh") is not None:
        credit, unit = float(view["credit_kwh"]), "kWh"
    elif view.get("currency"):
        credit, unit = float(view.get("credit", 0)) / 10 ** int(view.get("minor_digits", 0)), str(view["currency"])
    else:
        credit, unit = float(view.get("credit", 0.0) or 0.0), str(view.get("unit", "kWh"))
    emergency = view.get("emergency", False)
    if isinstance(emergency, dict):
        emergency = emergency.get("active", False)
    if view.get("mode") == "postpaid":  # the balance is informative only: say so beside it
        unit = f"{unit} (postpaid)"
    return {"credit": round(credit, 3), "unit": unit, "low_credit": bool(view.get("low_credit", False)),
            "mode": str(view.get("mode", "prepaid")), "emergency": bool(emergency)}


def relay_closed(daemon: Daemon) -> bool:
    """The supply relay state: the load-control output when present, else the status flags."""
    control = daemon.services.get("load_control")
    if control is not None:
        return bool(control.status().output_state)
    assert daemon.meter is not None
    return "relay_open" not in daemon.meter.status_flags()


def tamper_names(daemon: Daemon) -> list[str]:
    """Active tampers (``terminal_cover_open``, ``magnetic_field``...) or ``["tamper"]`` from the flags."""
    supervision = daemon.services.get("supervision")
    if supervision is not None and hasattr(supervision, "tamper_status"):
        return list(supervision.tamper_status())
    assert daemon.meter is not None
    return ["tamper"] if "tamper" in daemon.meter.status_flags() else []


def energy_kwh(daemon: Daemon) -> tuple[float, float]:
    """Active import and export energy (kWh), totals 1-0:1.8.0.255 and 1-0:2.8.0.255."""
    assert daemon.meter is not None
    registers = daemon.meter.committed
    return registers.get(Quantity.ACTIVE_IMPORT) / 1e6, registers.get(Quantity.ACTIVE_EXPORT) / 1e6


def live_values(daemon: Daemon) -> dict[str, Any]:
    """What a customer display shows: power (W), energy (kWh), credit, relay, tamper (scalars only)."""
    meter = daemon.meter
    assert meter is not None
    reading = meter.last_reading
    out: dict[str, Any] = {"power_w": 0.0, "power_l1_w": 0.0, "power_l2_w": 0.0, "power_l3_w": 0.0}
    if reading is not None:
        out["power_w"] = round(reading.total_active_power_w, 1)
        for n, phase in enumerate(reading.phases, start=1):
            out[f"power_l{n}_w"] = round(phase.active_power_w, 1)
    out["import_kwh"], out["export_kwh"] = (round(v, 3) for v in energy_kwh(daemon))
    credit = credit_values(daemon)
    if credit is not None:
        out.update(credit)
    else:
        out["mode"] = "postpaid"
    out["relay"] = relay_closed(daemon)
    tampers = tamper_names(daemon)
    out["tamper"] = bool(tampers)
    out["cover_open"] = any("cover" in name for name in tampers)
    out["magnet"] = any("magnet" in name for name in tampers)
    return out


def _max_demand(daemon: Daemon) -> tuple[float, _dt.datetime | None]:
    revenue = daemon.services.get("revenue")
    if revenue is None:
        return 0.0, None
    from meterd.core.demand import DemandQuantity

    md = revenue.demand.max_demand(DemandQuantity.ACTIVE_IMPORT)
    when = md.capture_utc
    if when is not None:
        when = _local(daemon, when)
    return md.value_w / 1000.0, when


def _local(daemon: Daemon, utc: _dt.datetime) -> _dt.datetime:
    revenue = daemon.services.get("revenue")
    if revenue is not None:
        return revenue.local_time(utc).wall  # type: ignore[no-any-return]
    return utc.replace(tzinfo=None)


def display_data(daemon: Daemon) -> DisplayData:
    """One :class:`DisplayData` snapshot of the live meter."""
    meter = daemon.meter
    assert meter is not None and daemon.clock is not None
    values: dict[str, Any] = {}
    reading = meter.last_reading
    if reading is not None:
        phases = reading.phases
        values.update(
            voltage_v=tuple(p.voltage_v for p in phases), current_a=tuple(p.current_a for p in phases),
            power_factor=tuple(p.power_factor for p in phases),
            voltage_angle_deg=tuple(p.voltage_angle_deg for p in phases),
            current_angle_deg=tuple(p.voltage_angle_deg - p.angle_deg for p in phases),
            active_power_w=reading.total_active_power_w, reactive_power_var=reading.total_reactive_power_var,
            frequency_hz=reading.frequency_hz)
    values["import_energy_kwh"], values["export_energy_kwh"] = energy_kwh(daemon)
    values["max_demand_kw"], values["max_demand_time"] = _max_demand(daemon)
    credit = credit_values(daemon)
    if credit is not None:
        values.update(credit=credit["credit"], credit_unit=credit["unit"], low_credit=credit["low_credit"])
    values["local_time"] = _local(daemon, daemon.clock.utc())
    values["relay_closed"] = relay_closed(daemon)
    tampers = tamper_names(daemon)
    values["cover_open"] = any("cover" in name for name in tampers)
    values["magnet"] = any("magnet" in name for name in tampers)
    values["tamper_other"] = tuple(n for n in tampers if "cover" not in n and "magnet" not in n)
    display = daemon.services.get("display")
    if isinstance(display, MeterDisplay) and display.battery is not None:
        low = display.battery.low
        values["battery_low"], values["battery_known"] = bool(low), low is not None
    return DisplayData(**values)


# ---------------------------------------------------------------------------------------------
# RTC backup battery
# ---------------------------------------------------------------------------------------------


def write_json_atomic(path: Path, value: dict[str, Any]) -> None:
    """Replace ``path`` with ``value`` as JSON: write a temporary file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(value, fh, separators=(",", ":"), sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; {} when the file is missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


class BatteryWatch:
    """The RTC's backup battery: ``RTC_VL_READ`` flags read every ``period_s`` (s, monotonic).

    ``low`` is True (BACKUP_LOW or BACKUP_EMPTY set), False, or None when the RTC reports no
    flags. BATTERY_VOLTAGE_LOW (standard event log) is recorded once per occurrence: on the
    change to low, and not again until the battery has been seen good; the latch survives a
    restart through ``state_path``.
    """

    def __init__(self, rtc: Any, mono: Callable[[], float], period_s: float,
                 record: Callable[[dict[str, Any]], None], state_path: Path) -> None:
        self.rtc = rtc
        self._mono = mono
        self._period_s = period_s
        self._record = record
        self._state_path = state_path
        self._latched = bool(read_json(state_path).get("battery_low", False))
        self._next_mono = float("-inf")
        self._warned = False
        self.low: bool | None = None

    def poll(self) -> None:
        """Read the flags when due; record the event on a new low battery."""
        now = self._mono()
        if now < self._next_mono:
            return
        self._next_mono = now + self._period_s
        flags = self._flags()
        if flags is None:  # unreadable (no device, no flags, or the clock helper holds it): keep the last state
            return
        self.low = bool(flags & (VL_BACKUP_LOW | VL_BACKUP_EMPTY))
        if self.low == self._latched:
            return
        self._latched = self.low
        if self.low:
            log.warning("RTC backup battery low (flags 0x%x)", flags)
            self._record({"flags": flags})
        write_json_atomic(self._state_path, {"battery_low": self._latched})

    def _flags(self) -> int | None:
        try:
            return self.rtc.flags()  # type: ignore[no-any-return]
        except OSError as exc:  # no such device, no permission: the battery state is unknown
            if not self._warned:
                log.warning("RTC battery flags unreadable: %s", exc)
                self._warned = True
            return None


# ---------------------------------------------------------------------------------------------
# Wiring
# ---------------------------------------------------------------------------------------------


def _device(daemon: Daemon, cfg: DisplaySection) -> Any:
    from hw.lcd import make_device

    kind = cfg.kind
    if kind == "auto":
        kind = "png" if daemon.cfg.hardware.backend == "sim" else "st7567"
    if kind in ("png", "dummy"):
        return make_device(kind, 128, 64, "1", capture_dir=daemon.cfg.under_state(cfg.capture_dir))
    assert daemon.hardware is not None
    return make_device("st7567", 128, 64, "1", spi_port=cfg.spi_port, spi_device=cfg.spi_device,
                       gpio_dc=cfg.gpio_dc, gpio_rst=cfg.gpio_rst,
                       gpio_light=None if cfg.gpio_light < 0 else cfg.gpio_light,
                       pin_factory=daemon.hardware.pin_factory)


class MeterDisplay:
    """The LCD controller fed from the live meter once per cycle."""

    def __init__(self, daemon: Daemon, lcd: MeterLcd, device: Any, battery: BatteryWatch | None = None,
                 button: Any = None) -> None:
        self._daemon = daemon
        self.lcd = lcd
        self.device = device
        self.battery = battery
        self.scroll_button = button  # a DebouncedButton on the scroll-button pin, or None
        self.presses = 0
        if button is not None:
            button.listener = self._on_button

    def _on_button(self, pressed: bool, _since_mono: float) -> None:
        """A debounced press (not the release) of the scroll button: next item."""
        if pressed:
            self.presses += 1
            self.lcd.button_next()

    def on_cycle(self, _result: Any = None) -> None:
        """Take this cycle's values, follow the power-fail input, scroll if due, draw if changed."""
        assert self._daemon.hardware is not None
        if self.scroll_button is not None:
            self.scroll_button.poll()
        if self.battery is not None:
            self.battery.poll()
        self.lcd.set_mains(not self._daemon.hardware.inputs.states().get("power_fail", False))
        self.lcd.update(display_data(self._daemon))
        self.lcd.tick()

    def view(self) -> dict[str, Any]:
        """Current item, language, battery mode, frames drawn, and the capture file when any."""
        screen = getattr(self.device, "screen_path", None)
        battery = None if self.battery is None or self.battery.low is None else \
            ("low" if self.battery.low else "ok")
        return {"item": self.lcd.current.ident, "obis": self.lcd.current.obis, "lang": self.lcd.lang,
                "on_battery": self.lcd.on_battery, "rtc_battery": battery, "frames": self.lcd.frames,
                "button_presses": self.presses,
                "screen": str(screen) if screen is not None else None}

    def button(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        which = str(body.get("button", "next"))
        if which not in ("next", "previous"):
            raise ValueError("button must be next or previous")
        (self.lcd.button_next if which == "next" else self.lcd.button_previous)()
        self.lcd.tick()
        return 200, self.view()

    def show(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        item = resolve_items([str(body.get("item", ""))])[0]
        self.lcd.show_item(item.ident)
        self.lcd.tick()
        return 200, self.view()

    def set_lang(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.lcd.set_language(str(body.get("lang", "")))
        self.lcd.tick()
        return 200, self.view()


def attach(daemon: Daemon) -> None:
    """Build the LCD, feed it every cycle, offer it as ``services["display"]`` (pairing code screen)."""
    cfg: DisplaySection = daemon.cfg.feature("display")
    if cfg.kind == "off":
        return
    assert daemon.clock is not None and daemon.hardware is not None
    device = _device(daemon, cfg)
    items = resolve_items(cfg.items)
    if "credit_view" not in daemon.services:  # no prepayment in this meter: no credit screen
        items = tuple(i for i in items if i.ident != "credit") or items
    lcd = MeterLcd(device, daemon.clock, items, lang=cfg.lang, scroll_s=cfg.scroll_s,
                   button_pause_s=cfg.button_pause_s)
    display = MeterDisplay(daemon, lcd, device, _battery_watch(daemon, cfg), _scroll_button(daemon, cfg))
    daemon.services["display"] = display
    daemon.cycle_hooks.append(display.on_cycle)
    daemon.status_extras["display"] = display.view
    daemon.api.route("GET", "/display", lambda _body: (200, display.view()))
    daemon.api.route("POST", "/display/button", display.button)
    daemon.api.route("POST", "/display/show", display.show)
    daemon.api.route("POST", "/display/lang", display.set_lang)
    if daemon.hardware.sim is not None:
        _add_scenario_signal(daemon, display)
    daemon.closers.append(device.cleanup)
    if display.scroll_button is not None:
        daemon.closers.append(display.scroll_button.close)
    screen = getattr(device, "screen_path", None)
    if screen is not None:
        daemon.info["lcd_screen"] = str(screen)


def _scroll_button(daemon: Daemon, cfg: DisplaySection) -> Any:
    """The scroll push button on ``button_pin`` (None when -1), debounced on the meter clock."""
    if cfg.button_pin < 0:
        return None
    from hw.inputs import PushButton as DebouncedButton  # the relay button's debouncer

    assert daemon.clock is not None and daemon.hardware is not None
    return DebouncedButton(cfg.button_pin, daemon.hardware.pin_factory, daemon.clock.mono, cfg.button_debounce_s)


def _battery_watch(daemon: Daemon, cfg: DisplaySection) -> BatteryWatch | None:
    """The RTC battery watch: a simulated RTC in sim, ``rtc_device`` on a Pi, none for ``""``."""
    assert daemon.clock is not None and daemon.hardware is not None
    if daemon.hardware.sim is not None:
        rtc: Any = SimRtc(vl_flags=0)
    elif cfg.rtc_device:
        rtc = LinuxRtc(cfg.rtc_device)
    else:
        return None
    clock = daemon.clock

    def record(detail: dict[str, Any]) -> None:
        events = daemon.services.get("events")
        if events is not None:
            events.record(event_codes.code("BATTERY_VOLTAGE_LOW"), clock.utc(), detail)

    return BatteryWatch(rtc, clock.mono, cfg.battery_check_s, record, daemon.cfg.state_dir / "display-state.json")


def _set_sim_battery(display: MeterDisplay, low: Any) -> None:
    """Scenario signal ``battery_low``: the simulated RTC's BACKUP_LOW flag set (true) or cleared."""
    assert display.battery is not None
    rtc = display.battery.rtc
    flags = rtc.vl_flags or 0
    rtc.vl_flags = flags | VL_BACKUP_LOW if low else flags & ~VL_BACKUP_LOW


def _add_scenario_signal(daemon: Daemon, display: MeterDisplay) -> None:
    """Scenario signals ``display_button`` (a press of the scroll button) and ``battery_low``."""
    assert daemon.hardware is not None and daemon.hardware.sim is not None
    daemon.hardware.sim.extra_signals["display_button"] = lambda _value: display.lcd.button_next()
    daemon.hardware.sim.extra_signals["battery_low"] = lambda value: _set_sim_battery(display, bool(value))
