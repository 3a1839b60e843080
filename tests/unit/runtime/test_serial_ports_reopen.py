"""The meter's serial links outlive their device (meterd.runtime.dlms_serial.SerialLink,
meterd.runtime.ciu_port.CiuPortRunner): a port that cannot be opened, a write that raises (the
peer gone: EPIPE), a read that finds the device hung up, each closes the port and tells
``on_state`` once; ``reopen_now`` (the back-off skipped) brings it back. The fake ports are one
end of a socket pair, the other end the test's; nothing sleeps."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import pytest

from hw.serial_link import SerialLinkError
from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.proto.hdlc import Frame
from meterd.runtime import dlms_serial
from meterd.runtime.ciu_port import CiuLine, CiuPortRunner
from meterd.runtime.dlms_serial import SerialLink
from tests.dlms_fakes import FakeMeter, make_keyring

SNRM = Frame(b"\x03", b"\x21", 0x93).encode()  # client 16 sets up the data link: the meter answers UA


class SocketPort:
    """A pyserial port stand-in: one end of a socket pair; the test holds the other end."""

    def __init__(self) -> None:
        self.meter_end, self.peer = socket.socketpair()
        self.peer.setblocking(False)
        self.closed = False

    def fileno(self) -> int:
        return self.meter_end.fileno()

    def close(self) -> None:
        self.closed = True
        self.meter_end.close()
        self.peer.close()


class Device:
    """Opens :class:`SocketPort` s while ``present``; records the ports it made."""

    def __init__(self) -> None:
        self.present = True
        self.ports: list[SocketPort] = []

    def open(self, *_args: Any) -> SocketPort:
        if not self.present:
            raise SerialLinkError("cannot open /dev/ttyUSB0: no such device")
        self.ports.append(SocketPort())
        return self.ports[-1]


async def turns(done: Callable[[], bool], limit: int = 200) -> None:
    """Let the loop run until ``done()`` (bounded; no sleeping)."""
    for _ in range(limit):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("the loop never got there")


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> Device:
    dev = Device()
    monkeypatch.setattr(dlms_serial, "_open_port", dev.open)
    return dev


def hdlc_link(changes: list[tuple[bool, str]]) -> SerialLink:
    factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                    ServerConfig(link="hdlc", link_name="rs485"))
    return SerialLink(factory, "/dev/ttyUSB0", 9600, on_state=lambda c, r: changes.append((c, r)))


def test_dlms_link_that_cannot_open_is_off_and_comes_back(device: Device) -> None:
    device.present = False
    changes: list[tuple[bool, str]] = []

    async def scenario() -> None:
        link = await hdlc_link(changes).start()  # nothing raised
        assert not link.connected and changes == [(False, "cannot open /dev/ttyUSB0: no such device")]
        assert not link.reopen_now() and len(changes) == 1
        device.present = True
        assert link.reopen_now() and changes[-1] == (True, "")
        await link.close()

    asyncio.run(scenario())


def test_dlms_link_whose_write_raises_is_off_and_comes_back(device: Device) -> None:
    changes: list[tuple[bool, str]] = []

    async def scenario() -> None:
        link = await hdlc_link(changes).start()
        assert link.connected and changes == [(True, "")]
        port = device.ports[0]
        port.peer.shutdown(socket.SHUT_RD)  # the far end stops reading: the meter's answer fails (EPIPE)
        port.peer.send(SNRM)
        await turns(lambda: not link.connected)
        assert changes[-1][0] is False and "Broken pipe" in changes[-1][1] and port.closed
        assert link.reopen_now() and changes[-1] == (True, "")
        fresh = device.ports[-1]
        fresh.peer.send(SNRM)
        answer = b""

        def answered() -> bool:
            nonlocal answer
            with contextlib.suppress(BlockingIOError):
                answer += fresh.peer.recv(256)
            return answer.endswith(b"\x7e") and len(answer) > 8

        await turns(answered)  # the link serves again: UA
        await link.close()

    asyncio.run(scenario())


def test_dlms_link_whose_device_hangs_up_is_off(device: Device) -> None:
    changes: list[tuple[bool, str]] = []

    async def scenario() -> None:
        link = await hdlc_link(changes).start()
        device.ports[0].peer.close()  # readable, nothing to read: a hang-up
        await turns(lambda: not link.connected)
        assert changes == [(True, ""), (False, "device disconnected (hang-up)")]
        await link.close()

    asyncio.run(scenario())


class FakeService:
    """What the runner drives: always something to send, nothing else."""

    def __init__(self) -> None:
        self.received = b""

    def receive_bytes(self, data: bytes) -> list[Any]:
        self.received += data
        return []

    def poll(self) -> list[Any]:
        return []

    def data_to_send(self) -> bytes:
        return b"\x01poll"


class FakeCiu:
    def __init__(self) -> None:
        self.service = FakeService()

    def on_events(self, events: list[Any]) -> None:
        assert events == []


def test_ciu_runner_whose_write_raises_is_off_and_comes_back() -> None:
    device = Device()
    changes: list[tuple[bool, str]] = []

    def reopen() -> CiuLine:
        port = device.open()
        return CiuLine(port.fileno(), port.close, "fake")

    async def scenario() -> None:
        ciu = FakeCiu()
        runner = CiuPortRunner(ciu, None, 0.02, reopen=reopen,  # type: ignore[arg-type]
                               on_state=lambda c, r: changes.append((c, r)))
        assert runner.connected and changes == [(True, "")]
        device.ports[0].peer.shutdown(socket.SHUT_RD)
        runner.flush()  # the write raises EPIPE
        assert not runner.connected and changes[-1][0] is False and "Broken pipe" in changes[-1][1]
        runner.flush()  # off: dropped, nothing raised
        device.present = False
        assert not runner.reopen_now() and len(changes) == 2  # still missing: no second report
        device.present = True
        assert runner.reopen_now() and changes[-1] == (True, "")
        device.ports[-1].peer.send(b"hello")
        await turns(lambda: ciu.service.received == b"hello")
        await runner.close()

    asyncio.run(scenario())
