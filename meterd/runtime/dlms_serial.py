"""DLMS over serial lines: HDLC on RS-485 and the optical port with the IEC 62056-21 sign-on (modes C and E).

:class:`SerialLink` runs on the daemon's asyncio loop (``loop.add_reader`` on the line's file
descriptor; nothing blocks the loop) and feeds a :class:`~meterd.proto.session.ByteSession` made
by the injected factory (``meterd.cosem.server.build_session_factory(..., link="hdlc")``).

* Real ports are opened by :func:`hw.serial_link.open_port`; ``rs485="kernel"`` turns on the
  kernel RS-485 mode (``TIOCSRS485``: RTS drives the transceiver's DE) and fails loudly where
  the driver lacks it.
* A device that fails (missing, refusing the RS-485 ioctl, held by another process at start; a
  read or write raising ``OSError`` or a hang-up while running: a USB adapter pulled) is closed
  and reopened after a back-off (``retry_s`` doubling up to ``max_retry_s``, s) by a
  :class:`hw.serial_link.ReopeningPort`; ``on_state(connected, reason)`` hears each change (the
  composition root switches the interface off and on). Without ``on_state`` a device that
  cannot be opened at start raises :class:`SerialLinkError`, as before.
* ``port=None`` creates a pseudo-terminal for the simulator: the meter holds the master side and
  :attr:`SerialLink.slave_path` is the device a client opens (pty baud and parity are not
  enforced, see platform notes §4). Its :attr:`SerialLink.faults` (a
  :class:`hw.serial_link.CableFaults`) act on the bytes between the pty and the link (a cut
  line, noise), as the line would; the HDLC layer's own checks find them (frames with a bad
  HCS/FCS dropped, :attr:`SerialLink.dropped_frames`).
* The HDLC inactivity time-out runs on the loop's clock from the last valid frame addressed to
  this station (:class:`~meterd.proto.session.TimedSession`): frames for other meters on the
  bus, broadcasts and garbage never extend it.
* With ``optical=ModeESignOn(...)`` the line starts at 300 Bd 7E1 in the sign-on; after the
  option select it switches to the agreed rate, 8N1, HDLC (mode E), or sends the data readout at
  the agreed rate, 7E1, and returns to 300 Bd (mode C). No answer of the sign-on leaves before
  its earliest send time (the IEC 62056-21 reaction time, >= 200 ms, on the loop's clock). After the HDLC inactivity time, or
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

from hw.serial_link import CableFaults, ReopeningPort, SerialLinkError, open_port, set_line
from meterd.proto import iec62056_21 as mode_e
from meterd.proto.session import ByteSession, TimedSession
from meterd.runtime.port_retry import PortRetry

_log = logging.getLogger("meterd.runtime.dlms_serial")
READ_CHUNK = 4096
#: The mode E sign-on's line settings (IEC 62056-21: 300 Bd, 7E1; :meth:`ModeESignOn.reset`).
_SIGN_ON_LINE = (300, "7E1")

__all__ = ["SerialLink", "SerialLinkError"]


def _open_port(port: str, baud: int, rs485: str) -> Any:
    """The pyserial port, non-blocking both ways; ``rs485 = "kernel"`` in kernel RS-485 mode."""
    return open_port(port, baud, timeout_s=0.0, rs485=rs485 == "kernel", write_timeout_s=0.0)


class SerialLink:
    """One serial line serving DLMS HDLC (optionally behind the mode E sign-on)."""

    def __init__(self, factory: Callable[[], ByteSession], port: str | None = None, baud: int = 9600,
                 rs485: str = "none", optical: mode_e.ModeESignOn | None = None,
                 sign_on_timeout_s: float = 2.0, on_state: Callable[[bool, str], None] | None = None,
                 retry_s: float = 1.0, max_retry_s: float = 60.0) -> None:
        if rs485 not in ("none", "kernel"):
            raise SerialLinkError(f"unknown rs485 mode {rs485!r}")
        self._factory = factory
        self._port_name, self._baud, self._rs485 = port, baud, rs485
        self._optical = optical
        self._sign_on_timeout_s = sign_on_timeout_s
        self._on_state = on_state
        self._retry_s, self._max_retry_s = retry_s, max_retry_s
        self._keeper: ReopeningPort | None = None
        self._retry: PortRetry | None = None
        self._fd = -1
        self._slave_fd = -1
        self.slave_path: str | None = None
        self._session: ByteSession | None = None
        self._out = bytearray()
        self._idle: asyncio.TimerHandle | None = None
        self._sign_on_after_flush = False
        self._held: list[mode_e.ModeEEvent] = []
        self._hold: asyncio.TimerHandle | None = None
        self._release_after_flush = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.faults: CableFaults | None = None
        """The simulated line's faults (the pty only; None on a device)."""
        self._dropped_before = 0

    @property
    def _serial(self) -> Any:
        return self._keeper.port if self._keeper is not None else None

    @property
    def connected(self) -> bool:
        """Whether the line is open (a pty always; a device until it fails, and again once reopened)."""
        return self._fd >= 0

    async def start(self) -> SerialLink:
        """Open the line and start serving (a device that fails is retried when ``on_state`` is given)."""
        self._loop = asyncio.get_running_loop()
        if self._port_name is None:
            master, slave = os.openpty()
            tty.setraw(slave)
            self._fd, self._slave_fd, self.slave_path = master, slave, os.ttyname(slave)
            self.faults = CableFaults()
            self._serve_fd()
            _log.info("DLMS serial link on %s", self.slave_path)
            return self
        self._keeper = ReopeningPort(self._open_device, self._loop.time, self._retry_s,
                                     self._max_retry_s, listener=self._port_changed, open_now=False)
        self._retry = PortRetry(self._keeper, self._loop)
        if not self._keeper.reopen():
            if self._on_state is None:
                raise SerialLinkError(self._keeper.last_error)
            self._retry.schedule()
        return self

    def _open_device(self) -> Any:
        """The device, open; an optical port already at the sign-on's line settings (a device
        that refuses them fails here, so it stays off rather than flapping on and off)."""
        assert self._port_name is not None
        port = _open_port(self._port_name, self._baud, self._rs485)
        if self._optical is not None:
            try:
                set_line(port, *_SIGN_ON_LINE)
            except SerialLinkError:
                port.close()
                raise
        return port

    def _serve_fd(self) -> None:
        assert self._loop is not None
        os.set_blocking(self._fd, False)
        if self._optical is not None:
            self._apply_events(self._optical.reset())
        self._loop.add_reader(self._fd, self._on_readable)

    def _port_changed(self, connected: bool, reason: str) -> None:
        """The device opened (serve it) or failed (``reason``); the owner hears it."""
        if self._on_state is not None:  # first: a device that fails at once is then reported off after this
            self._on_state(connected, reason)
        if connected:
            assert self._keeper is not None
            self._fd = self._keeper.fileno()
            _log.info("DLMS serial link on %s", self._port_name)
            self._serve_fd()

    def reopen_now(self) -> bool:
        """Try the device at once instead of after the back-off; True when it is open."""
        if self._retry is not None:
            self._retry.now()
        return self._fd >= 0

    def _lost(self, why: Exception | str) -> None:
        """The device failed while serving: leave the loop, drop the session and the pending
        output (a client starts again), close the device and try it again after the back-off."""
        if self._keeper is None:
            return  # the simulator's pty: the meter holds both ends, nothing to reopen
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = -1
        self._end_session()
        self._out.clear()
        self._sign_on_after_flush = False
        self._drop_held()
        self._keeper.lost(why)
        if self._retry is not None:
            self._retry.schedule()

    async def close(self) -> None:
        """Stop serving and close the line."""
        if self._retry is not None:
            self._retry.cancel()
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if self._idle is not None:
            self._idle.cancel()
        self._drop_held()
        if self._session is not None:
            self._session.close()
            self._dropped_before += self._session_dropped()
            self._session = None
        if self._keeper is not None:
            self._keeper.close()
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
        except OSError as exc:  # the device vanished (EIO, ENODEV): closed, tried again later
            _log.debug("serial read: %s", exc)
            self._lost(exc)
            return
        if not data and self._keeper is not None:  # readable but empty: the device hung up
            self._lost("device disconnected (hang-up)")
            return
        if data:
            self.bytes_in += len(data)
            if self.faults is not None:
                data = self.faults.carry(data, 0)
            if data:
                self._on_data(data)

    def _on_data(self, data: bytes) -> None:
        if self._optical is not None and not self._optical.signed_on:
            assert self._loop is not None
            self._apply_events(self._optical.receive(data, self._loop.time()))
            self._arm_timer(self._sign_on_timeout_s)
            return
        session = self._ensure_session()
        if isinstance(session, TimedSession):
            assert self._loop is not None
            self._write(b"".join(session.receive_at(data, self._loop.time())))
        else:
            self._write(b"".join(session.receive(data)))
        if self._optical is not None and getattr(session, "ended", False):
            self._back_to_sign_on()
            return
        self._arm_session_timer(session)

    def _arm_session_timer(self, session: ByteSession) -> None:
        """The inactivity timer: at the session's deadline when it keeps one (HDLC: only valid
        frames for this station move it, so a head end polling another meter on the bus, or
        noise, never extends it); none while it has none, except on the optical port, which
        returns to the sign-on after the inactivity time even without a data link; otherwise
        the inactivity time after this input."""
        if isinstance(session, TimedSession):
            deadline = session.deadline_s
            if deadline is not None:
                self._arm_timer_at(deadline)
                return
            if self._optical is None:
                self._arm_timer(0.0)
                return
        self._arm_timer(session.inactivity_timeout_s)

    def _end_session(self) -> None:
        """Stop the inactivity timer and close the HDLC session, keeping its dropped-frame count."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._session is not None:
            self._session.close()
            self._dropped_before += self._session_dropped()
            self._session = None

    def _back_to_sign_on(self) -> None:
        """Close the HDLC session and return the optical port to the mode E sign-on (300 Bd 7E1)
        once the pending output has been written."""
        assert self._optical is not None
        self._end_session()
        if self._out:
            self._sign_on_after_flush = True
            return
        self._apply_events(self._optical.reset())

    @property
    def dropped_frames(self) -> int:
        """Frames the link layer discarded as damaged (HDLC: bad format, HCS or FCS), over all
        sessions of this line."""
        return self._dropped_before + self._session_dropped()

    def _session_dropped(self) -> int:
        link = getattr(self._session, "link", None)
        return int(getattr(link, "dropped_frames", 0))

    def _ensure_session(self) -> ByteSession:
        if self._session is None:
            self._session = self._factory()
        return self._session

    def _apply_events(self, events: list[mode_e.ModeEEvent]) -> None:
        """Carry out the sign-on's events in order: an answer waits for its earliest send time
        (the reaction time, on the loop's clock) and a line change for the output before it to
        have left; what follows waits with them."""
        self._held += events
        if self._hold is None:
            self._release_held()

    def _release_held(self) -> None:
        self._hold = None
        while self._held:
            event = self._held[0]
            if isinstance(event, mode_e.Send) and self._loop is not None and event.not_before_s > self._loop.time():
                self._hold = self._loop.call_at(event.not_before_s, self._release_held)
                return
            if isinstance(event, mode_e.SwitchBaud) and self._out:
                self._release_after_flush = True
                return
            del self._held[0]
            if isinstance(event, mode_e.Send):
                self._write(event.data)
            elif isinstance(event, mode_e.SwitchBaud):
                self._set_line(event.baud, event.framing)
            else:
                self._ensure_session()

    def _drop_held(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        self._held.clear()
        self._release_after_flush = False

    def _set_line(self, baud: int, framing: str) -> None:
        if self._serial is None:
            return
        try:
            set_line(self._serial, baud, framing)
        except SerialLinkError as exc:  # refused (or the device is gone): off, tried again later
            self._lost(exc)

    # --- time-outs --------------------------------------------------------------------------------

    def _arm_timer(self, timeout_s: float) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if timeout_s and self._loop is not None:
            self._idle = self._loop.call_later(timeout_s, self._on_idle)

    def _arm_timer_at(self, when_s: float) -> None:
        if self._idle is not None:
            self._idle.cancel()
        assert self._loop is not None
        self._idle = self._loop.call_at(when_s, self._on_idle)

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
        if self.faults is not None:
            data = self.faults.carry(data, 1)
        if not data:
            return
        self._out += data
        self._flush()

    def _flush(self) -> None:
        if self._fd < 0:
            self._out.clear()  # the device is gone: a client asks again once it is back
            return
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            _log.debug("serial write: %s", exc)
            self._lost(exc)
            return
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
            if self._release_after_flush:
                self._release_after_flush = False
                self._release_held()
