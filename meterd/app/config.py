"""meterd configuration: TOML read once, validated into typed, frozen sections.

Every section is a dataclass; every field carries its range or choices in ``metadata``. Unknown
sections or keys, wrong types and out-of-range values raise :class:`ConfigError` naming the file,
the dotted key and the reason (the daemon prints that one line and exits with status 2).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterd.app.sim_world import parse_power_factor
from meterd.core import register_range
from meterd.core.errors import ConfigError


def rng(lo: float | None = None, hi: float | None = None, **kw: Any) -> dict[str, Any]:
    """Field metadata: inclusive range."""
    return {"min": lo, "max": hi, **kw}


def choices(*values: Any) -> dict[str, Any]:
    """Field metadata: allowed values."""
    return {"choices": values}


@dataclass(frozen=True)
class MeterSection:
    """Nameplate and metrology: nominal_voltage_v (V), basic/max current (A), frequency (Hz),
    cycle_s (s, the metering cycle); metering_thread: read the chip on the dedicated metering
    thread (on a Pi, and in simulation at a speed above 0), else inline in the event loop;
    wiring: the supply the meter is connected to, "3P4W" (three phases and neutral) or "1P2W"
    (single phase, L1 and neutral: L2 and L3 are not supervised, see :mod:`meterd.app.wiring`)."""

    serial: str = "PMM1221000001"
    logical_device_name: str = "PMM1221000000001"
    manufacturer_flag: str = field(default="PMM", metadata={"length": 3})
    nominal_voltage_v: float = field(default=230.0, metadata=rng(50, 480))
    basic_current_a: float = field(default=5.0, metadata=rng(0.1, 100))
    max_current_a: float = field(default=100.0, metadata=rng(1, 200))
    starting_current_pct: float = field(default=0.4, metadata=rng(0.0, 5.0))
    frequency_hz: int = field(default=50, metadata=choices(50, 60))
    led_imp_per_kwh: int = field(default=1000, metadata=rng(1, 100_000))
    cycle_s: float = field(default=1.0, metadata=rng(0.1, 10.0))
    metering_thread: bool = True
    wiring: str = field(default="3P4W", metadata=choices("3P4W", "1P2W"))


@dataclass(frozen=True)
class HardwareSection:
    """Back ends and wiring (BCM pin numbers)."""

    backend: str = field(default="sim", metadata=choices("sim", "pi"))
    pin_factory: str = field(default="", metadata=choices("", "mock", "lgpio", "rpigpio", "native"))
    spi_bus: int = field(default=0, metadata=rng(0, 6))
    spi_device: int = field(default=0, metadata=rng(0, 3))
    spi_speed_hz: int = field(default=500_000, metadata=rng(50_000, 1_200_000))
    led_pin: int = field(default=17, metadata=rng(0, 27))
    power_fail_pin: int = field(default=6, metadata=rng(0, 27))
    clock_helper_socket: str = "/run/meter-clock/clock.sock"

    @property
    def simulated(self) -> bool:
        """True for ``backend = "sim"`` (what each part then uses: ``meterd.app.hardware.Backends``)."""
        return self.backend == "sim"


@dataclass(frozen=True)
class FrontEndSection:
    """ATM90E36 set-up: meter constant (imp/kWh of true energy), energy register LSB (fraction of
    a CF pulse) and the board's current scale k (the chip sees I/k; its meter constant is
    programmed as MC × k). The defaults, 1000 imp/kWh, 0.1 CF and k = 2, give 100 mWh per count,
    registers that hold 247 s at 3 × 1.15 × 230 V × 120 A, and 131 A full scale."""

    meter_constant_imp_per_kwh: int = field(default=1000, metadata=rng(100, 100_000))
    energy_lsb_cf: float = field(default=0.1, metadata=choices(0.1, 0.01))
    current_scale: int = field(default=2, metadata=rng(1, 16))


@dataclass(frozen=True)
class LedSection:
    """The metrology test LED. ``source``: "cf1" = the chip's CF1 output drives the LED in
    hardware (the Pi pin plan; the LED constant is then the chip's meter constant); "software" =
    meterd pulses ``[hardware] led_pin``, placed in time from the measured power and counted by
    the billed energy (where CF1 is not wired: simulation); "auto" = cf1 on ``backend = "pi"``,
    software in simulation. ``pulse_ms``: the software pulse's lit time (ms; shorter when the
    pulse rate needs it, 50 % duty). ``cf_sense``: with "cf1", CF1 also reaches ``led_pin`` as an
    input: meterd counts its pulses and checks them against the billed energy."""

    source: str = field(default="auto", metadata=choices("auto", "cf1", "software"))
    pulse_ms: int = field(default=20, metadata=rng(2, 200))
    cf_sense: bool = False


@dataclass(frozen=True)
class StorageSection:
    """Where state lives; the energy journal (a memory-mapped file on a RAM file system that keeps
    every cycle across a crash of meterd; ``journal_dir`` "" = ``/run/meterd`` on a Pi, ``/dev/shm``
    in simulation); without it the energy loss bound (Wh per register) on a crash of meterd and
    the checkpoint period (s); how often a checkpoint is forced to the medium (s)."""

    state_dir: str = "/var/lib/meterd"
    checkpoint_bound_wh: float = field(default=10.0, metadata=rng(0.001, 1000))
    checkpoint_period_s: float = field(default=900.0, metadata=rng(1, 86_400))
    sync_period_s: float = field(default=300.0, metadata=rng(1, 86_400))
    journal: bool = True
    journal_dir: str = ""

    def __post_init__(self) -> None:
        if self.journal_dir and not Path(self.journal_dir).is_absolute():
            raise ValueError(f"journal_dir {self.journal_dir!r} must be an absolute path"
                             " (or empty: /run/meterd on a Pi, /dev/shm in simulation)")


@dataclass(frozen=True)
class ApiSection:
    """The API (:mod:`meterd.api.server`): the UNIX socket path; the network listener ``listen``
    (``host:port``, port 0 = one the kernel picks; "" = none), its token file (read and control
    tokens, mode 0600; a simulated meter creates it) and, for HTTPS, a certificate and its key
    (PEM). Relative paths are under the state directory."""

    socket: str = "meterd.sock"
    listen: str = ""
    tokens: str = "api-tokens.toml"
    tls_cert: str = ""
    tls_key: str = ""

    def __post_init__(self) -> None:
        if self.listen:
            self.listen_address()
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together (both, or neither for plain HTTP)")

    def listen_address(self) -> tuple[str, int]:
        """``listen`` as (host, port); ValueError when it is not ``host:port``."""
        host, sep, port = self.listen.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen {self.listen!r}: expected host:port (port 0..65535, 0 = any free port)")
        return host, int(port)


@dataclass(frozen=True)
class DlmsSection:
    """DLMS/COSEM links: TCP wrapper (port 0: one the kernel picks; tcp_host "" disables it), HDLC
    on a serial port or a sim pty."""

    tcp_host: str = "127.0.0.1"
    tcp_port: int = field(default=4059, metadata=rng(0, 65535))
    # the wrapper's connections: at most tcp_max_connections at once; one without an association
    # is closed tcp_association_timeout_s (s) after it opened or its association ended, and is
    # the first dropped when a new connection finds every place taken
    tcp_max_connections: int = field(default=8, metadata=rng(1, 64))
    tcp_association_timeout_s: float = field(default=10.0, metadata=rng(1, 300))
    hdlc_port: str = ""
    hdlc_baud: int = field(default=9600, metadata=choices(300, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))
    # RS-485 direction of hdlc_port: "kernel" (the kernel's RS-485 mode: the UART's RTS drives the
    # transceiver's DE; hdlc_de_pin names that GPIO, GPIO7 on the meter Pi's uart3, so the pin
    # checks see it) or "auto" (an auto-direction transceiver: no DE pin, hdlc_de_pin = -1)
    hdlc_direction: str = field(default="kernel", metadata=choices("kernel", "auto"))
    hdlc_de_pin: int = field(default=-1, metadata=rng(-1, 27))
    optical_port: str = ""
    # HDLC (IEC 62056-46) of hdlc_port and optical_port: hdlc_address, the meter's physical (lower
    # HDLC) address on the RS-485 bus, 0x10..0x3FFD (above 0x7D reached by 4-octet addresses only),
    # 0 = none: the only station on a point-to-point line, answering any lower address (the optical
    # port is always point-to-point); the largest information fields (octets, 32..2030) and windows
    # (frames, 1..7) the link agrees to in the SNRM (a client proposing less gets less); the
    # inactivity time-out (s), restarted only by valid frames addressed to the meter
    hdlc_address: int = field(default=0, metadata=rng(0, 0x3FFD))
    hdlc_max_info_tx: int = field(default=2030, metadata=rng(32, 2030))
    hdlc_max_info_rx: int = field(default=2030, metadata=rng(32, 2030))
    hdlc_window_tx: int = field(default=7, metadata=rng(1, 7))
    hdlc_window_rx: int = field(default=7, metadata=rng(1, 7))
    hdlc_inactivity_s: float = field(default=120.0, metadata=rng(1, 3600))
    # a frame begun and left unfinished for longer than hdlc_inter_octet_ms (ms, 0 = never) is
    # dropped (a transmission cut off on the bus)
    hdlc_inter_octet_ms: int = field(default=500, metadata=rng(0, 10_000))
    keys_file: str = "keys.toml"
    # authentication lockout per link and client SAP: after lockout_failures consecutive failures
    # (wrong LLS password, wrong HLS keys or reply) associations are refused for lockout_s (s),
    # doubling per further failure up to lockout_max_s (s)
    lockout_failures: int = field(default=3, metadata=rng(1, 100))
    lockout_s: float = field(default=60.0, metadata=rng(1, 86_400))
    lockout_max_s: float = field(default=3600.0, metadata=rng(1, 604_800))

    def __post_init__(self) -> None:
        if self.hdlc_direction == "auto" and self.hdlc_de_pin != -1:
            raise ValueError(f"hdlc_de_pin = {self.hdlc_de_pin}: an auto-direction transceiver has no DE pin"
                             ' (-1), or use hdlc_direction = "kernel"')
        if 0 < self.hdlc_address < 0x10 or self.hdlc_address in (0x7E, 0x7F):
            raise ValueError(f"hdlc_address = {self.hdlc_address:#x}: a physical address is 0x10..0x3FFD"
                             " (not 0x7E calling nor 0x7F all-station), or 0 for none")
        if self.lockout_max_s < self.lockout_s:
            raise ValueError(f"lockout_max_s ({self.lockout_max_s:g} s) must not be below lockout_s"
                             f" ({self.lockout_s:g} s)")


@dataclass(frozen=True)
class SimSection:
    """Simulator: speed (× real time; 0 = as fast as possible), start time, initial load (V, A, power
    factor as ``meterctl sim set --pf`` takes it: 1, 0.5L, 0.8C, -0.5L), and a scenario file (TOML,
    :mod:`hw.sim.scenario`; path relative to the working directory) played from the first cycle;
    slow_storage_s (s): every energy-database write takes this much longer (a slow SD card; also
    ``meterctl sim slow-storage``); the board seed of the simulated analogue front end
    (:class:`hw.atm90e36.analog.AnalogBoard`)."""

    speed: float = field(default=1.0, metadata=rng(0, 100_000))
    start_utc: str = "2026-01-01T00:00:00+00:00"  # or "now": the present time (UTC, whole seconds)
    voltage_v: float = field(default=230.0, metadata=rng(0, 480))
    current_a: float = field(default=5.0, metadata=rng(0, 200))
    power_factor: str = "1.0"
    scenario: str = ""
    board_seed: int = field(default=0, metadata=rng(0, 2**31 - 1))  # analogue errors; 0 = ideal board
    slow_storage_s: float = field(default=0.0, metadata=rng(0, 30))

    def start(self) -> _dt.datetime:
        """The simulated clock's first instant: ``start_utc``, or the present time rounded down
        to the second (UTC) when it is ``"now"``."""
        if self.start_utc == "now":
            return _dt.datetime.now(_dt.UTC).replace(microsecond=0)
        return _dt.datetime.fromisoformat(self.start_utc)


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``path`` is the file it came from."""

    path: str = "<defaults>"
    meter: MeterSection = field(default_factory=MeterSection)
    hardware: HardwareSection = field(default_factory=HardwareSection)
    frontend: FrontEndSection = field(default_factory=FrontEndSection)
    led: LedSection = field(default_factory=LedSection)
    storage: StorageSection = field(default_factory=StorageSection)
    api: ApiSection = field(default_factory=ApiSection)
    dlms: DlmsSection = field(default_factory=DlmsSection)
    sim: SimSection = field(default_factory=SimSection)
    features: dict[str, Any] = field(default_factory=dict)

    def feature(self, name: str) -> Any:
        """The parsed ``[name]`` section of a feature (:func:`parse_config` fills in the defaults
        of every feature section the file does not have)."""
        if name not in self.features:
            raise KeyError(f"no feature section {name!r}")
        return self.features[name]

    @property
    def state_dir(self) -> Path:
        """The state directory (absolute, or relative to the working directory)."""
        return Path(self.storage.state_dir)

    def under_state(self, name: str) -> Path:
        """A path from the config, made relative to the state directory when not absolute."""
        p = Path(name)
        return p if p.is_absolute() else self.state_dir / p


SECTIONS: dict[str, type] = {f.name: typing.get_type_hints(Config)[f.name]
                             for f in dataclasses.fields(Config) if f.name not in ("path", "features")}


def _check_type(file: str, key: str, value: Any, hint: Any) -> Any:
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    origin = typing.get_origin(hint)
    if origin in (list, tuple, dict):
        if not isinstance(value, list if origin is not dict else dict):
            raise ConfigError(file, key, f"expected {'a table' if origin is dict else 'an array'}, got {value!r}")
        return tuple(value) if origin is tuple else value
    if hint is Any:
        return value
    expected = hint if isinstance(hint, type) else None
    if expected is None or isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
        name = getattr(hint, "__name__", str(hint))
        raise ConfigError(file, key, f"expected {name}, got {type(value).__name__} {value!r}")
    return value


def _check_meta(file: str, key: str, value: Any, meta: typing.Mapping[str, Any]) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(file, key, f"{value!r} is not one of {', '.join(map(repr, meta['choices']))}")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        raise ConfigError(file, key, f"{value!r} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(file, key, f"{value!r} is above the maximum {hi}")
    if "length" in meta and len(value) != meta["length"]:
        raise ConfigError(file, key, f"must be exactly {meta['length']} characters")


def _build_section(file: str, name: str, cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(file, name, "must be a table")
    for sub in [f for f in dataclasses.fields(cls) if dataclasses.is_dataclass(f.type) or
                (isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory))]:
        if sub.name in raw and isinstance(raw[sub.name], dict):
            nested_cls = typing.get_type_hints(cls)[sub.name]
            raw = {**raw, sub.name: _build_section(file, f"{name}.{sub.name}", nested_cls, raw[sub.name])}
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        dotted = f"{name}.{key}"
        if key not in fields:
            raise ConfigError(file, dotted, f"unknown key (known: {', '.join(sorted(fields))})")
        hint = hints[key]
        if isinstance(hint, types.UnionType):
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        value = _check_type(file, dotted, value, hint)
        _check_meta(file, dotted, value, fields[key].metadata)
        values[key] = value
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(file, name, str(exc)) from None


def _cross_checks(cfg: Config) -> None:
    f = cfg.path
    if cfg.meter.max_current_a < cfg.meter.basic_current_a:
        raise ConfigError(f, "meter.max_current_a", "must not be below meter.basic_current_a")
    milli = 1e6 * cfg.frontend.energy_lsb_cf / cfg.frontend.meter_constant_imp_per_kwh
    if abs(milli - round(milli)) > 1e-9 or round(milli) < 1:
        raise ConfigError(f, "frontend.meter_constant_imp_per_kwh",
                          f"energy LSB {cfg.frontend.energy_lsb_cf} CF at this constant is {milli:g} mWh;"
                          " it must be a whole number of mWh")
    _check_range(cfg)
    if cfg.meter.led_imp_per_kwh != cfg.frontend.meter_constant_imp_per_kwh:
        raise ConfigError(f, "meter.led_imp_per_kwh",
                          f"{cfg.meter.led_imp_per_kwh} imp/kWh differs from the chip's CF outputs,"
                          f" frontend.meter_constant_imp_per_kwh = {cfg.frontend.meter_constant_imp_per_kwh}:"
                          " the test LED must pulse at the meter constant")
    try:
        start = cfg.sim.start()
    except ValueError as exc:
        raise ConfigError(f, "sim.start_utc", f"not an ISO 8601 date-time or \"now\": {exc}") from None
    if start.tzinfo is None:
        raise ConfigError(f, "sim.start_utc", "must carry a UTC offset, e.g. +00:00")
    if cfg.hardware.simulated and cfg.hardware.pin_factory not in ("", "mock"):
        raise ConfigError(f, "hardware.pin_factory", "the sim back end uses the mock pin factory")
    _check_sim(cfg)
    _check_serial_values(cfg)
    _check_pins(cfg)


def _check_range(cfg: Config) -> None:
    """The energy registers hold 60 s at the worst-case load (``register_range``), the chip's
    meter constant MC × k gives an integer PL_constant, and 1.2 × Imax at 1.15 × Un fits the
    chip's current and power registers once divided by the current scale k."""
    f, fe, m = cfg.path, cfg.frontend, cfg.meter
    problem = register_range.hold_problem(fe.meter_constant_imp_per_kwh, fe.energy_lsb_cf, m.nominal_voltage_v,
                                          m.max_current_a)
    if problem:
        raise ConfigError(f, "frontend.meter_constant_imp_per_kwh",
                          f"{problem} (choose a smaller frontend.meter_constant_imp_per_kwh or"
                          " frontend.energy_lsb_cf = 0.1)")
    chip_mc = fe.meter_constant_imp_per_kwh * fe.current_scale
    if 450_000_000_000 % chip_mc:
        raise ConfigError(f, "frontend.current_scale",
                          f"the chip's meter constant {fe.meter_constant_imp_per_kwh} × {fe.current_scale} = {chip_mc}"
                          " imp/kWh does not give an integer PL_constant (450e9 / MC)")
    current = register_range.CURRENT_HEADROOM * m.max_current_a / fe.current_scale
    power = register_range.VOLTAGE_HEADROOM * m.nominal_voltage_v * current
    if current > _IRMS_LIMIT_A or power > _PMEAN_LIMIT_W:
        raise ConfigError(f, "frontend.current_scale",
                          f"at 1.2 × {m.max_current_a:g} A / {fe.current_scale} the chip sees {current:.1f} A and"
                          f" {power:.0f} W per phase; its registers end at {_IRMS_LIMIT_A} A and {_PMEAN_LIMIT_W} W:"
                          " choose a larger current scale")


_IRMS_LIMIT_A = 65.535
"""The top of the chip's Irms registers (A at the chip)."""
_PMEAN_LIMIT_W = 32767
"""The top of the chip's per-phase Pmean registers (W at the chip)."""


def _check_serial_values(cfg: Config) -> None:
    """``dlms.hdlc_port`` and ``dlms.optical_port``: "" (off), "pty" (simulator) or a device path
    (or a pyserial URL); whether the device exists is checked before the meter runs
    (:mod:`meterd.app.preflight`)."""
    for key in ("hdlc_port", "optical_port"):
        value = getattr(cfg.dlms, key)
        if value in ("", "pty") or value.startswith("/") or "://" in value:
            continue
        raise ConfigError(cfg.path, f"dlms.{key}", f'{value!r} is no device path: use "" (off), "pty" (a '
                                                   "pseudo-terminal) or a device such as /dev/ttyAMA3")
    dlms = cfg.dlms
    if (not cfg.hardware.simulated and dlms.hdlc_port not in ("", "pty") and dlms.hdlc_direction == "kernel"
            and dlms.hdlc_de_pin == NO_PIN):
        raise ConfigError(cfg.path, "dlms.hdlc_de_pin", "the kernel RS-485 mode needs the GPIO its RTS drives DE on"
                                                        ' (7 on the meter Pi\'s uart3), or hdlc_direction = "auto"')


#: The "not wired" value of optional pin keys (e.g. ``load_control.button_pin = -1``).
NO_PIN = -1
#: Display kinds that drive no GPIO line (its ``gpio_*`` keys are then unused).
_DISPLAY_WITHOUT_PINS = ("png", "dummy", "off")


def _check_sim(cfg: Config) -> None:
    """``[sim]``: the power factor with the simulator's own parser; the scenario file read and
    parsed exactly as ``meterctl sim scenario`` would."""
    f = cfg.path
    try:
        parse_power_factor(cfg.sim.power_factor)
    except ValueError as exc:
        raise ConfigError(f, "sim.power_factor", str(exc)) from None
    if cfg.sim.scenario:
        if not cfg.hardware.simulated:
            raise ConfigError(f, "sim.scenario", 'a scenario needs [hardware] backend = "sim"')
        read_scenario(cfg)


def read_scenario(cfg: Config) -> str:
    """The text of ``[sim] scenario`` (a path, relative to the working directory), checked by
    parsing it against a throwaway grid; raises :class:`ConfigError` naming the file and key."""
    from hw.sim.grid import Grid
    from hw.sim.scenario import Scenario, ScenarioError

    path = cfg.sim.scenario
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(cfg.path, "sim.scenario", f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(cfg.path, "sim.scenario", f"{path}: cannot read: {exc}") from None
    try:
        Scenario.from_text(text, Grid(lambda: 0.0), source=path)
    except ScenarioError as exc:
        raise ConfigError(cfg.path, "sim.scenario", f"invalid scenario: {exc}") from None
    return text


def pin_keys(cfg: Config) -> dict[str, int]:
    """Every GPIO line (BCM number) the configuration wires, by dotted key: the ``*_pin`` keys
    of every section, core or feature (defaults included, since the features always attach),
    and the display's ``gpio_*`` lines when it drives an LCD; "not wired" (-1) left out."""
    found: dict[str, int] = {}
    named: dict[str, Any] = {name: getattr(cfg, name) for name in SECTIONS}
    named.update(cfg.features)
    for name, section in named.items():
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            wired = f.name.endswith("_pin") or (f.name.startswith("gpio_") and name == "display" and
                                                getattr(section, "kind", "") not in _DISPLAY_WITHOUT_PINS)
            if wired and isinstance(value, int) and not isinstance(value, bool) and value != NO_PIN:
                found[f"{name}.{f.name}"] = value
    return found


def _check_pins(cfg: Config) -> None:
    """No GPIO line is wired to two functions."""
    owner: dict[int, str] = {}
    for key, pin in pin_keys(cfg).items():
        if pin in owner:
            raise ConfigError(cfg.path, key, f"GPIO {pin} is also {owner[pin]}; each pin serves one function")
        owner[pin] = key


def parse_config(path: str | Path, feature_sections: Mapping[str, type]) -> Config:
    """Read and validate a configuration file with the core sections and ``feature_sections``
    (section name -> dataclass; a feature section the file lacks gets its defaults); raises
    :class:`ConfigError`. :func:`meterd.app.features.load_config` passes the meter's features."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(file, "-", "file not found") from None
    except OSError as exc:
        raise ConfigError(file, "-", f"cannot read: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "-", f"invalid TOML: {exc}") from None
    optional = dict(feature_sections)
    sections: dict[str, Any] = {}
    features: dict[str, Any] = {}
    for name, value in raw.items():
        if name in SECTIONS:
            sections[name] = _build_section(file, name, SECTIONS[name], value)
        elif name in optional:
            features[name] = _build_section(file, name, optional[name], value)
        else:
            known = sorted([*SECTIONS, *optional])
            raise ConfigError(file, name, f"unknown section (known: {', '.join(known)})")
    features = {name: features[name] if name in features else cls() for name, cls in optional.items()}
    cfg = Config(path=file, features=features, **sections)
    _cross_checks(cfg)
    return cfg
