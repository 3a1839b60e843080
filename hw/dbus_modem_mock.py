"""The simulated meter's ModemManager: python-dbusmock's ``modemmanager`` template on a private bus.

:class:`ModemManagerStandIn` starts a :class:`~hw.dbus_daemon.PrivateBus` and, on it,
``python -m dbusmock --system --template modemmanager`` (the bus address given as the process's
system bus), adds the template's simple modem (``…/Modems/8`` with its SIM) and extends it with
what the meter reads and calls beyond the template, through dbusmock's own ``AddProperties`` /
``AddMethod``:

* ``Modem``: ``StateFailedReason``, ``Bearers``, ``GetCellInfo`` (one serving LTE cell);
* ``Modem.Modem3gpp``: ``RegistrationState`` (home);
* ``Modem.Signal``: ``Setup`` and the ``Lte`` values (rssi, rsrp, rsrq, snr);
* ``Modem.Simple``: ``Connect`` (makes ``…/Bearer/0`` connected on interface ``wwan0`` with the
  configured IPv4 address, the modem "connected"; refused while the modem is not registered or
  when told to refuse) and ``Disconnect``.

The meter's client (:class:`hw.modem_manager.ModemManagerClient`) talks to it exactly as to the
real daemon. The scripted faults (:meth:`lose_signal`, :meth:`deregister`, :meth:`drop_bearer`,
:meth:`remove_sim`, :meth:`refuse_connect`, :meth:`restore`) change the mock's properties over
D-Bus (dbusmock emits ``PropertiesChanged`` for each), so the meter finds them through its real
code. :meth:`stop` ends the mock and the bus; nothing is left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from typing import Any

import dbus

from hw.dbus_daemon import PrivateBus, stop_process, with_parent_death
from hw.errors import HwError

log = logging.getLogger("hw.dbus_modem_mock")

SERVICE = "org.freedesktop.ModemManager1"
ROOT = "/org/freedesktop/ModemManager1"
MOCK = "org.freedesktop.DBus.Mock"
MODEM = "org.freedesktop.ModemManager1.Modem"
MODEM_3GPP = "org.freedesktop.ModemManager1.Modem.Modem3gpp"
SIGNAL = "org.freedesktop.ModemManager1.Modem.Signal"
SIMPLE = "org.freedesktop.ModemManager1.Modem.Simple"
BEARER = "org.freedesktop.ModemManager1.Bearer"
CONTROL = "org.pmm.ModemStandIn"
BEARER_PATH = "/org/freedesktop/ModemManager1/Bearer/0"

_CONNECT = f"""
if getattr(self, 'refuse', False) or self.props['{MODEM}']['State'] < 8:
    raise dbus.exceptions.DBusException('cannot connect now', name='{SERVICE}.Error.Core.WrongState')
if '{BEARER_PATH}' not in objects:
    self.AddObject('{BEARER_PATH}', '{BEARER}', {{'Connected': dbus.Boolean(False), 'Interface': '',
                   'Ip4Config': dbus.Dictionary({{}}, signature='sv'),
                   'Stats': dbus.Dictionary({{}}, signature='sv')}}, [])
self.connects = getattr(self, 'connects', 0) + 1
objects['{BEARER_PATH}'].UpdateProperties('{BEARER}', {{'Connected': dbus.Boolean(True), 'Interface': 'wwan0',
    'Ip4Config': dbus.Dictionary({{'method': dbus.UInt32(2), 'address': self.bearer_ip, 'prefix': dbus.UInt32(30),
                                   'gateway': self.bearer_gateway, 'dns1': '10.0.0.53'}}, signature='sv'),
    'Stats': dbus.Dictionary({{'rx-bytes': dbus.UInt64(0), 'tx-bytes': dbus.UInt64(0),
                               'duration': dbus.UInt32(0)}}, signature='sv')}})
self.UpdateProperties('{MODEM}', {{'State': dbus.Int32(11),
                      'Bearers': dbus.Array([dbus.ObjectPath('{BEARER_PATH}')], signature='o')}})
ret = dbus.ObjectPath('{BEARER_PATH}')
"""

_DISCONNECT = f"""
if '{BEARER_PATH}' in objects:
    objects['{BEARER_PATH}'].UpdateProperties('{BEARER}', {{'Connected': dbus.Boolean(False)}})
if self.props['{MODEM}']['State'] == 11:
    self.UpdateProperties('{MODEM}', {{'State': dbus.Int32(8)}})
"""

_CELLS = f"""
ret = dbus.Array([dbus.Dictionary({{'cell-type': dbus.UInt32(5), 'serving': True, 'ci': '1A2B3C4',
                                   'tac': '00C1', 'operator-id': '00101', 'rsrp': dbus.Double(-95.0)}},
                                  signature='sv'),
                  dbus.Dictionary({{'cell-type': dbus.UInt32(5), 'serving': False, 'ci': '1A2B3C5',
                                   'tac': '00C1', 'operator-id': '00101', 'rsrp': dbus.Double(-109.0)}},
                                  signature='sv')] if self.props['{MODEM}']['SignalQuality'][0] > 0 else [],
                 signature='a{{sv}}')
"""


_SET_SIM = f"""
self.props['{MODEM}']['Sim'] = dbus.ObjectPath(args[0])
self.EmitSignal('org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{{sv}}as',
                ['{MODEM}', dbus.Dictionary({{'Sim': dbus.ObjectPath(args[0], variant_level=1)}}, signature='sv'), []])
"""
# (dbusmock's UpdateProperties cannot wrap an object path in a variant: the SIM path is set here)


class StandInError(HwError):
    """The ModemManager stand-in could not be started or scripted."""


def _signal(rssi: float, rsrp: float, rsrq: float, snr: float) -> dbus.Dictionary:
    return dbus.Dictionary({"rssi": dbus.Double(rssi), "rsrp": dbus.Double(rsrp), "rsrq": dbus.Double(rsrq),
                            "snr": dbus.Double(snr)}, signature="sv")


class ModemManagerStandIn:
    """ModemManager as python-dbusmock on a private bus (module docstring). ``bearer_ipv4``: the
    address the bearer gets (in simulation a loopback address the meter binds its cellular
    traffic to)."""

    def __init__(self, bearer_ipv4: str = "127.0.0.3", bearer_gateway: str = "127.0.0.1") -> None:
        self.bearer_ipv4 = bearer_ipv4
        self.bearer_gateway = bearer_gateway
        self.bus = PrivateBus()
        self._mock: subprocess.Popen[bytes] | None = None
        self._conn: Any = None
        self.modem_path = ""
        self.sim_path = ""

    @property
    def address(self) -> str:
        """The private bus's D-Bus address (what the meter's client connects to)."""
        return self.bus.address

    def start(self, timeout_s: float = 15.0) -> str:
        """Start bus and mock, add the modem registered on a home LTE network; the bus address."""
        address = self.bus.start()
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address}
        argv = with_parent_death([sys.executable, "-m", "dbusmock", "--system", "--template", "modemmanager"])
        self._mock = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            self._conn = dbus.bus.BusConnection(address)
            self._wait_for_service(timeout_s)
            self._populate()
        except (dbus.exceptions.DBusException, StandInError) as exc:
            self.stop()
            raise StandInError(f"ModemManager stand-in: {exc}") from exc
        log.info("ModemManager stand-in (python-dbusmock) on %s", address)
        return address

    def _wait_for_service(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._conn.name_has_owner(SERVICE):
            if self._mock is None or self._mock.poll() is not None:
                raise StandInError("python-dbusmock exited at start")
            if time.monotonic() > deadline:
                raise StandInError(f"no {SERVICE} on the bus within {timeout_s:g} s")
            time.sleep(0.02)  # bounded: until the mock owns its name

    def _obj(self, path: str) -> Any:
        return self._conn.get_object(SERVICE, path)

    def _populate(self) -> None:
        main = self._obj(ROOT)
        self.modem_path, self.sim_path = (str(p) for p in main.AddSimpleModem(dbus_interface=MOCK))
        modem = self._obj(self.modem_path)
        mock = dbus.Interface(modem, MOCK)
        mock.AddProperties(MODEM, {"StateFailedReason": dbus.UInt32(0),
                                   "Bearers": dbus.Array([], signature="o")})
        mock.AddProperties(MODEM_3GPP, {"RegistrationState": dbus.UInt32(1)})
        mock.AddProperties(SIGNAL, {"Rate": dbus.UInt32(0), "Lte": _signal(-65, -95, -10, 12)})
        mock.AddMethod(SIGNAL, "Setup", "u", "", f"self.UpdateProperties('{SIGNAL}', {{'Rate': args[0]}})")
        mock.AddMethod(SIMPLE, "Connect", "a{sv}", "o", _CONNECT)
        mock.AddMethod(SIMPLE, "Disconnect", "o", "", _DISCONNECT)
        mock.AddMethod(MODEM, "GetCellInfo", "", "aa{sv}", _CELLS)
        mock.AddMethod(CONTROL, "Configure", "ssb", "",
                       "self.bearer_ip, self.bearer_gateway, self.refuse = args[0], args[1], args[2]")
        mock.AddMethod(CONTROL, "SetSim", "o", "", _SET_SIM)
        mock.AddMethod(CONTROL, "Connects", "", "u", "ret = dbus.UInt32(getattr(self, 'connects', 0))")
        dbus.Interface(modem, CONTROL).Configure(self.bearer_ipv4, self.bearer_gateway, False)
        self._update(MODEM, {"State": dbus.Int32(8)})

    def _update(self, interface: str, props: dict[str, Any], path: str = "") -> None:
        obj = self._obj(path or self.modem_path)
        dbus.Interface(obj, MOCK).UpdateProperties(interface, props)

    def _bearer_down(self) -> None:
        if self.modem_path:
            modem = dbus.Interface(self._obj(self.modem_path), "org.freedesktop.DBus.Properties")
            if modem.Get(MODEM, "Bearers"):
                self._update(BEARER, {"Connected": dbus.Boolean(False)}, BEARER_PATH)

    # --- scripted faults ---

    def connects(self) -> int:
        """How many Simple.Connect calls the mock accepted."""
        return int(dbus.Interface(self._obj(self.modem_path), CONTROL).Connects())

    def drop_bearer(self) -> None:
        """The network tears the data connection down (the modem stays registered)."""
        self._bearer_down()
        self._update(MODEM, {"State": dbus.Int32(8)})

    def lose_signal(self) -> None:
        """No coverage: quality 0, searching, the bearer gone."""
        self._bearer_down()
        self._update(MODEM_3GPP, {"RegistrationState": dbus.UInt32(2)})
        self._update(SIGNAL, {"Lte": dbus.Dictionary({}, signature="sv")})
        self._update(MODEM, {"State": dbus.Int32(7), "SignalQuality": dbus.Struct((dbus.UInt32(0), dbus.Boolean(True))),
                             "AccessTechnologies": dbus.UInt32(0)})

    def deregister(self, denied: bool = False) -> None:
        """The network deregisters the modem (or denies it: ``denied``); the bearer goes."""
        self._bearer_down()
        self._update(MODEM_3GPP, {"RegistrationState": dbus.UInt32(3 if denied else 0)})
        self._update(MODEM, {"State": dbus.Int32(6)})

    def remove_sim(self) -> None:
        """The SIM is taken out: the modem fails with reason sim-missing (first, as ModemManager
        says it), then the SIM object, the registration and the bearer go."""
        self._update(MODEM, {"State": dbus.Int32(-1), "StateFailedReason": dbus.UInt32(2),
                             "AccessTechnologies": dbus.UInt32(0)})
        dbus.Interface(self._obj(self.modem_path), CONTROL).SetSim("/")
        self._update(MODEM_3GPP, {"RegistrationState": dbus.UInt32(4)})
        self._bearer_down()

    def refuse_connect(self, refuse: bool = True) -> None:
        """Simple.Connect fails (e.g. a wrong APN) while ``refuse``."""
        dbus.Interface(self._obj(self.modem_path), CONTROL).Configure(self.bearer_ipv4, self.bearer_gateway, refuse)

    def restore(self) -> None:
        """Back to a registered modem with a good LTE signal (the bearer stays down: the meter
        brings it up again itself)."""
        self.refuse_connect(False)
        self._update(SIGNAL, {"Lte": _signal(-65, -95, -10, 12)})
        self._update(MODEM_3GPP, {"RegistrationState": dbus.UInt32(1)})
        dbus.Interface(self._obj(self.modem_path), CONTROL).SetSim(self.sim_path)
        state = dbus.Interface(self._obj(self.modem_path), "org.freedesktop.DBus.Properties").Get(MODEM, "State")
        props: dict[str, Any] = {"StateFailedReason": dbus.UInt32(0),
                                 "SignalQuality": dbus.Struct((dbus.UInt32(70), dbus.Boolean(True))),
                                 "AccessTechnologies": dbus.UInt32(1 << 14)}
        if int(state) != 11:
            props["State"] = dbus.Int32(8)
        self._update(MODEM, props)  # one change: no half-restored modem in between

    def stop(self) -> None:
        """End the mock and the bus."""
        if self._conn is not None:
            with contextlib.suppress(dbus.exceptions.DBusException):
                self._conn.close()
            self._conn = None
        proc, self._mock = self._mock, None
        stop_process(proc)
        self.bus.stop()
