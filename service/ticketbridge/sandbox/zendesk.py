"""The Zendesk Tickets API subset ticketbridge uses, under /api/v2.

Like Zendesk, paths work with or without `.json`; a ticket needs a first
comment; external_id is not unique and lists every ticket that carries it;
a closed ticket refuses every update (422); the ticket count and the
ticket fields answer the client's preflight probe; and errors carry Zendesk's
bodies: RecordNotFound, RecordInvalid with per-field details, and a 429 in
plain text with Retry-After.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ticketbridge.sandbox.store import STORE, ZendeskComment, ZendeskTicket, iso, now

BASE = "/api/v2/tickets"
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")
TYPES = ("problem", "incident", "question", "task")
CLOSED = ("solved", "closed")
# The system fields of a fresh account, as /ticket_fields lists them.
SYSTEM_FIELDS = (
    ("subject", "Subject"),
    ("description", "Description"),
    ("status", "Status"),
    ("tickettype", "Type"),
    ("priority", "Priority"),
    ("group", "Group"),
    ("assignee", "Assignee"),
)
RATE_LIMITED = "Number of allowed API requests per minute exceeded"


def error(status: int, name: str, description: str | None = None) -> web.Response:
    """Zendesk's error body: an error name and, mostly, a description."""
    body: dict[str, Any] = {"error": name}
    if description is not None:
        body["description"] = description
    return web.json_response(body, status=status)


def invalid(field: str, description: str, code: str = "InvalidValue") -> web.Response:
    """422 RecordInvalid with one field's problem, as Zendesk details them."""
    body = {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {field: [{"description": description, "error": code}]},
    }
    return web.json_response(body, status=422)


def not_found() -> web.Response:
    return error(404, "RecordNotFound", "Not found")


def unauthorised() -> web.Response:
    return web.json_response({"error": "Couldn't authenticate you"}, status=401)


def scripted_error(status: int) -> web.Response:
    """What a scripted fault of this status looks like from Zendesk."""
    if status == 429:
        # Zendesk has been seen answering its rate limit in plain text.
        return web.Response(
            status=429, text=RATE_LIMITED, headers={"Retry-After": "60"}
        )
    if status == 404:
        return not_found()
    return error(status, "InternalError" if status >= 500 else "BadRequest")


def routes() -> list[web.RouteDef]:
    routes: list[web.RouteDef] = []
    for suffix in ("", ".json"):
        routes += [
            web.post(f"{BASE}{suffix}", create_ticket),
            web.get(f"{BASE}{suffix}", list_tickets),
            web.get(f"{BASE}/{{id:\\d+}}{suffix}", show_ticket),
            web.put(f"{BASE}/{{id:\\d+}}{suffix}", update_ticket),
            web.get(f"{BASE}/count{suffix}", count_tickets),
            web.get(f"/api/v2/ticket_fields{suffix}", list_ticket_fields),
        ]
    return routes


# Handlers


async def create_ticket(request: web.Request) -> web.Response:
    body = await _ticket_body(request)
    if isinstance(body, web.Response):
        return body
    comment = _comment(body.get("comment"))
    if comment is None:
        return invalid("base", "Description: cannot be blank", "BlankValue")

    store = request.app[STORE]
    ticket = ZendeskTicket(
        id=store.next_zendesk_id(),
        subject=str(body.get("subject") or comment.body.split("\n", 1)[0][:80]),
        description=comment.body,
        created=now(),
    )
    refused = _apply(ticket, body)
    if refused is not None:
        return refused
    ticket.comments.append(comment)

    store.zendesk[ticket.id] = ticket
    location = f"{request.scheme}://{request.host}{BASE}/{ticket.id}.json"
    return web.json_response(
        {"ticket": _render(request, ticket), "audit": _audit(ticket, comment)},
        status=201,
        headers={"Location": location},
    )


async def show_ticket(request: web.Request) -> web.Response:
    ticket = request.app[STORE].zendesk.get(int(request.match_info["id"]))
    if ticket is None:
        return not_found()
    return web.json_response({"ticket": _render(request, ticket)})


async def update_ticket(request: web.Request) -> web.Response:
    ticket = request.app[STORE].zendesk.get(int(request.match_info["id"]))
    if ticket is None:
        return not_found()
    body = await _ticket_body(request)
    if isinstance(body, web.Response):
        return body
    if ticket.status == "closed":
        return invalid("status", "Status: closed prevents ticket update", "closed")

    comment = _comment(body.get("comment"))
    refused = _apply(ticket, body)
    if refused is not None:
        return refused
    if comment is not None:
        ticket.comments.append(comment)
    ticket.updated = now()
    return web.json_response(
        {"ticket": _render(request, ticket), "audit": _audit(ticket, comment)}
    )


async def list_tickets(request: web.Request) -> web.Response:
    """All tickets, or those with ?external_id=; offset pages of ?per_page."""
    tickets = list(request.app[STORE].zendesk.values())
    wanted = request.query.get("external_id")
    if wanted is not None:
        tickets = [t for t in tickets if t.external_id == wanted]
    try:
        per_page = min(100, max(1, int(request.query.get("per_page", "100"))))
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        return error(400, "InvalidPaginationParameter", "page must be a number")

    start = (page - 1) * per_page
    chunk = tickets[start : start + per_page]
    more = start + per_page < len(tickets)
    next_page = None
    if more:
        next_page = f"{request.scheme}://{request.host}{request.path}?page={page + 1}"
    return web.json_response(
        {
            "tickets": [_render(request, t) for t in chunk],
            "count": len(tickets),
            "next_page": next_page,
            "previous_page": None,
        }
    )


async def count_tickets(request: web.Request) -> web.Response:
    """The ticket count; Zendesk's may lag, the sandbox's never does."""
    count = {"value": len(request.app[STORE].zendesk), "refreshed_at": iso(now())}
    return web.json_response({"count": count})


async def list_ticket_fields(request: web.Request) -> web.Response:
    fields = [
        {"id": 360000 + n, "type": kind, "title": title, "active": True}
        for n, (kind, title) in enumerate(SYSTEM_FIELDS, start=1)
    ]
    return web.json_response(
        {
            "ticket_fields": fields,
            "count": len(fields),
            "next_page": None,
            "previous_page": None,
        }
    )


# Writing


def _apply(ticket: ZendeskTicket, body: dict[str, Any]) -> web.Response | None:
    """Check every field first; change the ticket only if all are valid."""
    checks = {"status": STATUSES, "priority": PRIORITIES, "type": TYPES}
    for field, allowed in checks.items():
        if field in body and body[field] is not None and body[field] not in allowed:
            return invalid(field, f"{field.title()}: {body[field]} is not valid")
    tags = body.get("tags", ticket.tags)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return invalid("tags", "Tags: must be a list of words")

    for field in ("status", "priority", "type", "external_id", "subject"):
        if field in body:
            setattr(ticket, field, None if body[field] is None else str(body[field]))
    if "group_id" in body:
        ticket.group_id = body["group_id"]
    # A normal update replaces the whole tag list.
    ticket.tags = list(tags)
    return None


def _comment(raw: object) -> ZendeskComment | None:
    if not isinstance(raw, dict):
        return None
    text = raw.get("body") or raw.get("html_body")
    if not isinstance(text, str) or not text.strip():
        return None
    return ZendeskComment(body=text, public=raw.get("public", True) is not False)


# Reading


def _render(request: web.Request, ticket: ZendeskTicket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "url": f"{request.scheme}://{request.host}{BASE}/{ticket.id}.json",
        "external_id": ticket.external_id,
        "subject": ticket.subject,
        "description": ticket.description,
        "status": ticket.status,
        "priority": ticket.priority,
        "type": ticket.type,
        "tags": list(ticket.tags),
        "group_id": ticket.group_id,
        "created_at": iso(ticket.created),
        "updated_at": iso(ticket.updated),
    }


def _audit(ticket: ZendeskTicket, comment: ZendeskComment | None) -> dict[str, Any]:
    events: list[dict[str, Any]] = [
        {"type": "Change", "field_name": "status", "value": ticket.status}
    ]
    if comment is not None:
        events.append(
            {"type": "Comment", "body": comment.body, "public": comment.public}
        )
    return {"ticket_id": ticket.id, "created_at": iso(now()), "events": events}


async def _ticket_body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return web.Response(status=400, text="Bad request: the body is not JSON")
    ticket = body.get("ticket") if isinstance(body, dict) else None
    if not isinstance(ticket, dict):
        return invalid("base", "Ticket: is missing", "BlankValue")
    return ticket
