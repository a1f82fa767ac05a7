"""`ticketbridge migration report`: incidents open in one system, not the other.

For each route with a migration `mode`, the ledger's newest ticket of every
incident in its `old` and `new` destination is compared. An incident is
listed when it is open on one side and missing or resolved on the other.
With `check`, every listed ticket is read from its system, so the report
also shows what a person changed there.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field

from ticketbridge.config.model import Config
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import Destination, DestinationError, TicketRef
from ticketbridge.ledger import Ledger
from ticketbridge.lifecycle import Ticket


@dataclass
class Side:
    destination: str
    ticket: str = ""
    state: str = "missing"
    checked: str = ""


@dataclass
class Gap:
    incident: str
    route: str
    old: Side
    new: Side
    notes: list[str] = field(default_factory=list)


async def run_report(config: Config, check: bool) -> list[Gap]:
    """Open the ledger, build the report, close it again."""
    ledger = await Ledger.open(config.ledger.path)
    try:
        return await build_report(config, ledger, check)
    finally:
        await ledger.close()


def pairs(config: Config) -> list[tuple[str, str, str]]:
    """(route, old, new) of each route with a migration mode, once per pair."""
    seen: dict[tuple[str, str], str] = {}
    for route in config.routes:
        if route.mode is not None and route.old and route.new:
            seen.setdefault((route.old, route.new), route.name)
    return [(name, old, new) for (old, new), name in seen.items()]


async def build_report(config: Config, ledger: Ledger, check: bool) -> list[Gap]:
    """Every incident open on one side of a migration pair and not on the other."""
    gaps: list[Gap] = []
    for route, old, new in pairs(config):
        tickets: dict[str, dict[str, Ticket]] = {}
        for destination, incident, ticket in await ledger.latest_tickets([old, new]):
            tickets.setdefault(incident, {})[destination] = ticket
        for incident, sides in tickets.items():
            old_side, new_side = _side(old, sides), _side(new, sides)
            if (old_side.state == "open") != (new_side.state == "open"):
                gaps.append(Gap(incident, route, old_side, new_side))
    if check:
        await _check(config, gaps, ledger)
    return gaps


def _side(destination: str, sides: dict[str, Ticket]) -> Side:
    ticket = sides.get(destination)
    if ticket is None:
        return Side(destination)
    return Side(destination, ticket.ticket_key, "open" if ticket.open else "resolved")


async def _check(config: Config, gaps: list[Gap], ledger: Ledger) -> None:
    """Read each listed ticket from its system (one GET each, read-only)."""
    names = {s.destination for g in gaps for s in (g.old, g.new) if s.ticket}
    clients = {n: build_destination(n, config.destinations[n]) for n in names}
    try:
        for gap in gaps:
            for side in (gap.old, gap.new):
                if side.ticket:
                    side.checked = await _read(clients[side.destination], ledger, side)
    finally:
        await asyncio.gather(*(c.close() for c in clients.values()))


async def _read(client: Destination, ledger: Ledger, side: Side) -> str:
    rows = await ledger.rows(
        "SELECT ticket_id, marker FROM tickets WHERE destination = ? "
        "AND ticket_key = ? ORDER BY id DESC LIMIT 1",
        (side.destination, side.ticket),
    )
    ref = TicketRef(str(rows[0]["ticket_id"]), side.ticket)
    try:
        view = await client.get(ref, str(rows[0]["marker"]))
    except DestinationError as exc:
        return f"error: {exc}"
    state = "open" if view.is_open else "resolved"
    return f"{state} ({view.status})"


def render(gaps: list[Gap], as_json: bool) -> str:
    if as_json:
        return json.dumps([asdict(g) for g in gaps], indent=2)
    if not gaps:
        return "no incident is open in one system and missing or resolved in the other"
    lines = []
    for gap in gaps:
        parts = [f"{gap.incident} (route {gap.route}):"]
        for label, side in (("old", gap.old), ("new", gap.new)):
            text = f"{label} {side.destination} {side.ticket or '-'} {side.state}"
            if side.checked:
                text += f", reads {side.checked}"
            parts.append(text)
        lines.append("  ".join(parts))
    return "\n".join(lines)
