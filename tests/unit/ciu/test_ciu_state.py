"""CIU token entry and menu state machine."""

from __future__ import annotations

from ciu.core.entry import TokenEntry, group_digits
from ciu.core.state import CiuState, Screen, SendShortCode, SendToken, StartPairing
from meterd.core.clock import SimClock


def make() -> tuple[SimClock, CiuState]:
    clock = SimClock()
    ids = iter(range(1, 100))
    return clock, CiuState(clock, lambda: next(ids))


def type_keys(state: CiuState, keys: str) -> list:
    out: list = []
    for k in keys:
        out += state.press(k)
    return out


def test_grouping_and_entry_editing() -> None:
    assert group_digits("12345678901234567890") == "1234 5678 9012 3456 7890"
    entry = TokenEntry()
    for d in "123456789012345678901":
        entry.add(d)
    assert entry.digits == "12345678901234567890" and entry.full
    entry.backspace()
    assert entry.grouped() == "1234 5678 9012 3456 789"
    assert not entry.add("x")
    entry.clear()
    assert len(entry) == 0


def test_twenty_digits_and_enter_submit_a_token() -> None:
    _, state = make()
    type_keys(state, "1234567890")
    state.press("BACK")
    type_keys(state, "01234567890")
    assert state.view().entry == "1234 5678 9012 3456 7890"
    assert state.press("ENTER") == [SendToken(1, "12345678901234567890")]
    assert state.view().screen is Screen.WAITING
    assert state.press("5") == []  # keys ignored while waiting
    state.on_token_result(1, {"accepted": True, "code": "accepted", "credit": "10"})
    assert state.view().screen is Screen.RESULT and state.view().result["credit"] == "10"


def test_wrong_length_is_refused_with_a_notice() -> None:
    _, state = make()
    assert type_keys(state, "123456\n".replace("\n", "")) == []
    assert state.press("ENTER") == []
    assert state.view().notice == "err_length" and state.view().screen is Screen.ENTRY


def test_short_codes_pairing_and_unknown_codes() -> None:
    _, state = make()
    state.press("1")
    assert state.press("ENTER") == [SendShortCode(1, 1)]
    state.on_short_code_reply(1, {"code": 1, "credit": "5"})
    assert state.view().screen is Screen.INFO
    assert state.press("INFO") == [SendShortCode(2, 2)]  # next page
    state.on_short_code_reply(2, {"code": 2})
    state.press("CLEAR")
    type_keys(state, "55")
    state.press("ENTER")
    assert state.view().notice == "err_code"
    state.press("CLEAR")
    type_keys(state, "80")
    assert state.press("ENTER") == []
    assert state.view().screen is Screen.PAIR_ENTRY
    type_keys(state, "12345")
    assert state.press("ENTER") == []  # too short for a pairing code
    type_keys(state, "678")
    assert state.press("ENTER") == [StartPairing("12345678")]
    state.paired_changed(True, "042917")
    assert state.view().screen is Screen.PAIR_RESULT and state.view().info["fingerprint"] == "042917"


def test_timeouts_return_home() -> None:
    clock, state = make()
    type_keys(state, "12")
    clock.advance(61)
    state.tick()
    assert state.view().screen is Screen.HOME and state.view().entry == ""
    state.press("3")
    state.press("ENTER")
    clock.advance(11)
    state.tick()
    assert state.view().notice == "no_reply"


def test_late_token_result_is_shown_and_clock_runs_from_time_messages() -> None:
    clock, state = make()
    type_keys(state, "1" * 20)
    state.press("ENTER")
    state.link_changed(False)
    state.on_time(1_800_000_000)
    clock.advance(65)
    assert state.view().utc_s == 1_800_000_065
    state.on_token_result(1, {"accepted": False, "code": "used"})
    assert state.view().screen is Screen.RESULT


def test_language_toggle_and_low_credit_alarm() -> None:
    _, state = make()
    state.press("LANG")
    assert state.view().lang == "ar"
    state.on_status({"credit": "2", "low_credit": True})
    assert state.view().alarm
    state.on_status({"credit": "50", "low_credit": False})
    assert not state.view().alarm


def test_queued_notice_follows_the_link_while_waiting() -> None:
    _, state = make()
    type_keys(state, "9" * 20)
    state.press("ENTER")
    assert state.view().notice == "queued"  # link never came up yet
    state.link_changed(True)
    assert state.view().notice == ""
    state.link_changed(False)
    assert state.view().notice == "queued"
