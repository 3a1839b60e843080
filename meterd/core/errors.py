"""Exception tree of the domain core; adapters translate these at their boundaries."""


class MeterError(Exception):
    """Base of every error raised by meterd's domain core."""


class ConfigError(MeterError):
    """A configuration value is missing, unknown or out of range."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason


class StateError(MeterError):
    """Persisted state is inconsistent (for example, a register would go backwards)."""
