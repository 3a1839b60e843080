"""DLMS symmetric protection with persistent invocation counters: AES-GCM-128 (security suites 0
and 1) and AES-GCM-256 (suite 2), 12-octet tags; glo- and ded-ciphering (the dedicated key a
client sends in its InitiateRequest protects the ded-xxx and general-ded-ciphering APDUs of that
association). The suite is the low nibble of the security control octet; a payload naming
another suite than the association's is refused. The key length follows the suite (16 octets for
suites 0 and 1, 32 for suite 2, :data:`SUITE_KEY_LEN`).

AES-GCM comes from ``cryptography`` (gurux's pure-Python GCM is ≈7 ms per KB and is not used).
Counters protect against replay and nonce reuse, so they are persisted **before use**:

* outgoing (server) invocation counter: reserved from the :class:`CounterStore` in blocks, so a
  restart skips the unused rest of a block and never reuses a nonce;
* incoming (client) invocation counter: accepted only if greater than the last accepted value
  (replays and stale counters raise :class:`ReplayError`); the store makes that durable before
  the request is served, with a high-water mark raised in blocks (one commit per block, not per
  request; after a restart everything up to the mark counts as used).

Counter names are ``"<association>/out"``, ``"<association>/in/<client system title, hex>"`` (the
replay check, per client) and ``"<association>/in"`` (the highest accepted from any client).

Authentication lockout (:class:`AuthLockout`): per link, client SAP **and source** (the TCP
peer's address, an IPv6 peer by its /64 prefix; on a serial link the link itself: the RS-485 bus
or the optical port), consecutive authentication failures are counted; after
``LockoutPolicy.failures`` of them the association attempts of that client SAP *from that source*
are refused for ``lockout_s`` seconds, doubling per further failure up to ``max_lockout_s``; a
successful authentication from that source resets its count. Other sources are never refused for
someone else's failures, so nobody can lock the head end out without its keys. At most
``LockoutPolicy.max_sources`` states are kept per link: a new source then evicts the state that
changed longest ago (one not locked out if there is one), so an attacker with many addresses
grows neither memory nor the database. The state is kept by a :class:`LockoutStore` (durable in
``meterd.store.dlms_security_store``), so a restart does not end a lockout.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from meterd.core.ports import TimeSource
from meterd.cosem.axdr import length_bytes, read_ber_length
from meterd.cosem.errors import ApduError, ReplayError, SecurityError

TAG_LEN = 12
SC_AUTH, SC_ENC = 0x10, 0x20
SC_AUTH_ENC = SC_AUTH | SC_ENC
GENERAL_GLO, GENERAL_DED = 0xDB, 0xDC
# plain xDLMS tag -> glo-ciphered tag (IEC 62056-5-3 table 7)
GLO_OF_PLAIN = {0xC0: 0xC8, 0xC1: 0xC9, 0xC2: 0xCA, 0xC3: 0xCB, 0xC4: 0xCC, 0xC5: 0xCD, 0xC7: 0xCF,
                0x01: 0x21, 0x08: 0x28, 0x0E: 0x2E}
PLAIN_OF_GLO = {v: k for k, v in GLO_OF_PLAIN.items()}
# plain xDLMS tag -> ded-ciphered tag: the same services under the association's dedicated key
DED_OF_PLAIN = {0xC0: 0xD0, 0xC1: 0xD1, 0xC2: 0xD2, 0xC3: 0xD3, 0xC4: 0xD4, 0xC5: 0xD5, 0xC7: 0xD7}
PLAIN_OF_DED = {v: k for k, v in DED_OF_PLAIN.items()}
CIPHERED_TAGS = frozenset({GENERAL_GLO, GENERAL_DED, *PLAIN_OF_GLO, *PLAIN_OF_DED})
"""Every ciphered APDU tag the server opens."""
DEDICATED_TAGS = frozenset({GENERAL_DED, *PLAIN_OF_DED})
"""The ciphered APDU tags protected by the dedicated key."""


def plain_of(tag: int) -> int | None:
    """The plain xDLMS tag a glo- or ded-ciphered tag protects (None: a general-ciphering tag)."""
    return PLAIN_OF_GLO.get(tag, PLAIN_OF_DED.get(tag))


def suite_of(payload: bytes) -> int:
    """The security suite named by the security control octet of ``SC || IC || body``."""
    if not payload:
        raise ApduError("ciphered payload empty")
    return payload[0] & 0x0F


MAX_COUNTER = 0xFFFFFFFF
SUITES = (0, 1, 2)
SUITE_KEY_LEN = {0: 16, 1: 16, 2: 32}
"""Octets of the block cipher, authentication, master and dedicated keys of each security suite
(AES-128 for suites 0 and 1, AES-256 for suite 2)."""


def key_length(suite: int) -> int:
    """Octets of a symmetric key of ``suite`` (:class:`SecurityError` for an unknown suite)."""
    try:
        return SUITE_KEY_LEN[suite]
    except KeyError:
        raise SecurityError(f"security suite {suite} is not supported") from None


def _check_key(suite: int, key: bytes) -> None:
    if len(key) != key_length(suite):
        raise SecurityError(f"security suite {suite} needs keys of {key_length(suite)} octets")


class CounterStore(Protocol):
    """Durable invocation counters (implemented in ``meterd.store.dlms_security_store``)."""

    def reserve(self, name: str, count: int) -> int:
        """Durably reserve ``count`` outgoing values; return the first (values start at 1)."""
        ...

    def last_accepted(self, name: str) -> int:
        """The last accepted incoming counter (0 when none)."""
        ...

    def accept(self, name: str, value: int) -> bool:
        """Accept ``value`` if it is greater than the last accepted one, else False; durable: a
        value once accepted is refused for ever, across restarts."""
        ...


class MemoryCounterStore:
    """A non-durable :class:`CounterStore` for tests and throwaway simulations."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._last: dict[str, int] = {}

    def reserve(self, name: str, count: int) -> int:
        first = self._next.get(name, 1)
        self._next[name] = first + count
        return first

    def last_accepted(self, name: str) -> int:
        return self._last.get(name, 0)

    def accept(self, name: str, value: int) -> bool:
        if value <= self._last.get(name, 0):
            return False
        self._last[name] = value
        return True


class OutgoingCounter:
    """Hands out server invocation counters from durably reserved blocks."""

    def __init__(self, store: CounterStore, name: str, block: int = 64) -> None:
        self._store, self._name, self._block = store, name, block
        self._next = 0
        self._limit = 0

    def take(self) -> int:
        """The next unused counter value."""
        if self._next >= self._limit:
            self._next = self._store.reserve(self._name, self._block)
            self._limit = self._next + self._block
        if self._next > MAX_COUNTER:
            raise SecurityError("invocation counter exhausted: change the keys")
        value = self._next
        self._next += 1
        return value


def _gcm(key: bytes, iv: bytes, aad: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(aad)
    ciphertext = enc.update(plaintext) + enc.finalize()
    return ciphertext, enc.tag[:TAG_LEN]


def _gcm_open(key: bytes, iv: bytes, aad: bytes, ciphertext: bytes, tag: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=TAG_LEN)).decryptor()
    dec.authenticate_additional_data(aad)
    try:
        return dec.update(ciphertext) + dec.finalize()
    except InvalidTag as exc:
        raise SecurityError("authentication tag mismatch") from exc


def protect(sc: int, key: bytes, auth_key: bytes, system_title: bytes, ic: int, plain: bytes,
            header: bytes = b"") -> bytes:
    """``SC || IC || ciphertext || tag`` of an APDU (security control ``sc``, whose low nibble is
    the suite: the keys must have its length). ``header``: the fields a general-ciphering APDU
    authenticates besides SC and AK (empty for the other APDUs)."""
    suite = sc & 0x0F
    _check_key(suite, key)
    iv = system_title + struct.pack(">I", ic)
    if sc & SC_ENC:
        aad = bytes((sc,)) + auth_key + header if sc & SC_AUTH else b""
        body, tag = _gcm(key, iv, aad, plain)
        return bytes((sc,)) + struct.pack(">I", ic) + body + (tag if sc & SC_AUTH else b"")
    if sc & SC_AUTH:
        _, tag = _gcm(key, iv, bytes((sc,)) + auth_key + header + plain, b"")
        return bytes((sc,)) + struct.pack(">I", ic) + plain + tag
    raise SecurityError("security control requests no protection")


def unprotect(key: bytes, auth_key: bytes, system_title: bytes, payload: bytes, suite: int = 0,
              header: bytes = b"") -> tuple[int, int, bytes]:
    """Check and decrypt ``SC || IC || body`` protected under ``suite``; returns (sc, ic,
    plaintext). A payload naming another suite is refused (:class:`SecurityError`)."""
    if len(payload) < 5:
        raise ApduError("ciphered payload too short")
    sc, ic = payload[0], struct.unpack(">I", payload[1:5])[0]
    body = payload[5:]
    if sc & 0x0F != suite:
        raise SecurityError(f"security suite {sc & 0x0F} is not the association's (suite {suite})")
    if sc & 0xC0:
        raise SecurityError("compressed or broadcast-key APDUs are not supported")
    _check_key(suite, key)
    iv = system_title + payload[1:5]
    if sc & SC_AUTH and len(body) < TAG_LEN:
        raise ApduError("ciphered payload shorter than its tag")
    if sc & SC_ENC:
        if sc & SC_AUTH:
            return sc, ic, _gcm_open(key, iv, bytes((sc,)) + auth_key + header, body[:-TAG_LEN], body[-TAG_LEN:])
        return sc, ic, Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor().update(body)
    if sc & SC_AUTH:
        plain, tag = body[:-TAG_LEN], body[-TAG_LEN:]
        _gcm_open(key, iv, bytes((sc,)) + auth_key + header + plain, b"", tag)
        return sc, ic, plain
    raise SecurityError("unprotected payload in a ciphered APDU")


def gmac(key: bytes, auth_key: bytes, system_title: bytes, ic: int, challenge: bytes, suite: int = 0) -> bytes:
    """HLS-GMAC response ``SC(0x10 | suite) || IC || GMAC(SC || AK || challenge)`` (17 octets)."""
    _check_key(suite, key)
    sc = SC_AUTH | suite
    _, tag = _gcm(key, system_title + struct.pack(">I", ic), bytes((sc,)) + auth_key + challenge, b"")
    return bytes((sc,)) + struct.pack(">I", ic) + tag


def gmac_matches(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison of two HLS responses."""
    return hmac.compare_digest(expected, received)


@dataclass
class CipheredApdu:
    """A glo- or general-glo-ciphered APDU split into its parts."""

    tag: int
    system_title: bytes | None
    payload: bytes


def split_ciphered(apdu: bytes) -> CipheredApdu:
    """Split a glo-xxx or general-glo-ciphering APDU (raises :class:`ApduError`)."""
    tag, pos = apdu[0], 1
    title = None
    if tag in (GENERAL_GLO, GENERAL_DED):
        n, pos = read_ber_length(apdu, pos)
        title = apdu[pos:pos + n]
        if len(title) != 8:
            raise ApduError("general-glo/ded-ciphering needs an 8-octet system title")
        pos += n
    length, pos = read_ber_length(apdu, pos)
    if pos + length != len(apdu):
        raise ApduError("ciphered APDU length mismatch")
    return CipheredApdu(tag, title, apdu[pos:])


def build_ciphered(tag: int, payload: bytes, system_title: bytes | None = None) -> bytes:
    """Assemble a glo-xxx (``system_title`` None) or general-glo-ciphering APDU."""
    head = bytes((tag,))
    if system_title is not None:
        head += length_bytes(len(system_title)) + system_title
    return head + length_bytes(len(payload)) + payload


class SecurityContext:
    """Keys, security suite (0, 1 or 2), counters and replay check of one ciphered association.

    The client invocation counter is checked per client system title (``"<name>/in/<title>"``):
    each client keeps its own counter (the GCM nonce is the title and the counter, so a replay is
    a repeated counter of the same title). ``"<name>/in"`` keeps the highest counter accepted
    from any title: 0-0:43.1.E.255 shows it, and a client that continues above it is above its
    own counter too. ``dedicated_key``: the
    key the client sent in its InitiateRequest, for the ded-ciphered APDUs of this association
    only (None: none was sent)."""

    def __init__(self, name: str, server_title: bytes, ek: bytes, ak: bytes, store: CounterStore,
                 suite: int = 0) -> None:
        self.name = name
        self.suite = suite
        self.server_title = server_title
        self.ek, self.ak = ek, ak
        self.client_title: bytes | None = None
        self.dedicated_key: bytes | None = None
        self._store = store
        self._out = OutgoingCounter(store, f"{name}/out")

    def rekey(self, ek: bytes, ak: bytes) -> None:
        """Use new keys from now on (counters keep increasing)."""
        self.ek, self.ak = ek, ak

    def next_ic(self) -> int:
        """A fresh, durably reserved server invocation counter."""
        return self._out.take()

    def _incoming_name(self) -> str:
        if self.client_title is None:
            raise SecurityError("no client system title")
        return f"{self.name}/in/{self.client_title.hex().upper()}"

    def check_incoming(self, ic: int) -> None:
        """Accept a client invocation counter once per client system title; raises
        :class:`ReplayError` otherwise."""
        own = self._incoming_name()
        shared = f"{self.name}/in"
        if not self._store.accept(own, ic):
            raise ReplayError("client invocation counter replayed or stale")
        if ic > self._store.last_accepted(shared):
            self._store.accept(shared, ic)

    def last_incoming(self) -> int:
        """The last accepted client invocation counter of this client system title."""
        return self._store.last_accepted(self._incoming_name())

    def _key_of(self, tag: int) -> bytes:
        if tag not in DEDICATED_TAGS:
            return self.ek
        if self.dedicated_key is None:
            raise SecurityError("ded-ciphered APDU without a dedicated key")
        return self.dedicated_key

    def open(self, apdu: bytes) -> tuple[int, bytes]:
        """Check a ciphered request; returns (security control, inner plain APDU)."""
        if self.client_title is None:
            raise SecurityError("no client system title")
        key = self._key_of(apdu[0])
        parts = split_ciphered(apdu)
        if parts.system_title is not None and parts.system_title != self.client_title:
            raise SecurityError("system title differs from the one of the association")
        sc, ic, plain = unprotect(key, self.ak, self.client_title, parts.payload, self.suite)
        self.check_incoming(ic)
        return sc, plain

    def seal(self, request_tag: int, sc: int, plain: bytes) -> bytes:
        """Protect a response in the family of the request (glo-xxx, ded-xxx, general-glo or
        general-ded), under the key of that family and the association's suite."""
        sc = (sc & 0xF0) | self.suite
        payload = protect(sc, self._key_of(request_tag), self.ak, self.server_title, self.next_ic(), plain)
        if request_tag in (GENERAL_GLO, GENERAL_DED):
            return build_ciphered(request_tag, payload, self.server_title)
        family = DED_OF_PLAIN if request_tag in DEDICATED_TAGS else GLO_OF_PLAIN
        tag = family.get(plain[0])
        if tag is None:
            return plain
        return build_ciphered(tag, payload)


# --- authentication lockout ---------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutPolicy:
    """When repeated authentication failures from one source lock a client out of one link.

    ``failures``: consecutive failures (per link, client SAP and source) that start a lockout of
    that source (≥ 1); ``lockout_s``: length of the first lockout (s); each further failure doubles
    it, up to ``max_lockout_s`` (s); ``max_sources``: states kept per link (≥ 1), the oldest
    evicted beyond it.
    """

    failures: int = 3
    lockout_s: float = 60.0
    max_lockout_s: float = 3600.0
    max_sources: int = 256

    def __post_init__(self) -> None:
        if self.failures < 1:
            raise ValueError("failures must be at least 1")
        if not 0 < self.lockout_s <= self.max_lockout_s:
            raise ValueError("lockout_s must be positive and not above max_lockout_s")
        if self.max_sources < 1:
            raise ValueError("max_sources must be at least 1")

    def lockout_for(self, failures: int) -> float:
        """Lockout (s) started by the ``failures``-th consecutive failure; 0 below the limit."""
        excess = failures - self.failures
        if excess < 0:
            return 0.0
        if excess >= 64:  # 2**64 × any positive base is far above any cap
            return self.max_lockout_s
        return min(self.lockout_s * 2.0**excess, self.max_lockout_s)


StoredLockout = tuple[int, _dt.datetime | None, int, _dt.datetime]
"""A stored lockout state as the store keeps it (fields of :class:`LockoutState`)."""


class LockoutState(NamedTuple):
    """The stored lockout state of one client SAP from one source: consecutive ``failures``, the
    end of the running or last lockout (``until_utc``, None: none), the attempts ``refused``
    during it and not yet reported, and when the state last changed (``changed_utc``, to evict
    the oldest)."""

    failures: int
    until_utc: _dt.datetime | None
    refused: int
    changed_utc: _dt.datetime


LockoutKey = tuple[int, str]
"""(client SAP, source) of a lockout state."""


@runtime_checkable
class LockoutStore(Protocol):
    """Durable lockout states per link, client SAP and source; implemented in
    ``meterd.store.dlms_security_store``."""

    def load_lockouts(self, link: str) -> dict[LockoutKey, StoredLockout]:
        """The stored states of ``link`` by (client SAP, source), oldest change first."""
        ...

    def save_lockout(self, link: str, client_sap: int, source: str, state: StoredLockout | None) -> None:
        """Store a state durably before returning (None removes the record)."""
        ...


class MemoryLockoutStore:
    """A non-durable :class:`LockoutStore` for tests and stores without lockout support."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, int, str], StoredLockout] = {}
        self.saves = 0

    def load_lockouts(self, link: str) -> dict[LockoutKey, StoredLockout]:
        rows = sorted(((k, st) for k, st in self.states.items() if k[0] == link), key=lambda r: r[1][3])
        return {(sap, source): st for (_, sap, source), st in rows}

    def save_lockout(self, link: str, client_sap: int, source: str, state: StoredLockout | None) -> None:
        self.saves += 1
        if state is None:
            self.states.pop((link, client_sap, source), None)
        else:
            self.states[(link, client_sap, source)] = state


LockoutClock = TimeSource  # the time the lockout needs (meterd.core.clock.Clock provides it)


class UtcOnlyClock:
    """A :class:`LockoutClock` built on a UTC source alone (``mono`` follows UTC: a clock step
    moves running lockouts; used when no monotonic clock is injected)."""

    def __init__(self, utc: Callable[[], _dt.datetime]) -> None:
        self._utc = utc

    def mono(self) -> float:
        return self._utc().timestamp()

    def utc(self) -> _dt.datetime:
        return self._utc()


@dataclass
class _LockEntry:
    failures: int = 0
    until_mono: float | None = None  # end of the running lockout (monotonic s); None: not locked
    until_utc: _dt.datetime | None = None
    lockout_s: float = 0.0  # length of the running lockout (s)
    refused: int = 0  # association attempts refused during it, not yet reported


@dataclass(frozen=True)
class LockoutEnded:
    """A lockout that ended with refused attempts to report (one event per lockout)."""

    client_sap: int
    source: str
    refused: int
    lockout_s: float
    failures: int


class AuthLockout:
    """Consecutive authentication failures and lockouts of the clients of one link, per client
    SAP and source.

    Running lockouts are timed with the monotonic clock (a clock set does not shorten or stretch
    them); the stored end is UTC, so after a restart a lockout goes on for the time it had left,
    bounded by its own length (a clock step while meterd was down cannot lengthen it). Writes
    are few: one per failure outside a lockout, and while locked only when the count of refused
    attempts reaches a power of two (after a crash the reported count is then a lower bound).
    At most ``policy.max_sources`` states are kept (in memory and in the store); a new one evicts
    the state changed longest ago, preferring one that is not locked out.
    """

    def __init__(self, store: LockoutStore, policy: LockoutPolicy, link: str, clock: LockoutClock) -> None:
        self.policy = policy
        self.link = link
        self._store = store
        self._clock = clock
        self._entries: dict[LockoutKey, _LockEntry] = {}  # oldest change first
        now_mono, now_utc = clock.mono(), clock.utc()
        for key, stored in store.load_lockouts(link).items():
            state = LockoutState(*stored)
            entry = _LockEntry(failures=max(0, state.failures), refused=max(0, state.refused),
                               until_utc=state.until_utc)
            if state.until_utc is not None:
                entry.lockout_s = policy.lockout_for(entry.failures) or policy.lockout_s
                left_s = min(max((state.until_utc - now_utc).total_seconds(), 0.0), entry.lockout_s)
                entry.until_mono = now_mono + left_s
            self._entries[key] = entry
        while len(self._entries) > policy.max_sources:  # the cap was lowered since they were stored
            self._evict()

    @property
    def kept(self) -> int:
        """The number of (client SAP, source) states kept."""
        return len(self._entries)

    def failures(self, client_sap: int, source: str) -> int:
        """Consecutive authentication failures of ``client_sap`` from ``source`` on this link."""
        entry = self._entries.get((client_sap, source))
        return entry.failures if entry else 0

    def remaining_s(self, client_sap: int, source: str) -> float:
        """Seconds (s) left of the lockout of ``client_sap`` from ``source``; 0 when it may try."""
        entry = self._entries.get((client_sap, source))
        if entry is None or entry.until_mono is None:
            return 0.0
        return max(0.0, entry.until_mono - self._clock.mono())

    def refuse(self, client_sap: int, source: str) -> int:
        """Count one attempt refused during the lockout; returns the count so far."""
        entry = self._entry(client_sap, source)
        entry.refused += 1
        if entry.refused & (entry.refused - 1) == 0:  # 1, 2, 4, 8, ...: log2(n) writes for n attempts
            self._save((client_sap, source), entry)
        return entry.refused

    def failure(self, client_sap: int, source: str) -> float:
        """Count one authentication failure (durable before returning); returns the lockout of
        ``source`` it starts (s), 0 below the limit."""
        entry = self._entry(client_sap, source)
        entry.failures += 1
        lock_s = self.policy.lockout_for(entry.failures)
        if lock_s > 0:
            entry.lockout_s = lock_s
            entry.until_mono = self._clock.mono() + lock_s
            entry.until_utc = self._clock.utc() + _dt.timedelta(seconds=lock_s)
        self._save((client_sap, source), entry)
        return lock_s

    def success(self, client_sap: int, source: str) -> None:
        """A successful authentication from ``source``: its count starts again from 0."""
        if self._entries.pop((client_sap, source), None) is not None:
            self._store.save_lockout(self.link, client_sap, source, None)

    def ended(self) -> list[LockoutEnded]:
        """Lockouts over since the last call that refused attempts (each reported once)."""
        now = self._clock.mono()
        out: list[LockoutEnded] = []
        for key, entry in list(self._entries.items()):
            if entry.until_mono is None or now < entry.until_mono:
                continue
            if entry.refused:
                out.append(LockoutEnded(key[0], key[1], entry.refused, entry.lockout_s, entry.failures))
                entry.refused = 0
                entry.until_mono = entry.until_utc = None
                self._save(key, entry)
            else:
                entry.until_mono = None
        return out

    def _entry(self, client_sap: int, source: str) -> _LockEntry:
        """The state of (``client_sap``, ``source``), made the newest; a new one may evict."""
        key = (client_sap, source)
        entry = self._entries.pop(key, None)
        if entry is None:
            entry = _LockEntry()
            while len(self._entries) >= self.policy.max_sources:
                self._evict()
        self._entries[key] = entry
        return entry

    def _evict(self) -> None:
        """Forget the state changed longest ago, one not locked out if there is one."""
        now = self._clock.mono()
        key = next((k for k, e in self._entries.items() if e.until_mono is None or e.until_mono <= now),
                   next(iter(self._entries)))
        del self._entries[key]
        self._store.save_lockout(self.link, key[0], key[1], None)

    def _save(self, key: LockoutKey, entry: _LockEntry) -> None:
        self._store.save_lockout(self.link, key[0], key[1],
                                 LockoutState(entry.failures, entry.until_utc, entry.refused, self._clock.utc()))
