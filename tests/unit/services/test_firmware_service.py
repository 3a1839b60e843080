"""The update engine's rules without RAUC: verdicts, the handover record, the trial's
self-check (pass, fail, hang, a second start), the rollback seen from the old slot.

RAUC and the board are fakes here (the real ones run in tests/integration/test_firmware_update.py);
the store is the real one on a temporary directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from hw.boot import BootInfo
from hw.rauc import BundleInfo, BundleUnreadable, RaucError, RaucStatus, SlotStatus
from meterd.core.clock import SimClock
from meterd.core.energy import Quantity, RegisterKey
from meterd.core.firmware import FirmwareIdentity, RejectReason, UpdateOutcome
from meterd.core.reading import Channel
from meterd.services.firmware import Check, FirmwareEngineError, FirmwarePolicy, FirmwareService
from meterd.services.firmware_handover import Handover
from meterd.store.firmware_store import FirmwareStore, metrology_digest

UTC = dt.UTC
SHA = "ab" * 32
KEY: RegisterKey = (Quantity.ACTIVE_IMPORT, Channel.TOTAL)


def _info(version: str = "1.1.0", compatible: str = "pmm1221-rpi4", description: str | None = None) -> BundleInfo:
    return BundleInfo(compatible, version, description if description is not None else
                      f"metrology_id=PMM-CORE {version}; metrology_sha256={SHA}", "", {"rootfs": 1024})


@dataclass
class FakeRauc:
    """RAUC as the service sees it: bundles by path, slot A/B, marks recorded."""

    booted: str = "A"
    bundles: dict[str, BundleInfo | Exception] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    primary: str = "A"
    marks: list[tuple[str, str]] = field(default_factory=list)
    installed: list[Path] = field(default_factory=list)
    fail_install: str = ""

    async def info(self, bundle: Path) -> BundleInfo:
        found = self.bundles[bundle.name]
        if isinstance(found, Exception):
            raise found
        return found

    async def status(self) -> RaucStatus:
        slots = tuple(SlotStatus(f"rootfs.{i}", s, "booted" if s == self.booted else "inactive", "good",
                                 self.versions.get(s, "")) for i, s in enumerate("AB"))
        return RaucStatus("pmm1221-rpi4", self.booted, self.primary, slots)

    async def install(self, bundle: Path) -> None:
        if self.fail_install:
            raise RaucError(self.fail_install)
        self.installed.append(bundle)
        info = await self.info(bundle)
        target = "B" if self.booted == "A" else "A"
        self.versions[target] = info.version
        self.primary = target

    async def mark(self, action: str, slot: str = "booted") -> None:
        self.marks.append((action, slot))
        if action == "mark-active":
            self.primary = self.booted


@dataclass
class FakeBoard:
    reboots: list[bool] = field(default_factory=list)

    async def reboot(self, trial: bool) -> None:
        self.reboots.append(trial)


class Meter:
    """One slot's meterd: the service over a shared state directory and a RAUC fake."""

    def __init__(self, state: Path, rauc: FakeRauc, boot: BootInfo, registers: dict[RegisterKey, int],
                 checks: list[Check] | None = None, **policy: object) -> None:
        self.rauc, self.board, self.events = rauc, FakeBoard(), []
        self.registers = registers
        self.clock = SimClock(dt.datetime(2026, 6, 1, tzinfo=UTC))
        pol = replace(FirmwarePolicy(compatible="pmm1221-rpi4", reboot_delay_s=0.0, self_check_cycles=2), **policy)
        code = FirmwareIdentity("1.0.0", "pmm1221-rpi4", "PMM-CORE 1.0.0", SHA)
        self.service = FirmwareService(rauc, self.board, boot, FirmwareStore(state), self.record, self.clock, pol,
                                       code, lambda: dict(self.registers))
        self.service.checks = checks or []

    def record(self, code: int, utc: dt.datetime, detail: Mapping[str, object]) -> None:
        self.events.append((code, dict(detail)))

    def codes(self) -> list[int]:
        return [c for c, _ in self.events]

    async def cycles(self, n: int) -> None:
        for _ in range(n):
            self.clock.advance(1.0)
            self.service.on_cycle(lambda: dict(self.registers))
            for _ in range(5):
                await asyncio.sleep(0)


def test_verdicts(tmp_path: Path) -> None:
    infos: dict[str, BundleInfo | Exception] = {
        "good.raucb": _info("1.1.0"), "same.raucb": _info("1.0.0"), "old.raucb": _info("0.9.0"),
        "other.raucb": _info("1.1.0", compatible="pmm9999"), "noid.raucb": _info("1.1.0", description="x"),
        "text.raucb": _info("1.1-rc1"), "signed.raucb": BundleUnreadable("signature", "signature: no"),
        "cut.raucb": BundleUnreadable("format", "not a complete bundle: short"),
    }
    for name in infos:
        (tmp_path / name).write_bytes(b"x")
    meter = Meter(tmp_path / "state", FakeRauc(bundles=infos), BootInfo("A", False), {KEY: 0})

    async def reasons(service: FirmwareService) -> dict[str, RejectReason | None]:
        await service.start()
        return {n: (await service.verify(tmp_path / n)).reason for n in [*infos, "missing.raucb"]}

    got = asyncio.run(reasons(meter.service))
    assert got == {"good.raucb": None, "same.raucb": None, "old.raucb": RejectReason.DOWNGRADE,
                   "other.raucb": RejectReason.HARDWARE, "noid.raucb": RejectReason.MALFORMED,
                   "text.raucb": RejectReason.MALFORMED, "signed.raucb": RejectReason.SIGNATURE,
                   "cut.raucb": RejectReason.TRUNCATED, "missing.raucb": RejectReason.NO_IMAGE}
    meter.service.policy = replace(meter.service.policy, allow_downgrade=True, min_version="0.9.5")
    assert asyncio.run(meter.service.verify(tmp_path / "old.raucb")).reason is RejectReason.TOO_OLD
    meter.service.policy = replace(meter.service.policy, min_version="0.1")
    verdict = asyncio.run(meter.service.verify(tmp_path / "old.raucb"))
    assert verdict.ok and verdict.identity is not None and verdict.identity.metrology_checksum == SHA
    assert meter.events == [] and meter.rauc.installed == []  # verify records and installs nothing


def _update(tmp_path: Path, checks: list[Check] | None = None, **policy: object) -> tuple[FakeRauc, Meter, Meter]:
    """Slot A installs 1.1.0 and reboots; returns RAUC and the A and B meters (B not started)."""
    rauc = FakeRauc(bundles={"new.raucb": _info("1.1.0")})
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "new.raucb").write_bytes(b"x")
    state = tmp_path / "state"
    old = Meter(state, rauc, BootInfo("A", False), {KEY: 5000})

    async def activate() -> None:
        await old.service.start()
        verdict = await old.service.activate(tmp_path / "new.raucb", old.clock.utc())
        assert verdict.ok and verdict.identity is not None and verdict.identity.slot == "B"
        for _ in range(5):
            await asyncio.sleep(0)
        old.registers[KEY] = 5100  # energy until the clean stop
        old.service.before_reboot()

    asyncio.run(activate())
    assert old.board.reboots == [True] and rauc.installed and rauc.primary == "B"
    assert old.codes() == [160] and old.events[0][1]["to_version"] == "1.1.0"
    handover = FirmwareStore(state).handover()
    assert handover is not None and handover.stage == "installed" and handover.final
    assert handover.registers == {"active_import/total": 5100}
    rauc.booted = "B"
    new = Meter(state, rauc, BootInfo("B", True), {KEY: 5100}, checks, **policy)
    return rauc, old, new


def test_a_trial_that_passes_its_self_check_is_confirmed(tmp_path: Path) -> None:
    rauc, _old, new = _update(tmp_path, [Check("chip", _ok)])

    async def trial() -> None:
        await new.service.start()
        assert new.service.phase == "self_check_pending"
        await new.cycles(3)

    asyncio.run(trial())
    assert rauc.marks == [("mark-good", "booted"), ("mark-active", "booted")] and rauc.primary == "B"
    assert new.codes() == [233, 18] and new.events[1][1]["from_version"] == "1.0.0"
    assert new.service.outcome is UpdateOutcome.CONFIRMED and new.service.running().version == "1.1.0"
    store = FirmwareStore(tmp_path / "state")
    assert store.handover() is None and store.last()["outcome"] == "confirmed"
    assert new.board.reboots == []


async def _ok() -> str | None:
    return None


def test_a_failed_check_goes_back_and_the_old_slot_records_the_rollback(tmp_path: Path) -> None:
    async def chip() -> str | None:
        return "the metering chip is in fault"

    rauc, _old, new = _update(tmp_path, [Check("metering_chip", chip)])
    asyncio.run(_trial(new))
    assert new.codes() == [161] and "metering_chip: the metering chip" in str(new.events[0][1]["failure"])
    assert ("mark-bad", "booted") in rauc.marks and new.board.reboots == [False]
    rauc.booted, rauc.primary = "A", "A"
    back = Meter(tmp_path / "state", rauc, BootInfo("A", False), {KEY: 5100})
    asyncio.run(back.service.start())
    assert back.codes() == [162]
    detail = back.events[0][1]
    assert detail["tried_version"] == "1.1.0" and detail["running_version"] == "1.0.0"
    assert back.service.outcome is UpdateOutcome.ROLLED_BACK
    assert FirmwareStore(tmp_path / "state").last()["outcome"] == "rolled_back"


async def _trial(meter: Meter, cycles: int = 3) -> None:
    await meter.service.start()
    await meter.cycles(cycles)
    while meter.service._tasks:  # the self-check and the reboot it may ask for
        await asyncio.gather(*meter.service._tasks)


def test_registers_that_do_not_continue_fail_the_trial(tmp_path: Path) -> None:
    _rauc, _old, new = _update(tmp_path)
    new.registers[KEY] = 0  # the new slot did not find the old slot's energy
    asyncio.run(_trial(new))
    assert new.codes() == [161] and "energy_continuity" in str(new.events[0][1]["failure"])


def test_a_hanging_check_and_a_second_start_fail_the_trial(tmp_path: Path) -> None:
    async def hang() -> str | None:
        await asyncio.sleep(3600)
        return None

    _rauc, _old, new = _update(tmp_path, [Check("dlms", hang)], check_timeout_s=0.01)
    asyncio.run(_trial(new))
    assert new.codes() == [161] and "dlms: no answer" in str(new.events[0][1]["failure"])

    _rauc2, _old2, again = _update(tmp_path / "second")
    asyncio.run(again.service.start())  # meterd started in the trial ...
    crashed = Meter(tmp_path / "second" / "state", again.rauc, BootInfo("B", True), {KEY: 5100})
    asyncio.run(crashed.service.start())  # ... and once more in the same boot: it crashed
    assert crashed.codes() == [161] and "started again" in str(crashed.events[0][1]["failure"])


def test_a_failed_install_changes_nothing_but_the_log(tmp_path: Path) -> None:
    rauc = FakeRauc(bundles={"new.raucb": _info("1.1.0")}, fail_install="rauc install: no space left")
    (tmp_path / "new.raucb").write_bytes(b"x")
    meter = Meter(tmp_path / "state", rauc, BootInfo("A", False), {KEY: 1})

    async def run() -> None:
        await meter.service.start()
        with pytest.raises(FirmwareEngineError, match="no space"):
            await meter.service.activate(tmp_path / "new.raucb", meter.clock.utc())

    asyncio.run(run())
    assert meter.codes() == [232] and meter.board.reboots == [] and meter.service.phase == "idle"
    assert FirmwareStore(tmp_path / "state").handover() is None


def test_the_handover_record_survives_a_round_trip_and_ignores_damage(tmp_path: Path) -> None:
    ident = FirmwareIdentity("1.0.0", "pmm1221-rpi4", "PMM-CORE 1.0.0", SHA, "A")
    handover = Handover(ident, replace(ident, version="1.1.0", slot="B"), "trial", {"active_import/total": 7},
                        attempts=1)
    store = FirmwareStore(tmp_path)
    store.save_handover(handover)
    assert store.handover() == handover
    assert Handover.from_dict({"stage": "nonsense"}) is None and Handover.from_dict({}) is None
    store.path.write_text("{not json")
    assert store.handover() is None and store.last() == {}


def test_the_metrology_digest_covers_the_metrology_sources(tmp_path: Path) -> None:
    for package in ("meterd/core", "meterd/bridge", "hw/atm90e36"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "a.py").write_text("x = 1\n")
    first = metrology_digest(tmp_path)
    (tmp_path / "meterd" / "services.py").write_text("y = 2\n")  # outside the metrology core
    assert metrology_digest(tmp_path) == first
    (tmp_path / "meterd/core/a.py").write_text("x = 2\n")
    assert metrology_digest(tmp_path) != first and len(first) == 64


def test_the_record_of_a_newer_slot_reads_in_the_older_one(tmp_path: Path) -> None:
    """Both slots share firmware.json: keys a newer slot adds are ignored, and kept."""
    import json

    ident = {"version": "1.0.0", "compatible": "pmm1221-rpi4", "metrology_id": "PMM-CORE 1.0.0",
             "metrology_checksum": SHA, "slot": "A", "signed_by": "a newer field"}
    doc = {"handover": {"old": ident, "new": {**ident, "version": "2.0.0", "slot": "B"}, "stage": "failed",
                        "failure": "chip", "registers": {"active_import/total": 9, "new_register/total": 1},
                        "schema": 7},
           "last": {"outcome": "confirmed"}, "newer_section": {"x": 1}}
    store = FirmwareStore(tmp_path)
    store.path.write_text(json.dumps(doc))
    handover = store.handover()
    assert handover is not None and handover.new.version == "2.0.0" and handover.failure == "chip"
    store.finish({"outcome": "rolled_back"})
    kept = json.loads(store.path.read_text())
    assert kept["newer_section"] == {"x": 1} and "handover" not in kept


def test_without_the_boot_report_the_new_slot_still_checks_itself(tmp_path: Path) -> None:
    rauc, _old, _new = _update(tmp_path, [Check("chip", _ok)])
    unknown = Meter(tmp_path / "state", rauc, BootInfo("B", True), {KEY: 5100}, [Check("chip", _ok)])
    unknown.service.boot = None  # /proc/cmdline or the device tree unreadable: RAUC says B is booted
    asyncio.run(_trial(unknown))
    assert unknown.codes() == [233, 18] and rauc.primary == "B"


def test_a_failed_install_asked_for_over_dlms_stands_once_in_the_log(tmp_path: Path) -> None:
    """The image transfer's activation over this engine: "activation failed" (232) once, with
    RAUC's message, recorded by the engine; the transfer's status says activation failed."""
    from meterd.core.legal_time import LegalTime, eu_clock_settings
    from meterd.services.image_transfer import Answer, ImageTransferService, Status
    from meterd.store.image_store import ImageStore

    image = b"bundle" * 100
    store = ImageStore(tmp_path / "image", max_size=1 << 20)
    rauc = FakeRauc(bundles={store.image_path.name: _info("1.1.0")}, fail_install="rauc install: no space left")
    meter = Meter(tmp_path / "state", rauc, BootInfo("A", False), {KEY: 1})
    tasks: list[object] = []
    transfer = ImageTransferService(store, meter, meter.clock.utc, meter.service, meter.service.running(), 512,
                                    lambda: LegalTime(eu_clock_settings(60)), tasks.append)

    async def run() -> None:
        await meter.service.start()
        assert transfer.initiate(b"pmm-1.1.0", len(image)) is Answer.DONE
        for n in range(2):
            assert transfer.block(n, image[n * 512:(n + 1) * 512]) is Answer.DONE
        assert transfer.verify() is Answer.BUSY
        await tasks.pop()  # type: ignore[misc]
        assert transfer.status is Status.VERIFIED
        assert transfer.activate() is Answer.BUSY
        await tasks.pop()  # type: ignore[misc]

    asyncio.run(run())
    assert transfer.status is Status.ACTIVATION_FAILED
    assert meter.codes() == [230, 17, 232], meter.events
    failed = meter.events[-1][1]
    assert failed["reason"] == "rauc install: no space left" and failed["to_version"] == "1.1.0"
    assert rauc.installed == [] and meter.board.reboots == []
