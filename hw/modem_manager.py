"""A client of ModemManager (``org.freedesktop.ModemManager1``) over D-Bus, from asyncio (dbus-fast).

ModemManager owns the cellular modem (QMI, MBIM or AT ports, SIM PIN, registration); the meter
reads its state and asks it for the data bearer, and never talks to the modem itself. What this
client uses of the D-Bus API (ModemManager 1.20):

* the object manager at ``/org/freedesktop/ModemManager1`` (``GetManagedObjects``): the first
  modem object ``…/Modems/N``;
* ``…Modem``: ``State`` (MMModemState), ``StateFailedReason``, ``Model``, ``Sim``,
  ``UnlockRequired`` (MMModemLock: 1 none), ``SignalQuality`` (%, recent), ``AccessTechnologies``
  (MMModemAccessTechnology bits), ``Bearers``; ``GetCellInfo`` (serving and neighbour cells,
  where the modem reports them);
* ``…Modem.Modem3gpp``: ``RegistrationState``, ``OperatorName``, ``OperatorCode`` (MCC MNC);
* ``…Modem.Signal``: ``Setup(rate s)``, then ``Gsm``/``Umts``/``Lte``/``Nr5g`` dictionaries
  (``rssi``, ``rsrp`` dBm, ``rsrq``, ``snr`` dB);
* ``…Modem.Simple``: ``Connect({"apn", "user", "password", "pin", "ip-type"})`` returns the
  bearer; ``Disconnect("/")``;
* ``…Bearer``: ``Connected``, ``Interface``, ``Ip4Config`` (``address``, ``prefix``,
  ``gateway``, ``dns1``…), ``Stats`` (``rx-bytes``, ``tx-bytes``, ``duration`` s);
* ``PropertiesChanged`` and ``InterfacesAdded``/``InterfacesRemoved`` from the service: the
  owner re-reads the snapshot on each.

The bus is the system bus, or any D-Bus address (a private bus in simulation and tests). Every
failure is a :class:`ModemManagerError` (an :class:`~hw.errors.HwError`); a missing modem is
not an error (:meth:`ModemManagerClient.snapshot` says ``present=False``). The PIN passed to
:meth:`ModemManagerClient.connect` is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from hw.errors import HwError

log = logging.getLogger("hw.modem_manager")

SERVICE = "org.freedesktop.ModemManager1"
ROOT = "/org/freedesktop/ModemManager1"
MODEM = "org.freedesktop.ModemManager1.Modem"
MODEM_3GPP = "org.freedesktop.ModemManager1.Modem.Modem3gpp"
SIGNAL = "org.freedesktop.ModemManager1.Modem.Signal"
SIMPLE = "org.freedesktop.ModemManager1.Modem.Simple"
BEARER = "org.freedesktop.ModemManager1.Bearer"
SIM = "org.freedesktop.ModemManager1.Sim"
PROPERTIES = "org.freedesktop.DBus.Properties"
OBJECT_MANAGER = "org.freedesktop.DBus.ObjectManager"

MM_STATES = {-1: "failed", 0: "unknown", 1: "initializing", 2: "locked", 3: "disabled", 4: "disabling",
             5: "enabling", 6: "enabled", 7: "searching", 8: "registered", 9: "disconnecting",
             10: "connecting", 11: "connected"}
"""MMModemState by value."""
MM_FAILED_REASONS = {0: "none", 1: "unknown", 2: "sim-missing", 3: "sim-error", 4: "unknown-capabilities",
                     5: "esim-without-profiles"}
"""MMModemStateFailedReason by value."""
LOCK_NONE = 1
"""MMModemLock: 0 unknown, 1 none, 2 SIM PIN, 3 SIM PIN2, 4 SIM PUK, …"""


class ModemManagerError(HwError):
    """ModemManager cannot be reached, or refused a call (the D-Bus error in the message)."""


@dataclass(frozen=True)
class MmBearer:
    """A bearer's properties: connected, interface, IPv4 (address, prefix, gateway, DNS), bytes
    received and sent, seconds connected."""

    path: str
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
class MmCell:
    """A cell from GetCellInfo: type (MMCellType), serving, cell id, LAC or TAC, operator id
    (MCC MNC), RSSI or RSRP (dBm) when given."""

    cell_type: int
    serving: bool
    cell_id: int
    location_id: int
    operator_id: str
    level_dbm: float | None


@dataclass(frozen=True)
class MmSnapshot:
    """ModemManager's view of the first modem, in its own codes (module docstring)."""

    present: bool
    path: str = ""
    state: int = 0
    failed_reason: int = 0
    model: str = ""
    sim_path: str = "/"
    unlock_required: int = 0
    quality_pct: int = 0
    access_technologies: int = 0
    registration: int = 4
    operator_name: str = ""
    operator_code: str = ""
    signal: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    bearers: tuple[MmBearer, ...] = ()
    cells: tuple[MmCell, ...] = ()

    @property
    def state_name(self) -> str:
        return MM_STATES.get(self.state, "unknown")

    @property
    def failed_reason_name(self) -> str:
        return MM_FAILED_REASONS.get(self.failed_reason, "unknown")


def _plain(value: Any) -> Any:
    """Variants unwrapped, recursively."""
    if isinstance(value, Variant):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _hex_int(text: Any) -> int:
    try:
        return int(str(text), 16)
    except ValueError:
        return 0


class ModemManagerClient:
    """ModemManager on the system bus (``address`` None) or on the bus at ``address``."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._bus: MessageBus | None = None
        self._listeners: list[Callable[[], None]] = []

    async def open(self) -> None:
        """Connect to the bus and subscribe to ModemManager's changes."""
        try:
            if self.address:
                bus = MessageBus(bus_address=self.address)
            else:
                bus = MessageBus(bus_type=BusType.SYSTEM)
            self._bus = await bus.connect()
        except (OSError, DBusError, ValueError) as exc:
            where = self.address or "the system bus"
            raise ModemManagerError(f"D-Bus at {where}: {exc}") from exc
        self._bus.add_message_handler(self._on_message)
        for rule in (f"type='signal',sender='{SERVICE}',interface='{PROPERTIES}',member='PropertiesChanged'",
                     f"type='signal',sender='{SERVICE}',interface='{OBJECT_MANAGER}'"):
            await self._call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                             "AddMatch", "s", [rule])

    async def close(self) -> None:
        """Leave the bus."""
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` after each property change or modem added/removed (re-read then)."""
        self._listeners.append(listener)

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    def _on_message(self, msg: Message) -> bool | None:
        if msg.message_type is MessageType.SIGNAL and (msg.interface in (PROPERTIES, OBJECT_MANAGER)) \
                and msg.path is not None and msg.path.startswith(ROOT):
            for listener in list(self._listeners):
                listener()
        return None

    async def _call(self, dest: str, path: str, iface: str, member: str, signature: str = "",
                    body: list[Any] | None = None) -> list[Any]:
        if self._bus is None:
            raise ModemManagerError("not connected to D-Bus")
        try:
            reply = await self._bus.call(Message(destination=dest, path=path, interface=iface, member=member,
                                                 signature=signature, body=body or []))
        except (OSError, EOFError) as exc:
            raise ModemManagerError(f"{member}: {exc}") from exc
        if reply is None:
            raise ModemManagerError(f"{member}: no reply")
        if reply.message_type is MessageType.ERROR:
            text = reply.body[0] if reply.body else ""
            raise ModemManagerError(f"{member}: {reply.error_name}: {text}")
        return list(reply.body)

    async def _props(self, path: str, iface: str) -> dict[str, Any]:
        body = await self._call(SERVICE, path, PROPERTIES, "GetAll", "s", [iface])
        return dict(_plain(body[0]))

    async def modem_path(self) -> str | None:
        """The first modem's object path (None: no modem, or ModemManager not running)."""
        try:
            body = await self._call(SERVICE, ROOT, OBJECT_MANAGER, "GetManagedObjects")
        except ModemManagerError as exc:
            if "ServiceUnknown" in str(exc) or "NameHasNoOwner" in str(exc):
                return None
            raise
        modems = sorted(p for p, ifaces in body[0].items() if MODEM in ifaces)
        return modems[0] if modems else None

    async def snapshot(self) -> MmSnapshot:
        """Everything the meter reads of the first modem (``present=False`` without one)."""
        path = await self.modem_path()
        if path is None:
            return MmSnapshot(present=False)
        modem = await self._props(path, MODEM)
        gpp = await self._optional_props(path, MODEM_3GPP)
        signal = await self._optional_props(path, SIGNAL)
        bearers = []
        for bearer_path in modem.get("Bearers", []):
            bearers.append(await self._bearer(str(bearer_path)))
        quality = modem.get("SignalQuality", (0, False))
        return MmSnapshot(
            present=True, path=path, state=int(modem.get("State", 0)),
            failed_reason=int(modem.get("StateFailedReason", 0)), model=str(modem.get("Model", "")),
            sim_path=str(modem.get("Sim", "/")), unlock_required=int(modem.get("UnlockRequired", 0)),
            quality_pct=int(quality[0]), access_technologies=int(modem.get("AccessTechnologies", 0)),
            registration=int(gpp.get("RegistrationState", 4)), operator_name=str(gpp.get("OperatorName", "")),
            operator_code=str(gpp.get("OperatorCode", "")),
            signal={tech: {k: float(v) for k, v in values.items() if isinstance(v, int | float)}
                    for tech in ("Gsm", "Umts", "Lte", "Nr5g")
                    if isinstance(values := signal.get(tech), dict) and values},
            bearers=tuple(bearers), cells=await self._cells(path))

    async def _optional_props(self, path: str, iface: str) -> dict[str, Any]:
        try:
            return await self._props(path, iface)
        except ModemManagerError as exc:
            if "UnknownInterface" in str(exc) or "InvalidArgs" in str(exc) or "UnknownProperty" in str(exc):
                return {}
            raise

    async def _bearer(self, path: str) -> MmBearer:
        props = await self._props(path, BEARER)
        ip4 = props.get("Ip4Config", {}) or {}
        stats = props.get("Stats", {}) or {}
        dns = tuple(str(ip4[k]) for k in ("dns1", "dns2", "dns3") if ip4.get(k))
        return MmBearer(path, bool(props.get("Connected", False)), str(props.get("Interface", "")),
                        str(ip4.get("address", "")), int(ip4.get("prefix", 0)), str(ip4.get("gateway", "")), dns,
                        int(stats.get("rx-bytes", 0)), int(stats.get("tx-bytes", 0)), int(stats.get("duration", 0)))

    async def _cells(self, path: str) -> tuple[MmCell, ...]:
        try:
            body = await self._call(SERVICE, path, MODEM, "GetCellInfo")
        except ModemManagerError:
            return ()  # older ModemManager, or the modem does not report cells
        cells = []
        for raw in _plain(body[0]):
            level = raw.get("rsrp", raw.get("rssi"))
            cells.append(MmCell(int(raw.get("cell-type", 0)), bool(raw.get("serving", False)),
                                _hex_int(raw.get("ci", "0")), _hex_int(raw.get("tac", raw.get("lac", "0"))),
                                str(raw.get("operator-id", "")), float(level) if level is not None else None))
        return tuple(cells)

    async def setup_signal(self, path: str, rate_s: int) -> None:
        """Ask the modem to refresh the radio values (Modem.Signal) every ``rate_s`` (s)."""
        await self._call(SERVICE, path, SIGNAL, "Setup", "u", [rate_s])

    async def connect(self, path: str, apn: str, user: str = "", password: str = "", pin: str = "",
                      ip_type: str = "ipv4") -> str:
        """Simple.Connect with the APN (and credentials, PIN); the bearer's path. The PIN and the
        password never appear in logs or in the error."""
        props: dict[str, Variant] = {"apn": Variant("s", apn), "ip-type": Variant("u", _IP_TYPES[ip_type])}
        if user:
            props["user"] = Variant("s", user)
        if password:
            props["password"] = Variant("s", password)
        if pin:
            props["pin"] = Variant("s", pin)
        log.info("Simple.Connect on %s, APN %s", path, apn)
        body = await self._call(SERVICE, path, SIMPLE, "Connect", "a{sv}", [props])
        return str(body[0])

    async def disconnect(self, path: str) -> None:
        """Simple.Disconnect of every bearer of the modem."""
        await self._call(SERVICE, path, SIMPLE, "Disconnect", "o", ["/"])


_IP_TYPES = {"ipv4": 1, "ipv6": 2, "ipv4v6": 4}
"""MMBearerIpFamily."""
