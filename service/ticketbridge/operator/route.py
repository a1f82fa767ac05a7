"""`ticketbridge route EVENT.json`: what the daemon would do with one event file.

A dry run: the file is validated as the spool source validates it, routed by
the configured rules, and the tickets' fields are built by the destination
clients' own functions. Nothing is sent and the ledger is not opened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ticketbridge.config import Config
from ticketbridge.config.model import (
    DestinationSettings,
    JiraSettings,
    ServiceNowSettings,
    WebhookSettings,
)
from ticketbridge.destinations.http import render_text, truncate
from ticketbridge.destinations.jira import DESCRIPTION_LIMIT, issue_fields
from ticketbridge.destinations.servicenow import incident_record, resolve_change
from ticketbridge.destinations.webhook import webhook_payload
from ticketbridge.events import Event, EventKind
from ticketbridge.operator.access import OperatorError
from ticketbridge.operator.render import as_json, fields
from ticketbridge.routing import Router, correlation_marker, incident_key
from ticketbridge.sources.base import Reject
from ticketbridge.sources.spool import read_event_file

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


def preview(config: Config, path: Path, source: str) -> dict[str, Any]:
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
            name: _request(config.destinations[name], event, marker)
            for name in decision.destinations
        },
    }


def _request(
    settings: DestinationSettings, event: Event, marker: str
) -> dict[str, Any]:
    """The first request the destination would get for this event."""
    if event.kind is EventKind.PROBLEM:
        operation = "create"
        note = "a comment instead if the incident already has an open ticket"
        sent = _create_fields(settings, event, marker)
    else:
        operation = "resolve" if event.kind is EventKind.RECOVERY else "comment"
        note = OPEN_TICKET_NOTE
        sent = _update_fields(settings, operation, event, marker)
    summary, description = _texts(settings, operation, event, sent)
    return {
        "type": settings.type,
        "operation": operation,
        "note": note,
        "summary": summary,
        "description": description,
        "fields": sent,
    }


def _texts(
    settings: DestinationSettings,
    operation: str,
    event: Event,
    sent: dict[str, Any],
) -> tuple[str, str]:
    """The summary and text of the request as plain text, whatever its format."""
    text = render_text(event)
    if isinstance(settings, WebhookSettings):
        # A webhook gets the event's own fields, not rendered ticket text.
        return str(sent["summary"]), str(sent["details"])
    if operation != "create":
        return text.title, text.comment
    if isinstance(settings, JiraSettings):
        # The description is sent as ADF on API 3; show the text it holds.
        return sent["summary"], truncate(text.body, DESCRIPTION_LIMIT)
    return sent["short_description"], sent["description"]


def _create_fields(
    settings: DestinationSettings, event: Event, marker: str
) -> dict[str, Any]:
    match settings:
        case JiraSettings():
            return issue_fields(settings, event, marker)
        case ServiceNowSettings():
            return incident_record(settings, event, marker)
        case WebhookSettings():
            return webhook_payload("create", marker, event, None)
    raise AssertionError(settings)


def _update_fields(
    settings: DestinationSettings, operation: str, event: Event, marker: str
) -> dict[str, Any]:
    # A comment or resolve goes to the incident's open ticket, which carries
    # the marker of the problem that opened it, not this event's.
    match settings:
        case JiraSettings():
            body = truncate(render_text(event).comment, DESCRIPTION_LIMIT)
            update: dict[str, Any] = {"comment": body}
            if operation == "resolve":
                update["transition"] = settings.resolve_transition
            return update
        case ServiceNowSettings():
            if operation == "resolve":
                return resolve_change(settings, event)
            return {"comments": render_text(event).comment}
        case WebhookSettings():
            return webhook_payload(operation, "<open ticket's marker>", event, None)
    raise AssertionError(settings)


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
        parts.append("\n".join(lines))
    parts.append("dry run: nothing was sent, the ledger was not touched")
    return "\n\n".join(parts)
