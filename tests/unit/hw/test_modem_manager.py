"""The ModemManager client against python-dbusmock's ModemManager on a private dbus-daemon."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest

from hw.dbus_daemon import PrivateBus
from hw.dbus_modem_mock import ModemManagerStandIn
from hw.modem_manager import MmSnapshot, ModemManagerClient, ModemManagerError


@pytest.fixture(scope="module")
def stand_in() -> Iterator[ModemManagerStandIn]:
    mm = ModemManagerStandIn(bearer_ipv4="127.0.0.3")
    mm.start()
    yield mm
    mm.stop()
    assert not mm.bus.running


async def until(read: Callable[[], Awaitable[MmSnapshot]], cond: Callable[[MmSnapshot], bool],
                timeout_s: float = 5.0) -> MmSnapshot:
    """The first snapshot meeting ``cond`` (bounded by ``timeout_s``)."""
    async def loop() -> MmSnapshot:
        while True:
            snap = await read()
            if cond(snap):
                return snap
            await asyncio.sleep(0.01)
    return await asyncio.wait_for(loop(), timeout_s)


def test_registration_signal_and_bearer_follow_the_mock(stand_in: ModemManagerStandIn) -> None:
    async def scenario() -> None:
        client = ModemManagerClient(stand_in.address)
        await client.open()
        changes: list[int] = []
        client.on_change(lambda: changes.append(1))
        try:
            snap = await client.snapshot()
            assert snap.present and snap.path == stand_in.modem_path
            assert snap.state_name == "registered" and snap.registration == 1
            assert snap.operator_name == "TheOperator" and snap.operator_code == "00101"
            assert snap.quality_pct == 70 and snap.access_technologies == 1 << 14
            assert snap.signal["Lte"]["rsrp"] == -95.0 and snap.signal["Lte"]["snr"] == 12.0
            assert [c.serving for c in snap.cells] == [True, False] and snap.cells[0].cell_id == 0x1A2B3C4
            assert snap.bearers == ()
            await client.setup_signal(snap.path, 30)
            bearer = await client.connect(snap.path, "iot.example", pin="1234")
            assert bearer.endswith("/Bearer/0")
            snap = await client.snapshot()
            assert snap.state_name == "connected"
            assert snap.bearers[0].connected and snap.bearers[0].interface == "wwan0"
            assert snap.bearers[0].ipv4 == "127.0.0.3" and snap.bearers[0].prefix == 30
            stand_in.drop_bearer()
            snap = await until(client.snapshot, lambda s: not s.bearers[0].connected)
            assert snap.state_name == "registered"
            await until(client.snapshot, lambda s: bool(changes))  # PropertiesChanged reached us
            stand_in.lose_signal()
            snap = await client.snapshot()
            assert snap.quality_pct == 0 and snap.registration == 2 and snap.cells == () and snap.signal == {}
            with pytest.raises(ModemManagerError, match="WrongState"):
                await client.connect(snap.path, "iot.example")
            stand_in.remove_sim()
            snap = await client.snapshot()
            assert snap.state_name == "failed" and snap.failed_reason_name == "sim-missing" and snap.sim_path == "/"
            stand_in.restore()
            snap = await client.snapshot()
            assert snap.state_name == "registered" and snap.registration == 1 and snap.quality_pct == 70
            stand_in.refuse_connect()
            with pytest.raises(ModemManagerError) as err:
                await client.connect(snap.path, "iot.example", password="secret-pw", pin="9876")
            assert "9876" not in str(err.value) and "secret-pw" not in str(err.value)
            stand_in.restore()
            await client.connect(snap.path, "iot.example")
            await client.disconnect(snap.path)
            snap = await client.snapshot()
            assert not snap.bearers[0].connected
        finally:
            await client.close()
    asyncio.run(scenario())


def test_no_modem_manager_on_the_bus() -> None:
    async def scenario(address: str) -> None:
        client = ModemManagerClient(address)
        await client.open()
        try:
            assert (await client.snapshot()).present is False
        finally:
            await client.close()
        with pytest.raises(ModemManagerError):
            await ModemManagerClient("unix:path=/nonexistent/bus").open()
    bus = PrivateBus()
    address = bus.start()
    try:
        asyncio.run(scenario(address))
    finally:
        bus.stop()
    assert not bus.running
