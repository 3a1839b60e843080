"""The I/O shell of the meter's CIU link: the line (a simulated paced pty pair or an RS-485 device)
and the runner that feeds it to :class:`~meterd.services.ciu_meter.MeterCiu` on the asyncio loop.

The link runs on real monotonic time (its timers are protocol timers on a real line), independent
of the simulated meter clock's speed.

A device line is kept by a :class:`hw.serial_link.ReopeningPort`: one that cannot be opened (missing,
held by another process, refusing the kernel RS-485 mode) or fails while running (a read or write
raising ``OSError``, a hang-up: a USB adapter pulled) is closed and opened again after a back-off
(``retry_s`` doubling up to ``max_retry_s``, s); ``on_state(connected, reason)`` hears each
change. Meanwhile the service keeps its timers (the link layer reports the loss) and what it
sends is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from hw.serial_link import CableFaults, ReopeningPort
from meterd.runtime.port_retry import PortRetry
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
    faults: CableFaults | None = None
    """The simulated cable's faults (None on a device line)."""

    def fileno(self) -> int:
        return self.fd


def open_sim_line(baud: int) -> CiuLine:
    """A pair of pseudo-terminals joined by a thread that paces bytes at ``baud`` (Bd; 10 bit
    times per character, like the cable); the meter takes one end, the CIU end is described."""
    from hw.serial_link import PtyWire

    wire = PtyWire(baud)
    fd = os.open(wire.path_a, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def close() -> None:
        os.close(fd)
        wire.close()

    return CiuLine(fd, close, wire.path_b, wire.faults)


def open_device_line(port: str, baud: int, rs485: bool) -> CiuLine:
    """A serial device (e.g. ``/dev/ttyAMA5``) at ``baud`` (Bd); ``rs485``: in the kernel's RS-485
    mode (the UART's RTS drives the transceiver's DE), else for an auto-direction transceiver."""
    from hw.serial_link import open_port

    device = open_port(port, baud, rs485=rs485)
    return CiuLine(device.fileno(), device.close, device_description(port, baud, rs485))


def device_description(port: str, baud: int, rs485: bool) -> str:
    """The device with its settings, e.g. "/dev/ttyAMA5 (9600 Bd, auto-direction RS-485)"."""
    mode = "kernel RS-485" if rs485 else "auto-direction RS-485"
    return f"{port} ({baud} Bd, {mode})"


class CiuPortRunner:
    """Runs the CIU service on the running loop: ``add_reader`` on the line, a ``poll_s`` (s) timer.

    ``line``: an open line (the simulator's pty pair); or ``reopen`` (None for ``line``): how to
    open the device, kept open, and reopened after a failure, with ``on_state`` told of changes."""

    def __init__(self, ciu: MeterCiu, line: CiuLine | None, poll_s: float,
                 reopen: Callable[[], CiuLine] | None = None, on_state: Callable[[bool, str], None] | None = None,
                 retry_s: float = 1.0, max_retry_s: float = 60.0) -> None:
        self._ciu = ciu
        self._fd = -1
        self._closer: Callable[[], None] | None = None
        self._poll_s = poll_s
        self._out = bytearray()
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._on_state = on_state
        self._keeper: ReopeningPort | None = None
        self._retry: PortRetry | None = None
        if reopen is not None:
            self._keeper = ReopeningPort(reopen, self._loop.time, retry_s, max_retry_s, listener=self._changed,
                                         open_now=False)
            self._retry = PortRetry(self._keeper, self._loop)
            if not self._keeper.reopen():
                self._retry.schedule()
        else:
            assert line is not None
            self._serve(line.fd, line.close)
        self._tick()

    @property
    def connected(self) -> bool:
        """Whether the line is open."""
        return self._fd >= 0

    def _serve(self, fd: int, closer: Callable[[], None] | None) -> None:
        self._fd, self._closer = fd, closer
        os.set_blocking(fd, False)
        self._loop.add_reader(fd, self._on_readable)

    def _changed(self, connected: bool, reason: str) -> None:
        if self._on_state is not None:
            self._on_state(connected, reason)
        if connected:
            assert self._keeper is not None
            self._serve(self._keeper.fileno(), None)  # the keeper closes the device

    def reopen_now(self) -> bool:
        """Try the device at once instead of after the back-off; True when it is open."""
        if self._retry is not None:
            self._retry.now()
        return self._fd >= 0

    def _lost(self, why: Exception | str) -> None:
        """The device failed: leave the loop, drop what waits to be sent, reopen after the back-off."""
        assert self._keeper is not None
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = -1
        self._out.clear()
        self._keeper.lost(why)
        if self._retry is not None:
            self._retry.schedule()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # pty peer gone (EIO): the link timers report the loss
            log.debug("CIU line read: %s", exc)
            if self._keeper is not None:
                self._lost(exc)
            return
        if not data and self._keeper is not None:  # readable but empty: the device hung up
            self._lost("device disconnected (hang-up)")
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
        if self._fd < 0:  # the device is off: drop, the link layer retransmits once it is back
            self._out.clear()
            return
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            log.debug("CIU line write: %s", exc)
            if self._keeper is not None:
                self._lost(exc)
                return
            n = len(self._out)  # the line is gone: drop, the link layer retransmits
        del self._out[:n]
        if self._out:
            self._loop.add_writer(self._fd, self._drain)
        else:
            self._loop.remove_writer(self._fd)

    def _drain(self) -> None:
        self.flush()

    async def close(self) -> None:
        """Stop the timers, leave the loop, close the line."""
        if self._timer is not None:
            self._timer.cancel()
        if self._retry is not None:
            self._retry.cancel()
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = -1
        if self._keeper is not None:
            self._keeper.close()
        elif self._closer is not None:
            self._closer()
