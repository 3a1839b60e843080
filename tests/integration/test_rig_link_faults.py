"""Rig faults on the MCU–CIU cable of the simulated meter (the real paced pty pair, an in-process
CIU on its far end): ``ciu_cable_cut`` and ``rs485_noise`` act on the bytes in the cable, and the
meter's link layer finds them (CIU_LINK_LOST after its timeout, CIU_LINK_RESTORED once the cable
carries again). The link runs on real time: every wait is on a condition, bounded generously."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ciu.core.state import CiuState
from ciu.runtime.client import CiuLinkClient
from hw.monotonic import MonotonicClock
from hw.serial_link import open_port
from meterd.app.features import ciu as ciu_feature
from meterd.app.features import dlms as dlms_feature
from meterd.app.sim_lines import SimCiuCable, SimHdlcLine
from meterd.proto.ciu_link import LinkEndpoint, Role
from meterd.services.ciu_meter import MeterCiu
from tests.simmeter import SimMeter

WAIT_S = 60.0


class InProcessCiu:
    """The CIU's state machine and link client on the CIU end of the meter's cable, with fresh
    random nonces (a HELLO after the link's loss must not look like a replay)."""

    def __init__(self, path: str, key: bytes) -> None:
        self.port = open_port(path, 9600)
        ids = iter(range(7000, 8000))
        self.state = CiuState(MonotonicClock(), lambda: next(ids))
        self.client = CiuLinkClient(self.state, LinkEndpoint(Role.CIU, MonotonicClock(), os.urandom, key), self.port)


async def pump_until(ciu: InProcessCiu, predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ciu.client.pump()
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


async def names(meter: SimMeter) -> list[str]:
    status, body = await meter.daemon.api.dispatch("POST", "/events", {"limit": 500})
    assert status == 200
    return [e["name"] for e in body["events"]][::-1]


GARBLED = ("crc", "short", "overrun", "version")


def garbled(service: MeterCiu, ciu: InProcessCiu) -> int:
    """Frames the two ends' deframers rejected as damaged (CRC, length, version)."""
    meter_rejected, ciu_rejected = service.view()["rejected"], ciu.client.link.stats.rejected
    return sum(meter_rejected.get(r, 0) + ciu_rejected.get(r, 0) for r in GARBLED)


async def recorded(meter: SimMeter, ciu: InProcessCiu, name: str, count: int) -> bool:
    """Whether the meter's event log holds ``count`` events ``name`` within WAIT_S (the CIU pumped)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        ciu.client.pump()
        if (await names(meter)).count(name) >= count:
            return (await names(meter)).count(name) == count
        await asyncio.sleep(0.02)
    return False


async def fault(meter: SimMeter, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await meter.daemon.api.dispatch("POST", path, body)
    assert status == 200, answer
    return answer


def with_linked_ciu(tmp_path: Path, body: Callable[[SimMeter, MeterCiu, InProcessCiu], Awaitable[None]]) -> None:
    """A simulated meter whose CIU feature runs with an in-process CIU on its paced pty; once
    both ends see the link up, ``body(meter, service, ciu)`` runs; then everything is closed."""
    meter = SimMeter(tmp_path, power_quality={"enabled": False})
    daemon = meter.daemon
    service = daemon.registry.need(MeterCiu, by="test")

    async def scenario() -> None:
        await ciu_feature.start(daemon)
        ciu = InProcessCiu(daemon.info["ciu_link"], bytes.fromhex((tmp_path / "ciu" / "pair.key").read_text()))
        try:
            assert await pump_until(ciu, lambda: link_up(service) and ciu.state.view().link_up, WAIT_S)
            await body(meter, service, ciu)
        finally:
            ciu.port.close()
            for link in reversed(daemon.links):
                await link.close()

    try:
        asyncio.run(scenario())
    finally:
        meter.close()


def link_up(service: MeterCiu) -> bool:
    """The meter's end of the CIU link is up."""
    return service.service.link.state.value == "up"


def test_cable_cut_takes_the_link_down_and_clearing_it_brings_it_back(tmp_path: Path) -> None:
    async def body(meter: SimMeter, service: MeterCiu, ciu: InProcessCiu) -> None:
        assert (await names(meter)).count("CIU_LINK_RESTORED") == 1
        await fault(meter, "/sim/fault", {"kind": "ciu_cable_cut"})
        assert await recorded(meter, ciu, "CIU_LINK_LOST", 1), "the cut went unnoticed"
        assert not link_up(service)
        await fault(meter, "/sim/fault-clear", {"kind": "ciu_cable_cut"})
        assert await recorded(meter, ciu, "CIU_LINK_RESTORED", 2), "the link did not come back"
        assert link_up(service)

    with_linked_ciu(tmp_path, body)


def test_noise_corrupts_bytes_in_the_cable_and_the_link_rejects_them(tmp_path: Path) -> None:
    async def body(meter: SimMeter, service: MeterCiu, ciu: InProcessCiu) -> None:
        cable = meter.daemon.registry.need(SimCiuCable, by="test")
        assert cable.faults is not None and cable.faults.corrupted == 0
        assert garbled(service, ciu) == 0
        await fault(meter, "/sim/fault", {"kind": "rs485_noise", "rate": 0.2, "line": "ciu"})
        assert await recorded(meter, ciu, "CIU_LINK_LOST", 1), "the noise went unnoticed"
        assert cable.faults.corrupted > 0
        assert garbled(service, ciu) > 0  # the garbled frames were rejected, at one end or both
        await fault(meter, "/sim/fault-clear", {"kind": "rs485_noise"})
        assert cable.faults.corrupt_rate == 0.0
        assert await recorded(meter, ciu, "CIU_LINK_RESTORED", 2), "the link did not come back"

    with_linked_ciu(tmp_path, body)


def test_noise_on_the_dlms_line_reaches_its_pty_and_ends_with_the_fault(tmp_path: Path) -> None:
    """``rs485_noise`` with ``line = "dlms"`` acts on the HDLC pty's bytes (what the HDLC layer
    then drops: tests/unit/runtime/test_dlms_serial_line_noise.py); a line that is not open is
    refused with the reason and nothing changes."""
    meter = SimMeter(tmp_path, power_quality={"enabled": False})
    daemon = meter.daemon
    hdlc = daemon.registry.need(SimHdlcLine, by="test")

    async def scenario() -> None:
        status, answer = await daemon.api.dispatch("POST", "/sim/fault", {"kind": "rs485_noise", "line": "dlms"})
        assert status == 400 and "not open" in answer["error"]  # the links are not started yet
        await dlms_feature.start(daemon)
        try:
            assert hdlc.faults is not None and hdlc.faults.corrupt_rate == 0.0
            await fault(meter, "/sim/fault", {"kind": "rs485_noise", "rate": 0.05, "line": "dlms"})
            assert hdlc.faults.corrupt_rate == 0.05
            await fault(meter, "/sim/fault-clear", {"kind": "rs485_noise"})
            assert hdlc.faults.corrupt_rate == 0.0
        finally:
            for link in reversed(daemon.links):
                await link.close()

    try:
        asyncio.run(scenario())
    finally:
        meter.close()
