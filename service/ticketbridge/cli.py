"""The `ticketbridge` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ticketbridge import __version__, logs
from ticketbridge.config import ConfigError, load_config, summarise

EXIT_CONFIG = 2


def config_path(value: str | None, alternative: str = "") -> Path:
    """The config file named by --config or TICKETBRIDGE_CONFIG; else exit 2."""
    chosen = value or os.environ.get("TICKETBRIDGE_CONFIG")
    if not chosen:
        print(
            f"no config: give --config FILE or set TICKETBRIDGE_CONFIG{alternative}",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_CONFIG)
    return Path(chosen)


def cmd_run(args: argparse.Namespace) -> int:
    from ticketbridge.daemon import run_daemon

    try:
        return asyncio.run(run_daemon(config_path(args.config)))
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG


def cmd_check_config(args: argparse.Namespace) -> int:
    path = config_path(args.file or args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG

    from ticketbridge.sources import source_problems

    problems = [
        problem
        for name, settings in config.sources.items()
        for problem in source_problems(name, settings)
    ]
    if problems:
        print_config_error(ConfigError(str(path), problems))
        return EXIT_CONFIG
    print(f"{path}: OK")
    print(summarise(config))
    return 0


def print_config_error(exc: ConfigError) -> None:
    print(f"{exc.source}: invalid configuration", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_migration_report(args: argparse.Namespace) -> int:
    from ticketbridge.migration_report import pairs, render, run_report

    path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_CONFIG
    if not pairs(config):
        print(f"{path}: no route has a migration mode (old, new, mirror, shadow)")
        return EXIT_CONFIG
    gaps = asyncio.run(run_report(config, check=args.check))
    print(render(gaps, args.json))
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    """Run one operator command (status, events, route) against the config.

    `status` and `events` take `--ledger PATH` instead, so a config file
    broken on disk does not lock operators out while the daemon runs on.
    """
    from ticketbridge.operator import commands
    from ticketbridge.operator.access import OperatorError, Target

    # Only status and events have --ledger; route needs the config's routes.
    around = (
        "; or read the ledger without it: --ledger PATH" if "ledger" in args else ""
    )
    try:
        if getattr(args, "ledger", None) is not None:
            target = Target(Path(args.ledger))
            return int(asyncio.run(args.func_async(target, args)))
        config = load_config(config_path(args.config, around))
        if args.func_async is commands.route_command:
            return commands.route_command(config, args)
        return int(asyncio.run(args.func_async(Target.of(config), args)))
    except ConfigError as exc:
        print_config_error(exc)
        if around:
            print(
                "the config cannot be loaded; to read the ledger without it, "
                "give --ledger PATH (the daemon's ledger.path)",
                file=sys.stderr,
            )
        return EXIT_CONFIG
    except OperatorError as exc:
        print(f"ticketbridge: {exc}", file=sys.stderr)
        return commands.EXIT_BAD_REQUEST


def cmd_notify(args: argparse.Namespace) -> int:
    from ticketbridge.sources.notify import run_notify

    return run_notify(args)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from ticketbridge.sandbox.app import main_sandbox

    return main_sandbox(args.options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketbridge",
        description="Forward monitoring events to ticketing systems, verified.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--config", help="config file (or TICKETBRIDGE_CONFIG)")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the daemon")
    run.set_defaults(func=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file")
    check.add_argument("file", nargs="?")
    check.set_defaults(func=cmd_check_config)

    from ticketbridge.sources.notify import add_notify_arguments

    notify = commands.add_parser(
        "notify", help="write one event file from Nagios/Icinga notification macros"
    )
    add_notify_arguments(notify)
    notify.set_defaults(func=cmd_notify)

    migration = commands.add_parser("migration", help="migration between systems")
    migration_commands = migration.add_subparsers(dest="migration", required=True)
    report = migration_commands.add_parser(
        "report", help="incidents open in one system, missing or resolved in the other"
    )
    report.add_argument("--json", action="store_true", help="print JSON")
    report.add_argument(
        "--check", action="store_true", help="read each listed ticket from its system"
    )
    report.set_defaults(func=cmd_migration_report)
    add_operator_commands(commands)

    # The sandbox parses its own options (`ticketbridge sandbox --help`).
    sandbox = commands.add_parser(
        "sandbox", help="serve a fake ticketing system", add_help=False
    )
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def add_operator_commands(commands: Any) -> None:
    """status, events list|show|retry|skip, route: see operator/commands.py."""
    from ticketbridge.ledger import STATES
    from ticketbridge.operator import commands as op
    from ticketbridge.operator.status import DEFAULT_MAX_PENDING_AGE

    # --config and --json may also follow the command, as operators type them.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help="config file")
    common.add_argument("--json", action="store_true", help="JSON output")

    def command(parent: Any, name: str, func: Any, text: str) -> Any:
        parser = parent.add_parser(name, parents=[common], help=text)
        parser.set_defaults(func=cmd_operator, func_async=func)
        if func is not op.route_command:
            parser.add_argument(
                "--ledger",
                metavar="PATH",
                help="read this ledger file without the config",
            )
        return parser

    status = command(commands, "status", op.status_command, "is anything wrong?")
    status.add_argument(
        "--max-pending-age",
        type=float,
        default=DEFAULT_MAX_PENDING_AGE,
        metavar="SECONDS",
        help="an unfinished delivery older than this needs attention (900)",
    )
    status.add_argument(
        "--poll-interval",
        type=float,
        metavar="SECONDS",
        help="judge sources late against this (the config's poll_interval)",
    )

    events = commands.add_parser("events", help="list, show, retry, skip events")
    actions = events.add_subparsers(dest="action", required=True)
    listing = command(actions, "list", op.list_command, "list deliveries")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--destination")
    listing.add_argument("--limit", type=int, default=50)

    show = command(actions, "show", op.show_command, "one event's whole history")
    show.add_argument("id", help="ledger id or source:source_event_id")

    retry = command(actions, "retry", op.retry_command, "send deliveries again")
    retry.add_argument("ids", nargs="*", metavar="ID")
    retry.add_argument("--dead", action="store_true", help="every dead delivery")
    retry.add_argument("--destination")

    skip = command(actions, "skip", op.skip_command, "give deliveries up")
    skip.add_argument("ids", nargs="+", metavar="ID")
    skip.add_argument("--reason", required=True)
    skip.add_argument("--destination")

    route = command(commands, "route", op.route_command, "dry-run one event file")
    route.add_argument("file", metavar="EVENT.json")
    route.add_argument("--source", help="the spool source the file is for")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "sandbox":
        args.options = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logs.setup(args.log_level, args.log_format)
    logging.getLogger(__name__).debug("command %s", args.command)
    try:
        code = int(args.func(args))
        # Flush here, not at exit, so a closed pipe is caught below.
        sys.stdout.flush()
    except BrokenPipeError:
        # Output cut short by `| head`: not an error. Python would complain
        # again when it flushes stdout at exit, so point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code
