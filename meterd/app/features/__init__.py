"""Meter functions wired into the daemon, one module each, with its own config section.

A feature module ``meterd.app.features.<name>`` defines:

* ``SECTION``: a frozen dataclass for the ``[<name>]`` table of the config file (fields carry
  ``rng``/``choices`` metadata from :mod:`meterd.app.config`), or ``None``;
* ``attach(daemon) -> None``: build the feature's services and stores and hook them in. It runs
  in :meth:`Daemon.build`, before the loop exists and also in in-process tests, so it must not
  start I/O. Hooks on the daemon:

  - ``daemon.cfg.feature(name)``: the parsed section; ``daemon.cfg.state_dir`` for SQLite files;
  - ``daemon.meter``: ``listeners`` (per-cycle ``CycleListener`` with state saved in the energy
    checkpoint), ``clock_listeners``, ``profiles`` (OBIS -> ProfileBuffer), ``status_sources``;
  - ``daemon.cycle_hooks``: callables ``hook(result: CycleResult)`` run after every cycle;
  - ``daemon.hardware``: ``pin_factory``, ``schedule(delay_s, fn)``, ``sim`` (SimWorld or None);
  - ``daemon.api.route(method, path, handler)`` and ``daemon.status_extras[key] = fn``;
  - ``daemon.services[name]``: what a feature offers others (e.g. ``"events"``: the event
    recorder, ``"submit_token"``: token entry, ``"load_control"``);
  - ``daemon.cosem_factories``: COSEM object factories for the DLMS registry;
  - ``daemon.closers``: callables run at shutdown (close stores, release pins);
* optionally ``async start(daemon) -> None``: open links and tasks once the loop runs; what it
  opens goes into ``daemon.links`` (objects with ``async close()``) and ``daemon.info``.

Features attach in :data:`FEATURES` order, so a later one may use what an earlier one offers.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

FEATURES: tuple[str, ...] = ("supervision", "revenue", "load_control", "payment", "power_quality",
                             "display", "ciu", "dlms")


def modules() -> list[tuple[str, ModuleType]]:
    """The feature modules that exist in this build, in attach order."""
    found = []
    for name in FEATURES:
        try:
            found.append((name, importlib.import_module(f"meterd.app.features.{name}")))
        except ModuleNotFoundError as exc:
            if exc.name != f"meterd.app.features.{name}":
                raise
    return found


def sections() -> dict[str, Any]:
    """Config section dataclasses of the features, by section name."""
    return {name: mod.SECTION for name, mod in modules() if getattr(mod, "SECTION", None) is not None}


def attach_all(daemon: Daemon) -> None:
    """Attach every feature to a built daemon."""
    for _name, mod in modules():
        mod.attach(daemon)


async def start_all(daemon: Daemon) -> None:
    """Start the I/O of every feature that has any."""
    for _name, mod in modules():
        start = getattr(mod, "start", None)
        if start is not None:
            await start(daemon)
