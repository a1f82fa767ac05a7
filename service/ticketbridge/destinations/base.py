"""What every ticketing destination offers the sender, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ticketbridge.events import Event


@dataclass(frozen=True, slots=True)
class TicketRef:
    """Where a ticket lives: the destination's id (for API calls) and its human key."""

    id: str
    key: str


@dataclass(frozen=True, slots=True)
class TicketView:
    """A ticket as read back from the destination, for verification."""

    ref: TicketRef
    marker_present: bool
    is_open: bool
    status: str
    comment_count: int | None = None
    # How the ticket was closed (Jira resolution, ServiceNow close_code), if known.
    resolution: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One preflight check of a destination: its name, outcome and why.

    `transient` marks a failure that says the destination is unreachable or
    overloaded (5xx, 429, timeouts) rather than misconfigured; the circuit
    breaker closes again on a probe without such failures.
    """

    check: str
    ok: bool
    detail: str
    transient: bool = False


class DestinationError(Exception):
    """A failed call. `status` is the HTTP status when there was one.

    `reason` names a failure that happened before any request, e.g.
    "template" when the ticket text could not be rendered.
    """

    def __init__(
        self, message: str, *, status: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class TransientError(DestinationError):
    """Worth retrying: 5xx, 429, timeouts, resets. `retry_after` is a minimum wait."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        ambiguous: bool = False,
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after
        # The request may have been acted on (sent, but no answer): look up first.
        self.ambiguous = ambiguous


class PermanentError(DestinationError):
    """Retrying the same request will fail the same way: 4xx other than 429."""


class TicketNotFound(PermanentError):
    """The ticket id is unknown to the destination (or hidden from us)."""


class Destination(Protocol):
    """One configured ticketing system. Each method is one logical operation."""

    name: str

    async def create(self, event: Event, marker: str) -> TicketRef:
        """Open a ticket carrying `marker` as its correlation key."""
        ...

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a comment on an open ticket."""
        ...

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Move the ticket to its resolved state, with the event as the note."""
        ...

    async def find(self, marker: str) -> TicketRef | None:
        """Look a ticket up by correlation marker (after an ambiguous create)."""
        ...

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read one ticket back by id; `marker_present` says whether it carries it."""
        ...

    async def probe(self) -> list[ProbeResult]:
        """Check credentials and configuration without creating anything."""
        ...

    async def close(self) -> None: ...


# What some destinations offer beyond `Destination`; the sender checks for
# them and falls back (a new ticket instead of a reopen) where they are absent.


@runtime_checkable
class Reopens(Protocol):
    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Bring a resolved ticket back to an open state, with the event as note."""
        ...


@runtime_checkable
class Notes(Protocol):
    async def note(self, ticket: TicketRef, text: str) -> None:
        """Add a plain-text comment that is not an event (e.g. a twin's key)."""
        ...


@runtime_checkable
class Previews(Protocol):
    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The fields `create` would send, checked as far as can be done offline."""
        ...
