"""The modem's I/O shell: ModemManager over D-Bus, fed to the modem supervision.

:class:`ModemLink` runs on the event loop. It opens a :class:`hw.modem_manager.ModemManagerClient`
(the system bus, or a private bus in simulation), asks the modem for radio values every
``signal_rate_s`` (Modem.Signal Setup), and re-reads the whole snapshot whenever ModemManager
signals a change (debounced) and at least every ``poll_s`` (s; the bearer's byte counters and
signal values change without a signal). Each snapshot is converted to the meter's
:class:`~meterd.core.modem.ModemStatus` (:func:`status_of`) and handed to
:meth:`meterd.services.modem.ModemSupervisor.observe`. As the supervision's
:class:`~meterd.services.modem.ModemControl` it runs Simple.Connect / Disconnect as tasks; a
refused connect goes back as :meth:`~meterd.services.modem.ModemSupervisor.connect_failed`.

ModemManager gone (not running, bus lost) is a modem "absent" with the reason, and the bus is
opened again with back-off (2 s doubling to 60 s); the supervision records it, nothing else of
the meter notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
from collections.abc import Callable

from hw.modem_manager import MM_STATES, MmSnapshot, ModemManagerClient, ModemManagerError
from meterd.core.modem import (
    Bearer,
    Cell,
    ModemState,
    ModemStatus,
    RadioSignal,
    Registration,
    SimState,
    Technology,
)
from meterd.services.modem import ModemSettings, ModemSupervisor

log = logging.getLogger("meterd.modem")

_REGISTRATION = {0: Registration.NOT_REGISTERED, 1: Registration.HOME, 2: Registration.SEARCHING,
                 3: Registration.DENIED, 4: Registration.UNKNOWN, 5: Registration.ROAMING,
                 6: Registration.HOME, 7: Registration.ROAMING, 8: Registration.NOT_REGISTERED,
                 9: Registration.HOME, 10: Registration.ROAMING, 11: Registration.HOME}
"""MMModem3gppRegistrationState -> registration (SMS-only and CSFB variants count as registered)."""

_TECHNOLOGY_BITS: tuple[tuple[int, Technology], ...] = (
    (1 << 17, Technology.NB_IOT), (1 << 16, Technology.LTE_M), (1 << 15, Technology.LTE), (1 << 14, Technology.LTE),
    ((1 << 6) | (1 << 7) | (1 << 8) | (1 << 9), Technology.HSDPA), (1 << 5, Technology.UMTS),
    ((1 << 10) | (1 << 11) | (1 << 12) | (1 << 13), Technology.CDMA), (1 << 4, Technology.EDGE),
    (1 << 3, Technology.GPRS),
)
"""MMModemAccessTechnology bits, best first (5G NR is reported as LTE: class 47 has no NR code)."""

SIM_MISSING_REASON = 2
LOCK_NONE = 1


def technology_of(bits: int) -> Technology:
    """The best access technology in ModemManager's bit mask."""
    for mask, tech in _TECHNOLOGY_BITS:
        if bits & mask:
            return tech
    return Technology.NONE


def status_of(snap: MmSnapshot, utc: _dt.datetime, absent_reason: str = "") -> ModemStatus:
    """The meter's view of a ModemManager snapshot, captured at ``utc``."""
    if not snap.present:
        return ModemStatus(state=ModemState.ABSENT, failed_reason=absent_reason, captured_utc=utc)
    state = ModemState(MM_STATES.get(snap.state, "unknown"))
    if snap.failed_reason == SIM_MISSING_REASON or snap.sim_path in ("", "/"):
        sim = SimState.MISSING
    elif snap.unlock_required not in (0, LOCK_NONE) or state is ModemState.LOCKED:
        sim = SimState.LOCKED
    else:
        sim = SimState.READY
    values = next((snap.signal[t] for t in ("Lte", "Nr5g", "Umts", "Gsm") if t in snap.signal), {})
    signal = RadioSignal(values.get("rssi"), values.get("rsrp"), values.get("rsrq"), values.get("snr"))
    bearers = sorted(snap.bearers, key=lambda b: not b.connected)
    bearer = Bearer()
    if bearers:
        b = bearers[0]
        bearer = Bearer(b.connected, b.interface, b.ipv4, b.prefix, b.gateway, b.dns, b.rx_bytes, b.tx_bytes,
                        b.duration_s)
    cells = tuple(Cell(c.cell_id, c.location_id, _int(c.operator_id[:3]), _int(c.operator_id[3:]),
                       _csq_of_dbm(c.level_dbm), c.serving) for c in snap.cells)
    return ModemStatus(state=state, failed_reason=snap.failed_reason_name if state is ModemState.FAILED else "",
                       model=snap.model, sim=sim, registration=_REGISTRATION.get(snap.registration, Registration.UNKNOWN),
                       operator_name=snap.operator_name, operator_code=snap.operator_code,
                       technology=technology_of(snap.access_technologies), quality_pct=snap.quality_pct,
                       signal=signal, bearer=bearer, cells=cells, captured_utc=utc)


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def _csq_of_dbm(level: float | None) -> int:
    """A cell's level (dBm) on the CSQ scale (−113 dBm + 2 per step, 0…31; 99 unknown)."""
    if level is None:
        return 99
    return max(0, min(31, round((level + 113.0) / 2.0)))


class ModemLink:
    """ModemManager to the supervision and back (module docstring). ``address``: a D-Bus
    address, or "" for the system bus; ``pin``: read when a connect needs it (never logged)."""

    def __init__(self, supervisor: ModemSupervisor, address: str, utc: Callable[[], _dt.datetime],
                 pin: Callable[[], str] = lambda: "", password: Callable[[], str] = lambda: "",
                 poll_s: float = 30.0, signal_rate_s: int = 30, debounce_s: float = 0.05) -> None:
        self.supervisor = supervisor
        self.address = address
        self._utc = utc
        self._pin = pin
        self._password = password
        self.poll_s = poll_s
        self.signal_rate_s = signal_rate_s
        self.debounce_s = debounce_s
        self._client: ModemManagerClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ops: set[asyncio.Task[None]] = set()
        self._path = ""
        self._signal_set_for = ""
        self._closing = False
        self.reads = 0

    def start(self) -> ModemLink:
        """Run on the current loop; the supervision's control is this link from now on."""
        self.supervisor.control = self
        self._task = asyncio.get_running_loop().create_task(self._run(), name="modem-link")
        return self

    async def close(self) -> None:
        """Stop reading, cancel calls in flight, leave the bus."""
        self._closing = True  # the loops end even if a cancellation is lost in a wait_for race
        self._wake.set()
        tasks = [t for t in (self._task, *self._ops) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    def refresh(self) -> None:
        """Read the snapshot again soon (ModemManager signalled a change)."""
        self._wake.set()

    # --- ModemControl ---

    def connect(self, settings: ModemSettings) -> None:
        self._spawn(self._connect(settings))

    def disconnect(self) -> None:
        self._spawn(self._disconnect())

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._ops.add(task)
        task.add_done_callback(self._ops.discard)

    async def _connect(self, settings: ModemSettings) -> None:
        client = self._client
        if client is None or not self._path:
            self.supervisor.connect_failed("ModemManager not reachable")
            return
        try:
            await client.connect(self._path, settings.apn, settings.user, self._password(), self._pin(),
                                 settings.ip_type)
        except ModemManagerError as exc:
            self.supervisor.connect_failed(str(exc))
        self.refresh()

    async def _disconnect(self) -> None:
        if self._client is not None and self._path:
            try:
                await self._client.disconnect(self._path)
            except ModemManagerError as exc:
                log.warning("cellular bearer: disconnect failed: %s", exc)
        self.refresh()

    # --- the reader ---

    async def _run(self) -> None:
        backoff_s = 2.0
        while not self._closing:
            try:
                await self._open()
                backoff_s = 2.0
                await self._read_loop()
            except ModemManagerError as exc:
                self._path = ""
                self.supervisor.observe(status_of(MmSnapshot(present=False), self._utc(), str(exc)))
                if self._client is not None:
                    await self._client.close()
                    self._client = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), backoff_s)
                self._wake.clear()
                backoff_s = min(backoff_s * 2.0, 60.0)

    async def _open(self) -> None:
        if self._client is None:
            client = ModemManagerClient(self.address or None)
            await client.open()
            client.on_change(self.refresh)
            self._client = client

    async def _read_loop(self) -> None:
        assert self._client is not None
        while not self._closing:
            snap = await self._consistent_snapshot()
            self._path = snap.path
            if snap.present and self._signal_set_for != snap.path:
                try:
                    await self._client.setup_signal(snap.path, self.signal_rate_s)
                    self._signal_set_for = snap.path
                except ModemManagerError as exc:
                    log.info("Modem.Signal not available: %s", exc)
                    self._signal_set_for = snap.path
            self.supervisor.observe(status_of(snap, self._utc()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            if self.debounce_s > 0:
                await asyncio.sleep(self.debounce_s)  # let a burst of property changes settle
            if not self._client.connected:
                raise ModemManagerError("D-Bus connection lost")

    async def _consistent_snapshot(self, tries: int = 4) -> MmSnapshot:
        """A snapshot no change was signalled during: the interfaces are read one after the
        other, so a change in between would show half of it (a modem "connected" but "not
        registered"); read again while changes come (at most ``tries`` reads)."""
        assert self._client is not None
        snap = None
        for _ in range(tries):
            self._wake.clear()
            snap = await self._client.snapshot()
            self.reads += 1
            await asyncio.sleep(0)  # signals already received are handled before deciding
            if not self._wake.is_set():
                break
        assert snap is not None
        return snap
