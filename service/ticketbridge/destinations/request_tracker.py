"""Request Tracker 5 (REST2): tickets carrying the marker in a custom field.

RT answers an update with 200 and a list of human messages whether or not
each change took, and only logs an unknown custom field on create. So every
status change is read back here at once, and the sender's follow-up read
checks the marker on the ticket.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import RequestTrackerSettings
from ticketbridge.destinations.base import (
    DestinationError,
    PermanentError,
    ProbeResult,
    TicketRef,
    TicketView,
)
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

# RT's schema declares Tickets.Subject varchar(200) for every database it
# supports (transaction subjects get 255): PostgreSQL refuses a longer one,
# MySQL in strict mode too, and others cut it. 200 UTF-16 units are at most
# 200 characters, so a subject cut to this always fits.
SUBJECT_LIMIT = 200
# RT stores message content without a length limit of its own; it is cut like
# Jira's text fields, so one event cannot fill a ticket with megabytes.
TEXT_LIMIT = 32767
# Statuses of RT's default lifecycle that are not active.
INACTIVE = frozenset({"resolved", "rejected", "deleted"})


class RequestTrackerDestination:
    """Creates, comments on, resolves, reopens and looks up RT tickets."""

    def __init__(
        self,
        name: str,
        settings: RequestTrackerSettings,
        *,
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._api = f"{str(settings.url).rstrip('/')}/REST/2.0"
        self._templates = templates_for(
            f"destinations.{name}.templates", settings.templates
        )
        if settings.token is None:
            raise ValueError("request_tracker: token is missing")
        token = settings.token.get_secret_value()
        self._http = HttpClient(
            name,
            settings,
            headers={"Authorization": f"token {token}"},
            secrets=[token],
            on_request=on_request,
            read_retry=read_retry,
        )

    async def create(self, event: Event, marker: str) -> TicketRef:
        """Open a ticket in the queue whose marker custom field is `marker`.

        Fields are sent only here: later updates carry only a comment and the
        status, so whatever a person edits on the ticket stays theirs.
        """
        ticket = await self.preview(event, marker)

        reply = await self._http.request(
            "create", "POST", f"{self._api}/ticket", json=ticket
        )

        try:
            number = str(dig(reply.body, "id", kind=(str, int)))
        except MissingField as exc:
            raise self._http.unexpected("create", exc) from exc
        ref = TicketRef(number, number)
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The ticket of the create request, for `create` and shadow mode."""
        check_marker(marker)
        text = await render(
            self._templates,
            event,
            destination=self.name,
            operation="create",
            marker=marker,
        )
        ticket: dict[str, Any] = {
            "Queue": self.settings.queue,
            "Subject": self._fit("Subject", text.summary, SUBJECT_LIMIT),
            "Content": self._fit("Content", text.description, TEXT_LIMIT),
            "ContentType": "text/plain",
            "CustomFields": {self.settings.custom_field: marker},
        }
        priority = self.settings.priority_map.get(event.severity.lower())
        if priority is not None:
            ticket["Priority"] = priority
        for field, value in text.fields.items():
            ticket[field] = self._fit(field, value, TEXT_LIMIT)
        if self.settings.requestor:
            ticket["Requestor"] = self.settings.requestor
        return ticket

    async def note(self, ticket: TicketRef, text: str) -> None:
        """Add plain text as a comment (not mailed to requestors)."""
        await self._comment("comment", ticket, text)

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a comment (not mailed to requestors)."""
        text = await self._render(event, "comment")
        await self._comment("comment", ticket, text.comment)
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Set the resolved status, read it back, then add the event as a comment.

        The comment is part of the resolve: when it fails, the delivery is
        retried, and a retry that finds the ticket already inactive (its
        change took, the answer was lost) adds only the comment. Known
        shortcoming: a comment whose answer was lost is added twice.
        """
        # Rendered first: a broken template must fail before any request.
        text = await self._render(event, "resolve")
        status = await self._status(ticket, "resolve")
        if status in INACTIVE or status == self.settings.resolved_status.lower():
            log.info("ticket already resolved", extra=self._fields(ticket))
        else:
            await self._set_status("resolve", ticket, self.settings.resolved_status)
            log.info("ticket resolved", extra=self._fields(ticket))
        await self._comment("resolve", ticket, text.comment)

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Set the reopened status, read it back, then add the event as a comment."""
        text = await self._render(event, "reopen")
        await self._set_status("reopen", ticket, self.settings.reopened_status)
        log.info("ticket reopened", extra=self._fields(ticket))
        await self._note_after("reopen", ticket, text.comment)

    async def find(self, marker: str) -> TicketRef | None:
        """Search the queue with TicketSQL on the marker custom field.

        TicketSQL compares values regardless of letter case; harmless, since
        the router's markers are lowercase hex.
        """
        check_marker(marker)
        query = (
            f"Queue = {_quote(self.settings.queue)} AND "
            f"{_quote('CF.{' + self.settings.custom_field + '}')} = {_quote(marker)}"
        )
        params = {"query": query, "orderby": "id", "per_page": "2"}
        reply = await self._http.get("find", f"{self._api}/tickets", params=params)

        try:
            items = dig(reply.body, "items", kind=list)
            ids = [str(dig(i, "id", kind=(str, int))) for i in items]
        except MissingField as exc:
            raise self._http.unexpected("find", exc) from exc
        if not ids:
            return None
        if len(ids) > 1:
            log.warning(
                "several tickets carry one marker",
                extra={"destination": self.name, "marker": marker},
            )
        return TicketRef(ids[0], ids[0])

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the ticket back: the marker custom field and the status."""
        body = await self._ticket(ticket, "get")
        status = str(body["Status"])
        closed = status.lower() in INACTIVE
        closed = closed or status.lower() == self.settings.resolved_status.lower()
        return TicketView(
            ref=ticket,
            marker_present=marker in _values(body, self.settings.custom_field),
            is_open=not closed,
            status=status,
        )

    async def probe(self) -> list[ProbeResult]:
        """Preflight: the token (GET /rt needs a user) and the queue, by name."""
        queue = self.settings.queue
        return await probe_reads(
            self._http,
            [
                Read(
                    "credentials",
                    f"{self._api}/rt",
                    "Version",
                    lambda rt: (True, f"RT {rt['Version']} accepts the token"),
                    {401: "RT refused the token"},
                ),
                Read(
                    "queue",
                    f"{self._api}/queue/{quote(queue, safe='')}",
                    "id",
                    lambda found: _usable_queue(found, queue),
                    {
                        403: f"the token's user may not see queue {queue}",
                        404: f"no queue named {queue!r}",
                    },
                ),
            ],
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _set_status(self, operation: str, ticket: TicketRef, wanted: str) -> None:
        reply = await self._http.request(
            operation,
            "PUT",
            self._ticket_url(ticket),
            json={"Status": wanted},
            body="optional",
            ticket=ticket.key,
        )

        # RT says 200 even when it refused: what it said is kept for the error.
        status = await self._status(ticket, operation)
        if status != wanted.lower():
            said = "; ".join(str(m) for m in reply.body or [] if m)
            raise PermanentError(
                f"{self.name} {operation}: RT did not set ticket {ticket.key} to "
                f"status {wanted!r}, it is still {status!r} (RT said: "
                f"{said or 'nothing'}); check the queue's lifecycle and the "
                "token user's rights"
            )

    async def _note_after(self, operation: str, ticket: TicketRef, text: str) -> None:
        try:
            await self._comment(operation, ticket, text)
        except DestinationError as exc:
            log.warning("status note not added: %s", exc, extra=self._fields(ticket))

    async def _comment(self, operation: str, ticket: TicketRef, text: str) -> None:
        await self._http.request(
            operation,
            "POST",
            f"{self._ticket_url(ticket)}/comment",
            json={
                "Content": self._fit("Content", text, TEXT_LIMIT),
                "ContentType": "text/plain",
            },
            body="optional",
            ticket=ticket.key,
        )

    async def _status(self, ticket: TicketRef, operation: str) -> str:
        return str((await self._ticket(ticket, operation))["Status"]).lower()

    async def _ticket(self, ticket: TicketRef, operation: str) -> dict[str, Any]:
        reply = await self._http.get(
            operation, self._ticket_url(ticket), ticket=ticket.key
        )
        try:
            dig(reply.body, "Status", kind=str)
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc
        body: dict[str, Any] = reply.body
        return body

    async def _render(self, event: Event, operation: str) -> Rendered:
        return await render(
            self._templates, event, destination=self.name, operation=operation
        )

    def _fit(self, field: str, text: str, limit: int) -> str:
        return fit(self.name, field, text, limit)

    def _ticket_url(self, ticket: TicketRef) -> str:
        if not ticket.id.isdigit():
            raise ValueError(f"rt ticket id {ticket.id[:20]!r} is not a number")
        return f"{self._api}/ticket/{ticket.id}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def _usable_queue(found: dict[str, Any], queue: str) -> tuple[bool, str]:
    # RT loads a disabled queue by name but creates no ticket in it.
    if str(found.get("Disabled", "0")) not in ("0", ""):
        return False, f"queue {queue} is disabled"
    return True, f"queue {queue} exists"


def _values(ticket: dict[str, Any], field: str) -> list[str]:
    """The values of custom field `field` in a REST2 ticket record.

    RT 5 answers `CustomFields` as a list of objects with `name` and `values`
    (a mapping of name to value is only what it accepts on create). It finds
    a field by name regardless of letter case, on create and in TicketSQL,
    and answers with the field's own spelling: so the name is compared
    case-insensitively here, or a marker RT stored would look missing.
    """
    fields = ticket.get("CustomFields")
    if not isinstance(fields, list):
        return []
    wanted = field.casefold()
    found: list[str] = []
    for item in fields:
        if not isinstance(item, dict) or str(item.get("name", "")).casefold() != wanted:
            continue
        values = item.get("values")
        if isinstance(values, list):
            found.extend(str(v) for v in values)
    return found


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"
