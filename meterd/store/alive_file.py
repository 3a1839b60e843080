"""The fine last-alive time of the meter: 16 bytes rewritten in place, once a second.

Beside the heartbeat saved in SQLite every few minutes, this dates an outage that the power-fail
input did not announce (a crash of meterd, a supervisor that did not fire) to the second, without
flash wear: the file lives on tmpfs (meterd's runtime directory, kept across a restart of meterd
but not across a power cut) or in the battery-backed RAM of an RTC that has some (its nvmem, which
also survives a power cut).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import struct
from pathlib import Path

log = logging.getLogger("meterd.supervision")

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def alive_path(setting: str, state_dir: Path, sim: bool) -> Path | None:
    """Where the fine last-alive time goes: ``setting`` as an absolute path, None for "off", else
    meterd's runtime directory (``$RUNTIME_DIRECTORY``, ``/run/meterd``), the state directory in
    simulation."""
    if setting == "off":
        return None
    if setting:
        return Path(setting)
    if sim:
        return state_dir / "alive"
    return Path(os.environ.get("RUNTIME_DIRECTORY", "/run/meterd").split(":")[0]) / "alive"


class AliveFile:
    """The last-alive time (ms since the epoch) in 16 bytes rewritten in place: the milliseconds
    and their complement (little-endian uint64), so a torn or foreign content reads as nothing. A plain file on tmpfs, or an RTC's nvmem. Write failures are logged once, never raised:
    this only refines the dating of an outage."""

    resolution_s = 1.0
    _FORMAT = struct.Struct("<QQ")
    _MASK = 0xFFFF_FFFF_FFFF_FFFF

    def __init__(self, path: Path) -> None:
        self.path = path
        self._failed = False

    def read(self) -> _dt.datetime | None:
        """The time last written, or None (absent, unreadable or inconsistent)."""
        try:
            with self.path.open("rb") as f:
                raw = f.read(self._FORMAT.size)
        except OSError:
            return None
        if len(raw) != self._FORMAT.size:
            return None
        ms, check = self._FORMAT.unpack(raw)
        if ms == 0 or check != ms ^ self._MASK:
            return None
        return _EPOCH + _dt.timedelta(milliseconds=ms)

    def write(self, utc: _dt.datetime) -> None:
        """Rewrite the 16 bytes with ``utc`` (ms, rounded down)."""
        ms = (utc - _EPOCH) // _dt.timedelta(milliseconds=1)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, self._FORMAT.pack(ms, ms ^ self._MASK), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._failed:
                log.warning("last-alive file %s not writable: %s", self.path, exc)
            self._failed = True
