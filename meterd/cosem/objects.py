"""The COSEM object model of the meter: one place mapping OBIS codes to the meter model.

An :class:`ObjectRegistry` holds *factories*; each server session (one per link or connection)
calls :meth:`ObjectRegistry.build` to get fresh gurux objects bound to the shared
:class:`~meterd.core.model.MeterModel`. Later features (tariffs, billing, prepayment,
disconnector, event logs) plug in with ``registry.add(factory)``; a factory receives a
:class:`CosemContext` and yields :class:`CosemEntry` items (object + :class:`Access` rule)::

    def disconnect_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
        yield CosemEntry(MyDisconnect("0.0.96.3.10.255", ctx.model), Access(methods={1, 2}))

    registry = default_registry()
    registry.add(disconnect_objects)

Access levels: the public client (SAP 16) reads only entries with ``public=True``; the reader
(SAP 17, LLS) reads everything except ``hidden`` attributes; the management client (SAP 1,
HLS-GMAC) also writes ``write`` attributes and invokes ``methods``.

Units of the served values: energy registers are the meter's integer milli-units as
long64-unsigned with scaler −3 (Wh, varh, VAh); voltages double-long-unsigned, scaler −2, V;
currents double-long-unsigned, scaler −3, A; powers double-long-unsigned, scaler −1 (W, var,
VA), split by direction (import/export codes); power factor long, scaler −3; frequency
long-unsigned, scaler −2, Hz; phase angles 1-0:81.7.E.255 long, scaler −1, degrees.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from meterd.core.chip_health import FaultTotals
from meterd.core.energy import Derived, Quantity, obis_c
from meterd.core.lateness import LatenessSummary
from meterd.core.model import MeterModel
from meterd.core.reading import PHASES, Channel, PhaseValues, Reading
from meterd.cosem import axdr
from meterd.cosem.adapters import (
    ModelAssociation,
    ModelClock,
    ModelHdlcSetup,
    ModelIecLocalPortSetup,
    ModelProfile,
    ModelSapAssignment,
    ModelSecuritySetup,
    ValueData,
    ValueRegister,
    clock_quality,
)
from meterd.cosem.profile import ProfileReader

# DLMS unit codes (IEC 62056-6-2 table 4)
UNIT_W, UNIT_VA, UNIT_VAR, UNIT_WH, UNIT_VAH, UNIT_VARH = 27, 28, 29, 30, 31, 32
UNIT_A, UNIT_V, UNIT_HZ, UNIT_NONE = 33, 35, 44, 255
UNIT_DEGREE = 8
UNIT_SECOND = 7
ENERGY_UNITS = {"Wh": UNIT_WH, "varh": UNIT_VARH, "VAh": UNIT_VAH}
LOAD_PROFILE_LN = "1.0.99.1.0.255"


class AccessLevel(enum.IntEnum):
    """What an association may do."""

    PUBLIC = 0
    READER = 1
    MANAGER = 2


@dataclass(frozen=True)
class AssociationConfig:
    """One association: client SAP, instance E of 0-0:40.0.E.255, mechanism, level.

    ``mechanism``: 0 none, 1 LLS, 5 HLS-GMAC; ``ciphered``: security suite 0 with authenticated
    and encrypted APDUs required; ``security_instance``: E of 0-0:43.0.E.255 / 0-0:43.1.E.255.
    """

    name: str
    client_sap: int
    instance: int
    mechanism: int
    level: AccessLevel
    ciphered: bool = False
    security_instance: int | None = None

    @property
    def logical_name(self) -> str:
        """OBIS of this association object."""
        return f"0.0.40.0.{self.instance}.255"


DEFAULT_ASSOCIATIONS: tuple[AssociationConfig, ...] = (
    AssociationConfig("public", 16, 1, 0, AccessLevel.PUBLIC),
    AssociationConfig("reader", 17, 2, 1, AccessLevel.READER),
    AssociationConfig("management", 1, 3, 5, AccessLevel.MANAGER, ciphered=True, security_instance=3),
)


@dataclass(frozen=True)
class Access:
    """Access rule of one object (see module docstring)."""

    public: bool = False
    write: frozenset[int] = frozenset()
    methods: frozenset[int] = frozenset()
    hidden: frozenset[int] = frozenset()


@dataclass
class CosemEntry:
    """A gurux object and who may use it."""

    obj: Any
    access: Access = field(default_factory=Access)


@dataclass(frozen=True)
class HdlcSetup:
    """What the IEC HDLC setup 0-0:22.0.0.255 of an HDLC link shows: ``baud`` (Bd), the maximum
    information field lengths (octets), the inactivity time-out (s), the inter-octet time-out (ms),
    the physical device address (0: none, a point-to-point link) and the largest windows (frames)."""

    baud: int = 9600
    max_info_tx: int = 128
    max_info_rx: int = 128
    inactivity_s: int = 120
    inter_octet_ms: int = 0
    device_address: int = 0
    window_tx: int = 1
    window_rx: int = 1


@dataclass(frozen=True)
class OpticalSetup:
    """What the IEC local port setup 0-0:20.0.0.255 of the optical port shows: the highest mode E
    ``baud`` offered (Bd) and the device address ("" = none)."""

    baud: int = 9600
    device_address: str = ""


@dataclass
class CosemContext:
    """What factories may bind objects to (one context per server session).

    ``set_clock(new_utc)`` changes the meter clock on behalf of this session;
    ``frame_counter(instance)`` is the last accepted client invocation counter of a security
    setup; ``client_title()`` the system title of the current ciphered client;
    ``stage_keys(items)`` queues a key transfer and returns a DLMS result code; ``hdlc`` the
    parameters of this session's HDLC link (None on the TCP wrapper); ``optical`` the mode E
    parameters of the optical port (None on other links); ``link_name`` the link of this session
    ("tcp", "rs485", "optical"; local when in :data:`LOCAL_LINKS`).
    """

    model: MeterModel
    association: AssociationConfig
    associations: Sequence[AssociationConfig]
    server_sap: int
    server_title: bytes
    conformance: int
    max_pdu: int
    set_clock: Callable[[Any], None]
    frame_counter: Callable[[int], int]
    client_title: Callable[[], bytes | None]
    stage_keys: Callable[[Sequence[tuple[int, bytes]]], int]
    hdlc: HdlcSetup | None = None
    optical: OpticalSetup | None = None
    link_name: str = ""


# links whose sessions are local (the IEC 62056-21 optical port): the communication log and the
# token gateway's delivery method tell them from the remote ones (TCP wrapper, RS-485)
LOCAL_LINKS = frozenset({"optical"})

ObjectFactory = Callable[[CosemContext], Iterable[CosemEntry]]


class ObjectRegistry:
    """Ordered collection of object factories."""

    def __init__(self) -> None:
        self._factories: list[ObjectFactory] = []

    def add(self, factory: ObjectFactory) -> None:
        """Register a factory; its objects follow those of earlier factories."""
        self._factories.append(factory)

    def build(self, ctx: CosemContext) -> list[CosemEntry]:
        """Fresh objects for one session; duplicate logical names raise ``ValueError``, except
        that a factory with a ``replaces`` attribute (a set of logical names) supersedes the
        objects of those names made by earlier factories (e.g. the revenue function's clock with
        time zone and DST replaces the plain UTC clock)."""
        entries: list[CosemEntry] = []
        seen: set[str] = set()
        for factory in self._factories:
            replaced = set(getattr(factory, "replaces", ()))
            if replaced:
                entries = [e for e in entries if e.obj.logicalName not in replaced]
                seen -= replaced
            for entry in factory(ctx):
                if entry.obj.logicalName in seen:
                    raise ValueError(f"duplicate COSEM object {entry.obj.logicalName}")
                seen.add(entry.obj.logicalName)
                entries.append(entry)
        return entries


# --- factories -------------------------------------------------------------------------------

def identity_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """Logical device name, serial number, firmware identifier and signature, meter status."""
    ident = ctx.model.identity
    yield CosemEntry(ValueData("0.0.42.0.0.255", lambda: (axdr.OCTET_STRING, ident.logical_device_name)),
                     Access(public=True))
    yield CosemEntry(ValueData("0.0.96.1.0.255", lambda: (axdr.OCTET_STRING, ident.serial)), Access(public=True))
    yield CosemEntry(ValueData("1.0.0.2.0.255", lambda: (axdr.OCTET_STRING, ident.firmware_version)))
    yield CosemEntry(ValueData("1.0.0.2.8.255",
                               lambda: (axdr.OCTET_STRING, bytes.fromhex(ident.firmware_signature))))
    yield CosemEntry(ValueData("0.0.96.5.0.255", lambda: (axdr.UINT32, ctx.model.snapshot().status_word)))


def clock_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """The clock 0-0:1.0.0.255 (writable and adjustable by the management client)."""
    yield CosemEntry(ModelClock("0.0.1.0.0.255", ctx.model.now_utc, ctx.set_clock, quality=clock_quality(ctx.model)),
                     Access(public=True, write=frozenset({2}), methods=frozenset({1, 3, 6})))


def _energy_getter(model: MeterModel, quantity: Quantity | Derived, channel: Channel) -> Callable[[], tuple[int, int]]:
    return lambda: (axdr.UINT64, model.snapshot().energy(quantity, channel))


def energy_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """Every base and derived energy register, total and per phase (1-0:C.8.0.255)."""
    from meterd.core.energy import UNITS

    for channel in Channel:
        for quantity in (*Quantity, *Derived):
            ln = f"1.0.{obis_c(quantity, channel)}.8.0.255"
            unit = ENERGY_UNITS[UNITS[quantity]]
            yield CosemEntry(ValueRegister(ln, _energy_getter(ctx.model, quantity, channel), -3, unit))


@dataclass(frozen=True)
class Instant:
    """One instantaneous quantity 1-0:C.7.E.255: OBIS C code, A-XDR type, scaler, unit, value in
    SI units (V, A, W, var, VA, Hz, °), OBIS E code."""

    c: int
    tag: int
    scaler: int
    unit: int
    value: Callable[[Reading], float]
    e: int = 0

    @property
    def logical_name(self) -> str:
        """The OBIS code, dotted (e.g. "1.0.81.7.15.255")."""
        return f"1.0.{self.c}.7.{self.e}.255"


def _phase(channel: Channel, fn: Callable[[PhaseValues], float]) -> Callable[[Reading], float]:
    return lambda r: fn(r.phase(channel))


def _wrap_deg(angle: float) -> float:
    """An angle folded into −180…+180 ° (+180 kept)."""
    folded = (angle + 180.0) % 360.0 - 180.0
    return 180.0 if folded == -180.0 else folded


def _voltage_angle(ref: Channel, value: Channel) -> Callable[[Reading], float]:
    return lambda r: _wrap_deg(r.phase(ref).voltage_angle_deg - r.phase(value).voltage_angle_deg)


def _current_angle(ref: Channel, value: Channel) -> Callable[[Reading], float]:
    # current phasor of a phase = its voltage angle − angle_deg (voltage-to-current angle)
    def angle(r: Reading) -> float:
        current = r.phase(value).voltage_angle_deg - r.phase(value).angle_deg
        return _wrap_deg(r.phase(ref).voltage_angle_deg - current)
    return angle


# phase angle quantities of 1-0:81.7.E (E = 10 × reference index + value index)
ANGLE_INDEX = {("U", Channel.L1): 0, ("U", Channel.L2): 1, ("U", Channel.L3): 2,
               ("I", Channel.L1): 4, ("I", Channel.L2): 5, ("I", Channel.L3): 6}


def _angles() -> list[Instant]:
    """Phase angles 1-0:81.7.E.255 (°, long, scaler −1): from the reference quantity to the
    value quantity, positive when the value lags the reference (the sense of the metering chip's
    voltage-to-current angle), folded into −180…+180 °. Served: every voltage vs U(L1)
    (E = 0, 1, 2), every current vs U(L1) (E = 4, 5, 6) and each current vs its own phase
    voltage (E = 15, 26; E = 4 is L1's)."""
    l1 = Channel.L1
    out = [Instant(81, axdr.INT16, -1, UNIT_DEGREE, _voltage_angle(l1, ch), ANGLE_INDEX[("U", ch)]) for ch in PHASES]
    out += [Instant(81, axdr.INT16, -1, UNIT_DEGREE, _current_angle(l1, ch), ANGLE_INDEX[("I", ch)]) for ch in PHASES]
    for ch in PHASES[1:]:
        e = 10 * ANGLE_INDEX[("U", ch)] + ANGLE_INDEX[("I", ch)]
        out.append(Instant(81, axdr.INT16, -1, UNIT_DEGREE, _current_angle(ch, ch), e))
    return out


def _instants() -> list[Instant]:
    u32, i16, u16 = axdr.UINT32, axdr.INT16, axdr.UINT16
    out = [
        Instant(1, u32, -1, UNIT_W, lambda r: max(r.total_active_power_w, 0.0)),
        Instant(2, u32, -1, UNIT_W, lambda r: max(-r.total_active_power_w, 0.0)),
        Instant(3, u32, -1, UNIT_VAR, lambda r: max(r.total_reactive_power_var, 0.0)),
        Instant(4, u32, -1, UNIT_VAR, lambda r: max(-r.total_reactive_power_var, 0.0)),
        Instant(9, u32, -1, UNIT_VA, lambda r: r.total_apparent_power_va),
        Instant(13, i16, -3, UNIT_NONE, lambda r: r.total_power_factor),
        Instant(14, u16, -2, UNIT_HZ, lambda r: r.frequency_hz),
        Instant(91, u32, -3, UNIT_A, lambda r: r.neutral_current_a),
    ]
    for ch in PHASES:
        off = ch.obis_offset
        out += [
            Instant(off + 12, u32, -2, UNIT_V, _phase(ch, lambda p: p.voltage_v)),
            Instant(off + 11, u32, -3, UNIT_A, _phase(ch, lambda p: p.current_a)),
            Instant(off + 1, u32, -1, UNIT_W, _phase(ch, lambda p: max(p.active_power_w, 0.0))),
            Instant(off + 2, u32, -1, UNIT_W, _phase(ch, lambda p: max(-p.active_power_w, 0.0))),
            Instant(off + 3, u32, -1, UNIT_VAR, _phase(ch, lambda p: max(p.reactive_power_var, 0.0))),
            Instant(off + 4, u32, -1, UNIT_VAR, _phase(ch, lambda p: max(-p.reactive_power_var, 0.0))),
            Instant(off + 9, u32, -1, UNIT_VA, _phase(ch, lambda p: p.apparent_power_va)),
            Instant(off + 13, i16, -3, UNIT_NONE, _phase(ch, lambda p: p.power_factor)),
        ]
    return out + _angles()


INSTANTANEOUS: tuple[Instant, ...] = tuple(_instants())


def _instant_getter(model: MeterModel, spec: Instant) -> Callable[[], tuple[int, int]]:
    def read() -> tuple[int, int]:
        reading = model.snapshot().reading
        value = spec.value(reading) if reading is not None else 0.0
        return spec.tag, round(value / 10.0 ** spec.scaler)
    return read


def instantaneous_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """Instantaneous values 1-0:C.7.E.255 (voltage, current, P, Q, S, PF, f, neutral current,
    phase angles)."""
    for spec in INSTANTANEOUS:
        yield CosemEntry(ValueRegister(spec.logical_name, _instant_getter(ctx.model, spec),
                                       spec.scaler, spec.unit))


def _association(ctx: CosemContext, cfg: AssociationConfig, ln: str) -> ModelAssociation:
    sec = f"0.0.43.0.{cfg.security_instance}.255" if cfg.security_instance is not None else None
    return ModelAssociation(ln, cfg.client_sap, ctx.server_sap, cfg.mechanism, 3 if cfg.ciphered else 1,
                            ctx.conformance, ctx.max_pdu, sec)


def association_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """Current association 0-0:40.0.0.255, one instance per client and the SAP assignment."""
    current = ctx.association
    yield CosemEntry(_association(ctx, current, "0.0.40.0.0.255"),
                     Access(public=True, hidden=frozenset({7}), methods=frozenset({1})))
    for cfg in ctx.associations:
        if cfg.level <= current.level:
            yield CosemEntry(_association(ctx, cfg, cfg.logical_name), Access(hidden=frozenset({7})))
    yield CosemEntry(ModelSapAssignment("0.0.41.0.0.255", [(ctx.server_sap, ctx.model.identity.logical_device_name)]))


def _frame_counter_getter(ctx: CosemContext, instance: int) -> Callable[[], tuple[int, int]]:
    return lambda: (axdr.UINT32, ctx.frame_counter(instance))


def security_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """Security setup 0-0:43.0.E.255 and its frame counter 0-0:43.1.E.255 per ciphered association."""
    for cfg in ctx.associations:
        e = cfg.security_instance
        if e is None:
            continue
        is_current = cfg is ctx.association
        yield CosemEntry(ModelSecuritySetup(f"0.0.43.0.{e}.255", ctx.server_title,
                                            ctx.client_title if is_current else (lambda: None), ctx.stage_keys),
                         Access(methods=frozenset({2}) if is_current else frozenset()))
        yield CosemEntry(ValueData(f"0.0.43.1.{e}.255", _frame_counter_getter(ctx, e)), Access(public=True))


def communication_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """On an HDLC link, the IEC HDLC setup 0-0:22.0.0.255 with the link's own parameters
    (read-only); on the optical port also the IEC local port setup 0-0:20.0.0.255 (mode E,
    read-only, its mode-C passwords hidden). Nothing on the TCP wrapper."""
    h = ctx.hdlc
    if h is not None:
        yield CosemEntry(ModelHdlcSetup("0.0.22.0.0.255", h.baud, h.max_info_tx, h.max_info_rx, h.inactivity_s,
                                        h.inter_octet_ms, h.device_address, h.window_tx, h.window_rx))
    if ctx.optical is not None:
        yield CosemEntry(ModelIecLocalPortSetup("0.0.20.0.0.255", ctx.optical.baud, ctx.optical.device_address),
                         Access(hidden=frozenset({7, 8, 9})))


def profile_objects(ctx: CosemContext) -> Iterable[CosemEntry]:
    """Load profile 1-0:99.1.0.255 when the model has one."""
    buffer = ctx.model.profile(LOAD_PROFILE_LN)
    if buffer is not None:
        yield CosemEntry(ModelProfile(LOAD_PROFILE_LN, ProfileReader(buffer)))


METROLOGY_FAULT_OBIS = ("0.0.96.50.0.255", "0.0.96.50.1.255", "0.0.96.50.2.255", "0.0.96.50.3.255",
                        "0.0.96.50.4.255")
"""Metrology faults (manufacturer-specific 0-0:96.50.E): count, total duration (s), total active
energy estimated not measured (Wh), the last fault's duration (s) and estimate (Wh)."""


def metrology_fault_objects(totals: Callable[[], FaultTotals]) -> ObjectFactory:
    """A factory of the metrology-fault registers (class 3, read-only) over ``totals()``."""
    def factory(_ctx: CosemContext) -> Iterable[CosemEntry]:
        count, duration, energy, last_duration, last_energy = METROLOGY_FAULT_OBIS
        yield CosemEntry(ValueRegister(count, lambda: (axdr.UINT32, totals().count), 0, UNIT_NONE))
        yield CosemEntry(ValueRegister(duration, lambda: (axdr.UINT32, round(totals().duration_s)), 0, UNIT_SECOND))
        yield CosemEntry(ValueRegister(energy, lambda: (axdr.UINT64, round(totals().energy_not_measured_wh * 1000)),
                                       -3, UNIT_WH))
        yield CosemEntry(ValueRegister(last_duration, lambda: (axdr.UINT32, round(totals().last_duration_s)), 0,
                                       UNIT_SECOND))
        yield CosemEntry(ValueRegister(last_energy, lambda: (axdr.UINT64, round(totals().last_energy_wh * 1000)),
                                       -3, UNIT_WH))
    return factory


METERING_LOOP_OBIS = ("0.0.96.51.0.255", "0.0.96.51.1.255", "0.0.96.51.2.255", "0.0.96.51.3.255",
                      "0.0.96.51.4.255")
"""The metering loop's timing (manufacturer-specific 0-0:96.51.E): ticks since start, ticks that
started late, the largest start lateness since start (ms), its 99th percentile over the last
1000 ticks (ms), ticks given up (the loop was far behind)."""


def metering_loop_objects(summary: Callable[[], LatenessSummary]) -> ObjectFactory:
    """A factory of the metering-loop timing registers (class 3, read-only) over ``summary()``;
    lateness in ms as seconds with scaler -3."""
    def factory(_ctx: CosemContext) -> Iterable[CosemEntry]:
        ticks, late, max_ms, p99_ms, missed = METERING_LOOP_OBIS
        yield CosemEntry(ValueRegister(ticks, lambda: (axdr.UINT32, summary().count & 0xFFFFFFFF), 0, UNIT_NONE))
        yield CosemEntry(ValueRegister(late, lambda: (axdr.UINT32, summary().late & 0xFFFFFFFF), 0, UNIT_NONE))
        yield CosemEntry(ValueRegister(max_ms, lambda: (axdr.UINT32, min(round(summary().max_ms), 0xFFFFFFFF)),
                                       -3, UNIT_SECOND))
        yield CosemEntry(ValueRegister(p99_ms, lambda: (axdr.UINT32, min(round(summary().p99_ms), 0xFFFFFFFF)),
                                       -3, UNIT_SECOND))
        yield CosemEntry(ValueRegister(missed, lambda: (axdr.UINT32, summary().missed & 0xFFFFFFFF), 0, UNIT_NONE))
    return factory


def default_registry() -> ObjectRegistry:
    """The registry of the base meter (identity, clock, energy, instantaneous, associations,
    security, communication, load profile)."""
    registry = ObjectRegistry()
    for factory in (identity_objects, clock_objects, energy_objects, instantaneous_objects,
                    association_objects, security_objects, communication_objects, profile_objects):
        registry.add(factory)
    return registry
