"""What the meter's displays show, gathered from the live meter: the LCD's :class:`DisplayData`
and the CIU's display fields (:func:`live_values`).

Values: per-phase U (V), I (A), PF and phasors, total P (W), Q (var), f (Hz); import and export
energy 1-0:1.8.0 / 1-0:2.8.0 (kWh, the last committed checkpoint: never a value a crash could take
back); maximum demand 1-0:1.6.0 (kW) from the revenue service; credit (0-0:19.10.0) from the
payment service's :class:`~meterd.core.credit.CreditView`; the relay from load control (else the
``relay_open`` status flag); tampers from the supervision (else the ``tamper`` flag).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meterd.core.clock import Clock
from meterd.core.credit import CreditView
from meterd.core.demand import DemandQuantity
from meterd.core.energy import Quantity
from meterd.services.load_control import LoadControl
from meterd.services.metering import MeteringService
from meterd.services.payment import PaymentService
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision
from meterd.ui.display_data import DisplayData


@dataclass(frozen=True)
class LiveSources:
    """Where the display values come from; each service None when its feature is off."""

    meter: MeteringService
    clock: Clock
    payment: PaymentService | None = None
    revenue: RevenueService | None = None
    load_control: LoadControl | None = None
    supervision: Supervision | None = None
    firmware: Callable[[], tuple[str, str]] | None = None  # (identifier, checksum hex) of what runs
    ciu_firmware: Callable[[], tuple[str, str]] | None = None  # the same of the CIU's software
    phases: int = 3  # the meter's wiring: 3 (3P4W) or 1 (1P2W, L1 only on the display)

    def credit(self) -> CreditView | None:
        """The payment service's credit view, None without prepayment."""
        return None if self.payment is None else self.payment.credit_view()

    def relay_closed(self) -> bool:
        """The supply relay state: the load-control output when present, else the status flags."""
        if self.load_control is not None:
            return bool(self.load_control.status().output_state)
        return "relay_open" not in self.meter.status_flags()

    def tamper_names(self) -> list[str]:
        """Active tampers (``terminal_cover_open``, ``magnetic_field``…) or ``["tamper"]`` from the flags."""
        if self.supervision is not None:
            return list(self.supervision.tamper_status())
        return ["tamper"] if "tamper" in self.meter.status_flags() else []

    def energy_kwh(self) -> tuple[float, float]:
        """Active import and export energy (kWh), totals 1-0:1.8.0.255 and 1-0:2.8.0.255, as committed."""
        registers = self.meter.committed
        return registers.get(Quantity.ACTIVE_IMPORT) / 1e6, registers.get(Quantity.ACTIVE_EXPORT) / 1e6

    def local(self, utc: _dt.datetime) -> _dt.datetime:
        """Local legal time (naive wall clock) from the revenue service; UTC without it."""
        if self.revenue is not None:
            return self.revenue.local_time(utc).wall
        return utc.replace(tzinfo=None)

    def max_demand(self) -> tuple[float, _dt.datetime | None]:
        """Maximum demand of active import 1-0:1.6.0 (kW) and its local capture time."""
        if self.revenue is None:
            return 0.0, None
        md = self.revenue.demand.max_demand(DemandQuantity.ACTIVE_IMPORT)
        when = md.capture_utc
        return md.value_w / 1000.0, None if when is None else self.local(when)


def credit_fields(view: CreditView) -> dict[str, Any]:
    """The credit as a customer display shows it: ``credit`` (kWh or currency units), ``unit``
    (``kWh``, the currency, with ``(postpaid)`` when informative only), ``low_credit``, ``mode``,
    ``emergency`` (emergency credit in use)."""
    return {"credit": view.shown_credit, "unit": view.shown_unit, "low_credit": view.low_credit,
            "mode": view.mode.value, "emergency": view.emergency.active}


def live_values(src: LiveSources) -> dict[str, Any]:
    """What the CIU shows: power (W), energy (kWh), credit, relay, tamper (scalars only)."""
    reading = src.meter.last_reading
    out: dict[str, Any] = {"power_w": 0.0, "power_l1_w": 0.0, "power_l2_w": 0.0, "power_l3_w": 0.0}
    if reading is not None:
        out["power_w"] = round(reading.total_active_power_w, 1)
        for n, phase in enumerate(reading.phases, start=1):
            out[f"power_l{n}_w"] = round(phase.active_power_w, 1)
    out["import_kwh"], out["export_kwh"] = (round(v, 3) for v in src.energy_kwh())
    credit = src.credit()
    if credit is not None:
        out.update(credit_fields(credit))
    else:
        out["mode"] = "postpaid"
    out["relay"] = src.relay_closed()
    tampers = src.tamper_names()
    out["tamper"] = bool(tampers)
    out["cover_open"] = any("cover" in name for name in tampers)
    out["magnet"] = any("magnet" in name for name in tampers)
    return out


def display_data(src: LiveSources, battery_low: bool | None = False) -> DisplayData:
    """One :class:`DisplayData` snapshot of the live meter; ``battery_low`` None = battery unknown."""
    values: dict[str, Any] = {}
    reading = src.meter.last_reading
    if reading is not None:
        phases = reading.phases
        values.update(
            voltage_v=tuple(p.voltage_v for p in phases), current_a=tuple(p.current_a for p in phases),
            power_factor=tuple(p.power_factor for p in phases),
            voltage_angle_deg=tuple(p.voltage_angle_deg for p in phases),
            current_angle_deg=tuple(p.voltage_angle_deg - p.angle_deg for p in phases),
            active_power_w=reading.total_active_power_w, reactive_power_var=reading.total_reactive_power_var,
            frequency_hz=reading.frequency_hz)
    values["import_energy_kwh"], values["export_energy_kwh"] = src.energy_kwh()
    values["max_demand_kw"], values["max_demand_time"] = src.max_demand()
    credit = src.credit()
    if credit is not None:
        values.update(credit=credit.shown_credit, credit_unit=credit.shown_unit, low_credit=credit.low_credit)
    values["local_time"] = src.local(src.clock.utc())
    values["relay_closed"] = src.relay_closed()
    tampers = src.tamper_names()
    values["cover_open"] = any("cover" in name for name in tampers)
    values["magnet"] = any("magnet" in name for name in tampers)
    values["tamper_other"] = tuple(n for n in tampers if "cover" not in n and "magnet" not in n)
    if "metrology_fault" in src.meter.status_flags():  # the metering IC in fault: the ALARM line says so
        values["tamper_other"] += ("metrology_fault",)
    values["battery_low"], values["battery_known"] = bool(battery_low), battery_low is not None
    values["phases"] = src.phases
    if src.firmware is not None:
        values["firmware_id"], values["firmware_checksum"] = src.firmware()
    if src.ciu_firmware is not None:
        values["ciu_firmware_id"], values["ciu_firmware_checksum"] = src.ciu_firmware()
    return DisplayData(**values)
