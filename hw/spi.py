"""SPI transport: the spidev surface the chip drivers use, the real back end, and an in-memory host.

A driver only sees a :class:`SpiDevice` (the subset of ``spidev.SpiDev`` it calls). On a
Raspberry Pi that is ``spidev.SpiDev`` opened by :func:`open_spidev`; in simulation it is
:class:`SimSpiDev`, which hands each ``xfer2`` frame (one CS-low window, 8 SCLK cycles per byte)
to an :class:`SpiSlave` such as the ATM90E36 simulator.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from hw.errors import HwError


class SpiError(HwError, OSError):
    """Base of the SPI transport errors."""


class SpiDeviceMissing(SpiError, FileNotFoundError):
    """The ``/dev/spidevB.D`` node does not exist (SPI not enabled, wrong bus or device)."""


class SpiTimeout(SpiError, TimeoutError):
    """A transfer did not complete (spidev ``ETIMEDOUT``; the simulator's ``spi_timeout`` fault)."""


class SpiDevice(Protocol):
    """What the drivers use of ``spidev.SpiDev``. Mode, speed (Hz) and word size are attributes."""

    mode: int
    max_speed_hz: int
    bits_per_word: int

    def open(self, bus: int, device: int) -> None:
        """Open ``/dev/spidev<bus>.<device>``."""
        ...

    def xfer2(self, data: list[int]) -> list[int]:
        """Clock ``data`` out with CS held low for the whole list; return the bytes clocked in."""
        ...

    def close(self) -> None:
        """Release the device."""
        ...


class SpiSlave(Protocol):
    """A simulated SPI slave: one call = one CS-low window of ``8 * len(tx)`` clocks."""

    def transfer(self, tx: bytes) -> bytes:
        """Receive ``tx`` on MOSI and return the same number of bytes driven on MISO."""
        ...


def open_spidev(bus: int, device: int, speed_hz: int = 500_000, mode: int = 3) -> SpiDevice:
    """Open the real ``spidev`` device (mode 3, 8-bit words, ``speed_hz``) on a Pi.

    ``spidev`` is imported here only, so the rest of the package imports on any PC. The device
    is opened before mode/speed are set (setting them first fails with EBADF). Raises
    :class:`SpiDeviceMissing` when the node does not exist and :class:`SpiError` when the
    ``spidev`` module is not installed.
    """
    path = f"/dev/spidev{bus}.{device}"
    if not os.path.exists(path):
        raise SpiDeviceMissing(2, f"{path} does not exist: enable SPI (dtparam=spi=on) or check bus/device", path)
    try:
        import spidev
    except ImportError as exc:
        raise SpiError(f"the spidev module is not installed ({exc}); install the 'pi' extra") from exc
    dev: SpiDevice = spidev.SpiDev()
    dev.open(bus, device)
    dev.mode = mode
    dev.max_speed_hz = speed_hz
    dev.bits_per_word = 8
    return dev


class ReopeningSpiDev:
    """A :class:`SpiDevice` opened by ``opener`` on first use, and again on the next transfer
    after the opening failed: a missing or refused ``/dev/spidevB.D`` raises from each transfer
    (the chip's supervision sees a failing chip and retries) instead of stopping the program."""

    def __init__(self, opener: Callable[[], SpiDevice]) -> None:
        self._opener = opener
        self._dev: SpiDevice | None = None
        self.mode = 3
        self.max_speed_hz = 0
        self.bits_per_word = 8

    def open(self, bus: int, device: int) -> None:
        """Open now (``bus`` and ``device`` are the opener's; accepted for spidev compatibility)."""
        self._device()

    def _device(self) -> SpiDevice:
        if self._dev is None:
            self._dev = self._opener()
        return self._dev

    def xfer2(self, data: list[int]) -> list[int]:
        """One CS-low window on the device, opening it first when it is not open."""
        return self._device().xfer2(data)

    def close(self) -> None:
        """Close the device if it was opened."""
        if self._dev is not None:
            self._dev.close()
            self._dev = None


class LockedSpiDev:
    """A :class:`SpiDevice` shared by threads: each ``xfer2`` holds :attr:`lock`, a re-entrant
    lock that a caller also holds around a whole transaction (a register read and its
    LastSPIData check, a chip read of many registers), so the frames of two threads never
    interleave on the bus. ``lock``: the lock to use (default a new ``threading.RLock``)."""

    def __init__(self, device: SpiDevice, lock: Any = None) -> None:
        self.device = device
        self.lock: Any = lock if lock is not None else threading.RLock()

    @property
    def mode(self) -> int:
        return self.device.mode

    @mode.setter
    def mode(self, value: int) -> None:
        self.device.mode = value

    @property
    def max_speed_hz(self) -> int:
        return self.device.max_speed_hz

    @max_speed_hz.setter
    def max_speed_hz(self, value: int) -> None:
        self.device.max_speed_hz = value

    @property
    def bits_per_word(self) -> int:
        return self.device.bits_per_word

    @bits_per_word.setter
    def bits_per_word(self, value: int) -> None:
        self.device.bits_per_word = value

    def open(self, bus: int, device: int) -> None:
        """Open the device."""
        with self.lock:
            self.device.open(bus, device)

    def xfer2(self, data: list[int]) -> list[int]:
        """One CS-low window, with the bus held."""
        with self.lock:
            return self.device.xfer2(data)

    def close(self) -> None:
        """Release the device."""
        with self.lock:
            self.device.close()


class SimSpiDev:
    """An in-memory stand-in for ``spidev.SpiDev`` that passes frames to a :class:`SpiSlave`.

    With ``record=True`` every frame is kept in :attr:`frames` as ``(tx, rx)`` byte strings so
    tests can assert exact bytes on the wire. It starts open, like a device returned by
    :func:`open_spidev`; ``close()`` makes further transfers fail as spidev does.
    """

    def __init__(self, slave: SpiSlave, record: bool = False) -> None:
        self.slave = slave
        self.mode = 0
        self.max_speed_hz = 0
        self.bits_per_word = 8
        self.record = record
        self.frames: list[tuple[bytes, bytes]] = []
        self._open = True

    def open(self, bus: int, device: int) -> None:
        """Mark the device open (bus and device are accepted for spidev compatibility)."""
        self._open = True

    def xfer2(self, data: list[int]) -> list[int]:
        """One CS-low window: hand ``data`` to the slave and return its reply bytes."""
        if not self._open:
            raise SpiError("SimSpiDev is not open")
        tx = bytes(data)
        rx = self.slave.transfer(tx)
        if len(rx) != len(tx):
            raise SpiError(f"slave answered {len(rx)} bytes to a {len(tx)}-byte frame")
        if self.record:
            self.frames.append((tx, rx))
        return list(rx)

    def close(self) -> None:
        """Mark the device closed."""
        self._open = False
