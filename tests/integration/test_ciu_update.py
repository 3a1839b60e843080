"""The CIU's update end to end, with the real rauc: a CIU bundle built by image/rauc/build-bundle.sh,
verified by the meter, carried over the simulated RS-485 line at 9600 Bd (interrupted by a line
cut, a restart of the CIU and a restart of the meter's side, resumed each time), installed by the
CIU into the inactive slot of its simulated board (RAUC's service on a private D-Bus, the real
tryboot handler), the trial boot, the self-check, the confirmation, and the CIU's new version read
over DLMS and on the meter's LCD; then a bundle whose self-check fails and rolls back, and a bundle
with a stranger's signature refused before anything is carried.

In process and stepped on a simulated clock (20 ms steps); RAUC's calls run on the CIU's worker
thread and each step waits for them, so simulated time stands still while RAUC works."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms.objects import GXDLMSData
from luma.core.device import dummy

from ciu.core.state import CiuState
from ciu.core.update_rules import BootVerdict, UpdatePolicy
from ciu.runtime.client import CiuLinkClient
from ciu.runtime.daemon import CiuLoop
from ciu.runtime.update import CiuUpdater, UpdateSettings
from hw.boot import BootInfo
from hw.boot_sim import SimBoard, SimServices
from hw.rauc import RaucClient
from hw.serial_link import BusDrivers, SimWire
from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.proto.ciu_link import FWU_VERSION, LinkEndpoint, LinkState, MsgKind, Role
from meterd.services.ciu_service import CiuService
from meterd.services.ciu_update import CiuUpdatePolicy, CiuUpdateService
from meterd.store.ciu_update_store import CiuUpdateFiles
from meterd.ui.meter_display import MeterDisplay
from meterd.ui.screens import ITEMS_BY_ID, render_item
from tests.ciu_link_port import RecordingLinkPort
from tests.dlms_fakes import ListSink, make_keys
from tests.rauc_board import build_bundle, needs_rauc, signing_keys
from tests.simmeter import SimMeter
from tests.simmeter_dlms import Client

pytestmark = needs_rauc

COMPATIBLE = "pmm-ciu-rpi4"
PAIR_KEY = bytes(range(32))  # throwaway test key
DRIVERS = BusDrivers(turn_on_s=0.001, turn_off_s=0.002)
TRANSFER, REFUSED, OUTCOME = (ec.code(n) for n in ("CIU_FIRMWARE_TRANSFER", "CIU_FIRMWARE_REFUSED",
                                                    "CIU_FIRMWARE_OUTCOME"))


def rand_source(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.getrandbits(8) for _ in range(n))


class BoardReboot:
    """The CIU board's reboot as its launcher sees it: the reboot argument left for the firmware
    (as :meth:`SimBoard.reboot`), without signalling this process; the rig powers the board on."""

    def __init__(self, board: SimBoard) -> None:
        self.board = board

    async def reboot(self, trial: bool) -> None:
        flag = self.board.root / "reboot-tryboot"
        if trial:
            flag.write_bytes(b"0 tryboot\n")
        else:
            flag.unlink(missing_ok=True)


class MeterSide:
    """The meter's end: the CIU service and the update service as the ``ciu`` feature wires them."""

    def __init__(self, rig: Rig, seed: int) -> None:
        link = LinkEndpoint(Role.METER, rig.clock, rand_source(seed), PAIR_KEY)
        self.service = CiuService(link, rig.clock, lambda _d: {"accepted": False, "code": "invalid"},
                                  lambda: {"credit": 12.5, "unit": "kWh", "fwu_v": FWU_VERSION})
        self.port = RecordingLinkPort(self.service)
        self.sent = self.port.sent
        self.update = CiuUpdateService(self.port, RaucClient(keyring=rig.cert), CiuUpdateFiles(rig.tmp / "meter"),
                                       rig.events, rig.clock, rig.clock, CiuUpdatePolicy(compatible=COMPATIBLE))


class CiuSide:
    """One boot of the CIU: its link, state machine, loop and update agent on the board."""

    def __init__(self, rig: Rig, seed: int) -> None:
        engine = RaucClient(rig.board.conf, bus_address=rig.board.bus_address)
        self.updater = CiuUpdater(rig.tmp / "ciu", engine, BoardReboot(rig.board), rig.board.booted(),
                                  UpdatePolicy(COMPATIBLE), rig.checks, rig.clock.mono,
                                  UpdateSettings(check_after_s=1.0, trial_timeout_s=6.0))
        self.verdict = self.updater.start()
        ids = iter(range(1000, 2000))
        self.state = CiuState(rig.clock, lambda: next(ids))
        link = LinkEndpoint(Role.CIU, rig.clock, rand_source(seed), PAIR_KEY)
        self.client = CiuLinkClient(self.state, link, rig.wire.b, updater=self.updater)
        self.device = dummy(width=240, height=240, mode="RGB")
        self.loop = CiuLoop(self.client, _NoKeys(), self.device)


class _NoKeys:
    def poll(self) -> list[str]:
        return []


class Rig:
    def __init__(self, tmp: Path, cert: Path) -> None:
        self.tmp = tmp
        self.cert = cert
        self.clock = SimClock()
        self.wire = SimWire(self.clock.mono, baud=9600, seed=5, drivers=DRIVERS)
        self.events = ListSink()
        self.display_ok = True
        self.board = SimBoard(tmp / "board")
        self.board.prepare(cert, COMPATIBLE)
        self.board.boot()
        self.services: SimServices | None = self.board.start_services()
        self.boots = 1
        self.meter = MeterSide(self, 10)
        self.ciu = CiuSide(self, 20)

    def checks(self) -> dict[str, bool]:
        """The CIU's self-check as its app computes it (link, display, keypad, state files)."""
        view = self.ciu.state.view()
        return {"meter_link": view.link_up and bool(view.status), "display": self.display_ok and self.ciu.loop.frames > 0,
                "keypad": True, "state_files": (self.tmp / "ciu" / "update").is_dir()}

    def power_cycle_ciu(self) -> None:
        """The CIU's board reboots: services down, the firmware's choice, services and CIU up."""
        self.ciu.updater.close()
        if self.services is not None:
            self.services.stop()
        self.board.boot()
        self.services = self.board.start_services()
        self.boots += 1
        self.ciu = CiuSide(self, 20 + self.boots)

    def step(self, dt_s: float = 0.02) -> None:
        self.clock.advance(dt_s)
        meter = self.meter
        meter.update.on_events(meter.service.receive_bytes(self.wire.a.read()))
        meter.update.on_events(meter.service.poll())
        out = meter.service.data_to_send()
        if out:
            self.wire.a.write(out)
        assert self.ciu.updater.wait_idle(120.0), "a RAUC call did not end"
        if self.ciu.updater.reboot_requested is not None:
            self.power_cycle_ciu()
            return
        self.ciu.loop.step()

    def run_until(self, what: str, done: Callable[[], bool], limit_s: float) -> None:
        for _ in range(int(limit_s / 0.02)):
            if done():
                return
            self.step()
        raise AssertionError(f"{what}: not within {limit_s} s; meter {self.meter.update.view()}, "
                             f"CIU {self.ciu.updater.view()}, events {self.events.events}")

    def steps(self, seconds: float) -> None:
        for _ in range(int(seconds / 0.02)):
            self.step()

    def stop(self) -> None:
        self.ciu.updater.close()
        if self.services is not None:
            self.services.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return signing_keys(tmp_path_factory.mktemp("keys"), "release")


@pytest.fixture
def rig(tmp_path: Path, keys: tuple[Path, Path]) -> Iterator[Rig]:
    r = Rig(tmp_path, keys[0])
    yield r
    r.stop()


def bundle(tmp: Path, version: str, cert: Path, key: Path, kb: int = 6) -> Path:
    """A signed CIU bundle of ``version`` with ``kb`` KiB of random root filesystem."""
    rootfs = tmp / f"rootfs-{version}.img"
    rootfs.write_bytes(random.Random(version).randbytes(kb * 1024))
    return build_bundle(tmp / f"ciu-{version}.raucb", version, cert, key, compatible=COMPATIBLE, rootfs=rootfs)


def stage(rig: Rig, path: Path) -> Any:
    return asyncio.run(rig.meter.update.stage(path))


def test_carried_interrupted_resumed_installed_confirmed_then_rolled_back(rig: Rig, keys: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    cert, key = keys
    rig.run_until("the CIU identifies itself", lambda: rig.meter.update.ciu is not None, 5.0)
    assert rig.ciu.verdict is BootVerdict.NONE
    assert rig.meter.update.ciu is not None and rig.meter.update.ciu.version == "0.1.0"
    good = bundle(tmp_path, "0.2.0", cert, key)
    size = good.stat().st_size

    verdict = stage(rig, good)
    assert verdict.ok, verdict
    assert rig.events.of(TRANSFER)[-1]["step"] == "started"
    part = tmp_path / "ciu" / "update" / "bundle.part"

    def held() -> int:
        return part.stat().st_size if part.exists() else 0

    # the line is cut after a third: the transfer stops, and goes on from where the CIU is
    rig.run_until("a third carried", lambda: held() > size // 3, 60.0)
    rig.wire.cut = True
    rig.steps(9.0)
    assert rig.meter.service.link.state is LinkState.DOWN
    cut_at = held()
    rig.wire.cut = False
    rig.run_until("resumed after the cut", lambda: held() > cut_at + 1024, 30.0)
    resumed = [e for e in rig.events.of(TRANSFER) if e["step"] == "resumed"]
    assert resumed and resumed[0]["offset"] == cut_at > 0
    # the CIU restarts (power cut) with two thirds held: it resumes from its own file
    rig.run_until("two thirds carried", lambda: held() > 2 * size // 3, 60.0)
    rig.power_cycle_ciu()
    restart_at = held()
    # and the meter's side restarts too: the job is on its data partition
    rig.meter = MeterSide(rig, 11)
    rig.run_until("carried and installed", lambda: rig.ciu.updater.version == "0.2.0", 90.0)
    offsets = [e["offset"] for e in rig.events.of(TRANSFER) if e["step"] == "resumed"]
    assert restart_at in offsets and 0 not in offsets
    steps = [e["step"] for e in rig.events.of(TRANSFER)]
    assert steps[0] == "started" and steps[-1] == "complete"
    # the trial boot: slot B once, the self-check passes, the slot is confirmed
    assert rig.ciu.verdict is BootVerdict.TRIAL and rig.board.booted().slot == "B" and rig.board.booted().trial
    rig.run_until("confirmed", lambda: any(e["step"] == "activated" for e in rig.events.of(OUTCOME)), 20.0)
    installed, activated = rig.events.of(OUTCOME)
    assert installed["step"] == "installed" and installed["from"] == "0.1.0" and installed["to"] == "0.2.0"
    assert activated["from"] == "0.1.0" and activated["to"] == "0.2.0" and activated["running"] == "0.2.0"
    assert "meter_link" in str(activated["detail"]) and rig.events.of(REFUSED) == []
    ident = rig.meter.update.ciu
    assert ident is not None and ident.version == "0.2.0" and ident.fw_id == "PMM-CIU 0.2.0" and ident.slot == "B"
    rig.power_cycle_ciu()  # confirmed: every later boot is slot B, no trial
    assert rig.board.booted() == BootInfo("B", False)
    assert rig.ciu.verdict is BootVerdict.NONE and rig.ciu.updater.version == "0.2.0"

    # a release whose self-check fails (the display driver does not come up): back to slot B
    rig.display_ok = False
    rig.run_until("identified again", lambda: rig.meter.update.view()["supported"], 5.0)
    assert stage(rig, bundle(tmp_path, "0.3.0", cert, key, kb=2)).ok
    rig.run_until("rolled back", lambda: any(e["step"] == "rolled_back" for e in rig.events.of(OUTCOME)), 120.0)
    rolled = rig.events.of(OUTCOME)[-1]
    assert rolled["from"] == "0.2.0" and rolled["to"] == "0.3.0" and rolled["running"] == "0.2.0"
    assert "display" in str(rolled["detail"])
    assert rig.board.booted().slot == "B" and not rig.board.booted().trial
    assert rig.meter.update.ciu is not None and rig.meter.update.ciu.version == "0.2.0"
    assert rig.meter.update.job["phase"] == "done" and not (tmp_path / "meter" / "ciu-update" / "bundle.raucb").exists()
    # the meter records each outcome once, however often the CIU reports it
    rig.ciu.client.link.set_pair_key(PAIR_KEY)  # a new session: the CIU identifies itself again
    rig.steps(3.0)
    assert [e["step"] for e in rig.events.of(OUTCOME)].count("rolled_back") == 1

    # the head end reads the CIU's identification over DLMS; the meter LCD shows it
    ident = rig.meter.update.ciu
    assert ident is not None
    state = tmp_path / "meter"
    make_keys(state / "dlms-keys.toml").save()
    meter = SimMeter(state, display={"kind": "dummy"})
    try:
        with Client(meter, 17) as gs:  # the reader association
            assert bytes(gs.read_raw(GXDLMSData("1.1.0.2.0.255"), 2)) == b"PMM-CIU 0.2.0"
            assert bytes(gs.read_raw(GXDLMSData("1.1.0.2.8.255"), 2)).hex() == ident.fw_sha256
        display = meter.service(MeterDisplay)
        code, view = asyncio.run(meter.daemon.api.dispatch("POST", "/display/show", {"item": "ciu_firmware"}))
        assert code == 200 and view["obis"] == "1-1:0.2.0.255"
        assert display.data().ciu_firmware_id == "PMM-CIU 0.2.0"
        assert display.data().ciu_firmware_checksum == ident.fw_sha256
        blank = render_item(ITEMS_BY_ID["ciu_firmware"], display.data().__class__())
        assert render_item(ITEMS_BY_ID["ciu_firmware"], display.data()).tobytes() != blank.tobytes()
    finally:
        meter.close()


def test_a_strangers_signature_is_refused_before_anything_is_carried(rig: Rig, tmp_path: Path,
                                                                     keys: tuple[Path, Path]) -> None:
    rig.run_until("the CIU identifies itself", lambda: rig.meter.update.ciu is not None, 5.0)
    stranger = signing_keys(tmp_path / "stranger", "stranger")
    verdict = stage(rig, bundle(tmp_path, "0.4.0", *stranger))
    assert not verdict.ok and verdict.reason == "signature"
    refused = rig.events.of(REFUSED)
    assert refused[-1]["reason"] == "signature" and refused[-1]["by"] == "meter" and refused[-1]["to"] == ""
    wrong_board = build_bundle(tmp_path / "meter.raucb", "0.5.0", *keys, compatible="pmm1221-rpi4")
    assert stage(rig, wrong_board).reason == "hardware"
    rig.steps(2.0)
    assert not any(m.kind in (MsgKind.FW_OFFER, MsgKind.FW_BLOCK) for m in rig.meter.sent)
    assert not (tmp_path / "ciu" / "update" / "bundle.part").exists() and rig.events.of(TRANSFER) == []
