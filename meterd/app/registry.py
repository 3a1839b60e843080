"""What the features of one meter offer each other, looked up by type once, at attach time.

A feature that builds something others use *provides* it under its class (``registry.provide(
RevenueService, service, by="revenue")``); a feature that uses it resolves it in its ``attach``,
either as a hard dependency (``registry.need(EventRecorder, by="load_control")``, a
:class:`~meterd.core.errors.ConfigError` naming both features when it is missing) or as an
optional one (``registry.find(RevenueService)``, None without it). What is resolved is kept by
the consumer as a typed reference: nothing is looked up per call, nothing is called by name.

Why a registry keyed by type rather than a ``Services`` dataclass with one optional field per
service: the dataclass would have to import every feature's service types and be edited with
each new feature, and its optional fields would put ``None`` checks back into every consumer.
Keyed by the class, ``need`` returns the exact type (``need(kind: type[T]) -> T``) so mypy
follows every hop, a feature adds a service without touching this module (only :data:`KNOWN`,
for the error message, names who normally provides what), and the attach order of
:data:`meterd.app.features.FEATURES` is checked at start, not at the first token or cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar, cast

from meterd.core.errors import ConfigError
from meterd.core.events import EventRecorder
from meterd.services.ciu_meter import MeterCiu
from meterd.services.firmware_port import FirmwareInstaller
from meterd.services.load_control import LoadControl
from meterd.services.payment import PaymentService
from meterd.services.power_quality import PowerQualityService
from meterd.services.revenue import RevenueService
from meterd.services.supervision import Supervision
from meterd.services.uplink import Uplink
from meterd.ui.meter_display import MeterDisplay

T = TypeVar("T")

#: What the features of this build provide: the kind, how an error names it, and the feature.
KNOWN: dict[type, tuple[str, str]] = {
    EventRecorder: ("the event recorder", "supervision"),
    Supervision: ("the supervision service", "supervision"),
    RevenueService: ("the revenue service (tariffs, legal time)", "revenue"),
    LoadControl: ("the disconnect control", "load_control"),
    PowerQualityService: ("the power-quality service", "power_quality"),
    PaymentService: ("the payment service (credit, tokens)", "payment"),
    MeterDisplay: ("the meter display", "display"),
    MeterCiu: ("the CIU link", "ciu"),
    FirmwareInstaller: ("the firmware installer (A/B update engine)", "firmware"),
    Uplink: ("the uplink to the head end (communication media)", "comms"),
}


class Registry:
    """Objects by their class, each provided once by one feature."""

    def __init__(self, source: str = "<defaults>") -> None:
        self._source = source  # the configuration file, for the error message
        self._entries: dict[type, tuple[object, str]] = {}

    def provide(self, kind: type[T], obj: T, *, by: str) -> None:
        """Offer ``obj`` as the meter's ``kind``; feature ``by`` owns it. A second provider of
        the same kind is a wiring error (ValueError)."""
        if kind in self._entries:
            raise ValueError(f"{kind.__name__} is provided by {self._entries[kind][1]!r} already,"
                             f" feature {by!r} provides it again")
        self._entries[kind] = (obj, by)

    def need(self, kind: type[T], *, by: str) -> T:
        """The meter's ``kind``, which feature ``by`` cannot work without; raises
        :class:`ConfigError` naming the feature that provides it when it is missing."""
        entry = self._entries.get(kind)
        if entry is None:
            what, provider = KNOWN.get(kind, (kind.__name__, ""))
            hint = f", which the {provider!r} feature provides: enable it" if provider else ""
            raise ConfigError(self._source, by, f"feature {by!r} needs {what}{hint}")
        return cast(T, entry[0])

    def find(self, kind: type[T]) -> T | None:
        """The meter's ``kind`` when some feature provides it (optional dependencies)."""
        entry = self._entries.get(kind)
        return None if entry is None else cast(T, entry[0])

    def provider(self, kind: type) -> str | None:
        """The feature that provides ``kind``, or None."""
        entry = self._entries.get(kind)
        return None if entry is None else entry[1]

    def __contains__(self, kind: type) -> bool:
        return kind in self._entries

    def __iter__(self) -> Iterator[type]:
        return iter(self._entries)
