"""An in-memory destination that can be told to fail, for tests of the sender."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

from ticketbridge.destinations.base import (
    DestinationError,
    ProbeResult,
    TicketNotFound,
    TicketRef,
    TicketView,
)
from ticketbridge.events import Event


@dataclass
class FakeTicket:
    ref: TicketRef
    marker: str
    open: bool = True
    comments: list[str] = field(default_factory=list)
    status: str = "Open"
    resolution: str = ""
    created: float = field(default_factory=time.monotonic)


class FakeDestination:
    """Keeps tickets in a dict; `failures[op]` is a list of errors raised in turn.

    `resolution` is what a resolve sets (Jira's resolution field).
    `lose_create_response` makes the next create succeed and then raise, as a
    timeout after the server acted would. `drop_marker` stores tickets without
    their marker, as a misconfigured Jira screen does. `search_lag` keeps a
    new ticket out of `find` for that many seconds, as Jira's search index.
    """

    def __init__(self, name: str = "fake") -> None:
        self.name = name
        self.tickets: dict[str, FakeTicket] = {}
        # Anything may be queued, a DestinationError or a bug's ValueError.
        self.failures: dict[str, list[Exception]] = {}
        self.calls: list[str] = []
        self.lose_create_response: DestinationError | None = None
        self.drop_marker = False
        self.ignore_resolve = False
        self.resolution = "Done"
        self.probe_results = [ProbeResult("reachable", True, "fake")]
        self.search_lag = 0.0
        self._ids = itertools.count(1)

    def _maybe_fail(self, operation: str) -> None:
        self.calls.append(operation)
        queue = self.failures.get(operation)
        if queue:
            raise queue.pop(0)

    async def create(self, event: Event, marker: str) -> TicketRef:
        self._maybe_fail("create")
        number = next(self._ids)
        ref = TicketRef(str(10000 + number), f"OPS-{number}")
        stored = "" if self.drop_marker else marker
        self.tickets[ref.id] = FakeTicket(ref, stored)
        if self.lose_create_response is not None:
            error, self.lose_create_response = self.lose_create_response, None
            raise error
        return ref

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        self._maybe_fail("comment")
        self.tickets[ticket.id].comments.append(event.summary)

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        self._maybe_fail("resolve")
        if not self.ignore_resolve:
            self.close_by_hand(ticket.id, "Done", self.resolution)
        self.tickets[ticket.id].comments.append(event.summary)

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        self._maybe_fail("reopen")
        stored = self.tickets[ticket.id]
        stored.open, stored.status, stored.resolution = True, "Open", ""
        stored.comments.append(event.summary)

    async def note(self, ticket: TicketRef, text: str) -> None:
        self._maybe_fail("note")
        self.tickets[ticket.id].comments.append(text)

    async def preview(self, event: Event, marker: str) -> dict[str, str]:
        self.calls.append("preview")
        return {"summary": event.summary, "label": marker}

    def close_by_hand(self, ticket_id: str, status: str, resolution: str) -> None:
        """What a person does in the ticket system's own interface."""
        stored = self.tickets[ticket_id]
        stored.open, stored.status, stored.resolution = False, status, resolution

    async def find(self, marker: str) -> TicketRef | None:
        self._maybe_fail("find")
        for ticket in self.tickets.values():
            indexed = time.monotonic() - ticket.created >= self.search_lag
            if ticket.marker == marker and indexed:
                return ticket.ref
        return None

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        self._maybe_fail("get")
        stored = self.tickets.get(ticket.id)
        if stored is None:
            raise TicketNotFound(f"{ticket.key} does not exist", status=404)
        return TicketView(
            ref=stored.ref,
            marker_present=stored.marker == marker,
            is_open=stored.open,
            status=stored.status,
            comment_count=len(stored.comments),
            resolution=stored.resolution,
        )

    async def probe(self) -> list[ProbeResult]:
        """`probe_results` as set by the test; a failure queued on "probe" raises."""
        self._maybe_fail("probe")
        return list(self.probe_results)

    async def close(self) -> None:
        return None

    def creates(self) -> int:
        return self.calls.count("create")
