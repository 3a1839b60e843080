"""A serial port checked before use, without side effects: it exists, it is a terminal, and (when
asked) its UART driver has the kernel RS-485 mode that :func:`hw.serial_link.open_port` turns on.

The device is opened ``O_NONBLOCK | O_NOCTTY`` (no wait for a carrier, never the controlling
terminal) and its settings are only read (``TCGETS``, ``TIOCGRS485``), never written: no rate,
framing, RTS/DTR or RS-485 setting changes; then it is closed. A pyserial URL (``loop://``,
``socket://...``) is no device and is not probed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import termios

from hw.errors import HwError

#: ``TIOCGRS485``: read the RS-485 settings of a UART (``struct serial_rs485``, 32 bytes).
TIOCGRS485 = 0x542E
_SERIAL_RS485_SIZE = 32
_ENOIOCTLCMD = 515  # the kernel's "no such ioctl" for a driver without the call


class SerialProbeError(HwError, OSError):
    """The port cannot serve as configured; the message says why (without the path)."""


def probe_port(path: str, rs485: bool = False) -> None:
    """Raise :class:`SerialProbeError` unless ``path`` is a serial device this process may open
    and, with ``rs485``, one whose driver offers the kernel RS-485 mode."""
    if "://" in path:
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SerialProbeError("no such device") from None
    except PermissionError:
        raise SerialProbeError("no permission to open it (is the user in the group that owns it?)") from None
    except OSError as exc:
        raise SerialProbeError(f"cannot open it: {exc.strerror}") from None
    try:
        try:
            termios.tcgetattr(fd)
        except termios.error:
            raise SerialProbeError("not a serial port (no terminal settings)") from None
        if rs485:
            try:
                fcntl.ioctl(fd, TIOCGRS485, bytes(_SERIAL_RS485_SIZE))
            except OSError as exc:
                unsupported = exc.errno in (errno.ENOTTY, errno.EINVAL, _ENOIOCTLCMD)
                why = "not supported by its UART driver" if unsupported else exc.strerror
                raise SerialProbeError(f"kernel RS-485 mode unavailable: {why}") from None
    finally:
        os.close(fd)
