"""The ledger: the single source of truth, one SQLite file in WAL mode.

Every state change of a delivery is one transaction. Memory never holds more
than ids and one batch; after a crash everything is rebuilt from here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from ticketbridge.events import Event, EventKind

log = logging.getLogger(__name__)

# Non-terminal states: the delivery still has work to do.
ACTIVE_STATES = ("pending", "retrying", "sent")
STATES = ("pending", "retrying", "sent", "verified", "skipped", "dead")

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        source_event_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        incident_key TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        record TEXT NOT NULL,
        ingested_at REAL NOT NULL,
        UNIQUE (source, source_event_id)
    );
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        event_id INTEGER NOT NULL REFERENCES events(id),
        destination TEXT NOT NULL,
        route TEXT NOT NULL,
        incident_key TEXT NOT NULL,
        state TEXT NOT NULL,
        operation TEXT,
        marker TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        consecutive_failures INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        ticket_id TEXT,
        ticket_key TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (event_id, destination)
    );
    CREATE INDEX deliveries_due
        ON deliveries (destination, state, next_attempt_at);
    CREATE INDEX deliveries_incident
        ON deliveries (destination, incident_key, event_id);
    CREATE TABLE tickets (
        id INTEGER PRIMARY KEY,
        destination TEXT NOT NULL,
        incident_key TEXT NOT NULL,
        ticket_id TEXT NOT NULL,
        ticket_key TEXT NOT NULL,
        marker TEXT NOT NULL,
        state TEXT NOT NULL,
        opened_by INTEGER NOT NULL REFERENCES deliveries(id),
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX tickets_incident ON tickets (destination, incident_key, state);
    CREATE TABLE cursors (
        source TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY,
        delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
        at REAL NOT NULL,
        operation TEXT NOT NULL,
        outcome TEXT NOT NULL,
        status INTEGER,
        duration REAL,
        error TEXT
    );
    CREATE INDEX attempts_delivery ON attempts (delivery_id);
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        reason TEXT NOT NULL,
        payload TEXT,
        at REAL NOT NULL
    );
    """,
    # 2: when a create that may have landed becomes visible to a lookup.
    """
    ALTER TABLE deliveries ADD COLUMN settle_until REAL;
    """,
]


@dataclass(frozen=True, slots=True)
class Routed:
    """An event ready for the ledger: its incident key and where it goes."""

    event: Event
    incident_key: str
    route: str
    destinations: Sequence[str]
    marker_seed: str


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event_id: int
    destination: str
    route: str
    incident_key: str
    state: str
    operation: str | None
    marker: str
    attempts: int
    consecutive_failures: int
    last_error: str | None
    ticket_id: str | None
    ticket_key: str | None
    event: Event
    # A create attempt may have landed; until then a lookup may not see it.
    settle_until: float | None = None


@dataclass(frozen=True, slots=True)
class OpenTicket:
    ticket_id: str
    ticket_key: str
    marker: str


@dataclass(frozen=True, slots=True)
class DestinationStats:
    counts: dict[str, int]
    oldest_pending_age: float
    max_consecutive_failures: int


class Ledger:
    """Async access to the ledger file. Use `await Ledger.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        self._write = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Ledger:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(path, isolation_level=None)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed ingest must survive power loss, because the source
        # is acknowledged right after the commit.
        await db.execute("PRAGMA synchronous=FULL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.execute("PRAGMA foreign_keys=ON")
        ledger = cls(db, path)
        await ledger._migrate()
        return ledger

    async def close(self) -> None:
        await self._db.close()

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.schema_version()
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            log.info("migrating ledger", extra={"schema_version": version})
            await self._db.executescript(
                f"BEGIN IMMEDIATE; {script}; PRAGMA user_version = {version}; COMMIT;"
            )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        # One connection is shared by every task; without the lock a second
        # task's BEGIN lands inside the first one's open transaction.
        async with self._write:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    # -- ingest -----------------------------------------------------------

    async def ingest(
        self, source: str, routed: Sequence[Routed], cursor: str | None
    ) -> list[int]:
        """Store events, their deliveries and the source cursor in one transaction.

        Returns the ids of events that were new; repeats of a known
        (source, source event id) are ignored, which makes ingest idempotent.
        """
        now = time.time()
        new_ids: list[int] = []
        async with self._transaction() as db:
            for item in routed:
                event_id = await self._insert_event(db, item, now)
                if event_id is None:
                    continue
                new_ids.append(event_id)
                for destination in item.destinations:
                    await self._insert_delivery(db, event_id, destination, item, now)
            if cursor is not None:
                await db.execute(
                    "INSERT INTO cursors (source, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (source, cursor, now),
                )
        return new_ids

    async def _insert_event(
        self, db: aiosqlite.Connection, item: Routed, now: float
    ) -> int | None:
        event = item.event
        cursor = await db.execute(
            "INSERT OR IGNORE INTO events (source, source_event_id, kind, "
            "incident_key, occurred_at, record, ingested_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.source,
                event.source_event_id,
                event.kind.value,
                item.incident_key,
                event.occurred_at.isoformat(),
                json.dumps(event.to_record(), default=str),
                now,
            ),
        )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    async def _insert_delivery(
        self,
        db: aiosqlite.Connection,
        event_id: int,
        destination: str,
        item: Routed,
        now: float,
    ) -> None:
        await db.execute(
            "INSERT INTO deliveries (event_id, destination, route, incident_key, "
            "state, marker, next_attempt_at, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (
                event_id,
                destination,
                item.route,
                item.incident_key,
                item.marker_seed,
                now,
                now,
                now,
            ),
        )

    async def quarantine(
        self, source: str, rejects: Sequence[tuple[str, str, str | None]]
    ) -> None:
        """Keep what a source could not turn into an event, with the reason."""
        if not rejects:
            return
        now = time.time()
        async with self._transaction() as db:
            await db.executemany(
                "INSERT INTO quarantine (source, item, reason, payload, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (source, item, reason, payload, now)
                    for item, reason, payload in rejects
                ],
            )

    async def cursor(self, source: str) -> str | None:
        async with self._db.execute(
            "SELECT value FROM cursors WHERE source = ?", (source,)
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def known_event_ids(self, source: str, ids: Sequence[str]) -> set[str]:
        """Which of these source event ids are already in the ledger."""
        if not ids:
            return set()
        marks = ",".join("?" for _ in ids)
        async with self._db.execute(
            f"SELECT source_event_id FROM events WHERE source = ? "
            f"AND source_event_id IN ({marks})",
            (source, *ids),
        ) as cursor:
            return {str(row[0]) async for row in cursor}

    # -- sending ----------------------------------------------------------

    async def due(
        self, destination: str, now: float, busy: Sequence[str], limit: int
    ) -> list[tuple[int, str]]:
        """Deliveries ready to work on: the oldest active one of each incident.

        An incident whose earlier delivery is still active waits, which keeps
        a recovery from overtaking its problem. `busy` incidents are in flight.
        """
        marks = ",".join("?" for _ in busy) or "''"
        query = f"""
            SELECT d.id, d.incident_key FROM deliveries d
            WHERE d.destination = ? AND d.state IN ('pending', 'retrying', 'sent')
              AND d.next_attempt_at <= ?
              AND d.incident_key NOT IN ({marks})
              AND NOT EXISTS (
                SELECT 1 FROM deliveries e
                WHERE e.destination = d.destination
                  AND e.incident_key = d.incident_key
                  AND e.state IN ('pending', 'retrying', 'sent')
                  AND e.event_id < d.event_id)
            ORDER BY d.next_attempt_at, d.id
            LIMIT ?"""
        async with self._db.execute(query, (destination, now, *busy, limit)) as cur:
            return [(int(row[0]), str(row[1])) async for row in cur]

    async def next_due_time(self, destination: str) -> float | None:
        async with self._db.execute(
            "SELECT MIN(next_attempt_at) FROM deliveries "
            "WHERE destination = ? AND state IN ('pending', 'retrying', 'sent')",
            (destination,),
        ) as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def delivery(self, delivery_id: int) -> Delivery:
        async with self._db.execute(
            "SELECT d.*, e.source, e.record FROM deliveries d "
            "JOIN events e ON e.id = d.event_id WHERE d.id = ?",
            (delivery_id,),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise KeyError(delivery_id)
        return delivery_from_row(row)

    async def open_ticket(
        self, destination: str, incident_key: str
    ) -> OpenTicket | None:
        async with self._db.execute(
            "SELECT ticket_id, ticket_key, marker FROM tickets "
            "WHERE destination = ? AND incident_key = ? AND state = 'open' "
            "ORDER BY id DESC LIMIT 1",
            (destination, incident_key),
        ) as cursor:
            row = await cursor.fetchone()
        return OpenTicket(str(row[0]), str(row[1]), str(row[2])) if row else None

    async def start_attempt(
        self, delivery_id: int, operation: str, settle_until: float | None = None
    ) -> None:
        """Record a request about to be sent: a crash after this is ambiguous.

        `settle_until` (creates only) is when a lookup by marker is sure to see
        the ticket this attempt may create; it is kept until ruled out.
        """
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, operation = ?, "
                "settle_until = COALESCE(?, settle_until), updated_at = ? "
                "WHERE id = ?",
                (operation, settle_until, time.time(), delivery_id),
            )

    async def postpone(self, delivery_id: int, until: float) -> None:
        """Work on the delivery again at `until`, counting no failure."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET next_attempt_at = ?, updated_at = ? "
                "WHERE id = ?",
                (until, time.time(), delivery_id),
            )

    async def mark_sent(
        self,
        delivery: Delivery,
        operation: str,
        ticket_id: str,
        ticket_key: str,
        marker: str,
        duration: float,
    ) -> None:
        """The write succeeded; a create also records the incident's new ticket."""
        now = time.time()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET state = 'sent', operation = ?, ticket_id = ?, "
                "ticket_key = ?, last_error = NULL, next_attempt_at = ?, "
                "updated_at = ? WHERE id = ?",
                (operation, ticket_id, ticket_key, now, now, delivery.id),
            )
            if operation == "create":
                await db.execute(
                    "INSERT INTO tickets (destination, incident_key, ticket_id, "
                    "ticket_key, marker, state, opened_by, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
                    (
                        delivery.destination,
                        delivery.incident_key,
                        ticket_id,
                        ticket_key,
                        marker,
                        delivery.id,
                        now,
                        now,
                    ),
                )
            await self._record_attempt(
                db, delivery.id, operation, "sent", None, duration
            )

    async def mark_verified(self, delivery: Delivery, operation: str) -> None:
        now = time.time()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET state = 'verified', consecutive_failures = 0, "
                "last_error = NULL, updated_at = ? WHERE id = ?",
                (now, delivery.id),
            )
            if operation == "resolve" and delivery.ticket_id is not None:
                await db.execute(
                    "UPDATE tickets SET state = 'resolved', updated_at = ? "
                    "WHERE destination = ? AND ticket_id = ?",
                    (now, delivery.destination, delivery.ticket_id),
                )
            await self._record_attempt(
                db, delivery.id, "verify", "verified", None, None
            )

    async def mark_skipped(self, delivery: Delivery, reason: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET state = 'skipped', last_error = ?, "
                "updated_at = ? WHERE id = ?",
                (reason, time.time(), delivery.id),
            )
            await self._record_attempt(db, delivery.id, "skip", "skipped", None, None)

    async def mark_failed(
        self,
        delivery: Delivery,
        operation: str,
        error: str,
        *,
        status: int | None,
        duration: float | None,
        retry_at: float | None,
        keep_state: bool = False,
        settled: bool = False,
    ) -> str:
        """Count a failure; `retry_at` None means dead. Returns the new state.

        `keep_state` leaves a `sent` delivery in `sent`: its write landed and
        only its verification is to be retried. `settled` says the attempt
        surely created nothing, so no lookup needs to wait for it.
        """
        state = "dead" if retry_at is None else ("sent" if keep_state else "retrying")
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET state = ?, "
                "consecutive_failures = consecutive_failures + 1, last_error = ?, "
                "next_attempt_at = ?, updated_at = ?, "
                "settle_until = CASE WHEN ? THEN NULL ELSE settle_until END "
                "WHERE id = ?",
                (
                    state,
                    error,
                    retry_at or time.time(),
                    time.time(),
                    settled,
                    delivery.id,
                ),
            )
            await self._record_attempt(
                db, delivery.id, operation, state, status, duration, error
            )
        return state

    async def _record_attempt(
        self,
        db: aiosqlite.Connection,
        delivery_id: int,
        operation: str,
        outcome: str,
        status: int | None,
        duration: float | None,
        error: str | None = None,
    ) -> None:
        await db.execute(
            "INSERT INTO attempts (delivery_id, at, operation, outcome, status, "
            "duration, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (delivery_id, time.time(), operation, outcome, status, duration, error),
        )

    # -- reporting --------------------------------------------------------

    async def destination_stats(self, now: float) -> dict[str, DestinationStats]:
        """Counts by state, oldest active age, worst failure streak, per destination."""
        stats: dict[str, DestinationStats] = {}
        async with self._db.execute(
            "SELECT destination, state, COUNT(*), MIN(created_at), "
            "MAX(consecutive_failures) FROM deliveries GROUP BY destination, state"
        ) as cursor:
            async for dest, state, count, oldest, failures in cursor:
                entry = stats.setdefault(dest, DestinationStats({}, 0.0, 0))
                entry.counts[state] = int(count)
                if state in ACTIVE_STATES:
                    age = max(0.0, now - float(oldest))
                    stats[dest] = DestinationStats(
                        entry.counts,
                        max(entry.oldest_pending_age, age),
                        max(entry.max_consecutive_failures, int(failures)),
                    )
        return stats

    async def rows(
        self, query: str, params: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        """Read-only rows for the command line's reports."""
        async with self._db.execute(query, params) as cursor:
            return [dict(row) async for row in cursor]


def delivery_from_row(row: aiosqlite.Row) -> Delivery:
    record = json.loads(row["record"])
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        destination=row["destination"],
        route=row["route"],
        incident_key=row["incident_key"],
        state=row["state"],
        operation=row["operation"],
        marker=row["marker"],
        attempts=row["attempts"],
        consecutive_failures=row["consecutive_failures"],
        last_error=row["last_error"],
        ticket_id=row["ticket_id"],
        ticket_key=row["ticket_key"],
        event=event_from_record(row["source"], record),
        settle_until=row["settle_until"],
    )


def event_from_record(source: str, record: dict[str, Any]) -> Event:
    """Rebuild an event stored by `Event.to_record` (validated once at ingest)."""
    return Event(
        source=source,
        source_event_id=record["source_event_id"],
        kind=EventKind(record["kind"]),
        severity=record["severity"],
        host=record["host"],
        check=record["check"],
        summary=record["summary"],
        details=record["details"],
        occurred_at=datetime.fromisoformat(record["occurred_at"]),
        raw=record.get("raw") or {},
        problem_id=record.get("problem_id", ""),
    )
