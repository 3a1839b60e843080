"""A scratch state directory on a RAM file system, for tests that prove what a meter computes,
not what reaches the medium.

Every commit of a FULL-synchronous database and every register-file write fsyncs; on the disk
under ``/tmp`` that is 3–5 ms each, and a scenario of thousands of 15-min cycles spends most of
its time there (60 % of a cycle of ``test_revenue_simmeter``). On tmpfs the same code runs,
every fsync included, but the kernel returns at once. Tests of durability (crashes, damaged
files, a full disk, bytes written per day) keep their directories on the disk: they must not
use this.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RAM_FS = Path("/dev/shm")


@contextmanager
def ram_directory(prefix: str = "pmm-test-") -> Iterator[Path]:
    """A new empty directory on ``/dev/shm`` (under the system temporary directory where there
    is no ``/dev/shm``), removed with its contents afterwards."""
    parent = RAM_FS if RAM_FS.is_dir() else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
