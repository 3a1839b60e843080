"""JSON views of the meter for the local API (units in every key name)."""

from __future__ import annotations

from typing import Any

from meterd.core.credit import CreditView
from meterd.core.energy import Derived, Quantity, obis_c
from meterd.core.model import MeterIdentity, MeterSnapshot
from meterd.core.reading import PHASES, Channel
from meterd.core.sts.outcome import TokenOutcome

ENERGY_KEYS: dict[Quantity | Derived, str] = {
    Quantity.ACTIVE_IMPORT: "active_import_wh",
    Quantity.ACTIVE_EXPORT: "active_export_wh",
    Derived.ACTIVE_ABSOLUTE: "active_absolute_wh",
    Derived.REACTIVE_IMPORT: "reactive_import_varh",
    Derived.REACTIVE_EXPORT: "reactive_export_varh",
    Quantity.REACTIVE_Q1: "reactive_q1_varh",
    Quantity.REACTIVE_Q2: "reactive_q2_varh",
    Quantity.REACTIVE_Q3: "reactive_q3_varh",
    Quantity.REACTIVE_Q4: "reactive_q4_varh",
    Quantity.APPARENT_IMPORT: "apparent_import_vah",
    Quantity.APPARENT_EXPORT: "apparent_export_vah",
}


def milli_to_unit(value: int) -> float:
    """Milli-units (mWh) to units (Wh), exact to the printed 3 decimals."""
    return round(value / 1000, 3)


def energy_view(snapshot: MeterSnapshot) -> dict[str, dict[str, float]]:
    """Energy registers per channel in Wh / varh / VAh."""
    out: dict[str, dict[str, float]] = {}
    for channel in Channel:
        name = "total" if channel is Channel.TOTAL else channel.value
        out[name] = {key: milli_to_unit(snapshot.energy(q, channel)) for q, key in ENERGY_KEYS.items()}
    return out


def energy_obis(snapshot: MeterSnapshot) -> dict[str, float]:
    """Energy registers keyed by OBIS code (1.0.C.8.0.255), in Wh / varh / VAh."""
    return {f"1.0.{obis_c(q, ch)}.8.0.255": milli_to_unit(snapshot.energy(q, ch))
            for ch in Channel for q in ENERGY_KEYS}


def status_view(identity: MeterIdentity, snapshot: MeterSnapshot, flags: set[str],
                extra: dict[str, Any] | None = None, phases: tuple[Channel, ...] = PHASES) -> dict[str, Any]:
    """The `meterctl --json status` object; ``phases``: those the meter's wiring has (L1 alone for
    1P2W: L2 and L3 are not listed; the energy registers are all there, unchanged)."""
    reading = snapshot.reading
    per_phase: dict[str, dict[str, float]] = {}
    freq = reading.frequency_hz if reading else 0.0
    for ch in phases:
        p = reading.phase(ch) if reading else None
        per_phase[ch.value] = {
            "voltage_v": round(p.voltage_v, 3) if p else 0.0,
            "current_a": round(p.current_a, 4) if p else 0.0,
            "active_power_w": round(p.active_power_w, 3) if p else 0.0,
            "reactive_power_var": round(p.reactive_power_var, 3) if p else 0.0,
            "apparent_power_va": round(p.apparent_power_va, 3) if p else 0.0,
            "power_factor": round(p.power_factor, 4) if p else 0.0,
            "angle_deg": round(p.angle_deg, 2) if p else 0.0,
            "frequency_hz": round(freq, 3),
        }
    total = {
        "active_power_w": round(reading.total_active_power_w, 3) if reading else 0.0,
        "reactive_power_var": round(reading.total_reactive_power_var, 3) if reading else 0.0,
        "apparent_power_va": round(reading.total_apparent_power_va, 3) if reading else 0.0,
        "power_factor": round(reading.total_power_factor, 4) if reading else 0.0,
        "neutral_current_a": round(reading.neutral_current_a, 4) if reading else 0.0,
    }
    view: dict[str, Any] = {
        "serial": identity.serial,
        "logical_device_name": identity.logical_device_name,
        "firmware_version": identity.firmware_version,
        "utc": snapshot.utc.isoformat(),
        "frequency_hz": round(freq, 3),
        "temperature_c": round(reading.temperature_c, 1) if reading else None,
        "phases": per_phase,
        "total": total,
        "energy": energy_view(snapshot),
        "status_word": snapshot.status_word,
        "status_flags": sorted(flags),
    }
    if extra:
        view.update(extra)
    return view


def status_table(view: dict[str, Any]) -> str:
    """The human `meterctl status` table."""
    lines = [f"Meter {view['serial']}  {view['utc']}  f={view['frequency_hz']:.2f} Hz"]
    lines.append(f"{'':8}{'U (V)':>10}{'I (A)':>10}{'P (W)':>12}{'Q (var)':>12}{'S (VA)':>12}{'PF':>8}")
    for name, p in view["phases"].items():
        lines.append(f"{name:8}{p['voltage_v']:>10.2f}{p['current_a']:>10.3f}{p['active_power_w']:>12.1f}"
                     f"{p['reactive_power_var']:>12.1f}{p['apparent_power_va']:>12.1f}{p['power_factor']:>8.3f}")
    t = view["total"]
    lines.append(f"{'total':8}{'':>10}{'':>10}{t['active_power_w']:>12.1f}{t['reactive_power_var']:>12.1f}"
                 f"{t['apparent_power_va']:>12.1f}{t['power_factor']:>8.3f}")
    lines.append("")
    columns = ("total", *view["phases"])  # the phases the meter's wiring has
    lines.append(f"{'Energy':22}" + "".join(f"{ch:>14}" for ch in columns))
    e = view["energy"]
    for key in e["total"]:
        lines.append(f"{key:22}" + "".join(f"{e[ch][key]:>14.3f}" for ch in columns))
    flags = ", ".join(view["status_flags"]) or "none"
    lines.append("")
    lines.append(f"Status flags: {flags}")
    if "tamper" in view:
        lines.append(f"Tamper: {text_value(view['tamper'])}")
    clock = view.get("time")
    if isinstance(clock, dict):  # the time trust (meterd.api.time_views)
        lines.append(f"Time: {clock.get('state')}, clock status 0x{int(clock.get('clock_status') or 0):02X}, "
                     f"last sync {clock.get('last_sync_utc') or 'never'} ({clock.get('last_sync_source') or '-'})")
    for key in ("relay", "credit", "firmware", "links"):
        if isinstance(view.get(key), dict):
            lines.append("")
            lines.append(key.capitalize())
            lines.extend("  " + row for row in aligned(flat_rows(view[key])))
    interfaces = view.get("interfaces")
    if isinstance(interfaces, dict) and interfaces:
        lines.append("")
        lines.append("Interfaces")
        lines.extend("  " + row for row in aligned([(name, _interface_text(state))
                                                     for name, state in interfaces.items()]))
    return "\n".join(lines)


def _interface_text(state: dict[str, Any]) -> str:
    """One interface of ``/status``: "on", or "off since <UTC>: <reason>" (:mod:`meterd.services.interfaces`)."""
    if state.get("state") == "on":
        return "on"
    return f"off since {state.get('since', '?')}: {state.get('reason', '')}"


def text_value(value: Any) -> str:
    """One value as a person reads it: yes/no, "-" for none, lists comma-separated ("none" when
    empty), a table inline as ``key=value`` pairs."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_inline(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_inline(v) for v in value) or "none"
    return str(value)


def _inline(value: Any) -> str:
    """A value nested inside another: tables in braces so their pairs stay apart."""
    return f"{{{text_value(value)}}}" if isinstance(value, dict) and value else text_value(value)


def flat_rows(table: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested API object as (dotted key, text value) rows, e.g. ``("limiter.state", "armed")``."""
    rows: list[tuple[str, str]] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(flat_rows(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            rows.extend((f"{name}[{i}]", text_value(item)) for i, item in enumerate(value))  # e.g. events
        else:
            rows.append((name, text_value(value)))
    return rows


def aligned(rows: list[tuple[str, str]]) -> list[str]:
    """``key  value`` lines, the values in one column."""
    width = max((len(k) for k, _ in rows), default=0) + 2
    return [f"{k:{width}}{v}" for k, v in rows]


def text_table(payload: dict[str, Any]) -> str:
    """Any API answer as aligned ``key  value`` rows (``meterctl`` without ``--json``)."""
    return "\n".join(aligned(flat_rows(payload)))


def credit_json(view: CreditView) -> dict[str, Any]:
    """``GET /credit`` (and ``credit`` in ``/status`` and token answers): the credit account.

    Amounts in the account's display unit (``credit_unit``: Wh, or minor currency units such as
    ``EUR/100``); ``credit_kwh`` for energy accounts.
    """
    em = view.emergency
    return {
        "mode": view.mode.value, "unit": view.unit.value, "credit": view.credit, "credit_unit": view.credit_unit,
        "credit_kwh": view.credit_kwh, "currency": view.currency, "minor_digits": view.minor_digits,
        "low_credit": view.low_credit, "low_credit_threshold": view.low_credit_threshold,
        "emergency": {"available": em.available, "active": em.active, "owed": em.owed, "amount": em.amount,
                      "threshold": em.threshold},
        "friendly": view.friendly, "rate": view.rate, "relay": view.relay, "relay_off": view.relay_off,
        "consumed": view.consumed, "token_seq": view.token_seq,
        "key": None if view.key is None else dict(view.key),
    }


def token_json(outcome: TokenOutcome) -> dict[str, Any]:
    """``POST /token``: the token's result (class, subclass, TID, amount, management attributes,
    lockout time in s when known) and the credit account after it."""
    out: dict[str, Any] = {"result": outcome.result, "accepted": outcome.accepted, "display": outcome.display,
                           "number": outcome.number}
    if outcome.decoded:
        out.update({"class": outcome.token_class, "subclass": outcome.subclass, "tid": outcome.tid})
    if outcome.amount_tenths is not None:
        out["amount"] = {"tenths": outcome.amount_tenths, "unit": outcome.unit}
    if outcome.currency_1e5 is not None:
        out["amount"] = {"currency_1e5": outcome.currency_1e5}
    if outcome.management:
        out["management"] = dict(outcome.management)
    if outcome.lockout_s is not None:
        out["lockout_s"] = round(outcome.lockout_s, 1)
    out["credit"] = credit_json(outcome.credit_after)
    return out


def emergency_json(granted: bool, view: CreditView) -> dict[str, Any]:
    """``POST /credit/emergency``: whether emergency credit was granted, and the account after."""
    return {"granted": granted, "credit": credit_json(view)}
