"""Persistent decoder state of the STS meter: key register, TID memory, staged key-change sections.

Pure, immutable values. Every accepted token produces a new ``StsState`` that the processor saves
through a ``StsStateStore`` *before* it reports the result, so a replayed token is refused after a
power loss. A rejected token produces no new state.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from meterd.core.sts.cipher import KEY_BYTES_BY_EA
from meterd.core.sts.codec import BASE_DATES, TID_MAX
from meterd.core.sts.errors import StsStateError

STATE_VERSION = 1
KEN_NEVER_EXPIRES = 255


@dataclass(frozen=True)
class KeyRegister:
    """The decoder key and its attributes (IEC 62055-41 decoder key register).

    ``key`` is the DK (8 bytes for EA07, 16 for EA11); ``kt`` key type 0..3; ``krn`` key revision
    1..9; ``ti`` tariff index 0..99; ``ken`` key expiry number 0..255 (255 = never);
    ``sgc`` supply group code (integer of the 6 decimal digits); ``base_date`` TID base year.
    The key is left out of ``repr`` so it never reaches a log.
    """

    key: bytes = field(repr=False)
    ea: int
    kt: int
    krn: int
    ti: int
    ken: int = KEN_NEVER_EXPIRES
    sgc: int = 0
    base_date: int = 1993

    def __post_init__(self) -> None:
        if KEY_BYTES_BY_EA.get(self.ea) != len(self.key):
            raise StsStateError(f"a decoder key for EA{self.ea:02d} must be {KEY_BYTES_BY_EA.get(self.ea)} bytes")
        if not (0 <= self.kt <= 3 and 0 <= self.krn <= 9 and 0 <= self.ti <= 99 and 0 <= self.ken <= 255):
            raise StsStateError("key register attribute out of range")
        if self.base_date not in BASE_DATES or not 0 <= self.sgc <= 999999:
            raise StsStateError("unknown base date or SGC out of range")

    def expired_for(self, tid: int) -> bool:
        """True when a token with this TID is past the key's expiry (TID >> 16 > KEN)."""
        return self.ken != KEN_NEVER_EXPIRES and (tid >> 16) > self.ken

    def describe(self) -> dict[str, int]:
        """Key attributes for display and logs (never the key itself)."""
        return {"ea": self.ea, "kt": self.kt, "krn": self.krn, "ti": self.ti, "ken": self.ken,
                "sgc": self.sgc, "base_date": self.base_date}

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form (contains the key: for the protected state store only)."""
        return {"key_hex": self.key.hex(), **self.describe()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeyRegister:
        """Inverse of ``to_dict``."""
        try:
            return cls(key=bytes.fromhex(str(data["key_hex"])), ea=int(data["ea"]), kt=int(data["kt"]),
                       krn=int(data["krn"]), ti=int(data["ti"]), ken=int(data["ken"]),
                       sgc=int(data["sgc"]), base_date=int(data["base_date"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise StsStateError(f"bad key register record: {exc.__class__.__name__}") from None


@dataclass(frozen=True)
class StsState:
    """Everything the STS decoder must keep across power loss.

    ``tid_memory`` holds the TIDs of the last accepted tokens, ascending, fixed length (pre-filled at
    commissioning). ``staged_kct`` maps a key-change subclass (3, 4, 8, 9) to its decoded fields;
    ``staged_since_utc`` is when the first staged section arrived.
    """

    key_register: KeyRegister
    tid_memory: tuple[int, ...]
    previous_key: KeyRegister | None = None
    staged_kct: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    staged_since_utc: _dt.datetime | None = None

    @classmethod
    def commissioned(cls, key_register: KeyRegister, slots: int = 50, floor_tid: int = 0) -> StsState:
        """Fresh state for a new meter: every TID slot holds ``floor_tid`` (e.g. manufacture time)."""
        if slots < 1 or not 0 <= floor_tid <= TID_MAX:
            raise StsStateError("TID memory needs at least one slot and a 24-bit floor")
        return cls(key_register=key_register, tid_memory=(floor_tid,) * slots)

    def is_old(self, tid: int) -> bool:
        """TID below every remembered TID: older than the memory window."""
        return tid < self.tid_memory[0]

    def is_used(self, tid: int) -> bool:
        """TID already in the memory."""
        return tid in self.tid_memory

    def with_tid(self, tid: int) -> StsState:
        """New state with ``tid`` recorded in place of the smallest remembered TID."""
        return replace(self, tid_memory=tuple(sorted(self.tid_memory[1:] + (tid,))))

    def with_staged(self, subclass: int, fields: Mapping[str, int], now_utc: _dt.datetime) -> StsState:
        """New state with one more staged key-change section (a repeat replaces the earlier one)."""
        staged = dict(self.staged_kct)
        staged[subclass] = dict(fields)
        since = self.staged_since_utc if self.staged_kct else now_utc
        return replace(self, staged_kct=staged, staged_since_utc=since)

    def without_staged(self) -> StsState:
        """New state with no staged key-change sections."""
        return replace(self, staged_kct={}, staged_since_utc=None)

    def with_new_key(self, register: KeyRegister, clear_tids: bool) -> StsState:
        """Install a new key register (old one kept as ``previous_key``); optionally zero the TIDs."""
        memory = (0,) * len(self.tid_memory) if clear_tids else self.tid_memory
        return StsState(key_register=register, tid_memory=memory, previous_key=self.key_register)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable form for the state store."""
        return {
            "version": STATE_VERSION,
            "key_register": self.key_register.to_dict(),
            "previous_key": None if self.previous_key is None else self.previous_key.to_dict(),
            "tid_memory": list(self.tid_memory),
            "staged_kct": {str(k): dict(v) for k, v in sorted(self.staged_kct.items())},
            "staged_since_utc": None if self.staged_since_utc is None else self.staged_since_utc.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StsState:
        """Inverse of ``to_dict``; StsStateError for anything malformed."""
        if data.get("version") != STATE_VERSION:
            raise StsStateError(f"unsupported STS state version {data.get('version')!r}")
        try:
            previous = data.get("previous_key")
            since = data.get("staged_since_utc")
            memory = tuple(sorted(int(t) for t in data["tid_memory"]))
            staged = {int(k): {str(n): int(v) for n, v in f.items()} for k, f in data["staged_kct"].items()}
            state = cls(
                key_register=KeyRegister.from_dict(data["key_register"]),
                tid_memory=memory,
                previous_key=None if previous is None else KeyRegister.from_dict(previous),
                staged_kct=staged,
                staged_since_utc=None if since is None else _dt.datetime.fromisoformat(str(since)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StsStateError(f"bad STS state record: {exc.__class__.__name__}") from None
        if not memory:
            raise StsStateError("TID memory is empty")
        return state


class StsStateStore(Protocol):
    """Durable home of ``StsState`` (implemented with SQLite in ``meterd.store.sts_store``).

    ``save`` must be atomic and durable when it returns (one transaction); ``companion`` is an
    optional JSON-able record written in the same transaction (e.g. the credit account after a
    credit token), so TID and credit cannot part company in a power cut.
    """

    def load(self) -> StsState | None:
        """The last saved state, or None when the decoder was never commissioned."""
        ...

    def save(self, state: StsState, companion: Mapping[str, Any] | None = None) -> None:
        """Persist ``state`` (and ``companion``) atomically and durably."""
        ...
