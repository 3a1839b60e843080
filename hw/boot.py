"""The Raspberry Pi firmware's A/B boot switch (tryboot), as the running system sees it.

The Pi boots from the partition ``autoboot.txt`` names on its first (FAT) partition:
``[all] boot_partition=N`` always, ``[tryboot] boot_partition=M`` once after ``reboot '0
tryboot'``. The firmware tells the kernel which it did: ``/proc/device-tree/chosen/bootloader/
tryboot`` holds 1 (4 bytes, big-endian) in a trial boot; the booted slot's own ``cmdline.txt``
names it (``rauc.slot=A``). A trial that is not confirmed (RAUC makes the booted slot primary,
which rewrites ``[all]``) is left by any reboot: the flag was for one boot only.

RAUC switches the slots through ``image/rauc/tryboot-handler`` (its custom bootloader back end).
This module reads what the firmware reported (:func:`read_boot`), parses ``autoboot.txt``
(:class:`Autoboot`) and reboots the board (:class:`PiBoard`). The simulated board, which plays
the firmware's part on a directory, is :mod:`hw.boot_sim`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from hw.errors import HwError

TRYBOOT_FILE = Path("/proc/device-tree/chosen/bootloader/tryboot")
CMDLINE = Path("/proc/cmdline")
AUTOBOOT_DIR = Path("/boot/autoboot")
PARTITIONS = {"A": 2, "B": 3}  # boot partitions of the slots (p1 is the autoboot partition)


class BootError(HwError):
    """The boot partition or the firmware's report cannot be read or written."""


@dataclass(frozen=True)
class BootInfo:
    """How this boot happened: the booted slot ("A"/"B") and whether it is a trial (tryboot)."""

    slot: str
    trial: bool


@dataclass(frozen=True)
class Autoboot:
    """``autoboot.txt``: the permanent boot partition and the one tried once."""

    boot_partition: int
    tryboot_partition: int

    @classmethod
    def parse(cls, text: str) -> Autoboot:
        """The two ``boot_partition`` values of ``[all]`` and ``[tryboot]``; BootError if absent."""
        section = "all"
        values: dict[str, int] = {}
        for raw in text.splitlines():
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
            elif line.startswith("boot_partition="):
                try:
                    values[section] = int(line.split("=", 1)[1])
                except ValueError:
                    raise BootError(f"autoboot.txt: bad line {line!r}") from None
        if "all" not in values:
            raise BootError("autoboot.txt: no boot_partition in [all]")
        return cls(values["all"], values.get("tryboot", values["all"]))

    def render(self) -> str:
        """The file's text, as the handler writes it."""
        return (f"[all]\ntryboot_a_b=1\nboot_partition={self.boot_partition}\n"
                f"[tryboot]\nboot_partition={self.tryboot_partition}\n")


def slot_of(partition: int) -> str:
    """The slot ("A"/"B") booting from ``partition``; BootError for another number."""
    for slot, number in PARTITIONS.items():
        if number == partition:
            return slot
    raise BootError(f"boot partition {partition} is neither slot A nor slot B")


def read_autoboot(directory: Path) -> Autoboot:
    """``autoboot.txt`` of the autoboot partition mounted at ``directory``."""
    try:
        return Autoboot.parse((directory / "autoboot.txt").read_text(encoding="ascii"))
    except OSError as exc:
        raise BootError(f"cannot read {directory / 'autoboot.txt'}: {exc.strerror or exc}") from None


def read_boot(cmdline: Path = CMDLINE, tryboot_file: Path = TRYBOOT_FILE) -> BootInfo:
    """The booted slot (``rauc.slot=`` on the kernel command line) and whether the firmware
    booted it as a trial (the device tree's tryboot flag; absent means no)."""
    try:
        words = cmdline.read_text(encoding="ascii", errors="replace").split()
    except OSError as exc:
        raise BootError(f"cannot read {cmdline}: {exc.strerror or exc}") from None
    slot = next((w.split("=", 1)[1] for w in words if w.startswith("rauc.slot=")), "")
    if slot not in PARTITIONS:
        raise BootError(f"{cmdline} names no slot A or B (rauc.slot=)")
    try:
        flag = tryboot_file.read_bytes()
    except FileNotFoundError:
        flag = b""
    except OSError as exc:
        raise BootError(f"cannot read {tryboot_file}: {exc.strerror or exc}") from None
    return BootInfo(slot, int.from_bytes(flag[:4], "big") == 1 if len(flag) >= 4 else False)


class PiBoard:
    """Reboots the Pi through systemd: ``systemctl reboot`` or, for a trial of the slot RAUC
    just installed, ``systemctl reboot '0 tryboot'`` (the argument reaches the firmware)."""

    def __init__(self, program: str = "systemctl") -> None:
        self.program = program

    async def reboot(self, trial: bool) -> None:
        """Ask systemd to reboot (it stops meterd cleanly first: SIGTERM, final save)."""
        args = ["reboot", "0 tryboot"] if trial else ["reboot"]
        try:
            proc = await asyncio.create_subprocess_exec(self.program, *args, stdin=asyncio.subprocess.DEVNULL,
                                                        stdout=asyncio.subprocess.DEVNULL,
                                                        stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise BootError(f"cannot run {self.program}: {exc.strerror or exc}") from None
        _out, err = await proc.communicate()
        if proc.returncode != 0:
            raise BootError(f"{self.program} {' '.join(args)}: {err.decode(errors='replace').strip() or 'failed'}")
