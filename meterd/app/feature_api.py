"""What a feature module is, and what it receives from the daemon.

A feature module ``meterd.app.features.<name>`` defines ``SECTION``, its ``[<name>]`` config
dataclass (fields with ``rng``/``choices`` metadata from :mod:`meterd.app.config`) or None,
``attach(ctx)`` and optionally ``async start(ctx)``.
``attach`` gets a :class:`FeatureContext`: the built meter (service, clock, hardware, API) and
the hooks it may add to. It resolves what it needs from ``ctx.registry`` there, once, and
provides what it offers others (:mod:`meterd.app.registry`). It runs in
:meth:`~meterd.app.daemon.Daemon.build`, before the loop exists and also in in-process tests, so
it must not start I/O; ``start`` runs on the loop and opens links and tasks.

This module imports neither the daemon nor the features: the daemon imports both, the features
import this, and the configuration knows neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from meterd.api.server import ApiServer
from meterd.app.config import Config
from meterd.app.hardware import Hardware
from meterd.app.registry import Registry
from meterd.core.clock import Clock
from meterd.services.metering import CycleResult, MeteringService

CycleHook = Callable[[CycleResult], None]


class Link(Protocol):
    """An open link or task, closed at shutdown (before the final checkpoint)."""

    async def close(self) -> None: ...


@dataclass
class FeatureContext:
    """The built meter as the features see it; the lists and dicts are the daemon's own.

    * ``cfg``: the configuration (``cfg.feature(name)``: a feature's section; ``cfg.state_dir``);
    * ``meter``: ``listeners`` (per-cycle ``CycleListener`` with state saved in the energy
      checkpoint), ``clock_listeners``, ``profiles`` (OBIS -> ProfileBuffer), ``status_sources``;
    * ``clock``: the meter clock; ``hardware``: ``pin_factory``, ``schedule``, ``inputs``,
      ``sim`` (the simulated world or None);
    * ``api``: ``api.route(method, path, handler)``; ``status_extras[key] = fn`` for ``/status``;
    * ``registry``: what features offer each other, by type;
    * ``cycle_hooks``: ``hook(result)`` run after every metering cycle;
    * ``cosem_factories``: COSEM object factories for the DLMS registry;
    * ``closers``: run at shutdown, last added first (close stores, release pins);
    * ``links``: what ``start`` opened (``async close()``); ``info``: lines logged at start and
      shown in ``/status``;
    """

    cfg: Config
    meter: MeteringService
    clock: Clock
    hardware: Hardware
    api: ApiServer
    registry: Registry
    cycle_hooks: list[CycleHook] = field(default_factory=list)
    cosem_factories: list[Any] = field(default_factory=list)
    closers: list[Callable[[], None]] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    status_extras: dict[str, Callable[[], Any]] = field(default_factory=dict)
