"""Byte links for the MCU-CIU cable: a real serial port, a paced pty pair, and an in-memory null modem.

- :func:`open_port` opens a pyserial port from a device path or URL (``/dev/ttyAMA5``, ``loop://``),
  optionally in the kernel RS-485 mode; :func:`set_line` changes its rate and framing. No other
  module of the meter or the CIU imports pyserial.
- :class:`PacedWriter` spaces written bytes at the configured baud (10 bit times per character),
  so a pty behaves like the real cable in time.
- :class:`PtyWire` joins two pty pairs with a forwarding thread that paces bytes at the baud
  rate: each end gets a device path a pyserial port can open (meter and CIU in two processes).
- :class:`SimWire` is an in-memory 2-wire RS-485 bus driven by an injected clock (seconds): one
  talker at a time, overlapping drivers garble what is on the line, driver turn-on and turn-off
  delays, each station hears its own echo; it can also drop and corrupt bytes and cut the line.
  Used by tests and the benches.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import threading
import time
import tty
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
              write_timeout_s: float | None = 1.0, exclusive: bool = True) -> Any:
    """Open a pyserial port (path or URL) in 8N1; ``timeout_s = 0`` makes reads non-blocking,
    ``write_timeout_s = 0`` writes (s, None = block until written).

    ``exclusive`` (a device path only) takes pyserial's exclusive lock (``flock``), so a second
    process that opens the port the same way is refused; a port another process holds (that lock,
    or ``TIOCEXCL``) fails with "in use by another process". ``rs485=True`` turns on the kernel
    RS-485 mode (``TIOCSRS485``: RTS drives the transceiver's DE while sending) and fails loudly
    where the UART driver lacks it (a USB RS-485 adapter refuses the ioctl).
    """
    import serial  # imported here: hw back ends import their libraries lazily
    import serial.rs485

    options: dict[str, Any] = {"exclusive": True} if exclusive and "://" not in url else {}
    try:
        port = serial.serial_for_url(url, baudrate=baud, timeout=timeout_s, write_timeout=write_timeout_s, **options)
    except (serial.SerialException, ValueError) as exc:
        raise SerialLinkError(f"cannot open {url}: {_why_not_open(exc)}") from exc
    if rs485:
        try:
            port.rs485_mode = serial.rs485.RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)
        except (ValueError, OSError) as exc:
            port.close()
            raise SerialLinkError(f"{url}: kernel RS-485 mode unavailable: {exc} (a transceiver that switches"
                                  ' itself is configured with direction "auto")') from exc
    return port


def _why_not_open(exc: Exception) -> str:
    """pyserial's reason in words: a missing device, or a port another process holds."""
    errno_ = getattr(exc, "errno", None)
    text = str(exc)
    if errno_ == errno.EBUSY or "exclusively lock" in text or "[Errno 16]" in text:
        return "in use by another process"
    if errno_ == errno.ENOENT or "[Errno 2]" in text:
        return "no such device"
    return text


class ReopeningPort:
    """A serial port that outlives its device: the CIU's end of the meter cable, and the meter's
    own serial interfaces.

    A read or write that fails (the device vanished: a USB adapter pulled, the simulator's pty
    closed when the meter stops; pyserial raises ``SerialException``, an ``OSError``) closes the
    port; while it is closed, reads return ``b""``, writes are dropped, and opening is tried
    again after ``retry_s`` (s, on the injected monotonic ``now``), the wait doubling after each
    failed try up to ``max_retry_s`` (s; default ``retry_s``: a fixed period) and starting again
    from ``retry_s`` once open. ``connected`` tells whether the device is open; ``failures``
    counts the losses; ``last_error`` says why it is closed. ``listener(connected, reason)`` is
    called on each change (open → closed, closed → open; a first open that fails counts as one).
    ``opener`` is e.g. ``lambda: open_port(path, baud)``; the first try is made at once, unless
    ``open_now`` is false (then at the first :meth:`reopen`, :meth:`read`).
    """

    def __init__(self, opener: Callable[[], Any], now: Callable[[], float], retry_s: float = 1.0,
                 max_retry_s: float | None = None, listener: Callable[[bool, str], None] | None = None,
                 open_now: bool = True) -> None:
        self._opener = opener
        self._now = now
        self._retry_s = retry_s
        self._max_retry_s = retry_s if max_retry_s is None else max(max_retry_s, retry_s)
        self._wait_s = retry_s
        self._listener = listener
        self._port: Any = None
        self._next_try = float("-inf")
        self._reported: bool | None = None
        self.failures = 0
        self.last_error = ""
        if open_now:
            self.reopen()

    @property
    def connected(self) -> bool:
        return self._port is not None

    @property
    def port(self) -> Any:
        """The open pyserial port, or None while closed."""
        return self._port

    def fileno(self) -> int:
        """The open port's file descriptor; -1 while closed."""
        return int(self._port.fileno()) if self._port is not None else -1

    def retry_in_s(self) -> float:
        """How long (s) until :meth:`reopen` tries again (0 when due; 0 while open)."""
        return 0.0 if self._port is not None else max(self._next_try - self._now(), 0.0)

    def _report(self, connected: bool) -> None:
        if self._reported is connected:
            return
        self._reported = connected
        if self._listener is not None:
            self._listener(connected, "" if connected else self.last_error)

    def expire_wait(self) -> None:
        """Make the next :meth:`reopen` try at once (the back-off it reached is kept)."""
        self._next_try = float("-inf")

    def reopen(self) -> bool:
        """Try to open the device when it is closed and a try is due; True when it is open."""
        now = self._now()
        if self._port is not None:
            return True
        if now < self._next_try:
            return False
        try:
            self._port = self._opener()
        except (OSError, SerialLinkError) as exc:
            self.last_error = str(exc)
            self._next_try = now + self._wait_s
            self._wait_s = min(self._wait_s * 2, self._max_retry_s)
            self._report(False)
            return False
        self._wait_s = self._retry_s
        self._next_try = now + self._retry_s
        self.last_error = ""
        self._report(True)
        return True

    def lost(self, exc: Exception | str) -> None:
        """The device failed (a read or write raised ``exc``): close it, try again later."""
        if self._port is None:
            return
        self.failures += 1
        self.last_error = str(exc) or type(exc).__name__
        port, self._port = self._port, None
        self._next_try = self._now() + self._wait_s
        self._wait_s = min(self._wait_s * 2, self._max_retry_s)
        with contextlib.suppress(Exception):
            port.close()
        self._report(False)

    def read(self, size: int = 4096) -> bytes:
        self.reopen()
        if self._port is None:
            return b""
        try:
            return bytes(self._port.read(size))
        except OSError as exc:
            self.lost(exc)
            return b""

    def write(self, data: bytes) -> int:
        if self._port is None:
            return 0
        try:
            self._port.write(data)
        except OSError as exc:
            self.lost(exc)
            return 0
        return len(data)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()


#: Character framings :func:`set_line` knows: 8 data bits no parity, 7 data bits even parity.
FRAMINGS = ("8N1", "7E1")


def set_line(port: Any, baud: int, framing: str) -> None:
    """Switch an open pyserial port to ``baud`` (Bd) and ``framing`` (one of :data:`FRAMINGS`),
    after the pending output left the UART (``flush``: tcdrain), so it goes out at the old settings;
    :class:`SerialLinkError` when the driver refuses them (or the device is gone)."""
    if framing not in FRAMINGS:
        raise SerialLinkError(f"unknown framing {framing!r}; choose one of {', '.join(FRAMINGS)}")
    import termios

    import serial

    seven_e_one = framing == "7E1"
    try:
        port.flush()
        port.baudrate = baud
        port.bytesize = serial.SEVENBITS if seven_e_one else serial.EIGHTBITS
        port.parity = serial.PARITY_EVEN if seven_e_one else serial.PARITY_NONE
    except (OSError, ValueError, termios.error) as exc:  # the driver refuses the setting, or the device is gone
        raise SerialLinkError(f"line settings {baud} Bd {framing} refused: {exc}") from exc


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


class CableFaults:
    """What a cable does to the bytes crossing it, set at any time from another thread: ``cut``
    (nothing crosses, either way) and ``corrupt_rate`` (the probability that a byte arrives with
    one bit flipped: noise on the line); ``corrupted`` counts the bytes it garbled. Each direction
    (0, 1) draws from its own generator seeded from ``seed``, so which bytes one direction garbles
    does not depend on how the traffic interleaves."""

    def __init__(self, seed: int = 0) -> None:
        self.cut = False
        self.corrupt_rate = 0.0
        self.corrupted = 0
        self._rngs = (random.Random(seed), random.Random(seed + 1))

    def carry(self, data: bytes, direction: int = 0) -> bytes:
        """``data`` as it arrives at the other end (b"" when the cable is cut)."""
        if self.cut:
            return b""
        if self.corrupt_rate <= 0.0:
            return data
        rng = self._rngs[direction]
        out = bytearray(data)
        for i in range(len(out)):
            if rng.random() < self.corrupt_rate:
                out[i] ^= 1 << rng.randrange(8)
                self.corrupted += 1
        return bytes(out)


class PtyWire:
    """Two pty pairs joined by a thread that forwards bytes, one character time (10 / baud s) apart.

    ``path_a`` and ``path_b`` are the slave device paths for the two ends. Use as a context
    manager; ``close()`` stops the thread and closes all descriptors. ``faults`` act on the bytes
    on their way (a cut cable, noise).
    """

    def __init__(self, baud: int = 9600) -> None:
        self.faults = CableFaults()
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
                data = self.faults.carry(data, 0 if fd == a else 1)
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


@dataclass(frozen=True)
class BusDrivers:
    """RS-485 driver timing of the two stations on a :class:`SimWire` (s).

    ``turn_on_s``: from the write until the driver holds the bus and the first start bit goes out
    (the kernel's RS-485 ``delay_rts_before_send``, or an auto-direction transceiver's enable);
    ``turn_off_s``: the driver keeps the bus this long after the last stop bit (the kernel's
    ``delay_rts_after_send`` plus its latency in noticing the empty shift register).
    """

    turn_on_s: float = 0.0
    turn_off_s: float = 0.0


class SimWireEnd:
    """One end of a :class:`SimWire`: ``write`` and ``read`` like a non-blocking serial port."""

    def __init__(self, wire: SimWire, index: int) -> None:
        self._wire = wire
        self._index = index

    def write(self, data: bytes) -> int:
        self._wire.transmit(self._index, data)
        return len(data)

    def read(self, size: int = 4096) -> bytes:
        return self._wire.receive(self._index, size)

    @property
    def in_waiting(self) -> int:
        return self._wire.waiting(self._index)


@dataclass
class _Slot:
    start: float
    end: float
    byte: int
    sender: int


class SimWire:
    """A 2-wire RS-485 bus in memory: two stations, one pair of wires, time from ``now`` (s).

    Each station's transceiver drives the bus from ``drivers.turn_on_s`` before its first byte to
    ``drivers.turn_off_s`` after its last one; bytes follow each other one character time
    (10 / baud s) apart. While both drivers are on at once, every byte on the line in that time
    is garbled, for both receivers. The receivers are always on (RE tied low), so each station
    hears its own transmission back (``echo``). Faults (per byte, seeded), and a cut line: the
    other station hears nothing, the talker still hears its own echo.
    """

    def __init__(self, now: Callable[[], float], baud: int = 9600, faults: WireFaults | None = None, seed: int = 0,
                 drivers: BusDrivers | None = None, echo: bool = True) -> None:
        self._now = now
        self._char_s = char_time_s(baud)
        self.faults = faults or WireFaults()
        self.drivers = drivers or BusDrivers()
        self.echo = echo
        self._rng = random.Random(seed)
        self._rx: list[list[_Slot]] = [[], []]  # bytes on their way to each station's receiver
        self._busy_until = [float("-inf"), float("-inf")]  # end of the last byte each station sent
        self._driving: list[list[tuple[float, float]]] = [[], []]  # driver-on intervals per station
        self._cut = False
        self.bytes_sent = [0, 0]
        self.collisions = 0
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
            for index, queue in enumerate(self._rx):
                queue[:] = [slot for slot in queue if slot.sender == index]

    def transmit(self, station: int, data: bytes) -> None:
        """``station`` (0 = a, 1 = b) writes ``data``: it goes out byte by byte after the driver is on."""
        if not data:
            return
        now = self._now()
        drivers = self.drivers
        intervals = self._driving[station]
        if intervals and now <= intervals[-1][1]:  # the driver is still on: continue this transmission
            t = max(now, self._busy_until[station])
        else:
            t = now + drivers.turn_on_s
            intervals.append((now, now))
        for b in data:
            start, t = t, t + self._char_s
            self.bytes_sent[station] += 1
            if self._rng.random() < self.faults.drop_p:
                continue
            if self._rng.random() < self.faults.corrupt_p:
                b ^= 1 << self._rng.randrange(8)
            end = t + self._rng.random() * self.faults.jitter_s
            if self.echo:
                self._rx[station].append(_Slot(start, end, b, station))
            if not self._cut:
                self._rx[1 - station].append(_Slot(start, end, b, station))
        self._busy_until[station] = t
        intervals[-1] = (intervals[-1][0], t + drivers.turn_off_s)

    def _garbled(self, slot: _Slot) -> bool:
        """Whether the other station's driver was on during any part of this byte."""
        return any(on < slot.end and slot.start < off for on, off in self._driving[1 - slot.sender])

    def receive(self, station: int, size: int) -> bytes:
        """What ``station``'s receiver has heard until now (garbled bytes where drivers overlapped)."""
        now = self._now()
        queue = self._rx[station]
        n = 0
        while n < len(queue) and n < size and queue[n].end <= now:  # in order of writing: jitter never reorders
            n += 1
        if not n:
            return b""
        ready = queue[:n]
        del queue[:n]
        out = bytearray()
        for slot in ready:
            if self._garbled(slot):
                self.collisions += 1
                out.append(slot.byte ^ self._rng.randrange(1, 256))
            else:
                out.append(slot.byte)
        self._prune(now)
        return bytes(out)

    def _prune(self, now: float) -> None:
        horizon = now - 1.0  # no byte still queued started that long ago
        for intervals in self._driving:
            while len(intervals) > 1 and intervals[0][1] < horizon:
                intervals.pop(0)

    def waiting(self, station: int) -> int:
        now = self._now()
        return sum(1 for slot in self._rx[station] if slot.end <= now)

    def talking(self, station: int) -> bool:
        """Whether ``station``'s driver is on now."""
        now = self._now()
        return any(on <= now <= off for on, off in self._driving[station])


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
