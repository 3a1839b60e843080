"""Opening and reconfiguring real serial ports (hw.serial_link.open_port, set_line) on pyserial's
loop:// URL and on a pseudo-terminal."""

from __future__ import annotations

import os
import tty
from collections.abc import Iterator

import pytest
import serial

from hw.serial_link import SerialLinkError, open_port, set_line


@pytest.fixture
def pty_path() -> Iterator[str]:
    master, slave = os.openpty()
    tty.setraw(slave)
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_open_port_applies_rate_and_time_outs() -> None:
    port = open_port("loop://", 19200, timeout_s=0.0, write_timeout_s=0.0)
    try:
        assert (port.baudrate, port.bytesize, port.parity) == (19200, serial.EIGHTBITS, serial.PARITY_NONE)
        assert (port.timeout, port.write_timeout) == (0.0, 0.0)
    finally:
        port.close()


def test_open_port_default_write_timeout_is_one_second() -> None:
    port = open_port("loop://")
    try:
        assert port.write_timeout == 1.0
    finally:
        port.close()


def test_open_port_names_the_port_it_cannot_open() -> None:
    with pytest.raises(SerialLinkError, match="/dev/no-such-tty"):
        open_port("/dev/no-such-tty")


def test_kernel_rs485_mode_fails_loudly_where_the_driver_lacks_it(pty_path: str) -> None:
    with pytest.raises(SerialLinkError, match="kernel RS-485 mode unavailable"):
        open_port(pty_path, 9600, rs485=True)


def test_set_line_switches_rate_and_framing() -> None:
    port = open_port("loop://", 9600)
    try:
        set_line(port, 300, "7E1")
        assert (port.baudrate, port.bytesize, port.parity) == (300, serial.SEVENBITS, serial.PARITY_EVEN)
        set_line(port, 9600, "8N1")
        assert (port.baudrate, port.bytesize, port.parity) == (9600, serial.EIGHTBITS, serial.PARITY_NONE)
        with pytest.raises(SerialLinkError, match="framing"):
            set_line(port, 9600, "8E2")
    finally:
        port.close()


def test_a_port_held_exclusively_by_another_process_is_in_use(pty_path: str) -> None:
    holder = open_port(pty_path, 9600)  # exclusive by default
    try:
        with pytest.raises(SerialLinkError, match="in use by another process"):
            open_port(pty_path, 9600)
    finally:
        holder.close()
    open_port(pty_path, 9600).close()  # released: free again


def test_a_missing_device_is_named_as_such(tmp_path) -> None:
    with pytest.raises(SerialLinkError, match="no such device"):
        open_port(str(tmp_path / "ttyUSB7"))


def test_set_line_names_a_setting_the_driver_refuses(pty_path: str) -> None:
    port = open_port(pty_path, 9600)
    try:
        with pytest.raises(SerialLinkError, match="300 Bd 7E1 refused"):
            set_line(port, 300, "7E1")  # a pty refuses parity (EINVAL)
    finally:
        port.close()


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _FailingPort:
    """A port whose reads and writes raise, as pyserial's do when the device vanished."""

    def __init__(self) -> None:
        self.closed = False

    def read(self, size: int) -> bytes:
        raise serial.SerialException("device reports readiness to read but returned no data")

    def write(self, data: bytes) -> int:
        raise OSError(5, "Input/output error")

    def fileno(self) -> int:
        return 42

    def close(self) -> None:
        self.closed = True


def test_reopening_port_backs_off_and_reports_each_change_once() -> None:
    clock = _Clock()
    changes: list[tuple[bool, str]] = []
    present = [False]
    ports: list[_FailingPort] = []

    def opener() -> _FailingPort:
        if not present[0]:
            raise SerialLinkError("cannot open /dev/ttyUSB0: no such device")
        ports.append(_FailingPort())
        return ports[-1]

    from hw.serial_link import ReopeningPort

    port = ReopeningPort(opener, clock, retry_s=1.0, max_retry_s=8.0, listener=lambda c, r: changes.append((c, r)))
    assert not port.connected and changes == [(False, "cannot open /dev/ttyUSB0: no such device")]
    waits = []
    for _ in range(5):  # 1, 2, 4, 8, 8 s between tries
        waits.append(port.retry_in_s())
        clock.t += port.retry_in_s()
        assert not port.reopen()
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0] and len(changes) == 1  # one report, not one per try
    present[0] = True
    clock.t += port.retry_in_s()
    assert port.reopen() and port.fileno() == 42 and changes[-1] == (True, "")
    assert port.read(10) == b"" and not port.connected and ports[0].closed  # the read raised: closed
    assert changes[-1] == (False, "device reports readiness to read but returned no data")
    assert port.failures == 1 and port.retry_in_s() == 1.0  # the back-off starts again from retry_s
    port.expire_wait()
    assert port.reopen() and port.write(b"x") == 0 and not port.connected  # the write raised
    assert [c for c, _ in changes] == [False, True, False, True, False]


def test_a_tty_opened_with_tiocexcl_elsewhere_is_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """What pyserial raises for a tty another process set TIOCEXCL on (open: EBUSY; root is let in,
    so the test cannot make a real one when it runs as root)."""
    def busy(url: str, **_kw: object) -> None:
        raise serial.SerialException(16, f"could not open port {url}: [Errno 16] Device or resource busy: '{url}'")

    monkeypatch.setattr(serial, "serial_for_url", busy)
    with pytest.raises(SerialLinkError, match=r"/dev/ttyUSB0: in use by another process"):
        open_port("/dev/ttyUSB0")
