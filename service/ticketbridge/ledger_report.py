"""Read-only questions the operator commands ask the ledger.

The SQL stays next to the ledger's own; every query is a plain read, safe
while the daemon writes (WAL readers never block the writer).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ticketbridge.ledger import Ledger, sql_list


async def source_statuses(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """The poll record of each source, by name."""
    rows = await ledger.rows("SELECT * FROM source_status ORDER BY source")
    return {row["source"]: row for row in rows}


async def destination_statuses(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """The circuit state, last error and probes of each destination, by name."""
    rows = await ledger.rows("SELECT * FROM destination_status ORDER BY destination")
    for row in rows:
        row["probes"] = json.loads(row["probes"]) if row["probes"] else None
    return {row["destination"]: row for row in rows}


async def deliveries(
    ledger: Ledger,
    *,
    state: str | None = None,
    destination: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Deliveries with their event, most recently changed first."""
    where, params = _filters(state=state, destination=destination)
    return await ledger.rows(
        f"{_DELIVERY_ROWS} {where} ORDER BY d.updated_at DESC, d.id DESC LIMIT ?",
        (*params, limit),
    )


async def find_event(ledger: Ledger, ref: str) -> dict[str, Any] | None:
    """An event by ledger id (`12`) or by `source:source_event_id`."""
    if ref.isdigit():
        rows = await ledger.rows("SELECT * FROM events WHERE id = ?", (int(ref),))
    else:
        source, sep, source_event_id = ref.partition(":")
        if not sep:
            return None
        rows = await ledger.rows(
            "SELECT * FROM events WHERE source = ? AND source_event_id = ?",
            (source, source_event_id),
        )
    if not rows:
        return None
    event = rows[0]
    event["record"] = json.loads(event["record"])
    return event


async def event_deliveries(
    ledger: Ledger,
    event_ids: Sequence[int],
    *,
    destination: str | None = None,
    states: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The deliveries of these events, with the state of their ticket."""
    marks = ",".join("?" for _ in event_ids) or "NULL"
    query = (
        "SELECT d.*, t.state AS ticket_state FROM deliveries d "
        "LEFT JOIN tickets t ON t.destination = d.destination "
        "AND t.ticket_id = d.ticket_id "
        f"WHERE d.event_id IN ({marks})"
    )
    params: list[Any] = list(event_ids)
    if destination is not None:
        query += " AND d.destination = ?"
        params.append(destination)
    if states is not None:
        query += f" AND d.state IN {sql_list(states)}"
    rows = await ledger.rows(query + " ORDER BY d.event_id, d.id", params)
    # One ticket id may have several rows after a reopen; keep one per delivery.
    unique = {row["id"]: row for row in rows}
    return list(unique.values())


async def deliveries_in_state(
    ledger: Ledger, state: str, destination: str | None = None
) -> list[dict[str, Any]]:
    """Every delivery in `state` (no limit: for bulk repairs)."""
    where, params = _filters(state=state, destination=destination)
    return await ledger.rows(f"{_DELIVERY_ROWS} {where} ORDER BY d.id", params)


async def attempts(ledger: Ledger, delivery_id: int) -> list[dict[str, Any]]:
    """Every recorded attempt of one delivery, oldest first."""
    return await ledger.rows(
        "SELECT at, operation, outcome, status, duration, error FROM attempts "
        "WHERE delivery_id = ? ORDER BY id",
        (delivery_id,),
    )


_DELIVERY_ROWS = (
    "SELECT d.id, d.event_id, d.destination, d.route, d.state, d.operation, "
    "d.attempts, d.last_error, d.ticket_key, d.incident_key, d.updated_at, "
    "e.source, e.source_event_id, e.kind, e.record "
    "FROM deliveries d JOIN events e ON e.id = d.event_id"
)


def _filters(**tests: str | None) -> tuple[str, list[Any]]:
    given = {name: value for name, value in tests.items() if value is not None}
    if not given:
        return "", []
    where = " AND ".join(f"d.{name} = ?" for name in given)
    return f"WHERE {where}", list(given.values())
