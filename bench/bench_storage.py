"""Benchmark of meterd's storage writes per day, as the block layer sees them in real time.

The stepped simulated meter (every feature of tests/simmeter; ``--pq on|off``) runs a warm-up
(10 min of meter time), then ``--seconds`` of meter time. The bytes it makes the kernel write are
read from ``/proc/self/io`` (``write_bytes`` − ``cancelled_write_bytes``: a 4-KiB page counts
each time it goes from clean to dirty, whether by ``write``/``pwrite`` or through a shared
``mmap`` such as SQLite's ``-shm`` wal-index; tmpfs is not counted) and scaled to 24 h.

Stepping runs far faster than real time, so left alone the kernel's write-back (a dirty page is
written about 30 s of *wall* time after it was dirtied) would merge many meter minutes of writes
to one page into one write and under-count. To count what a meter running in real time writes,
every file of the state directory is flushed (``fdatasync``) after each ``--writeback-s`` (30) of
meter time, as the kernel's write-back would have done by then; the synced writes of the meter
itself are counted as they happen either way. The ext4 journal's own blocks (written by the
kernel's journal thread) are not in these figures. The last-alive file goes to tmpfs
(``/dev/shm``), as on a Pi (``/run/meterd``): the simulation's default puts it in the state
directory, where its 16 bytes a second would cost a page every 30 s that a Pi never writes.
A long run prints the figure so far on stderr after each hour of meter time.

``--trace FILE`` is for attribution per file: run the bench under
``strace -f -y -e trace=write,pwrite64,fsync,fdatasync -o FILE`` and pass the same FILE: the bench
marks the measured span in the trace (writes of ``MARK-START``/``MARK-END`` to /dev/null) and
prints, per file, write(2) calls and bytes, syncs, and the 4-KiB pages written at each sync.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WARM_UP_S = 600
DAY_S = 86_400
PROGRESS_S = 3600  # a line on stderr per hour of meter time
_CALL = re.compile(r"^\d+\s+(write|pwrite64|fsync|fdatasync)\((\d+)<([^>]*)>(.*)\)\s+=\s+(-?\d+)")


def _written() -> int:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])


def _writeback(state: Path) -> None:
    """fdatasync every file of the state directory: what the kernel's write-back does within ~30 s
    (marked in a trace, so that these are not counted as the meter's syncs)."""
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


def run(pq: bool, seconds: int, writeback_s: int) -> float:
    """Bytes per day the stepped meter makes the kernel write (real-time write-back emulated)."""
    from tests.simmeter import SimMeter

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_STATE_PARENT")) as d:
        state = Path(d)
        alive = Path("/dev/shm") / f"meterd-bench-alive-{os.getpid()}"
        sm = SimMeter(state, sim={"current_a": 1.45, "power_factor": "0.95L"}, display={"kind": "dummy"},
                      power_quality={"enabled": pq}, supervision={"alive_file": str(alive)})
        sm.run(WARM_UP_S)
        _writeback(state)
        _mark(b"MARK-START")
        before = _written()
        done = 0
        while done < seconds:
            step = min(writeback_s, seconds - done)
            sm.run(step)
            done += step
            _writeback(state)
            if done % PROGRESS_S < step and done < seconds:  # a long run reports as it goes
                print(f"  after {done / 3600:.1f} h of meter time: {(_written() - before) * DAY_S / done / 1e6:.2f}"
                      " MB/day", file=sys.stderr, flush=True)
        written = _written() - before
        _mark(b"MARK-END")
        sm.close()
        alive.unlink(missing_ok=True)
    return written * DAY_S / seconds


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
    parser.add_argument("--trace", type=Path, help="strace output of this run, for attribution per file")
    args = parser.parse_args()
    if args.trace is not None and args.pq == "both":
        parser.error("--trace needs one --pq (on or off)")
    for pq in ((True, False) if args.pq == "both" else (args.pq == "on",)):
        per_day = run(pq, args.seconds, args.writeback_s)
        print(f"meterd_storage_writes_per_day_pq_{'on' if pq else 'off'}: {per_day / 1e6:.2f} MB"
              f" (/proc/self/io write_bytes - cancelled, {args.seconds} s of meter time after a"
              f" {WARM_UP_S}-s warm-up, write-back every {args.writeback_s} s of meter time; budget 5 MB)")
    if args.trace is not None:
        attribute(args.trace, args.seconds)


if __name__ == "__main__":
    main()
