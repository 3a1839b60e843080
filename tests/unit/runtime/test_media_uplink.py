"""The uplink binds each medium's source address: the head end sees which medium carried the traffic."""

from __future__ import annotations

import asyncio

import pytest

from meterd.core.clock import SimClock
from meterd.runtime.media_uplink import MediaUplink, MediumRoute
from meterd.services.media import MediaPolicy, MediaSelector
from meterd.services.uplink import UplinkDown

POLICY = MediaPolicy(check_period_s=10, recheck_s=2, confirm_failures=2, connect_timeout_s=2,
                     standby_check_s=60, switch_back_s=120)


class Cuts:
    def __init__(self) -> None:
        self.cut: set[str] = set()

    def blocked(self, medium: str) -> str | None:
        return "cut by the test" if medium in self.cut else None


async def head_end() -> tuple[asyncio.Server, int, list[str], list[bytes]]:
    peers: list[str] = []
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        data = await reader.read(100)
        if data:
            received.append(data)
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], peers, received


async def settle(peers: list[str], n: int) -> None:
    await asyncio.wait_for(_until(lambda: len(peers) >= n), 5)


async def _until(cond: object) -> None:
    while not cond():  # type: ignore[operator]
        await asyncio.sleep(0.005)


def test_checks_switch_and_sends_go_out_of_the_current_medium() -> None:
    async def scenario() -> None:
        server, port, peers, received = await head_end()
        clock, cuts = SimClock(), Cuts()
        bearer = {"ip": None}
        sel = MediaSelector(["ethernet", "cellular"], POLICY, clock, None)
        up = MediaUplink(sel, {"ethernet": MediumRoute("ethernet", lambda: "127.0.0.2"),
                               "cellular": MediumRoute("cellular", lambda: bearer["ip"])},
                         ("127.0.0.1", port), cuts)
        with pytest.raises(UplinkDown):
            await up.open_stream("127.0.0.1", port, 1.0)
        assert await up.check_now("ethernet")
        assert not await up.check_now("cellular")
        assert "no address" in sel.health("cellular").reason
        bearer["ip"] = "127.0.0.3"
        assert await up.check_now("cellular")
        assert up.state().medium == "ethernet" and up.state().up
        reader, writer = await up.open_stream("127.0.0.1", port, 1.0)
        writer.write(b"push-1")
        await writer.drain()
        writer.close()
        await settle(received, 1)
        cuts.cut.add("ethernet")
        with pytest.raises(OSError):
            await up.open_stream("127.0.0.1", port, 1.0)  # a send over a cut medium fails ...
        assert sel.due() == ["ethernet"]                  # ... and asks for a check now
        assert not await up.check_now("ethernet")
        clock.advance(2)
        assert not await up.check_now("ethernet")
        assert up.state().medium == "cellular"
        reader, writer = await up.open_stream("127.0.0.1", port, 1.0)  # the retry goes out on cellular
        writer.write(b"push-1 again")
        await writer.drain()
        writer.close()
        await settle(received, 2)
        await up.send_datagram("127.0.0.1", port, b"x")  # UDP: no listener needed, just no error
        server.close()
        await server.wait_closed()
        # checks: ethernet, cellular; push over ethernet; after the switch the retry over cellular
        assert peers == ["127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"]
        assert received == [b"push-1", b"push-1 again"]
    asyncio.run(scenario())


def test_a_closed_head_end_port_fails_the_check() -> None:
    async def scenario() -> None:
        server, port, _peers, _received = await head_end()
        server.close()
        await server.wait_closed()
        sel = MediaSelector(["ethernet"], POLICY, SimClock(), None)
        up = MediaUplink(sel, {"ethernet": MediumRoute("ethernet", lambda: "127.0.0.2")}, ("127.0.0.1", port))
        assert not await up.check_now("ethernet")
        assert "refused" in sel.health("ethernet").reason.lower()
        with pytest.raises(ValueError):
            MediaUplink(sel, {}, ("127.0.0.1", port))
    asyncio.run(scenario())
