"""Zendesk: tickets carrying the correlation marker as their external_id.

Every note the bridge writes is a private comment (`public: false`), so the
requester is never mailed. A 429 carries Retry-After, which the HTTP layer
keeps on the error for the sender to honour; its body may be plain text.
Zendesk may answer 200 to an update that did not take effect, so the sender's
follow-up read of the ticket is what proves a change.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from ticketbridge.config.model import ZendeskSettings
from ticketbridge.destinations.base import ProbeResult, TicketRef, TicketView
from ticketbridge.destinations.http import (
    HttpClient,
    MissingField,
    OnRequest,
    ReadRetry,
    dig,
)
from ticketbridge.destinations.probe import Read, probe_reads
from ticketbridge.destinations.rendering import fit, render
from ticketbridge.events import Event
from ticketbridge.templates import Rendered, templates_for
from ticketbridge.text import check_marker

log = logging.getLogger(__name__)

# Zendesk documents no subject limit; 255 is what its ticket form accepts.
SUBJECT_LIMIT = 255
# Comments and extra fields; no documented limit, but one event must not
# fill a ticket with megabytes.
COMMENT_LIMIT = 65535
CLOSED_STATUSES = frozenset({"solved", "closed"})


class ZendeskDestination:
    """Creates, comments on, solves, reopens and looks up Zendesk tickets."""

    def __init__(
        self,
        name: str,
        settings: ZendeskSettings,
        *,
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._api = f"{str(settings.url).rstrip('/')}/api/v2"
        self._templates = templates_for(
            f"destinations.{name}.templates", settings.templates
        )
        authorization, secrets = _authorization(settings)
        self._http = HttpClient(
            name,
            settings,
            headers={"Authorization": authorization},
            secrets=secrets,
            on_request=on_request,
            read_retry=read_retry,
        )

    async def create(self, event: Event, marker: str) -> TicketRef:
        """Open a ticket whose external_id is `marker`, its text from the templates.

        Fields are sent only here: later updates carry only a comment and the
        status, so whatever a person edits on the ticket stays theirs.
        """
        ticket = await self.preview(event, marker)

        reply = await self._http.request(
            "create", "POST", f"{self._api}/tickets", json={"ticket": ticket}
        )

        ref = self._ref("create", reply.body)
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The ticket of the create request, for `create` and shadow mode.

        The description is the first comment, private like every note.
        """
        check_marker(marker)
        text = await render(
            self._templates,
            event,
            destination=self.name,
            operation="create",
            marker=marker,
        )
        ticket: dict[str, Any] = {
            "subject": self._fit("subject", text.summary, SUBJECT_LIMIT),
            "comment": self._private(text.description),
            "external_id": marker,
            "type": self.settings.ticket_type,
            "tags": list(self.settings.tags),
        }
        severity = event.severity.lower()
        priority = self.settings.priority_map.get(severity, self.settings.priority)
        if priority:
            ticket["priority"] = priority
        for field, value in text.fields.items():
            ticket[field] = self._fit(field, value, COMMENT_LIMIT)
        if self.settings.group_id:
            ticket["group_id"] = self.settings.group_id
        return ticket

    async def note(self, ticket: TicketRef, text: str) -> None:
        """Add plain text as a private comment."""
        await self._update("comment", ticket, {"comment": self._private(text)})

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a private comment."""
        text = await self._render(event, "comment")
        await self._update("comment", ticket, {"comment": self._private(text.comment)})
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Set the ticket solved with the event as a private comment.

        A ticket already solved or closed is left alone: a closed ticket
        refuses every update (422), and a repeated resolve must be harmless.
        """
        # Rendered first: a broken template must fail before any request.
        text = await self._render(event, "resolve")
        if await self._status(ticket, "resolve") in CLOSED_STATUSES:
            log.info("ticket already resolved", extra=self._fields(ticket))
            return

        change = {"status": "solved", "comment": self._private(text.comment)}
        await self._update("resolve", ticket, change)
        log.info("ticket resolved", extra=self._fields(ticket))

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Set a solved ticket open again, with the event as a private comment.

        Zendesk cannot reopen a closed ticket: it answers 422, a permanent
        error; a new ticket is then needed.
        """
        text = await self._render(event, "reopen")
        change = {"status": "open", "comment": self._private(text.comment)}
        await self._update("reopen", ticket, change)
        log.info("ticket reopened", extra=self._fields(ticket))

    async def find(self, marker: str) -> TicketRef | None:
        """List tickets by external_id; the oldest wins if there are several.

        Zendesk does not list archived tickets here (closed for months), so
        such a ticket is not found.
        """
        check_marker(marker)
        reply = await self._http.get(
            "find", f"{self._api}/tickets", params={"external_id": marker}
        )

        try:
            tickets = dig(reply.body, "tickets", kind=list)
            ids = sorted(int(dig(t, "id", kind=int)) for t in tickets)
        except MissingField as exc:
            raise self._http.unexpected("find", exc) from exc
        if not ids:
            return None
        if len(ids) > 1:
            log.warning(
                "several tickets carry one marker",
                extra={"destination": self.name, "marker": marker},
            )
        return TicketRef(str(ids[0]), str(ids[0]))

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the ticket back: external_id and status."""
        body = await self._show(ticket, "get")

        try:
            status = dig(body, "ticket", "status", kind=str)
        except MissingField as exc:
            raise self._http.unexpected("get", exc) from exc
        return TicketView(
            ref=ticket,
            marker_present=body["ticket"].get("external_id") == marker,
            is_open=status not in CLOSED_STATUSES,
            status=status,
        )

    async def probe(self) -> list[ProbeResult]:
        """Preflight: the credentials are accepted, tickets and fields readable.

        Zendesk answers /users/me for anyone (as an anonymous user), so the
        ticket count, which needs an agent, is what proves the credentials.
        """
        login = "email and token" if self.settings.email else "the OAuth token"
        return await probe_reads(
            self._http,
            [
                Read(
                    "credentials",
                    f"{self._api}/tickets/count.json",
                    "count",
                    lambda _: (True, "credentials accepted: tickets can be counted"),
                    {
                        401: f"Zendesk refused {login}",
                        403: "the user must be an agent who can see tickets",
                    },
                ),
                Read(
                    "ticket_fields",
                    f"{self._api}/ticket_fields.json",
                    "ticket_fields",
                    _ticket_fields,
                ),
            ],
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _update(
        self, operation: str, ticket: TicketRef, change: dict[str, Any]
    ) -> None:
        await self._http.request(
            operation,
            "PUT",
            self._ticket(ticket),
            json={"ticket": change},
            ticket=ticket.key,
        )

    async def _status(self, ticket: TicketRef, operation: str) -> str:
        body = await self._show(ticket, operation)
        try:
            return str(dig(body, "ticket", "status", kind=str))
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc

    async def _show(self, ticket: TicketRef, operation: str) -> Any:
        reply = await self._http.get(operation, self._ticket(ticket), ticket=ticket.key)
        return reply.body

    async def _render(self, event: Event, operation: str) -> Rendered:
        return await render(
            self._templates, event, destination=self.name, operation=operation
        )

    def _private(self, text: str) -> dict[str, Any]:
        return {"body": self._fit("comment", text, COMMENT_LIMIT), "public": False}

    def _fit(self, field: str, text: str, limit: int) -> str:
        return fit(self.name, field, text, limit)

    def _ref(self, operation: str, body: Any) -> TicketRef:
        try:
            number = str(dig(body, "ticket", "id", kind=int))
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc
        return TicketRef(number, number)

    def _ticket(self, ticket: TicketRef) -> str:
        if not ticket.id.isdigit():
            raise ValueError(f"zendesk ticket id {ticket.id[:20]!r} is not a number")
        return f"{self._api}/tickets/{ticket.id}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def _ticket_fields(answer: dict[str, Any]) -> tuple[bool, str]:
    fields = answer["ticket_fields"]
    if not isinstance(fields, list):
        return False, "ticket_fields is not a list"
    return True, f"{len(fields)} ticket fields readable"


def _authorization(settings: ZendeskSettings) -> tuple[str, list[str]]:
    if settings.token is None:
        raise ValueError("zendesk: token is missing")
    token = settings.token.get_secret_value()
    if not settings.email:
        return f"Bearer {token}", [token]
    pair = f"{settings.email}/token:{token}".encode()
    encoded = base64.b64encode(pair).decode("ascii")
    return f"Basic {encoded}", [token, encoded]
