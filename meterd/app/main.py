"""meterd command line: ``meterd run --config FILE [--speed N] [--state-dir DIR]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from meterd.core.errors import ConfigError


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
    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("--config", default=os.environ.get("METERD_CONFIG", "/etc/meterd/meterd.toml"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from meterd.app.features import load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"meterd: config error: {exc}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(f"{args.config}: ok")
        return 0
    setup_logging(args.log_level)
    from meterd.app.daemon import Daemon
    from meterd.runtime.state_lock import StateLockError

    daemon = Daemon(cfg, speed=args.speed, state_dir=args.state_dir)
    try:
        return asyncio.run(daemon.run())
    except ConfigError as exc:
        print(f"meterd: config error: {exc}", file=sys.stderr)
        return 2
    except StateLockError as exc:  # another meterd runs on this state directory
        print(f"meterd: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
