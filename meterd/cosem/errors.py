"""Exception tree of the DLMS/COSEM adapter; the server turns these into DLMS error responses."""

from __future__ import annotations


class CosemError(Exception):
    """Base of every error raised by ``meterd.cosem``."""


class KeyFileError(CosemError):
    """The keys file is missing, unreadable, too open (not 0600) or malformed."""


class SecurityError(CosemError):
    """A protected APDU failed a security check (tag, policy, counter)."""


class ReplayError(SecurityError):
    """A peer invocation counter was not greater than the last one accepted."""


class ApduError(CosemError):
    """An APDU is malformed, truncated or not supported."""


class UnsupportedSuite(ApduError):
    """A client asked for a security suite the meter does not offer (not an authentication
    failure: the AARQ is refused without counting toward the lockout)."""
