"""SPI transport: exact bytes of the driver's read/write frames through a fake spidev object."""

from __future__ import annotations

import pytest

from hw.atm90e36.driver import Atm90e36
from hw.spi import SimSpiDev, SpiDeviceMissing, SpiError, open_spidev


class FakeSpidev:
    """Records frames like spidev.SpiDev; LastSPIData echo = last data word sent/returned."""

    def __init__(self, register_value: int = 0x1234) -> None:
        self.mode = 0
        self.max_speed_hz = 0
        self.bits_per_word = 8
        self.sent: list[list[int]] = []
        self.register_value = register_value
        self.last = 0

    def open(self, bus: int, device: int) -> None:
        pass

    def xfer2(self, data: list[int]) -> list[int]:
        self.sent.append(list(data))
        address = ((data[0] & 0x03) << 8) | data[1]
        if data[0] & 0x80:
            value = self.last if address == 0x0F else self.register_value
            self.last = value
            return [0xFF, 0xFF, value >> 8, value & 0xFF]
        self.last = (data[2] << 8) | data[3]
        return [0xFF] * 4

    def close(self) -> None:
        pass


def test_read_frame_bytes() -> None:
    fake = FakeSpidev(0xBEEF)
    drv = Atm90e36(fake, sleep=lambda s: None)
    assert drv.read_register(0x1D1) == 0xBEEF
    assert fake.sent == [[0x80 | 0x01, 0xD1, 0, 0], [0x80, 0x0F, 0, 0]]


def test_write_frame_bytes() -> None:
    fake = FakeSpidev()
    drv = Atm90e36(fake, sleep=lambda s: None)
    drv.write_register(0x161, 0xCE40)
    assert fake.sent == [[0x01, 0x61, 0xCE, 0x40], [0x80, 0x0F, 0, 0]]


class EchoSlave:
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def transfer(self, tx: bytes) -> bytes:
        self.seen.append(tx)
        return bytes(b ^ 0xFF for b in tx)


def test_sim_spidev_passes_frames_and_records() -> None:
    slave = EchoSlave()
    dev = SimSpiDev(slave, record=True)
    assert dev.xfer2([1, 2, 3]) == [0xFE, 0xFD, 0xFC]
    assert slave.seen == [b"\x01\x02\x03"]
    assert dev.frames == [(b"\x01\x02\x03", b"\xfe\xfd\xfc")]
    dev.close()
    with pytest.raises(SpiError):
        dev.xfer2([0])


def test_open_spidev_reports_missing_node() -> None:
    with pytest.raises(SpiDeviceMissing, match="/dev/spidev9.7"):
        open_spidev(9, 7)


class RecordingSpiDev:
    """``spidev.SpiDev`` as the C module behaves: attributes can only be set on an open device
    (EBADF otherwise); every open and attribute write is logged in order."""

    log: list[tuple[str, object]] = []

    def __init__(self) -> None:
        object.__setattr__(self, "is_open", False)
        RecordingSpiDev.log = []

    def __setattr__(self, name: str, value: object) -> None:
        if not self.is_open:
            raise OSError(9, "Bad file descriptor")
        RecordingSpiDev.log.append((name, value))
        object.__setattr__(self, name, value)

    def open(self, bus: int, device: int) -> None:
        RecordingSpiDev.log.append(("open", (bus, device)))
        object.__setattr__(self, "is_open", True)


@pytest.fixture
def fake_spidev(monkeypatch):
    """A fake ``spidev`` module and a ``/dev/spidev0.1`` node that exists."""
    import os
    import sys
    import types

    module = types.ModuleType("spidev")
    module.SpiDev = RecordingSpiDev  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spidev", module)
    real_exists = os.path.exists
    monkeypatch.setattr("hw.spi.os.path.exists", lambda p: p == "/dev/spidev0.1" or real_exists(p))
    return module


def test_open_spidev_opens_then_sets_mode_speed_and_word_size(fake_spidev) -> None:
    dev = open_spidev(0, 1, speed_hz=200_000)
    assert isinstance(dev, RecordingSpiDev)
    assert RecordingSpiDev.log == [("open", (0, 1)), ("mode", 3), ("max_speed_hz", 200_000), ("bits_per_word", 8)]
    assert (dev.mode, dev.max_speed_hz, dev.bits_per_word) == (3, 200_000, 8)


def test_open_spidev_default_speed(fake_spidev) -> None:
    open_spidev(0, 1)
    assert ("max_speed_hz", 500_000) in RecordingSpiDev.log and RecordingSpiDev.log[0] == ("open", (0, 1))


def test_open_spidev_without_the_module(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "spidev", None)
    monkeypatch.setattr("hw.spi.os.path.exists", lambda p: True)
    with pytest.raises(SpiError, match="spidev module is not installed"):
        open_spidev(0, 0)
