"""The `ticketbridge` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from ticketbridge import __version__, logs
from ticketbridge.config import ConfigError, load_config, summarise

EXIT_CONFIG = 2


def config_path(value: str | None) -> Path:
    chosen = value or os.environ.get("TICKETBRIDGE_CONFIG")
    if not chosen:
        raise SystemExit("no config: give --config FILE or set TICKETBRIDGE_CONFIG")
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
    print(f"{path}: OK")
    print(summarise(config))
    return 0


def print_config_error(exc: ConfigError) -> None:
    print(f"{exc.source}: invalid configuration", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def cmd_notify(args: argparse.Namespace) -> int:
    from ticketbridge.sources.notify import run_notify

    return run_notify(args)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from ticketbridge.sandbox.app import main_sandbox

    argv = ["--host", args.host, "--port", str(args.port)]
    for project in args.projects or []:
        argv += ["--project", project]
    if args.faults:
        argv += ["--faults", args.faults]
    return main_sandbox(argv)


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

    sandbox = commands.add_parser("sandbox", help="serve a fake ticketing system")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    sandbox.add_argument(
        "--project", action="append", dest="projects", help="Jira project key (OPS)"
    )
    sandbox.add_argument(
        "--faults", metavar="FILE", help="inject faults at the rates this file sets"
    )
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level, args.log_format)
    logging.getLogger(__name__).debug("command %s", args.command)
    return int(args.func(args))
