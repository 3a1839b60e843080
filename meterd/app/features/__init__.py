"""The meter's features, one module each, with its own config section.

What a feature module defines and receives: :mod:`meterd.app.feature_api`. What features offer
each other: :mod:`meterd.app.registry`. Features attach in :data:`FEATURES` order, so a later
one may need what an earlier one provides. :func:`load_config` reads a configuration file with
every feature's section.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from meterd.app.config import Config, parse_config
from meterd.app.feature_api import FeatureContext
from meterd.app.features import (
    calibration,
    ciu,
    comms,
    display,
    dlms,
    firmware,
    image_transfer,
    load_control,
    payment,
    power_quality,
    push,
    revenue,
    supervision,
    time,
)
from meterd.app.wiring import meter_wiring

#: Attach order (a feature may need what one before it provides).
MODULES: tuple[tuple[str, ModuleType], ...] = (
    ("supervision", supervision), ("calibration", calibration), ("revenue", revenue), ("load_control", load_control), ("payment", payment),
    ("power_quality", power_quality), ("display", display),
    ("time", time),  # after revenue and display (profiles, RTC watch), before dlms
    ("ciu", ciu), ("comms", comms),
    ("firmware", firmware), ("image_transfer", image_transfer), ("dlms", dlms), ("push", push))
FEATURES: tuple[str, ...] = tuple(name for name, _ in MODULES)


def modules() -> list[tuple[str, ModuleType]]:
    """The feature modules, in attach order."""
    return list(MODULES)


def sections() -> dict[str, Any]:
    """Config section dataclasses of the features, by section name."""
    return {name: mod.SECTION for name, mod in MODULES if getattr(mod, "SECTION", None) is not None}


def load_config(path: str | Path) -> Config:
    """Read and validate the meter's configuration file: the core sections and every feature's
    (defaults for those the file lacks); raises :class:`~meterd.core.errors.ConfigError`, also
    when ``[power_quality] phases`` contradicts ``[meter] wiring``."""
    cfg = parse_config(path, sections())
    meter_wiring(cfg)
    return cfg


def attach_all(ctx: FeatureContext) -> None:
    """Attach every feature to a built meter, in :data:`FEATURES` order."""
    for _name, mod in MODULES:
        mod.attach(ctx)


async def start_all(ctx: FeatureContext) -> None:
    """Start the I/O of every feature that has any."""
    for _name, mod in MODULES:
        start = getattr(mod, "start", None)
        if start is not None:
            await start(ctx)
