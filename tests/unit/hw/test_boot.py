"""The tryboot switch: autoboot.txt, the firmware's rule on the simulated board, and the RAUC
handler script (image/rauc/tryboot-handler) driving the board's directory as RAUC would."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hw.boot import Autoboot, BootError, read_boot, slot_of
from hw.boot_sim import HANDLER, MAX_SOCKET_PATH, SimBoard


def _board(tmp_path: Path) -> SimBoard:
    keyring = tmp_path / "keyring.pem"
    keyring.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    board = SimBoard(tmp_path / "board")
    board.prepare(keyring, "pmm1221-rpi4")
    return board


def _handler(board: SimBoard, *args: str) -> str:
    proc = subprocess.run(["sh", str(HANDLER), *args], env={**os.environ, **board.handler_env()},
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _autoboot(board: SimBoard) -> Autoboot:
    return Autoboot.parse((board.autoboot_dir / "autoboot.txt").read_text())


def test_autoboot_txt_round_trip_and_slots() -> None:
    text = Autoboot(2, 3).render()
    assert "[tryboot]\nboot_partition=3" in text and "tryboot_a_b=1" in text
    assert Autoboot.parse(text) == Autoboot(2, 3)
    assert Autoboot.parse("[all]\nboot_partition=3\n") == Autoboot(3, 3)
    assert (slot_of(2), slot_of(3)) == ("A", "B")
    with pytest.raises(BootError):
        slot_of(4)
    with pytest.raises(BootError):
        Autoboot.parse("[tryboot]\nboot_partition=3\n")


def test_read_boot_reports_slot_and_trial(tmp_path: Path) -> None:
    cmdline, flag = tmp_path / "cmdline", tmp_path / "tryboot"
    cmdline.write_text("console=tty1 root=/dev/mmcblk0p5 rauc.slot=B rootwait\n")
    assert read_boot(cmdline, flag).trial is False  # no flag file: not a trial
    flag.write_bytes(b"\x00\x00\x00\x01")
    info = read_boot(cmdline, flag)
    assert (info.slot, info.trial) == ("B", True)
    cmdline.write_text("console=tty1\n")
    with pytest.raises(BootError, match="rauc.slot"):
        read_boot(cmdline, flag)


def test_a_trial_boots_once_and_an_unconfirmed_reboot_returns_to_the_old_slot(tmp_path: Path) -> None:
    board = _board(tmp_path)
    assert board.boot().slot == "A" and not board.booted().trial
    # RAUC installed slot B: the handler makes B the tryboot choice, A stays permanent
    assert _handler(board, "set-primary", "B") == ""
    assert _autoboot(board) == Autoboot(2, 3)
    assert _handler(board, "get-primary") == "B"
    board.root.joinpath("reboot-tryboot").write_text("0 tryboot\n")  # what SimBoard.reboot(trial=True) leaves
    trial = board.boot()
    assert (trial.slot, trial.trial) == ("B", True)
    assert _handler(board, "get-current") == "B"
    assert board.boot().slot == "A"  # the next reboot, not confirmed: back to the permanent slot
    assert not board.booted().trial


def test_confirming_the_trial_makes_it_permanent(tmp_path: Path) -> None:
    board = _board(tmp_path)
    board.boot()
    _handler(board, "set-primary", "B")
    board.root.joinpath("reboot-tryboot").write_text("0 tryboot\n")
    board.boot()
    _handler(board, "set-state", "B", "good")   # rauc status mark-good booted
    _handler(board, "set-primary", "B")          # rauc status mark-active booted
    assert _autoboot(board) == Autoboot(3, 3)
    assert _handler(board, "get-primary") == "B" and _handler(board, "get-state", "B") == "good"
    assert board.boot().slot == "B" and board.boot().slot == "B"


def test_a_bad_trial_slot_is_no_longer_tried(tmp_path: Path) -> None:
    board = _board(tmp_path)
    board.boot()
    _handler(board, "set-primary", "B")
    _handler(board, "set-state", "B", "bad")
    assert _handler(board, "get-state", "B") == "bad" and _handler(board, "get-state", "A") == "good"
    assert _autoboot(board) == Autoboot(2, 2) and _handler(board, "get-primary") == "A"


def test_the_handler_refuses_unknown_slots_and_commands(tmp_path: Path) -> None:
    board = _board(tmp_path)
    board.boot()
    for args in (("set-primary", "C"), ("get-state", "X"), ("set-state", "A", "maybe"), ("reboot",)):
        proc = subprocess.run(["sh", str(HANDLER), *args], env={**os.environ, **board.handler_env()},
                              capture_output=True, text=True, check=False)
        assert proc.returncode != 0 and proc.stderr.startswith("tryboot-handler: "), args


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck")
def test_the_handler_is_shellcheck_clean() -> None:
    proc = subprocess.run(["shellcheck", str(HANDLER)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout


def test_the_private_bus_socket_fits_a_socket_path(tmp_path: Path) -> None:
    short = SimBoard(tmp_path / "b")
    assert short.bus_socket == (tmp_path / "b" / "bus.sock").absolute()
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "firmware-sim"
    board = SimBoard(deep)
    assert len(str(board.bus_socket)) <= MAX_SOCKET_PATH and board.bus_socket.parent != deep
    assert SimBoard(deep).bus_address == board.bus_address == f"unix:path={board.bus_socket}"  # meterd's view
    assert SimBoard(tmp_path / ("d" * 60) / ("e" * 60) / "other").bus_socket != board.bus_socket
