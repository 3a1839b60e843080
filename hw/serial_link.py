"""Byte links for the MCU-CIU cable: a real serial port, a paced pty pair, and an in-memory null modem.

- :func:`open_port` opens a pyserial port from a device path or URL (``/dev/ttyAMA5``, ``loop://``),
  optionally in the kernel RS-485 mode; :func:`set_line` changes its rate and framing. No other
  module of the meter or the CIU imports pyserial.
- :class:`PacedWriter` spaces written bytes at the configured baud (10 bit times per character),
  so a pty behaves like the real cable in time.
- :class:`PtyWire` joins two pty pairs with a forwarding thread that paces bytes at the baud
  rate: each end gets a device path a pyserial port can open (meter and CIU in two processes).
- :class:`SimWire` is an in-memory null modem driven by an injected clock (seconds), which can
  split, delay, drop and corrupt bytes and cut the line: used by tests and the simulator.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hw.errors import HwError


class SerialLinkError(HwError):
    """Base of the errors of this module."""


class ByteWriter(Protocol):
    def write(self, data: bytes) -> int | None: ...


def char_time_s(baud: int) -> float:
    """Time on the wire of one 8N1 character (s): 10 bit times."""
    if baud <= 0:
        raise SerialLinkError("baud must be positive")
    return 10.0 / baud


def open_port(url: str, baud: int = 9600, timeout_s: float = 0.0, rs485: bool = False,
              write_timeout_s: float | None = 1.0) -> Any:
    """Open a pyserial port (path or URL) in 8N1; ``timeout_s = 0`` makes reads non-blocking,
    ``write_timeout_s = 0`` writes (s, None = block until written).

    ``rs485=True`` turns on the kernel RS-485 mode (``TIOCSRS485``: RTS drives the transceiver's
    DE while sending) and fails loudly where the UART driver lacks it.
    """
    import serial  # imported here: hw back ends import their libraries lazily
    import serial.rs485

    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=timeout_s, write_timeout=write_timeout_s)
    except (serial.SerialException, ValueError) as exc:
        raise SerialLinkError(f"cannot open {url}: {exc}") from exc
    if rs485:
        try:
            port.rs485_mode = serial.rs485.RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)
        except (ValueError, OSError) as exc:
            port.close()
            raise SerialLinkError(f"{url}: kernel RS-485 mode unavailable: {exc}") from exc
    return port


#: Character framings :func:`set_line` knows: 8 data bits no parity, 7 data bits even parity.
FRAMINGS = ("8N1", "7E1")


def set_line(port: Any, baud: int, framing: str) -> None:
    """Switch an open pyserial port to ``baud`` (Bd) and ``framing`` (one of :data:`FRAMINGS`),
    after the pending output left the UART (``flush``: tcdrain), so it goes out at the old settings."""
    if framing not in FRAMINGS:
        raise SerialLinkError(f"unknown framing {framing!r}; choose one of {', '.join(FRAMINGS)}")
    import serial

    seven_e_one = framing == "7E1"
    port.flush()
    port.baudrate = baud
    port.bytesize = serial.SEVENBITS if seven_e_one else serial.EIGHTBITS
    port.parity = serial.PARITY_EVEN if seven_e_one else serial.PARITY_NONE


class PacedWriter:
    """Writes bytes one by one, sleeping one character time between them (s per char = 10 / baud)."""

    def __init__(self, port: ByteWriter, baud: int, sleep: Callable[[float], None] = time.sleep) -> None:
        self._port = port
        self._char_s = char_time_s(baud)
        self._sleep = sleep

    def write(self, data: bytes) -> int:
        for i in range(len(data)):
            self._port.write(data[i : i + 1])
            self._sleep(self._char_s)
        return len(data)


# ---------------------------------------------------------------------------------------------
# Real pty pair with a paced forwarder
# ---------------------------------------------------------------------------------------------


class PtyWire:
    """Two pty pairs joined by a thread that forwards bytes, one character time (10 / baud s) apart.

    ``path_a`` and ``path_b`` are the slave device paths for the two ends. Use as a context
    manager; ``close()`` stops the thread and closes all descriptors.
    """

    def __init__(self, baud: int = 9600) -> None:
        self._char_s = char_time_s(baud)
        self._fds: list[int] = []
        self._masters: list[int] = []
        self.paths: list[str] = []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            self._masters.append(master)
            self._fds += [master, slave]
            self.paths.append(os.ttyname(slave))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pty-wire", daemon=True)
        self._thread.start()

    @property
    def path_a(self) -> str:
        return self.paths[0]

    @property
    def path_b(self) -> str:
        return self.paths[1]

    def _run(self) -> None:
        a, b = self._masters
        peer = {a: b, b: a}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.02)
            for fd in ready:
                try:
                    data = os.read(fd, 256)
                except OSError:
                    continue
                for i in range(len(data)):
                    os.write(peer[fd], data[i : i + 1])
                    time.sleep(self._char_s)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> PtyWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# In-memory null modem
# ---------------------------------------------------------------------------------------------


@dataclass
class WireFaults:
    """Fault model of one :class:`SimWire` (probabilities per byte)."""

    corrupt_p: float = 0.0
    drop_p: float = 0.0
    jitter_s: float = 0.0


class SimWireEnd:
    """One end of a :class:`SimWire`: ``write`` and ``read`` like a non-blocking serial port."""

    def __init__(self, wire: SimWire, index: int) -> None:
        self._wire = wire
        self._index = index

    def write(self, data: bytes) -> int:
        self._wire.transmit(self._index, data)
        return len(data)

    def read(self, size: int = 4096) -> bytes:
        return self._wire.receive(1 - self._index, size)

    @property
    def in_waiting(self) -> int:
        return self._wire.waiting(1 - self._index)


class SimWire:
    """A full-duplex null modem in memory; time comes from ``now`` (s), faults from a seeded RNG.

    Each byte arrives one character time after the previous one on the same direction (plus
    optional jitter); bytes written while the line is cut are lost.
    """

    def __init__(self, now: Callable[[], float], baud: int = 9600, faults: WireFaults | None = None, seed: int = 0) -> None:
        self._now = now
        self._char_s = char_time_s(baud)
        self.faults = faults or WireFaults()
        self._rng = random.Random(seed)
        self._queues: list[deque[tuple[float, int]]] = [deque(), deque()]
        self._busy_until = [0.0, 0.0]
        self._cut = False
        self.bytes_sent = [0, 0]
        self.a = SimWireEnd(self, 0)
        self.b = SimWireEnd(self, 1)

    @property
    def cut(self) -> bool:
        """True while the line is cut: bytes on the wire and bytes written meanwhile are lost."""
        return self._cut

    @cut.setter
    def cut(self, value: bool) -> None:
        self._cut = value
        if value:
            for queue in self._queues:
                queue.clear()

    def transmit(self, direction: int, data: bytes) -> None:
        t = max(self._now(), self._busy_until[direction])
        for b in data:
            t += self._char_s
            self.bytes_sent[direction] += 1
            if self.cut or self._rng.random() < self.faults.drop_p:
                continue
            if self._rng.random() < self.faults.corrupt_p:
                b ^= 1 << self._rng.randrange(8)
            self._queues[direction].append((t + self._rng.random() * self.faults.jitter_s, b))
        self._busy_until[direction] = t

    def receive(self, direction: int, size: int) -> bytes:
        queue = self._queues[direction]
        now = self._now()
        out = bytearray()
        while queue and len(out) < size and queue[0][0] <= now:
            out.append(queue.popleft()[1])
        return bytes(out)

    def waiting(self, direction: int) -> int:
        now = self._now()
        return sum(1 for t, _ in self._queues[direction] if t <= now)


def main() -> None:
    """``python -m hw.serial_link [baud]``: create a paced pty wire and print both ends until Ctrl-C."""
    import sys

    baud = int(sys.argv[1]) if len(sys.argv) > 1 else 9600
    with PtyWire(baud) as wire:
        print(f"meter end: {wire.path_a}\nCIU end:   {wire.path_b}\n({baud} Bd, Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
