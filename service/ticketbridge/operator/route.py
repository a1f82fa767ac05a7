"""`ticketbridge route EVENT.json`: what the daemon would do with one event file.

A dry run: the file is validated as the spool source validates it, routed by
the configured rules, and the tickets' fields are built by the destination
clients' own `preview`, from the configured templates. Nothing is sent and
the ledger is not opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ticketbridge.config import Config
from ticketbridge.config.model import SECRET_FIELDS, DestinationSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import DestinationError, Previews
from ticketbridge.destinations.rendering import render as render_text
from ticketbridge.events import Event, EventKind
from ticketbridge.operator.access import OperatorError
from ticketbridge.operator.render import as_json, fields
from ticketbridge.routing import Router, correlation_marker, incident_key
from ticketbridge.sources.base import Reject
from ticketbridge.sources.spool import read_event_file
from ticketbridge.templates import templates_for

OPEN_TICKET_NOTE = "only if the incident has an open ticket; otherwise skipped"


def pick_source(config: Config, wanted: str | None) -> str:
    """The named source, or the only spool source of the config."""
    if wanted is not None:
        if wanted not in config.sources:
            known = ", ".join(sorted(config.sources))
            raise OperatorError(f"unknown source {wanted!r} (known: {known})")
        return wanted
    spools = [name for name, s in config.sources.items() if s.type == "spool"]
    if len(spools) != 1:
        raise OperatorError(
            "name the source the file is for with --source "
            f"(sources: {', '.join(sorted(config.sources))})"
        )
    return spools[0]


async def preview(config: Config, path: Path, source: str) -> dict[str, Any]:
    """The routing decision and the would-be requests, or the rejection."""
    outcome = read_event_file(source, path)
    if isinstance(outcome, Reject):
        return {
            "valid": False,
            "file": str(path),
            "reason": outcome.reason,
            "error": f"{outcome.reason}: {outcome.detail}",
        }

    event = outcome
    decision = Router(config.routes).route(event)
    marker = correlation_marker(event)
    return {
        "valid": True,
        "file": str(path),
        "event": f"{source}:{event.source_event_id}",
        "kind": event.kind.value,
        "route": decision.route,
        "dropped": decision.dropped,
        "destinations": list(decision.destinations),
        "incident_key": incident_key(event, config.sources[source].incident_key),
        "marker": marker,
        "requests": {
            name: await _request(name, config.destinations[name], event, marker)
            for name in decision.destinations
        },
    }


async def _request(
    name: str, settings: DestinationSettings, event: Event, marker: str
) -> dict[str, Any]:
    """The first request the destination would get, built by its own client."""
    if event.kind is EventKind.PROBLEM:
        operation = "create"
        note = "a comment instead if the incident already has an open ticket"
    else:
        operation = "resolve" if event.kind is EventKind.RECOVERY else "comment"
        note = OPEN_TICKET_NOTE
    shown: dict[str, Any] = {
        "type": settings.type,
        "operation": operation,
        "note": note,
        "summary": "",
        "description": "",
        "fields": None,
    }
    templates = templates_for(f"destinations.{name}.templates", settings.templates)
    try:
        # Follow-ups go to the open ticket, whose marker is its problem's.
        text = await render_text(
            templates,
            event,
            destination=name,
            operation=operation,
            marker=marker if operation == "create" else "",
        )
        shown["summary"] = text.summary
        shown["description"] = (
            text.description if operation == "create" else text.comment
        )
        if operation == "create":
            shown["fields"] = await _create_request(name, settings, event, marker)
    except (DestinationError, ValueError) as exc:
        shown["error"] = str(exc)
    return shown


async def _create_request(
    name: str, settings: DestinationSettings, event: Event, marker: str
) -> dict[str, Any] | None:
    """What `create` would send; no request is made to build it.

    A dry run needs no credentials: a missing secret gets a placeholder, since
    the client is built only to assemble the request.
    """
    placeholders = {
        field: SecretStr("dry-run")
        for field in SECRET_FIELDS.get(settings.type, ())
        if getattr(settings, field, None) is None
    }
    destination = build_destination(name, settings.model_copy(update=placeholders))
    try:
        if isinstance(destination, Previews):
            return await destination.preview(event, marker)
        return None
    finally:
        await destination.close()


def render(shown: dict[str, Any], as_json_output: bool) -> str:
    if as_json_output:
        return as_json(shown)
    if not shown["valid"]:
        return f"{shown['file']}: rejected, as the spool would: {shown['error']}"

    target = ", ".join(shown["destinations"]) or "nowhere (dropped)"
    parts = [
        fields(
            [
                ("event", f"{shown['event']} ({shown['kind']})"),
                ("route", shown["route"]),
                ("destinations", target),
                ("incident key", shown["incident_key"]),
                ("marker", shown["marker"]),
            ]
        )
    ]
    for name, request in shown["requests"].items():
        lines = [
            f"{name} ({request['type']}): {request['operation']} ({request['note']})",
            f"  summary: {request['summary']}",
            "  description:",
            *(f"    {line}" for line in request["description"].splitlines()),
        ]
        if request.get("error"):
            lines.append(f"  would fail: {request['error']}")
        parts.append("\n".join(lines))
    parts.append("dry run: nothing was sent, the ledger was not touched")
    return "\n\n".join(parts)
