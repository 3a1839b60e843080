"""systemd service notification (sd_notify) and watchdog pings, without a hard dependency.

The one client of both daemons: meterd (``systemd/meterd.service``) and the CIU
(``systemd/ciu.service``) send READY, STATUS, WATCHDOG and STOPPING through :class:`Notifier`;
the watchdog ping interval is half of ``WATCHDOG_USEC`` (s) when ``WATCHDOG_PID`` is unset or ours.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
``NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without the variable every call
is a no-op, so the same entry point runs under systemd, in tests and on a laptop.

When systemd-python is installed (``systemd.daemon.notify``, libsystemd's own sd_notify), the
messages go through it; otherwise a small built-in client speaks the protocol itself and never
blocks: a notification the receiver cannot take right now is dropped. Either way the API and the
messages are the same.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any


def systemd_notify() -> Callable[..., Any] | None:
    """``systemd.daemon.notify`` of systemd-python when it imports, else None. The unrelated
    ``systemd`` package that takes a ``Notification`` enum instead of a string is not used."""
    try:
        from systemd import daemon  # type: ignore[attr-defined,import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None
    notify = getattr(daemon, "notify", None)
    if not callable(notify) or hasattr(daemon, "Notification"):
        return None
    return notify  # type: ignore[no-any-return,unused-ignore]


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd when it asked for them.

    ``environ`` replaces the process environment (tests); systemd-python reads the process
    environment itself, so it is used only when ``environ`` is not given.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_ok = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if watchdog_ok else None
        self._sd_notify = systemd_notify() if environ is None and self._address else None

    @property
    def enabled(self) -> bool:
        """True when a notification socket was given."""
        return bool(self._address)

    @property
    def backend(self) -> str:
        """``"systemd-python"``, ``"socket"`` (the built-in client) or ``"off"``."""
        if not self._address:
            return "off"
        return "systemd-python" if self._sd_notify is not None else "socket"

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased); False when disabled or refused."""
        if not self._address:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items())
        if self._sd_notify is not None:
            try:
                return bool(self._sd_notify(message))
            except OSError:
                return False
        return self._send(message.encode())

    def _send(self, message: bytes) -> bool:
        address = self._address
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
                sock.connect(address)
                sock.send(message)
        except OSError:  # includes a full receiver queue (EAGAIN): never block the meter's loop
            return False
        return True

    def ready(self, status: str) -> bool:
        """Tell systemd start-up is complete."""
        return self.notify(ready=1, status=status, mainpid=os.getpid())

    def status(self, status: str) -> bool:
        """Update the one-line status shown by ``systemctl status``."""
        return self.notify(status=status)

    def watchdog(self) -> bool:
        """Keep-alive ping; send only after the main loop proved healthy."""
        return self.notify(watchdog=1)

    def stopping(self) -> bool:
        """Tell systemd a clean shutdown began."""
        return self.notify(stopping=1)
