"""The meter end of the MCU-CIU link as a use case: tokens typed on the CIU go to the payment
service, link events go to the event log, pairing shows on the meter LCD.

:class:`MeterCiu` owns the :class:`~meterd.services.ciu_service.CiuService` and gets everything
else in its constructor (:class:`CiuLinks`): the payment service (None without prepayment), the
revenue service (legal time for TIME), the event recorder, the meter LCD's pairing screen, the
pair key store and a timer. The I/O on the line is :class:`meterd.runtime.ciu_port.CiuPortRunner`.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meterd.core import event_codes
from meterd.core.clock import Clock
from meterd.core.events import EventRecorder
from meterd.core.sts.outcome import TokenOutcome
from meterd.proto.ciu_link import (
    FieldValue,
    LinkConfig,
    LinkDown,
    LinkEndpoint,
    LinkEvent,
    LinkUp,
    MonoClock,
    PairingComplete,
    PairingFailed,
    Role,
)
from meterd.services.ciu_service import CiuService, ResultStore
from meterd.services.payment import PaymentService
from meterd.services.revenue import RevenueService

log = logging.getLogger("meterd.ciu")
FINGERPRINT_SHOWN_S = 60.0
"""How long (s) the meter LCD shows the fingerprint after pairing."""

#: STS result names (IEC 62055-41) -> the short codes the CIU has texts for.
RESULT_CODES = {
    "Accept": "accepted", "1stKCT": "accepted", "2ndKCT": "accepted", "3rdKCT": "accepted", "4thKCT": "accepted",
    "OldError": "old", "UsedError": "used", "KeyExpiredError": "key_expired", "CRCError": "crc",
    "FormatError": "format", "OverflowError": "limit", "MfrCodeError": "wrong_meter", "TokenLockout": "locked",
    "NotCommissioned": "not_commissioned",
}
NOT_ENABLED: dict[str, FieldValue | float] = {"accepted": False, "code": "not_enabled", "display": "Prepayment not enabled"}


class PairingScreen(Protocol):
    """The meter LCD's pairing screen (:class:`meterd.ui.meter_lcd.MeterLcd` fits)."""

    def show_pairing(self, code: str, fingerprint: str | None = None) -> None: ...

    def end_pairing(self) -> None: ...

    def tick(self) -> bool: ...


class LineRunner(Protocol):
    """The I/O on the line (:class:`meterd.runtime.ciu_port.CiuPortRunner` fits)."""

    def flush(self) -> None:
        """Write what the service has to send now."""
        ...


class PairKeyStore(Protocol):
    """Where the pair key lives (:class:`meterd.store.pair_key.PairKeyFile` fits)."""

    def save(self, key: bytes) -> None: ...


Later = Callable[[float, Callable[[], None]], object]
"""``later(delay_s, action)``: run ``action`` once after ``delay_s`` (s, real time)."""


@dataclass(frozen=True)
class CiuLinks:
    """The services the CIU works with, each None when its feature is off."""

    payment: PaymentService | None = None
    revenue: RevenueService | None = None
    events: EventRecorder | None = None
    screen: PairingScreen | None = None


@dataclass(frozen=True)
class CiuSettings:
    """Port name for the view, STATUS push period (s)."""

    port_name: str
    status_period_s: float = 5.0


def token_fields(outcome: TokenOutcome) -> dict[str, FieldValue | float]:
    """A token's outcome as TOKEN_RESULT fields: accepted, result, code, display, and the credit
    after it (kWh or currency units, 2 decimals) with its unit, plus the amount credited when the
    credit went up (the service writes the decimals as link fields)."""
    result = outcome.result
    fields: dict[str, FieldValue | float] = {
        "accepted": outcome.accepted, "result": result,
        "code": RESULT_CODES.get(result, "accepted" if outcome.accepted else "invalid")}
    if outcome.display:
        fields["display"] = outcome.display[:32]
    before, after = outcome.credit_before.shown_credit, outcome.credit_after.shown_credit
    fields["credit"] = round(after, 2)
    fields["unit"] = outcome.credit_after.shown_unit
    if outcome.accepted and after > before:
        fields["amount"] = round(after - before, 2)
    return fields


class MeterCiu:
    """CIU service wiring: token adapter, display data, pairing, events; I/O by the port runner."""

    def __init__(self, link: LinkEndpoint, mono: MonoClock, clock: Clock, settings: CiuSettings, links: CiuLinks,
                 display_data: Callable[[], Mapping[str, Any]], key_store: PairKeyStore, later: Later,
                 result_store: ResultStore | None = None) -> None:
        self.settings = settings
        self.links = links
        self._clock = clock
        self._key_store = key_store
        self._later = later
        self.service = CiuService(link, mono, self.submit_token, display_data, utc_s=self._utc_s,
                                  legal_offset=self._legal_offset, status_period_s=settings.status_period_s,
                                  result_store=result_store)
        self.pairing_code: str | None = None
        self.fingerprint: str | None = None
        self._was_up = False
        self._lost = False
        self.runner: LineRunner | None = None
        self.listeners: list[Callable[[list[LinkEvent]], None]] = []
        """Called with the link events of every read and timer tick (the CIU's update)."""

    @staticmethod
    def endpoint(mono: MonoClock, key: bytes | None, config: LinkConfig | None = None) -> LinkEndpoint:
        """The meter's link endpoint (the bus master) with ``key`` (None = not paired)."""
        return LinkEndpoint(Role.METER, mono, secrets.token_bytes, key, config)

    # -- callbacks of the service ------------------------------------------------------------

    def _utc_s(self) -> int:
        return int(self._clock.utc().timestamp())

    def _legal_offset(self) -> tuple[int, bool] | None:
        """The meter's legal time as (local minus UTC in s, DST active), from the revenue service."""
        revenue = self.links.revenue
        if revenue is None:
            return None
        local = revenue.local_time(self._clock.utc())
        return int(local.utc_offset_min) * 60, bool(local.dst_active)

    def submit_token(self, digits: str) -> dict[str, FieldValue | float]:
        """Apply a token typed on the CIU through the payment service; fields for TOKEN_RESULT."""
        payment = self.links.payment
        if payment is None:
            return dict(NOT_ENABLED)
        return token_fields(payment.submit_token(digits, "ciu"))

    # -- link events -------------------------------------------------------------------------

    def on_events(self, events: list[LinkEvent]) -> None:
        """Record link loss and recovery, handle pairing results."""
        for event in events:
            if isinstance(event, LinkUp):
                if self._lost or not self._was_up:
                    self._record("CIU_LINK_RESTORED", {"session": event.session})
                self._was_up, self._lost = True, False
                log.info("CIU link up (session %d)", event.session)
            elif isinstance(event, LinkDown) and event.reason != "rehello":
                if not self._lost:
                    self._record("CIU_LINK_LOST", {"reason": event.reason})
                self._lost = True
                log.warning("CIU link down (%s)", event.reason)
            elif isinstance(event, PairingComplete):
                self._paired(event)
            elif isinstance(event, PairingFailed):
                self._pairing_failed(event.reason)
        for listener in self.listeners:
            listener(events)

    def _paired(self, event: PairingComplete) -> None:
        self._key_store.save(event.pair_key)
        self.pairing_code, self.fingerprint = None, event.fingerprint
        log.info("CIU paired, fingerprint %s", event.fingerprint)
        self._record("CIU_PAIRED", {"fingerprint": event.fingerprint})
        screen = self.links.screen
        if screen is not None:
            screen.show_pairing("", event.fingerprint)
            self._later(FINGERPRINT_SHOWN_S, screen.end_pairing)

    def _pairing_failed(self, reason: str) -> None:
        log.warning("CIU pairing failed (%s)", reason)
        self.pairing_code = None
        self._record("CIU_PAIRING_FAILED", {"reason": reason})
        if self.links.screen is not None:
            self.links.screen.end_pairing()

    def _record(self, name: str, detail: dict[str, Any]) -> None:
        events = self.links.events
        definition = event_codes.BY_NAME.get(name)
        if events is None or definition is None:
            return
        events.record(definition.code, self._clock.utc(), detail)

    # -- API ---------------------------------------------------------------------------------

    def view(self) -> dict[str, Any]:
        """Link state for ``/status`` and ``GET /ciu`` (never the key); ``polls``: the meter's turns
        on the bus, ``reply_timeouts``: polls the CIU did not answer."""
        link = self.service.link
        return {"port": self.settings.port_name, "state": link.state.value, "paired": link.paired,
                "pairing_open": self.pairing_code is not None, "fingerprint": self.fingerprint,
                "tokens": self.service.tokens_submitted, "frames_tx": link.stats.frames_tx,
                "frames_rx": link.stats.frames_rx, "retransmissions": link.stats.retransmissions,
                "polls": link.stats.turns, "reply_timeouts": link.stats.reply_timeouts,
                "rejected": dict(link.stats.rejected)}

    def open_pairing(self, _body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Open pairing: a fresh 8-digit code on the meter LCD (and in the answer) for 120 s."""
        self.pairing_code = self.service.open_pairing(secrets.token_bytes)
        self.fingerprint = None
        if self.runner is not None:
            self.runner.flush()
        screen = self.links.screen
        if screen is not None:
            screen.show_pairing(self.pairing_code)
            screen.tick()
        return 200, {"pairing_code": self.pairing_code, "timeout_s": self.service.link.config.pairing_timeout_s,
                     "next": "on the CIU type 80 #, then this code and #; compare the fingerprints"}
