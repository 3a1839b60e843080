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
