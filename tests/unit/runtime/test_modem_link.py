"""The modem link against python-dbusmock's ModemManager: registration, signal and bearer follow the mock,
the supervision reconnects, faults are recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hw.dbus_modem_mock import ModemManagerStandIn
from hw.modem_manager import MmBearer, MmCell, MmSnapshot
from meterd.core import event_codes as ec
from meterd.core.clock import SimClock
from meterd.core.modem import ModemState, Registration, SimState, Technology
from meterd.runtime.modem_link import ModemLink, status_of, technology_of
from meterd.services.modem import ModemSettings, ModemSupervisor


class Events:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.details: list[Any] = []

    def record(self, code: int, utc: dt.datetime, detail: Any = None) -> None:
        self.names.append(ec.lookup(code).name)
        self.details.append(detail)


@pytest.fixture
def stand_in() -> Iterator[ModemManagerStandIn]:
    mm = ModemManagerStandIn(bearer_ipv4="127.0.0.3")
    mm.start()
    yield mm
    mm.stop()


async def until(cond: Callable[[], bool], tick: Callable[[], None] = lambda: None, timeout_s: float = 5.0) -> None:
    async def loop() -> None:
        while not cond():
            tick()
            await asyncio.sleep(0.005)
    await asyncio.wait_for(loop(), timeout_s)


def test_the_link_follows_the_mock_and_reconnects(stand_in: ModemManagerStandIn) -> None:
    async def scenario() -> None:
        clock, events = SimClock(), Events()
        sup = ModemSupervisor(ModemSettings("iot.example", reconnect_min_s=5, reconnect_max_s=40), None, clock,
                              events, None)
        link = ModemLink(sup, stand_in.address, clock.utc, pin=lambda: "1234", poll_s=5.0, debounce_s=0.0).start()
        try:
            await until(lambda: sup.status.registration is Registration.HOME, sup.tick)
            await until(lambda: sup.connected, sup.tick)
            st = sup.status
            assert st.bearer.ipv4 == "127.0.0.3" and st.bearer.interface == "wwan0"
            assert st.technology is Technology.LTE and st.operator_name == "TheOperator" and st.quality_pct == 70
            assert st.signal.rsrp_dbm == -95 and st.cells[0].serving and st.cells[0].mcc == 1
            stand_in.drop_bearer()
            await until(lambda: not sup.connected)
            sup.tick()
            assert stand_in.connects() == 1  # waits its back-off
            clock.advance(5)
            await until(lambda: sup.connected, sup.tick)
            assert stand_in.connects() == 2
            stand_in.remove_sim()
            await until(lambda: sup.status.sim is SimState.MISSING)
            assert sup.status.state is ModemState.FAILED and sup.status.fault() == "modem failed (sim-missing)"
            for _ in range(20):
                clock.advance(10)
                sup.tick()
            stand_in.restore()
            await until(lambda: sup.status.registration is Registration.HOME)
            clock.advance(60)
            await until(lambda: sup.connected, sup.tick)
            assert events.names[:3] == ["MODEM_BEARER_UP", "MODEM_BEARER_LOST", "MODEM_BEARER_UP"]
            # the SIM taken out: the fault and the bearer's loss, in whichever order ModemManager tells them
            assert sorted(events.names[3:5]) == ["MODEM_BEARER_LOST", "MODEM_FAULT"]
            assert events.names[5:] == ["MODEM_BEARER_UP"], list(zip(events.names, events.details, strict=True))
        finally:
            await link.close()
    asyncio.run(scenario())


def test_modem_manager_gone_is_an_absent_modem() -> None:
    async def scenario() -> None:
        clock, events = SimClock(), Events()
        sup = ModemSupervisor(ModemSettings("iot.example"), None, clock, events, None)
        link = ModemLink(sup, "unix:path=/nonexistent/bus", clock.utc).start()
        try:
            await until(lambda: sup.status.captured_utc is not None)
            assert sup.status.state is ModemState.ABSENT and sup.status.fault() == "no modem"
            assert "D-Bus" in sup.status.failed_reason and events.names == ["MODEM_FAULT"]
        finally:
            await link.close()
    asyncio.run(scenario())


def test_snapshot_conversion() -> None:
    utc = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    snap = MmSnapshot(present=True, path="/m/1", state=11, sim_path="/s/1", unlock_required=1, quality_pct=55,
                      access_technologies=(1 << 17) | (1 << 14), registration=7, operator_name="X",
                      signal={"Gsm": {"rssi": -90.0}, "Lte": {"rssi": -70.0, "rsrp": -100.0, "snr": 3.0}},
                      bearers=(MmBearer("/b/0"), MmBearer("/b/1", True, "wwan0", "10.1.2.3", 30)),
                      cells=(MmCell(5, True, 42, 7, "26201", -99.0),))
    st = status_of(snap, utc)
    assert st.state is ModemState.CONNECTED and st.sim is SimState.READY and st.registration is Registration.ROAMING
    assert st.technology is Technology.NB_IOT and st.signal.rsrp_dbm == -100.0 and st.signal.rssi_dbm == -70.0
    assert st.bearer.ipv4 == "10.1.2.3" and st.cells[0].mcc == 262 and st.cells[0].mnc == 1
    assert st.cells[0].quality == 7
    locked = status_of(MmSnapshot(present=True, state=2, sim_path="/s/1", unlock_required=2), utc)
    assert locked.sim is SimState.LOCKED and locked.fault() == "SIM locked (PIN)"
    assert technology_of(0) is Technology.NONE and technology_of(1 << 5) is Technology.UMTS
