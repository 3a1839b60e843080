"""A private D-Bus message bus: a real ``dbus-daemon`` with its own configuration and socket.

The simulated meter and the tests stand ModemManager in on such a bus (never on the system
bus): :class:`PrivateBus` writes a minimal bus configuration into a fresh temporary directory
(socket there too, so no fixed path and no port), starts ``dbus-daemon --nofork
--print-address``, reads the address it prints and, on :meth:`PrivateBus.stop`, terminates it
and removes the directory. Everything that connects to the address (the stand-in, the meter's
client) goes away with the daemon.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from hw.errors import HwError

log = logging.getLogger("hw.dbus_daemon")

_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


def with_parent_death(argv: list[str]) -> list[str]:
    """``argv`` run so that the child gets SIGTERM when the thread that started it ends (Linux
    PR_SET_PDEATHSIG, through util-linux ``setpriv``, which keeps it across its exec): a meter
    killed with SIGKILL leaves no daemon behind. Without ``setpriv``, ``argv`` unchanged."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


def stop_process(proc: subprocess.Popen[bytes] | None, wait_s: float = 5.0) -> None:
    """End a helper daemon: SIGTERM, then SIGKILL if it is still there after ``wait_s`` (s)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class DbusDaemonError(HwError):
    """The private bus could not be started."""


class PrivateBus:
    """A ``dbus-daemon`` of our own (module docstring); ``address`` once started."""

    def __init__(self, program: str = "dbus-daemon") -> None:
        self.program = program
        self.address = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the daemon; its address. Raises :class:`DbusDaemonError`."""
        exe = shutil.which(self.program)
        if exe is None:
            raise DbusDaemonError(f"{self.program} not found (package dbus-daemon)")
        self._dir = Path(tempfile.mkdtemp(prefix="meterd-dbus-"))
        config = self._dir / "bus.conf"
        config.write_text(_CONFIG.format(dir=self._dir))
        argv = with_parent_death([exe, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"])
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                self.stop()
                raise DbusDaemonError(f"dbus-daemon printed no address within {timeout_s:g} s")
            chunk = os.read(fd, 512)
            if not chunk:
                self.stop()
                raise DbusDaemonError("dbus-daemon exited at start")
            line += chunk
        self.address = line.decode().strip()
        log.info("private D-Bus at %s", self.address)
        return self.address

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """Terminate the daemon (killed after 5 s) and remove its directory."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc)
            if proc.stdout is not None:
                proc.stdout.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        self.address = ""
