"""The ledger: the single source of truth, one SQLite file in WAL mode.

Every state change of a delivery is one transaction. Memory never holds more
than ids and one batch; after a crash everything is rebuilt from here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite

from ticketbridge import lifecycle
from ticketbridge.config.model import DEFAULT_LIFECYCLE, Lifecycle
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
    # 2: ticket lifecycle (when and how a ticket was resolved, by whom) and
    # migration modes (a delivery's role, a mirror ticket's twin).
    """
    ALTER TABLE tickets ADD COLUMN resolved_at REAL;
    ALTER TABLE tickets ADD COLUMN resolution TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN closed_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN twin_destination TEXT NOT NULL DEFAULT '';
    ALTER TABLE tickets ADD COLUMN twin_noted TEXT NOT NULL DEFAULT '';
    ALTER TABLE deliveries ADD COLUMN role TEXT NOT NULL DEFAULT '';
    ALTER TABLE deliveries ADD COLUMN twin TEXT NOT NULL DEFAULT '';
    CREATE INDEX events_incident ON events (incident_key, kind, id);
    CREATE INDEX tickets_owner ON tickets (incident_key, destination, id);
    CREATE INDEX deliveries_owner ON deliveries (incident_key, state);
    """,
    # 3: what operators ask about without reading the logs: the health of
    # each source's polling and each destination, and the route of an event
    # (kept even when the route dropped it, so no delivery names it).
    """
    CREATE TABLE source_status (
        source TEXT PRIMARY KEY,
        last_poll_at REAL,
        last_success_at REAL,
        last_error TEXT,
        last_error_at REAL,
        consecutive_errors INTEGER NOT NULL DEFAULT 0,
        total_errors INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE destination_status (
        destination TEXT PRIMARY KEY,
        circuit_state TEXT NOT NULL DEFAULT 'closed',
        last_error TEXT,
        last_error_at REAL,
        probes TEXT,
        updated_at REAL NOT NULL
    );
    ALTER TABLE events ADD COLUMN route TEXT;
    CREATE INDEX deliveries_state ON deliveries (state, updated_at);
    """,
    # 4: when a create that may have landed becomes visible to a lookup.
    """
    ALTER TABLE deliveries ADD COLUMN settle_until REAL;
    """,
]

# States an operator may send back to work, and states an operator may skip.
RETRYABLE_STATES = ("dead", "retrying")
SKIPPABLE_STATES = (*ACTIVE_STATES, "dead")


@dataclass(frozen=True, slots=True)
class Routed:
    """An event ready for the ledger: its incident key and where it goes."""

    event: Event
    incident_key: str
    route: str
    destinations: Sequence[str]
    marker_seed: str
    shadow: Sequence[str] = ()
    twins: Mapping[str, str] = field(default_factory=dict)
    lifecycle: Lifecycle = DEFAULT_LIFECYCLE


@dataclass(frozen=True, slots=True)
class Repeat:
    """An event whose (source, source event id) the ledger already held.

    `same` tells an identical re-delivery from an id reused for other content
    (the source's raw fields compared); either way the stored event is kept.
    """

    source_event_id: str
    same: bool


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
    role: str = ""
    twin: str = ""
    # A create attempt may have landed; until then a lookup may not see it.
    settle_until: float | None = None


@dataclass(frozen=True, slots=True)
class OpenTicket:
    ticket_id: str
    ticket_key: str
    marker: str


@dataclass(frozen=True, slots=True)
class TwinNote:
    """A mirror ticket that should name its twin in the other system."""

    ticket_id: str
    ticket_key: str
    incident_key: str
    twin_destination: str
    twin_key: str


TICKET_COLUMNS = (
    "ticket_id, ticket_key, marker, state, resolved_at, resolution, closed_by"
)


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
                # SQLite may have rolled back already (SQLITE_FULL, IOERR);
                # a second ROLLBACK would hide the real error.
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    # -- ingest -----------------------------------------------------------

    async def ingest(
        self,
        source: str,
        routed: Sequence[Routed],
        cursor: str | None,
        configured: Collection[str] | None = None,
        repeats: list[Repeat] | None = None,
    ) -> list[int]:
        """Store events, their deliveries and the source cursor in one transaction.

        Returns the ids of events that were new; repeats of a known
        (source, source event id) are ignored, which makes ingest idempotent,
        and appended to `repeats` when it is given.
        Each event goes to the destinations that own its incident (an open
        ticket or unfinished delivery there), read in the same transaction,
        else to its route's; `configured` limits owners to live destinations.
        """
        now = time.time()
        new_ids: list[int] = []
        if not routed and cursor is None:
            return new_ids  # nothing to write; an empty BEGIN proves nothing
        async with self._transaction() as db:
            for item in routed:
                event_id = await self._insert_event(db, item, now)
                if event_id is None:
                    if repeats is not None:
                        repeats.append(await self._repeat(db, item.event))
                    continue
                new_ids.append(event_id)
                owners = await self._owners(db, item.incident_key, configured)
                targets = lifecycle.follow_owners(
                    item.event,
                    item.destinations,
                    item.shadow,
                    item.twins,
                    owners,
                    item.lifecycle,
                )
                for target in targets:
                    await self._insert_delivery(db, event_id, target, item, now)
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
            "incident_key, occurred_at, record, ingested_at, route) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.source,
                event.source_event_id,
                event.kind.value,
                item.incident_key,
                event.occurred_at.isoformat(),
                json.dumps(event.to_record(), default=str),
                now,
                item.route,
            ),
        )
        return cursor.lastrowid if cursor.rowcount == 1 else None

    async def _repeat(self, db: aiosqlite.Connection, event: Event) -> Repeat:
        """Compare a repeated event's raw fields with the stored event's."""
        cursor = await db.execute(
            "SELECT record FROM events WHERE source = ? AND source_event_id = ?",
            (event.source, event.source_event_id),
        )
        row = await cursor.fetchone()
        stored = json.loads(row[0]).get("raw") if row else None
        # Through JSON as the record was, so a date or tuple compares as stored.
        given = json.loads(json.dumps(dict(event.raw), default=str))
        return Repeat(event.source_event_id, same=stored == given)

    async def _insert_delivery(
        self,
        db: aiosqlite.Connection,
        event_id: int,
        target: lifecycle.Target,
        item: Routed,
        now: float,
    ) -> None:
        await db.execute(
            "INSERT INTO deliveries (event_id, destination, route, incident_key, "
            "state, marker, next_attempt_at, created_at, updated_at, role, twin) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
            (
                event_id,
                target.destination,
                item.route,
                item.incident_key,
                item.marker_seed,
                now,
                now,
                now,
                target.role,
                target.twin,
            ),
        )

    async def _owners(
        self,
        db: aiosqlite.Connection,
        incident_key: str,
        configured: Collection[str] | None,
    ) -> dict[str, lifecycle.Ticket | None]:
        """Destinations holding the incident: its latest ticket, or None in flight."""
        owners: dict[str, lifecycle.Ticket | None] = {}
        async with db.execute(
            f"SELECT {TICKET_COLUMNS}, destination FROM tickets t "
            "WHERE incident_key = ? AND id = (SELECT MAX(id) FROM tickets u "
            "WHERE u.incident_key = t.incident_key "
            "AND u.destination = t.destination)",
            (incident_key,),
        ) as cursor:
            async for row in cursor:
                owners[str(row["destination"])] = ticket_from_row(row)
        async with db.execute(
            "SELECT DISTINCT destination FROM deliveries WHERE incident_key = ? "
            "AND state IN ('pending', 'retrying', 'sent') AND role != 'shadow'",
            (incident_key,),
        ) as cursor:
            async for row in cursor:
                ticket = owners.get(str(row[0]))
                if ticket is None or not ticket.open:
                    # Work in flight (a create, a reopen) will give it a ticket.
                    owners[str(row[0])] = None
        if configured is not None:
            owners = {k: v for k, v in owners.items() if k in configured}
        return owners

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

    async def latest_ticket(
        self, destination: str, incident_key: str
    ) -> lifecycle.Ticket | None:
        """The incident's newest ticket at `destination`, open or resolved."""
        async with self._db.execute(
            f"SELECT {TICKET_COLUMNS} FROM tickets "
            "WHERE destination = ? AND incident_key = ? ORDER BY id DESC LIMIT 1",
            (destination, incident_key),
        ) as cursor:
            row = await cursor.fetchone()
        return ticket_from_row(row) if row else None

    async def history(self, delivery: Delivery) -> lifecycle.History:
        """What was stored of the delivery's incident before its event."""
        times: dict[str, datetime] = {}
        async with self._db.execute(
            "SELECT kind, MAX(occurred_at) FROM events WHERE incident_key = ? "
            "AND id < ? AND kind IN ('problem', 'recovery') GROUP BY kind",
            (delivery.incident_key, delivery.event_id),
        ) as cursor:
            async for kind, occurred in cursor:
                times[str(kind)] = datetime.fromisoformat(str(occurred))
        return lifecycle.History(
            last_problem_at=times.get("problem"),
            last_recovery_at=times.get("recovery"),
            duplicate_of=await self._duplicate_of(delivery),
        )

    async def _duplicate_of(self, delivery: Delivery) -> str | None:
        """An earlier copy of the same notification, e.g. one per contact (BC-06)."""
        event = delivery.event
        async with self._db.execute(
            "SELECT source_event_id, record FROM events WHERE incident_key = ? "
            "AND id < ? AND kind = ? AND occurred_at = ? ORDER BY id LIMIT 20",
            (
                delivery.incident_key,
                delivery.event_id,
                event.kind.value,
                event.occurred_at.isoformat(),
            ),
        ) as cursor:
            async for source_event_id, record in cursor:
                if same_notification(event, json.loads(record)):
                    return str(source_event_id)
        return None

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
                    "ticket_key, marker, state, opened_by, created_at, updated_at, "
                    "twin_destination) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?)",
                    (
                        delivery.destination,
                        delivery.incident_key,
                        ticket_id,
                        ticket_key,
                        marker,
                        delivery.id,
                        now,
                        now,
                        delivery.twin,
                    ),
                )
            await self._record_attempt(
                db, delivery.id, operation, "sent", None, duration
            )

    async def mark_verified(
        self, delivery: Delivery, operation: str, resolution: str = ""
    ) -> None:
        """The ticket reads back as expected; a resolve or reopen moves it too."""
        now = time.time()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE deliveries SET state = 'verified', consecutive_failures = 0, "
                "last_error = NULL, updated_at = ? WHERE id = ?",
                (now, delivery.id),
            )
            if operation == "resolve" and delivery.ticket_id is not None:
                await db.execute(
                    "UPDATE tickets SET state = 'resolved', updated_at = ?, "
                    "resolved_at = ?, resolution = ?, closed_by = ? "
                    "WHERE destination = ? AND ticket_id = ?",
                    (
                        now,
                        now,
                        resolution,
                        lifecycle.CLOSED_BY_BRIDGE,
                        delivery.destination,
                        delivery.ticket_id,
                    ),
                )
            if operation == "reopen" and delivery.ticket_id is not None:
                await db.execute(
                    "UPDATE tickets SET state = 'open', updated_at = ?, "
                    "resolved_at = NULL, resolution = '', closed_by = '' "
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

    async def mark_closed_elsewhere(
        self, delivery: Delivery, ticket_id: str, resolution: str, reason: str
    ) -> None:
        """A person closed the ticket: remember it resolved, skip the delivery."""
        now = time.time()
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tickets SET state = 'resolved', updated_at = ?, "
                "resolved_at = ?, resolution = ?, closed_by = ? "
                "WHERE destination = ? AND ticket_id = ? AND state = 'open'",
                (
                    now,
                    now,
                    resolution,
                    lifecycle.CLOSED_BY_PERSON,
                    delivery.destination,
                    ticket_id,
                ),
            )
            await db.execute(
                "UPDATE deliveries SET state = 'skipped', last_error = ?, "
                "ticket_id = ?, updated_at = ? WHERE id = ?",
                (reason, ticket_id, now, delivery.id),
            )
            await self._record_attempt(db, delivery.id, "skip", "skipped", None, None)

    async def twins_to_note(self, destination: str) -> list[TwinNote]:
        """Open mirror tickets here whose twin now exists and is not yet named.

        A ticket's twin is the one the same event opened in the other system:
        matching by incident alone would pair one episode's ticket with the
        next episode's when the two systems are at different points.
        """
        async with self._db.execute(
            "SELECT t.ticket_id, t.ticket_key, t.incident_key, "
            "t.twin_destination, w.ticket_key AS twin_key FROM tickets t "
            "JOIN deliveries dt ON dt.id = t.opened_by "
            "JOIN deliveries dw ON dw.event_id = dt.event_id "
            "AND dw.destination = t.twin_destination "
            "JOIN tickets w ON w.opened_by = dw.id "
            "AND w.destination = t.twin_destination "
            "WHERE t.destination = ? AND t.state = 'open' "
            "AND t.twin_destination != '' AND t.twin_noted != w.ticket_key "
            "ORDER BY t.id LIMIT 20",
            (destination,),
        ) as cursor:
            return [
                TwinNote(
                    ticket_id=str(row["ticket_id"]),
                    ticket_key=str(row["ticket_key"]),
                    incident_key=str(row["incident_key"]),
                    twin_destination=str(row["twin_destination"]),
                    twin_key=str(row["twin_key"]),
                )
                async for row in cursor
            ]

    async def note_twin(self, destination: str, note: TwinNote) -> None:
        """The twin's key is written on the ticket: do not write it again."""
        async with self._transaction() as db:
            await db.execute(
                "UPDATE tickets SET twin_noted = ?, updated_at = ? "
                "WHERE destination = ? AND ticket_id = ?",
                (note.twin_key, time.time(), destination, note.ticket_id),
            )

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

    # -- operator repairs -------------------------------------------------

    async def operator_retry(self, delivery_ids: Sequence[int]) -> list[int]:
        """Send dead or retrying deliveries back to work now; returns those changed.

        A delivery whose write already landed (it has a ticket) goes back to
        `sent`, so it is read back again instead of written twice (a second
        comment, say); the others go back to `pending`. The running daemon
        picks them up on its next read of due deliveries.
        """
        now = time.time()
        changed: list[int] = []
        async with self._transaction() as db:
            for delivery_id in delivery_ids:
                cursor = await db.execute(
                    "UPDATE deliveries SET "
                    "state = CASE WHEN ticket_id IS NULL THEN 'pending' "
                    "ELSE 'sent' END, "
                    "consecutive_failures = 0, next_attempt_at = ?, updated_at = ? "
                    f"WHERE id = ? AND state IN {sql_list(RETRYABLE_STATES)}",
                    (now, now, delivery_id),
                )
                if cursor.rowcount != 1:
                    continue
                changed.append(delivery_id)
                await self._record_attempt(
                    db, delivery_id, "operator", "operator-retry", None, None
                )
        return changed

    async def operator_skip(
        self, delivery_ids: Sequence[int], reason: str
    ) -> list[int]:
        """Give up on active or dead deliveries, with `operator: <reason>`.

        A delivery in flight in the running daemon at this moment may still
        finish its request and record its outcome over the skip.
        """
        now = time.time()
        text = f"operator: {reason}"
        changed: list[int] = []
        async with self._transaction() as db:
            for delivery_id in delivery_ids:
                cursor = await db.execute(
                    "UPDATE deliveries SET state = 'skipped', last_error = ?, "
                    "updated_at = ? WHERE id = ? "
                    f"AND state IN {sql_list(SKIPPABLE_STATES)}",
                    (text, now, delivery_id),
                )
                if cursor.rowcount != 1:
                    continue
                changed.append(delivery_id)
                await self._record_attempt(
                    db, delivery_id, "operator", "skipped", None, None, text
                )
        return changed

    # -- status -----------------------------------------------------------

    async def record_source_poll(
        self, source: str, ok: bool, error: str | None = None
    ) -> None:
        """Note one poll of a source: its time, and its error if it failed."""
        now = time.time()
        if ok:
            query = (
                "INSERT INTO source_status (source, last_poll_at, last_success_at) "
                "VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
                "last_poll_at = excluded.last_poll_at, "
                "last_success_at = excluded.last_success_at, consecutive_errors = 0"
            )
            params: tuple[Any, ...] = (source, now, now)
        else:
            query = (
                "INSERT INTO source_status (source, last_poll_at, last_error, "
                "last_error_at, consecutive_errors, total_errors) "
                "VALUES (?, ?, ?, ?, 1, 1) ON CONFLICT (source) DO UPDATE SET "
                "last_poll_at = excluded.last_poll_at, "
                "last_error = excluded.last_error, "
                "last_error_at = excluded.last_error_at, "
                "consecutive_errors = consecutive_errors + 1, "
                "total_errors = total_errors + 1"
            )
            params = (source, now, error or "unknown error", now)
        async with self._transaction() as db:
            await db.execute(query, params)

    async def record_destination_status(
        self,
        destination: str,
        *,
        circuit_state: str | None = None,
        last_error: str | None = None,
        probes: Any = None,
    ) -> None:
        """Update what is known of a destination; fields left None are kept.

        `probes` is any JSON-serialisable value (the preflight probes' results).
        """
        now = time.time()
        changes: dict[str, Any] = {"updated_at": now}
        if circuit_state is not None:
            changes["circuit_state"] = circuit_state
        if last_error is not None:
            changes["last_error"] = last_error
            changes["last_error_at"] = now
        if probes is not None:
            changes["probes"] = json.dumps(probes, default=str)

        columns = ", ".join(changes)
        marks = ", ".join("?" for _ in changes)
        updates = ", ".join(f"{name} = excluded.{name}" for name in changes)
        async with self._transaction() as db:
            await db.execute(
                f"INSERT INTO destination_status (destination, {columns}) "
                f"VALUES (?, {marks}) ON CONFLICT (destination) DO UPDATE SET "
                f"{updates}",
                (destination, *changes.values()),
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

    async def latest_tickets(
        self, destinations: Sequence[str]
    ) -> list[tuple[str, str, lifecycle.Ticket]]:
        """(destination, incident, newest ticket) for each incident there."""
        marks = ",".join("?" for _ in destinations) or "''"
        async with self._db.execute(
            f"SELECT {TICKET_COLUMNS}, destination, incident_key FROM tickets t "
            f"WHERE destination IN ({marks}) AND id = (SELECT MAX(id) FROM "
            "tickets u WHERE u.destination = t.destination "
            "AND u.incident_key = t.incident_key) ORDER BY incident_key",
            tuple(destinations),
        ) as cursor:
            return [
                (
                    str(row["destination"]),
                    str(row["incident_key"]),
                    ticket_from_row(row),
                )
                async for row in cursor
            ]

    async def rows(
        self, query: str, params: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        """Read-only rows for the command line's reports."""
        async with self._db.execute(query, params) as cursor:
            return [dict(row) async for row in cursor]


def sql_list(names: Sequence[str]) -> str:
    """A constant list of state names as SQL: ('dead', 'retrying')."""
    return "(" + ", ".join(f"'{name}'" for name in names) + ")"


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
        event=replace(
            event_from_record(row["source"], record),
            incident_key=row["incident_key"],
        ),
        role=row["role"],
        twin=row["twin"],
        settle_until=row["settle_until"],
    )


def ticket_from_row(row: aiosqlite.Row) -> lifecycle.Ticket:
    resolved_at = row["resolved_at"]
    return lifecycle.Ticket(
        ticket_id=str(row["ticket_id"]),
        ticket_key=str(row["ticket_key"]),
        marker=str(row["marker"]),
        open=row["state"] == "open",
        resolved_at=float(resolved_at) if resolved_at is not None else None,
        resolution=str(row["resolution"] or ""),
        closed_by=str(row["closed_by"] or ""),
    )


# Fields that make two events one notification; a recipient (contact) differs
# between copies of one Nagios notification and is not among them.
NOTIFICATION_FIELDS = ("host", "check", "severity", "summary", "details", "problem_id")


def same_notification(event: Event, record: Mapping[str, Any]) -> bool:
    """Whether a stored event record is a copy of `event` (same kind and time)."""
    return all(
        str(record.get(name, "")) == str(getattr(event, name))
        for name in NOTIFICATION_FIELDS
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
