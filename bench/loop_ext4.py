"""A scratch ext4 file system on a loop device, made and mounted as the meter image makes and
mounts its ``/data`` partition, for counting what reaches the block layer: file data, the file
system's metadata and its journal, as an SD card would receive them.

The mount options are read from the image's fstab line (``image/stage-meter/00-meter/01-run.sh``,
``LABEL=data /data ext4 …``), without those that only concern booting (``nofail``,
``x-systemd.*``, ``defaults``), so a bench measures the options the meter ships with. The file
system is made by ``mkfs.ext4`` with its defaults, as ``systemd-repart`` (``Format=ext4``) makes
the partition on a meter's first boot, except that its inode tables and journal are zeroed at
once rather than in the background after mounting.

Needs root (``losetup``, ``mount``); :func:`unavailable` says why it cannot be used.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parents[1]
FSTAB_SCRIPT = REPO / "image" / "stage-meter" / "00-meter" / "01-run.sh"
_BOOT_ONLY = ("defaults", "nofail")
_CAP_SYS_ADMIN = 21


def data_mount_options(script: Path = FSTAB_SCRIPT) -> str:
    """The ``/data`` partition's mount options in the meter image, without the boot-only ones."""
    match = re.search(r"LABEL=data\s+/data\s+ext4\s+(\S+)", script.read_text())
    if match is None:
        raise RuntimeError(f"{script}: no fstab line for LABEL=data")
    options = [o for o in match.group(1).split(",") if o not in _BOOT_ONLY and not o.startswith("x-systemd.")]
    return ",".join(options)


def unavailable() -> str | None:
    """Why a loop device cannot be used here (None when it can)."""
    if os.geteuid() != 0:
        return "not root"
    if not _capable(_CAP_SYS_ADMIN):
        return "no CAP_SYS_ADMIN (an unprivileged container): cannot mount"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"no {tool}"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control"
    return None


def _capable(cap: int) -> bool:
    """Whether this process has capability number ``cap`` in its effective set."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


class LoopExt4:
    """A fresh ext4 of ``size_mib`` in an image file under ``parent``, on a loop device, mounted
    with ``options`` (default: the image's ``/data`` options) at :attr:`mountpoint`."""

    def __init__(self, parent: Path | None = None, size_mib: int = 256, options: str | None = None) -> None:
        self.options = data_mount_options() if options is None else options
        self._size = size_mib << 20
        self._dir = Path(tempfile.mkdtemp(prefix="meterd-loop-", dir=parent))
        self.mountpoint = self._dir / "data"
        self.device = ""

    def __enter__(self) -> LoopExt4:
        image = self._dir / "data.ext4"
        try:
            with image.open("wb") as fh:
                fh.truncate(self._size)
            # inode tables and journal zeroed now, not by ext4lazyinit in the background while the
            # bench counts (a meter's card does that once, after its first boot)
            _run("mkfs.ext4", "-q", "-F", "-L", "data", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image))
            self.device = _run("losetup", "--find", "--show", str(image)).strip()
            self.mountpoint.mkdir()
            _run("mount", "-t", "ext4", "-o", self.options, self.device, str(self.mountpoint))
        except BaseException:
            if self.device:
                _run("losetup", "-d", self.device)
            shutil.rmtree(self._dir)
            raise
        return self

    def sectors_written(self) -> int:
        """512-byte sectors written to the device so far (``/sys/block/<dev>/stat``, field 7)."""
        return int(Path(f"/sys/block/{Path(self.device).name}/stat").read_text().split()[6])

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _run("umount", str(self.mountpoint))
        _run("losetup", "-d", self.device)
        shutil.rmtree(self._dir)


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout
