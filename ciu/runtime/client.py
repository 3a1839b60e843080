"""CIU side of the link: carries out the state machine's commands over a LinkEndpoint and feeds it link events.

The port is any object with ``read(n) -> bytes`` (non-blocking) and ``write(bytes)``: a
``hw.serial_link.ReopeningPort`` (the daemon's: it survives the device vanishing and says so with
``connected``), a pyserial port, a ``hw.serial_link.SimWire`` end. :meth:`CiuLinkClient.pump`
moves bytes both ways and runs the link and screen timers; call it every 10-50 ms (the link
answers the meter's polls within its reply window: 120 ms from the read before the poll came).

While the port is gone the CIU shows the meter as not reachable at once (not only after the
link's loss timeout); when it is back, the link state decides again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ciu.core.state import CiuState, Command, SendShortCode, SendToken, StartPairing
from ciu.runtime.update import CiuUpdater
from meterd.proto.ciu_link import (
    LinkDown,
    LinkEndpoint,
    LinkError,
    LinkEvent,
    LinkState,
    LinkUp,
    Message,
    MessageReceived,
    MsgKind,
    PairingComplete,
    PairingFailed,
    parse_time_fields,
    short_code,
    token_submit,
)

log = logging.getLogger(__name__)


class CiuLinkClient:
    """Joins the CIU state machine, the link core and a byte port."""

    def __init__(self, state: CiuState, link: LinkEndpoint, port: Any,
                 on_pair_key: Callable[[bytes], None] | None = None, updater: CiuUpdater | None = None) -> None:
        self.state = state
        self.link = link
        self._port = port
        self._on_pair_key = on_pair_key
        self.updater = updater
        self._port_up = True
        self.state.paired_changed(link.paired)

    def press(self, key: str) -> None:
        """One CIU key (``0``-``9``, ``BACK``, ``ENTER``, ``CLEAR``, ``LANG``, ``INFO``)."""
        for command in self.state.press(key):
            self._execute(command)
        self._flush()

    def pump(self) -> list[LinkEvent]:
        """Read the port, run the timers, write what the link has to send; returns the link events."""
        data = self._port.read(4096)
        self._watch_port()
        events = self.link.receive_bytes(data)  # also empty: the reply window counts from the last read
        events += self.link.poll()
        for event in events:
            self._dispatch(event)
        if self.updater is not None:
            self._send_all(self.updater.step(self.link.pending_messages))
        self.state.tick()
        self._flush()
        return events

    def _watch_port(self) -> None:
        up = bool(getattr(self._port, "connected", True))
        if up == self._port_up:
            return
        self._port_up = up
        if up:
            log.info("meter port open again")
            self.state.link_changed(self.link.state is LinkState.UP)
        else:
            log.warning("meter not reachable: %s", getattr(self._port, "last_error", "") or "port closed")
            self.state.link_changed(False)

    def _flush(self) -> None:
        out = self.link.data_to_send()
        if out:
            self._port.write(out)

    def _send_all(self, messages: list[Message]) -> None:
        for message in messages:
            try:
                self._port.write(self.link.send(message))
            except LinkError as exc:
                log.warning("CIU link refused an update message: %s", exc)

    def _execute(self, command: Command) -> None:
        try:
            if isinstance(command, SendToken):
                self._port.write(self.link.send(token_submit(command.request_id, command.digits)))
            elif isinstance(command, SendShortCode):
                self._port.write(self.link.send(short_code(command.request_id, command.code)))
            elif isinstance(command, StartPairing):
                self._port.write(self.link.start_pairing(command.code))
        except LinkError as exc:
            log.warning("CIU link refused a command: %s", exc)
            self.state.pairing_failed("link") if isinstance(command, StartPairing) else None

    def _dispatch(self, event: LinkEvent) -> None:
        if isinstance(event, LinkUp | LinkDown):
            log.info("meter link %s", "up" if isinstance(event, LinkUp) else f"down ({event.reason})")
            self.state.link_changed(isinstance(event, LinkUp) and self._port_up)
            if isinstance(event, LinkUp) and self.updater is not None:
                self.updater.link_up()
        elif isinstance(event, PairingComplete):
            if self._on_pair_key is not None:
                self._on_pair_key(event.pair_key)
            self.state.paired_changed(True, event.fingerprint)
        elif isinstance(event, PairingFailed):
            self.state.pairing_failed(event.reason)
        elif isinstance(event, MessageReceived):
            self._on_message(event)

    def _on_message(self, event: MessageReceived) -> None:
        message = event.message
        if message.kind is MsgKind.TOKEN_RESULT:
            self.state.on_token_result(message.request_id, message.fields)
        elif message.kind is MsgKind.SHORT_CODE_REPLY:
            self.state.on_short_code_reply(message.request_id, message.fields)
        elif message.kind is MsgKind.STATUS:
            self.state.on_status(message.fields)
            if self.updater is not None:
                self._send_all(self.updater.on_status(message.fields))
        elif message.kind in (MsgKind.FW_OFFER, MsgKind.FW_BLOCK) and self.updater is not None:
            self._send_all(self.updater.on_message(message))
        elif message.kind is MsgKind.TIME:
            self.state.on_time(*parse_time_fields(message.fields))
