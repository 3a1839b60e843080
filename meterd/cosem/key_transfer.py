"""Key transfer of one association: Security setup 0-0:43.0.0.255 method 2 (global_key_transfer).

The management client sends each new key wrapped with the master key (AES key wrap, RFC 3394)
under its key id (0 global unicast, 2 authentication, 3 master: :data:`meterd.cosem.keys.KEY_IDS`).
:meth:`KeyTransfer.stage` unwraps and checks them all (one bad item refuses the whole transfer,
nothing staged); :meth:`KeyTransfer.apply` installs them in the shared :class:`KeyRing` (which
saves the keys file) once the method's response has been protected with the old keys, so the
client can still read it. A released association discards what it staged. Keys never go into
logs, only their names.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap
from gurux_dlms.enums import ErrorCode

from meterd.cosem.keys import KEY_IDS, KeyRing

_log = logging.getLogger("meterd.cosem")


class KeyTransfer:
    """Keys staged by one association, waiting for the protected response to go out."""

    def __init__(self, keys: KeyRing) -> None:
        self._keys = keys
        self._pending: list[tuple[str, bytes]] = []

    @property
    def pending(self) -> bool:
        """True while keys are staged and not yet applied."""
        return bool(self._pending)

    def stage(self, items: Sequence[tuple[int, bytes]]) -> int:
        """Unwrap ``(key id, wrapped key)`` items with the current master key; the DLMS
        action result: OK (staged), READ_WRITE_DENIED (unknown key id) or OTHER_REASON (does not
        unwrap, or not of the length of the configured suite: 16 octets, 32 for suite 2)."""
        staged: list[tuple[str, bytes]] = []
        kek = self._keys.current.master_key
        for key_id, wrapped in items:
            name = KEY_IDS.get(key_id)
            if name is None:
                return int(ErrorCode.READ_WRITE_DENIED)
            try:
                key = aes_key_unwrap(kek, wrapped)
            except (InvalidUnwrap, ValueError):
                _log.warning("key_transfer refused: key %d does not unwrap with the master key", key_id)
                return int(ErrorCode.OTHER_REASON)
            need = self._keys.current.key_length
            if len(key) != need:
                _log.warning("key_transfer refused: key %d is %d octets, suite %d needs %d", key_id, len(key),
                             self._keys.current.security_suite, need)
                return int(ErrorCode.OTHER_REASON)
            staged.append((name, key))
        self._pending = staged
        return int(ErrorCode.OK)

    def apply(self) -> Iterator[str]:
        """Install the staged keys one by one, yielding the name of each once it is in place
        (nothing when none was staged); the staged keys are forgotten as the first is installed."""
        pending, self._pending = self._pending, []
        for name, value in pending:
            self._keys.replace(name, value)
            _log.warning("key %s changed through key_transfer", name)
            yield name

    def discard(self) -> None:
        """Forget staged keys (the association ended before its response went out)."""
        self._pending = []
