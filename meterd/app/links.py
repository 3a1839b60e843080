"""Start and stop the meter's communication links (DLMS over TCP, HDLC serial, optical port)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from meterd.app.daemon import Daemon

log = logging.getLogger("meterd.links")


async def start_links(daemon: Daemon) -> None:
    """Open every configured link; what each listens on goes into ``daemon.info``."""
    daemon.links = []


async def stop_links(daemon: Daemon) -> None:
    """Close every link opened by :func:`start_links`."""
    for link in reversed(getattr(daemon, "links", [])):
        await link.close()
