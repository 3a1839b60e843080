"""The firmware update over DLMS end to end, both real halves together: the launcher
(meterd.app.simrun) boots the simulated board with the real rauc and its service; the gurux
client's image transfer (a client we did not write) sends a signed bundle over the TCP wrapper
in a management association (HLS-GMAC, authenticated and encrypted).

The transfer is interrupted twice, by a dropped connection and by meterd restarted (the board
powered off and on), and resumes at image_first_not_transferred_block_number; verified by
rauc; activated by the activation schedule 0-0:15.0.2.255 written over DLMS; the board reboots
into the new slot with tryboot, the self-check passes (energy registers continuous included),
the new version is read back over DLMS. Then a bundle signed by a stranger is transferred and
verified over DLMS: refused with its reason in the firmware log, nothing installed, and its
activation refused.

Then the same engine over the RS-485 HDLC link: a bundle activated by image_activate itself,
and an older bundle refused as a downgrade.

Short on purpose: bundles of about 9.5 kB (19 blocks of 512 octets), the meter at ten times
real time; three starts of meterd in the first test, two in the second.
"""

from __future__ import annotations

import datetime as dt
import random
import socket
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms import GXDateTime
from gurux_dlms.objects import GXDLMSActionSchedule, GXDLMSClock, GXDLMSData, GXDLMSImageTransfer

from meterd.services.image_transfer import Status
from tests.dlms_gurux_client import DlmsClientError, GuruxSession
from tests.dlms_harness import PtyIO, SocketIO
from tests.image_transfer_client import ManagementLine, status, until
from tests.rauc_board import Launcher, build_bundle, needs_rauc, signing_keys, slot_bytes, start_board

pytestmark = [needs_rauc, pytest.mark.interop]

ROOTFS = random.Random(1221).randbytes(4096)  # the slot image in the bundle: incompressible, the same each run


class Management(ManagementLine):
    """Management associations (client SAP 1) over the TCP wrapper (``where`` host:port) or HDLC
    (``where`` the pty), each started as a head end starts one (:class:`ManagementLine`)."""

    def __init__(self, hdlc: bool = False) -> None:
        super().__init__(hdlc)

    def _io(self, where: str) -> SocketIO | PtyIO:
        return PtyIO(where, timeout=30.0) if self.hdlc else SocketIO(int(where.rsplit(":", 1)[1]), timeout=30.0)

    def open(self, where: str) -> GuruxSession:
        return self.associate(lambda: self._io(where))

    def drop(self) -> None:
        """The line drops: no release, the socket just closes."""
        assert isinstance(self.io, SocketIO) and self.gs is not None
        self.counter = self.gs.client.ciphering.invocationCounter + 1
        self.io.sock.shutdown(socket.SHUT_RDWR)
        self.io.close()


def firmware_log(meter: Launcher, since: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
    return [(e["code"], e["name"], e["detail"]) for e in meter.firmware_events()[since:]]


def test_bundle_over_the_wrapper_interrupted_resumed_scheduled_confirmed_then_a_stranger_refused(
        tmp_path: Path) -> None:
    cert, key = signing_keys(tmp_path / "keys", "signing")
    stranger_cert, stranger_key = signing_keys(tmp_path / "keys", "stranger")
    (tmp_path / "rootfs.img").write_bytes(ROOTFS)
    good = build_bundle(tmp_path / "good.raucb", "1.1.0", cert, key, rootfs=tmp_path / "rootfs.img").read_bytes()
    bad = build_bundle(tmp_path / "bad.raucb", "1.2.0", stranger_cert, stranger_key,
                       rootfs=tmp_path / "rootfs.img").read_bytes()
    meter = start_board(tmp_path, cert)
    dlms = Management()
    board = tmp_path / "state" / "firmware-sim"
    try:
        # the transfer begins; the line drops after 5 blocks
        gs = dlms.open(meter.link("dlms_tcp"))
        it = GXDLMSImageTransfer()
        assert gs.read(it, 2) == 512 and gs.read(it, 5) is True
        dlms.send(it.imageTransferInitiate(gs.client, "pmm1221-1.1.0", len(good)))
        packets = it.imageBlockTransfer(gs.client, good, [0])
        assert len(packets) == -(-len(good) // 512) > 12
        for packet in packets[:5]:
            dlms.send(packet)
        dlms.drop()

        # a new association: the same image initiated again goes on where it stopped
        gs = dlms.open(meter.link("dlms_tcp"))
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        dlms.send(it.imageTransferInitiate(gs.client, "pmm1221-1.1.0", len(good)))
        assert int(gs.read(it, 4)) == 5
        packets = it.imageBlockTransfer(gs.client, good, [0])
        for packet in packets[5:12]:
            dlms.send(packet)
        dlms.close()
        before = meter.registers()

        # meterd restarted (the board powered off and on): the blocks are on the data partition
        meter.stop()
        meter = Launcher(tmp_path, meter.config)
        meter.wait("power on", lambda v: v["engine"] == "rauc" and v["slot"] == "A")
        gs = dlms.open(meter.link("dlms_tcp"))
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        first = int(gs.read(it, 4))
        assert first == 12 and status(gs) is Status.INITIATED
        dlms.send(it.imageTransferInitiate(gs.client, "pmm1221-1.1.0", len(good)))
        packets = it.imageBlockTransfer(gs.client, good, [0])
        for packet in packets[first:]:
            dlms.send(packet)
        assert int(gs.read(it, 4)) == len(packets) and str(gs.read_raw(it, 3)) == "1" * len(packets)

        # rauc verifies it: temporary failure while it runs, the status tells, then success
        with pytest.raises(DlmsClientError) as err:
            dlms.send(it.imageVerify(gs.client))
        assert err.value.code == 2
        until("verified", lambda: status(gs) is not Status.VERIFYING)
        assert status(gs) is Status.VERIFIED
        dlms.send(it.imageVerify(gs.client))
        info = gs.read_raw(it, 7)
        assert info[0][0] == len(good) and bytes(info[0][1]) == b"pmm1221-1.1.0" and len(info[0][2]) == 32
        declared = bytes(info[0][2])  # the bundle's metrology SHA-256, as rauc read its manifest
        assert bytes(gs.read_raw(GXDLMSData("0.0.0.2.0.255"), 2)) == b"0.1.0"

        # activation at the meter's local time + 40 s (4 s here: its clock runs ten times as fast)
        now = gs.read(GXDLMSClock(), 2)
        when = (now.value.replace(tzinfo=None) + dt.timedelta(seconds=40)).replace(microsecond=0)
        sched = GXDLMSActionSchedule("0.0.15.0.2.255")
        sched.executionTime = [GXDateTime(when)]
        gs.write(sched, 4)
        dlms.close()

        # the schedule comes due: rauc installs to B, the board reboots into it, the self-check passes
        confirmed = meter.wait("the update confirmed", lambda v: v["version"] == "1.1.0" and v["phase"] == "idle"
                               and v["outcome"] == "confirmed")
        assert confirmed["slot"] == "B" and confirmed["primary"] == "B"
        assert confirmed["slots"]["B"]["boot_status"] == "good"
        after = meter.registers()
        for name, value in before.items():  # continued: never below what the old slot showed
            assert after[name] >= value, name
        log = firmware_log(meter)
        assert [c for c, _, _ in log] == [230, 166, 166, 17, 165, 160, 233, 18], log
        assert log[4][2]["identifier"] == "pmm1221-1.1.0"
        assert "energy_continuity" in str(log[6][2]["checks"])
        assert log[7][2]["from_version"] == "0.1.0" and log[7][2]["to_version"] == "1.1.0"

        # the new slot answers over DLMS: its release version, its software identification (both
        # simulated slots run this tree's code: the identifier is the code's, its SHA-256 the one
        # the bundle declared), the transfer's outcome
        gs = dlms.open(meter.link("dlms_tcp"))
        assert bytes(gs.read_raw(GXDLMSData("0.0.0.2.0.255"), 2)) == b"1.1.0"
        assert bytes(gs.read_raw(GXDLMSData("1.0.0.2.0.255"), 2)) == confirmed["metrology_id"].encode()
        assert bytes(gs.read_raw(GXDLMSData("1.0.0.2.8.255"), 2)) == declared
        assert status(gs) is Status.ACTIVATED

        # a bundle signed by a stranger: transferred, refused at verification, nothing installed
        slots = slot_bytes(board)
        events = len(meter.firmware_events())
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        dlms.send(it.imageTransferInitiate(gs.client, "pmm1221-1.2.0", len(bad)))
        for packet in it.imageBlockTransfer(gs.client, bad, [0]):
            dlms.send(packet)
        with pytest.raises(DlmsClientError):
            dlms.send(it.imageVerify(gs.client))
        until("verification over", lambda: status(gs) is not Status.VERIFYING)
        assert status(gs) is Status.VERIFY_FAILED
        with pytest.raises(DlmsClientError) as err:
            dlms.send(it.imageActivate(gs.client))
        assert err.value.code == 250  # other-reason: nothing verified to activate
        dlms.close()
        log = firmware_log(meter, events)
        assert [c for c, _, _ in log] == [230, 231], log
        assert log[1][2]["reason"] == "signature" and "signature" in str(log[1][2]["detail"]), log
        assert slot_bytes(board) == slots
        view = meter.wait("still running", lambda v: v["phase"] == "idle")
        assert view["version"] == "1.1.0" and view["slot"] == "B" and view["primary"] == "B"
    finally:
        meter.stop()


def test_bundle_over_hdlc_activated_at_once_then_a_downgrade_refused(tmp_path: Path) -> None:
    """The RS-485 HDLC link of the simulated meter (its pty, info fields of 128 octets; the pty
    is not paced to the line's 9600 Bd: the paced line is tested with a stand-in engine in
    tests/interop/test_image_transfer_dlms.py): the good bundle transferred, verified and
    activated by image_activate itself; the new slot confirmed; then an older bundle signed by
    the right key refused as a downgrade."""
    cert, key = signing_keys(tmp_path / "keys", "signing")
    (tmp_path / "rootfs.img").write_bytes(ROOTFS)
    good = build_bundle(tmp_path / "good.raucb", "1.1.0", cert, key, rootfs=tmp_path / "rootfs.img").read_bytes()
    older = build_bundle(tmp_path / "older.raucb", "1.0.0", cert, key, rootfs=tmp_path / "rootfs.img").read_bytes()
    meter = start_board(tmp_path, cert)
    dlms = Management(hdlc=True)
    board = tmp_path / "state" / "firmware-sim"
    try:
        gs = dlms.open(meter.link("dlms_hdlc"))
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        dlms.send(it.imageTransferInitiate(gs.client, "pmm1221-1.1.0", len(good)))
        dlms.send_blocks(it, good)
        with pytest.raises(DlmsClientError):
            dlms.send(it.imageVerify(gs.client))
        until("verified", lambda: status(gs) is not Status.VERIFYING)
        assert status(gs) is Status.VERIFIED
        with pytest.raises(DlmsClientError) as err:
            dlms.send(it.imageActivate(gs.client))  # rauc installs; the meter restarts into slot B
        assert err.value.code == 2
        dlms.io.close()  # type: ignore[union-attr]  the meter is gone: no release
        confirmed = meter.wait("the update confirmed", lambda v: v["version"] == "1.1.0" and v["phase"] == "idle"
                               and v["outcome"] == "confirmed")
        assert confirmed["slot"] == "B" and confirmed["primary"] == "B"
        assert [c for c, _, _ in firmware_log(meter)] == [230, 17, 160, 233, 18]

        gs = dlms.open(meter.link("dlms_hdlc"))
        assert bytes(gs.read_raw(GXDLMSData("0.0.0.2.0.255"), 2)) == b"1.1.0"
        assert status(gs) is Status.ACTIVATED
        slots = slot_bytes(board)
        events = len(meter.firmware_events())
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        dlms.send(it.imageTransferInitiate(gs.client, "pmm1221-1.0.0", len(older)))
        dlms.send_blocks(it, older)
        with pytest.raises(DlmsClientError):
            dlms.send(it.imageVerify(gs.client))
        until("verification over", lambda: status(gs) is not Status.VERIFYING)
        assert status(gs) is Status.VERIFY_FAILED
        dlms.close()
        log = firmware_log(meter, events)
        assert [c for c, _, _ in log] == [230, 231] and log[1][2]["reason"] == "downgrade", log
        assert slot_bytes(board) == slots
    finally:
        meter.stop()
