"""DLMS over serial lines: HDLC on RS-485 and the optical port with IEC 62056-21 mode E sign-on.

:class:`SerialLink` runs on the daemon's asyncio loop (``loop.add_reader`` on the line's file
descriptor; nothing blocks the loop) and feeds a :class:`~meterd.proto.session.ByteSession` made
by the injected factory (``meterd.cosem.server.build_session_factory(..., link="hdlc")``).

* Real ports are opened by :func:`hw.serial_link.open_port`; ``rs485="kernel"`` turns on the
  kernel RS-485 mode (``TIOCSRS485``: RTS drives the transceiver's DE) and fails loudly where
  the driver lacks it.
* ``port=None`` creates a pseudo-terminal for the simulator: the meter holds the master side and
  :attr:`SerialLink.slave_path` is the device a client opens (pty baud and parity are not
  enforced, see platform notes §4).
* With ``optical=ModeESignOn(...)`` the line starts at 300 Bd 7E1 in the sign-on; after the
  option select it switches to the agreed rate, 8N1, HDLC. After the HDLC inactivity time, or
  once the client disconnected the data link (DISC answered; a session with a true ``ended``
  attribute), the session is closed and the port returns to the sign-on at 300 Bd 7E1. The
  line settings change only after the pending output left the UART (``flush``: tcdrain), so
  the last answer is sent at the rate it was meant for.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tty
from collections.abc import Callable
from typing import Any

from hw.serial_link import SerialLinkError, open_port, set_line
from meterd.proto import iec62056_21 as mode_e
from meterd.proto.session import ByteSession

_log = logging.getLogger("meterd.runtime.dlms_serial")
READ_CHUNK = 4096

__all__ = ["SerialLink", "SerialLinkError"]


def _open_port(port: str, baud: int, rs485: str) -> Any:
    """The pyserial port, non-blocking both ways; ``rs485 = "kernel"`` in kernel RS-485 mode."""
    return open_port(port, baud, timeout_s=0.0, rs485=rs485 == "kernel", write_timeout_s=0.0)


class SerialLink:
    """One serial line serving DLMS HDLC (optionally behind the mode E sign-on)."""

    def __init__(self, factory: Callable[[], ByteSession], port: str | None = None, baud: int = 9600,
                 rs485: str = "none", optical: mode_e.ModeESignOn | None = None,
                 sign_on_timeout_s: float = 2.0) -> None:
        if rs485 not in ("none", "kernel"):
            raise SerialLinkError(f"unknown rs485 mode {rs485!r}")
        self._factory = factory
        self._port_name, self._baud, self._rs485 = port, baud, rs485
        self._optical = optical
        self._sign_on_timeout_s = sign_on_timeout_s
        self._serial: Any = None
        self._fd = -1
        self._slave_fd = -1
        self.slave_path: str | None = None
        self._session: ByteSession | None = None
        self._out = bytearray()
        self._idle: asyncio.TimerHandle | None = None
        self._sign_on_after_flush = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    async def start(self) -> SerialLink:
        """Open the line and start serving."""
        self._loop = asyncio.get_running_loop()
        if self._port_name is None:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fd, self._slave_fd, self.slave_path = master, slave, os.ttyname(slave)
        else:
            self._serial = _open_port(self._port_name, self._baud, self._rs485)
            self._fd = self._serial.fileno()
        os.set_blocking(self._fd, False)
        if self._optical is not None:
            self._apply_events(self._optical.reset())
        self._loop.add_reader(self._fd, self._on_readable)
        _log.info("DLMS serial link on %s", self.slave_path or self._port_name)
        return self

    async def close(self) -> None:
        """Stop serving and close the line."""
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if self._idle is not None:
            self._idle.cancel()
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._serial is not None:
            self._serial.close()
        elif self._fd >= 0:
            os.close(self._fd)
            os.close(self._slave_fd)
        self._fd = -1

    # --- reading ----------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # pty peer closed (EIO) or line error
            _log.debug("serial read: %s", exc)
            return
        if data:
            self.bytes_in += len(data)
            self._on_data(data)

    def _on_data(self, data: bytes) -> None:
        if self._optical is not None and not self._optical.signed_on:
            self._apply_events(self._optical.receive(data))
            self._arm_timer(self._sign_on_timeout_s)
            return
        session = self._ensure_session()
        self._write(b"".join(session.receive(data)))
        if self._optical is not None and getattr(session, "ended", False):
            self._back_to_sign_on()
            return
        self._arm_timer(session.inactivity_timeout_s)

    def _back_to_sign_on(self) -> None:
        """Close the HDLC session and return the optical port to the mode E sign-on (300 Bd 7E1)
        once the pending output has been written."""
        assert self._optical is not None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._out:
            self._sign_on_after_flush = True
            return
        self._apply_events(self._optical.reset())

    def _ensure_session(self) -> ByteSession:
        if self._session is None:
            self._session = self._factory()
        return self._session

    def _apply_events(self, events: list[mode_e.ModeEEvent]) -> None:
        for event in events:
            if isinstance(event, mode_e.Send):
                self._write(event.data)
            elif isinstance(event, mode_e.SwitchBaud):
                self._set_line(event.baud, event.framing)
            else:
                self._ensure_session()

    def _set_line(self, baud: int, framing: str) -> None:
        if self._serial is None:
            return
        set_line(self._serial, baud, framing)

    # --- time-outs --------------------------------------------------------------------------------

    def _arm_timer(self, timeout_s: float) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if timeout_s and self._loop is not None:
            self._idle = self._loop.call_later(timeout_s, self._on_idle)

    def _on_idle(self) -> None:
        self._idle = None
        if self._optical is not None and not self._optical.signed_on:
            self._apply_events(self._optical.timeout())
            return
        if self._session is not None:
            self._write(b"".join(self._session.timeout()))
            if self._optical is not None:
                self._back_to_sign_on()

    # --- writing ----------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self._out += data
        self._flush()

    def _flush(self) -> None:
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        self.bytes_out += n
        del self._out[:n]
        if self._loop is None:
            return
        if self._out:
            self._loop.add_writer(self._fd, self._flush)
        else:
            self._loop.remove_writer(self._fd)
            if self._sign_on_after_flush and self._optical is not None:
                self._sign_on_after_flush = False
                self._back_to_sign_on()
