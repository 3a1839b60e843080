"""What the tests of the SD card image recipe share: the host tools they run, skipped when a
tool is not installed, a disk image laid out like pi-gen's export and a stand-in wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

MIB = 1024 * 1024


def need(*tools: str) -> None:
    """Skip the test unless every one of ``tools`` is on the path."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """``cmd`` with its output captured as text, bounded to 120 s; the caller checks the code."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, **kw)  # type: ignore[call-overload]


def make_pi_gen_image(path: Path, boot_mib: int, root_mib: int) -> None:
    """An image laid out like pi-gen's export: MBR, FAT bootfs of ``boot_mib`` MiB at 8 MiB,
    ext4 rootfs of ``root_mib`` MiB to the end."""
    start = 8 * MIB
    path.write_bytes(b"")
    os.truncate(path, start + (boot_mib + root_mib) * MIB)
    table = (f"label: dos\nstart={start // 512},size={boot_mib * MIB // 512},type=c\n"
             f"start={(start + boot_mib * MIB) // 512},type=83\n")
    assert run(["sfdisk", "-q", str(path)], input=table).returncode == 0
    assert run(["mkfs.vfat", "-n", "bootfs", "--offset", str(start // 512), str(path),
                str(boot_mib * 1024)]).returncode == 0
    assert run(["mkfs.ext4", "-q", "-L", "rootfs", "-E", f"offset={start + boot_mib * MIB}", str(path),
                f"{root_mib}M"]).returncode == 0


def fake_wheel(directory: Path) -> Path:
    """A small valid wheel standing in for the project's (building it needs PyPI here)."""
    path = directory / "pmm_reference_meter-0.1.0-py3-none-any.whl"
    dist = "pmm_reference_meter-0.1.0.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: pmm-reference-meter\nVersion: 0.1.0\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path
