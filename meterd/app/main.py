"""meterd command line: ``meterd run --config FILE [--speed N] [--state-dir DIR]``,
``meterd commission --config FILE [--state-dir DIR] [--force]``,
``meterd check-config --config FILE [--state-dir DIR] [--file-only]``.

``check-config`` checks the file and everything ``run`` needs from the host
(:mod:`meterd.app.preflight`: state directory, serial ports, key files, the TCP port), one line
per problem naming the file, the key and the reason, exit status 2; ``--file-only`` checks the
file alone (an image build, away from the meter). ``run`` stops with one line and exit status 2
only on a configuration error; an interface that fails (a serial port missing, in use or
refusing its RS-485 mode, unusable DLMS keys, a missing LCD), at start or later, is switched off
by the running meter with one line, an event and its reason in ``meterctl status``, and
metering goes on (:mod:`meterd.app.preflight`).

meterd sets its own umask (0027) first: every file it makes (databases, journal, register file)
is readable by its group at most, whoever starts it. A state directory that is missing and cannot
be made, or is not writable, or holds no copy of the registers of a meter that was not
commissioned, ends meterd at start with one line and exit status 2
(:class:`~meterd.store.energy_copies.StorageUnavailable`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING

from meterd.core.errors import ConfigError, StateError

if TYPE_CHECKING:
    from meterd.app.config import Config

UMASK = 0o027


class JournalFormatter(logging.Formatter):
    """``<N>`` syslog priority prefixes, which journald turns into message priorities."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{record.name}: {super().format(record)}"


def setup_logging(level: str) -> None:
    """stderr logging: journald-friendly under systemd, timestamped otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meterd", description="PMM1221 meter daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the meter")
    run.add_argument("--config", default=os.environ.get("METERD_CONFIG", "/etc/meterd/meterd.toml"))
    run.add_argument("--speed", type=float, help="simulator speed (x real time; 0 = as fast as possible)")
    run.add_argument("--state-dir", help="override [storage] state_dir")
    run.add_argument("--log-level", default=os.environ.get("METERD_LOG_LEVEL", "INFO"))
    check = sub.add_parser("check-config", help="check a configuration file and what the meter needs from the host")
    check.add_argument("--config", default=os.environ.get("METERD_CONFIG", "/etc/meterd/meterd.toml"))
    check.add_argument("--state-dir", help="override [storage] state_dir")
    check.add_argument("--file-only", action="store_true",
                       help="check the file alone, not the host (devices, key files, state directory, ports)")
    new = sub.add_parser("commission", help="commission the meter as new: its registers start from zero")
    new.add_argument("--config", default=os.environ.get("METERD_CONFIG", "/etc/meterd/meterd.toml"))
    new.add_argument("--state-dir", help="override [storage] state_dir")
    new.add_argument("--force", action="store_true",
                     help="also when the state directory holds registers (they are moved aside, not deleted)")
    return parser


def commission_meter(cfg: Config, state_dir: str | None, force: bool) -> int:
    """``meterd commission``: write the commissioning record (the next start begins at zero and
    records the event "meter commissioned")."""
    from meterd.app.daemon import Daemon
    from meterd.store.energy_copies import commission

    daemon = Daemon(cfg, state_dir=state_dir)
    try:
        record = commission(daemon.cfg.state_dir, daemon.cfg.meter.serial, daemon.journal_path(),
                            f"meterd commission{' --force' if force else ''}", force=force)
    except StateError as exc:
        print(f"meterd: commission refused: {exc}", file=sys.stderr)
        return 2
    print(f"meter {record.serial} commissioned as new in {daemon.cfg.state_dir} (id {record.id}): "
          "its registers start from zero at the next start")
    return 0


def with_state_dir(cfg: Config, state_dir: str | None) -> Config:
    """``cfg`` with ``[storage] state_dir`` replaced by the command line's, when given."""
    if state_dir is None:
        return cfg
    import dataclasses

    return dataclasses.replace(cfg, storage=dataclasses.replace(cfg.storage, state_dir=state_dir))


def check_config(cfg: Config, file_only: bool) -> int:
    """``meterd check-config``: ``FILE: ok``, or one line per problem and exit status 2."""
    if not file_only:
        from meterd.app.preflight import check_all

        problems = check_all(cfg)
        for problem in problems:
            print(f"meterd: {problem.line(cfg)}", file=sys.stderr)
        if problems:
            return 2
    print(f"{cfg.path}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    os.umask(UMASK)
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from hw.memory import apply_malloc_policy

        apply_malloc_policy()  # before the daemon's modules, arrays and threads take memory
    from meterd.app.features import load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"meterd: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        return check_config(with_state_dir(cfg, args.state_dir), args.file_only)
    if args.command == "commission":
        setup_logging("ERROR")
        return commission_meter(cfg, args.state_dir, args.force)
    from meterd.app import preflight

    cfg = with_state_dir(cfg, args.state_dir)
    fatal = preflight.run_checks(cfg)
    for problem in fatal:
        print(f"meterd: {problem.line(cfg)}", file=sys.stderr)
    if fatal:
        return 2
    setup_logging(args.log_level)
    from meterd.app.daemon import Daemon
    from meterd.runtime.state_lock import StateLockError
    from meterd.store.energy_copies import StorageUnavailable

    daemon = Daemon(cfg, speed=args.speed)
    try:
        return asyncio.run(daemon.run())
    except ConfigError as exc:
        print(f"meterd: config error: {exc}", file=sys.stderr)
        return 2
    except StateLockError as exc:  # another meterd runs on this state directory
        print(f"meterd: {exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        print(f"meterd: cannot keep the energy registers: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
