"""DLMS/COSEM links of the meter: TCP wrapper, HDLC on RS-485 and the optical port (mode E).

Uses the core ``[dlms]`` section: ``tcp_host`` ("" disables the wrapper), ``tcp_port`` (0 picks a
free port, reported), ``hdlc_port`` and
``optical_port`` ("" = off, "pty" = a pseudo-terminal whose path is reported, otherwise a device
such as /dev/ttyAMA3; RS-485 ports use the kernel's RS-485 mode), ``hdlc_baud``, ``keys_file``.
Every link serves one object registry: the base model plus what other features registered in
``daemon.cosem_factories``. On the simulated meter a missing keys file is created with random
throwaway keys (mode 0600); on a Pi the keys file must be provisioned.

Security events (authentication failures, deciphering failures, replayed invocation counters,
key changes, refused associations) and the communication log (associations opened/closed, local
on the optical port, remote otherwise) go to ``daemon.services["events"]`` (the supervision's
event recorder) with the client SAP and the link name ("tcp", "rs485", "optical").

Repeated authentication failures lock a client SAP out of one link (``lockout_failures``,
``lockout_s``, ``lockout_max_s``); the lockout state is kept in the invocation-counter store
(``dlms_security.db``), so a restart does not end it, and it is timed by the meter's clock.
Events any client can cause (refused AARQs: unknown SAP, malformed, wrong context or mechanism;
replayed invocation counters) are recorded at most once a minute per link and event, the count of
those not recorded going into the next one (``daemon.services["dlms_event_limits"]``).

With the revenue feature (``services["revenue"]``) the links read a profile range bound sent
without deviation as local time under its legal-time rules, as the clock 0-0:1.0.0.255 does;
without it such bounds are UTC.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from meterd.cosem.config import LinkKind, ServerConfig
from meterd.cosem.event_limit import EventLimiter
from meterd.cosem.keys import KeyRing, load_keys
from meterd.cosem.objects import ObjectRegistry, OpticalSetup, default_registry
from meterd.cosem.profile import LegalTimeSource
from meterd.cosem.security import AuthLockout, LockoutPolicy, UtcOnlyClock
from meterd.cosem.server import build_session_factory
from meterd.cosem.sessions import HdlcSession, WrapperSession
from meterd.proto.iec62056_21 import ModeESignOn
from meterd.runtime.dlms_serial import SerialLink
from meterd.runtime.dlms_tcp import DlmsTcpServer
from meterd.store.dlms_security_store import DlmsSecurityStore

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

SECTION = None
log = logging.getLogger("meterd.dlms")


def write_throwaway_keys(path: Path) -> None:
    """Random keys for a simulated meter (never for a real one), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (
        "# Throwaway DLMS keys of a simulated meter, made at first start.\n"
        f'[server]\nsystem_title = "504D4D{secrets.token_hex(5).upper()}"\n'
        f'[reader]\nlls_password = "{secrets.token_hex(8)}"\n'
        "[management]\n"
        f'global_unicast_key = "{secrets.token_hex(16).upper()}"\n'
        f'authentication_key = "{secrets.token_hex(16).upper()}"\n'
        f'master_key = "{secrets.token_hex(16).upper()}"\n'
    )
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def registry_for(daemon: Daemon) -> ObjectRegistry:
    """The base objects plus every feature's factories."""
    registry = default_registry()
    for factory in daemon.cosem_factories:
        registry.add(factory)
    return registry


def attach(daemon: Daemon) -> None:
    """Load keys and open the invocation-counter store (links start with the loop)."""
    cfg = daemon.cfg
    keys_path = cfg.under_state(cfg.dlms.keys_file)
    if cfg.hardware.backend == "sim" and not keys_path.exists():
        write_throwaway_keys(keys_path)
    daemon.services["dlms_keys"] = KeyRing(load_keys(keys_path))
    store = DlmsSecurityStore(cfg.state_dir / "dlms_security.db")
    daemon.services["dlms_security_store"] = store
    daemon.closers.append(store.close)
    daemon.info["dlms_keys_file"] = str(keys_path)


def lockout_policy(daemon: Daemon) -> LockoutPolicy:
    """The authentication lockout policy of the ``[dlms]`` section."""
    cfg = daemon.cfg.dlms
    return LockoutPolicy(cfg.lockout_failures, cfg.lockout_s, cfg.lockout_max_s)


def auth_lockout(daemon: Daemon, link_name: str) -> AuthLockout:
    """The one authentication lockout of ``link_name`` (every session factory of that link
    shares it), kept in the counter store and timed by the meter's clock."""
    lockouts: dict[str, AuthLockout] = daemon.services.setdefault("dlms_lockouts", {})
    if link_name not in lockouts:
        assert daemon.meter is not None
        clock = daemon.clock or UtcOnlyClock(daemon.meter.now_utc)
        lockouts[link_name] = AuthLockout(daemon.services["dlms_security_store"], lockout_policy(daemon),
                                          link_name, clock)
    return lockouts[link_name]


def event_limiter(daemon: Daemon, link_name: str) -> EventLimiter:
    """The one rate limit of ``link_name``'s refused-AARQ and replay events (every session factory
    of that link shares it), timed by the meter's clock."""
    limits: dict[str, EventLimiter] = daemon.services.setdefault("dlms_event_limits", {})
    if link_name not in limits:
        assert daemon.meter is not None
        limits[link_name] = EventLimiter(daemon.clock or UtcOnlyClock(daemon.meter.now_utc))
    return limits[link_name]


def legal_time(daemon: Daemon) -> LegalTimeSource | None:
    """The meter's legal-time rules (read at each use: a clock-rules write applies at once), from
    the revenue service; None without it (date-times without deviation are then UTC)."""
    revenue = daemon.services.get("revenue")
    if revenue is None:
        return None
    return lambda: revenue.legal


def session_factory(daemon: Daemon, link: LinkKind = "wrapper", link_name: str = "tcp",
                    registry: ObjectRegistry | None = None, baud: int = 9600,
                    optical: OpticalSetup | None = None) -> Callable[[], WrapperSession | HdlcSession]:
    """Sessions of one link of this meter: its model, keys, counter store, object registry,
    event recorder, authentication lockout, event rate limit and legal-time rules (``link``:
    "wrapper" or "hdlc"; ``link_name`` goes into event details; ``baud`` (Bd) and ``optical``: what
    the HDLC setup and the optical port's local port setup show)."""
    assert daemon.meter is not None
    config = ServerConfig(link=link, link_name=link_name, registry=registry or registry_for(daemon), baud=baud,
                          optical=optical, lockout=lockout_policy(daemon), legal=legal_time(daemon),
                          events=daemon.services.get("events"))
    return build_session_factory(daemon.meter, daemon.services["dlms_security_store"], daemon.services["dlms_keys"],
                                 config, auth_lockout=auth_lockout(daemon, link_name),
                                 event_limit=event_limiter(daemon, link_name))


async def start(daemon: Daemon) -> None:
    """Open the configured links; their addresses go into ``daemon.info``."""
    cfg = daemon.cfg.dlms
    assert daemon.meter is not None
    registry = registry_for(daemon)
    if cfg.tcp_port >= 0 and cfg.tcp_host:
        try:
            server = await DlmsTcpServer(session_factory(daemon, "wrapper", "tcp", registry)).start(
                cfg.tcp_host, cfg.tcp_port)
        except OSError as exc:  # metering goes on without this link; say so loudly
            log.error("DLMS wrapper on %s:%d not available: %s", cfg.tcp_host, cfg.tcp_port, exc.strerror)
            daemon.info["dlms_tcp"] = f"unavailable ({exc.strerror})"
        else:
            daemon.links.append(server)
            daemon.info["dlms_tcp"] = f"{cfg.tcp_host}:{server.port} (wrapper; SAP 16 public, 17 LLS, 1 HLS-GMAC)"
    for kind, port in (("dlms_hdlc", cfg.hdlc_port), ("dlms_optical", cfg.optical_port)):
        if not port:
            continue
        try:
            link = await _serial_link(daemon, kind, port, registry)
        except OSError as exc:
            log.error("DLMS %s on %s not available: %s", kind, port, exc)
            daemon.info[kind] = f"unavailable ({exc})"
            continue
        daemon.links.append(link)
        mode = ", IEC 62056-21 mode E" if kind == "dlms_optical" else ""
        daemon.info[kind] = f"{link.slave_path or port} (HDLC{mode})"


async def _serial_link(daemon: Daemon, kind: str, port: str, registry: ObjectRegistry) -> SerialLink:
    cfg = daemon.cfg.dlms
    assert daemon.meter is not None
    device = None if port == "pty" else port
    optical = None
    if kind == "dlms_optical":
        ident = daemon.meter.identity.serial[-16:]
        optical = ModeESignOn(daemon.cfg.meter.manufacturer_flag, ident, max_baud=cfg.hdlc_baud)
        factory = session_factory(daemon, "hdlc", "optical", registry, baud=cfg.hdlc_baud,
                                  optical=OpticalSetup(baud=cfg.hdlc_baud))
    else:
        factory = session_factory(daemon, "hdlc", "rs485", registry, baud=cfg.hdlc_baud)
    rs485 = "kernel" if device is not None and kind == "dlms_hdlc" else "none"
    return await SerialLink(factory, device, cfg.hdlc_baud, rs485=rs485, optical=optical).start()
