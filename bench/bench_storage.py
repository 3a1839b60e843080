"""Benchmark of meterd's storage writes per day, as the block layer sees them in real time.

The stepped simulated meter (every feature of tests/simmeter; ``--pq on|off``) runs a warm-up
(10 min of meter time), then ``--seconds`` of meter time, and the bytes written are scaled to 24 h.

Where it can (root, ``losetup``; ``--block loop``, the default ``auto``), the state directory is
on a fresh ext4 on a loop device, made and mounted as the meter image's ``/data`` partition
(``bench/loop_ext4.py``: its fstab options, ``mkfs.ext4`` defaults), and the figure is what that
device received (``/sys/block/loopN/stat``, sectors written): file data, the file system's
metadata and its journal, what an SD card would receive. Otherwise (``--block proc``) it is
``/proc/self/io`` (``write_bytes`` − ``cancelled_write_bytes``: a 4-KiB page counted each time it
goes from clean to dirty, by ``write``/``pwrite`` or through a shared ``mmap``; no metadata, no
journal), and says so. Both figures are printed when the loop device is used.

Stepping runs far faster than real time, so left alone the kernel would merge many meter minutes
of writes into one (a dirty page is written about 30 s of *wall* time after it was dirtied, and
ext4 commits its journal every ``commit=`` 30 s). To count what a meter running in real time
writes, every file of the state directory is flushed (``fdatasync``: its data, and a journal
commit when its size or blocks changed) after each ``--writeback-s`` (30) of meter time, as the
kernel's write-back and the journal would have done by then; the meter's own syncs are counted
as they happen either way. The last-alive file goes to tmpfs (``/dev/shm``), as on a Pi
(``/run/meterd``): the simulation's default puts it in the state directory, where its 16 bytes a
second would cost a page every 30 s that a Pi never writes. A long run prints the figure so far
on stderr after each hour of meter time.

``--trace FILE`` is for attribution per file: run the bench under
``strace -f -y -e trace=write,pwrite64,fsync,fdatasync -o FILE`` and pass the same FILE: the bench
marks the measured span in the trace (writes of ``MARK-START``/``MARK-END`` to /dev/null) and
prints, per file, write(2) calls and bytes, syncs, and the 4-KiB pages written at each sync.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.loop_ext4 import LoopExt4, data_mount_options, unavailable  # noqa: E402

WARM_UP_S = 600
DAY_S = 86_400
PROGRESS_S = 3600  # a line on stderr per hour of meter time
_CALL = re.compile(r"^\d+\s+(write|pwrite64|fsync|fdatasync)\((\d+)<([^>]*)>(.*)\)\s+=\s+(-?\d+)")


def _written() -> int:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])


def _writeback(state: Path) -> None:
    """fdatasync every file of the state directory: what the kernel's periodic write-back does
    within ~30 s, with the journal commit of what those writes changed (sizes, allocations);
    marked in a trace, so that these are not counted as the meter's syncs.

    Not ``syncfs``: that is a data-integrity sync, which also writes the timestamps ``lazytime``
    keeps in memory, where the periodic write-back leaves them (for up to 12 h, or until the
    inode is written for another reason)."""
    _mark(b"MARK-WB")
    for path in state.rglob("*"):
        if path.is_file():
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
    _mark(b"MARK-WB-END")


def _mark(text: bytes) -> None:
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        os.write(fd, text)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class DayWrites:
    """Bytes a day: at the block layer of the loop device (None without one) and the process's
    page writes (``/proc/self/io``)."""

    block: float | None
    pages: float


def run(pq: bool, seconds: int, writeback_s: int, loop: bool) -> DayWrites:
    """Bytes per day the stepped meter makes the kernel write (real-time write-back emulated)."""
    with contextlib.ExitStack() as stack:
        parent = os.environ.get("BENCH_STATE_PARENT")
        device = stack.enter_context(LoopExt4(Path(parent) if parent else None)) if loop else None
        where = device.mountpoint if device is not None else parent
        state = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=where)))
        return _measure(state, pq, seconds, writeback_s, device)


def _measure(state: Path, pq: bool, seconds: int, writeback_s: int, device: LoopExt4 | None) -> DayWrites:
    from tests.simmeter import SimMeter

    def block() -> int:
        return device.sectors_written() * 512 if device is not None else 0

    alive = Path("/dev/shm") / f"meterd-bench-alive-{os.getpid()}"
    sm = SimMeter(state, sim={"current_a": 1.45, "power_factor": "0.95L"}, display={"kind": "dummy"},
                  power_quality={"enabled": pq}, supervision={"alive_file": str(alive)})
    try:
        sm.run(WARM_UP_S)
        _writeback(state)
        _mark(b"MARK-START")
        before, before_block = _written(), block()
        done = 0
        while done < seconds:
            step = min(writeback_s, seconds - done)
            sm.run(step)
            done += step
            _writeback(state)
            if done % PROGRESS_S < step and done < seconds:  # a long run reports as it goes
                so_far = (block() - before_block) if device is not None else (_written() - before)
                print(f"  after {done / 3600:.1f} h of meter time: {so_far * DAY_S / done / 1e6:.2f}"
                      " MB/day", file=sys.stderr, flush=True)
        written, written_block = _written() - before, block() - before_block
        _mark(b"MARK-END")
    finally:
        sm.close()
        alive.unlink(missing_ok=True)
    scale = DAY_S / seconds
    return DayWrites(written_block * scale if device is not None else None, written * scale)


def attribute(trace: Path, seconds: int) -> None:
    """Per file of the state directory: write(2) calls and bytes, the meter's syncs, 4-KiB pages
    written at them, and pages of unsynced writes flushed by the emulated write-back (the span
    between the marks, scaled to a day)."""
    calls: collections.Counter[str] = collections.Counter()
    nbytes: collections.Counter[str] = collections.Counter()
    syncs: collections.Counter[str] = collections.Counter()
    pages: collections.Counter[str] = collections.Counter()
    flushed: collections.Counter[str] = collections.Counter()
    dirty: dict[str, set[int]] = collections.defaultdict(set)
    spans = 0
    inside = writeback = False
    for line in trace.read_text(errors="replace").splitlines():
        if "MARK-START" in line:
            inside, spans = True, spans + 1
        elif "MARK-END" in line:
            inside = False
        elif "MARK-WB-END" in line:
            writeback = False
        elif "MARK-WB" in line:
            writeback = True
        m = _CALL.match(line)
        if not inside or m is None:
            continue
        op, _fd, path, rest, ret = m.groups()
        if not path.startswith("/") or path.startswith(("/dev/", "/proc/")) or Path(path).is_dir():
            continue
        name = Path(path).name
        if op in ("fsync", "fdatasync"):
            if writeback:
                flushed[name] += len(dirty[name])
            else:
                syncs[name] += 1
                pages[name] += len(dirty[name])
            dirty[name].clear()
        elif int(ret) > 0:
            calls[name] += 1
            nbytes[name] += int(ret)
            offset = int(rest.rsplit(",", 1)[1]) if op == "pwrite64" else nbytes[name] - int(ret)
            dirty[name].update(range(offset // 4096, (offset + int(ret) - 1) // 4096 + 1))
    scale = DAY_S / (seconds * max(spans, 1))
    print(f"per file and day ({spans} measured span(s)): write(2) calls, bytes; syncs; 4-KiB pages written"
          " at syncs; pages of unsynced writes at write-back (mmap'd -shm pages are not seen by strace)")
    for name in sorted(set(calls) | set(syncs), key=lambda n: (-pages[n], n)):
        print(f"  {name:28s} {calls[name] * scale:8.0f} {nbytes[name] * scale / 1e6:7.3f} MB"
              f" {syncs[name] * scale:6.0f} {pages[name] * scale * 4096 / 1e6:7.3f} MB"
              f" {flushed[name] * scale * 4096 / 1e6:7.3f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pq", choices=("on", "off", "both"), default="both")
    parser.add_argument("--seconds", type=int, default=7200, help="measured meter time (s), after the warm-up")
    parser.add_argument("--writeback-s", type=int, default=30, help="meter time between flushes (s)")
    parser.add_argument("--block", choices=("auto", "loop", "proc"), default="auto",
                        help="count at a loop device's block layer (root) or the process's page writes")
    parser.add_argument("--trace", type=Path, help="strace output of this run, for attribution per file")
    args = parser.parse_args()
    if args.trace is not None and args.pq == "both":
        parser.error("--trace needs one --pq (on or off)")
    reason = unavailable()
    if args.block == "loop" and reason is not None:
        parser.error(f"--block loop: {reason}")
    loop = args.block == "loop" or (args.block == "auto" and reason is None)
    if not loop:
        print(f"no loop device ({reason or '--block proc'}): page writes of the process only, without the"
              " file system's metadata and journal", file=sys.stderr)
    for pq in ((True, False) if args.pq == "both" else (args.pq == "on",)):
        try:
            day = run(pq, args.seconds, args.writeback_s, loop)
        except subprocess.CalledProcessError as exc:
            if args.block != "auto":
                raise
            print(f"no loop device ({exc.cmd[0]} failed: {(exc.stderr or '').strip()}): page writes of the process"
                  " only, without the file system's metadata and journal", file=sys.stderr)
            loop = False
            day = run(pq, args.seconds, args.writeback_s, loop)
        span = (f"{args.seconds} s of meter time after a {WARM_UP_S}-s warm-up, write-back every"
                f" {args.writeback_s} s of meter time; budget 5 MB")
        tag = "on" if pq else "off"
        if day.block is not None:
            print(f"meterd_storage_writes_per_day_pq_{tag}: {day.block / 1e6:.2f} MB (block layer: ext4 on a"
                  f" loop device, mounted {data_mount_options()}: data, metadata and journal; {span})")
            print(f"meterd_page_writes_per_day_pq_{tag}: {day.pages / 1e6:.2f} MB (/proc/self/io write_bytes"
                  f" - cancelled: data pages only; {span})")
        else:
            print(f"meterd_storage_writes_per_day_pq_{tag}: {day.pages / 1e6:.2f} MB (/proc/self/io write_bytes"
                  f" - cancelled: data pages only, no metadata or journal; {span})")
    if args.trace is not None:
        attribute(args.trace, args.seconds)


if __name__ == "__main__":
    main()
