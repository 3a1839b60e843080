"""The communication media in the simulated world: cuttable loopback media and a ModemManager stand-in.

* Each medium of the simulated meter is a loopback source address (Ethernet 127.0.0.2 in
  config/sim.toml; cellular the stand-in bearer's address, 127.0.0.3). :class:`SimMediaCuts`
  is the world's hand on them: while a medium is cut its connects fail as an unreachable network
  would, so the media uplink's health checks find the cut. Scenario signals ``ethernet_cut`` and
  ``cellular_cut`` (true/false), rig fault ``medium_cut`` [medium].
* With ``[comms.modem] bus = "sim"`` the meter talks to :class:`hw.dbus_modem_mock.ModemManagerStandIn`
  (python-dbusmock on a private dbus-daemon), which :class:`SimModem` starts with the meter's
  links and stops at shutdown (its ``close``), nothing left running. Scenario signal ``modem``
  (``signal_lost``, ``deregistered``, ``denied``, ``bearer_drop``, ``sim_removed``,
  ``connect_refused``, ``restore``) and the rig faults ``modem_*`` script it; the meter finds
  each through ModemManager's D-Bus API, as it would on a Pi.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from meterd.app.sim_world import SimWorld

if TYPE_CHECKING:  # python-dbusmock (and dbus-python) are simulator and test dependencies only
    from hw.dbus_modem_mock import ModemManagerStandIn

log = logging.getLogger("meterd.sim")

MEDIA = ("ethernet", "cellular")


class SimMediaCuts:
    """Which simulated media are cut (a :class:`meterd.runtime.media_uplink.MediumGate`)."""

    def __init__(self) -> None:
        self.cut: set[str] = set()

    def blocked(self, medium: str) -> str | None:
        return "network unreachable (medium cut in the simulated world)" if medium in self.cut else None

    def set(self, medium: str, value: Any) -> None:
        if medium not in MEDIA:
            raise ValueError(f"unknown medium {medium!r}; choose from {list(MEDIA)}")
        if value:
            self.cut.add(medium)
        else:
            self.cut.discard(medium)


class SimModem:
    """The ModemManager stand-in of a simulated meter: started by :meth:`start` (on the loop, with
    the links), stopped by :meth:`close` / :meth:`stop`; ``script(action)`` changes it."""

    def __init__(self, bearer_ipv4: str) -> None:
        self.bearer_ipv4 = bearer_ipv4
        self._stand_in: ModemManagerStandIn | None = None
        self.running = False

    @property
    def stand_in(self) -> ModemManagerStandIn:
        """The stand-in (after :meth:`start`)."""
        if self._stand_in is None:
            raise ValueError("the simulated modem is not running (set [comms.modem] bus = \"sim\")")
        return self._stand_in

    def start(self) -> str:
        """Start the private bus and the mock; the bus address. Raises ImportError without
        python-dbusmock, :class:`hw.errors.HwError` when the daemons do not come up."""
        from hw.dbus_modem_mock import ModemManagerStandIn

        self._stand_in = ModemManagerStandIn(bearer_ipv4=self.bearer_ipv4)
        address = self._stand_in.start()
        self.running = True
        return address

    def script(self, action: str) -> None:
        """One scripted change of the modem (module docstring)."""
        if not self.running:
            raise ValueError("the simulated modem is not running (set [comms.modem] bus = \"sim\")")
        actions: dict[str, Callable[[], None]] = {
            "signal_lost": self.stand_in.lose_signal, "deregistered": self.stand_in.deregister,
            "denied": lambda: self.stand_in.deregister(denied=True), "bearer_drop": self.stand_in.drop_bearer,
            "sim_removed": self.stand_in.remove_sim, "connect_refused": self.stand_in.refuse_connect,
            "restore": self.stand_in.restore}
        if action not in actions:
            raise ValueError(f"modem action {action!r}: choose from {sorted(actions)}")
        log.info("simulated modem: %s", action)
        actions[action]()

    def stop(self) -> None:
        self.running = False
        if self._stand_in is not None:
            self._stand_in.stop()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop)


def wire_sim_media(sim: SimWorld, cuts: SimMediaCuts, modem: SimModem | None) -> None:
    """Scenario signals ``ethernet_cut``, ``cellular_cut`` and (with a simulated modem) ``modem``."""
    def cutter(medium: str) -> Callable[[Any], None]:
        return lambda value: cuts.set(medium, value)
    for medium in MEDIA:
        sim.extra_signals[f"{medium}_cut"] = cutter(medium)
    if modem is not None:
        sim.extra_signals["modem"] = lambda value: modem.script(str(value))
