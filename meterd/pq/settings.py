"""Power-quality settings (power-quality.md §5.1) and their validation."""

from __future__ import annotations

from dataclasses import dataclass

from meterd.pq.errors import PqConfigError
from meterd.pq.source import DEFAULT_SAMPLE_RATE_HZ, N_ROWS, ROW_I1, ROW_IN, ROW_U1, VOLTAGE_ROWS


@dataclass(frozen=True)
class PqSettings:
    """Declared supply and event thresholds.

    udin_v: declared input voltage, phase-to-neutral (V). f_nom_hz: nominal mains frequency
    (50 or 60 Hz). Thresholds are in % of Udin; hysteresis in % of Udin. Under/over-voltage
    events work on 10/12-cycle RMS and last at least their minimum duration (s).
    lamp: flicker lamp model, "230V" or "120V" (None: chosen from Udin).
    phases: 3 for a three-phase four-wire supply (3P4W), 1 for single-phase two-wire (1P2W: only
    U1, I1 and the neutral current are measured).
    """

    udin_v: float = 230.0
    f_nom_hz: float = 50.0
    sample_rate_hz: float = DEFAULT_SAMPLE_RATE_HZ
    dip_threshold_pct: float = 90.0
    swell_threshold_pct: float = 110.0
    interruption_threshold_pct: float = 5.0
    hysteresis_pct: float = 2.0
    undervoltage_threshold_pct: float = 90.0
    overvoltage_threshold_pct: float = 110.0
    undervoltage_min_duration_s: float = 60.0
    overvoltage_min_duration_s: float = 60.0
    lamp: str | None = None
    min_current_for_thd_a: float = 0.05
    phases: int = 3

    def __post_init__(self) -> None:
        self._check(self.udin_v > 0, "udin_v", "must be positive")
        self._check(self.f_nom_hz in (50.0, 60.0), "f_nom_hz", "must be 50 or 60")
        self._check(self.sample_rate_hz >= 6400.0, "sample_rate_hz", "must be >= 6400 Hz for order 50")
        h = self.hysteresis_pct
        self._check(h > 0, "hysteresis_pct", "must be > 0")
        self._check(self.interruption_threshold_pct > 0, "interruption_threshold_pct", "must be > 0")
        self._check(self.interruption_threshold_pct + h < self.dip_threshold_pct,
                    "interruption_threshold_pct", "plus hysteresis must stay below the dip threshold")
        self._check(self.dip_threshold_pct + h < 100.0, "dip_threshold_pct", "plus hysteresis must be < 100 %")
        self._check(self.swell_threshold_pct - h > 100.0, "swell_threshold_pct", "minus hysteresis must be > 100 %")
        self._check(self.undervoltage_threshold_pct + h < 100.0, "undervoltage_threshold_pct",
                    "plus hysteresis must be < 100 %")
        self._check(self.overvoltage_threshold_pct - h > 100.0, "overvoltage_threshold_pct",
                    "minus hysteresis must be > 100 %")
        self._check(self.undervoltage_min_duration_s >= 0, "undervoltage_min_duration_s", "must be >= 0")
        self._check(self.overvoltage_min_duration_s >= 0, "overvoltage_min_duration_s", "must be >= 0")
        self._check(self.lamp in (None, "230V", "120V"), "lamp", "must be '230V' or '120V'")
        self._check(self.phases in (1, 3), "phases", "must be 1 (1P2W) or 3 (3P4W)")

    @staticmethod
    def _check(ok: bool, key: str, reason: str) -> None:
        if not ok:
            raise PqConfigError(f"{key}: {reason}")

    @property
    def lamp_model(self) -> str:
        """The flicker lamp model in force: 120 V lamp for 100–130 V systems, else 230 V."""
        if self.lamp is not None:
            return self.lamp
        return "120V" if self.udin_v < 180.0 else "230V"

    @property
    def cycles_per_window(self) -> int:
        """Cycles in an IEC 61000-4-30 basic window: 10 at 50 Hz, 12 at 60 Hz."""
        return 10 if self.f_nom_hz == 50.0 else 12

    @property
    def voltage_rows(self) -> tuple[int, ...]:
        """The voltage channels measured: U1, U2, U3 (3P4W) or U1 alone (1P2W)."""
        return VOLTAGE_ROWS if self.phases == 3 else (ROW_U1,)

    @property
    def measured_rows(self) -> tuple[int, ...]:
        """The waveform rows that exist: all seven (3P4W) or U1, I1 and IN (1P2W)."""
        return tuple(range(N_ROWS)) if self.phases == 3 else (ROW_U1, ROW_I1, ROW_IN)

    def volts(self, pct: float) -> float:
        """A percentage of Udin in volts (V)."""
        return self.udin_v * pct / 100.0
