"""The storage bench counts writes on a file system made and mounted as the image's ``/data``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.loop_ext4 import LoopExt4, data_mount_options, unavailable


def test_the_bench_mounts_with_the_images_data_options() -> None:
    assert data_mount_options() == "noatime,lazytime,commit=30"


def test_the_options_come_from_the_fstab_line(tmp_path: Path) -> None:
    script = tmp_path / "01-run.sh"
    script.write_text('printf "LABEL=data  /data  ext4  defaults,noatime,commit=5,nofail,x-systemd.after=x  0  2"\n')
    assert data_mount_options(script) == "noatime,commit=5"
    script.write_text("echo nothing\n")
    with pytest.raises(RuntimeError, match="LABEL=data"):
        data_mount_options(script)


@pytest.mark.skipif(unavailable() is not None, reason=f"no loop device here: {unavailable()}")
def test_a_synced_write_reaches_the_loop_devices_block_layer(tmp_path: Path) -> None:
    with LoopExt4(tmp_path, size_mib=16) as device:
        path = device.mountpoint / "f"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, b"x" * 8192)
            os.fdatasync(fd)
            before = device.sectors_written()
            os.pwrite(fd, b"y" * 4096, 0)
            os.fdatasync(fd)
            written = device.sectors_written() - before
        finally:
            os.close(fd)
        assert "lazytime" in Path("/proc/mounts").read_text().split(str(device.mountpoint))[1].split("\n")[0]
    assert written * 512 >= 4096
    assert not any(tmp_path.iterdir())  # unmounted, detached, removed


@pytest.mark.skipif(unavailable() is not None, reason=f"no loop device here: {unavailable()}")
def test_a_mount_that_fails_leaves_no_device_and_no_files(tmp_path: Path) -> None:
    before = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    with pytest.raises(subprocess.CalledProcessError), LoopExt4(tmp_path, size_mib=16, options="no_such_option"):
        pass
    assert subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout == before
    assert not any(tmp_path.iterdir())
