"""The image transfer service over the store and a fake update engine: status, resumption,
verification and activation as tasks, events, the activation schedule, no engine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from meterd.core.clock import SimClock
from meterd.core.firmware import BundleVerdict, FirmwareIdentity, RejectReason
from meterd.core.legal_time import LegalTime, eu_clock_settings
from meterd.core.single_action import DatePattern, ExecutionTime, SingleActionSchedule, TimePattern
from meterd.services.image_transfer import (
    ACTIVATION_SCRIPT,
    ACTIVATION_SCRIPTS_LN,
    Answer,
    ImageTransferService,
    Status,
)
from meterd.store.image_store import ImageStore
from tests.dlms_fakes import ListSink
from tests.fakes import FakeInstaller, TaskList

CET = LegalTime(eu_clock_settings(60))
BUNDLE = bytes(range(256)) * 20  # 5120 octets: 10 blocks of 512
FALLBACK = FirmwareIdentity("PMM1221-0.1.0", "", "PMM1221-0.1.0", "cd" * 32)


class Rig:
    def __init__(self, tmp: Path, installer: FakeInstaller | None = None, clock: SimClock | None = None) -> None:
        self.tmp = tmp
        self.installer = installer
        self.clock = clock or SimClock(dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
        self.events = ListSink()
        self.tasks = TaskList()
        self.store = ImageStore(tmp / "image", max_size=1 << 20)
        self.svc = ImageTransferService(self.store, self.events, self.clock.utc, installer, FALLBACK, 512,
                                        lambda: CET, self.tasks)

    def restart(self) -> Rig:
        self.store.close()
        return Rig(self.tmp, self.installer, self.clock)

    def send(self, numbers: range | list[int]) -> None:
        for n in numbers:
            assert self.svc.block(n, BUNDLE[n * 512:(n + 1) * 512]) is Answer.DONE


def test_transfer_interrupted_resumes_after_restart_then_verifies_and_activates(tmp_path: Path):
    rig = Rig(tmp_path, FakeInstaller())
    assert rig.svc.status is Status.NOT_INITIATED and rig.svc.activate_info() == []
    assert rig.svc.block(0, BUNDLE[:512]) is Answer.REFUSED
    assert rig.svc.initiate(b"pmm-1.1.0", len(BUNDLE)) is Answer.DONE
    rig.send(range(6))
    assert rig.svc.verify() is Answer.REFUSED  # blocks missing
    rig = rig.restart()
    assert rig.svc.status is Status.INITIATED and rig.svc.first_not_transferred() == 6
    rig.send(range(6, 10))
    assert rig.events.codes() == [166]  # resumed, once
    assert rig.events.of(166)[0]["block"] == 6
    assert rig.svc.verify() is Answer.BUSY and rig.svc.status is Status.VERIFYING
    assert rig.svc.verify() is Answer.BUSY and rig.svc.block(0, BUNDLE[:512]) is Answer.BUSY
    assert rig.tasks.run_all() == 1
    assert rig.svc.status is Status.VERIFIED and rig.svc.verify() is Answer.DONE
    assert rig.installer is not None and rig.installer.calls[0][2] == len(BUNDLE)
    assert rig.events.of(17)[0]["version"] == "1.1.0"
    info = rig.svc.activate_info()
    assert info[0].size == len(BUNDLE) and info[0].identification == b"pmm-1.1.0" and info[0].signature == b"\xbb" * 32
    assert rig.svc.activate() is Answer.BUSY and rig.svc.status is Status.ACTIVATING
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATED and rig.svc.activate() is Answer.DONE
    assert rig.installer.calls[-1][0] == "activate" and 18 not in rig.events.codes()  # the engine's to record
    # the restart into the new version keeps the status; a rollback shows activation failed
    assert rig.restart().svc.status is Status.ACTIVATED
    rig.installer.identity = FirmwareIdentity("1.0.0", "pmm1221-rpi4", "PMM-CORE 1.0", "aa" * 32, "A")
    assert rig.restart().svc.status is Status.ACTIVATION_FAILED
    # the real engine learns the booted slot's version in its start, after this service is made:
    # start() judges the activation again by what runs then
    new = rig.installer.verdict.identity
    rig = rig.restart()
    assert rig.svc.status is Status.ACTIVATION_FAILED
    assert rig.installer is not None
    rig.installer.identity = new
    rig.svc.start()
    assert rig.svc.status is Status.ACTIVATED and rig.restart().svc.status is Status.ACTIVATED


def test_same_identifier_resumes_another_starts_over(tmp_path: Path):
    rig = Rig(tmp_path, FakeInstaller())
    rig.svc.initiate(b"img-a", len(BUNDLE))
    rig.send([0, 1, 2])
    assert rig.svc.initiate(b"img-a", len(BUNDLE)) is Answer.DONE
    assert rig.svc.first_not_transferred() == 3 and rig.events.codes() == [230, 166]
    assert rig.svc.initiate(b"img-b", len(BUNDLE)) is Answer.DONE
    assert rig.svc.first_not_transferred() == 0 and rig.events.codes() == [230, 166, 230]
    assert rig.svc.initiate(b"img-c", 2 << 20) is Answer.REFUSED  # over the size limit
    assert rig.svc.initiate(b"", 100) is Answer.REFUSED


@pytest.mark.parametrize("reason", list(RejectReason)[:4])
def test_refused_bundle_goes_to_the_log_with_its_reason(tmp_path: Path, reason: RejectReason):
    rig = Rig(tmp_path, FakeInstaller(verdict=BundleVerdict(None, reason, f"{reason.value} detail")))
    rig.svc.initiate(b"bad", len(BUNDLE))
    rig.send(range(10))
    assert rig.svc.verify() is Answer.BUSY
    rig.tasks.run_all()
    assert rig.svc.status is Status.VERIFY_FAILED and rig.svc.verify() is Answer.REFUSED
    assert rig.events.of(231)[0]["reason"] == reason.value
    assert rig.svc.activate() is Answer.REFUSED
    assert rig.installer is not None and [c[0] for c in rig.installer.calls] == ["verify"]


def test_failed_activation_and_engine_errors(tmp_path: Path):
    installer = FakeInstaller()
    installer.activation = BundleVerdict(None, RejectReason.SIGNATURE, "changed since verified")
    rig = Rig(tmp_path, installer)
    rig.svc.initiate(b"x", len(BUNDLE))
    rig.send(range(10))
    rig.svc.verify()
    rig.tasks.run_all()
    rig.svc.activate()
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATION_FAILED and rig.events.of(232)[0]["reason"] == "signature"

    async def broken(bundle: Path) -> BundleVerdict:
        raise RuntimeError("rauc vanished")

    rig2 = Rig(tmp_path / "b", FakeInstaller())
    rig2.installer.verify = broken  # type: ignore[method-assign,union-attr]
    rig2.svc.initiate(b"x", len(BUNDLE))
    rig2.send(range(10))
    rig2.svc.verify()
    rig2.tasks.run_all()
    assert rig2.svc.status is Status.VERIFY_FAILED and "rauc vanished" in str(rig2.events.of(231)[0]["detail"])

    async def failing(bundle: Path, utc: dt.datetime) -> BundleVerdict:
        raise RuntimeError("rauc vanished")

    rig3 = Rig(tmp_path / "c", FakeInstaller())
    rig3.installer.activate = failing  # type: ignore[method-assign,union-attr]
    rig3.svc.initiate(b"x", len(BUNDLE))
    rig3.send(range(10))
    rig3.svc.verify()
    rig3.tasks.run_all()
    rig3.svc.activate()
    rig3.tasks.run_all()
    assert rig3.svc.status is Status.ACTIVATION_FAILED
    assert [(e["reason"], e["detail"]) for e in rig3.events.of(232)] == [("engine", "rauc vanished")]


def test_without_an_engine_blocks_are_kept_and_verification_cannot_start(tmp_path: Path, caplog):
    rig = Rig(tmp_path, None)
    assert rig.svc.identity() == FALLBACK
    rig.svc.initiate(b"x", len(BUNDLE))
    rig.send(range(10))
    assert rig.svc.verify() is Answer.BUSY and rig.svc.status is Status.INITIATED
    assert rig.svc.verify() is Answer.BUSY
    assert rig.svc.activate() is Answer.REFUSED
    assert not rig.tasks.pending
    assert sum("no firmware update engine" in r.getMessage() for r in caplog.records) == 1


def test_activation_schedule_runs_activation_at_local_time_sixty_days_ahead(tmp_path: Path):
    """Written on 1 February for 1 April 10:00 local (CEST): the meter clock stepped hourly for
    sixty days, then by the second around the time; activation starts at 08:00:00 UTC."""
    rig = Rig(tmp_path, FakeInstaller())
    rig.svc.initiate(b"x", len(BUNDLE))
    rig.send(range(10))
    rig.svc.verify()
    rig.tasks.run_all()
    when = SingleActionSchedule(ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT, 1,
                                (ExecutionTime(TimePattern(10, 0, 0, 0), DatePattern(2026, 4, 1, None)),))
    assert not rig.svc.set_schedule(SingleActionSchedule("0.0.10.0.1.255", 1))  # another script
    assert rig.svc.set_schedule(when)
    assert rig.events.of(165)[0]["at"] == "2026-04-01T08:00:00+00:00"
    rig = rig.restart()  # the schedule is kept with the image
    assert rig.svc.schedule == when
    while rig.clock.utc() < dt.datetime(2026, 4, 1, 7, tzinfo=dt.UTC):
        rig.svc.tick()
        assert rig.svc.status is Status.VERIFIED
        rig.clock.advance(3600)
    while rig.svc.status is Status.VERIFIED:
        rig.clock.advance(1)
        rig.svc.tick()
    assert rig.clock.utc() == dt.datetime(2026, 4, 1, 8, tzinfo=dt.UTC)
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATED and [c[0] for c in rig.installer.calls] == ["verify", "activate"]


def test_schedule_due_without_a_verified_image_is_a_failed_activation(tmp_path: Path):
    rig = Rig(tmp_path, FakeInstaller())
    rig.svc.initiate(b"x", len(BUNDLE))
    rig.svc.set_schedule(SingleActionSchedule(ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT, 1, (
        ExecutionTime(TimePattern(0, 0, 0, 0), DatePattern(None, None, None, None)),)))
    rig.svc.tick()
    rig.clock.advance(86400)
    rig.svc.tick()
    assert rig.events.of(232)[0]["reason"] == "no_image" and rig.svc.status is Status.INITIATED


def test_an_activation_time_passed_while_meterd_was_down_runs_at_the_first_cycle(tmp_path: Path):
    rig = Rig(tmp_path, FakeInstaller())
    rig.svc.initiate(b"x", len(BUNDLE))
    rig.send(range(10))
    rig.svc.verify()
    rig.tasks.run_all()
    rig.svc.set_schedule(SingleActionSchedule(ACTIVATION_SCRIPTS_LN, ACTIVATION_SCRIPT, 1, (
        ExecutionTime(TimePattern(10, 0, 0, 0), DatePattern(2026, 2, 2, None)),)))
    rig.svc.tick()
    rig.clock.advance(2 * 86400)  # meterd stopped over the execution time
    rig = rig.restart()
    assert rig.svc.status is Status.VERIFIED
    rig.svc.tick()
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATED and [c[0] for c in rig.installer.calls] == ["verify", "activate"]
    assert rig.store.state["due_at"] is None  # run: not due again after another restart


class FakeTarget:
    """Another device's update (:class:`meterd.services.image_target.ImageTarget`): claims every
    bundle when ``claim``; ``state`` is its delivery; ``refusal`` makes activation raise."""

    name = "ciu"

    def __init__(self, claim: bool = True) -> None:
        from meterd.services.image_target import Delivery

        self.claim = claim
        self.state = Delivery.RUNNING
        self.refusal: Exception | None = None
        self.calls: list[str] = []

    async def claims(self, bundle: Path) -> bool:
        return self.claim

    async def verify(self, bundle: Path) -> BundleVerdict:
        self.calls.append("verify")
        return BundleVerdict(FirmwareIdentity("0.2.0", "pmm-ciu-rpi4", "PMM-CIU 0.2.0", ""), None)

    async def activate(self, bundle: Path, utc: dt.datetime) -> BundleVerdict:
        self.calls.append("activate")
        if self.refusal is not None:
            raise self.refusal
        return BundleVerdict(FirmwareIdentity("0.2.0", "pmm-ciu-rpi4", "PMM-CIU 0.2.0", ""), None)

    def delivery(self, version: str) -> Any:
        assert version == "0.2.0"
        return self.state


def target_rig(tmp: Path, target: FakeTarget, installer: FakeInstaller | None = None) -> Rig:
    rig = Rig(tmp, installer)
    rig.svc = ImageTransferService(rig.store, rig.events, rig.clock.utc, installer, FALLBACK, 512, lambda: CET,
                                   rig.tasks, targets=(target,))
    return rig


def verified(rig: Rig) -> None:
    assert rig.svc.initiate(b"ciu", len(BUNDLE)) is Answer.DONE
    rig.send(range(10))
    assert rig.svc.verify() is Answer.BUSY
    rig.tasks.run_all()


def test_a_bundle_a_target_claims_is_verified_and_delivered_by_it_across_a_restart(tmp_path: Path):
    from meterd.services.image_target import Delivery

    target, meter = FakeTarget(), FakeInstaller()
    rig = target_rig(tmp_path, target, meter)
    verified(rig)
    assert rig.svc.status is Status.VERIFIED and rig.svc.target == "ciu" and target.calls == ["verify"]
    assert meter.calls == [] and rig.events.of(17)[0]["target"] == "ciu"
    assert rig.svc.activate() is Answer.BUSY
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATING and rig.svc.activate() is Answer.BUSY  # carried, not yet tried
    assert rig.svc.initiate(b"ciu", len(BUNDLE)) is Answer.BUSY  # the image being delivered
    rig.svc.tick()
    assert rig.svc.status is Status.ACTIVATING
    # a restart of meterd while the target delivers: still activating (not a task that died)
    rig.store.close()
    rig = target_rig(tmp_path, target, meter)
    assert rig.svc.status is Status.ACTIVATING and rig.svc.target == "ciu"
    target.state = Delivery.DONE
    rig.svc.tick()
    assert rig.svc.status is Status.ACTIVATED and rig.svc.activate() is Answer.DONE
    rig.store.close()
    rig = target_rig(tmp_path, target, meter)  # the meter's running version does not judge the CIU's image
    rig.svc.start()
    assert rig.svc.status is Status.ACTIVATED and meter.calls == []
    assert 232 not in rig.events.codes() and target.calls == ["verify", "activate"]


def test_another_image_may_begin_while_a_target_delivers(tmp_path: Path):
    from meterd.services.image_target import Delivery

    target, meter = FakeTarget(), FakeInstaller()
    rig = target_rig(tmp_path, target, meter)
    verified(rig)
    rig.svc.activate()
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATING and rig.svc.handed
    assert rig.svc.initiate(b"ciu", len(BUNDLE)) is Answer.BUSY  # the image being delivered
    assert rig.svc.block(0, BUNDLE[:512]) is Answer.BUSY
    target.claim = False
    assert rig.svc.initiate(b"meter-1.1.0", len(BUNDLE)) is Answer.DONE
    assert rig.svc.status is Status.INITIATED and rig.svc.target == "meter" and not rig.svc.handed
    target.state = Delivery.DONE
    rig.send(range(10))
    rig.svc.tick()
    assert rig.svc.status is Status.INITIATED  # the target's outcome is the firmware log's now
    assert rig.svc.verify() is Answer.BUSY
    rig.tasks.run_all()
    assert rig.svc.status is Status.VERIFIED and [c[0] for c in meter.calls] == ["verify"]


def test_a_target_that_rolls_back_or_refuses_is_a_failed_activation(tmp_path: Path):
    from meterd.services.firmware_port import EngineFailure
    from meterd.services.image_target import Delivery

    target = FakeTarget()
    rig = target_rig(tmp_path, target)
    verified(rig)
    rig.svc.activate()
    rig.tasks.run_all()
    target.state = Delivery.FAILED  # the CIU rolled back (it records that itself)
    rig.svc.tick()
    assert rig.svc.status is Status.ACTIVATION_FAILED and 232 not in rig.events.codes()
    # activation again: the target refuses and has recorded why; then it is busy (not recorded)
    target.refusal = EngineFailure("CIU update refused (downgrade)", recorded=True)
    assert rig.svc.activate() is Answer.REFUSED  # a target's image must be verified again first
    verified(rig)
    rig.svc.activate()
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATION_FAILED and 232 not in rig.events.codes()
    target.refusal = EngineFailure("CIU update refused (busy)", recorded=False)
    verified(rig)
    rig.svc.activate()
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATION_FAILED and rig.events.of(232)[-1]["reason"] == "engine"


def test_a_bundle_no_target_claims_goes_to_the_meters_engine(tmp_path: Path):
    target, meter = FakeTarget(claim=False), FakeInstaller()
    rig = target_rig(tmp_path, target, meter)
    verified(rig)
    assert rig.svc.target == "meter" and target.calls == [] and [c[0] for c in meter.calls] == ["verify"]
    assert "target" not in rig.events.of(17)[0]
    rig.svc.activate()
    rig.tasks.run_all()
    assert rig.svc.status is Status.ACTIVATED and meter.calls[-1][0] == "activate"
    # only a target and the bundle is not for it: refused as the wrong hardware
    rig = target_rig(tmp_path / "alone", FakeTarget(claim=False))
    verified(rig)
    assert rig.svc.status is Status.VERIFY_FAILED and rig.events.of(231)[0]["reason"] == "hardware"
