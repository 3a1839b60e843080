"""The meter-side STS token processor: validate a token, apply it to the decoder state, persist,
report.

Order of checks (IEC 62055-41 7.3.7 as far as public sources state it, see docs/sts reference 5.1):
format -> lockout -> class 1 (CRC, MfrCode, function) | class 0/2 (decrypt, CRC, function, key
change, Old, Used, KeyExpired, DDTK, range/overflow) -> record TID -> save -> report.

The processor owns only the decoder state. Credit, power limits and tamper are owned elsewhere: the
processor *reports* them in ``TokenResult``; an optional ``TokenGate`` may veto (Overflow/Range)
and supply a companion record saved in the same transaction as the TID.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from meterd.core.clock import Clock
from meterd.core.sts.cipher import EA_MISTY1, CipherFactory
from meterd.core.sts.codec import (
    BASE_DATES,
    KCT_SUBCLASSES,
    DecodedToken,
    parse_digits,
    split_fields,
    tid_to_datetime,
    untranspose,
)
from meterd.core.sts.errors import StsError, StsStateError
from meterd.core.sts.keys import KT_DEFAULT, KT_INITIALISATION
from meterd.core.sts.results import ResultName, TokenResult
from meterd.core.sts.state import KeyRegister, StsState, StsStateStore

KCT_RESULT_BY_SUBCLASS = {3: ResultName.KCT_1ST, 4: ResultName.KCT_2ND,
                          8: ResultName.KCT_3RD, 9: ResultName.KCT_4TH}
NEXT_BASE_DATE = {1993: 2014, 2014: 2035, 2035: 2035}
MANAGEMENT_NAMES = {0: "set_max_power_limit", 1: "clear_credit", 2: "set_tariff_rate",
                    5: "clear_tamper", 6: "set_max_phase_unbalance_limit", 7: "set_water_factor"}


@dataclass(frozen=True)
class StsConfig:
    """Decoder policy (from the meter configuration).

    * ``mfr_code``: this meter's manufacturer code (class 1 tokens carry 0 or this).
    * ``credit_subclasses``: class 0 subclasses this meter accepts (0 electricity; 4 electricity
      currency). Others give FunctionError.
    * ``management_subclasses``: class 2 non-key-change subclasses accepted.
    * ``kct_timeout_s``: a partial key-change set older than this (s) is forgotten.
    * ``lockout_after`` rejects in a row lock the keypad for ``lockout_base_s`` (s), doubling per
      further reject up to ``lockout_max_s``; 0 disables lockout. The counter and the end of the
      lockout are kept by an optional :class:`LockoutStore`, so a restart does not reset them.
    """

    mfr_code: int = 0
    credit_subclasses: frozenset[int] = frozenset({0})
    management_subclasses: frozenset[int] = frozenset({0, 1, 2, 5, 6})
    kct_timeout_s: float = 600.0
    lockout_after: int = 3
    lockout_base_s: float = 10.0
    lockout_max_s: float = 1280.0
    max_power_limit_w: int = 18201624


class TokenGate(Protocol):
    """Optional hook of the owner of credit and limits, consulted before a token is accepted."""

    def vet(self, result: TokenResult) -> ResultName | None:
        """Return OVERFLOW/RANGE to refuse the would-be-accepted token, None to let it pass."""
        ...

    def companion(self, result: TokenResult) -> Mapping[str, Any] | None:
        """State to save together with the TID (e.g. the credit account after this token)."""
        ...


class LockoutStore(Protocol):
    """Durable home of the lockout counter (IEC 62055-41 lists it among what survives power loss)."""

    def load_lockout(self) -> tuple[int, _dt.datetime | None]:
        """(rejects in a row, end of the running lockout in UTC or None); (0, None) when never saved."""
        ...

    def save_lockout(self, rejects: int, until_utc: _dt.datetime | None) -> None:
        """Write the counter and the lockout end durably."""
        ...


@dataclass
class _Lockout:
    rejects: int = 0
    until_mono: float = 0.0
    until_utc: _dt.datetime | None = None


class _Reject(Exception):  # noqa: N818 - internal control flow, never escapes the processor
    def __init__(self, name: ResultName, decoded: DecodedToken | None = None) -> None:
        super().__init__(name.value)
        self.name = name
        self.decoded = decoded

    def result(self, base_date: int) -> TokenResult:
        d = self.decoded
        if d is None:
            return TokenResult(self.name.value)
        when = None if d.tid is None else tid_to_datetime(d.tid, base_date)
        return TokenResult(self.name.value, d.token_class, d.subclass, d.tid, when)


@dataclass
class _Outcome:
    result: TokenResult
    new_state: StsState | None = None
    companion: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TokenProcessor:
    """Decodes, validates and applies STS tokens; persists before reporting."""

    def __init__(self, state_store: StsStateStore, cipher_factory: CipherFactory, clock: Clock,
                 config: StsConfig, gate: TokenGate | None = None,
                 lockout_store: LockoutStore | None = None) -> None:
        loaded = state_store.load()
        if loaded is None:
            raise StsStateError("the STS decoder has not been commissioned (no key register)")
        self._store = state_store
        self._cipher_factory = cipher_factory
        self._clock = clock
        self._config = config
        self._gate = gate
        self._state = loaded
        self._lockout_store = lockout_store
        self._lockout = self._restored_lockout()

    def _restored_lockout(self) -> _Lockout:
        """The persisted counter; a running lockout goes on for the time it had left (by UTC,
        bounded by ``lockout_max_s`` so a clock step cannot lock the keypad for longer)."""
        if self._lockout_store is None:
            return _Lockout()
        rejects, until_utc = self._lockout_store.load_lockout()
        if until_utc is None:
            return _Lockout(max(0, rejects))
        left_s = min(max((until_utc - self._clock.utc()).total_seconds(), 0.0), self._config.lockout_max_s)
        return _Lockout(max(0, rejects), self._clock.mono() + left_s, until_utc)

    @property
    def lockout_rejects(self) -> int:
        """Rejected (CRC) tokens in a row."""
        return self._lockout.rejects

    @property
    def state(self) -> StsState:
        """The current (last persisted) decoder state."""
        return self._state

    def key_info(self) -> dict[str, int]:
        """Key register attributes for display (KRN, KT, TI, KEN, SGC, EA, base date); no key."""
        return self._state.key_register.describe()

    def submit(self, token_digits: str) -> TokenResult:
        """Process one token entered on the keypad (or via DLMS/API); returns its result."""
        remaining = self._lockout.until_mono - self._clock.mono()
        if remaining > 0:
            return TokenResult(ResultName.LOCKOUT.value, lockout_s=remaining)
        try:
            outcome = self._process(token_digits)
        except _Reject as rej:
            return rej.result(self._state.key_register.base_date)
        if outcome.new_state is not None:
            self._store.save(outcome.new_state, outcome.companion)
            self._state = outcome.new_state
        return outcome.result

    # --- pipeline ---------------------------------------------------------------------------

    def _process(self, digits: str) -> _Outcome:
        try:
            token_class, transferred = untranspose(parse_digits(digits))
        except StsError:
            raise _Reject(ResultName.FORMAT) from None
        if token_class == 1:
            return self._class1(split_fields(1, transferred, self._state.key_register.ea))
        if token_class == 3:
            raise _Reject(self._reserved_class(transferred))
        decoded = self._decrypt(token_class, transferred)
        if token_class == 2 and decoded.subclass in KCT_SUBCLASSES:
            return self._key_change(decoded)
        return self._tid_token(decoded)

    def _decrypt(self, token_class: int, transferred: int) -> DecodedToken:
        register = self._state.key_register
        cipher = self._cipher_factory(register.ea, register.key)
        plain = int.from_bytes(cipher.decrypt_block(transferred.to_bytes(8, "big")), "big")
        decoded = split_fields(token_class, plain, register.ea)
        if not decoded.crc_ok:
            self._count_reject()
            raise _Reject(ResultName.CRC)
        if self._lockout.rejects or self._lockout.until_utc is not None:
            self._lockout = _Lockout()
            self._save_lockout()
        return decoded

    def _reserved_class(self, transferred: int) -> ResultName:
        """Class 3 is reserved. The class bits are protected only by the CRC, so a token whose CRC
        fails both on the block as received and on the decrypted block is a corrupted token
        (CRCError, counted towards lockout: a mistyped digit can turn a class 0/2 token into
        class 3); a class 3 token whose CRC holds is well formed but unsupported (FunctionError)."""
        register = self._state.key_register
        cipher = self._cipher_factory(register.ea, register.key)
        decrypted = int.from_bytes(cipher.decrypt_block(transferred.to_bytes(8, "big")), "big")
        if any(split_fields(3, block, register.ea).crc_ok for block in (transferred, decrypted)):
            return ResultName.FUNCTION
        self._count_reject()
        return ResultName.CRC

    def _count_reject(self) -> None:
        cfg = self._config
        if cfg.lockout_after <= 0:
            return
        self._lockout.rejects += 1
        excess = self._lockout.rejects - cfg.lockout_after
        if excess >= 0:
            lock_s = min(cfg.lockout_base_s * 2**excess, cfg.lockout_max_s)
            self._lockout.until_mono = self._clock.mono() + lock_s
            self._lockout.until_utc = self._clock.utc() + _dt.timedelta(seconds=lock_s)
        self._save_lockout()

    def _save_lockout(self) -> None:
        if self._lockout_store is not None:
            self._lockout_store.save_lockout(self._lockout.rejects, self._lockout.until_utc)

    def _class1(self, decoded: DecodedToken) -> _Outcome:
        if not decoded.crc_ok:
            raise _Reject(ResultName.CRC)
        if decoded.subclass not in (0, 1):
            raise _Reject(ResultName.FUNCTION, decoded)
        if decoded.fields["mfr_code"] not in (0, self._config.mfr_code):
            raise _Reject(ResultName.MFR_CODE, decoded)
        control = {"control": int(decoded.fields["control"]), "mfr_code": int(decoded.fields["mfr_code"])}
        return _Outcome(TokenResult(ResultName.ACCEPT.value, 1, decoded.subclass, control=control))

    # --- TID-bearing tokens (class 0 and class 2 management) -------------------------------

    def _tid_token(self, decoded: DecodedToken) -> _Outcome:
        supported = (self._config.credit_subclasses if decoded.token_class == 0
                     else self._config.management_subclasses)
        if decoded.subclass not in supported or decoded.tid is None:
            raise _Reject(ResultName.FUNCTION, decoded)
        state = self._state
        tid = decoded.tid
        if state.is_old(tid):
            raise _Reject(ResultName.OLD, decoded)
        if state.is_used(tid):
            raise _Reject(ResultName.USED, decoded)
        if state.key_register.expired_for(tid):
            raise _Reject(ResultName.KEY_EXPIRED, decoded)
        if decoded.token_class == 0 and state.key_register.kt == KT_DEFAULT:
            raise _Reject(ResultName.DDTK, decoded)
        result = self._accepted_result(decoded)
        return self._gated(result, state.with_tid(tid))

    def _accepted_result(self, decoded: DecodedToken) -> TokenResult:
        assert decoded.tid is not None
        when = tid_to_datetime(decoded.tid, self._state.key_register.base_date)
        common = TokenResult(ResultName.ACCEPT.value, decoded.token_class, decoded.subclass,
                             decoded.tid, when)
        f = decoded.fields
        if decoded.token_class == 0:
            return replace(common, amount_tenths=f.get("amount_tenths"), unit=f.get("unit"),
                           commodity=f.get("commodity"), currency_1e5=f.get("currency_1e5"))
        return replace(common, management=self._management(decoded))

    def _management(self, decoded: DecodedToken) -> dict[str, Any]:
        f = decoded.fields
        action = MANAGEMENT_NAMES.get(decoded.subclass, f"class2_sub{decoded.subclass}")
        values = {k: v for k, v in f.items() if k not in ("field16", "pad")}
        limit_w = f.get("max_power_limit_w", f.get("max_phase_unbalance_w"))
        if limit_w is not None and limit_w > self._config.max_power_limit_w:
            raise _Reject(ResultName.RANGE, decoded)
        if decoded.subclass == 5:
            values["clear_tamper"] = True
        return {"action": action, **values}

    def _gated(self, result: TokenResult, new_state: StsState) -> _Outcome:
        if self._gate is None:
            return _Outcome(result, new_state)
        veto = self._gate.vet(result)
        if veto is not None:
            return _Outcome(replace(result, result=ResultName(veto).value))
        return _Outcome(result, new_state, self._gate.companion(result))

    # --- key change ---------------------------------------------------------------------------

    def _key_change(self, decoded: DecodedToken) -> _Outcome:
        now_utc = self._clock.utc()
        state = self._state
        since = state.staged_since_utc
        if since is not None and (now_utc - since).total_seconds() > self._config.kct_timeout_s:
            state = state.without_staged()
        staged = state.with_staged(decoded.subclass, decoded.fields, now_utc)
        register = self._completed_register(staged)
        section_result = TokenResult(KCT_RESULT_BY_SUBCLASS[decoded.subclass].value, 2, decoded.subclass)
        if register is None:
            return _Outcome(section_result, staged)
        ro = bool(staged.staged_kct[3]["ro"])
        new_state = staged.with_new_key(register, clear_tids=ro)
        info = {"action": "key_change", "rollover": ro, **register.describe()}
        return _Outcome(TokenResult(ResultName.ACCEPT.value, 2, decoded.subclass, management=info), new_state)

    def _completed_register(self, staged: StsState) -> KeyRegister | None:
        """The new key register when the staged set is complete, else None; raises on bad values."""
        sections = staged.staged_kct
        old = staged.key_register
        if 3 not in sections:
            return None
        first = sections[3]
        needed = {3, 4, 8, 9} if old.ea == EA_MISTY1 else ({3, 4, 8} if first["kct3"] else {3, 4})
        if not needed <= set(sections):
            return None
        second = sections[4]
        if first["kt"] == KT_INITIALISATION:
            raise _Reject(ResultName.KEY_TYPE)
        if not 1 <= first["krn"] <= 9 or second["ti"] > 99:
            raise _Reject(ResultName.RANGE)
        return KeyRegister(
            key=_new_key(old.ea, sections), ea=old.ea, kt=first["kt"], krn=first["krn"], ti=second["ti"],
            ken=first["kenho"] * 16 + second["kenlo"], sgc=_new_sgc(old, sections),
            base_date=NEXT_BASE_DATE[old.base_date] if first["ro"] else old.base_date,
        )


def _new_key(ea: int, sections: Mapping[int, Mapping[str, int]]) -> bytes:
    words = [sections[3]["nkho"]]
    if ea == EA_MISTY1:
        words += [sections[8]["nkmo2"], sections[9]["nkmo1"]]
    words.append(sections[4]["nklo"])
    return b"".join(w.to_bytes(4, "big") for w in words)


def _new_sgc(old: KeyRegister, sections: Mapping[int, Mapping[str, int]]) -> int:
    if old.ea == EA_MISTY1:
        sgc = sections[9]["sgcho"] * 4096 + sections[8]["sgclo"]
    elif 8 in sections and sections[3]["kct3"]:
        sgc = sections[8]["sgc"]
    else:
        return old.sgc
    if sgc > 999999:
        raise _Reject(ResultName.RANGE)
    return sgc


def commission(store: StsStateStore, register: KeyRegister, slots: int = 50,
               manufacture_utc: _dt.datetime | None = None) -> StsState:
    """Create and save the first decoder state; TID slots hold the manufacture time (or 0)."""
    floor = 0
    if manufacture_utc is not None:
        start = BASE_DATES[register.base_date]
        floor = max(0, int((manufacture_utc - start).total_seconds() // 60))
    state = StsState.commissioned(register, slots, floor)
    store.save(state)
    return state
