"""The CIU's update over the link without RAUC (stand-in engines): the update protocol's messages,
what a CIU that does not know them does, the line shared with the keypad, the CIU's rules."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from ciu.core.state import CiuState, Screen
from ciu.core.update_rules import BootVerdict, TrialRecord, UpdatePolicy, boot_verdict, judge
from ciu.runtime.client import CiuLinkClient
from ciu.runtime.update import CiuUpdater, UpdateSettings
from hw.boot import BootInfo
from hw.monotonic import MonotonicClock
from hw.rauc import BundleInfo, BundleUnreadable, RaucStatus, SlotStatus
from hw.serial_link import BusDrivers, SimWire
from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import (
    FW_BLOCK_BYTES,
    FWU_VERSION,
    MAX_FRAME_LEN,
    MAX_OCTETS,
    CiuIdent,
    CodecError,
    Deframer,
    FrameKind,
    FwOffer,
    FwPhase,
    FwState,
    LinkEndpoint,
    LinkState,
    Message,
    MessageReceived,
    MsgKind,
    Role,
    build_frame,
    fw_block,
    parse_fw_block,
)
from meterd.services.ciu_service import CiuService
from meterd.services.ciu_update import CiuUpdatePolicy, CiuUpdateService
from meterd.store.ciu_update_store import CiuUpdateFiles
from tests.ciu_link_port import RecordingLinkPort
from tests.dlms_fakes import ListSink

PAIR_KEY = bytes(range(32))
DRIVERS = BusDrivers(turn_on_s=0.001, turn_off_s=0.002)
TOKEN = "31415926535897932384"


def rand_source(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


def test_update_messages_round_trip_and_a_block_fits_a_frame() -> None:
    offer = FwOffer(7, "ab" * 32, 123456, "1.2.0")
    assert FwOffer.parse(Message.decode(offer.message().encode())) == offer
    data = random.Random(1).randbytes(FW_BLOCK_BYTES)
    message = fw_block(7, 1024, data)
    assert parse_fw_block(Message.decode(message.encode())) == (1024, data)
    frame = build_frame(bytes(32), Role.METER, FrameKind.DATA, 1, 1, 1, message.encode(), final=True)
    assert len(frame) < MAX_FRAME_LEN  # even with every octet stuffed it stays well under the limit
    state = FwState(7, FwPhase.REFUSED, 0, "signature", "x" * 400, "1.2.0")
    parsed = FwState.parse(Message.decode(state.message().encode()))
    assert parsed is not None and parsed.reason == "signature" and len(parsed.detail) == 255
    ident = CiuIdent("1.0.0", "pmm-ciu-rpi4", "PMM-CIU 1.0.0", "cd" * 32, "A", "confirmed", "0.9.0", "1.0.0",
                     "ok", "id-1")
    assert CiuIdent.parse(Message.decode(ident.message().encode())) == ident
    with pytest.raises(CodecError):
        Message(MsgKind.FW_BLOCK, 1, {"off": 0, "data": bytes(MAX_OCTETS + 1)}).encode()
    assert FwOffer.parse(Message(MsgKind.FW_OFFER, 1, {"size": 10})) is None  # no SHA-256: not an offer


def test_an_unknown_message_kind_is_dropped_unacknowledged_as_before() -> None:
    """What a CIU of before the update protocol does with FW_OFFER/FW_BLOCK: its codec does not know
    the kind, so the frame is refused (``codec``), neither delivered nor acknowledged. That is why
    the meter sends them only to a CIU that identified itself with ``fwu_v``."""
    clock = SimClock()
    meter = LinkEndpoint(Role.METER, clock, rand_source(1), PAIR_KEY)
    ciu = LinkEndpoint(Role.CIU, clock, rand_source(2), PAIR_KEY)
    for _ in range(200):  # a session
        clock.advance(0.02)
        ciu.receive_bytes(meter.data_to_send())
        meter.receive_bytes(ciu.data_to_send())
        meter.poll()
        ciu.poll()
    assert meter.state is LinkState.UP and ciu.state is LinkState.UP
    unknown = Message(MsgKind.STATUS, 0, {}).encode()
    unknown = bytes([0x3F]) + unknown[1:]  # a kind this receiver's codec has never heard of
    session = meter._session
    assert session is not None
    session.tx_ctr += 1
    session.tx_seq += 1
    frame = build_frame(session.key, Role.METER, FrameKind.DATA, session.tx_ctr, session.tx_seq, 99, unknown,
                        final=True)
    events = ciu.receive_bytes(frame)
    assert not any(isinstance(e, MessageReceived) for e in events)
    assert ciu.stats.rejected.get("codec") == 1
    clock.advance(0.01)
    answer = [f for f in Deframer().feed(ciu.data_to_send()) if not isinstance(f, str)]
    assert answer and all(f.kind != FrameKind.ACK for f in answer)  # its turn, but no acknowledgement


class FakeEngine:
    """RAUC stand-in for the CIU: ``info`` answers from the bundle's first line, installs are counted."""

    def __init__(self) -> None:
        self.installed: list[Path] = []
        self.marks: list[str] = []

    async def info(self, bundle: Path) -> BundleInfo:
        head = bundle.read_bytes()[:64].split(b"\n")[0].decode()
        if head.startswith("stranger"):
            raise BundleUnreadable("signature", "signature: Verify error: self-signed certificate")
        compatible, version = head.split()
        return BundleInfo(compatible, version, "", "")

    async def status(self) -> RaucStatus:
        return RaucStatus("pmm-ciu-rpi4", "A", "A", (SlotStatus("rootfs.0", "A", "booted", "good"),))

    async def install(self, bundle: Path) -> None:
        self.installed.append(bundle)
        self.installed_bytes = bundle.read_bytes()

    async def mark(self, action: str, slot: str = "booted") -> None:
        self.marks.append(action)


class FakeBoard:
    def __init__(self) -> None:
        self.reboots: list[bool] = []

    async def reboot(self, trial: bool) -> None:
        self.reboots.append(trial)


class Reader:
    """The meter's ``rauc info`` stand-in (same first-line convention)."""

    async def info(self, bundle: Path) -> BundleInfo:
        return await FakeEngine().info(bundle)


class Rig:
    def __init__(self, tmp: Path, with_updater: bool = True) -> None:
        self.clock = SimClock()
        self.wire = SimWire(self.clock.mono, baud=9600, seed=3, drivers=DRIVERS)
        self.events = ListSink()
        self.applied: list[str] = []
        link = LinkEndpoint(Role.METER, self.clock, rand_source(5), PAIR_KEY)
        self.statuses = 0
        self.service = CiuService(link, self.clock, self._token, self._status)
        self.port = RecordingLinkPort(self.service)
        self.sent = self.port.sent
        self.update = CiuUpdateService(self.port, Reader(), CiuUpdateFiles(tmp / "meter"), self.events, self.clock,
                                       self.clock, CiuUpdatePolicy(compatible="pmm-ciu-rpi4"))
        self.engine, self.board = FakeEngine(), FakeBoard()
        self.updater = CiuUpdater(tmp / "ciu", self.engine, self.board, BootInfo("A", False),
                                  UpdatePolicy("pmm-ciu-rpi4"), lambda: {"ok": True}, self.clock.mono,
                                  UpdateSettings()) if with_updater else None
        if self.updater is not None:
            assert self.updater.start() is BootVerdict.NONE
        ids = iter(range(1000, 2000))
        self.state = CiuState(self.clock, lambda: next(ids))
        self.client = CiuLinkClient(self.state, LinkEndpoint(Role.CIU, self.clock, rand_source(6), PAIR_KEY),
                                    self.wire.b, updater=self.updater)

    def _status(self) -> dict[str, object]:
        self.statuses += 1
        return {"credit": 1.5, "fwu_v": FWU_VERSION, "n": self.statuses}

    def _token(self, digits: str) -> dict[str, object]:
        self.applied.append(digits)
        return {"accepted": True, "code": "accepted"}

    def step(self, dt_s: float = 0.02) -> None:
        self.clock.advance(dt_s)
        self.update.on_events(self.service.receive_bytes(self.wire.a.read()))
        self.update.on_events(self.service.poll())
        out = self.service.data_to_send()
        if out:
            self.wire.a.write(out)
        if self.updater is not None:
            assert self.updater.wait_idle(10.0)
        self.client.pump()

    def run(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.02)):
            self.step()

    def close(self) -> None:
        if self.updater is not None:
            self.updater.close()


def fake_bundle(tmp: Path, head: str, size: int) -> Path:
    path = tmp / f"{head.replace(' ', '-')}.raucb"
    path.write_bytes((head + "\n").encode() + random.Random(head).randbytes(size))
    return path


def test_a_ciu_without_the_update_protocol_is_never_sent_its_messages(tmp_path: Path) -> None:
    rig = Rig(tmp_path, with_updater=False)
    try:
        rig.run(3.0)
        assert rig.state.view().link_up and rig.state.view().status.get("fwu_v") == FWU_VERSION  # ignored
        verdict = asyncio.run(rig.update.stage(fake_bundle(tmp_path, "pmm-ciu-rpi4 0.2.0", 4000)))
        assert not verdict.ok and verdict.reason == "ciu_unknown"
        assert rig.events.of(ec.code("CIU_FIRMWARE_REFUSED"))[-1]["reason"] == "ciu_unknown"
        rig.run(20.0)
        assert rig.sent == [] and rig.service.link.state is LinkState.UP and rig.service.link.stats.rejected == {}
    finally:
        rig.close()


def test_the_keypad_is_answered_while_a_bundle_is_carried(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    try:
        rig.run(2.0)
        assert rig.update.ciu is not None and rig.update.ciu.fw_id == "PMM-CIU 0.1.0"
        bundle = fake_bundle(tmp_path, "pmm-ciu-rpi4 0.2.0", 40 * FW_BLOCK_BYTES)
        assert asyncio.run(rig.update.stage(bundle)).ok
        rig.run(5.0)
        assert 3 < rig.update.blocks_sent < 40
        for key in TOKEN:
            rig.client.press(key)
        rig.client.press("ENTER")
        start = rig.clock.mono()
        while rig.state.view().screen is not Screen.RESULT:
            assert rig.clock.mono() - start < 2.0, "the token waited behind the transfer"
            rig.step()
        assert rig.applied == [TOKEN]
        line_s = 40 * FW_BLOCK_BYTES * 10 / 9600
        for _ in range(int(3 * line_s / 0.02)):
            if rig.board.reboots:
                break
            rig.step()
        assert rig.engine.installed and rig.board.reboots == [True]
        shown = rig.state.view().status.get("n")  # STATUS (every 5 s) went on between the blocks
        assert isinstance(shown, int) and shown >= 1 + int(line_s / 5.0)
        assert hashlib.sha256(rig.engine.installed_bytes).digest() == hashlib.sha256(bundle.read_bytes()).digest()
        assert not (tmp_path / "ciu" / "update" / "bundle.part").exists()  # in the slot now
        steps = [e["step"] for e in rig.events.of(ec.code("CIU_FIRMWARE_TRANSFER"))]
        assert steps == ["started", "complete"]
        assert [e["step"] for e in rig.events.of(ec.code("CIU_FIRMWARE_OUTCOME"))] == ["installed"]
    finally:
        rig.close()


def test_the_ciu_refuses_what_the_meter_let_through(tmp_path: Path) -> None:
    """The CIU checks again with its own rules: a bundle for another board is refused by the CIU
    (here the meter was configured for it), reported, and nothing is installed."""
    rig = Rig(tmp_path)
    try:
        rig.update.policy = CiuUpdatePolicy(compatible="pmm-ciu-other")
        rig.run(2.0)
        assert asyncio.run(rig.update.stage(fake_bundle(tmp_path, "pmm-ciu-other 0.2.0", 2000))).ok
        rig.run(20.0)
        refused = rig.events.of(ec.code("CIU_FIRMWARE_REFUSED"))
        assert refused[-1]["by"] == "ciu" and refused[-1]["reason"] == "hardware" and refused[-1]["to"] == "0.2.0"
        assert rig.engine.installed == [] and rig.update.job["phase"] == "done"
        assert not (tmp_path / "ciu" / "update" / "bundle.part").exists()
    finally:
        rig.close()


def test_the_ciu_rules_and_boot_verdicts() -> None:
    policy = UpdatePolicy("pmm-ciu-rpi4", min_version="0.2.0")
    assert judge("pmm-ciu-rpi4", "0.3.0", "0.2.5", policy) is None
    assert judge("pmm-ciu-rpi4", "0.2.1", "0.2.5", policy).reason == "downgrade"  # type: ignore[union-attr]
    assert judge("pmm-ciu-rpi4", "0.1.9", "0.1.0", policy).reason == "too_old"  # type: ignore[union-attr]
    assert judge("pmm1221-rpi4", "0.3.0", "0.2.5", policy).reason == "hardware"  # type: ignore[union-attr]
    assert judge("pmm-ciu-rpi4", "1.x", "0.2.5", policy).reason == "malformed"  # type: ignore[union-attr]
    allowed = UpdatePolicy("pmm-ciu-rpi4", allow_downgrade=True)
    assert judge("pmm-ciu-rpi4", "0.2.1", "0.2.5", allowed) is None
    record = TrialRecord("0.1.0", "0.2.0", "B", "ab" * 32)
    assert boot_verdict(None, "A", False) is BootVerdict.NONE
    assert boot_verdict(record, "B", True) is BootVerdict.TRIAL
    assert boot_verdict(TrialRecord(**{**record.__dict__, "starts": 1}), "B", True) is BootVerdict.RETRIAL
    assert boot_verdict(record, "A", False) is BootVerdict.ROLLED_BACK


def test_a_second_start_in_the_trial_fails_it(tmp_path: Path) -> None:
    engine, board = FakeEngine(), FakeBoard()
    (tmp_path / "update").mkdir()
    (tmp_path / "update" / "trial.json").write_text(
        '{"from_version": "0.1.0", "to_version": "0.2.0", "slot": "B", "sha256": "' + "ab" * 32 + '", "starts": 1,'
        ' "failure": ""}')
    clock = SimClock()
    updater = CiuUpdater(tmp_path, engine, board, BootInfo("B", True), UpdatePolicy("pmm-ciu-rpi4"),
                         lambda: {"ok": True}, clock.mono)
    try:
        assert updater.start() is BootVerdict.RETRIAL
        assert updater.wait_idle(10.0)
        assert engine.marks == ["mark-bad"] and board.reboots == [False]
    finally:
        updater.close()
    # the old slot then reports the failure
    old = CiuUpdater(tmp_path, FakeEngine(), FakeBoard(), BootInfo("A", False), UpdatePolicy("pmm-ciu-rpi4"),
                     lambda: {"ok": True}, clock.mono)
    try:
        assert old.start() is BootVerdict.ROLLED_BACK
        ident = old.ident()
        assert ident.outcome == "rolled_back" and "started again" in ident.outcome_detail
        assert ident.outcome_to == "0.2.0" and ident.outcome_from == "0.1.0"
    finally:
        old.close()


def test_the_meter_wires_it_and_refuses_while_no_ciu_identified(tmp_path: Path) -> None:
    """The ``ciu`` feature's routes and events: no CIU has identified itself, so a bundle is
    refused (422) before anything is verified or carried, and the refusal is in the firmware log."""
    from meterd.core.event_codes import LogId
    from meterd.core.events import EventRecorder
    from meterd.services.ciu_meter import MeterCiu
    from tests.simmeter import SimMeter

    meter = SimMeter(tmp_path / "state")
    try:
        update = meter.service(CiuUpdateService)
        assert update.on_events in meter.service(MeterCiu).listeners
        code, view = asyncio.run(meter.daemon.api.dispatch("GET", "/ciu/firmware", {}))
        assert code == 200 and view["ciu"] is None and view["job"] == {}
        bundle = fake_bundle(tmp_path, "pmm-ciu-rpi4 0.2.0", 100)
        code, answer = asyncio.run(meter.daemon.api.dispatch("POST", "/ciu/firmware/install", {"bundle": str(bundle)}))
        assert code == 422 and answer["reason"] == "ciu_unknown"
        recorder = meter.service(EventRecorder)
        assert ec.code("CIU_FIRMWARE_REFUSED") in [e.code for e in recorder.log(LogId.FIRMWARE).entries()]
    finally:
        meter.close()


def test_the_ciu_daemon_update_section() -> None:
    from ciu.app import CiuConfigError, build_updater, load_config

    config = load_config(None, {"update": {"trial_timeout_s": 60.0}})
    assert config["update"]["enabled"] is False and config["update"]["compatible"] == "pmm-ciu-rpi4"
    assert build_updater(config, MonotonicClock(), dict) is None
    with pytest.raises(CiuConfigError):
        load_config(None, {"update": {"keyring_file": "x"}})


def test_an_offer_of_the_bundle_in_its_trial_is_not_carried_again(tmp_path: Path) -> None:
    """The meter missed "rebooting" (the line went before it was acknowledged) and offers the
    bundle again: the CIU in its trial answers that it is installed, and nothing is re-sent."""
    (tmp_path / "update").mkdir()
    (tmp_path / "update" / "trial.json").write_text(
        '{"from_version": "0.1.0", "to_version": "0.2.0", "slot": "B", "sha256": "' + "ab" * 32 + '", "starts": 0,'
        ' "failure": ""}')
    updater = CiuUpdater(tmp_path, FakeEngine(), FakeBoard(), BootInfo("B", True), UpdatePolicy("pmm-ciu-rpi4"),
                         lambda: {"ok": False}, SimClock().mono)
    try:
        assert updater.start() is BootVerdict.TRIAL
        answer = updater.on_message(FwOffer(9, "ab" * 32, 5000, "0.2.0").message())
        state = FwState.parse(answer[0])
        assert state is not None and state.phase is FwPhase.REBOOTING and state.transfer == 9
        assert not (tmp_path / "update" / "bundle.part").exists()
    finally:
        updater.close()


class Manifest:
    """``rauc info --no-verify`` stand-in: the compatible and version of the first line, whoever signed."""

    async def manifest(self, bundle: Path) -> BundleInfo:
        head = bundle.read_bytes()[:64].split(b"\n")[0].decode().removeprefix("stranger ")
        if " " not in head:
            raise BundleUnreadable("format", "not a complete bundle: Invalid bundle format")
        compatible, version = head.split()
        return BundleInfo(compatible, version, "", "")


def test_the_ciu_as_a_target_of_the_dlms_image_transfer(tmp_path: Path) -> None:
    from meterd.core.firmware import RejectReason
    from meterd.services.ciu_update import CiuImageTarget
    from meterd.services.firmware_port import EngineFailure
    from meterd.services.image_target import Delivery

    rig = Rig(tmp_path)
    target = CiuImageTarget(rig.update, Manifest())
    try:
        good = fake_bundle(tmp_path, "pmm-ciu-rpi4 0.2.0", 3000)
        meters = fake_bundle(tmp_path, "pmm1221-rpi4 1.0.0", 100)
        garbage = fake_bundle(tmp_path, "nonsense", 100)
        stranger = fake_bundle(tmp_path, "stranger pmm-ciu-rpi4 0.4.0", 100)
        assert [asyncio.run(target.claims(b)) for b in (good, meters, garbage, stranger)] == [True, False, False, True]
        assert asyncio.run(target.verify(good)).reason is RejectReason.CIU_UNKNOWN  # not identified yet
        rig.run(3.0)
        verdict = asyncio.run(target.verify(good))
        assert verdict.ok and verdict.identity is not None and verdict.identity.metrology_id == "PMM-CIU 0.2.0"
        assert asyncio.run(target.verify(stranger)).reason is RejectReason.SIGNATURE
        assert rig.events.events == [] and rig.update.job == {}  # verification records and carries nothing
        with pytest.raises(EngineFailure) as refused:
            asyncio.run(target.activate(stranger, rig.clock.utc()))
        assert refused.value.recorded and rig.events.of(ec.code("CIU_FIRMWARE_REFUSED"))[-1]["reason"] == "signature"
        assert asyncio.run(target.activate(good, rig.clock.utc())).ok
        assert rig.update.job["phase"] == "carrying" and target.delivery("0.2.0") is Delivery.RUNNING
        with pytest.raises(EngineFailure) as busy:  # another while it runs: not recorded by the service
            asyncio.run(target.activate(good, rig.clock.utc()))
        assert not busy.value.recorded
        rig.update.record["job"].update(phase="done", outcome="activated")
        assert target.delivery("0.2.0") is Delivery.DONE and target.delivery("0.3.0") is Delivery.FAILED
        rig.update.record["job"].update(outcome="rolled_back")
        assert target.delivery("0.2.0") is Delivery.FAILED
    finally:
        rig.close()
