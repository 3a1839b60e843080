"""API views of the communication media and the modem: ``GET /modem`` (``meterctl modem``), ``GET /media``."""

from __future__ import annotations

from typing import Any

from meterd.api.server import ApiServer
from meterd.services.media import MediaSelector
from meterd.services.modem import ModemSupervisor


def comms_view(modem: ModemSupervisor | None, media: MediaSelector | None) -> dict[str, Any]:
    """The modem's diagnostics (registration, signal, technology, operator, bearer, IP, counters,
    reconnect state) and the media (current, health of each); None parts are left out."""
    view: dict[str, Any] = {}
    if modem is not None:
        view["modem"] = modem.view()
    if media is not None:
        view["media"] = media.view()
    return view


def comms_routes(api: ApiServer, modem: ModemSupervisor | None, media: MediaSelector | None) -> None:
    """``GET /modem``: modem and media; ``GET /media``: the media only."""
    api.route("GET", "/modem", lambda _body: (200, comms_view(modem, media)),
              description="Cellular modem diagnostics and the communication media.")
    if media is not None:
        api.route("GET", "/media", lambda _body: (200, media.view()),
                  description="The communication media: current medium, health of each.")
