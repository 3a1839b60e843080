"""Meter side of the MCU-CIU link: answers token entries and short codes, pushes display data and time.

The service owns a :class:`~meterd.proto.ciu_link.LinkEndpoint` (role METER) and two injected
callbacks, so it depends on neither the STS decoder nor the meter model directly:

- ``submit_token(digits) -> dict``: applies a 20-digit token; the dict has at least
  ``accepted`` (bool) and ``code`` (str, e.g. ``"accepted"``, ``"used"``, ``"invalid"``) and may
  carry ``amount``, ``credit``, ``unit``.
- ``display_data() -> dict``: what the CIU shows (``credit``, ``unit``, ``low_credit``, ``mode``,
  ``relay``, ``power_w``, ``tamper``, ``import_kwh``...).
- optionally ``utc_s() -> int`` (POSIX s) and ``legal_offset() -> (utc_offset_s, dst) | None``:
  TIME carries the meter's legal time (local minus UTC, s) so the CIU shows local time; a change
  of the offset (DST) is pushed at once.

A token request is answered from a small cache when its request id comes again (the CIU resends
unacknowledged messages after a link loss), so a token is never applied twice by the link. With a
:class:`ResultStore` the cache (and the last token, short code 2) is saved after each applied
token, before its result is sent, and loaded at start: a resend after a meter restart gets the
original result too.
Bytes in through :meth:`receive_bytes`, timers through :meth:`poll`, bytes out from
:meth:`data_to_send`: the runtime does the I/O.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from meterd.proto.ciu_link import (
    FieldValue,
    LinkEndpoint,
    LinkEvent,
    LinkState,
    LinkUp,
    Message,
    MessageReceived,
    MonoClock,
    MsgKind,
    PairingComplete,
    ShortCode,
    time_fields,
)

log = logging.getLogger(__name__)

SHORT_CODE_FIELDS: dict[ShortCode, tuple[str, ...]] = {
    ShortCode.CREDIT: ("credit", "unit", "low_credit"),
    ShortCode.LAST_TOKEN: ("last_token", "last_token_code", "last_token_amount"),
    ShortCode.POWER: ("power_w", "power_l1_w", "power_l2_w", "power_l3_w"),
    ShortCode.TAMPER: ("tamper", "cover_open", "magnet"),
    ShortCode.TIME: ("utc_s", "time_v", "utc_offset_s", "dst"),
    ShortCode.RELAY: ("relay", "mode"),
    ShortCode.ENERGY: ("import_kwh", "export_kwh"),
}


class ResultStore(Protocol):
    """Where the recent token results survive a restart (the app provides the file)."""

    def load(self) -> tuple[list[tuple[int, dict[str, FieldValue]]], dict[str, FieldValue]]:
        """(request id, result) pairs, oldest first, and the last-token fields."""
        ...

    def save(self, results: list[tuple[int, dict[str, FieldValue]]], last_token: dict[str, FieldValue]) -> None:
        """Replace the stored results and last token (atomically)."""
        ...


def to_fields(data: Mapping[str, Any]) -> dict[str, FieldValue]:
    """Keep the scalar items of ``data`` as link fields (floats become decimal strings, 3 places max)."""
    out: dict[str, FieldValue] = {}
    for key, value in data.items():
        if isinstance(value, bool | int | str):
            out[key] = value
        elif isinstance(value, float):
            out[key] = f"{value:.3f}".rstrip("0").rstrip(".")
    return out


class CiuService:
    """Use case: serve the customer interface unit over the link."""

    def __init__(
        self,
        link: LinkEndpoint,
        clock: MonoClock,
        submit_token: Callable[[str], Mapping[str, Any]],
        display_data: Callable[[], Mapping[str, Any]],
        utc_s: Callable[[], int] | None = None,
        legal_offset: Callable[[], tuple[int, bool] | None] | None = None,
        status_period_s: float = 5.0,
        time_period_s: float = 60.0,
        result_cache: int = 32,
        on_pair_key: Callable[[bytes, str], None] | None = None,
        result_store: ResultStore | None = None,
    ) -> None:
        self.link = link
        self._clock = clock
        self._submit_token = submit_token
        self._display_data = display_data
        self._utc_s = utc_s
        self._legal_offset = legal_offset
        self._sent_offset: tuple[int, bool] | None = None
        self._status_period_s = status_period_s
        self._time_period_s = time_period_s
        self._results: OrderedDict[int, dict[str, FieldValue]] = OrderedDict()
        self._cache_size = result_cache
        self._on_pair_key = on_pair_key
        self._next_status_mono = float("-inf")
        self._next_time_mono = float("-inf")
        self.last_token: dict[str, FieldValue] = {}
        self._out = bytearray()
        self.tokens_submitted = 0
        self._store = result_store
        if result_store is not None:
            results, self.last_token = result_store.load()
            self._results.update(results[-result_cache:])

    def receive_bytes(self, data: bytes) -> list[LinkEvent]:
        """Feed bytes from the cable; handles messages and returns the link events for logging."""
        events = self.link.receive_bytes(data)
        for event in events:
            self._on_event(event)
        return events

    def poll(self) -> list[LinkEvent]:
        """Run link timers and periodic pushes (status every ``status_period_s``, time every ``time_period_s``)."""
        events = self.link.poll()
        for event in events:
            self._on_event(event)
        self._periodic()
        return events

    def data_to_send(self) -> bytes:
        """Bytes to write to the cable now."""
        out = bytes(self._out) + self.link.data_to_send()
        self._out.clear()
        return out

    def _send(self, message: Message) -> None:
        self._out += self.link.send(message)

    def send(self, message: Message) -> None:
        """Queue ``message`` for the CIU; its bytes go out with :meth:`data_to_send`."""
        self._send(message)

    def start_pairing(self, code: str) -> bytes:
        """Open pairing with ``code`` (shown on the meter LCD); returns bytes to write."""
        self._out += self.link.start_pairing(code)
        return self.data_to_send()

    def open_pairing(self, random_bytes: Callable[[int], bytes]) -> str:
        """Open pairing with a fresh 8-digit code; show the returned code on the meter LCD."""
        code = LinkEndpoint.new_pairing_code(random_bytes)
        self.start_pairing(code)
        return code

    def push_status(self) -> None:
        """Queue a STATUS message with the current display data (only while the link is up)."""
        if self.link.state is LinkState.UP:
            self._send(Message(MsgKind.STATUS, 0, to_fields(self._display_data())))
            self._next_status_mono = self._clock.mono() + self._status_period_s

    # -- internals -------------------------------------------------------------------------

    def _periodic(self) -> None:
        if self.link.state is not LinkState.UP or self.link.pending_messages:
            return
        now = self._clock.mono()
        if self._utc_s is not None and (now >= self._next_time_mono or self._offset() != self._sent_offset):
            self._sent_offset = self._offset()  # a DST change is pushed at once
            self._send(Message(MsgKind.TIME, 0, self._time_fields()))
            self._next_time_mono = now + self._time_period_s
        elif now >= self._next_status_mono:
            self.push_status()

    def _offset(self) -> tuple[int, bool] | None:
        return None if self._legal_offset is None else self._legal_offset()

    def _time_fields(self) -> dict[str, FieldValue]:
        assert self._utc_s is not None
        offset = self._offset()
        if offset is None:
            return time_fields(self._utc_s())
        return time_fields(self._utc_s(), offset[0], offset[1])

    def _on_event(self, event: LinkEvent) -> None:
        if isinstance(event, LinkUp):
            self._next_status_mono = self._next_time_mono = float("-inf")
        elif isinstance(event, PairingComplete) and self._on_pair_key is not None:
            self._on_pair_key(event.pair_key, event.fingerprint)
        elif isinstance(event, MessageReceived):
            self._on_message(event.message)

    def _on_message(self, message: Message) -> None:
        if message.kind is MsgKind.TOKEN_SUBMIT:
            self._on_token(message)
        elif message.kind is MsgKind.SHORT_CODE:
            self._on_short_code(message)
        else:
            log.info("CIU link: ignoring message kind %s from the CIU", message.kind.name)

    def _on_token(self, message: Message) -> None:
        request_id = message.request_id
        result = self._results.get(request_id)
        if result is None:
            result = self._apply(str(message.fields.get("digits", "")))
            self._results[request_id] = result
            while len(self._results) > self._cache_size:
                self._results.popitem(last=False)
            if self._store is not None:
                self._store.save(list(self._results.items()), self.last_token)
        self._send(Message(MsgKind.TOKEN_RESULT, request_id, result))
        self.push_status()

    def _apply(self, digits: str) -> dict[str, FieldValue]:
        if len(digits) != 20 or not digits.isdigit():
            return {"accepted": False, "code": "format"}
        try:
            raw = self._submit_token(digits)
        except Exception:  # the token path must answer the CIU whatever failed behind it
            log.exception("token application failed")
            raw = {"accepted": False, "code": "meter-error"}
        result = to_fields(raw)
        result.setdefault("accepted", False)
        result.setdefault("code", "accepted" if result["accepted"] else "rejected")
        self.tokens_submitted += 1
        self.last_token = {
            "last_token": digits,
            "last_token_code": result["code"],
            "last_token_amount": result.get("amount", ""),
        }
        return result

    def _on_short_code(self, message: Message) -> None:
        code_value = message.fields.get("code", 0)
        try:
            code = ShortCode(int(code_value))
        except ValueError:
            self._send(Message(MsgKind.SHORT_CODE_REPLY, message.request_id, {"code": int(code_value), "error": "unknown"}))
            return
        data = dict(to_fields(self._display_data()))
        data.update(self.last_token)
        if self._utc_s is not None:
            data.update(self._time_fields())
        reply: dict[str, FieldValue] = {"code": int(code)}
        reply.update({k: data[k] for k in SHORT_CODE_FIELDS[code] if k in data})
        self._send(Message(MsgKind.SHORT_CODE_REPLY, message.request_id, reply))
