"""Ticket text for a request: rendered from templates, cleaned, cut to limits.

Rendering runs in a worker thread so a slow template never stalls the event
loop; `templates.py` bounds how long it may take. A template that fails makes
the operation fail permanently with reason "template" before any request is
sent, so a half-rendered ticket never reaches a destination.
"""

from __future__ import annotations

import asyncio
import logging

from ticketbridge.destinations.base import PermanentError
from ticketbridge.events import Event
from ticketbridge.templates import Rendered, TemplateError, TicketTemplates
from ticketbridge.text import truncate, utf16_len

log = logging.getLogger(__name__)


async def render(
    templates: TicketTemplates,
    event: Event,
    *,
    destination: str,
    operation: str,
    marker: str = "",
) -> Rendered:
    """Render `event`, or raise PermanentError(reason="template")."""
    try:
        return await asyncio.to_thread(
            templates.render, event, marker=marker, destination=destination
        )
    except TemplateError as exc:
        raise PermanentError(
            f"{destination} {operation}: template error: {exc}", reason="template"
        ) from exc


def fit(destination: str, field: str, text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 units; a cut is logged with the field."""
    cut = truncate(text, limit)
    if cut is not text:
        log.info(
            "field truncated",
            extra={
                "destination": destination,
                "field": field,
                "length": utf16_len(text),
                "limit": limit,
            },
        )
    return cut
