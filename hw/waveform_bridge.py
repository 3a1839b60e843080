"""The meter's end of the waveform bridge: its USB CDC device drained by a thread.

The bridge (docs/waveform-bridge.md) sends about 173 kB/s. The kernel's tty layer holds only a
few kilobytes for a reader that does not read: when the buffer is full the CDC driver stops
fetching, the bridge's own buffer fills and it must drop sample sets. So the device is read
continuously by a thread of its own (blocking reads with a short timeout), not once per meter
cycle; :meth:`BridgeReceiver.take` hands the meter whatever arrived since the last call.

The device may vanish (the bridge unplugged or reset: pyserial raises, the pty of the simulated
bridge is closed); the thread then closes it, says so through :attr:`connected`, and tries to
open the path again every ``retry_s`` (s). Each successful open adds one to :attr:`opens`, so
the reader of the bytes knows a new byte stream began. A buffer above ``max_buffer`` bytes
(the meter not taking for seconds) drops what arrives and counts it in :attr:`dropped_bytes`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from hw.serial_link import SerialLinkError, open_port

log = logging.getLogger(__name__)

READ_SIZE = 4096
"""Bytes asked for per read (the CDC driver delivers 64-byte packets, up to 19 per ms)."""


class BridgeReceiver:
    """A thread that keeps the bridge's device open and drains it into a buffer."""

    def __init__(self, path: str, retry_s: float = 1.0, read_timeout_s: float = 0.05,
                 max_buffer: int = 1 << 20, opener: Callable[[str], Any] | None = None) -> None:
        self.path = path
        self._retry_s = retry_s
        self._read_timeout_s = read_timeout_s
        self._max_buffer = max_buffer
        self._opener = opener if opener is not None else self._open
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._stop = threading.Event()
        self._port: Any = None
        self._opens = 0
        self.received_bytes = 0
        self.dropped_bytes = 0
        self.last_error = ""
        self._thread: threading.Thread | None = None

    def _open(self, path: str) -> Any:
        # a CDC device ignores the line rate; 8N1 as any port
        return open_port(path, baud=115200, timeout_s=self._read_timeout_s, write_timeout_s=0.0)

    @property
    def connected(self) -> bool:
        """True while the device is open."""
        return self._port is not None

    @property
    def opens(self) -> int:
        """Successful opens of the device so far."""
        return self._opens

    def start(self) -> None:
        """Start the reading thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="waveform-bridge", daemon=True)
            self._thread.start()

    def take(self) -> bytes:
        """Every byte received since the last call."""
        with self._lock:
            data = bytes(self._buffer)
            self._buffer.clear()
        return data

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._port is None and not self._try_open():
                self._stop.wait(self._retry_s)
                continue
            try:
                data = bytes(self._port.read(READ_SIZE))
            except (OSError, SerialLinkError) as exc:
                self._lost(exc)
                continue
            if data:
                self._keep(data)

    def _try_open(self) -> bool:
        try:
            port = self._opener(self.path)
        except (OSError, SerialLinkError) as exc:
            if str(exc) != self.last_error:
                log.info("waveform bridge %s not open: %s", self.path, exc)
            self.last_error = str(exc)
            return False
        with self._lock:
            self._buffer.clear()  # bytes of the previous connection are not this stream's
        self._port = port
        self._opens += 1
        self.last_error = ""
        log.info("waveform bridge %s open", self.path)
        return True

    def _lost(self, exc: Exception) -> None:
        self.last_error = str(exc) or type(exc).__name__
        port, self._port = self._port, None
        with contextlib.suppress(Exception):
            port.close()
        log.warning("waveform bridge %s lost: %s", self.path, self.last_error)

    def _keep(self, data: bytes) -> None:
        with self._lock:
            self.received_bytes += len(data)
            if len(self._buffer) + len(data) > self._max_buffer:
                self.dropped_bytes += len(data)
                return
            self._buffer += data

    def close(self) -> None:
        """Stop the thread and close the device."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()
