"""One meter per state directory: an exclusive ``flock`` held for the life of the meterd process.

Two meters on one state directory would write the same databases and restore from each other's
energy journal. meterd therefore locks ``<state_dir>/meterd.lock`` and, when it has one, the
lock file beside its energy journal (``<journal>.lock``: the journal lives outside the state
directory, under ``/dev/shm`` or ``/run/meterd``) before it opens anything, and writes its pid
into each lock file. A second meterd finds the locks held and refuses to start, naming the pid
read from the lock file.

The kernel drops an ``flock`` when its holder exits, however it exits (``kill -9`` included), so
a crashed meter never leaves a stale lock behind (only a file nobody holds, which the next meter
takes). A clean stop removes the files while still holding them; a starter that locked a file
just removed opens the name again, so two meters never hold locks on different files of one name.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "meterd.lock"


class StateLockError(Exception):
    """Another process holds the lock: ``path`` is the lock file, ``pid`` its holder (None when
    the file names none)."""

    def __init__(self, what: str, path: Path, pid: int | None) -> None:
        holder = f"another meterd (pid {pid})" if pid is not None else "another meterd"
        super().__init__(f"{what} is in use by {holder}: lock {path} is held; stop that meter first")
        self.path = path
        self.pid = pid


class FileLock:
    """An exclusive, non-blocking ``flock`` on one file, with the holder's pid written in it."""

    def __init__(self, path: Path, what: str) -> None:
        """Lock ``path`` (created 0644 when missing) for ``what`` (named in the error), or raise
        :class:`StateLockError` when another process holds it."""
        self.path = path
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise StateLockError(what, path, holder_pid(path)) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # the holder removed this file as we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """True until :meth:`release`."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock; idempotent."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if _same_file(fd, self.path):
                self.path.unlink()
        finally:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """True when ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def holder_pid(path: Path) -> int | None:
    """The pid written in lock file ``path``, or None when it names none."""
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class StateLock:
    """The state directory's lock and, when there is a journal, the journal's."""

    def __init__(self, state_dir: Path, journal: Path | None = None) -> None:
        """Take both locks or raise :class:`StateLockError`; nothing stays held after a refusal.
        The directories are created when missing; a journal directory that cannot be created or
        written is skipped (the daemon then runs without a journal, so there is none to share)."""
        state_dir.mkdir(parents=True, exist_ok=True)
        self.locks: list[FileLock] = [FileLock(state_dir / LOCK_NAME, f"state directory {state_dir}")]
        if journal is not None:
            try:
                journal.parent.mkdir(parents=True, exist_ok=True)
                self.locks.append(FileLock(journal.with_name(journal.name + ".lock"), f"energy journal {journal}"))
            except StateLockError:
                self.release()
                raise
            except OSError:
                pass  # no journal directory: the meter runs without a journal, nothing to share

    def release(self) -> None:
        """Drop every lock (the journal's first); idempotent."""
        for lock in reversed(self.locks):
            lock.release()


def probe(state_dir: Path) -> int | None:
    """The pid of the meterd holding ``state_dir`` (0 when the holder wrote none), or None when
    no process holds it. Takes and drops the lock to find out; creates nothing."""
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder_pid(path) or 0
    finally:
        os.close(fd)
    return None
