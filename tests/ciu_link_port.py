"""The CIU update service's link port (:class:`meterd.services.ciu_update.CiuLinkPort`) onto a
meter's :class:`meterd.services.ciu_service.CiuService`, as the ``ciu`` feature wires it, with
every message the update sends also kept for the tests to look at."""

from __future__ import annotations

from meterd.proto.ciu_link import LinkState, Message
from meterd.services.ciu_service import CiuService


class RecordingLinkPort:
    """Sends through ``service``; ``sent`` holds each message in order."""

    def __init__(self, service: CiuService) -> None:
        self.service = service
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        self.sent.append(message)
        self.service.send(message)

    def up(self) -> bool:
        return self.service.link.state is LinkState.UP

    def pending(self) -> int:
        return self.service.link.pending_messages
