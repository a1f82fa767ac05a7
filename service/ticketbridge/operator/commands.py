"""The operator commands as the command line runs them: target in, exit code out.

Exit codes: 0 done (status: nothing needs attention), 1 status needs
attention or a repair changed nothing, 2 the request itself is wrong
(unknown event, no ledger, bad config, bad event file).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from ticketbridge.config import Config
from ticketbridge.ledger import Ledger
from ticketbridge.operator import events, route, status
from ticketbridge.operator.access import OperatorError, Target, open_ledger

EXIT_OK = 0
EXIT_ATTENTION = 1
EXIT_BAD_REQUEST = 2


async def status_command(target: Target, args: argparse.Namespace) -> int:
    async def report(ledger: Ledger) -> int:
        found = await status.gather(
            ledger,
            target.config,
            time.time(),
            args.max_pending_age,
            args.poll_interval,
        )
        print(status.render(found, args.json))
        return EXIT_OK if found.ok else EXIT_ATTENTION

    return await _with_ledger(target, report)


async def list_command(target: Target, args: argparse.Namespace) -> int:
    async def report(ledger: Ledger) -> int:
        rows = await events.list_deliveries(
            ledger,
            time.time(),
            state=args.state,
            destination=args.destination,
            limit=args.limit,
        )
        print(events.render_list(rows, args.json))
        return EXIT_OK

    return await _with_ledger(target, report)


async def show_command(target: Target, args: argparse.Namespace) -> int:
    async def report(ledger: Ledger) -> int:
        print(events.render_show(await events.show_event(ledger, args.id), args.json))
        return EXIT_OK

    return await _with_ledger(target, report)


async def retry_command(target: Target, args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.dead):
        raise OperatorError("give event IDs or --dead (not both)")

    async def repair(ledger: Ledger) -> int:
        rows = await events.retry(
            ledger, args.ids, all_dead=args.dead, destination=args.destination
        )
        print(events.render_changed(rows, "retried", args.json))
        return EXIT_OK if rows else EXIT_ATTENTION

    return await _with_ledger(target, repair)


async def skip_command(target: Target, args: argparse.Namespace) -> int:
    async def repair(ledger: Ledger) -> int:
        rows = await events.skip(ledger, args.ids, args.reason, args.destination)
        print(events.render_changed(rows, "skipped", args.json))
        return EXIT_OK if rows else EXIT_ATTENTION

    return await _with_ledger(target, repair)


def route_command(config: Config, args: argparse.Namespace) -> int:
    source = route.pick_source(config, args.source)
    shown = asyncio.run(route.preview(config, Path(args.file), source))
    print(route.render(shown, args.json))
    return EXIT_OK if shown["valid"] else EXIT_BAD_REQUEST


async def _with_ledger(target: Target, work: Callable[[Ledger], Awaitable[int]]) -> int:
    ledger = await open_ledger(target)
    try:
        return await work(ledger)
    finally:
        await ledger.close()
