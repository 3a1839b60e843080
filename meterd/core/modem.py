"""The cellular modem as the meter sees it: one typed snapshot, and its DLMS codings.

:class:`ModemStatus` is what the modem stack (ModemManager over D-Bus, :mod:`hw.modem_manager`)
reported last: whether a modem is there, its SIM, registration, operator, access technology,
signal (quality in %, and the radio values of ModemManager's Modem.Signal: RSSI/RSRP in dBm,
RSRQ/SNR in dB), the data bearer (connected, interface, IPv4 address, byte counters) and the
serving and neighbour cells. The COSEM objects (GSM diagnostic 0-0:25.6.0.255, LTE monitoring
0-0:25.11.0.255, IPv4 setup 0-0:25.1.0.255), ``meterctl modem`` and ``/status`` all read this
one snapshot, so they always agree. The functions here map it to the Blue Book enumerations
(DLMS UA 1000-1, classes 47 and 151); pure, no I/O.
"""

from __future__ import annotations

import datetime as _dt
import enum
import math
from dataclasses import dataclass, field
from typing import Any

SIM_LOCKED = "SIM locked (PIN)"
"""The fault of a SIM waiting for its PIN (the one fault a connect may cure: Simple.Connect sends the PIN)."""


class SimState(enum.Enum):
    """The SIM as the modem sees it."""

    UNKNOWN = "unknown"
    READY = "ready"
    MISSING = "missing"
    LOCKED = "locked"       # a PIN (or PUK) is required and was not accepted


class Registration(enum.Enum):
    """3GPP network registration (ModemManager's MMModem3gppRegistrationState, merged): the value
    is the GSM diagnostic's ``status`` enumeration (class 47 attribute 3)."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5

    @property
    def registered(self) -> bool:
        """Attached to a network (home or roaming)."""
        return self in (Registration.HOME, Registration.ROAMING)


class Technology(enum.Enum):
    """Radio access technology; the value is the GSM diagnostic's ``ps_status`` (class 47
    attribute 5: 0 inactive, 1 GPRS, 2 EDGE, 3 UMTS, 4 HSDPA, 5 LTE, 6 CDMA, 7 LTE Cat M1,
    8 LTE Cat NB1)."""

    NONE = 0
    GPRS = 1
    EDGE = 2
    UMTS = 3
    HSDPA = 4
    LTE = 5
    CDMA = 6
    LTE_M = 7
    NB_IOT = 8

    @property
    def lte(self) -> bool:
        """An LTE family technology (LTE, LTE-M, NB-IoT): RSRP/RSRQ/SNR apply."""
        return self in (Technology.LTE, Technology.LTE_M, Technology.NB_IOT)


class ModemState(enum.Enum):
    """The modem's overall state (ModemManager's MMModemState, by name)."""

    ABSENT = "absent"          # no modem found on the bus
    FAILED = "failed"
    UNKNOWN = "unknown"
    INITIALIZING = "initializing"
    LOCKED = "locked"
    DISABLED = "disabled"
    DISABLING = "disabling"
    ENABLING = "enabling"
    ENABLED = "enabled"
    SEARCHING = "searching"
    REGISTERED = "registered"
    DISCONNECTING = "disconnecting"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True)
class RadioSignal:
    """Radio values of the serving cell: RSSI and RSRP (dBm), RSRQ and SNR (dB); None = not
    reported (no Modem.Signal, or the technology has no such value)."""

    rssi_dbm: float | None = None
    rsrp_dbm: float | None = None
    rsrq_db: float | None = None
    snr_db: float | None = None


@dataclass(frozen=True)
class Bearer:
    """The packet data connection: ``connected``, the network ``interface`` (e.g. wwan0), its IPv4
    address, prefix length, gateway and DNS servers, bytes received/sent and seconds connected
    (the bearer's Stats)."""

    connected: bool = False
    interface: str = ""
    ipv4: str = ""
    prefix: int = 0
    gateway: str = ""
    dns: tuple[str, ...] = ()
    rx_bytes: int = 0
    tx_bytes: int = 0
    duration_s: int = 0


@dataclass(frozen=True)
class Cell:
    """One cell the modem sees: cell id, location (LAC or TAC), MCC/MNC, signal quality 0…31
    (the 27.007 CSQ scale, 99 unknown) and whether it is the serving cell."""

    cell_id: int
    location_id: int = 0
    mcc: int = 0
    mnc: int = 0
    quality: int = 99
    serving: bool = False


@dataclass(frozen=True)
class ModemStatus:
    """Everything the meter knows of its modem at ``captured_utc`` (module docstring)."""

    state: ModemState = ModemState.ABSENT
    failed_reason: str = ""
    model: str = ""
    sim: SimState = SimState.UNKNOWN
    registration: Registration = Registration.UNKNOWN
    operator_name: str = ""
    operator_code: str = ""
    technology: Technology = Technology.NONE
    quality_pct: int = 0
    signal: RadioSignal = field(default_factory=RadioSignal)
    bearer: Bearer = field(default_factory=Bearer)
    cells: tuple[Cell, ...] = ()
    captured_utc: _dt.datetime | None = None

    @property
    def present(self) -> bool:
        """A modem answers on the bus."""
        return self.state is not ModemState.ABSENT

    def fault(self) -> str:
        """Why the modem cannot carry data now, in words ("" when it could): no modem, modem
        failed, no SIM, SIM locked, registration denied or not registered."""
        if not self.present:
            return "no modem"
        if self.state is ModemState.FAILED:
            return f"modem failed ({self.failed_reason or 'unknown reason'})"
        if self.sim is SimState.MISSING:
            return "no SIM"
        if self.sim is SimState.LOCKED or self.state is ModemState.LOCKED:
            return SIM_LOCKED
        if self.registration is Registration.DENIED:
            return "registration denied"
        if not self.registration.registered:
            return "not registered"
        return ""

    def view(self) -> dict[str, Any]:
        """``meterctl modem`` and ``/status``: the snapshot in plain values."""
        sig = self.signal
        bearer = self.bearer
        return {
            "state": self.state.value, "fault": self.fault(), "failed_reason": self.failed_reason, "model": self.model,
            "sim": self.sim.value, "registration": self.registration.name.lower(),
            "operator": {"name": self.operator_name, "code": self.operator_code},
            "technology": self.technology.name.lower(), "quality_pct": self.quality_pct, "csq": csq(self),
            "signal": {"rssi_dbm": sig.rssi_dbm, "rsrp_dbm": sig.rsrp_dbm, "rsrq_db": sig.rsrq_db,
                       "snr_db": sig.snr_db},
            "bearer": {"connected": bearer.connected, "interface": bearer.interface, "ipv4": bearer.ipv4,
                       "prefix": bearer.prefix, "gateway": bearer.gateway, "dns": list(bearer.dns),
                       "rx_bytes": bearer.rx_bytes, "tx_bytes": bearer.tx_bytes, "duration_s": bearer.duration_s},
            "cells": [{"cell_id": c.cell_id, "location_id": c.location_id, "mcc": c.mcc, "mnc": c.mnc,
                       "quality": c.quality, "serving": c.serving} for c in self.cells],
            "captured_utc": self.captured_utc.isoformat() if self.captured_utc is not None else None,
        }


def csq(status: ModemStatus) -> int:
    """Signal quality on the 27.007 CSQ scale (0…31, 99 = unknown), as the GSM diagnostic's cell
    info carries it: from the RSSI (dBm, −113 + 2·CSQ) when known, else from the quality (%)."""
    rssi = status.signal.rssi_dbm
    if rssi is not None and math.isfinite(rssi):
        return max(0, min(31, round((rssi + 113.0) / 2.0)))
    if status.quality_pct <= 0 or not status.registration.registered:
        return 99
    return max(0, min(31, round(status.quality_pct * 31 / 100)))


def cs_attachment(status: ModemStatus) -> int:
    """GSM diagnostic ``cs_attachment`` (class 47 attribute 4): 0 inactive, 1 incoming call,
    2 active. The meter makes no calls: active when registered, else inactive."""
    return 2 if status.registration.registered else 0


def ps_status(status: ModemStatus) -> int:
    """GSM diagnostic ``ps_status`` (class 47 attribute 5): the technology while a bearer is up
    (packet service attached), 0 inactive otherwise."""
    return status.technology.value if status.bearer.connected else 0


def lte_quality(status: ModemStatus) -> tuple[int, int, int, int]:
    """LTE monitoring quality of service (class 151 attribute 3): signal quality (dB, the SNR,
    −20…30), signal level (CSQ 0…31, 99 unknown), signal to noise ratio (dB) and the coverage
    enhancement level (0: CE level 0, i.e. none reported)."""
    snr = status.signal.snr_db
    snr_db = round(snr) if snr is not None and math.isfinite(snr) else 0
    return snr_db, csq(status), snr_db, 0


def quality_from_csq(value: int) -> int:
    """The 0…100 % quality of a CSQ value (99: 0 %)."""
    return 0 if value == 99 else round(max(0, min(31, value)) * 100 / 31)
