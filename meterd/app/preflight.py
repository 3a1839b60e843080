"""What ``meterd run`` needs from the host, checked before it starts: ``meterd check-config``
checks all of it, ``meterd run`` only what it cannot start without.

Each check gives one :class:`Problem`: the dotted key and the reason (the file it concerns named
in it). The checks:

* the state directory (``storage.state_dir``) exists and is writable, or can be created;
* serial ports (``dlms.hdlc_port`` and ``ciu.port``, with ``direction = "kernel"`` in the kernel
  RS-485 mode, ``dlms.optical_port``): a device that exists, is a terminal this user may open and, for
  RS-485, whose driver has the mode (:func:`hw.serial_probe.probe_port`: opened and closed, its
  settings only read); ``ciu.port`` must be "", "off" or a device path;
* key files, each under the state directory unless absolute: the DLMS keys (``dlms.keys_file``),
  the STS decoder keys (``payment.keys_file``) and the CIU pair key (``ciu.key_file``) must be
  readable, mode 0600 or stricter, and hold what they should; a missing one must be creatable
  on the simulated meter (throwaway keys) and, on a real meter, provisioned: the DLMS keys
  always, the STS keys until the decoder is commissioned (its store exists); a missing pair key
  is a meter not paired yet (the pairing procedure makes it), not a problem;
* the DLMS wrapper's TCP port (``dlms.tcp_port``, unless 0 or ``tcp_host`` ""): free to bind,
  or held by the meter that holds this state directory (:func:`meterd.runtime.state_lock.probe`
  and ``/proc``), so checking the configuration of a running meter passes;
* GPIO lines wired twice and every value are checked when the file is read
  (:mod:`meterd.app.config`).

``meterd run`` (:func:`run_checks`) stops with one line and exit status 2 only on what is a
configuration error (an invalid ``ciu.port``). Everything else is an interface that fails, and
a failing interface never stops metering nor darkens the others: the running meter switches it
off with one line (no traceback), the event INTERFACE_OFF and an entry under ``interfaces`` in
``meterctl status`` saying why (:class:`meterd.services.interfaces.InterfaceBoard`), and, for a
serial port, tries it again with back-off (1 s doubling to 60 s) so it comes back by itself
(INTERFACE_ON) once the device is there, free, or accepts its mode; the same holds for a port
that fails while running (an unplugged USB adapter, a port another process grabbed). Unusable
DLMS keys switch the DLMS server (all its links) off, unusable STS keys leave the decoder
uncommissioned (tokens refused), a busy TCP port leaves the wrapper off, a missing LCD the
display; a state directory that cannot hold the registers stops the meter (exit 2).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hw.secret_file import SecretFileError, read_secret_text
from hw.serial_probe import SerialProbeError, probe_port
from meterd.app.config import Config
from meterd.app.hardware import backends_for
from meterd.core.errors import MeterError
from meterd.cosem.errors import KeyFileError
from meterd.cosem.keys import load_keys
from meterd.proto.ciu_link import KEY_LEN
from meterd.runtime.port_probe import listens_on, tcp_port_problem
from meterd.runtime.state_lock import probe
from meterd.store.sts_store import load_key_register


@dataclass(frozen=True)
class Problem:
    """One thing that keeps the meter from running as configured: the dotted ``key`` and the ``reason``."""

    key: str
    reason: str

    def line(self, cfg: Config) -> str:
        """One line: the configuration file, the key and the reason."""
        return f"{cfg.path}: {self.key}: {self.reason}"


@dataclass(frozen=True)
class _Port:
    key: str
    value: str
    rs485: bool


def _serial_ports(cfg: Config) -> list[_Port]:
    """The serial devices the configuration names (sim ptys and disabled ports left out)."""
    ports = []
    for key, rs485 in (("hdlc_port", cfg.dlms.hdlc_direction == "kernel"), ("optical_port", False)):
        value = getattr(cfg.dlms, key)
        if value not in ("", "pty"):
            ports.append(_Port(f"dlms.{key}", value, rs485))
    ciu = cfg.feature("ciu")
    if ciu.port not in ("", "off") and _is_device(ciu.port):
        kernel_rs485 = ciu.direction == "kernel"  # "auto": the transceiver switches itself, no mode to check
        ports.append(_Port("ciu.port", ciu.port, kernel_rs485))
    return ports


def _is_device(value: str) -> bool:
    return value.startswith("/") or "://" in value


def check_ciu_port_value(cfg: Config) -> list[Problem]:
    """``ciu.port``: "" (simulated pty pair), "off" or a device path."""
    port = cfg.feature("ciu").port
    if port in ("", "off") or _is_device(port):
        return []
    return [Problem("ciu.port", f'{port!r} is no device path: use "" (simulated pty pair), "off" or a device'
                                " such as /dev/ttyAMA5")]


def check_serial_ports(cfg: Config) -> list[Problem]:
    """Every configured serial device exists and accepts its mode."""
    problems = []
    for port in _serial_ports(cfg):
        try:
            probe_port(port.value, rs485=port.rs485)
        except SerialProbeError as exc:
            problems.append(Problem(port.key, f"{port.value}: {exc}"))
    return problems


def _creatable(path: Path) -> str | None:
    """None when ``path`` can be made (its nearest existing ancestor is a writable directory)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return f"{path}: cannot be created ({parent} is not a writable directory)"
    return None


def check_state_dir(cfg: Config) -> list[Problem]:
    """The state directory exists and is writable, or can be made."""
    path = cfg.state_dir
    if path.exists():
        if not path.is_dir():
            return [Problem("storage.state_dir", f"{path}: not a directory")]
        if not os.access(path, os.W_OK | os.X_OK):
            return [Problem("storage.state_dir", f"{path}: not writable by this user")]
        return []
    why = _creatable(path)
    return [] if why is None else [Problem("storage.state_dir", why)]


def _make_later(cfg: Config, key: str, path: Path) -> list[Problem]:
    """A key file the meter makes at start: it can be created (a state directory that cannot
    is named once, by :func:`check_state_dir`)."""
    why = _creatable(path)
    if why is None or (path.is_relative_to(cfg.state_dir) and check_state_dir(cfg)):
        return []
    return [Problem(key, why)]


def _missing_key(cfg: Config, key: str, path: Path, provisioned: str) -> list[Problem]:
    if backends_for(cfg).throwaway_keys:
        return _make_later(cfg, key, path)
    return [Problem(key, f"{path}: no such file; {provisioned}")]


def _with_path(path: Path, reason: str) -> str:
    return reason if str(path) in reason else f"{path}: {reason}"


def check_dlms_keys(cfg: Config) -> list[Problem]:
    """The DLMS keys file: readable, private, valid; missing only where throwaway keys are made."""
    path = cfg.under_state(cfg.dlms.keys_file)
    if not path.exists():
        return _missing_key(cfg, "dlms.keys_file", path, "a real meter's DLMS keys are provisioned (mode 0600)")
    try:
        load_keys(path)
    except KeyFileError as exc:
        return [Problem("dlms.keys_file", _with_path(path, str(exc)))]
    return []


def check_sts_keys(cfg: Config) -> list[Problem]:
    """The STS decoder keys file: readable, private, with a valid ``[decoder]`` table; missing
    only where test keys are made, or once the decoder is commissioned (its store exists)."""
    section = cfg.feature("payment")
    path = cfg.under_state(section.keys_file)
    if not path.exists():
        if cfg.under_state(section.store_file).exists():
            return []
        return _missing_key(cfg, "payment.keys_file", path,
                            "the STS decoder cannot be commissioned: tokens would be refused")
    try:
        load_key_register(path)
    except (MeterError, ValueError, TypeError, KeyError) as exc:
        return [Problem("payment.keys_file", _with_path(path, str(exc)))]
    return []


def check_pair_key(cfg: Config) -> list[Problem]:
    """The CIU pair key file, when there is one: readable, private, 64 hex digits."""
    section = cfg.feature("ciu")
    if section.port == "off":
        return []
    path = cfg.under_state(section.key_file)
    if not path.exists():
        if backends_for(cfg).throwaway_keys and section.sim_prepair:
            return _make_later(cfg, "ciu.key_file", path)
        return []  # not paired yet: the pairing procedure makes it
    try:
        text = read_secret_text(path, encoding="ascii").strip()
    except SecretFileError as exc:
        return [Problem("ciu.key_file", _with_path(path, str(exc)))]
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_LEN:
        return [Problem("ciu.key_file", f"{path}: not a pair key ({2 * KEY_LEN} hex digits)")]
    return []


def check_tcp_port(cfg: Config) -> list[Problem]:
    """The DLMS wrapper's port is free, or held by the meter of this state directory."""
    host, port = cfg.dlms.tcp_host, cfg.dlms.tcp_port
    if not host or port <= 0:
        return []
    why = tcp_port_problem(host, port)
    if why is None:
        return []
    pid = probe(cfg.state_dir)
    if pid is not None and "in use" in why:
        held = listens_on(pid, port) if pid else None
        if held is None or held:  # the running meter's own (or /proc cannot tell: it is running)
            return []
        why += f" (not by the meter of this state directory, pid {pid})"
    return [Problem("dlms.tcp_port", why)]


def check_all(cfg: Config) -> list[Problem]:
    """Everything ``meterd run`` needs (``meterd check-config``), in the order of the file."""
    return [*check_state_dir(cfg), *check_tcp_port(cfg), *check_dlms_keys(cfg), *check_ciu_port_value(cfg),
            *check_serial_ports(cfg), *check_sts_keys(cfg), *check_pair_key(cfg)]


def run_checks(cfg: Config) -> list[Problem]:
    """What stops ``meterd run`` before it builds the meter: the CIU port's value (a configuration
    error). Ports and key files are the running meter's to switch off (see the module's text)."""
    return check_ciu_port_value(cfg)
