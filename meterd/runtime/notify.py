"""systemd service notification (sd_notify) and watchdog pings, without a hard dependency.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
``NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Without the variable every call
is a no-op, so the same entry point runs under systemd, in tests and on a laptop. Sends never
block: a notification the receiver cannot take right now is dropped.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    """Sends READY/STATUS/WATCHDOG/STOPPING to systemd when it asked for them."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watchdog_ok = usec.isdigit() and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if watchdog_ok else None

    @property
    def enabled(self) -> bool:
        """True when a notification socket was given."""
        return bool(self._address)

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased); False when disabled or refused."""
        if not self._address:
            return False
        message = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
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
