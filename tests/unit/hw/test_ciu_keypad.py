"""Keypads: the gpiozero matrix scan against wired mock pins, and the stream/socket keypads."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPin

from hw.keypad import LAYOUT_4X4, MatrixKeypad, SocketKeypad, StreamKeypad, map_char

ROWS = [5, 6, 13, 19]
COLS = [12, 16, 20, 21]
ROW_NAMES = {f"GPIO{p}" for p in ROWS}


class MatrixPin(MockPin):
    """Mock pin wired into a key matrix: a closed key connects its row to its column."""

    pressed: set[tuple[int, int]] = set()

    def _change_state(self, value):
        changed = super()._change_state(value)
        if self.info.name in ROW_NAMES:
            rewire(self.factory)
        return changed


def rewire(factory: MockFactory) -> None:
    for c in COLS:
        low = any(factory.pin(r).state is False or factory.pin(r).state == 0
                  for r, cc in MatrixPin.pressed if cc == c and factory.pin(r).function == "output")
        pin = factory.pin(c)
        if low:
            pin.drive_low()
        else:
            pin.drive_high()


def make() -> tuple[MockFactory, MatrixKeypad]:
    factory = MockFactory(pin_class=MatrixPin)
    MatrixPin.pressed = set()
    return factory, MatrixKeypad(ROWS, COLS, LAYOUT_4X4, debounce_scans=2, pin_factory=factory)


def press(factory: MockFactory, key: str) -> None:
    r = next(i for i, row in enumerate(LAYOUT_4X4) if key in row)
    MatrixPin.pressed.add((ROWS[r], COLS[LAYOUT_4X4[r].index(key)]))
    rewire(factory)


def release_all(factory: MockFactory) -> None:
    MatrixPin.pressed.clear()
    rewire(factory)


def test_matrix_scan_finds_each_key() -> None:
    factory, pad = make()
    for row in LAYOUT_4X4:
        for key in row:
            press(factory, key)
            assert pad.scan() == {key}
            release_all(factory)
    assert pad.scan() == set()
    pad.close()


def test_matrix_poll_debounces_and_reports_a_held_key_once() -> None:
    factory, pad = make()
    press(factory, "7")
    assert pad.poll() == []  # seen once: not yet stable
    assert pad.poll() == ["7"]
    assert pad.poll() == []  # still held
    release_all(factory)
    assert pad.poll() == []
    press(factory, "7")
    pad.poll()
    assert pad.poll() == ["7"]  # pressed again
    pad.close()


def test_stream_keypad_maps_terminal_keys() -> None:
    assert [map_char(c) for c in "5\r\x7fcab#x"] == ["5", "#", "*", "C", "A", "B", "#", None]
    r, w = os.pipe()
    try:
        pad = StreamKeypad(r)
        assert pad.poll() == []
        os.write(w, b"12\x7f3\n")
        assert pad.poll() == ["1", "2", "*", "3", "#"]
    finally:
        os.close(r)
        os.close(w)


def test_socket_keypad_takes_keys_from_a_client(tmp_path: Path) -> None:
    path = str(tmp_path / "keys.sock")
    pad = SocketKeypad(path)
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.sendall(b"42\n")
        keys: list[str] = []
        for _ in range(50):
            keys += pad.poll()
            if len(keys) >= 3:
                break
            import time
            time.sleep(0.005)  # real socket: a few ms for the kernel to pass the bytes
        assert keys == ["4", "2", "#"]
        client.close()
    finally:
        pad.close()


def test_a_keypad_whose_lines_cannot_be_had_raises_one_clear_error_and_frees_the_others() -> None:
    import pytest

    from hw.keypad import KeypadError, NoKeypad

    factory = MockFactory(pin_class=MatrixPin)
    try:
        with pytest.raises(KeypadError, match=r"columns \[12, 16, 20, 5\] unavailable"):
            MatrixKeypad(ROWS, [12, 16, 20, 5], LAYOUT_4X4, pin_factory=factory)  # GPIO5 is a row already
        MatrixKeypad(ROWS, COLS, LAYOUT_4X4, pin_factory=factory).close()  # the rows it took were released
    finally:
        factory.close()
    assert NoKeypad().poll() == []
