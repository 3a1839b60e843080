"""Every command of README.md's ``sh`` blocks, run as printed against a simulated meter started
the way `make run` starts it.

The commands run in a scratch directory laid out like the source tree: ``config/`` is a copy of
the repository's (with the two changes below), ``var/run-sim`` the state directory of a
``python -m meterd.app.simrun --config config/sim.toml --state-dir var/run-sim`` (the Makefile's
``run`` recipe), and the venv's ``bin`` first on ``PATH`` (what ``source .venv/bin/activate``
does). Each line runs in its own ``bash -c``; it must exit 0 and print no traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_processes import DEADLINE_S, wait_until
from tests.meterd_process import REPO

README = REPO / "README.md"

# Lines not run, each with its reason. Every entry must still be in README.md.
SKIPPED = {
    "make run": "starts the meter; the test starts it with the Makefile's run recipe",
    "make test": "runs the test suite, this test included",
    "source .venv/bin/activate": "the test puts the venv's bin directory first on PATH",
}

# The scratch copy of config/ differs from the repository's only here, so that tests running in
# parallel never collide: DLMS and the network API on free TCP ports, and the power-quality analysis (~6 % of a core,
# used by no README command) off.
CONFIG_CHANGES = {
    "sim.toml": [(r"(?m)^tcp_port = .*$", "tcp_port = 0"),
                 (r"(?m)^listen = .*$", 'listen = "127.0.0.1:0"'),
                 (r"(?m)^(\[power_quality\]\s*\nenabled = )true", r"\1false")],
}


def sh_commands(text: str) -> list[str]:
    """The command lines of the ``sh`` fenced blocks, in order (blank and comment lines left out)."""
    commands: list[str] = []
    for block in re.findall(r"(?ms)^```sh\n(.*?)^```", text):
        commands += [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return commands


def command_word(line: str) -> str:
    """The line without its trailing comment (for matching against :data:`SKIPPED`)."""
    return re.sub(r"\s+#.*$", "", line).strip()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch source-tree layout with the simulated meter running in ``var/run-sim``."""
    work = tmp_path_factory.mktemp("readme")
    shutil.copytree(REPO / "config", work / "config")
    for name, changes in CONFIG_CHANGES.items():
        path = work / "config" / name
        text = path.read_text()
        for pattern, replacement in changes:
            text, count = re.subn(pattern, replacement, text)
            assert count == 1, f"{name}: {pattern} no longer matches"
        path.write_text(text)
    env = environment()
    log = (work / "simrun.log").open("wb")
    launcher = subprocess.Popen([sys.executable, "-m", "meterd.app.simrun", "--config", "config/sim.toml",
                                 "--state-dir", "var/run-sim"], cwd=work, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until("make run's meter is up",
                   lambda: "Stop with Ctrl-C" in (work / "simrun.log").read_text() or launcher.poll() is not None)
        assert launcher.poll() is None, (work / "simrun.log").read_text()
        wait_until("the CIU keypad is there", lambda: (work / "var/run-sim/ciu/keys.sock").exists())
        yield work
    finally:
        launcher.terminate()
        launcher.wait(timeout=DEADLINE_S)
        log.close()


def environment() -> dict[str, str]:
    """The second terminal of README: the venv active, this source tree importable, no socket or
    config named by the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("METERD_SOCKET", "METERD_CONFIG")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env["METERD_LOG_LEVEL"] = "WARNING"
    return env


def test_readme_has_commands_and_every_skip_is_still_there() -> None:
    commands = [command_word(line) for line in sh_commands(README.read_text())]
    assert sum(c.startswith("meterctl") for c in commands) >= 5, commands
    for skipped in SKIPPED:
        assert skipped in commands, f"{skipped!r} is no longer in README.md: drop it from SKIPPED"


def test_every_readme_command_runs_as_printed(workdir: Path) -> None:
    env = environment()
    failures: list[str] = []
    for line in sh_commands(README.read_text()):
        if command_word(line) in SKIPPED:
            continue
        started = time.monotonic()
        out = subprocess.run(["bash", "-c", line], cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=DEADLINE_S, stdin=subprocess.DEVNULL)
        took = time.monotonic() - started
        if out.returncode != 0 or "Traceback" in out.stdout + out.stderr:
            failures.append(f"$ {line}\n  exit {out.returncode} after {took:.1f} s\n{out.stdout}{out.stderr}")
    assert not failures, "\n".join(failures)


def test_the_socket_make_run_prints_works_from_anywhere(workdir: Path, tmp_path: Path) -> None:
    printed = re.search(r"(?m)^  export METERD_SOCKET=(\S+)", (workdir / "simrun.log").read_text())
    assert printed and Path(printed.group(1)) == (workdir / "var/run-sim/meterd.sock").resolve()
    out = subprocess.run(["bash", "-c", f"{printed.group(0).strip()}; meterctl status --json"], cwd=tmp_path,
                         env=environment(), capture_output=True, text=True, timeout=DEADLINE_S)
    assert out.returncode == 0 and '"serial": "PMM1221000001"' in out.stdout, out.stderr
