"""Opening the daemon's ledger from a command, and naming events in it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticketbridge import ledger_report
from ticketbridge.config import Config
from ticketbridge.ledger import Ledger


class OperatorError(Exception):
    """A command that cannot do what was asked; the message says why (exit 2)."""


@dataclass(frozen=True)
class Target:
    """What a command reads: the ledger, and the config unless `--ledger` was given.

    Without a config (a broken file must not lock operators out while the
    daemon runs on its old one) the sources and destinations are those the
    ledger knows.
    """

    ledger: Path
    config: Config | None = None

    @classmethod
    def of(cls, config: Config) -> Target:
        return cls(Path(config.ledger.path), config)


async def open_ledger(target: Target) -> Ledger:
    """The daemon's ledger file; it must exist already (the daemon makes it).

    WAL and the ledger's busy timeout make this safe beside a running daemon:
    reads never wait, and each repair is one short write transaction.
    """
    path = target.ledger
    if not await asyncio.to_thread(path.is_file):
        where = "ledger.path in the config" if target.config else "--ledger"
        raise OperatorError(
            f"no ledger at {path}: the daemon creates it when it first starts "
            f"(check {where})"
        )
    return await Ledger.open(path)


async def find_events(ledger: Ledger, refs: Sequence[str]) -> list[dict[str, Any]]:
    """Each event named by ledger id or `source:source_event_id`; all or error."""
    found = []
    for ref in refs:
        event = await ledger_report.find_event(ledger, ref)
        if event is None:
            raise OperatorError(
                f"unknown event {ref!r}: give the ledger id (a number) or "
                "source:source_event_id as in the logs' event= field"
            )
        found.append(event)
    return found


def event_ref(row: dict[str, Any]) -> str:
    """How logs name an event: `source:source_event_id`."""
    return f"{row['source']}:{row['source_event_id']}"
