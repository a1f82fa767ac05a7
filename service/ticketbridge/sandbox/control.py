"""The sandbox's own endpoints: what it holds, what it was asked, a reset.

/_sandbox/tickets lists every ticket of every system in one shape, so a test
can check an outcome without knowing each API; / shows the same for humans.
"""

from __future__ import annotations

import html
import re
from typing import Any

from aiohttp import web

from ticketbridge.sandbox import jira_rules, servicenow, zendesk
from ticketbridge.sandbox.faults import FAULTS
from ticketbridge.sandbox.rates import RATES
from ticketbridge.sandbox.store import (
    STORE,
    Incident,
    JiraIssue,
    Store,
    WebhookRecord,
    ZendeskTicket,
    iso,
)

_COLUMNS = ("system", "key", "summary", "status", "marker", "comments", "created")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/", page),
        web.get("/_sandbox/tickets", tickets),
        web.get("/_sandbox/requests", requests),
        web.post("/_sandbox/reset", reset),
    ]


async def tickets(request: web.Request) -> web.Response:
    """Every ticket, optionally filtered by ?system=, ?marker= and ?open=."""
    rows = ticket_rows(request.app[STORE])
    system = request.query.get("system")
    marker = request.query.get("marker")
    is_open = request.query.get("open")
    if system:
        rows = [r for r in rows if r["system"] == system]
    if marker:
        rows = [r for r in rows if marker in _markers(r)]
    if is_open:
        rows = [r for r in rows if r["open"] == (is_open.lower() == "true")]
    return web.json_response({"tickets": rows})


async def requests(request: web.Request) -> web.Response:
    """Every request to the imitated APIs, optionally filtered by ?method=,
    ?path= (a regex), ?system=, ?operation= and ?marker=."""
    entries = request.app[STORE].requests
    method = request.query.get("method")
    path = request.query.get("path")
    if method:
        entries = [e for e in entries if e.method == method.upper()]
    for name in ("system", "operation", "marker"):
        wanted = request.query.get(name)
        if wanted:
            entries = [e for e in entries if getattr(e, name) == wanted]
    if path:
        try:
            pattern = re.compile(path)
        except re.error as exc:
            return web.json_response({"error": f"bad path regex: {exc}"}, status=400)
        entries = [e for e in entries if pattern.search(e.path)]
    return web.json_response({"requests": [e.as_json() for e in entries]})


async def reset(request: web.Request) -> web.Response:
    request.app[STORE].reset()
    request.app[FAULTS].clear()
    request.app[RATES].clear()
    return web.Response(status=204)


async def page(request: web.Request) -> web.Response:
    rows = ticket_rows(request.app[STORE])
    head = "".join(f"<th>{c}</th>" for c in _COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in _COLUMNS)
        + "</tr>"
        for r in rows
    )
    empty = "" if rows else "<p>No tickets yet.</p>"
    text = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>ticketbridge sandbox</title></head><body>"
        f"<h1>ticketbridge sandbox</h1><p>{len(rows)} tickets</p>"
        f"<table border='1'><tr>{head}</tr>{body}</table>{empty}</body></html>"
    )
    return web.Response(text=text, content_type="text/html")


def ticket_rows(store: Store) -> list[dict[str, Any]]:
    """All tickets of all systems in one shape, oldest first."""
    rows = [_jira_row(i) for i in store.jira.values()]
    rows += [_incident_row(i) for i in store.incidents.values()]
    rows += [_zendesk_row(t) for t in store.zendesk.values()]
    rows += [_webhook_row(r) for r in store.webhooks.values()]
    return sorted(rows, key=lambda r: str(r["created"]))


def _jira_row(issue: JiraIssue) -> dict[str, Any]:
    is_open = not jira_rules.is_done(issue.status)
    return {
        "system": "jira",
        "id": issue.id,
        "key": issue.key,
        "summary": issue.summary,
        "status": issue.status,
        "open": is_open,
        "marker": " ".join(issue.labels),
        "labels": list(issue.labels),
        "correlation_id": None,
        "comments": len(issue.comments),
        "created": iso(issue.created),
    }


def _incident_row(incident: Incident) -> dict[str, Any]:
    values = incident.values
    return {
        "system": "servicenow",
        "id": incident.sys_id,
        "key": values["number"],
        "summary": values["short_description"],
        "status": servicenow.STATES.get(values["state"], values["state"]),
        "open": values["active"] == "true",
        "marker": values["correlation_id"],
        "labels": [],
        "correlation_id": values["correlation_id"],
        "comments": len(incident.journal),
        "created": iso(incident.created),
    }


def _zendesk_row(ticket: ZendeskTicket) -> dict[str, Any]:
    return {
        "system": "zendesk",
        "id": str(ticket.id),
        "key": str(ticket.id),
        "summary": ticket.subject,
        "status": ticket.status,
        "open": ticket.status not in zendesk.CLOSED,
        "marker": ticket.external_id or "",
        "labels": [],
        "correlation_id": None,
        "comments": len(ticket.comments),
        "created": iso(ticket.created),
    }


def _webhook_row(record: WebhookRecord) -> dict[str, Any]:
    summary = record.body.get("summary") or record.body.get("title") or ""
    return {
        "system": "webhook",
        "id": record.id,
        "key": f"{record.name}/{record.idempotency_key or record.id}",
        "summary": str(summary),
        "status": "received",
        "open": False,
        "marker": record.idempotency_key or "",
        "labels": [],
        "correlation_id": None,
        "comments": 0,
        "created": iso(record.received),
    }


def _markers(row: dict[str, Any]) -> set[str]:
    return {row["marker"], row["correlation_id"], *row["labels"]} - {None, ""}
