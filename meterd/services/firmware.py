"""The A/B update engine of the meter: verify, install, trial boot, self-check, confirm or roll back.

Implements :class:`meterd.services.firmware_port.FirmwareInstaller` over RAUC (the engine: bundle
signatures, slot writing, slot status; :mod:`hw.rauc`) and the board's boot switch (the Pi
firmware's tryboot; a simulated board in simulation: :mod:`hw.boot`, :mod:`hw.boot_sim`).

An update, step by step (events to the firmware log 0-0:99.98.6.255, versions in the detail):

1. ``verify(bundle)``: RAUC reads the bundle and checks its signature against the keyring
   (SIGNATURE; a truncated or damaged file is TRUNCATED); the manifest must carry a dotted
   version and the metrology identification (MALFORMED), the board's compatible string
   (HARDWARE), a version not below ``min_version`` (TOO_OLD) and not below the running one unless
   downgrades are allowed (DOWNGRADE). Nothing is installed or recorded (the caller logs).
2. ``activate(bundle, utc)``: verified again; the handover record (both identities, the energy
   registers) is written to the data partition; ``rauc install`` writes the inactive slot and
   makes it the slot the next *tryboot* reboot starts (the permanent choice stays the running
   slot); "firmware installed" (160); the board reboots with tryboot (``reboot_delay_s`` later,
   so the answer to the caller goes out). A failed install: "activation failed" (232).
3. The new slot starts as a trial. After ``self_check_cycles`` metering cycles it runs the
   self-check: the checks the application wires (metering chip answering with its configuration
   checksums, calibration loaded, DLMS server listening, clock valid) and its own: the energy
   registers it started with continue exactly from those the old slot saved last. Pass:
   ``rauc status mark-good`` and ``mark-active`` (the slot becomes the permanent boot choice),
   "self-check passed" (233) and "firmware activated" (IDIS 18). Fail, a check that hangs past
   ``check_timeout_s``, no verdict within ``trial_timeout_s``, or a second start of meterd in the
   same trial (it crashed or the watchdog restarted it): "self-check failed" (161),
   ``mark-bad``, and a plain reboot, which the firmware answers with the old slot.
4. The old slot, booted again with a handover whose trial did not confirm, records "rolled back"
   (162) with the version tried, its own version and the failure, and ends the update.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hw.boot import BootInfo
from hw.errors import HwError
from hw.rauc import BundleInfo, BundleUnreadable, RaucError, RaucStatus
from meterd.core import event_codes as ec
from meterd.core.clock import Clock
from meterd.core.energy import RegisterKey
from meterd.core.firmware import BundleVerdict, FirmwareIdentity, RejectReason, UpdateOutcome, version_key
from meterd.services.firmware_handover import Handover, register_name
from meterd.services.firmware_port import EngineFailure

log = logging.getLogger("meterd.firmware")

Record = Callable[[int, _dt.datetime, Mapping[str, object]], object]


class FirmwareEngineError(EngineFailure):
    """The update engine itself failed (RAUC not reachable, an install that failed, an update
    already in progress); the one-line message says what. A refused bundle is a verdict, not this.
    ``recorded``: "activation failed" (232) is already in the firmware log (a failed install)."""


class UpdateEngine(Protocol):
    """What the service needs of RAUC (:class:`hw.rauc.RaucClient`)."""

    async def info(self, bundle: Path) -> BundleInfo: ...

    async def status(self) -> RaucStatus: ...

    async def install(self, bundle: Path) -> None: ...

    async def mark(self, action: str, slot: str = "booted") -> None: ...


class HandoverStore(Protocol):
    """Where the handover record and the last outcome live (:class:`meterd.store.firmware_store.FirmwareStore`)."""

    def handover(self) -> Handover | None: ...

    def save_handover(self, handover: Handover | None) -> None: ...

    def last(self) -> dict[str, Any]: ...

    def finish(self, last: dict[str, Any]) -> None: ...


class Board(Protocol):
    """The board's reboot: with ``trial`` the slot RAUC installed is started once (tryboot)."""

    async def reboot(self, trial: bool) -> None: ...


@dataclass(frozen=True)
class Check:
    """One self-check: ``run()`` returns None when it holds, else one line saying what failed."""

    name: str
    run: Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class FirmwarePolicy:
    """``[firmware]`` as the service uses it: the board's ``compatible`` string, ``min_version``,
    ``allow_downgrade``, ``self_check_cycles`` (metering cycles before the self-check),
    ``check_timeout_s`` (s per check), ``trial_timeout_s`` (s from start to a verdict),
    ``reboot_delay_s`` (s between an accepted activation and the reboot)."""

    compatible: str
    min_version: str = "0"
    allow_downgrade: bool = False
    self_check_cycles: int = 5
    check_timeout_s: float = 30.0
    trial_timeout_s: float = 600.0
    reboot_delay_s: float = 1.0


def metrology_from_description(text: str) -> tuple[str, str]:
    """``(metrology_id, metrology_sha256)`` from a manifest description
    ``metrology_id=PMM-CORE 0.1.0; metrology_sha256=<64 hex>`` (empty strings when absent)."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return fields.get("metrology_id", ""), fields.get("metrology_sha256", "").lower()


def _versions(old: FirmwareIdentity, new: FirmwareIdentity) -> dict[str, object]:
    return {"from_version": old.version, "to_version": new.version, "from_slot": old.slot, "to_slot": new.slot}


class FirmwareService:
    """The update engine (module docstring). ``code`` is the identity of the code running (its
    version, used when RAUC has no installed bundle for the booted slot, and its metrology
    identification); ``boot`` how this boot happened (None: not known, no trial)."""

    def __init__(self, engine: UpdateEngine, board: Board, boot: BootInfo | None, store: HandoverStore,
                 record: Record, clock: Clock, policy: FirmwarePolicy, code: FirmwareIdentity,
                 registers: Callable[[], Mapping[RegisterKey, int]]) -> None:
        self.engine = engine
        self.board = board
        self.boot = boot
        self.store = store
        self.record = record
        self.clock = clock
        self.policy = policy
        self.code = code
        self.registers = registers
        self.checks: list[Check] = []
        self.rauc: RaucStatus | None = None
        self.problem = "not started"      # why the engine is unavailable ("" when it is)
        self.outcome = UpdateOutcome.NONE
        self.phase = "idle"               # idle, installing, rebooting, self_check_pending, self_checking
        self._identity = code
        self._lock = asyncio.Lock()
        self._start_registers: dict[RegisterKey, int] | None = None
        self._deadline_mono = 0.0
        self._cycles = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the port ---------------------------------------------------------------------------

    def running(self) -> FirmwareIdentity:
        """The identity of the firmware running now (1-0:0.2.0.255 / 1-0:0.2.8.255)."""
        return self._identity

    async def verify(self, bundle: Path) -> BundleVerdict:
        """Check a complete bundle (module docstring, step 1); installs and records nothing.
        Raises :class:`FirmwareEngineError` when RAUC itself cannot be run."""
        if self.problem:
            raise FirmwareEngineError(f"the update engine is unavailable: {self.problem}")
        if not Path(bundle).is_file():
            return BundleVerdict(None, RejectReason.NO_IMAGE, f"no bundle at {bundle}")
        try:
            info = await self.engine.info(Path(bundle))
        except BundleUnreadable as exc:
            reason = RejectReason.SIGNATURE if exc.kind == "signature" else RejectReason.TRUNCATED
            return BundleVerdict(None, reason, str(exc))
        except RaucError as exc:
            raise FirmwareEngineError(str(exc)) from None
        return self.judge(info)

    def judge(self, info: BundleInfo) -> BundleVerdict:
        """The verdict on a bundle RAUC has read and whose signature holds."""
        metrology_id, checksum = metrology_from_description(info.description)
        identity = FirmwareIdentity(version=info.version, compatible=info.compatible, metrology_id=metrology_id,
                                    metrology_checksum=checksum)
        try:
            version = version_key(info.version)
        except ValueError:
            return BundleVerdict(identity, RejectReason.MALFORMED, f"version {info.version!r} is not dotted numeric")
        if not metrology_id or len(checksum) != 64 or any(c not in "0123456789abcdef" for c in checksum):
            return BundleVerdict(identity, RejectReason.MALFORMED,
                                 "the manifest lacks the metrology identifier or its SHA-256")
        if info.compatible != self.policy.compatible:
            return BundleVerdict(identity, RejectReason.HARDWARE,
                                 f"bundle is for {info.compatible!r}, this board is {self.policy.compatible!r}")
        if version < version_key(self.policy.min_version):
            return BundleVerdict(identity, RejectReason.TOO_OLD,
                                 f"version {info.version} is below the minimum {self.policy.min_version}")
        running = self.running().version
        if not self.policy.allow_downgrade and version < version_key(running):
            return BundleVerdict(identity, RejectReason.DOWNGRADE,
                                 f"version {info.version} is older than the running {running}; downgrades are off")
        return BundleVerdict(identity, None, f"version {info.version} for {info.compatible} may be installed")

    async def activate(self, bundle: Path, utc: _dt.datetime) -> BundleVerdict:
        """Verify again, install to the inactive slot, reboot into it once (module docstring,
        step 2). A refused bundle is returned as its verdict (nothing changed); a failure of
        the engine raises :class:`FirmwareEngineError`; a failed install is recorded here as
        "activation failed" (232, with RAUC's message) and raised with ``recorded``."""
        if self._lock.locked() or self.phase not in ("idle",):
            raise FirmwareEngineError(f"an update is in progress ({self.phase})")
        async with self._lock:
            verdict = await self.verify(bundle)
            if not verdict.ok or verdict.identity is None:
                return verdict
            status = await self._status()
            booted = self._booted(status)
            target = next((s.bootname for s in status.slots if s.bootname and s.bootname != booted), "")
            if not target:
                raise FirmwareEngineError(f"no inactive slot besides {booted!r}")
            old = self.running()
            new = FirmwareIdentity(verdict.identity.version, verdict.identity.compatible,
                                   verdict.identity.metrology_id, verdict.identity.metrology_checksum, target)
            handover = Handover(old=old, new=new, stage="installing", registers=self._register_names(),
                                registers_utc=utc.isoformat(), started_utc=utc.isoformat())
            self.store.save_handover(handover)
            self.phase = "installing"
            try:
                await self.engine.install(Path(bundle))
                after = await self.engine.status()
                if after.primary != target:
                    raise RaucError(f"after the install the next boot is slot {after.primary!r}, not {target!r}")
            except RaucError as exc:
                self.store.save_handover(None)
                self.phase = "idle"
                self.record(ec.code("FIRMWARE_ACTIVATION_FAILED"), self.clock.utc(),
                            {**_versions(old, new), "reason": str(exc)[:200]})
                raise FirmwareEngineError(str(exc), recorded=True) from None
            self.rauc = after
            self.store.save_handover(handover.but(stage="installed"))
            self.record(ec.code("FIRMWARE_INSTALLED"), self.clock.utc(), _versions(old, new))
            log.warning("firmware %s installed to slot %s; trial boot in %g s", new.version, target,
                        self.policy.reboot_delay_s)
            self.phase = "rebooting"
            self._later(self._reboot(trial=True))
            return BundleVerdict(new, None, f"version {new.version} installed to slot {target}; trial boot follows")

    # -- start, cycles, self-check ----------------------------------------------------------

    async def start(self) -> None:
        """At meterd's start: RAUC's view of the slots, then what the handover record says
        about this boot (a trial to check, a rollback to record, an update that never booted)."""
        try:
            status = await self._status()
        except FirmwareEngineError as exc:
            self.problem = str(exc)
            log.warning("firmware update engine unavailable: %s", exc)
            return
        self.problem = ""
        booted = self._booted(status)
        slot = status.slot(booted)
        version = slot.bundle_version if slot is not None and slot.bundle_version else self.code.version
        self._identity = FirmwareIdentity(version, self.policy.compatible, self.code.metrology_id,
                                          self.code.metrology_checksum, booted)
        handover = self.store.handover()
        if handover is None:
            return
        # without the firmware's report a start in the new slot of an unfinished update is taken
        # as its trial: the self-check decides, never the absence of evidence
        trial = self.boot.trial if self.boot is not None else booted == handover.new.slot
        if booted == handover.new.slot and trial and handover.stage in ("installed", "trial"):
            handover = handover.but(stage="trial", attempts=handover.attempts + 1)
            self.store.save_handover(handover)
            self._deadline_mono = self.clock.mono() + self.policy.trial_timeout_s
            if handover.attempts > 1:
                await self._fail(handover, "meterd started again during the trial (a crash or the watchdog)")
            else:
                self.phase = "self_check_pending"
                log.warning("trial boot of %s in slot %s: self-check after %d cycles", handover.new.version, booted,
                            self.policy.self_check_cycles)
        elif booted == handover.old.slot and handover.stage in ("trial", "failed"):
            self.outcome = UpdateOutcome.ROLLED_BACK
            failure = handover.failure or "the trial slot did not confirm (crash, hang or power loss)"
            self.record(ec.code("FIRMWARE_ROLLED_BACK"), self.clock.utc(),
                        {"tried_version": handover.new.version, "running_version": handover.old.version,
                         "tried_slot": handover.new.slot, "running_slot": booted, "failure": failure[:200]})
            self._finish(handover, UpdateOutcome.ROLLED_BACK, failure)
            log.error("firmware %s rolled back: %s", handover.new.version, failure)
        elif booted == handover.old.slot:
            # installed (or installing) but the trial never started: the old slot stays
            reason = "the meter restarted before the trial boot"
            self.record(ec.code("FIRMWARE_ACTIVATION_FAILED"), self.clock.utc(),
                        {**_versions(handover.old, handover.new), "reason": reason})
            with contextlib.suppress(RaucError):
                await self.engine.mark("mark-active", "booted")  # the next tryboot is not the new slot
            self._finish(handover, UpdateOutcome.NONE, reason)
        elif booted == handover.new.slot and status.primary == booted:
            self._finish(handover, UpdateOutcome.CONFIRMED, "")  # confirmed before a restart of meterd
            self.outcome = UpdateOutcome.CONFIRMED

    def on_cycle(self, registers_before: Callable[[], Mapping[RegisterKey, int]]) -> None:
        """After each metering cycle (on the event loop): ``registers_before()`` gives the
        registers before this cycle's increments; the first are the ones meterd started with."""
        if self._start_registers is None:
            self._start_registers = dict(registers_before())
        self._cycles += 1
        if self.phase == "self_check_pending" and self._cycles >= self.policy.self_check_cycles:
            self.phase = "self_checking"
            self._later(self.self_check())
        elif self.phase in ("self_check_pending", "self_checking") and self.clock.mono() > self._deadline_mono:
            handover = self.store.handover()
            if handover is not None:
                self.phase = "failing"
                self._later(self._fail(handover, f"no self-check verdict within {self.policy.trial_timeout_s:g} s"))

    async def self_check(self) -> None:
        """Run every check; confirm the slot or go back (module docstring, step 3)."""
        handover = self.store.handover()
        if handover is None:
            return
        failures: list[str] = []
        passed: list[str] = []
        for check in [*self.checks, Check("energy_continuity", self._continuity)]:
            try:
                problem = await asyncio.wait_for(check.run(), self.policy.check_timeout_s)
            except TimeoutError:
                problem = f"no answer within {self.policy.check_timeout_s:g} s"
            except Exception as exc:  # noqa: BLE001  a check that raises has failed, with its reason
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                passed.append(check.name)
            else:
                failures.append(f"{check.name}: {problem}")
        if self.phase != "self_checking":
            return  # the trial timed out meanwhile
        if failures:
            await self._fail(handover, "; ".join(failures))
            return
        try:
            await self.engine.mark("mark-good", "booted")
            await self.engine.mark("mark-active", "booted")
        except RaucError as exc:
            await self._fail(handover, f"confirming the slot: {exc}")
            return
        now = self.clock.utc()
        self.record(ec.code("FIRMWARE_SELF_CHECK_OK"), now,
                    {"version": handover.new.version, "slot": handover.new.slot, "checks": ",".join(passed)})
        self.record(ec.code("FIRMWARE_ACTIVATED"), now, _versions(handover.old, handover.new))
        self._finish(handover, UpdateOutcome.CONFIRMED, "")
        with contextlib.suppress(FirmwareEngineError):
            self.rauc = await self._status()
        self.outcome = UpdateOutcome.CONFIRMED
        self.phase = "idle"
        log.warning("firmware %s confirmed in slot %s (self-check passed)", handover.new.version, handover.new.slot)

    def before_reboot(self) -> None:
        """At the clean stop before the trial reboot, after the final synced save: the
        registers the old slot ends with go into the handover record."""
        handover = self.store.handover()
        if handover is not None and handover.stage == "installed" and self.phase == "rebooting":
            self.store.save_handover(handover.but(registers=self._register_names(), final=True,
                                                  registers_utc=self.clock.utc().isoformat()))

    # -- views ------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """``GET /firmware`` and ``/status``: the running identity, the slots, the update."""
        ident = self.running()
        out: dict[str, Any] = {
            "version": ident.version, "slot": ident.slot, "compatible": ident.compatible,
            "metrology_id": ident.metrology_id, "metrology_checksum": ident.metrology_checksum,
            "engine": "unavailable: " + self.problem if self.problem else "rauc",
            "trial": bool(self.boot.trial) if self.boot is not None else False,
            "phase": self.phase, "outcome": self.outcome.value, "last_update": self.store.last()}
        if self.rauc is not None:
            out["primary"] = self.rauc.primary
            out["slots"] = {s.bootname: {"state": s.state, "boot_status": s.boot_status,
                                         "version": s.bundle_version, "installed": s.installed_utc}
                            for s in self.rauc.slots}
        handover = self.store.handover()
        if handover is not None:
            out["update"] = {"from": handover.old.version, "to": handover.new.version, "to_slot": handover.new.slot,
                             "stage": handover.stage}
        return out

    def summary(self) -> dict[str, Any]:
        """The short form ``/status`` and ``meterctl status`` show."""
        last = self.store.last()
        return {"version": self.running().version, "slot": self.running().slot, "phase": self.phase,
                "engine": "unavailable" if self.problem else "rauc",
                "last_update": (f"{last.get('outcome')} {last.get('from_version')} -> {last.get('to_version')}"
                                if last else "none")}

    # -- internals --------------------------------------------------------------------------

    async def _status(self) -> RaucStatus:
        try:
            status = await self.engine.status()
        except RaucError as exc:
            raise FirmwareEngineError(str(exc)) from None
        self.rauc = status
        return status

    def _booted(self, status: RaucStatus) -> str:
        return self.boot.slot if self.boot is not None else status.booted

    def _register_names(self) -> dict[str, int]:
        return {register_name(k): v for k, v in self.registers().items()}

    async def _continuity(self) -> str | None:
        handover = self.store.handover()
        if handover is None or self._start_registers is None:
            return "no record of the old slot's registers"
        start = {register_name(k): v for k, v in self._start_registers.items()}
        for name, old in sorted(handover.registers.items()):
            now = start.get(name)
            if now is None:
                return f"register {name} missing"
            if now < old or (handover.final and now != old):
                return (f"register {name}: {now} mWh at start, the old slot "
                        f"{'stopped at' if handover.final else 'had'} {old} mWh")
        return None

    async def _fail(self, handover: Handover, reason: str) -> None:
        self.phase = "rebooting"
        self.outcome = UpdateOutcome.SELF_CHECK_FAILED
        self.record(ec.code("FIRMWARE_SELF_CHECK_FAILED"), self.clock.utc(),
                    {**_versions(handover.old, handover.new), "failure": reason[:200]})
        self.store.save_handover(handover.but(stage="failed", failure=reason))
        log.error("firmware %s self-check failed: %s; back to slot %s", handover.new.version, reason,
                  handover.old.slot)
        try:
            await self.engine.mark("mark-bad", "booted")
        except RaucError as exc:  # the next plain reboot goes back to the old slot regardless
            log.error("marking the trial slot bad: %s", exc)
        self._later(self._reboot(trial=False))

    def _finish(self, handover: Handover, outcome: UpdateOutcome, detail: str) -> None:
        self.store.finish({"outcome": outcome.value, "from_version": handover.old.version,
                           "to_version": handover.new.version, "from_slot": handover.old.slot,
                           "to_slot": handover.new.slot, "detail": detail[:200], "utc": self.clock.utc().isoformat()})

    async def _reboot(self, trial: bool) -> None:
        await asyncio.sleep(self.policy.reboot_delay_s)
        try:
            await self.board.reboot(trial)
        except (HwError, OSError) as exc:
            self.phase = "idle"
            log.error("reboot failed: %s", exc)

    def _later(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel what is pending (the daemon is stopping)."""
        for task in list(self._tasks):
            task.cancel()
