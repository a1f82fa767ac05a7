"""The ledger: idempotent ingest, ordering per incident, forward migration."""

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from tests.helpers import make_event
from ticketbridge.ledger import MIGRATIONS, Ledger, Routed
from ticketbridge.routing import correlation_marker


def routed(event_id: str, kind: str = "problem", host: str = "web01") -> Routed:
    event = make_event(id=event_id, kind=kind, host=host)
    return Routed(
        event, f"nagios|{host}|HTTP", "all", ["jira"], correlation_marker(event)
    )


async def test_ingest_is_idempotent_on_source_and_event_id(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    first = await ledger.ingest("nagios", [routed("a")], cursor=None)
    again = await ledger.ingest("nagios", [routed("a")], cursor=None)
    rows = await ledger.rows("SELECT COUNT(*) AS n FROM deliveries")
    await ledger.close()
    assert len(first) == 1 and again == []
    assert rows[0]["n"] == 1


async def test_cursor_is_stored_with_the_events(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("legacy", [routed("a")], cursor="[5, 5]")
    assert await ledger.cursor("legacy") == "[5, 5]"
    await ledger.close()


async def test_only_the_oldest_delivery_of_an_incident_is_due(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("p"), routed("r", kind="recovery")], None)
    await ledger.ingest("nagios", [routed("other", host="db01")], None)

    due = await ledger.due("jira", now=1e12, busy=[], limit=10)
    await ledger.close()

    assert [key for _, key in due] == ["nagios|web01|HTTP", "nagios|db01|HTTP"]


async def test_busy_incidents_are_not_handed_out_twice(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("p")], None)
    due = await ledger.due("jira", now=1e12, busy=["nagios|web01|HTTP"], limit=10)
    await ledger.close()
    assert due == []


async def test_schema_version_is_recorded_and_reopening_keeps_data(
    tmp_path: Path,
) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest("nagios", [routed("a")], None)
    await ledger.close()

    again = await Ledger.open(tmp_path / "l.db")
    version = await again.schema_version()
    rows = await again.rows("SELECT COUNT(*) AS n FROM events")
    await again.close()

    assert version == len(MIGRATIONS)
    assert rows[0]["n"] == 1


async def test_ledger_uses_write_ahead_logging(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.close()
    mode = sqlite3.connect(tmp_path / "l.db").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


async def test_stored_event_reads_back_equal(tmp_path: Path) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    item = routed("a")
    await ledger.ingest("nagios", [item], None)
    delivery = await ledger.delivery(1)
    await ledger.close()
    assert delivery.event == replace(item.event, incident_key=item.incident_key)


async def test_concurrent_writers_do_not_interleave_transactions(
    tmp_path: Path,
) -> None:
    ledger = await Ledger.open(tmp_path / "l.db")
    await ledger.ingest(
        "nagios", [routed(f"e{n}", host=f"h{n}") for n in range(20)], None
    )

    await asyncio.gather(*(ledger.start_attempt(n, "create") for n in range(1, 21)))
    rows = await ledger.rows("SELECT SUM(attempts) AS n FROM deliveries")
    await ledger.close()

    assert rows[0]["n"] == 20
