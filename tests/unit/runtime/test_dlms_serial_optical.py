"""The optical port's line settings (meterd.runtime.dlms_serial.SerialLink with mode E) on a fake
serial port: sign-on at 300 Bd 7E1, the agreed rate 8N1 after the option select, back to 300 Bd
7E1 after the HDLC inactivity time or the client's DISC; the reaction time and the mode C readout. The fake records every change of baud
rate, byte size and parity, and the order of changes and drains (tcdrain before a switch)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import serial

from meterd.cosem.config import ServerConfig
from meterd.cosem.security import MemoryCounterStore
from meterd.cosem.server import build_session_factory
from meterd.proto.hdlc import Frame
from meterd.proto.iec62056_21 import DataSet as ModeEDataSet
from meterd.proto.iec62056_21 import ModeESignOn
from meterd.runtime import dlms_serial
from meterd.runtime.dlms_serial import SerialLink
from tests.dlms_fakes import FakeMeter, make_keyring
from tests.dlms_gurux_client import make_client

DISC = Frame(b"\x03", b"\x21", 0x53).encode()  # from client 16 to the management logical device
SEVEN_E_ONE = (serial.SEVENBITS, serial.PARITY_EVEN)
EIGHT_N_ONE = (serial.EIGHTBITS, serial.PARITY_NONE)


class FakeSerial:
    """Stands in for a pyserial port: a socket end as the file descriptor; records settings."""

    def __init__(self, sock: socket.socket, baud: int) -> None:
        self._sock = sock
        self.log: list[tuple[str, Any]] = []
        self._baud, self._bytesize, self._parity = baud, serial.EIGHTBITS, serial.PARITY_NONE
        self.closed = False

    def fileno(self) -> int:
        return self._sock.fileno()

    def flush(self) -> None:
        self.log.append(("flush", None))

    def close(self) -> None:
        self.closed = True

    @property
    def baudrate(self) -> int:
        return self._baud

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._baud = value
        self.log.append(("baudrate", value))

    @property
    def bytesize(self) -> int:
        return self._bytesize

    @bytesize.setter
    def bytesize(self, value: int) -> None:
        self._bytesize = value
        self.log.append(("bytesize", value))

    @property
    def parity(self) -> str:
        return self._parity

    @parity.setter
    def parity(self, value: str) -> None:
        self._parity = value
        self.log.append(("parity", value))

    @property
    def line(self) -> tuple[int, int, str]:
        return self._baud, self._bytesize, self._parity


class Rig:
    """A SerialLink on the fake port, its client end, and the loop to drive them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, inactivity_s: float = 120.0) -> None:
        meter_end, self.client = socket.socketpair()
        self.client.setblocking(False)
        self.port = FakeSerial(meter_end, 9600)
        self.opened: list[tuple[str, int, str]] = []

        def open_port(name: str, baud: int, rs485: str) -> FakeSerial:
            self.opened.append((name, baud, rs485))
            return self.port

        monkeypatch.setattr(dlms_serial, "_open_port", open_port)
        self.factory = build_session_factory(FakeMeter(), MemoryCounterStore(), make_keyring(),
                                             ServerConfig(link="hdlc", inactivity_timeout_s=inactivity_s,
                                                          link_name="optical"))
        self.link = SerialLink(self.factory, "/dev/ttyFAKE0", 9600,
                               optical=ModeESignOn("PMM", "PMM1221000042", max_baud=9600))

    async def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(self.client, data)

    async def read_until(self, predicate: Any) -> bytes:
        """Read from the meter until ``predicate(data)``; waits on the socket, never sleeps."""
        loop = asyncio.get_running_loop()
        data = b""
        while not predicate(data):
            data += await asyncio.wait_for(loop.sock_recv(self.client, 4096), 2.0)
        return data

    async def settle(self) -> None:
        """Let the link's reader run (the request has no answer to wait for)."""
        for _ in range(5):
            await asyncio.sleep(0)


def _hdlc_frame_done(data: bytes) -> bool:
    return len(data) >= 3 and data[0] == 0x7E and len(data) >= (((data[1] & 0x07) << 8) | data[2]) + 2


def test_optical_port_switches_7e1_300_to_8n1_9600_and_back_after_inactivity(monkeypatch):
    rig = Rig(monkeypatch)
    client = make_client(16, hdlc=True)

    async def scenario() -> None:
        await rig.link.start()
        assert rig.opened == [("/dev/ttyFAKE0", 9600, "none")]
        assert rig.port.line == (300, *SEVEN_E_ONE)  # sign-on starts at 300 Bd 7E1
        await rig.send(b"/?!\r\n")
        ident = await rig.read_until(lambda d: d.endswith(b"\r\n"))
        assert ident == b"/PMM5\\2PMM1221000042\r\n"
        assert rig.port.line == (300, *SEVEN_E_ONE)  # identification sent at 300 Bd
        await rig.send(b"\x06252\r\n")  # ACK, protocol 2 (HDLC), 9600 Bd, binary mode
        await rig.settle()
        assert rig.port.line == (9600, *EIGHT_N_ONE)
        assert rig.port.log[-4:] == [("flush", None), ("baudrate", 9600), ("bytesize", serial.EIGHTBITS),
                                     ("parity", serial.PARITY_NONE)]
        await rig.send(bytes(client.snrmRequest()))
        ua = await rig.read_until(_hdlc_frame_done)
        assert ua[3:6] == b"\x21\x03\x73"  # UA to client 16, at 9600 Bd 8N1
        assert rig.port.line == (9600, *EIGHT_N_ONE)
        idle = rig.link._idle
        assert idle is not None
        assert idle.when() - asyncio.get_running_loop().time() == pytest.approx(120.0, abs=1.0)
        idle._run()  # the inactivity timer fires (no real 120 s wait)
        assert rig.port.line == (300, *SEVEN_E_ONE)
        assert rig.link._session is None
        await rig.send(b"/?!\r\n")  # a new sign-on works
        assert await rig.read_until(lambda d: d.endswith(b"\r\n")) == ident
        await rig.link.close()

    asyncio.run(scenario())
    assert rig.port.closed


def test_optical_port_returns_to_the_sign_on_after_disc(monkeypatch):
    rig = Rig(monkeypatch)
    client = make_client(16, hdlc=True)

    async def scenario() -> None:
        await rig.link.start()
        await rig.send(b"/?!\r\n")
        await rig.read_until(lambda d: d.endswith(b"\r\n"))
        await rig.send(b"\x06242\r\n")  # a lower rate than offered: 4800 Bd
        await rig.settle()
        assert rig.port.line == (4800, *EIGHT_N_ONE)
        await rig.send(bytes(client.snrmRequest()))
        await rig.read_until(_hdlc_frame_done)
        flushes_before = rig.port.log.count(("flush", None))
        await rig.send(DISC)
        ua = await rig.read_until(_hdlc_frame_done)
        assert ua[3:6] == b"\x21\x03\x73"  # the UA left at 4800 Bd, before the switch
        assert rig.port.line == (300, *SEVEN_E_ONE)
        assert rig.port.log.count(("flush", None)) == flushes_before + 1  # drained, then switched
        assert rig.port.log[-4][0] == "flush"
        assert rig.link._session is None and rig.link._idle is None
        await rig.link.close()

    asyncio.run(scenario())


def test_rs485_port_keeps_its_line_settings(monkeypatch):
    rig = Rig(monkeypatch)
    rig.link = SerialLink(rig.factory, "/dev/ttyFAKE0", 9600, rs485="kernel")
    client = make_client(16, hdlc=True)

    async def scenario() -> None:
        await rig.link.start()
        await rig.send(bytes(client.snrmRequest()))
        await rig.read_until(_hdlc_frame_done)
        await rig.send(DISC)
        await rig.read_until(_hdlc_frame_done)
        await rig.link.close()

    asyncio.run(scenario())
    assert rig.opened == [("/dev/ttyFAKE0", 9600, "kernel")]
    assert rig.port.log == []  # never switched


def test_optical_port_keeps_the_reaction_time_and_serves_mode_c(monkeypatch):
    """``/?SERIAL!`` is answered no sooner than 200 ms after it (the loop's clock); the mode C
    option select switches to 9600 Bd 7E1 for the data message, then back to 300 Bd once it left."""
    rig = Rig(monkeypatch)
    sets = [ModeEDataSet("C.1.0", "PMM1221000042"), ModeEDataSet("1.8.0", "0000001.000", "kWh")]
    rig.link = SerialLink(rig.factory, "/dev/ttyFAKE0", 9600,
                          optical=ModeESignOn("PMM", "PMM1221000042", max_baud=9600,
                                              device_address="PMM1221000042", readout=lambda: sets))

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        await rig.link.start()
        await rig.send(b"/?PMM1221000099!\r\n")  # another meter's address: no answer
        sent = loop.time()
        await rig.send(b"/?PMM1221000042!\r\n")
        ident = await rig.read_until(lambda d: d.endswith(b"\r\n"))
        assert ident == b"/PMM5\\2PMM1221000042\r\n"  # the first request got nothing
        assert loop.time() - sent >= 0.2
        sent = loop.time()
        await rig.send(b"\x06050\r\n")  # ACK, protocol 0, 9600 Bd, data readout
        message = await rig.read_until(lambda d: len(d) >= 2 and d[-2] == 0x03)
        assert loop.time() - sent >= 0.2
        assert message == b"\x02C.1.0(PMM1221000042)\r\n1.8.0(0000001.000*kWh)\r\n!\r\n\x03" + bytes((message[-1],))
        await rig.settle()
        assert rig.port.line == (300, *SEVEN_E_ONE)
        changes = [entry for entry in rig.port.log if entry[0] == "baudrate"]
        assert changes[-2:] == [("baudrate", 9600), ("baudrate", 300)]
        await rig.link.close()

    asyncio.run(scenario())
