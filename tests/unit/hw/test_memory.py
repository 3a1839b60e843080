"""The allocator policy (hw.memory): one set of values for mallopt, the systemd unit and the launcher."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from hw.memory import MALLOC_POLICY, apply_malloc_policy, malloc_env, trim
from tests.paths import REPO

GLIBC = platform.libc_ver()[0] == "glibc"


def unit_environment(path: Path) -> dict[str, str]:
    """``Environment=`` assignments of a systemd unit."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("Environment="):
            for item in line.removeprefix("Environment=").split():
                name, _, value = item.partition("=")
                env[name] = value
    return env


def test_the_systemd_unit_sets_the_policy_meterd_applies() -> None:
    env = unit_environment(REPO / "systemd" / "meterd.service")
    assert {k: v for k, v in env.items() if k.startswith("MALLOC_")} == malloc_env()
    assert malloc_env() == {"MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "8388608",
                            "MALLOC_MMAP_THRESHOLD_": "8388608"}
    assert set(malloc_env()) == set(MALLOC_POLICY)


def test_the_simulated_launcher_starts_meterd_with_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    from meterd.app import simrun

    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")  # the launcher's own environment does not win
    seen: dict[str, object] = {}

    class FakePopen:
        def __init__(self, cmd: list[str], env: dict[str, str] | None = None, **_kw: object) -> None:
            seen["env"] = env

    monkeypatch.setattr(simrun.subprocess, "Popen", FakePopen)
    simrun.spawn("meterd", ["true"], env=simrun.meterd_env())
    env = seen["env"]
    assert isinstance(env, dict) and {k: env[k] for k in malloc_env()} == malloc_env()
    assert env["PATH"] == simrun.os.environ["PATH"]


@pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")
def test_policy_and_trim_through_glibc() -> None:
    assert apply_malloc_policy() is True
    blocks = [bytearray(200) for _ in range(100_000)]  # 20 MB of small blocks on the heap
    del blocks
    assert isinstance(trim(), bool)
