"""The architecture and typing rules hold: import-linter layer contracts, mypy strict on
meterd, hw and ciu, ruff on everything (the same checks as `make lint`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.paths import REPO

BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_layers_are_kept():
    out = run(str(BIN / "lint-imports"), "--no-cache")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "BROKEN" not in out.stdout


def test_meterd_hw_and_ciu_are_strictly_typed():
    # incremental, with its cache in the git-ignored build directory: mypy re-checks what
    # changed since the last run and whatever depends on it (a fresh checkout checks it all)
    out = run(str(BIN / "mypy"), "--cache-dir", str(REPO / "build" / "mypy-cache"), "meterd", "hw", "ciu")
    assert out.returncode == 0, out.stdout[-3000:]


def test_ruff_is_clean():
    out = run(str(BIN / "ruff"), "check", "--no-cache", "meterd", "hw", "ciu", "tests", "bench")
    assert out.returncode == 0, out.stdout[-3000:]
