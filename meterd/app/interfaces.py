"""The meter's :class:`~meterd.services.interfaces.InterfaceBoard`, made by the first feature that
has an interface to report: provided in the registry, shown as ``interfaces`` in ``meterctl
status``, recording into the supervision's event recorder."""

from __future__ import annotations

from meterd.app.feature_api import FeatureContext
from meterd.core.events import EventRecorder
from meterd.services.interfaces import InterfaceBoard


def interface_board(ctx: FeatureContext) -> InterfaceBoard:
    """The meter's interface board (made and provided on first use)."""
    board = ctx.registry.find(InterfaceBoard)
    if board is None:
        board = InterfaceBoard(ctx.clock.utc, ctx.registry.find(EventRecorder))
        ctx.registry.provide(InterfaceBoard, board, by="interfaces")
        ctx.status_extras["interfaces"] = board.view
    return board
