"""Keypads of the CIU: a gpiozero matrix keypad (4x4 or 4x3) and a stream keypad for simulation.

Both return key characters of the keypad legend (``0``-``9``, ``*``, ``#``, ``A``-``D``) from
``poll()``; what a key does is decided by the CIU, not here.

- :class:`MatrixKeypad` scans rows (outputs, driven low one at a time) and reads columns
  (inputs with pull-ups); a key counts once it has been seen on ``debounce_scans`` scans in a row.
- :class:`StreamKeypad` reads characters from a file descriptor (a terminal in raw mode, a pipe,
  a socket): digits as typed, Enter -> ``#``, Backspace -> ``*``, letters a-d -> ``A``-``D``.
- :class:`SocketKeypad` listens on a UNIX stream socket and feeds what clients type into a
  :class:`StreamKeypad` (the simulator's "keypad" for tests and the lab dashboard).
- :class:`CompositeKeypad` reads several keypads as one.
- :class:`NoKeypad`: none (a keypad that could not be set up is switched off; the CIU shows on).

A matrix keypad whose GPIO lines cannot be had (no GPIO chip, a line taken, no pin library)
raises :class:`KeypadError` naming the lines and why.
"""

from __future__ import annotations

import os
import select
import socket
from typing import Any

from hw.errors import HwError

LAYOUT_4X4 = ("123A", "456B", "789C", "*0#D")
LAYOUT_4X3 = ("123", "456", "789", "*0#")
LEGEND = frozenset("0123456789*#ABCD")
_STREAM_MAP = {"\r": "#", "\n": "#", "\x7f": "*", "\b": "*", "a": "A", "b": "B", "c": "C", "d": "D"}


class KeypadError(HwError):
    """Base of the keypad errors."""


class MatrixKeypad:
    """A passive key matrix on GPIO: rows driven low one at a time, columns read with pull-ups."""

    def __init__(self, row_pins: list[int], col_pins: list[int], layout: tuple[str, ...] = LAYOUT_4X4,
                 debounce_scans: int = 2, pin_factory: Any = None) -> None:
        if len(layout) != len(row_pins) or any(len(r) != len(col_pins) for r in layout):
            raise KeypadError("layout does not match the row and column pins")
        from gpiozero import DigitalInputDevice, DigitalOutputDevice
        from gpiozero.exc import GPIOZeroError

        self._rows: list[Any] = []
        self._cols: list[Any] = []
        try:
            for p in row_pins:
                self._rows.append(DigitalOutputDevice(p, active_high=False, initial_value=False,
                                                      pin_factory=pin_factory))
            for p in col_pins:
                self._cols.append(DigitalInputDevice(p, pull_up=True, pin_factory=pin_factory))
        except (GPIOZeroError, OSError, ImportError) as exc:  # no GPIO chip, a pin taken, no pin library
            self.close()
            raise KeypadError(f"keypad on GPIO rows {row_pins}, columns {col_pins} unavailable: {exc}") from exc
        self._layout = layout
        self._debounce = max(1, debounce_scans)
        self._seen: dict[str, int] = {}
        self._reported: set[str] = set()

    def scan(self) -> set[str]:
        """Keys closed right now (one pass over all rows)."""
        down: set[str] = set()
        for r, row in enumerate(self._rows):
            row.on()
            for c, col in enumerate(self._cols):
                if col.is_active:
                    down.add(self._layout[r][c])
            row.off()
        return down

    def poll(self) -> list[str]:
        """Keys newly pressed since the last call (debounced); call every 10-20 ms."""
        down = self.scan()
        pressed: list[str] = []
        for key in list(self._seen):
            if key not in down:
                del self._seen[key]
                self._reported.discard(key)
        for key in sorted(down):
            self._seen[key] = self._seen.get(key, 0) + 1
            if self._seen[key] >= self._debounce and key not in self._reported:
                self._reported.add(key)
                pressed.append(key)
        return pressed

    def close(self) -> None:
        for device in (*self._rows, *self._cols):
            device.close()


def map_char(ch: str) -> str | None:
    """A typed character as a keypad legend key, or None when it has no key."""
    key = _STREAM_MAP.get(ch, ch)
    return key if key in LEGEND else None


class StreamKeypad:
    """Keys typed on a file descriptor (non-blocking reads)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self.closed = False

    def poll(self) -> list[str]:
        if self.closed:
            return []
        ready, _, _ = select.select([self._fd], [], [], 0)
        if not ready:
            return []
        data = os.read(self._fd, 256)
        if not data:
            self.closed = True
            return []
        keys = (map_char(ch) for ch in data.decode("utf-8", errors="ignore"))
        return [k for k in keys if k is not None]


class SocketKeypad:
    """A UNIX stream socket at ``path``; every connected client's typing becomes key presses."""

    def __init__(self, path: str) -> None:
        if os.path.exists(path):
            os.unlink(path)
        self._path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(2)
        self._server.setblocking(False)
        self._clients: list[tuple[socket.socket, StreamKeypad]] = []

    def poll(self) -> list[str]:
        ready, _, _ = select.select([self._server], [], [], 0)
        if ready:
            conn, _ = self._server.accept()
            self._clients.append((conn, StreamKeypad(conn.fileno())))
        keys: list[str] = []
        for conn, pad in list(self._clients):
            keys += pad.poll()
            if pad.closed:
                conn.close()
                self._clients.remove((conn, pad))
        return keys

    def close(self) -> None:
        for conn, _ in self._clients:
            conn.close()
        self._server.close()
        if os.path.exists(self._path):
            os.unlink(self._path)


class CompositeKeypad:
    """Several keypads read as one (the simulator's socket keypad and the terminal)."""

    def __init__(self, pads: list[Any]) -> None:
        self.pads = pads

    def poll(self) -> list[str]:
        keys: list[str] = []
        for pad in self.pads:
            keys += pad.poll()
        return keys

    def close(self) -> None:
        for pad in self.pads:
            close = getattr(pad, "close", None)
            if close is not None:
                close()


class NoKeypad:
    """No keypad (switched off): never a key."""

    def poll(self) -> list[str]:
        return []

    def close(self) -> None:
        """Nothing to release."""
