"""meter-clock: the small privileged service that sets the system clock and the RTC for meterd.

meterd runs without CAP_SYS_TIME (its unit has ProtectClock=yes). When the head end writes the
DLMS clock, meterd asks this helper over a UNIX stream socket, one JSON line per request::

    {"set_utc": "2026-03-01T12:00:00+00:00", "source": "dlms:management"}
    -> {"ok": true, "utc": "...", "rtc": "..."}      or   {"ok": false, "error": "..."}

The helper checks the time (timezone-aware, not before the build date, not after 2099), steps
CLOCK_REALTIME, writes the RTC in UTC and reads it back to verify. ``{"get": "rtc"}`` answers the
RTC time and its battery/validity flags. Nothing else is accepted.

Run as ``python -m meterd.runtime.clock_helper --socket /run/meter-clock/clock.sock --rtc /dev/rtc0``
(systemd/meter-clock.service).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from meterd.runtime.rtc import LinuxRtc, RtcError

UTC = _dt.UTC
EARLIEST_UTC = _dt.datetime(2026, 1, 1, tzinfo=UTC)
LATEST_UTC = _dt.datetime(2099, 12, 31, 23, 59, 59, tzinfo=UTC)
MAX_REQUEST = 512
log = logging.getLogger("meter-clock")


class Rtc(Protocol):
    def read(self) -> _dt.datetime: ...
    def write(self, utc: _dt.datetime) -> None: ...
    def flags(self) -> int | None: ...


def step_realtime(utc: _dt.datetime) -> None:
    """Step CLOCK_REALTIME (needs CAP_SYS_TIME)."""
    time.clock_settime(time.CLOCK_REALTIME, utc.timestamp())


class ClockHelper:
    """Validates and carries out clock requests; ``settime`` and ``rtc`` are injected."""

    def __init__(self, rtc: Rtc, settime: Callable[[_dt.datetime], None] = step_realtime) -> None:
        self.rtc = rtc
        self.settime = settime

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one decoded request."""
        if set(request) <= {"set_utc", "source"} and "set_utc" in request:
            return self._set(request["set_utc"], str(request.get("source", "?")))
        if request == {"get": "rtc"}:
            try:
                return {"ok": True, "rtc": self.rtc.read().isoformat(), "flags": self.rtc.flags()}
            except RtcError as exc:
                return {"ok": False, "error": str(exc), "flags": self.rtc.flags()}
        return {"ok": False, "error": "unknown request"}

    def _set(self, text: Any, source: str) -> dict[str, Any]:
        try:
            utc = _dt.datetime.fromisoformat(str(text))
        except ValueError:
            return {"ok": False, "error": "set_utc is not an ISO 8601 date-time"}
        if utc.tzinfo is None:
            return {"ok": False, "error": "set_utc must carry a UTC offset"}
        if not EARLIEST_UTC <= utc <= LATEST_UTC:
            return {"ok": False, "error": f"{utc.isoformat()} is outside {EARLIEST_UTC.year}..{LATEST_UTC.year}"}
        try:
            self.settime(utc)
            self.rtc.write(utc)
            back = self.rtc.read()
        except (OSError, RtcError) as exc:
            log.error("clock set by %s failed: %s", source, exc)
            return {"ok": False, "error": f"clock set failed: {exc}"}
        if abs((back - utc).total_seconds()) > 2:
            return {"ok": False, "error": f"RTC read back {back.isoformat()}, expected {utc.isoformat()}"}
        log.info("clock set by %s to %s (RTC %s)", source, utc.isoformat(), back.isoformat())
        return {"ok": True, "utc": utc.isoformat(), "rtc": back.isoformat()}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection: JSON lines in, JSON lines out."""
        try:
            while line := await reader.readline():
                if len(line) > MAX_REQUEST:
                    answer: dict[str, Any] = {"ok": False, "error": "request too long"}
                else:
                    try:
                        request = json.loads(line)
                        answer = self.handle(request) if isinstance(request, dict) else {
                            "ok": False, "error": "request must be a JSON object"}
                    except json.JSONDecodeError:
                        answer = {"ok": False, "error": "request is not JSON"}
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()


class ClockHelperClient:
    """meterd's side: a clock setter for :class:`meterd.runtime.clocks.HostClock`."""

    def __init__(self, socket_path: str, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            sock.connect(self.socket_path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
        assert isinstance(answer, dict)
        return answer

    def set_utc(self, utc: _dt.datetime, source: str = "meterd") -> None:
        """Ask the helper to set system clock and RTC; raises OSError when it refuses."""
        answer = self.call({"set_utc": utc.isoformat(), "source": source})
        if not answer.get("ok"):
            raise OSError(f"meter-clock refused: {answer.get('error')}")


async def serve_forever(socket_path: Path, helper: ClockHelper, group: str | None) -> None:
    """Listen on ``socket_path`` (mode 0660, optionally owned by ``group``)."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        socket_path.unlink()
    server = await asyncio.start_unix_server(helper.serve, path=str(socket_path), limit=MAX_REQUEST * 2)
    os.chmod(socket_path, 0o660)
    if group:
        import grp

        os.chown(socket_path, -1, grp.getgrnam(group).gr_gid)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="meter-clock", description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="/run/meter-clock/clock.sock")
    parser.add_argument("--rtc", default="/dev/rtc0")
    parser.add_argument("--group", default="meterd", help="group allowed to use the socket")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(Path(args.socket), ClockHelper(LinuxRtc(args.rtc)), args.group or None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
