"""Secret files (hw.secret_file): reads refuse group/other access, writes are atomic with mode 0600;
and the three key files of the meter and the CIU that go through it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ciu.app import CiuConfigError, read_pair_key, write_pair_key
from hw.errors import HwError
from hw.secret_file import (
    SecretFileError,
    SecretFileMissing,
    SecretFileTooOpen,
    read_secret_text,
    write_secret_text,
)
from meterd.core.sts.errors import StsStateError
from meterd.store.sts_store import load_key_register


def test_write_then_read_round_trip_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "secret.txt"
    write_secret_text(path, "k=1\n")
    assert read_secret_text(path) == "k=1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.txt"]  # no temporary file left


def test_write_replaces_a_file_and_ignores_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0o277)  # would strip the owner's write bit
    try:
        write_secret_text(path, "new")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secret_text(path) == "new"


def test_a_stale_temporary_file_does_not_leak_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    stale = tmp_path / "secret.txt.tmp"
    stale.write_text("half")
    stale.chmod(0o666)
    write_secret_text(path, "whole")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not stale.exists()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o666, 0o620])
def test_read_refuses_any_group_or_other_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret.txt"
    write_secret_text(path, "s3cr3t")
    path.chmod(mode)
    with pytest.raises(SecretFileTooOpen, match=f"mode {mode:o} is too open") as caught:
        read_secret_text(path)
    assert caught.value.mode == mode and "s3cr3t" not in str(caught.value)


def test_stricter_modes_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "secret.txt"
    write_secret_text(path, "x")
    path.chmod(0o400)
    assert read_secret_text(path) == "x"


def test_missing_file_and_error_tree(tmp_path: Path) -> None:
    with pytest.raises(SecretFileMissing, match="nothing.txt"):
        read_secret_text(tmp_path / "nothing.txt")
    assert issubclass(SecretFileMissing, FileNotFoundError)
    assert issubclass(SecretFileTooOpen, SecretFileError) and issubclass(SecretFileError, HwError)
    assert issubclass(SecretFileError, OSError)  # write failures stay OSErrors for their callers


def test_undecodable_content_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.bin"
    write_secret_text(path, "x")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(SecretFileError, match="not ascii text"):
        read_secret_text(path, encoding="ascii")


def test_write_failure_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SecretFileError, match="cannot write"):
        write_secret_text(blocker / "secret.txt", "x")  # parent is a file


def test_ciu_pair_key_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "pair.key"
    write_pair_key(path, bytes(range(32)))
    path.chmod(0o644)
    with pytest.raises(CiuConfigError, match="too open"):
        read_pair_key(path)
    path.chmod(0o600)
    path.write_text("zz\n")
    with pytest.raises(CiuConfigError, match="not hexadecimal"):
        read_pair_key(path)
    path.write_text("00" * 16)
    with pytest.raises(CiuConfigError, match="32 bytes"):
        read_pair_key(path)


def test_sts_keys_file_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "sts-keys.toml"
    with pytest.raises(StsStateError, match="no such file"):
        load_key_register(path)
    write_secret_text(path, "[decoder]\n")
    path.chmod(0o644)
    with pytest.raises(StsStateError, match="too open"):
        load_key_register(path)
    path.chmod(0o600)
    path.write_text("not toml [")
    with pytest.raises(StsStateError, match="no valid"):
        load_key_register(path)
