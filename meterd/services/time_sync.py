"""The time source seen by the meter: a port (:class:`TimeSyncSource`) and a simulated NTP source.

On a Pi the source is chronyd, read through ``chronyc -c tracking`` by
:class:`meterd.runtime.time_sync_chrony.ChronySync`; chronyd itself disciplines and, when the
offset is above its ``makestep`` threshold, steps the system clock (the meter never steps the
clock for NTP). In simulation :class:`SimNtpSource` plays both chronyd and its server: it polls a
simulated NTP server every ``poll_s`` (s) and steps the simulated meter clock to the server's time,
as chronyd's ``makestep`` does; the server's time can be jumped, and the server made unreachable
or absent from the start (the rig faults ``ntp_jump`` and ``ntp_lost``).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SyncObservation:
    """What the time daemon says about the system clock.

    ``synchronised``: it has a selected reference and its leap status is not "not synchronised";
    ``reference``: the reference's name or address; ``stratum``: its NTP stratum; ``offset_s``
    (s): the system clock's last measured offset from the reference (positive: the clock is
    fast); ``leap``: "normal", "insert", "delete" or "unsynchronised"; ``last_update_utc``: when
    the reference last updated the clock (None when never).
    """

    synchronised: bool
    reference: str = ""
    stratum: int = 0
    offset_s: float = 0.0
    leap: str = "unsynchronised"
    last_update_utc: _dt.datetime | None = None



class TimeSyncSource(Protocol):
    """The meter's time source: the latest observation, None while the daemon does not answer."""

    name: str

    def latest(self) -> SyncObservation | None:
        """The newest observation (never blocks: a daemon is read on its own schedule)."""
        ...


class SteppableClock(Protocol):
    """A clock the simulated time daemon may step (:class:`meterd.core.clock.SimClock`)."""

    def mono(self) -> float: ...

    def utc(self) -> _dt.datetime: ...

    def set_utc(self, new_utc: _dt.datetime) -> None: ...


class SimNtpSource:
    """A simulated chronyd and NTP server over the simulated meter clock.

    ``server_offset_s`` (s) is the server's time minus the meter clock; :meth:`poll` (each cycle)
    queries the server every ``poll_s`` (s) of monotonic time while it is ``reachable``: an offset
    over ``makestep_s`` (s) steps the clock (``set_utc``, behind the meter's back, like chronyd
    stepping CLOCK_REALTIME); a smaller one is slewed away (applied at once here, below the
    meter's step threshold).
    """

    name = "sim-ntp"

    def __init__(self, clock: SteppableClock, reachable: bool = True, poll_s: float = 64.0,
                 makestep_s: float = 1.0, stratum: int = 2) -> None:
        self.clock = clock
        self.reachable = reachable
        self.poll_s = poll_s
        self.makestep_s = makestep_s
        self.stratum = stratum
        self.server_offset_s = 0.0
        self.steps = 0
        self._next_mono = float("-inf")
        self._obs = SyncObservation(False)

    def jump(self, offset_s: float) -> None:
        """The server's time jumps by ``offset_s`` (s)."""
        self.server_offset_s += offset_s
        self._next_mono = float("-inf")

    def set_reachable(self, reachable: bool) -> None:
        """The server answers (True) or not (False: lost, or never there)."""
        self.reachable = reachable
        self._next_mono = float("-inf")

    def latest(self) -> SyncObservation:
        return self._obs

    def poll(self) -> None:
        """Query the server when due, and step or slew the clock to it."""
        now = self.clock.mono()
        if now < self._next_mono or not self.reachable:
            return
        self._next_mono = now + self.poll_s
        offset = self.server_offset_s
        if offset:
            self.clock.set_utc(self.clock.utc() + _dt.timedelta(seconds=offset))
            self.server_offset_s = 0.0
            if abs(offset) > self.makestep_s:
                self.steps += 1
        self._obs = SyncObservation(True, "SIM-NTP", self.stratum, -offset, "normal", self.clock.utc())
