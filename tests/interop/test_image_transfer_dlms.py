"""Firmware image transfer over DLMS with the gurux client's image transfer (a client we did not
write): the whole simulated meter in-process with a fake update engine, on the TCP wrapper and on
HDLC; an interrupted transfer resumed after a restart of meterd; verification polled; the
activation scheduled over DLMS and run by the meter clock; only the management association may
transfer."""

from __future__ import annotations

import datetime as dt
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.enums import DataType
from gurux_dlms.objects import GXDLMSActionSchedule, GXDLMSData, GXDLMSImageTransfer, GXDLMSScriptTable

from meterd.app import features
from meterd.app.features.dlms import DlmsSecurity, session_factory
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.services.firmware_port import FirmwareInstaller
from meterd.services.image_transfer import ImageTransferService, Status
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError, GuruxSession, InMemoryTransport, make_client
from tests.fakes import FakeInstaller
from tests.image_transfer_client import send_blocks
from tests.simmeter import SimMeter

pytestmark = pytest.mark.interop

BUNDLE = bytes((i * 7 + i // 256) & 0xFF for i in range(9000))  # 18 blocks of 512 (the last 296)
IDENT = b"pmm1221-1.1.0"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeInstaller:
    """A fake update engine provided by the ``firmware`` feature in place of the RAUC engine."""
    fake = FakeInstaller()

    def attach(ctx: Any) -> None:
        ctx.registry.provide(FirmwareInstaller, fake, by="firmware")  # type: ignore[type-abstract]

    module = types.SimpleNamespace(SECTION=features.firmware.SECTION, attach=attach)  # in place of the RAUC engine
    modules = [(n, module if n == "firmware" else m) for n, m in features.MODULES]
    monkeypatch.setattr(features, "MODULES", tuple(modules))
    return fake


def new_meter(state_dir: Path) -> SimMeter:
    """The simulated meter on ``state_dir`` with the tests' DLMS keys."""
    if not (state_dir / "dlms-keys.toml").exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        make_keys(state_dir / "dlms-keys.toml").save()
    return SimMeter(state_dir)


def client(meter: SimMeter, sap: int, link: str = "wrapper") -> GuruxSession:
    """A gurux association on a fresh in-memory session of the meter's own registry: the TCP
    wrapper, RS-485 HDLC, or the optical port's HDLC (after its mode E sign-on, which the serial
    runtime does and tests/interop/test_dlms_optical.py covers)."""
    ctx = meter.daemon.context()
    names = {"wrapper": ("wrapper", "tcp"), "hdlc": ("hdlc", "rs485"), "optical": ("hdlc", "optical")}
    session = session_factory(ctx, *names[link])()
    store = meter.daemon.registry.need(DlmsSecurity, by="test").store
    transport = InMemoryTransport(session)
    gs = GuruxSession(make_client(sap, hdlc=link != "wrapper", invocation_counter=store.last_accepted("management/in") + 1),
                      transport.send, transport.receive)
    gs.connect()
    return gs


def firmware_log(meter: SimMeter) -> list[int]:
    return [e.code for e in meter.service(EventRecorder).log(LogId.FIRMWARE).entries()]


@pytest.fixture
def meter(tmp_path: Path, engine: FakeInstaller) -> Iterator[SimMeter]:
    m = new_meter(tmp_path / "m")
    yield m
    m.close()


@pytest.mark.parametrize("link", ["wrapper", "hdlc", "optical"])
def test_transfer_interrupted_resumed_after_restart_verified_and_activated_on_schedule(
        tmp_path: Path, engine: FakeInstaller, link: str):
    meter = new_meter(tmp_path / "m")
    gs = client(meter, 1, link)
    it = GXDLMSImageTransfer()
    assert gs.read(it, 2) == 512 and gs.read(it, 5) is True
    gs.exchange(it.imageTransferInitiate(gs.client, IDENT.decode(), len(BUNDLE)))
    send_blocks(gs, it, BUNDLE, 0, 7)
    assert gs.read(it, 4) == 7
    gs.close()
    meter.close()  # meterd stops in the middle of the transfer

    meter = new_meter(tmp_path / "m")
    try:
        gs = client(meter, 1, link)
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        first = int(gs.read(it, 4))
        assert first == 7 and int(gs.read(it, 6)) == Status.INITIATED
        send_blocks(gs, it, BUNDLE, first)
        assert gs.read(it, 4) == 18
        status = gs.read_raw(it, 3)
        assert str(status) == "1" * 18  # every block transferred
        with pytest.raises(DlmsClientError) as err:
            gs.exchange(it.imageVerify(gs.client))
        assert err.value.code == 2  # temporary failure: the engine runs; the status tells
        assert int(gs.read(it, 6)) == Status.VERIFIED
        gs.exchange(it.imageVerify(gs.client))  # asked again: success
        info = gs.read_raw(it, 7)
        assert info[0][0] == len(BUNDLE) and bytes(info[0][1]) == IDENT and bytes(info[0][2]) == b"\xbb" * 32
        assert engine.calls[0][0] == "verify" and engine.calls[0][2] == len(BUNDLE)
        assert (meter.service(ImageTransferService).files.image_path.read_bytes()) == BUNDLE

        # activation scheduled over DLMS in a minute's time, local time (sim.toml's clock rules);
        # the schedule's arithmetic over months of meter time is in the unit tests
        sched = GXDLMSActionSchedule("0.0.15.0.2.255")
        local = meter.service(ImageTransferService).legal().local(meter.clock.utc()).wall
        when = (local + dt.timedelta(seconds=60)).replace(microsecond=0)
        sched.executionTime = [GXDateTime(when)]
        gs.write(sched, 4)
        gs.close()
        due = meter.service(ImageTransferService).runner.next_utc
        assert due is not None and meter.service(ImageTransferService).legal().local(due).wall == when
        meter.run((due - meter.clock.utc()).total_seconds() - 2)
        assert meter.service(ImageTransferService).status is Status.VERIFIED
        meter.run(3)
        assert meter.service(ImageTransferService).status is Status.ACTIVATED
        assert [c[0] for c in engine.calls] == ["verify", "activate"]
        assert firmware_log(meter) == [230, 166, 17, 165]  # installed / activated (160, 18): the engine's
        gs = client(meter, 17, link)
        assert int(gs.read(GXDLMSImageTransfer(), 6)) == Status.ACTIVATED
        assert bytes(gs.read_raw(GXDLMSData("1.0.0.2.0.255"), 2)) == b"PMM-CORE 1.1"
        assert bytes(gs.read_raw(GXDLMSData("1.0.0.2.8.255"), 2)) == b"\xbb" * 32
        assert bytes(gs.read_raw(GXDLMSData("0.0.0.2.0.255"), 2)) == b"1.1.0"
        gs.close()
    finally:
        meter.close()


def test_only_management_may_transfer(meter: SimMeter, engine: FakeInstaller):
    gs = client(meter, 17)
    it = GXDLMSImageTransfer()
    assert gs.read(it, 2) == 512  # the reader reads
    it.imageBlockSize = 512
    with pytest.raises(DlmsClientError) as err:
        gs.exchange(it.imageTransferInitiate(gs.client, IDENT.decode(), len(BUNDLE)))
    assert err.value.code == 3  # read-write-denied
    with pytest.raises(DlmsClientError):
        gs.method(GXDLMSScriptTable("0.0.10.0.107.255"), 1, 1, DataType.UINT16)
    sched = GXDLMSActionSchedule("0.0.15.0.2.255")
    sched.executionTime = [GXDateTime(dt.datetime(2026, 3, 1, 3, 0))]
    with pytest.raises(DlmsClientError):
        gs.write(sched, 4)
    gs.close()
    gs = client(meter, 16)
    with pytest.raises(DlmsClientError):
        gs.read(GXDLMSImageTransfer(), 6)  # not visible to the public client
    gs.close()
    assert meter.service(ImageTransferService).status is Status.NOT_INITIATED and not engine.calls
    assert firmware_log(meter) == []


def test_refused_bundle_and_activation_by_the_script(meter: SimMeter, engine: FakeInstaller):
    from meterd.core.firmware import BundleVerdict, RejectReason

    gs = client(meter, 1)
    it = GXDLMSImageTransfer()
    gs.read(it, 2)
    gs.exchange(it.imageTransferInitiate(gs.client, IDENT.decode(), len(BUNDLE)))
    send_blocks(gs, it, BUNDLE, 0)
    engine.verdict = BundleVerdict(None, RejectReason.DOWNGRADE, "1.0.0 is older than the running 1.1.0")
    with pytest.raises(DlmsClientError):
        gs.exchange(it.imageVerify(gs.client))
    assert int(gs.read(it, 6)) == Status.VERIFY_FAILED
    with pytest.raises(DlmsClientError) as err:
        gs.method(GXDLMSScriptTable("0.0.10.0.107.255"), 1, 1, DataType.UINT16)
    assert err.value.code == 250  # nothing verified to activate
    gs.close()
    recorder = meter.service(EventRecorder)
    refused = [e for e in recorder.log(LogId.FIRMWARE).entries() if e.code == 231]
    assert refused and refused[0].detail["reason"] == "downgrade"
    assert [c[0] for c in engine.calls] == ["verify"]


def test_hdlc_at_9600_bd_on_a_paced_line_dropped_and_resumed(tmp_path: Path, engine: FakeInstaller):
    """The meter's RS-485 HDLC link on a pty pair paced at 9600 Bd (10 bit times a character,
    each way); the client's line is dropped after two blocks (no release, no DISC), a new
    association initiates the same image again and sends the rest."""
    from hw.serial_link import PtyWire
    from meterd.runtime.dlms_serial import SerialLink
    from tests.dlms_harness import LoopThread, PtyIO

    image = BUNDLE[:2000]  # 4 blocks: about 3 s of line time at 9600 Bd
    meter = new_meter(tmp_path / "m")
    loop = LoopThread()
    wire = PtyWire(baud=9600)
    try:
        link = loop.run(SerialLink(session_factory(meter.daemon.context(), "hdlc", "rs485"), wire.path_a, 9600).start())
        store = meter.daemon.registry.need(DlmsSecurity, by="test").store

        def associate() -> tuple[GuruxSession, PtyIO]:
            io = PtyIO(wire.path_b)
            gs = GuruxSession(make_client(1, hdlc=True, invocation_counter=store.last_accepted("management/in") + 1),
                              io.send, io.receive)
            gs.connect()
            return gs, io

        gs, io = associate()
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        gs.exchange(it.imageTransferInitiate(gs.client, IDENT.decode(), len(image)))
        send_blocks(gs, it, image, 0, 2)
        io.close()  # the line drops
        service = meter.service(ImageTransferService)
        assert service.files.count() == 2
        gs, io = associate()
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        gs.exchange(it.imageTransferInitiate(gs.client, IDENT.decode(), len(image)))
        first = int(gs.read(it, 4))
        assert first == 2
        send_blocks(gs, it, image, first)
        with pytest.raises(DlmsClientError):
            gs.exchange(it.imageVerify(gs.client))  # temporary failure while the engine verifies
        for _ in range(50):  # the engine's task runs on the link's event loop
            if int(gs.read(it, 6)) != Status.VERIFYING:
                break
        assert int(gs.read(it, 6)) == Status.VERIFIED
        gs.close()
        io.close()
        assert service.files.image_path.read_bytes() == image
        assert firmware_log(meter) == [230, 166, 17]
    finally:
        loop.run(link.close())
        loop.stop()
        wire.close()
        meter.close()
