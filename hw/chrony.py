"""chronyd, the time daemon of the Pi, read through chronyc's machine-readable output (asyncio).

``chronyc -c tracking`` prints one CSV line (chrony 4.x)::

    ref id (hex), ref name or address, stratum, ref time (s since the epoch, UTC),
    system time offset (s), last offset (s), RMS offset (s), frequency (ppm),
    residual frequency (ppm), skew (ppm), root delay (s), root dispersion (s),
    update interval (s), leap status ("Normal", "Insert second", "Delete second",
    "Not synchronised")

Offsets follow chrony's sign: positive when the system clock is *fast* of the reference (a
server that jumped an hour ahead shows a last offset of −3600 s). ``chronyc -c sources`` prints one
line per source: mode (^ server, = peer, # refclock), state (* selected, + combined, - not
combined, ? unreachable, x falseticker, ~ too variable), name, stratum, poll (log2 s), reach
(octal), last receive (s ago), adjusted offset, measured offset, error (s).

chronyc talks to chronyd over ``-h <host>``: ``127.0.0.1`` (what meterd uses) is chronyd's UDP
command port 323, which serves only monitoring commands (tracking, sources) to an unprivileged
client; a path starting with ``/`` is its Unix command socket, which allows every command and
needs chronyd's group (the tests' private chronyd). ``-n`` keeps addresses numeric. Reads are
bounded by ``timeout_s``.

The meter never steps the clock for NTP itself: chronyd does (``makestep``), and with
``rtcsync`` the kernel copies the synchronised system time to the RTC every 11 minutes. See
:mod:`meterd.services.time_service` for how the meter notices a step.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass

from hw.errors import HwError

LEAP_STATUS = {"Normal": "normal", "Insert second": "insert", "Delete second": "delete",
               "Not synchronised": "unsynchronised"}


class ChronyError(HwError):
    """chronyc failed, timed out, or printed something that is not its CSV."""


@dataclass(frozen=True)
class Tracking:
    """``chronyc -c tracking``: the reference (id, name, stratum), when it last updated the clock
    (``ref_time_utc``, None when never), offsets (s), frequency (ppm), root delay and dispersion
    (s), update interval (s) and leap status ("normal", "insert", "delete", "unsynchronised")."""

    ref_id: int
    reference: str
    stratum: int
    ref_time_utc: _dt.datetime | None
    system_offset_s: float
    last_offset_s: float
    rms_offset_s: float
    frequency_ppm: float
    residual_ppm: float
    skew_ppm: float
    root_delay_s: float
    root_dispersion_s: float
    update_interval_s: float
    leap: str

    @property
    def synchronised(self) -> bool:
        """True when chronyd has a reference and its leap status is not "not synchronised"."""
        return self.ref_id != 0 and self.leap != "unsynchronised" and self.ref_time_utc is not None


@dataclass(frozen=True)
class Source:
    """One line of ``chronyc -c sources``."""

    mode: str
    state: str
    name: str
    stratum: int
    poll_log2_s: int
    reach: int
    last_rx_s: float | None
    offset_s: float
    measured_offset_s: float
    error_s: float

    @property
    def selected(self) -> bool:
        """True for the source chronyd synchronises to."""
        return self.state == "*"


def _fields(line: str, n: int, what: str) -> list[str]:
    parts = line.strip().split(",")
    if len(parts) != n:
        raise ChronyError(f"chronyc {what}: expected {n} fields, got {len(parts)}: {line.strip()[:120]!r}")
    return parts


def parse_tracking(text: str) -> Tracking:
    """The tracking line of ``chronyc -c tracking``; raises :class:`ChronyError`."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ChronyError("chronyc tracking: no output")
    f = _fields(lines[0], 14, "tracking")
    try:
        ref_time = float(f[3])
        return Tracking(int(f[0], 16), f[1], int(f[2]),
                        None if ref_time == 0 else _dt.datetime.fromtimestamp(ref_time, tz=_dt.UTC),
                        float(f[4]), float(f[5]), float(f[6]), float(f[7]), float(f[8]), float(f[9]),
                        float(f[10]), float(f[11]), float(f[12]), LEAP_STATUS.get(f[13], f[13].lower()))
    except ValueError as exc:
        raise ChronyError(f"chronyc tracking: {exc}: {lines[0][:120]!r}") from None


def parse_sources(text: str) -> list[Source]:
    """Every source line of ``chronyc -c sources``; raises :class:`ChronyError`."""
    out: list[Source] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        f = _fields(line, 10, "sources")
        try:
            last_rx = None if f[6] in ("", "-") else float(f[6])
            out.append(Source(f[0], f[1], f[2], int(f[3]), int(f[4]), int(f[5], 8), last_rx, float(f[7]),
                              float(f[8]), float(f[9])))
        except ValueError as exc:
            raise ChronyError(f"chronyc sources: {exc}: {line.strip()[:120]!r}") from None
    return out


class Chronyc:
    """Runs ``chronyc -c -n -h <host> <command>`` without blocking the event loop; ``host``: an
    address (UDP command port, monitoring only) or a Unix socket path."""

    def __init__(self, host: str = "127.0.0.1", chronyc: str = "chronyc", timeout_s: float = 5.0) -> None:
        self.host = host
        self.chronyc = chronyc
        self.timeout_s = timeout_s

    def argv(self, command: Sequence[str]) -> list[str]:
        """The command line for one chronyc command."""
        host = ["-h", self.host] if self.host else []
        return [self.chronyc, "-c", "-n", *host, *command]

    async def run(self, *command: str) -> str:
        """chronyc's standard output for ``command``; :class:`ChronyError` on failure or timeout."""
        try:
            proc = await asyncio.create_subprocess_exec(*self.argv(command), stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ChronyError(f"{self.chronyc}: {exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ChronyError(f"chronyc {' '.join(command)}: no answer in {self.timeout_s:g} s") from None
        text = out.decode("utf-8", "replace")
        if proc.returncode != 0 or text.startswith("Could not") or "506 Cannot talk" in text:
            reason = (err.decode("utf-8", "replace") or text).strip().splitlines()
            raise ChronyError(f"chronyc {' '.join(command)}: {reason[0] if reason else f'exit {proc.returncode}'}")
        return text

    async def tracking(self) -> Tracking:
        """chronyd's tracking state."""
        return parse_tracking(await self.run("tracking"))

    async def sources(self) -> list[Source]:
        """chronyd's sources."""
        return parse_sources(await self.run("sources"))
