"""chronyd as the meter's :class:`~meterd.services.time_sync.TimeSyncSource`: polled from asyncio.

Every ``poll_s`` (s) one ``chronyc -c tracking`` (and ``sources``, for the selected source's
reach) through :class:`hw.chrony.Chronyc`; the newest answer is what :meth:`ChronySync.latest`
gives the time service each cycle, so a slow or absent chronyd never holds the metering cycle.
While chronyd does not answer, ``latest()`` is None (logged once per outage).
"""

from __future__ import annotations

import asyncio
import logging

from hw.chrony import Chronyc, ChronyError, Tracking
from meterd.services.time_sync import SyncObservation

log = logging.getLogger("meterd.time")


def observation_of(tracking: Tracking) -> SyncObservation:
    """chronyd's tracking state as the meter's sync observation."""
    return SyncObservation(tracking.synchronised, tracking.reference, tracking.stratum, tracking.last_offset_s,
                           tracking.leap, tracking.ref_time_utc if tracking.synchronised else None)


class ChronySync:
    """The latest chronyd observation, refreshed every ``poll_s`` (s) by :meth:`run`."""

    name = "chrony"

    def __init__(self, chronyc: Chronyc, poll_s: float = 16.0) -> None:
        self.chronyc = chronyc
        self.poll_s = poll_s
        self.reach = 0
        self._obs: SyncObservation | None = None
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def latest(self) -> SyncObservation | None:
        return self._obs

    async def poll_once(self) -> SyncObservation | None:
        """Ask chronyd now; the observation, or None when it does not answer."""
        try:
            tracking = await self.chronyc.tracking()
            sources = await self.chronyc.sources()
        except ChronyError as exc:
            if not self._failing:
                log.warning("time daemon not answering: %s", exc)
            self._failing = True
            self._obs = None
            return None
        if self._failing:
            log.info("time daemon answering again")
        self._failing = False
        selected = next((s for s in sources if s.selected), None)
        self.reach = 0 if selected is None else selected.reach
        self._obs = observation_of(tracking)
        return self._obs

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            await self.poll_once()
            await asyncio.sleep(self.poll_s)

    def start(self) -> None:
        """Start :meth:`run` on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="chrony-poll")

    async def close(self) -> None:
        """Stop polling (a :class:`~meterd.app.feature_api.Link`)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
