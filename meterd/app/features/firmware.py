"""The A/B firmware update engine in the meter: RAUC, the tryboot switch, the self-check.

Wires :class:`meterd.services.firmware.FirmwareService` and provides it as the meter's
:class:`~meterd.services.firmware_port.FirmwareInstaller` (what the DLMS image transfer uses):

* on a Pi: RAUC with ``[firmware] rauc_conf`` (``/etc/rauc/system.conf``, custom back end
  ``image/rauc/tryboot-handler``) on the system bus, the boot report of the firmware
  (``/proc/cmdline``, the device tree's tryboot flag), reboots through systemd (docs/firmware.md);
* in simulation: the simulated board under ``<state_dir>/firmware-sim`` (:class:`hw.boot_sim.SimBoard`),
  which the launcher (``meterd.app.simrun``) prepares, boots and restarts meterd on; without
  it (an in-process test, ``meterd run`` alone) the engine says it is unavailable;
* the self-check of a trial boot: the metering chip answers and its configuration checksums
  hold, the calibration is loaded, the DLMS server listens, the clock is valid (and, in the
  service, the energy registers continue from the old slot's);
* ``GET /firmware``, ``POST /firmware/verify``, ``POST /firmware/install`` (:mod:`meterd.api.firmware_views`,
  ``meterctl firmware``), ``/status`` shows ``firmware`` (version, slot, last update).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from hw.boot import BootError, BootInfo, PiBoard, read_boot
from hw.boot_sim import SimBoard
from hw.rauc import RaucClient
from meterd.api.firmware_views import firmware_routes
from meterd.app.config import rng
from meterd.app.feature_api import FeatureContext
from meterd.core.energy import RegisterKey
from meterd.core.errors import ConfigError
from meterd.core.events import EventRecorder
from meterd.core.firmware import FirmwareIdentity, version_key
from meterd.services.calibration import CalibrationService
from meterd.services.firmware import Board, Check, FirmwarePolicy, FirmwareService
from meterd.services.firmware_port import FirmwareInstaller
from meterd.services.metering import CycleResult
from meterd.store.firmware_store import FirmwareStore, metrology_digest

log = logging.getLogger("meterd.firmware")

SIM_BOARD_DIR = "firmware-sim"   # under the state directory
METROLOGY_NAME = "PMM-CORE"


@dataclass(frozen=True)
class FirmwareSection:
    """``[firmware]``: the board's ``compatible`` string (a bundle must carry it), the
    ``min_version`` a bundle must reach, ``allow_downgrade``; RAUC's ``rauc_conf`` and an
    optional ``keyring`` (PEM) overriding its keyring (Pi); the
    simulated board's ``sim_keyring`` (PEM, relative to the working directory: ``make bundle``
    makes the development one, ``image/keys/dev/keyring.pem``; empty: no simulated board); the trial's ``self_check_cycles``, ``check_timeout_s`` (s),
    ``trial_timeout_s`` (s) and the ``reboot_delay_s`` (s) after an accepted activation."""

    compatible: str = "pmm1221-rpi4"
    min_version: str = "0.0.0"
    allow_downgrade: bool = False
    rauc_conf: str = "/etc/rauc/system.conf"
    keyring: str = ""
    sim_keyring: str = ""
    self_check_cycles: int = field(default=5, metadata=rng(1, 3600))
    check_timeout_s: float = field(default=30.0, metadata=rng(1, 600))
    trial_timeout_s: float = field(default=600.0, metadata=rng(10, 86_400))
    reboot_delay_s: float = field(default=1.0, metadata=rng(0, 60))


SECTION = FirmwareSection


@functools.lru_cache(maxsize=1)
def code_identity(compatible: str) -> FirmwareIdentity:
    """The identity of the code installed here: its version and the metrology identification
    (the digest is read once per process)."""
    version = code_version()
    return FirmwareIdentity(version=version, compatible=compatible, metrology_id=f"{METROLOGY_NAME} {version}",
                            metrology_checksum=metrology_digest())


def code_version() -> str:
    """The version of the meter software installed here (the package's)."""
    try:
        return metadata.version("pmm-reference-meter")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def sim_board(ctx: FeatureContext) -> SimBoard:
    """The simulated board of this meter's state directory."""
    return SimBoard(ctx.cfg.state_dir / SIM_BOARD_DIR)


def _checks(ctx: FeatureContext) -> list[Check]:
    """The self-checks that need the rest of the meter (module docstring)."""
    meter = ctx.meter
    calibration = ctx.registry.find(CalibrationService)

    async def chip() -> str | None:
        if meter.chip.in_fault:
            return "the metering chip is in fault (it does not answer, or a configuration checksum failed)"
        if meter.last_reading is None or meter.cycles == 0:
            return "no reading from the metering chip"
        if "checksum_error" in meter.status_flags():
            return "configuration checksum error"
        return None

    async def calibrated() -> str | None:
        if calibration is not None and calibration.problem is not None:
            return f"calibration {calibration.problem.value}: {calibration.problem_text}"[:160]
        return None

    async def dlms() -> str | None:
        where = str(ctx.info.get("dlms_tcp", ""))
        if not where:
            return None  # no DLMS TCP link configured on this meter
        if where.startswith("unavailable"):
            return f"DLMS TCP server {where}"
        host, _, port = where.split(" ", 1)[0].rpartition(":")
        try:
            _reader, writer = await asyncio.open_connection(host, int(port))
        except (OSError, ValueError) as exc:
            return f"DLMS TCP server {host}:{port} does not accept connections ({exc})"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    async def clock() -> str | None:
        return "the meter clock is invalid" if "clock_invalid" in meter.status_flags() else None

    return [Check("metering_chip", chip), Check("calibration", calibrated), Check("dlms", dlms),
            Check("clock", clock)]


def attach(ctx: FeatureContext) -> None:
    """Build the update engine for this board and wire it (module docstring)."""
    cfg = ctx.cfg
    section: FirmwareSection = cfg.feature("firmware")
    for key in ("min_version",):
        try:
            version_key(getattr(section, key))
        except ValueError as exc:
            raise ConfigError(cfg.path, f"firmware.{key}", str(exc)) from None
    events = ctx.registry.need(EventRecorder, by="firmware")
    unavailable = ""
    board: Board
    boot: BootInfo | None = None
    if ctx.hardware.backends.simulated:
        sim = sim_board(ctx)
        board = sim
        engine = RaucClient(sim.conf, bus_address=sim.bus_address)
        if sim.exists():
            try:
                boot = sim.booted()
            except BootError as exc:
                unavailable = str(exc)
        else:
            unavailable = ("no simulated board: set [firmware] sim_keyring and start the meter with make run "
                           "(meterd.app.simrun)")
    else:
        board = PiBoard()
        engine = RaucClient(Path(section.rauc_conf), keyring=Path(section.keyring) if section.keyring else None)
        try:
            boot = read_boot()
        except BootError as exc:
            log.warning("boot report: %s (no trial boot assumed)", exc)
    code = code_identity(section.compatible)
    policy = FirmwarePolicy(compatible=section.compatible, min_version=section.min_version,
                            allow_downgrade=section.allow_downgrade, self_check_cycles=section.self_check_cycles,
                            check_timeout_s=section.check_timeout_s, trial_timeout_s=section.trial_timeout_s,
                            reboot_delay_s=section.reboot_delay_s)
    registers = ctx.meter.registers
    service = FirmwareService(engine, board, boot, FirmwareStore(cfg.state_dir), events.record, ctx.clock, policy,
                              code, registers.snapshot)
    service.problem = unavailable or service.problem
    service.checks = _checks(ctx)
    ctx.registry.provide(FirmwareInstaller, service, by="firmware")  # type: ignore[type-abstract]  # a Protocol
    ctx.registry.provide(FirmwareService, service, by="firmware")

    def on_cycle(result: CycleResult) -> None:
        def before() -> dict[RegisterKey, int]:
            return {k: v - result.deltas.get(k, 0) for k, v in registers.snapshot().items()}

        service.on_cycle(before)

    ctx.cycle_hooks.append(on_cycle)
    ctx.closers.append(service.before_reboot)  # after the final synced save
    firmware_routes(ctx.api, service, events.record, ctx.clock)
    ctx.status_extras["firmware"] = service.summary
    ctx.info["firmware"] = f"{code.version} ({code.metrology_id})"
    if unavailable:
        ctx.info["firmware_engine"] = f"unavailable: {unavailable}"


async def start(ctx: FeatureContext) -> None:
    """Ask RAUC about the slots and act on this boot (trial, rollback)."""
    service = ctx.registry.need(FirmwareService, by="firmware")
    if ctx.hardware.backends.simulated and not sim_board(ctx).exists():
        return
    await service.start()
    ctx.links.append(service)
