"""COSEM objects of the cellular modem and the IP stack above it, read from the modem supervision.

Every value comes from the one :class:`~meterd.core.modem.ModemStatus` snapshot the supervision
holds (what ModemManager reported last), so DLMS, ``meterctl modem`` and ``/status`` agree.

* 0-0:25.4.0.255 GPRS modem setup (class 45, version 0): 2 APN (octet-string; the management
  client may write it: used from the next connect and kept across restarts), 3 PIN code
  (long-unsigned, **write-only**: a read is refused, the value is never logged; used from the
  next connect), 4 quality of service (default and requested precedence, delay, reliability,
  peak and mean throughput, all 0: "subscribed", the meter asks for nothing else);
* 0-0:25.6.0.255 GSM diagnostic (class 47, version 1): 2 operator, 3 status (registration),
  4 cs attachment, 5 ps status (technology while the bearer is up), 6 cell info (cell id,
  location id, signal quality on the CSQ scale, BER 99 = unknown, MCC, MNC, channel 0 = not
  reported), 7 adjacent cells (id, CSQ) where the modem reports them, 8 capture time (UTC,
  deviation 0);
* 0-0:25.11.0.255 LTE monitoring (class 151, version 0): 2 network parameters (T3402, T3412,
  T3412ext2, T3324, TeDRX, TPTW, qRxlevMin, qRxlevMinCE, qRxlevMinCE1: ModemManager does not
  report the network's timers, all 0), 3 quality of service (signal quality = SNR dB, signal
  level CSQ, SNR dB, coverage enhancement 0);
* 0-0:25.0.0.255 TCP-UDP setup (class 41): 2 the DLMS wrapper port, 3 IP reference
  0-0:25.1.0.255, 4 MSS (octets), 5 simultaneous connections, 6 inactivity time-out (s);
* 0-0:25.1.0.255 IPv4 setup (class 42): 2 DL reference 0-0:25.4.0.255, 3 the bearer's IPv4
  address, 4 multicast (none), 5 IP options (none), 6 subnet mask (from the prefix), 7 gateway,
  8 use DHCP (false: the address comes with the bearer), 9 and 10 primary and secondary DNS;
  methods refused (the address is the network's);
* 0-0:2.1.0.255 auto connect (class 29, version 2): 2 mode (0 never, 101 permanently
  connected, 102 connected within the calling windows), 3 repetitions (0: no limit, the
  back-off grows instead), 4 repetition delay (s, the first back-off), 5 calling windows
  (start and end, time of day UTC, date wildcards), 6 destination list (the head end); method 1
  ``connect`` starts a connect attempt now (management).

Reads for the reader and the management association; writes and the method for the management one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gurux_dlms.enums import ErrorCode
from gurux_dlms.objects import (
    GXDLMSAutoConnect,
    GXDLMSGprsSetup,
    GXDLMSGSMDiagnostic,
    GXDLMSIp4Setup,
    GXDLMSLteMonitoring,
    GXDLMSTcpUdpSetup,
)

from meterd.core.modem import ModemStatus, cs_attachment, csq, lte_quality, ps_status
from meterd.cosem import axdr, datetime_codec
from meterd.cosem.adapters import DENIED, OK, OTHER_REASON, TYPE_UNMATCHED, AttributeTable, AttributeValue
from meterd.cosem.objects import Access, CosemContext, CosemEntry, ObjectFactory
from meterd.services.modem import AUTO_CONNECT_MODES, ModemSupervisor, Window

_log = logging.getLogger("meterd.cosem")

GPRS_SETUP_OBIS = "0.0.25.4.0.255"
GSM_DIAGNOSTIC_OBIS = "0.0.25.6.0.255"
LTE_MONITORING_OBIS = "0.0.25.11.0.255"
TCP_UDP_SETUP_OBIS = "0.0.25.0.0.255"
IPV4_SETUP_OBIS = "0.0.25.1.0.255"
AUTO_CONNECT_OBIS = "0.0.2.1.0.255"
UNKNOWN_BER = 99


@dataclass(frozen=True)
class ModemProvisioning:
    """What the management client may change: ``set_apn(apn)`` and ``set_pin(pin)`` (digits),
    each returning a DLMS result code; ``tcp_port`` (the DLMS wrapper's port, 0 = none),
    ``head_end`` (``host:port``, the auto connect destination)."""

    set_apn: Callable[[str], int]
    set_pin: Callable[[str], int]
    tcp_port: int = 4059
    head_end: str = ""


def _u32_of_ip(text: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text)) if text else 0
    except ValueError:
        return 0


def _mask(prefix: int) -> int:
    return (0xFFFF_FFFF << (32 - prefix)) & 0xFFFF_FFFF if 0 < prefix <= 32 else 0


class ModemGprsSetup(AttributeTable, GXDLMSGprsSetup):  # type: ignore[misc]  # gurux is untyped
    """GPRS modem setup (class 45): APN (writable), PIN (write-only), QoS (module docstring)."""

    def __init__(self, supervisor: ModemSupervisor, provisioning: ModemProvisioning) -> None:
        super().__init__(GPRS_SETUP_OBIS)
        self._sup = supervisor
        self._prov = provisioning

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        qos = axdr.encode_structure(*(axdr.encode_value(axdr.UINT8, 0) for _ in range(5)))
        return {2: lambda: axdr.encode_value(axdr.OCTET_STRING, self._sup.settings.apn.encode()),
                4: axdr.encode_structure(qos, qos)}

    def getValue(self, settings: Any, e: Any) -> Any:
        if e.index == 3:  # the PIN is write-only
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        return super().getValue(settings, e)

    def write(self, e: Any) -> int:
        if e.index == 2:
            if not isinstance(e.value, bytes | bytearray | str):
                return TYPE_UNMATCHED
            raw = e.value.encode() if isinstance(e.value, str) else bytes(e.value)
            try:
                apn = raw.decode("ascii")
            except UnicodeDecodeError:
                return OTHER_REASON
            if not 0 < len(apn) <= 100 or any(not (c.isalnum() or c in ".-_") for c in apn):
                return OTHER_REASON
            return self._prov.set_apn(apn)
        if e.index == 3:
            if isinstance(e.value, bool) or not isinstance(e.value, int) or not 0 <= e.value <= 0xFFFF:
                return TYPE_UNMATCHED
            return self._prov.set_pin(f"{int(e.value):04d}")
        return DENIED


class ModemGsmDiagnostic(AttributeTable, GXDLMSGSMDiagnostic):  # type: ignore[misc]  # gurux is untyped
    """GSM diagnostic (class 47, version 1) of the modem's last snapshot."""

    def __init__(self, status: Callable[[], ModemStatus]) -> None:
        super().__init__(GSM_DIAGNOSTIC_OBIS)
        self.version = 1
        self._status = status

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: lambda: axdr.encode_value(axdr.VISIBLE_STRING, self._status().operator_name),
                3: lambda: axdr.encode_value(axdr.ENUM, self._status().registration.value),
                4: lambda: axdr.encode_value(axdr.ENUM, cs_attachment(self._status())),
                5: lambda: axdr.encode_value(axdr.ENUM, ps_status(self._status())),
                6: self._cell_info, 7: self._adjacent, 8: self._capture_time}

    def _cell_info(self) -> bytes:
        st = self._status()
        serving = next((c for c in st.cells if c.serving), None)
        mcc, mnc = _mcc_mnc(st.operator_code)
        cell_id, location = (serving.cell_id, serving.location_id) if serving is not None else (0, 0)
        if serving is not None and serving.mcc:
            mcc, mnc = serving.mcc, serving.mnc
        return axdr.encode_structure(
            axdr.encode_value(axdr.UINT32, cell_id & 0xFFFF_FFFF), axdr.encode_value(axdr.UINT16, location & 0xFFFF),
            axdr.encode_value(axdr.UINT8, csq(st)), axdr.encode_value(axdr.UINT8, UNKNOWN_BER),
            axdr.encode_value(axdr.UINT16, mcc), axdr.encode_value(axdr.UINT16, mnc),
            axdr.encode_value(axdr.UINT32, 0))

    def _adjacent(self) -> bytes:
        return axdr.encode_array([axdr.encode_structure(axdr.encode_value(axdr.UINT32, c.cell_id & 0xFFFF_FFFF),
                                                        axdr.encode_value(axdr.UINT8, c.quality))
                                  for c in self._status().cells if not c.serving])

    def _capture_time(self) -> bytes:
        utc = self._status().captured_utc
        raw = datetime_codec.encode_utc(utc) if utc is not None else b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x80\x00\xff"
        return axdr.encode_value(axdr.OCTET_STRING, raw)


def _mcc_mnc(code: str) -> tuple[int, int]:
    if len(code) >= 5 and code.isdigit():
        return int(code[:3]), int(code[3:])
    return 0, 0


class ModemLteMonitoring(AttributeTable, GXDLMSLteMonitoring):  # type: ignore[misc]  # gurux is untyped
    """LTE monitoring (class 151, version 0) of the modem's last snapshot."""

    def __init__(self, status: Callable[[], ModemStatus]) -> None:
        super().__init__(LTE_MONITORING_OBIS)
        self._status = status

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return {2: self._network, 3: self._quality}

    @staticmethod
    def _network() -> bytes:
        u16, u32, i8 = axdr.UINT16, axdr.UINT32, axdr.INT8
        return axdr.encode_structure(*(axdr.encode_value(t, 0) for t in (u16, u16, u32, u16, u32, u16, i8, i8, i8)))

    def _quality(self) -> bytes:
        quality, level, snr, ce = lte_quality(self._status())
        return axdr.encode_structure(axdr.encode_value(axdr.INT8, max(-128, min(127, quality))),
                                     axdr.encode_value(axdr.INT8, level),
                                     axdr.encode_value(axdr.INT8, max(-128, min(127, snr))),
                                     axdr.encode_value(axdr.ENUM, ce))


class ModemTcpUdpSetup(AttributeTable, GXDLMSTcpUdpSetup):  # type: ignore[misc]  # gurux is untyped
    """TCP-UDP setup (class 41) of the DLMS wrapper on the IP stack (module docstring)."""

    def __init__(self, port: int) -> None:
        super().__init__(TCP_UDP_SETUP_OBIS)
        self._values = {2: axdr.encode_value(axdr.UINT16, port), 3: axdr.encode_logical_name(IPV4_SETUP_OBIS),
                        4: axdr.encode_value(axdr.UINT16, 1400), 5: axdr.encode_value(axdr.UINT8, 8),
                        6: axdr.encode_value(axdr.UINT16, 120)}

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        return self._values


class ModemIp4Setup(AttributeTable, GXDLMSIp4Setup):  # type: ignore[misc]  # gurux is untyped
    """IPv4 setup (class 42) of the cellular bearer (module docstring)."""

    def __init__(self, status: Callable[[], ModemStatus]) -> None:
        super().__init__(IPV4_SETUP_OBIS)
        self._status = status

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        def u32(read: Callable[[ModemStatus], int]) -> Callable[[], bytes]:
            return lambda: axdr.encode_value(axdr.UINT32, read(self._status()))

        def dns(i: int) -> Callable[[ModemStatus], int]:
            return lambda st: _u32_of_ip(st.bearer.dns[i]) if len(st.bearer.dns) > i else 0
        return {2: axdr.encode_logical_name(GPRS_SETUP_OBIS),
                3: u32(lambda st: _u32_of_ip(st.bearer.ipv4) if st.bearer.connected else 0),
                4: axdr.encode_array([]), 5: axdr.encode_array([]),
                6: u32(lambda st: _mask(st.bearer.prefix) if st.bearer.connected else 0),
                7: u32(lambda st: _u32_of_ip(st.bearer.gateway) if st.bearer.connected else 0),
                8: axdr.encode_value(axdr.BOOLEAN, False), 9: u32(dns(0)), 10: u32(dns(1))}


def _time_of_day(second: int) -> bytes:
    """A calling window bound: date-time with the date wildcarded, time of day UTC (deviation 0)."""
    second = min(second, 86399)
    return (b"\xff\xff\xff\xff\xff" + bytes((second // 3600, second % 3600 // 60, second % 60, 0))
            + b"\x00\x00\x00")


class ModemAutoConnect(AttributeTable, GXDLMSAutoConnect):  # type: ignore[misc]  # gurux is untyped
    """Auto connect (class 29, version 2) of the supervision's settings; method 1 connects now."""

    def __init__(self, supervisor: ModemSupervisor, destination: str) -> None:
        super().__init__(AUTO_CONNECT_OBIS)
        self.version = 2
        self._sup = supervisor
        self._destination = destination

    def attribute_values(self) -> Mapping[int, AttributeValue]:
        s = self._sup.settings
        return {2: lambda: axdr.encode_value(axdr.ENUM, AUTO_CONNECT_MODES[self._sup.settings.mode]),
                3: axdr.encode_value(axdr.UINT8, 0),
                4: axdr.encode_value(axdr.UINT16, min(0xFFFF, round(s.reconnect_min_s))),
                5: lambda: axdr.encode_array([_window(w) for w in self._sup.settings.windows]),
                6: axdr.encode_array([axdr.encode_value(axdr.OCTET_STRING, self._destination.encode())]
                                     if self._destination else [])}

    def invoke(self, settings: Any, e: Any) -> Any:
        if e.index != 1:
            e.error = ErrorCode.READ_WRITE_DENIED
            return None
        if not self._sup.connect_now():
            e.error = ErrorCode.TEMPORARY_FAILURE
        return None


def _window(w: Window) -> bytes:
    return axdr.encode_structure(axdr.encode_value(axdr.OCTET_STRING, _time_of_day(w.start_s)),
                                 axdr.encode_value(axdr.OCTET_STRING, _time_of_day(w.end_s)))


def modem_factory(supervisor: ModemSupervisor, provisioning: ModemProvisioning) -> ObjectFactory:
    """The factory registering the modem objects for every DLMS session."""

    def status() -> ModemStatus:
        return supervisor.status

    def factory(ctx: CosemContext) -> Iterable[CosemEntry]:
        yield CosemEntry(ModemGprsSetup(supervisor, provisioning), Access(write=frozenset({2, 3})))
        yield CosemEntry(ModemGsmDiagnostic(status))
        yield CosemEntry(ModemLteMonitoring(status))
        if provisioning.tcp_port:
            yield CosemEntry(ModemTcpUdpSetup(provisioning.tcp_port))
        yield CosemEntry(ModemIp4Setup(status))
        yield CosemEntry(ModemAutoConnect(supervisor, provisioning.head_end), Access(methods=frozenset({1})))

    return factory


__all__ = ["AUTO_CONNECT_OBIS", "GPRS_SETUP_OBIS", "GSM_DIAGNOSTIC_OBIS", "IPV4_SETUP_OBIS", "LTE_MONITORING_OBIS",
           "OK", "TCP_UDP_SETUP_OBIS", "ModemProvisioning", "modem_factory"]
