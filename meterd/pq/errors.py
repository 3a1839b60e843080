"""Exception tree of the power-quality package (meterd.pq)."""


class PqError(Exception):
    """Base of every error raised by meterd.pq."""


class PqConfigError(PqError, ValueError):
    """A power-quality setting is out of range or inconsistent (see power-quality.md §5.1)."""


class SampleStreamError(PqError):
    """A waveform block is malformed (wrong shape, rate, or time going backwards)."""


class CalibrationError(PqError):
    """A self-calibration (flicker scale k) landed outside its expected range."""
