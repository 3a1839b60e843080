"""The I/O shell of the meter's CIU link: the line (a simulated paced pty pair or an RS-485 device)
and the runner that feeds it to :class:`~meterd.services.ciu_meter.MeterCiu` on the asyncio loop.

The link runs on real monotonic time (its timers are protocol timers on a real line), independent
of the simulated meter clock's speed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from meterd.services.ciu_meter import MeterCiu

log = logging.getLogger("meterd.ciu")
READ_CHUNK = 4096


@dataclass(frozen=True)
class CiuLine:
    """An open line: its file descriptor, how to close it, and where the other end is."""

    fd: int
    close: Callable[[], None]
    description: str
    """The CIU end (a pty path in simulation) or the device with its settings."""


def open_sim_line(baud: int) -> CiuLine:
    """A pair of pseudo-terminals joined by a thread that paces bytes at ``baud`` (Bd; 10 bit
    times per character, like the cable); the meter takes one end, the CIU end is described."""
    from hw.serial_link import PtyWire

    wire = PtyWire(baud)
    fd = os.open(wire.path_a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def close() -> None:
        os.close(fd)
        wire.close()

    return CiuLine(fd, close, wire.path_b)


def open_device_line(port: str, baud: int, rs485: bool) -> CiuLine:
    """A serial device (e.g. ``/dev/ttyAMA5``) at ``baud`` (Bd); ``rs485``: in the kernel's RS-485
    mode (the UART's RTS drives the transceiver's DE), else for an auto-direction transceiver."""
    from hw.serial_link import open_port

    device = open_port(port, baud, rs485=rs485)
    mode = "kernel RS-485" if rs485 else "auto-direction RS-485"
    return CiuLine(device.fileno(), device.close, f"{port} ({baud} Bd, {mode})")


class CiuPortRunner:
    """Runs the CIU service on the running loop: ``add_reader`` on the line, a ``poll_s`` (s) timer."""

    def __init__(self, ciu: MeterCiu, line: CiuLine, poll_s: float) -> None:
        self._ciu = ciu
        self._fd = line.fd
        self._closer = line.close
        self._poll_s = poll_s
        self._out = bytearray()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        os.set_blocking(self._fd, False)
        self._loop.add_reader(self._fd, self._on_readable)
        self._tick()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # pty peer gone (EIO): the link timers report the loss
            log.debug("CIU line read: %s", exc)
            return
        if data:
            self._ciu.on_events(self._ciu.service.receive_bytes(data))
            self.flush()

    def _tick(self) -> None:
        self._ciu.on_events(self._ciu.service.poll())
        self.flush()
        self._timer = self._loop.call_later(self._poll_s, self._tick)

    def flush(self) -> None:
        """Write what the service has to send (the rest when the line can take it)."""
        self._out += self._ciu.service.data_to_send()
        if not self._out:
            return
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            log.debug("CIU line write: %s", exc)
            n = len(self._out)  # the line is gone: drop, the link layer retransmits
        del self._out[:n]
        if self._out:
            self._loop.add_writer(self._fd, self._drain)
        else:
            self._loop.remove_writer(self._fd)

    def _drain(self) -> None:
        self.flush()

    async def close(self) -> None:
        """Stop the timer, leave the loop, close the line."""
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._closer()
