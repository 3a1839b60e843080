"""A CIU bundle sent by the head end over DLMS, with the real rauc: the gurux client's image
transfer (0-0:44.0.0.255) sends a CIU bundle built by image/rauc/build-bundle.sh over the meter's
TCP wrapper sessions; the meter sees from the bundle's compatible string that it is the CIU's,
verifies it for the CIU, and the activation (by the schedule 0-0:15.0.2.255, then by
image_activate) hands it to the CIU update service, which carries it over the simulated RS-485
line; the CIU (its simulated board: RAUC's service on a private D-Bus, the real tryboot handler)
installs it, tries it and confirms it, and the head end reads the CIU's new version at
1-1:0.2.0.255 and image_transfer_status 6; a release whose self-check fails rolls back (status 7);
a CIU bundle signed by a stranger is refused at verification with nothing carried.

In process: the whole meter (tests/simmeter.SimMeter) for DLMS and the events, its CIU update
service on the stepped two-wire line of tests/integration/test_ciu_update.py's rig."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.objects import GXDLMSActionSchedule, GXDLMSData, GXDLMSImageTransfer

from meterd.app.features.dlms import DlmsSecurity
from meterd.core import event_codes as ec
from meterd.core.event_codes import LogId
from meterd.core.events import EventRecorder
from meterd.proto.ciu_link import MsgKind
from meterd.services.ciu_update import CiuUpdateService
from meterd.services.image_transfer import ImageTransferService, Status
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError
from tests.image_transfer_client import block_count, send_blocks
from tests.integration.test_ciu_update import Rig, bundle
from tests.rauc_board import needs_rauc, signing_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = needs_rauc

READY, VERIFY_FAILED, SCHEDULED, STARTED = 17, 231, 165, 230
TRANSFER, REFUSED, OUTCOME = (ec.code(n) for n in ("CIU_FIRMWARE_TRANSFER", "CIU_FIRMWARE_REFUSED",
                                                    "CIU_FIRMWARE_OUTCOME"))


class Head:
    """The head end: the gurux client on the meter's wrapper sessions."""

    def __init__(self, meter: SimMeter) -> None:
        self.meter = meter

    def management(self) -> Client:
        store = self.meter.daemon.registry.need(DlmsSecurity, by="test").store
        return Client(self.meter, 1, int(store.last_accepted("management/in")) + 1)

    def transfer(self, image: bytes, identifier: str) -> GXDLMSImageTransfer:
        """initiate and every block (each request made just before it is sent)."""
        with self.management() as gs:
            it = GXDLMSImageTransfer()
            size = int(gs.read(it, 2))
            it.imageBlockSize = size
            gs.exchange(it.imageTransferInitiate(gs.client, identifier, len(image)))
            send_blocks(gs, it, image)
            assert int(gs.read(it, 4)) == block_count(image, size)
            return it

    def verify(self) -> Status:
        """image_verify: temporary-failure while the meter verifies, then the status."""
        with self.management() as gs:
            it = GXDLMSImageTransfer()
            with pytest.raises(DlmsClientError) as err:
                gs.exchange(it.imageVerify(gs.client))
            assert err.value.code == 2
            return Status(int(gs.read(it, 6)))

    def status(self) -> Status:
        with Client(self.meter, 17) as gs:  # the reader association reads the status
            return Status(int(gs.read(GXDLMSImageTransfer(), 6)))


class Both:
    """The meter (SimMeter: DLMS, events, the image transfer) and the CIU rig on one line: the
    meter's own CIU update service carries, on the rig's stepped two-wire line and clock."""

    def __init__(self, tmp: Path, cert: Path) -> None:
        self.rig = Rig(tmp / "rig", cert)
        state = tmp / "meter"
        state.mkdir()
        make_keys(state / "dlms-keys.toml").save()
        self.meter = SimMeter(state, ciu={"update_keyring": str(cert)})
        self.update = self.meter.service(CiuUpdateService)
        self.update.link = self.rig.meter.port  # the rig's end of the line (send, up, pending)
        self.update.mono = self.rig.clock  # its line share paced on the rig's clock
        self.rig.meter.update = self.update
        self.head = Head(self.meter)
        self.rig.run_until("the CIU identifies itself", lambda: self.update.ciu is not None, 5.0)

    def transfer_service(self) -> ImageTransferService:
        return self.meter.service(ImageTransferService)

    def until(self, what: str, done: Any, limit_s: float) -> None:
        """Step the line and the CIU (20 ms) and the meter's cycles (1 s) until ``done()``."""
        for n in range(int(limit_s / 0.02)):
            if done():
                return
            self.rig.step()
            if n % 50 == 49:
                self.meter.run(1)
        raise AssertionError(f"{what}: not within {limit_s} s; {self.update.view()}, {self.log()}")

    def log(self) -> list[tuple[int, dict[str, Any]]]:
        return [(e.code, e.detail) for e in self.meter.service(EventRecorder).log(LogId.FIRMWARE).entries()]

    def codes(self) -> list[tuple[int, str]]:
        return [(code, str(detail.get("step", ""))) for code, detail in self.log()]

    def close(self) -> None:
        self.meter.close()
        self.rig.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return signing_keys(tmp_path_factory.mktemp("keys"), "release")


@pytest.fixture
def both(tmp_path: Path, keys: tuple[Path, Path]) -> Iterator[Both]:
    b = Both(tmp_path, keys[0])
    yield b
    b.close()


def test_a_ciu_bundle_over_dlms_scheduled_carried_confirmed_then_one_rolled_back(
        both: Both, keys: tuple[Path, Path], tmp_path: Path) -> None:
    good = bundle(tmp_path, "0.2.0", *keys)
    both.head.transfer(good.read_bytes(), "any name: the manifest decides")
    assert both.head.verify() is Status.VERIFIED
    svc = both.transfer_service()
    assert svc.target == "ciu" and svc.image_version == "0.2.0"
    ready = both.log()[-1]
    assert ready[0] == READY and ready[1]["target"] == "ciu" and ready[1]["version"] == "0.2.0"

    # activation at a time written to the schedule (the meter's local time), run by the meter clock
    local = svc.legal().local(both.meter.clock.utc()).wall
    when = (local + dt.timedelta(seconds=30)).replace(microsecond=0)
    with both.head.management() as gs:
        sched = GXDLMSActionSchedule("0.0.15.0.2.255")
        sched.executionTime = [GXDateTime(when)]
        gs.write(sched, 4)
    both.meter.run(25)
    assert svc.status is Status.VERIFIED and not both.update.job  # not yet due: nothing carried
    both.meter.run(6)
    assert svc.status is Status.ACTIVATING and both.update.job["phase"] == "carrying"
    assert both.update.job["to"] == "0.2.0" and both.update.job["size"] == good.stat().st_size

    both.until("carried, installed and confirmed by the CIU", lambda: svc.status is not Status.ACTIVATING, 60.0)
    assert svc.status is Status.ACTIVATED and both.head.status() is Status.ACTIVATED
    assert both.rig.board.booted().slot == "B" and both.rig.ciu.updater.version == "0.2.0"
    assert [c for c in both.codes() if c[0] in (STARTED, READY, SCHEDULED, TRANSFER, REFUSED, OUTCOME)] == [
        (STARTED, ""), (READY, ""), (SCHEDULED, ""), (TRANSFER, "started"), (TRANSFER, "complete"),
        (OUTCOME, "installed"), (OUTCOME, "activated")]
    assert not (tmp_path / "rig" / "meter").exists()  # the meter's service carried, not the rig's own
    with Client(both.meter, 17) as gs:
        assert bytes(gs.read_raw(GXDLMSData("1.1.0.2.0.255"), 2)) == b"PMM-CIU 0.2.0"
        assert bytes(gs.read_raw(GXDLMSData("1.1.0.2.8.255"), 2)).hex() == both.rig.ciu.updater.signature

    # a release whose self-check fails on the CIU (its display down), activated by image_activate
    both.rig.display_ok = False
    both.head.transfer(bundle(tmp_path, "0.3.0", *keys, kb=2).read_bytes(), "ciu-0.3.0")
    assert both.head.verify() is Status.VERIFIED
    with both.head.management() as gs:
        with pytest.raises(DlmsClientError) as err:
            gs.exchange(GXDLMSImageTransfer().imageActivate(gs.client))
        assert err.value.code == 2  # temporary failure: carried, then tried by the CIU
    assert svc.status is Status.ACTIVATING
    both.until("rolled back by the CIU", lambda: svc.status is not Status.ACTIVATING, 60.0)
    assert svc.status is Status.ACTIVATION_FAILED and both.head.status() is Status.ACTIVATION_FAILED
    rolled = both.log()[-1]
    assert rolled[0] == OUTCOME and rolled[1]["step"] == "rolled_back" and rolled[1]["to"] == "0.3.0"
    assert both.rig.ciu.updater.version == "0.2.0" and both.rig.board.booted().slot == "B"
    with both.head.management() as gs, pytest.raises(DlmsClientError):
        gs.exchange(GXDLMSImageTransfer().imageActivate(gs.client))  # asked again: other-reason


def test_a_ciu_bundle_signed_by_a_stranger_is_refused_at_verify_nothing_carried(
        both: Both, tmp_path: Path) -> None:
    stranger = signing_keys(tmp_path / "stranger", "stranger")
    both.head.transfer(bundle(tmp_path, "0.4.0", *stranger).read_bytes(), "ciu-0.4.0")
    assert both.head.verify() is Status.VERIFY_FAILED
    code, detail = both.log()[-1]
    assert code == VERIFY_FAILED and detail["target"] == "ciu" and detail["reason"] == "signature"
    with both.head.management() as gs, pytest.raises(DlmsClientError):
        gs.exchange(GXDLMSImageTransfer().imageActivate(gs.client))
    both.rig.steps(2.0)
    assert not any(m.kind in (MsgKind.FW_OFFER, MsgKind.FW_BLOCK) for m in both.rig.meter.sent)
    assert not both.update.job and not both.update.files.bundle_path.exists()
    assert [c for c, _ in both.codes() if c in (TRANSFER, REFUSED, OUTCOME)] == []
