"""Exception tree of the STS (IEC 62055-41) decoder package.

Token *results* (Accept, OldError, CRCError, ...) are values, not exceptions: a rejected token is a
normal outcome. The exceptions here signal programming or configuration faults and broken state.
"""

from __future__ import annotations

from meterd.core.errors import MeterError, StateError


class StsError(MeterError):
    """Base of every exception raised by ``meterd.core.sts``."""


class TokenFormatError(StsError):
    """The input is not a 20-digit token whose value fits in 66 bits."""


class CipherKeyError(StsError):
    """A decoder or vending key has the wrong length for the algorithm asked for."""


class UnsupportedAlgorithmError(StsError):
    """No cipher is available for the encryption algorithm (EA) asked for."""


class StsStateError(StsError, StateError):
    """Persisted decoder state is missing, corrupt, or could not be written."""
