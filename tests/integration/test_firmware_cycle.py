"""The firmware cycle over the meter's serial DLMS links, with the real rauc and its service:
the launcher (meterd.app.simrun) boots the simulated board; the gurux client (a client we did
not write) does the image transfer in a management association (HLS-GMAC, authenticated and
encrypted).

* **RS-485 HDLC on a line paced at 9600 Bd**: the meter's HDLC port is one end of a pty pair
  whose bytes are forwarded one character time (10 bit / 9600 Bd) apart, each way
  (``hw.serial_link.PtyWire``). The transfer is interrupted (the line drops, no DISC) and
  resumed from ``image_first_not_transferred_block_number``; rauc verifies; ``image_activate``
  installs to the other slot and the board reboots into it.
* **A trial that fails its self-check** (the simulated chip silent from the trial's start: a
  scenario the test adds to the configuration just before the activation): the board falls back
  to the old slot; the rollback is read back over DLMS (the running version 0-0:0.2.0.255,
  image_transfer_status 7, the firmware log 0-0:99.98.6.255 and its last code 0-0:96.11.6.255),
  the versions in the firmware log's detail.
* **The optical port** (local upgrade, long form): IEC 62056-21 mode E sign-on (``/?!``, the
  meter's identification, the option select ``ACK 2 5 2``), then HDLC.
* Across each step: the energy registers continued (never below what the old slot showed), the
  credit account and its tokens the same, the load profile's rows kept, every event kept.

The short form (unmarked): a bundle of about 4.8 kB (10 blocks of 512 octets, EC-signed) on the
paced line, dropped and resumed, activated; its trial fails and rolls back. The long form
(slow): a 64 KiB root file system on the paced line, interrupted by a dropped line and a restart
of meterd, confirmed; then the optical port's local upgrade, whose trial fails and rolls back.
"""

from __future__ import annotations

import random
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms.objects import GXDLMSData, GXDLMSImageTransfer, GXDLMSProfileGeneric

from hw.serial_link import PtyWire
from meterd.services.image_transfer import Status
from tests.dlms_fakes import make_keys
from tests.dlms_gurux_client import DlmsClientError, GuruxSession
from tests.dlms_harness import PtyIO
from tests.image_transfer_client import ManagementLine, status, until
from tests.rauc_board import Launcher, build_bundle, needs_rauc, slot_bytes
from tests.simmeter import sim_config_file

pytestmark = [needs_rauc, pytest.mark.interop]

IDENT_E = re.compile(rb"^/[A-Z]{3}5\\2[ -~]{1,16}\r\n$")  # mode E identification, 9600 Bd offered


def ec_keys(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate and its key: a smaller signature than RSA on a slow line."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "signing.cert.pem", directory / "signing.key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "30", "-subj", "/O=test/CN=signing", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class Association(ManagementLine):
    """Management associations (client SAP 1) on one serial line (a pty path), optionally after
    the optical port's mode E sign-on; the invocation counter read from 0-0:43.1.3.255 first."""

    def __init__(self, path: str, optical: bool) -> None:
        super().__init__(hdlc=True)
        self.path = path
        self.optical = optical

    def _line(self) -> PtyIO:
        io = PtyIO(self.path, timeout=30.0)
        if self.optical:
            sign_on(io)
        return io

    def open(self) -> GuruxSession:
        return self.associate(self._line)

    def drop(self) -> None:
        """The line drops (or the meter went away): no release, no DISC."""
        assert self.io is not None and self.gs is not None
        self.counter = self.gs.client.ciphering.invocationCounter + 1
        self.io.close()
        self.io = self.gs = None


def sign_on(io: PtyIO) -> None:
    """IEC 62056-21 mode E: request, the meter's identification, option select HDLC at 9600 Bd."""
    io.send(b"/?!\r\n")
    answer = b""
    while not answer.endswith(b"\r\n"):
        answer += io.receive()
    assert IDENT_E.match(answer), answer
    ack = b"\x06252\r\n"
    io.send(ack)
    # the client's side of the switch (as IEC 62056-21 clients do): the option select's own line
    # time at 300 Bd and a margin, which a pty does not take, before HDLC begins at 9600 Bd 8N1
    time.sleep(len(ack) * 10 / 300 + 0.05)


@dataclass(frozen=True)
class Kept:
    """What an update must not lose: registers, credit, load profile rows, every event."""

    registers: dict[str, Any]
    credit: dict[str, Any]
    profile: list[str]
    events: dict[str, list[tuple[int, str]]]


LOGS = ("standard", "firmware", "token", "fraud", "security")


def kept(meter: Launcher) -> Kept:
    events = {}
    for log in LOGS:
        code, answer = meter.api("POST", "/events", {"limit": 500, "log": log})
        assert code == 200, answer
        events[log] = [(e["code"], e["utc"]) for e in reversed(answer["events"])]
    return Kept(meter.registers(), meter.api("GET", "/credit")[1],
                [r["utc"] for r in meter.api("GET", "/load-profile")[1]["rows"]], events)


def assert_continued(before: Kept, after: Kept) -> None:
    for name, value in before.registers.items():
        assert after.registers[name] >= value, name
    assert after.credit["token_seq"] == before.credit["token_seq"]
    assert after.credit["consumed"] >= before.credit["consumed"]
    assert set(before.profile) <= set(after.profile) or after.profile[0] > before.profile[-1]
    for log, entries in before.events.items():  # every event still there, in order, before the new ones
        assert after.events[log][:len(entries)] == entries, log


@pytest.fixture
def wires() -> Iterator[dict[str, PtyWire]]:
    made = {"hdlc": PtyWire(baud=9600)}
    yield made
    for wire in made.values():
        wire.close()


def start(tmp_path: Path, cert: Path, hdlc: str, optical: str) -> Launcher:
    """The launcher on a new state directory whose board trusts ``cert``; slot A runs 0.1.0;
    the meter's HDLC and optical ports on the given devices."""
    (tmp_path / "state").mkdir()
    make_keys(tmp_path / "state" / "dlms-keys.toml").save()
    config = sim_config_file(tmp_path, sim_keyring=f'"{cert}"', self_check_cycles="3", reboot_delay_s="0.2",
                             port='"off"', hdlc_port=f'"{hdlc}"', optical_port=f'"{optical}"',
                             # a pty has no kernel RS-485 mode; a frame the paced line's thread
                             # leaves unfinished on a loaded machine is not dropped before 5 s
                             hdlc_baud='9600\nhdlc_direction = "auto"\nhdlc_inter_octet_ms = 5000')
    meter = Launcher(tmp_path, config)
    first = meter.wait("first start", lambda v: v["engine"] == "rauc")
    assert first["slot"] == "A" and first["version"] == "0.1.0" and first["outcome"] == "none"
    return meter


def chip_silent_from_each_start(config: Path, scenario: Path) -> None:
    """From the next start of meterd on, the simulated chip's SPI bus times out for 30 s of meter
    time (3 s here): a trial boot's self-check finds the chip silent; the old slot rides it out."""
    scenario.write_text('[[events]]\nat_s = 0.0\nsignal = "chip_fault"\n'
                        'value = { kind = "spi_timeout", duration_s = 30 }\n')
    text = config.read_text()
    assert "\n# scenario = " in text
    config.write_text(text.replace("\n# scenario = ", f'\nscenario = "{scenario}"\n# scenario = ', 1))


def transfer(line: Association, image: bytes, identifier: str, drop_after: int | None = None,
             between: Callable[[], None] | None = None) -> GuruxSession:
    """image_transfer_initiate and every block of ``image``; after ``drop_after`` blocks the line
    drops, ``between`` runs (a restart of meterd), and a new association initiates the same image
    again and goes on from image_first_not_transferred_block_number."""
    gs = line.open()
    it = GXDLMSImageTransfer()
    assert gs.read(it, 2) == 512 and gs.read(it, 5) is True
    count = -(-len(image) // 512)
    line.send(it.imageTransferInitiate(gs.client, identifier, len(image)))
    if drop_after is not None:
        line.send_blocks(it, image, 0, drop_after)
        line.drop()
        if between is not None:
            between()
        gs = line.open()
        it = GXDLMSImageTransfer()
        gs.read(it, 2)
        line.send(it.imageTransferInitiate(gs.client, identifier, len(image)))
        assert int(gs.read(it, 4)) == drop_after
    line.send_blocks(it, image, int(gs.read(it, 4)))
    assert int(gs.read(it, 4)) == count and str(gs.read_raw(it, 3)) == "1" * count
    return gs


def verify_and_activate(line: Association, gs: GuruxSession) -> None:
    """image_verify (temporary failure while rauc checks the bundle, then the status), then
    image_activate: rauc installs to the other slot and the board reboots into it."""
    it = GXDLMSImageTransfer()
    gs.read(it, 2)
    with pytest.raises(DlmsClientError) as err:
        line.send(it.imageVerify(gs.client))
    assert err.value.code == 2
    until("verified", lambda: status(gs) is not Status.VERIFYING)
    assert status(gs) is Status.VERIFIED
    with pytest.raises(DlmsClientError) as err:
        line.send(it.imageActivate(gs.client))
    assert err.value.code == 2
    line.drop()  # the meter is gone: no release


def read_back_rollback(meter: Launcher, line: Association, running: str, tried: str, since: int) -> None:
    """After a trial that failed its self-check: the board on the old slot, and over DLMS the
    running version, image_transfer_status 7 (the activated image did not stay), the firmware
    log 0-0:99.98.6.255 and its last code 0-0:96.11.6.255; the versions in the log's detail."""
    back = meter.wait("the rollback", lambda v: v["outcome"] == "rolled_back" and v["phase"] == "idle")
    assert back["version"] == running and back["primary"] == back["slot"]
    other = "A" if back["slot"] == "B" else "B"
    assert back["slots"][other]["boot_status"] == "bad"
    gs = line.open()
    assert bytes(gs.read_raw(GXDLMSData("0.0.0.2.0.255"), 2)) == running.encode()
    assert status(gs) is Status.ACTIVATION_FAILED
    pg = GXDLMSProfileGeneric("0.0.99.98.6.255")
    gs.read(pg, 3)
    entries = int(gs.read(pg, 7))
    codes = [int(r[1]) for r in gs.rows_by_entry(pg, 1, entries)]
    assert [c for c in codes[since:] if c != 166] == [230, 17, 160, 161, 162], codes  # 166: each resumption
    assert int(gs.read(GXDLMSData("0.0.96.11.6.255"), 2)) == 162
    line.close()
    log = meter.firmware_events()[since:]
    failed = next(e for e in log if e["code"] == 161)
    assert failed["detail"]["to_version"] == tried and "metering_chip" in failed["detail"]["failure"]
    assert log[-1]["code"] == 162, log
    assert log[-1]["detail"]["tried_version"] == tried and log[-1]["detail"]["running_version"] == running


def test_paced_hdlc_transfer_resumed_then_a_failed_trial_rolled_back(tmp_path: Path,
                                                                     wires: dict[str, PtyWire]) -> None:
    """The short form: a bundle of about 4.8 kB (10 blocks) on the RS-485 HDLC port paced at
    9600 Bd, the line dropped after 4 blocks and the transfer resumed; activated over DLMS; its
    trial fails the self-check; the rollback read back over the same line."""
    cert, key = ec_keys(tmp_path / "keys")
    (tmp_path / "rootfs.img").write_bytes(random.Random(1221).randbytes(64))
    failing = build_bundle(tmp_path / "next.raucb", "1.2.0", cert, key, rootfs=tmp_path / "rootfs.img").read_bytes()
    meter = start(tmp_path, cert, wires["hdlc"].path_a, "pty")
    board = tmp_path / "state" / "firmware-sim"
    try:
        line = Association(wires["hdlc"].path_b, optical=False)
        before = kept(meter)
        started = time.monotonic()
        gs = transfer(line, failing, "pmm1221-1.2.0", drop_after=4)
        assert time.monotonic() - started >= len(failing) * 10 / 9600  # the line's pace held
        chip_silent_from_each_start(meter.config, tmp_path / "chip-silent.toml")
        running_slot = slot_bytes(board)["A"]
        verify_and_activate(line, gs)
        read_back_rollback(meter, line, running="0.1.0", tried="1.2.0", since=0)
        assert [e["code"] for e in meter.firmware_events()][:2] == [230, 166]  # resumed after the drop
        assert slot_bytes(board)["A"] == running_slot  # the running slot untouched by the failed trial
        assert_continued(before, kept(meter))
    finally:
        meter.stop()


@pytest.mark.slow
def test_paced_hdlc_update_after_a_restart_then_an_optical_update_that_rolls_back(
        tmp_path: Path, wires: dict[str, PtyWire]) -> None:
    """The long form: a 64 KiB root filesystem; the transfer on the paced RS-485 line interrupted
    by a dropped line and a restart of meterd, activated and confirmed; then the local upgrade
    through the optical port (mode E, then HDLC; the meter's own pty: the paced pair refuses the
    sign-on's 300 Bd 7E1 line settings): its trial fails and rolls back."""
    cert, key = ec_keys(tmp_path / "keys")
    (tmp_path / "rootfs.img").write_bytes(random.Random(1221).randbytes(64 * 1024))
    good = build_bundle(tmp_path / "good.raucb", "1.1.0", cert, key, rootfs=tmp_path / "rootfs.img").read_bytes()
    failing = build_bundle(tmp_path / "next.raucb", "1.2.0", cert, key, rootfs=tmp_path / "rootfs.img").read_bytes()
    meter = start(tmp_path, cert, wires["hdlc"].path_a, "pty")
    board = tmp_path / "state" / "firmware-sim"
    launchers = [meter]

    def restart() -> None:
        launchers[-1].stop()
        launchers.append(Launcher(tmp_path, launchers[-1].config))
        launchers[-1].wait("power on", lambda v: v["engine"] == "rauc" and v["slot"] == "A")

    try:
        line = Association(wires["hdlc"].path_b, optical=False)
        before = kept(meter)
        gs = transfer(line, good, "pmm1221-1.1.0", drop_after=40, between=restart)
        meter = launchers[-1]
        verify_and_activate(line, gs)
        confirmed = meter.wait("the update confirmed", lambda v: v["version"] == "1.1.0" and v["phase"] == "idle"
                               and v["outcome"] == "confirmed")
        assert confirmed["slot"] == "B" and confirmed["primary"] == "B"
        log = meter.firmware_events()
        assert [e["code"] for e in log if e["code"] != 166] == [230, 17, 160, 233, 18] and log[1]["code"] == 166, log
        assert log[-1]["detail"]["from_version"] == "0.1.0" and log[-1]["detail"]["to_version"] == "1.1.0"
        after_update = kept(meter)
        assert_continued(before, after_update)

        optical = Association(meter.link("dlms_optical"), optical=True)
        gs = transfer(optical, failing, "pmm1221-1.2.0")
        chip_silent_from_each_start(meter.config, tmp_path / "chip-silent.toml")
        confirmed_slot = slot_bytes(board)["B"]
        verify_and_activate(optical, gs)
        back = meter.wait("the rollback", lambda v: v["outcome"] == "rolled_back" and v["phase"] == "idle")
        optical.path = meter.link("dlms_optical")  # a new pty at each start of meterd
        read_back_rollback(meter, optical, running="1.1.0", tried="1.2.0", since=len(log))
        assert back["slot"] == "B"
        assert slot_bytes(board)["B"] == confirmed_slot
        assert_continued(after_update, kept(meter))
    finally:
        launchers[-1].stop()
