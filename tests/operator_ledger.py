"""A small ledger file with known deliveries, built through the Ledger API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.helpers import base_config, make_event, write_config
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.routing import correlation_marker

DESTINATIONS = {
    "jira_new": {
        "type": "jira",
        "url": "http://127.0.0.1:9",
        "project": "OPS",
        "email": "bridge@example.invalid",
    },
    "snow_old": {"type": "servicenow", "url": "http://127.0.0.1:9", "username": "b"},
}


def operator_config(tmp_path: Path, **overrides: Any) -> Path:
    """A config naming two destinations and a route to both; returns its path."""
    config = base_config(
        tmp_path,
        destinations=DESTINATIONS,
        routes=[
            {"name": "quiet", "match": {"check": "NTP*"}, "drop": True},
            {"name": "both", "destinations": ["jira_new", "snow_old"]},
        ],
        poll_interval=60,
    )
    config.update(overrides)
    return write_config(tmp_path / "config.yaml", config)


def routed(event_id: str, host: str, destinations: list[str]) -> Routed:
    event = make_event(id=event_id, host=host)
    return Routed(
        event,
        f"nagios|{host}|HTTP",
        "both",
        destinations,
        correlation_marker(event),
    )


async def _build(path: Path, dead: bool) -> None:
    ledger = await Ledger.open(path)
    await ledger.record_source_poll("nagios", True, None)

    # nagios:ok1 -> jira_new verified as OPS-1.
    await ledger.ingest("nagios", [routed("ok1", "web01", ["jira_new"])], None)
    first = await ledger.delivery(1)
    await ledger.start_attempt(first.id, "create")
    await ledger.mark_sent(first, "create", "10001", "OPS-1", first.marker, 0.2)
    await ledger.mark_verified(await ledger.delivery(1), "create")

    if dead:
        # nagios:bad1 -> snow_old refused with 401: dead.
        await ledger.ingest("nagios", [routed("bad1", "db01", ["snow_old"])], None)
        second = await ledger.delivery(2)
        await ledger.start_attempt(second.id, "create")
        await ledger.mark_failed(
            await ledger.delivery(2),
            "create",
            "permanent: snow_old create: HTTP 401: User Not Authenticated",
            status=401,
            duration=0.05,
            retry_at=None,
        )
        await ledger.record_destination_status(
            "snow_old", last_error="permanent: snow_old create: HTTP 401"
        )
    await ledger.close()


def build_ledger(tmp_path: Path, *, dead: bool = True) -> Path:
    """ok1 verified at jira_new; with `dead`, bad1 dead at snow_old (401)."""
    path = tmp_path / "ledger.sqlite3"
    asyncio.run(_build(path, dead))
    return path


def ledger_rows(path: Path, query: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        ledger = await Ledger.open(path)
        try:
            return await ledger.rows(query)
        finally:
            await ledger.close()

    return asyncio.run(read())
