"""DLMS/COSEM links of the meter: TCP wrapper, HDLC on RS-485 and the optical port (mode E).

Uses the core ``[dlms]`` section: ``tcp_host`` ("" disables the wrapper), ``tcp_port`` (0 picks a
free port, reported), ``tcp_max_connections`` and ``tcp_association_timeout_s`` (s: a connection
without an association is closed after it, and displaced first when the wrapper is full; events
TCP_ASSOCIATION_TIMEOUT, TCP_CONNECTION_DISPLACED, TCP_CONNECTION_REFUSED, at most one a minute
each), ``hdlc_port`` and
``optical_port`` ("" = off, "pty" = a pseudo-terminal whose path is reported, otherwise a device
such as /dev/ttyAMA3), ``hdlc_baud``, ``keys_file``; ``hdlc_direction``: the RS-485 port in the
kernel's RS-485 mode ("kernel": RTS drives DE, on GPIO ``hdlc_de_pin``) or behind an
auto-direction transceiver ("auto", no DE pin); ``hdlc_address`` the meter's physical HDLC
address on the RS-485 bus (0: none, the only station), ``hdlc_max_info_tx``/``_rx`` (octets) and
``hdlc_window_tx``/``_rx`` (frames) the most the SNRM negotiation agrees to, ``hdlc_inactivity_s``
(s) the HDLC inactivity time-out (see :mod:`meterd.proto.hdlc` and docs/dlms.md).
Every link serves one object registry: the base model plus what other features registered in
``ctx.cosem_factories``. On the simulated meter a missing keys file is created with random
throwaway keys (mode 0600); on a Pi the keys file must be provisioned.

The optical port answers the IEC 62056-21 sign-on ``/?!`` and ``/?<serial>!`` (the meter's serial
is its device address) no sooner than 200 ms after it, in mode E (HDLC) or mode C (the data
readout of :mod:`meterd.services.optical_readout`).

Never dark: a keys file that is missing on a real meter, unreadable, too open or malformed
switches the DLMS server off (every link: it has no keys to serve with) with one line and the
event INTERFACE_OFF; a serial port that cannot be opened at start (missing, held by another
process, refusing the kernel RS-485 mode) or fails while running (a USB adapter pulled) is off
alone and tried again with back-off (1 s doubling to 60 s), coming back by itself with
INTERFACE_ON; a TCP port that cannot be bound leaves the wrapper off. Each shows in ``meterctl
status`` under ``interfaces`` (:mod:`meterd.app.interfaces`); metering and the other links go on.

Security events (authentication failures, deciphering failures, replayed invocation counters,
key changes, refused associations) and the communication log (associations opened/closed, local
on the optical port, remote otherwise) go to the supervision's event recorder (needed) with the
client SAP and the link name ("tcp", "rs485", "optical").

Repeated authentication failures lock a client SAP out of one link from the source they came
from (the TCP peer's address; a serial link's clients are the link) (``lockout_failures``,
``lockout_s``, ``lockout_max_s``); the lockout state is kept in the invocation-counter store
(``dlms_security.db``), so a restart does not end it, and it is timed by the meter's clock.
Events any client can cause (refused AARQs: unknown SAP, malformed, wrong context or mechanism;
replayed invocation counters) are recorded at most once a minute per link and event, the count of
those not recorded going into the next one. Keys, counter store, lockouts and limits are one
:class:`DlmsSecurity`, which this feature provides.

Security suites 1 and 2 (``security_suite`` in the keys file) take the meter's key pairs and the
clients' certificates from ``dlms_pki/`` under the state directory
(:class:`~meterd.cosem.pki_store.PkiStore`, which this feature provides as the meter's
:class:`~meterd.cosem.pki.Pki`, possibly empty); the Security setup objects of version 1 manage
them with the suite and security policy of the keys file in force, ``GET /certificates``
(``meterctl certificates``) lists them. What HLS-ECDSA lacks at start (the meter's
digital-signature key pair, any client certificate; or the whole store, when its directory cannot
be made) is one warning; each association it refuses is one line (rate-limited like every
refused AARQ) and no authentication failure.

With the revenue feature (optional) the links read a profile range bound sent
without deviation as local time under its legal-time rules, as the clock 0-0:1.0.0.255 does;
without it such bounds are UTC.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hw.secret_file import write_secret_text
from meterd.app.config import DlmsSection
from meterd.app.feature_api import FeatureContext
from meterd.app.interfaces import interface_board
from meterd.app.sim_lines import SimHdlcLine
from meterd.core import event_codes
from meterd.core.clock import Clock
from meterd.core.events import EventRecorder
from meterd.cosem.acse import MECH_HLS_ECDSA
from meterd.cosem.config import LinkKind, ServerConfig
from meterd.cosem.errors import KeyFileError
from meterd.cosem.event_limit import EventLimiter
from meterd.cosem.keys import DlmsKeys, KeyRing, load_keys
from meterd.cosem.objects import (
    DEFAULT_ASSOCIATIONS,
    AssociationConfig,
    ObjectRegistry,
    OpticalSetup,
    default_registry,
)
from meterd.cosem.pki import SUITE_CURVES, CertificateEntity, KeyUse, Pki, PkiError
from meterd.cosem.pki_store import PkiStore
from meterd.cosem.profile import LegalTimeSource
from meterd.cosem.security import AuthLockout, LockoutPolicy
from meterd.cosem.security_setup import security_setup_factory
from meterd.cosem.server import build_session_factory
from meterd.cosem.sessions import SessionMaker
from meterd.proto.hdlc import HdlcParameters
from meterd.proto.iec62056_21 import ModeESignOn
from meterd.proto.wrapper import TcpLimits
from meterd.runtime.dlms_serial import SerialLink, SerialLinkError
from meterd.runtime.dlms_tcp import DlmsTcpServer
from meterd.services.interfaces import InterfaceBoard
from meterd.services.optical_readout import readout_data_sets
from meterd.services.revenue import RevenueService
from meterd.store.dlms_security_store import DlmsSecurityStore

SECTION = None
PKI_DIRECTORY = "dlms_pki"
log = logging.getLogger("meterd.dlms")


def write_throwaway_keys(path: Path) -> None:
    """Random keys for a simulated meter (never for a real one), mode 0600."""
    text = (
        "# Throwaway DLMS keys of a simulated meter, made at first start.\n"
        f'[server]\nsystem_title = "504D4D{secrets.token_hex(5).upper()}"\n'
        f'[reader]\nlls_password = "{secrets.token_hex(8)}"\n'
        "[management]\n"
        f'global_unicast_key = "{secrets.token_hex(16).upper()}"\n'
        f'authentication_key = "{secrets.token_hex(16).upper()}"\n'
        f'master_key = "{secrets.token_hex(16).upper()}"\n'
    )
    write_secret_text(path, text)


def registry_for(ctx: FeatureContext) -> ObjectRegistry:
    """The base objects plus every feature's factories."""
    registry = default_registry()
    for factory in ctx.cosem_factories:
        registry.add(factory)
    return registry


@dataclass
class DlmsSecurity:
    """What every DLMS link of the meter shares: the keys, the invocation-counter and lockout
    store, the event recorder, the legal-time rules (None: UTC), the lockout policy, and per
    link name its one authentication lockout and one event rate limit (every session factory of
    a link shares them; both timed by the meter clock)."""

    keys: KeyRing
    store: DlmsSecurityStore
    events: EventRecorder
    legal: LegalTimeSource | None
    policy: LockoutPolicy
    clock: Clock
    lockouts: dict[str, AuthLockout] = field(default_factory=dict)
    limits: dict[str, EventLimiter] = field(default_factory=dict)

    def auth_lockout(self, link_name: str) -> AuthLockout:
        """The authentication lockout of ``link_name``, kept in the counter store."""
        if link_name not in self.lockouts:
            self.lockouts[link_name] = AuthLockout(self.store, self.policy, link_name, self.clock)
        return self.lockouts[link_name]

    def event_limiter(self, link_name: str) -> EventLimiter:
        """The rate limit of ``link_name``'s refused-AARQ and replay events."""
        if link_name not in self.limits:
            self.limits[link_name] = EventLimiter(self.clock)
        return self.limits[link_name]


def attach(ctx: FeatureContext) -> None:
    """Load keys and open the invocation-counter store (links start with the loop)."""
    cfg = ctx.cfg
    keys_path = cfg.under_state(cfg.dlms.keys_file)
    ctx.info["dlms_keys_file"] = str(keys_path)
    try:
        if ctx.hardware.backends.throwaway_keys and not keys_path.exists():
            write_throwaway_keys(keys_path)
        keys = KeyRing(load_keys(keys_path))
    except (KeyFileError, OSError) as exc:  # no keys to serve with: every DLMS link is off
        reason = str(exc) if str(keys_path) in str(exc) else f"{keys_path}: {exc}"
        interface_board(ctx).off("dlms", "DLMS server (all its links)", f"keys file: {reason}", retry=False)
        return
    store = DlmsSecurityStore(cfg.state_dir / "dlms_security.db")
    ctx.closers.append(store.close)
    policy = LockoutPolicy(cfg.dlms.lockout_failures, cfg.dlms.lockout_s, cfg.dlms.lockout_max_s)
    ctx.registry.provide(DlmsSecurity, DlmsSecurity(keys, store, ctx.registry.need(EventRecorder, by="dlms"),
                                                    legal_time(ctx.registry.find(RevenueService)), policy,
                                                    ctx.clock), by="dlms")
    attach_pki(ctx, keys)
    missing = pki_missing(keys.current, find_pki(ctx))
    if missing is not None:
        log.warning("%s", missing)
    if cfg.dlms.hdlc_port == "pty" and ctx.hardware.sim is not None:
        line = SimHdlcLine("DLMS HDLC line")
        ctx.registry.provide(SimHdlcLine, line, by="dlms")
        ctx.hardware.sim.extra_signals["dlms_noise"] = lambda value: line.set("noise", value)


def attach_pki(ctx: FeatureContext, keys: KeyRing) -> None:
    """The keys and certificates of suites 1 and 2 (``dlms_pki`` under the state directory,
    :class:`PkiStore`), provided as the meter's :class:`Pki`, managed through the Security setup
    objects of version 1 and listed by ``GET /certificates``. A directory that cannot be made
    leaves them off (said once); suite 0 goes on."""
    directory = ctx.cfg.state_dir / PKI_DIRECTORY
    try:
        store = PkiStore(directory, keys.current.server_system_title)
    except (OSError, PkiError) as exc:
        log.error("DLMS keys and certificates (suites 1 and 2) off: %s: %s", directory, exc)
        return
    ctx.registry.provide(Pki, store, by="dlms")  # type: ignore[type-abstract]  # a Protocol as the key
    events = ctx.registry.need(EventRecorder, by="dlms")
    ctx.cosem_factories.append(security_setup_factory(store, events, lambda: keys.current.master_key,
                                                      DEFAULT_ASSOCIATIONS, suite_of=suite_in_force(keys),
                                                      policy_of=policy_in_force(keys)))
    ctx.api.route("GET", "/certificates", lambda _body: (200, pki_view(store)),
                  description="The certificates and server key pairs of DLMS suites 1 and 2 (no key material).")


def suite_in_force(keys: KeyRing) -> Callable[[AssociationConfig], int]:
    """The security suite an association applies: the keys file's ``security_suite`` for a
    ciphered one (read at each use), 0 otherwise."""
    return lambda assoc: keys.current.security_suite if assoc.ciphered else 0


def policy_in_force(keys: KeyRing) -> Callable[[AssociationConfig], int]:
    """The security policy (version 1 bits) an association applies: the keys file's
    ``security_policy`` for a ciphered one (read at each use), 0 (nothing required) otherwise."""
    return lambda assoc: keys.current.security_policy if assoc.ciphered else 0


def pki_missing(keys: DlmsKeys, pki: Pki | None) -> str | None:
    """What the ciphered associations of ``keys`` lack of the meter's key pairs and certificates,
    as one sentence (None: nothing, or suite 0, which needs none): no PKI at all (every ciphered
    association is refused), or for HLS-ECDSA the meter's digital-signature key pair of the suite
    or any client's digital-signature certificate (every management association is refused)."""
    suite = keys.security_suite
    if not suite:
        return None
    if pki is None:
        return (f"DLMS security suite {suite} configured but the meter's key pairs and certificates (PKI) are not "
                "available: ciphered associations are refused")
    if keys.mechanism != MECH_HLS_ECDSA:
        return None
    provision = ('provision them over HLS-GMAC (keys file authentication = "hls-gmac") through the Security setup '
                 "0-0:43.0.3.255")
    if pki.own_key(KeyUse.DIGITAL_SIGNATURE, suite) is None:
        return (f"DLMS HLS-ECDSA on security suite {suite} configured but the meter has no digital-signature key pair "
                f"for it: management associations are refused; {provision}")
    if not any(c.entity is CertificateEntity.CLIENT and c.use is KeyUse.DIGITAL_SIGNATURE for c in pki.certificates()):
        return (f"DLMS HLS-ECDSA on security suite {suite} configured but no client digital-signature certificate "
                f"is held: management associations are refused; {provision}")
    return None


def pki_view(pki: Pki) -> dict[str, object]:
    """What ``meterctl certificates`` shows: the certificates held and the server key pairs
    present (use and suite only; never key material)."""
    certificates = [{"entity": c.entity.name.lower(), "use": c.use.name.lower(), "serial": f"{c.serial_number:X}",
                     "subject": c.subject, "issuer": c.issuer, "subject_alt_name": c.subject_alt_name,
                     "not_after": c.not_after.isoformat()} for c in pki.certificates()]
    key_pairs = [{"use": use.name.lower(), "suite": suite} for suite in SUITE_CURVES for use in KeyUse
                 if pki.own_key(use, suite) is not None]
    return {"certificates": certificates, "key_pairs": key_pairs}

def find_pki(ctx: FeatureContext) -> Pki | None:
    """The meter's key pairs and certificates of security suites 1 and 2, when a feature
    provides them (the registry keys them by the :class:`~meterd.cosem.pki.Pki` protocol)."""
    return ctx.registry.find(Pki)  # type: ignore[type-abstract]  # a Protocol is the registry's key


def legal_time(revenue: RevenueService | None) -> LegalTimeSource | None:
    """The meter's legal-time rules (read at each use: a clock-rules write applies at once), from
    the revenue service; None without it (date-times without deviation are then UTC)."""
    if revenue is None:
        return None
    return lambda: revenue.legal


def hdlc_parameters(cfg: DlmsSection, point_to_point: bool = False) -> HdlcParameters:
    """The HDLC link parameters of ``[dlms]``: the physical address ``hdlc_address`` (none on a
    point-to-point link: the optical port, or ``hdlc_address = 0``), the largest information
    fields and windows negotiated, the inactivity and inter-octet time-outs."""
    address = None if point_to_point or not cfg.hdlc_address else cfg.hdlc_address
    return HdlcParameters(physical_address=address, max_info_tx=cfg.hdlc_max_info_tx,
                          max_info_rx=cfg.hdlc_max_info_rx, window_tx=cfg.hdlc_window_tx,
                          window_rx=cfg.hdlc_window_rx, inactivity_s=cfg.hdlc_inactivity_s,
                          inter_octet_s=cfg.hdlc_inter_octet_ms / 1000)


def session_factory(ctx: FeatureContext, link: LinkKind = "wrapper", link_name: str = "tcp",
                    registry: ObjectRegistry | None = None, baud: int = 9600,
                    optical: OpticalSetup | None = None, hdlc: HdlcParameters | None = None) -> SessionMaker:
    """Sessions of one link of this meter: its model, keys, counter store, object registry,
    event recorder, authentication lockout, event rate limit and legal-time rules (``link``:
    "wrapper" or "hdlc"; ``link_name`` goes into event details; ``baud`` (Bd) and ``optical``: what
    the HDLC setup and the optical port's local port setup show; ``hdlc``: an HDLC link's
    addresses, negotiation maxima and inactivity time-out)."""
    sec = ctx.registry.need(DlmsSecurity, by="dlms")
    inactivity_s = hdlc.inactivity_s if hdlc is not None else ServerConfig.inactivity_timeout_s
    config = ServerConfig(link=link, link_name=link_name, registry=registry or registry_for(ctx), baud=baud,
                          optical=optical, lockout=sec.policy, legal=sec.legal, events=sec.events,
                          hdlc_params=hdlc, inactivity_timeout_s=inactivity_s)
    return build_session_factory(ctx.meter, sec.store, sec.keys, config,
                                 auth_lockout=sec.auth_lockout(link_name), event_limit=sec.event_limiter(link_name),
                                 pki=find_pki(ctx))


async def start(ctx: FeatureContext) -> None:
    """Open the configured links; their addresses go into ``ctx.info``, their state into the
    interface board (a link that fails is off, the others go on)."""
    if ctx.registry.find(DlmsSecurity) is None:
        return  # the DLMS server is off (its keys file): said once, at attach
    cfg = ctx.cfg.dlms
    board = interface_board(ctx)
    registry = registry_for(ctx)
    keys = ctx.registry.need(DlmsSecurity, by="dlms").keys.current
    if cfg.tcp_port >= 0 and cfg.tcp_host:
        what = f"DLMS wrapper on TCP {cfg.tcp_host}:{cfg.tcp_port}"
        try:
            limits = TcpLimits(max_connections=cfg.tcp_max_connections,
                               association_timeout_s=cfg.tcp_association_timeout_s)
            server = await DlmsTcpServer(session_factory(ctx, "wrapper", "tcp", registry), limits=limits,
                                         on_event=_tcp_events(ctx)).start(cfg.tcp_host, cfg.tcp_port)
        except OSError as exc:  # metering goes on without this link; say so loudly
            board.off("dlms_tcp", what, str(exc.strerror or exc), retry=False)
            ctx.info["dlms_tcp"] = f"unavailable ({exc.strerror})"
        else:
            board.on("dlms_tcp", what)
            ctx.links.append(server)
            hls = "HLS-ECDSA" if keys.mechanism == MECH_HLS_ECDSA else "HLS-GMAC"
            ctx.info["dlms_tcp"] = (f"{cfg.tcp_host}:{server.port} (wrapper; SAP 16 public, 17 LLS, 1 {hls}, "
                                    f"suite {keys.security_suite})")
    for kind, port in (("dlms_hdlc", cfg.hdlc_port), ("dlms_optical", cfg.optical_port)):
        if not port:
            continue
        what = f"{_LINK_NAMES[kind]} on {port}"
        try:
            link = await _serial_link(ctx, kind, port, registry, _reporter(board, kind, what))
        except (OSError, SerialLinkError) as exc:  # the simulator's pty could not be made: this link is off
            board.off(kind, what, str(exc), retry=False)
            ctx.info[kind] = f"unavailable ({exc})"
            continue
        ctx.links.append(link)
        line = ctx.registry.find(SimHdlcLine)
        if kind == "dlms_hdlc" and line is not None and link.faults is not None:
            line.faults = link.faults
        if kind == "dlms_optical":
            mode = ", IEC 62056-21 mode E and mode C"
        else:
            mode = f", physical address {cfg.hdlc_address}" if cfg.hdlc_address else ", point-to-point"
        ctx.info[kind] = f"{link.slave_path or port} (HDLC{mode})"


def _tcp_events(ctx: FeatureContext) -> Callable[[str, Mapping[str, object]], None]:
    """The wrapper guard's reports as events of the meter (communication and security logs)."""
    sec = ctx.registry.need(DlmsSecurity, by="dlms")

    def record(name: str, detail: Mapping[str, object]) -> None:
        sec.events.record(event_codes.code(name), ctx.clock.utc(), dict(detail, link="tcp"))
    return record


_LINK_NAMES = {"dlms_hdlc": "DLMS HDLC link (RS-485)", "dlms_optical": "DLMS optical port"}


def _reporter(board: InterfaceBoard, kind: str, what: str) -> Callable[[bool, str], None]:
    """The serial link's ``on_state``: the interface on, or off with the reason."""
    def changed(connected: bool, reason: str) -> None:
        if connected:
            board.on(kind, what)
        else:
            board.off(kind, what, reason)
    return changed


async def _serial_link(ctx: FeatureContext, kind: str, port: str, registry: ObjectRegistry,
                       on_state: Callable[[bool, str], None]) -> SerialLink:
    cfg = ctx.cfg.dlms
    device = None if port == "pty" else port
    optical = None
    if kind == "dlms_optical":
        serial = ctx.meter.identity.serial
        optical = ModeESignOn(ctx.cfg.meter.manufacturer_flag, serial[-16:], max_baud=cfg.hdlc_baud,
                              device_address=serial, readout=lambda: readout_data_sets(ctx.meter))
        factory = session_factory(ctx, "hdlc", "optical", registry, baud=cfg.hdlc_baud,
                                  optical=OpticalSetup(baud=cfg.hdlc_baud, device_address=serial),
                                  hdlc=hdlc_parameters(cfg, point_to_point=True))
    else:
        factory = session_factory(ctx, "hdlc", "rs485", registry, baud=cfg.hdlc_baud, hdlc=hdlc_parameters(cfg))
    rs485 = "kernel" if device is not None and kind == "dlms_hdlc" and cfg.hdlc_direction == "kernel" else "none"
    link = SerialLink(factory, device, cfg.hdlc_baud, rs485=rs485, optical=optical, on_state=on_state)
    if device is None:
        on_state(True, "")
    return await link.start()
