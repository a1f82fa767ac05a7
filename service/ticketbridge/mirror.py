"""Migration modes at send time: mirror tickets name their twin, shadow renders.

A mirror route opens one ticket in each of two systems; once both exist, each
sender writes "Twin ticket: <destination> <key>" on its own ticket, and only
its own, so every write to a system still goes through that system's sender.
A shadow delivery never writes: it renders what `create` would send and logs
it, so the new system's ticket can be checked before it goes live.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

from ticketbridge.destinations.base import (
    Destination,
    DestinationError,
    Notes,
    Previews,
    TicketRef,
)
from ticketbridge.events import EventKind
from ticketbridge.ledger import Delivery, Ledger, TwinNote

log = logging.getLogger(__name__)

SHADOW = "shadow"


def twin_text(note: TwinNote) -> str:
    return f"Twin ticket: {note.twin_destination} {note.twin_key}"


async def note_twins(
    name: str, destination: Destination, ledger: Ledger, busy: Mapping[str, Any]
) -> int:
    """Name the twin on each open mirror ticket that does not name it yet.

    Runs in the dispatcher between deliveries and skips incidents with a
    delivery in flight. Idempotent through the ledger's `twin_noted`; a crash
    between the comment and that record writes the note twice (accepted: a
    duplicate note is harmless, a missing one is not).
    """
    if not isinstance(destination, Notes):
        return 0
    written = 0
    for note in await ledger.twins_to_note(name):
        if note.incident_key in busy:
            continue
        ticket = TicketRef(note.ticket_id, note.ticket_key)
        fields = {"destination": name, "ticket": note.ticket_key}
        try:
            await destination.note(ticket, twin_text(note))
        except DestinationError as exc:
            # Retried on the next dispatch; a note is never worth a dead letter.
            log.warning("twin note failed: %s", exc, extra=fields)
            continue
        await ledger.note_twin(name, note)
        log.info("twin noted", extra={**fields, "twin": note.twin_key})
        written += 1
    return written


async def shadow_delivery(destination: Destination, delivery: Delivery) -> str:
    """Render (and check offline) what a shadow destination would create.

    Neither Jira nor ServiceNow offers a dry run of a create, so the fields
    are only rendered and logged. Returns the delivery's skip reason.
    """
    fields: dict[str, object] = {
        "event": f"{delivery.event.source}:{delivery.event.source_event_id}",
        "delivery": delivery.id,
        "destination": delivery.destination,
        "incident": delivery.incident_key,
    }
    if delivery.event.kind is not EventKind.PROBLEM:
        log.info("shadow follow-up not sent", extra=fields)
        return SHADOW
    if not isinstance(destination, Previews):
        log.info("shadow ticket not rendered: no preview", extra=fields)
        return SHADOW

    try:
        preview = await destination.preview(delivery.event, delivery.marker)
    except (ValueError, DestinationError) as exc:
        log.warning("shadow ticket invalid: %s", exc, extra=fields)
        return f"{SHADOW}: would be refused: {exc}"
    rendered = json.dumps(preview, default=_plain, ensure_ascii=False)
    log.info("shadow ticket rendered", extra={**fields, "rendered": rendered})
    return SHADOW


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
