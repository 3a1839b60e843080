"""Communication media with automatic fallback, and the cellular modem through ModemManager.

Section ``[comms]`` (off unless ``enabled``):

* ``media``: the media in priority order, from ``"ethernet"`` and ``"cellular"`` (e.g.
  ``["ethernet", "cellular"]``); ``head_end``: ``"host:port"`` the health checks connect to
  (the head end's push listener or any port it keeps open);
* ``ethernet_source`` (IPv4 source address to bind, "" = any) and ``ethernet_device`` /
  ``cellular_device`` (interface for SO_BINDTODEVICE, needs CAP_NET_RAW; "" = none); the
  cellular source is always the bearer's IPv4 address from ModemManager;
* the policy (s): ``check_period_s``, ``recheck_s``, ``confirm_failures``,
  ``connect_timeout_s``, ``standby_check_s``, ``switch_back_s``; ``switch_within_s`` is the
  promise: the configuration is refused when the policy cannot switch within it
  (:meth:`meterd.services.media.MediaPolicy.switch_bound_s`).

Sub-table ``[comms.modem]`` (off unless ``enabled``): ``bus`` (``"system"``, ``"sim"`` = the
simulator's ModemManager stand-in on a private bus, or a D-Bus address), ``apn``, ``user``,
``password_file`` and ``pin_file`` (secret files under the state directory, mode 0600, "" or
missing = none; never logged), ``ip_type``, ``mode`` (``always``/``windows``/``never``) and
``windows`` (``"HH:MM-HH:MM"``, UTC), the back-off ``reconnect_min_s``/``reconnect_max_s``,
``connect_timeout_s``, ``stable_s``, ``poll_s`` (re-read of signal and counters), ``signal_rate_s``
(Modem.Signal refresh) and ``provisioning_file`` (the APN written over DLMS, kept across restarts).

What it wires: :class:`~meterd.services.modem.ModemSupervisor` (provided; ticked every cycle on
the meter clock; :class:`~meterd.runtime.modem_link.ModemLink` feeds it at ``start``),
:class:`~meterd.services.media.MediaSelector` and :class:`~meterd.runtime.media_uplink.MediaUplink`,
provided as the meter's :class:`~meterd.services.uplink.Uplink` (pushes send only through it, so
a push in progress continues on the medium that is current when it retries; attach this feature
before the push feature). COSEM objects of :mod:`meterd.cosem.objects_modem`; ``/status`` shows
``modem`` and ``media``; ``GET /modem`` (``meterctl modem``) and ``GET /media``. The modem's
interface state goes to the interface board (``modem`` off with the reason while there is no
bearer). Events 175-181 (communication log). In simulation the media are loopback source
addresses the world can cut and the modem is the stand-in (:mod:`meterd.app.sim_modem`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from hw.errors import HwError
from hw.secret_file import SecretFileMissing, read_secret_text, write_secret_text
from meterd.api.comms_views import comms_routes
from meterd.app.config import choices, rng
from meterd.app.feature_api import FeatureContext
from meterd.app.interfaces import interface_board
from meterd.app.sim_modem import SimMediaCuts, SimModem, wire_sim_media
from meterd.core.errors import ConfigError
from meterd.core.events import EventRecorder
from meterd.cosem.adapters import OK, TEMPORARY_FAILURE
from meterd.cosem.objects_modem import ModemProvisioning, modem_factory
from meterd.runtime.media_uplink import MediaUplink, MediumGate, MediumRoute
from meterd.services.media import MediaPolicy, MediaSelector
from meterd.services.metering import CycleResult
from meterd.services.modem import ModemSettings, ModemSupervisor, parse_windows
from meterd.services.uplink import Uplink

log = logging.getLogger("meterd.comms")


@dataclass(frozen=True)
class ModemSection:
    """``[comms.modem]``: the bus, APN and secrets, auto connect mode and windows, back-off (s)."""

    enabled: bool = False
    bus: str = "system"
    apn: str = "internet"
    user: str = ""
    password_file: str = ""
    pin_file: str = "modem-pin"
    ip_type: str = field(default="ipv4", metadata=choices("ipv4", "ipv6", "ipv4v6"))
    mode: str = field(default="always", metadata=choices("always", "windows", "never"))
    windows: tuple[str, ...] = ()
    reconnect_min_s: float = field(default=10.0, metadata=rng(1.0, 3600.0))
    reconnect_max_s: float = field(default=600.0, metadata=rng(1.0, 86400.0))
    connect_timeout_s: float = field(default=90.0, metadata=rng(5.0, 600.0))
    stable_s: float = field(default=300.0, metadata=rng(0.0, 86400.0))
    poll_s: float = field(default=30.0, metadata=rng(1.0, 3600.0))
    signal_rate_s: int = field(default=30, metadata=rng(0, 3600))
    provisioning_file: str = "modem-provisioning.json"
    sim_bearer_ipv4: str = "127.0.0.3"

    def settings(self) -> ModemSettings:
        return ModemSettings(self.apn, self.user, self.ip_type, self.mode, parse_windows(self.windows),
                             self.reconnect_min_s, self.reconnect_max_s, self.connect_timeout_s, self.stable_s)

    def __post_init__(self) -> None:
        if self.enabled:
            self.settings()  # ValueError on a bad window, mode without windows or back-off order


@dataclass(frozen=True)
class CommsSection:
    """``[comms]``: media in priority order, the head end the checks reach, sources, the policy (s)."""

    enabled: bool = False
    media: tuple[str, ...] = ("ethernet",)
    head_end: str = ""
    ethernet_source: str = ""
    ethernet_device: str = ""
    cellular_device: str = ""
    check_period_s: float = field(default=10.0, metadata=rng(1.0, 3600.0))
    recheck_s: float = field(default=2.0, metadata=rng(0.1, 600.0))
    confirm_failures: int = field(default=2, metadata=rng(1, 10))
    connect_timeout_s: float = field(default=3.0, metadata=rng(0.1, 60.0))
    standby_check_s: float = field(default=300.0, metadata=rng(1.0, 86400.0))
    switch_back_s: float = field(default=600.0, metadata=rng(0.0, 86400.0))
    switch_within_s: float = field(default=30.0, metadata=rng(1.0, 3600.0))
    modem: ModemSection = field(default_factory=ModemSection)

    def policy(self) -> MediaPolicy:
        return MediaPolicy(self.check_period_s, self.recheck_s, self.confirm_failures, self.connect_timeout_s,
                           self.standby_check_s, self.switch_back_s)

    def head_end_address(self) -> tuple[str, int]:
        host, _, port = self.head_end.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'head_end = "{self.head_end}": expected "host:port"')
        return host.strip("[]"), int(port)

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        unknown = [m for m in self.media if m not in ("ethernet", "cellular")]
        if unknown or not self.media or len(set(self.media)) != len(self.media):
            raise ValueError(f"media = {list(self.media)}: list each of \"ethernet\", \"cellular\" at most once")
        if "cellular" in self.media and not self.modem.enabled:
            raise ValueError('media lists "cellular": enable [comms.modem]')
        self.head_end_address()
        bound = self.policy().switch_bound_s()
        if bound > self.switch_within_s:
            raise ValueError(f"switch_within_s = {self.switch_within_s:g} s cannot be kept: the checks take up to"
                             f" {bound:g} s (check_period_s + rechecks + connect time-outs)")


SECTION = CommsSection


@dataclass
class Comms:
    """What the feature built: the modem supervision (or None), the media, the uplink, the
    simulated world's parts."""

    modem: ModemSupervisor | None
    selector: MediaSelector
    uplink: MediaUplink
    sim_modem: SimModem | None = None


def _secret(path: Path | None) -> str:
    """A secret file's text (stripped), "" when not configured or missing; never logged."""
    if path is None:
        return ""
    try:
        return read_secret_text(path).strip()
    except SecretFileMissing:
        return ""


def _provisioned_apn(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    apn = data.get("apn") if isinstance(data, dict) else None
    return apn if isinstance(apn, str) and apn else None


def attach(ctx: FeatureContext) -> None:
    """Build the media, the uplink and (when enabled) the modem supervision (module docstring)."""
    cfg: CommsSection = ctx.cfg.feature("comms")
    if not cfg.enabled:
        return
    events = ctx.registry.find(EventRecorder)
    board = interface_board(ctx)
    modem = None
    sim_modem = None
    if cfg.modem.enabled:
        mcfg = cfg.modem
        if mcfg.bus == "sim" and ctx.hardware.sim is None:
            raise ConfigError(ctx.cfg.path, "comms.modem.bus", '"sim" needs [hardware] backend = "sim"')
        settings = mcfg.settings()
        provisioning_path = ctx.cfg.under_state(mcfg.provisioning_file)
        apn = _provisioned_apn(provisioning_path)
        if apn is not None:
            settings = replace(settings, apn=apn)
        pin_path = ctx.cfg.under_state(mcfg.pin_file) if mcfg.pin_file else None
        modem = ModemSupervisor(settings, None, ctx.clock, events, board, has_pin=lambda: bool(_secret(pin_path)))
        ctx.registry.provide(ModemSupervisor, modem, by="comms")
        ctx.cosem_factories.append(modem_factory(modem, _provisioning(ctx, cfg, modem, provisioning_path)))
        ctx.status_extras["modem"] = modem.view
        if mcfg.bus == "sim":
            sim_modem = SimModem(mcfg.sim_bearer_ipv4)
    gate: MediumGate | None = None
    if ctx.hardware.sim is not None:
        cuts = SimMediaCuts()
        wire_sim_media(ctx.hardware.sim, cuts, sim_modem)
        gate = cuts
    selector = MediaSelector(cfg.media, cfg.policy(), ctx.clock, events)
    routes = {"ethernet": MediumRoute("ethernet", lambda: cfg.ethernet_source, cfg.ethernet_device)}
    if modem is not None:
        bearer_of = modem

        def cellular_source() -> str | None:
            bearer = bearer_of.status.bearer
            return bearer.ipv4 if bearer.connected and bearer.ipv4 else None
        routes["cellular"] = MediumRoute("cellular", cellular_source, cfg.cellular_device)
    if modem is not None:
        ctx.cycle_hooks.append(_modem_tick(modem, selector if "cellular" in cfg.media else None))
    uplink = MediaUplink(selector, {m: routes[m] for m in cfg.media}, cfg.head_end_address(), gate)
    ctx.registry.provide(Uplink, uplink, by="comms")  # type: ignore[type-abstract]  # a Protocol as the key
    ctx.registry.provide(Comms, Comms(modem, selector, uplink, sim_modem), by="comms")
    ctx.status_extras["media"] = selector.view
    comms_routes(ctx.api, modem, selector)


def _modem_tick(modem: ModemSupervisor, selector: MediaSelector | None) -> Callable[[CycleResult], None]:
    """The per-cycle hook: the supervision's tick; a bearer that just came up has the cellular
    medium checked at once."""
    was_connected = False

    def tick(_result: CycleResult) -> None:
        nonlocal was_connected
        modem.tick()
        connected = modem.connected
        if connected and not was_connected and selector is not None:
            selector.check_soon("cellular")
        was_connected = connected
    return tick


def _provisioning(ctx: FeatureContext, cfg: CommsSection, modem: ModemSupervisor,
                  provisioning_path: Path) -> ModemProvisioning:
    """APN and PIN writes of the GPRS modem setup: the APN kept in the provisioning file, the PIN
    in the PIN file (0600); both used from the next connect."""
    pin_path = ctx.cfg.under_state(cfg.modem.pin_file) if cfg.modem.pin_file else None

    def set_apn(apn: str) -> int:
        try:
            provisioning_path.write_text(json.dumps({"apn": apn}), encoding="utf-8")
        except OSError as exc:
            log.error("APN not stored: %s", exc)
            return TEMPORARY_FAILURE
        modem.set_apn(apn)
        return OK

    def set_pin(pin: str) -> int:
        if pin_path is None:
            return TEMPORARY_FAILURE
        try:
            write_secret_text(pin_path, pin + "\n")
        except OSError as exc:
            log.error("SIM PIN not stored: %s", exc.strerror)
            return TEMPORARY_FAILURE
        log.info("SIM PIN changed over DLMS")
        modem.pin_changed()
        return OK

    tcp_port = ctx.cfg.dlms.tcp_port if ctx.cfg.dlms.tcp_host else 0
    return ModemProvisioning(set_apn, set_pin, tcp_port, cfg.head_end)


async def start(ctx: FeatureContext) -> None:
    """Start the simulated modem (bus = "sim"), the modem link and the media health checks."""
    comms = ctx.registry.find(Comms)
    if comms is None:
        return
    cfg: CommsSection = ctx.cfg.feature("comms")
    if comms.modem is not None:
        address = "" if cfg.modem.bus == "system" else cfg.modem.bus
        if comms.sim_modem is not None:
            try:
                address = comms.sim_modem.start()
            except (HwError, ImportError) as exc:  # no dbus-daemon or dbusmock: the modem is absent, metering goes on
                interface_board(ctx).off("modem", "cellular modem (simulated)", str(exc), retry=False)
                address = "unix:path=/nonexistent/meterd-sim-modem"
            else:
                ctx.links.append(comms.sim_modem)
            ctx.info["modem_bus"] = address
        pin_path = ctx.cfg.under_state(cfg.modem.pin_file) if cfg.modem.pin_file else None
        password_path = ctx.cfg.under_state(cfg.modem.password_file) if cfg.modem.password_file else None
        from meterd.runtime.modem_link import ModemLink  # dbus_fast: imported only with a modem

        link = ModemLink(comms.modem, address, ctx.clock.utc, pin=lambda: _secret(pin_path),
                         password=lambda: _secret(password_path), poll_s=cfg.modem.poll_s,
                         signal_rate_s=cfg.modem.signal_rate_s).start()
        ctx.links.append(link)
    ctx.links.append(comms.uplink.start())
    ctx.info["media"] = " > ".join(cfg.media) + f" (head end {cfg.head_end})"
