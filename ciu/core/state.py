"""CIU menu and token-entry state machine: keys and link messages in, a view and link commands out.

Keys: ``"0"``-``"9"``, ``BACK``, ``ENTER``, ``CLEAR``, ``LANG`` (English/Arabic), ``INFO``
(cycles through the short codes). Typing 20 digits then ENTER submits a token; typing a 1-2
digit short code then ENTER asks the meter for information (1 credit, 2 last token, 3 power,
4 tamper, 5 time, 6 relay, 7 energy); ``80`` then ENTER opens pairing: the installer types the
code shown on the meter LCD, then ENTER; ``81`` then ENTER mutes the buzzer (again: unmutes). Time is the injected monotonic clock (s).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ciu.core.entry import TOKEN_DIGITS, TokenEntry, group_digits
from meterd.proto.ciu_link import FieldValue, MonoClock, ShortCode

PAIRING_SHORT_CODE = "80"
MUTE_SHORT_CODE = "81"  # buzzer off / on (local: not sent to the meter)
DIGIT_KEYS = frozenset("0123456789")
KEYS = DIGIT_KEYS | {"BACK", "ENTER", "CLEAR", "LANG", "INFO"}
# keypad legend (hw.keypad) -> CIU key
KEYMAP = {**{d: d for d in DIGIT_KEYS}, "*": "BACK", "#": "ENTER", "C": "CLEAR", "A": "LANG", "B": "INFO", "D": "ENTER"}


class Screen(enum.Enum):
    HOME = "home"
    ENTRY = "entry"
    WAITING = "waiting"
    RESULT = "result"
    INFO = "info"
    PAIR_ENTRY = "pair_entry"
    PAIR_RESULT = "pair_result"


@dataclass(frozen=True)
class SendToken:
    request_id: int
    digits: str


@dataclass(frozen=True)
class SendShortCode:
    request_id: int
    code: int


@dataclass(frozen=True)
class StartPairing:
    code: str


Command = SendToken | SendShortCode | StartPairing


@dataclass(frozen=True)
class View:
    """Everything a renderer needs; equal views render equal images."""

    screen: Screen = Screen.HOME
    lang: str = "en"
    entry: str = ""  # grouped digits as typed
    link_up: bool = False
    paired: bool = True
    status: Mapping[str, FieldValue] = field(default_factory=dict)
    result: Mapping[str, FieldValue] = field(default_factory=dict)
    info: Mapping[str, FieldValue] = field(default_factory=dict)
    notice: str = ""  # text id: err_length, queued, no_reply, pair_failed...
    alarm: bool = False  # low credit
    utc_s: int | None = None
    utc_offset_s: int | None = None  # the meter's legal time minus UTC (s); None: a v1 meter, show UTC
    muted: bool = False  # buzzer muted by short code 81

    @property
    def local_s(self) -> int | None:
        """Seconds of the meter's legal time (POSIX-like count), or UTC when no offset is known."""
        if self.utc_s is None:
            return None
        return self.utc_s + (self.utc_offset_s or 0)


@dataclass(frozen=True)
class CiuTimers:
    """Timeouts (s) of the CIU screens."""

    result_s: float = 10.0
    info_s: float = 8.0
    entry_idle_s: float = 60.0
    short_code_reply_s: float = 10.0


class CiuState:
    """The CIU's behaviour, independent of keypad, display and link I/O."""

    def __init__(self, clock: MonoClock, new_request_id: Callable[[], int], timers: CiuTimers | None = None,
                 lang: str = "en") -> None:
        self._clock = clock
        self._new_id = new_request_id
        self._timers = timers or CiuTimers()
        self._entry = TokenEntry()
        self._pair = TokenEntry(max_digits=12)
        self._view = View(lang=lang)
        self._deadline_mono = float("inf")
        self._waiting_id: int | None = None
        self._time_base: tuple[int, float] | None = None

    # -- inputs ----------------------------------------------------------------------------

    def view(self) -> View:
        """The current view (``utc_s`` advanced by the monotonic clock since the last TIME)."""
        if self._time_base is None:
            return self._view
        utc_s, at_mono = self._time_base
        return replace(self._view, utc_s=utc_s + int(self._clock.mono() - at_mono))

    def press(self, key: str) -> list[Command]:
        """Handle one key press; returns link commands to carry out."""
        if key not in KEYS:
            return []
        if key == "LANG":
            self._set(lang="ar" if self._view.lang == "en" else "en")
            return []
        screen = self._view.screen
        if screen is Screen.WAITING:
            return []
        if screen is Screen.PAIR_ENTRY:
            return self._press_pairing(key)
        return self._press_entry(key)

    def tick(self) -> None:
        """Apply screen timeouts; call regularly."""
        if self._clock.mono() < self._deadline_mono:
            return
        self._deadline_mono = float("inf")
        if self._view.screen is Screen.WAITING:
            self._waiting_id = None
            self._home(notice="no_reply")
        else:
            self._home()

    def link_changed(self, up: bool) -> None:
        notice = self._view.notice
        if self._view.screen is Screen.WAITING and notice in ("", "queued"):
            notice = "" if up else "queued"
        self._set(link_up=up, notice=notice)

    def paired_changed(self, paired: bool, fingerprint: str = "") -> None:
        if fingerprint:
            self._set(paired=paired, screen=Screen.PAIR_RESULT, info={"fingerprint": fingerprint}, notice="paired")
            self._deadline_mono = self._clock.mono() + self._timers.result_s
        else:
            self._set(paired=paired)

    def pairing_failed(self, reason: str) -> None:
        self._set(screen=Screen.PAIR_RESULT, info={"reason": reason}, notice="pair_failed")
        self._deadline_mono = self._clock.mono() + self._timers.result_s

    def on_status(self, fields: Mapping[str, FieldValue]) -> None:
        self._set(status=dict(fields), alarm=bool(fields.get("low_credit", False)))

    def on_time(self, utc_s: int, utc_offset_s: int | None = None) -> None:
        """TIME from the meter: UTC (s) and, from a v2 meter, its legal-time offset (s)."""
        self._time_base = (utc_s, self._clock.mono())
        self._set(utc_offset_s=utc_offset_s)

    def on_token_result(self, request_id: int, fields: Mapping[str, FieldValue]) -> None:
        """A result arrives (possibly late, after a link loss): always shown, it is the customer's money."""
        if request_id == self._waiting_id:
            self._waiting_id = None
        self._entry.clear()
        self._set(screen=Screen.RESULT, result=dict(fields), notice="", entry="")
        self._deadline_mono = self._clock.mono() + self._timers.result_s

    def on_short_code_reply(self, request_id: int, fields: Mapping[str, FieldValue]) -> None:
        if request_id != self._waiting_id:
            return
        self._waiting_id = None
        self._set(screen=Screen.INFO, info=dict(fields), notice="")
        self._deadline_mono = self._clock.mono() + self._timers.info_s

    # -- key handling ----------------------------------------------------------------------

    def _press_entry(self, key: str) -> list[Command]:
        if key in DIGIT_KEYS:
            self._entry.add(key)
            self._show_entry()
        elif key == "BACK":
            self._entry.backspace()
            self._show_entry() if len(self._entry) else self._home()
        elif key == "CLEAR":
            self._home()
        elif key == "INFO":
            return self._info_cycle()
        elif key == "ENTER":
            return self._enter()
        return []

    def _show_entry(self, notice: str = "") -> None:
        self._set(screen=Screen.ENTRY, entry=self._entry.grouped(), notice=notice)
        self._deadline_mono = self._clock.mono() + self._timers.entry_idle_s

    def _enter(self) -> list[Command]:
        digits = self._entry.digits
        if len(digits) == TOKEN_DIGITS:
            request_id = self._new_id()
            self._entry.clear()
            self._wait(request_id, entry=group_digits(digits))
            return [SendToken(request_id, digits)]
        if digits == MUTE_SHORT_CODE:
            muted = not self._view.muted
            self._home(notice="buzzer_off" if muted else "buzzer_on")
            self._set(muted=muted)
            self._deadline_mono = self._clock.mono() + self._timers.result_s  # the notice then goes
            return []
        if digits == PAIRING_SHORT_CODE:
            self._entry.clear()
            self._pair.clear()
            self._set(screen=Screen.PAIR_ENTRY, entry="", notice="")
            self._deadline_mono = self._clock.mono() + self._timers.entry_idle_s
            return []
        if 1 <= len(digits) <= 2 and int(digits) in ShortCode._value2member_map_:
            self._entry.clear()
            return self._ask(int(digits))
        self._show_entry(notice="err_length" if len(digits) > 2 else "err_code")
        return []

    def _info_cycle(self) -> list[Command]:
        codes = list(ShortCode)
        current = self._view.info.get("code") if self._view.screen is Screen.INFO else None
        index = next((i for i, c in enumerate(codes) if c == current), -1)
        return self._ask(int(codes[(index + 1) % len(codes)]))

    def _ask(self, code: int) -> list[Command]:
        request_id = self._new_id()
        self._wait(request_id, entry="")
        self._deadline_mono = self._clock.mono() + self._timers.short_code_reply_s
        return [SendShortCode(request_id, code)]

    def _wait(self, request_id: int, entry: str) -> None:
        self._waiting_id = request_id
        self._set(screen=Screen.WAITING, entry=entry, notice="" if self._view.link_up else "queued")
        self._deadline_mono = float("inf")

    def _press_pairing(self, key: str) -> list[Command]:
        if key in DIGIT_KEYS:
            self._pair.add(key)
        elif key == "BACK":
            self._pair.backspace()
        elif key == "CLEAR":
            self._home()
            return []
        elif key == "ENTER" and len(self._pair) >= 6:
            code = self._pair.digits
            self._pair.clear()
            self._set(screen=Screen.WAITING, entry="", notice="pairing")
            self._deadline_mono = float("inf")
            return [StartPairing(code)]
        self._set(entry=self._pair.digits)
        self._deadline_mono = self._clock.mono() + self._timers.entry_idle_s
        return []

    def _home(self, notice: str = "") -> None:
        self._entry.clear()
        self._set(screen=Screen.HOME, entry="", notice=notice, result={}, info={})
        self._deadline_mono = float("inf")

    def _set(self, **changes: object) -> None:
        self._view = replace(self._view, **changes)  # type: ignore[arg-type]
