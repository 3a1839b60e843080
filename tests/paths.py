"""Where the tests find the repository's files, wherever a test module sits under tests/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
"""The repository root (where pyproject.toml is)."""

DATA = REPO / "tests" / "data"
"""Test vectors and recorded reference outputs."""

GOLDEN = REPO / "tests" / "golden"
"""Golden images of the meter LCD and the CIU screen."""

SIM_CONFIG = REPO / "config" / "sim.toml"
"""The simulated meter's configuration, as `make run` uses it."""
