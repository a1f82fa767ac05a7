"""What a source gives the poller, and how it is acknowledged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ticketbridge.events import Event


class SourceError(Exception):
    """A source that cannot be read at all; the message says what to fix."""


@dataclass(frozen=True, slots=True)
class Reject:
    """Something that could not become an event. `reason` is a short label for
    metrics; `detail` says what to fix."""

    item: str
    reason: str
    detail: str
    payload: str | None = None
    # What the source needs to set the record aside (a spool file's real path,
    # whose name may not even be valid UTF-8 and so differ from `item`).
    handle: Any = None


@dataclass(slots=True)
class Polled:
    """One batch: events to store, the cursor after them, and what to ack later."""

    events: list[Event] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    cursor: str | None = None
    # Source-specific handles (file paths, row ids) acknowledged after commit.
    handles: list[Any] = field(default_factory=list)


class Source(Protocol):
    name: str
    batch_size: int

    async def poll(self, cursor: str | None) -> Polled:
        """Read the next batch; never acknowledges anything."""
        ...

    async def acknowledge(self, polled: Polled) -> None:
        """Called only after the ledger committed the batch."""
        ...

    async def set_aside(self, polled: Polled) -> None:
        """Quarantine the batch's rejects at the source, if it can."""
        ...
