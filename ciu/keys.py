"""``python -m ciu.keys SOCKET [KEYS]``: type on the simulated CIU's keypad socket.

With ``KEYS`` (e.g. ``"1234...#"``) the characters are sent and the command ends; without, every
key typed in this terminal is sent at once (digits, Enter = ``#``, Backspace = ``*``, ``c`` clear,
``a`` language, ``b`` information pages) until Ctrl-D or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys


def send_keys(path: str, keys: str) -> None:
    """Send ``keys`` to the keypad socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(keys.encode())


def interactive(path: str) -> None:
    """Forward this terminal's keystrokes (cbreak mode, restored on exit) to the socket."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if os.isatty(fd) else None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        print("keypad connected: digits, Enter, Backspace, c (clear), a (language), b (info); Ctrl-D ends",
              flush=True)
        try:
            if saved is not None:
                tty.setcbreak(fd)
            while data := os.read(fd, 64):
                if b"\x04" in data:
                    break
                sock.sendall(data)
        finally:
            if saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    try:
        if len(args) > 1:
            send_keys(args[0], "".join(args[1:]))
        else:
            with contextlib.suppress(KeyboardInterrupt):
                interactive(args[0])
    except OSError as exc:
        print(f"ciu.keys: {args[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
