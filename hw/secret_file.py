"""Files that hold secrets (DLMS keys, STS decoder keys, CIU pair keys): private reads, atomic writes.

:func:`read_secret_text` refuses a file that its group or others may read (any of mode 0o077),
so a key left world-readable is found at start-up instead of being used. :func:`write_secret_text`
replaces a file atomically with mode 0600: a temporary file beside it, written and fsynced, renamed
over the old one, then the directory fsynced, so a power cut leaves either the old or the new file.
Error messages name the file and the reason, never its content.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from hw.errors import HwError

#: The mode every secret file is written with (owner read and write only).
SECRET_MODE = 0o600


class SecretFileError(HwError, OSError):
    """A secret file cannot be read or written, or is readable by group or others (an ``OSError``,
    as the file errors it replaces)."""


class SecretFileMissing(SecretFileError, FileNotFoundError):
    """The secret file does not exist."""


class SecretFileTooOpen(SecretFileError):
    """The secret file is readable or writable by group or others (``mode`` holds its permission bits)."""

    def __init__(self, path: Path, mode: int) -> None:
        super().__init__(f"{path}: mode {mode:o} is too open (group or others have access); use chmod 600")
        self.mode = mode


def read_secret_bytes(path: str | Path) -> bytes:
    """The content of a secret file whose mode is 0600 or stricter.

    Raises :class:`SecretFileMissing` when there is no file, :class:`SecretFileTooOpen` when group
    or others have any access, and :class:`SecretFileError` when it cannot be read.
    The mode is checked on the opened file, so it is the mode of what is read.
    """
    file = Path(path)
    try:
        fd = os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretFileMissing(f"{file}: no such file") from None
    except OSError as exc:
        raise SecretFileError(f"{file}: cannot open ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode & 0o777
        if mode & 0o077:
            raise SecretFileTooOpen(file, mode)
        try:
            return fh.read()
        except OSError as exc:
            raise SecretFileError(f"{file}: cannot read ({exc.strerror})") from None


def read_secret_text(path: str | Path, encoding: str = "utf-8") -> str:
    """The text of a secret file whose mode is 0600 or stricter (see :func:`read_secret_bytes`;
    :class:`SecretFileError` also when it cannot be decoded)."""
    data = read_secret_bytes(path)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise SecretFileError(f"{Path(path)}: not {encoding} text") from None


def write_secret_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` atomically by ``text`` with mode 0600 (see :func:`write_secret_bytes`)."""
    write_secret_bytes(path, text.encode(encoding))


def write_secret_bytes(path: str | Path, data: bytes) -> None:
    """Replace ``path`` atomically by ``data`` with mode 0600, creating missing parent directories.

    Temporary file ``<name>.tmp`` beside it, fsync, rename, fsync of the directory; on an error
    the old file is left as it was and :class:`SecretFileError` names the file.
    """
    file = Path(path)
    tmp = file.with_name(file.name + ".tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # a stale one may carry another mode: O_CREAT would keep it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, SECRET_MODE)
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), SECRET_MODE)  # whatever the umask
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_directory(file.parent)
    except OSError as exc:
        raise SecretFileError(f"{file}: cannot write ({exc.strerror or exc})") from exc


def remove_secret_file(path: str | Path) -> None:
    """Remove ``path`` durably (unlink, then fsync of its directory); nothing when it is gone."""
    file = Path(path)
    try:
        file.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SecretFileError(f"{file}: cannot remove ({exc.strerror or exc})") from exc
    try:
        _fsync_directory(file.parent)
    except OSError as exc:
        raise SecretFileError(f"{file.parent}: cannot sync ({exc.strerror or exc})") from exc


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (fsync of the directory itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
