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
    check_marker,
    dig,
    render_text,
    truncate,
)
from ticketbridge.destinations.probe import probe_reads
from ticketbridge.events import Event

log = logging.getLogger(__name__)

SUBJECT_LIMIT = 200
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
        """Open a ticket in the queue whose marker custom field is `marker`."""
        check_marker(marker)
        text = render_text(event)
        ticket: dict[str, Any] = {
            "Queue": self.settings.queue,
            "Subject": truncate(text.title, SUBJECT_LIMIT),
            "Content": text.body,
            "ContentType": "text/plain",
            "CustomFields": {self.settings.custom_field: marker},
        }
        if self.settings.requestor:
            ticket["Requestor"] = self.settings.requestor

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

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a comment (not mailed to requestors)."""
        await self._comment("comment", ticket, render_text(event).comment)
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Set the resolved status, read it back, then add the event as a comment.

        A ticket already inactive is left alone. The comment comes after the
        change so that a failed comment never makes the sender repeat it.
        """
        status = await self._status(ticket, "resolve")
        if status in INACTIVE or status == self.settings.resolved_status.lower():
            log.info("ticket already resolved", extra=self._fields(ticket))
            return

        await self._set_status("resolve", ticket, self.settings.resolved_status)
        log.info("ticket resolved", extra=self._fields(ticket))
        await self._note_after("resolve", ticket, event)

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Set the reopened status, read it back, then add the event as a comment."""
        await self._set_status("reopen", ticket, self.settings.reopened_status)
        log.info("ticket reopened", extra=self._fields(ticket))
        await self._note_after("reopen", ticket, event)

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
        """Preflight: the token and the queue."""
        queue = quote(self.settings.queue, safe="")
        return await probe_reads(
            self._http,
            [
                ("credentials", f"{self._api}/rt"),
                ("queue", f"{self._api}/queue/{queue}"),
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

    async def _note_after(
        self, operation: str, ticket: TicketRef, event: Event
    ) -> None:
        try:
            await self._comment(operation, ticket, render_text(event).comment)
        except DestinationError as exc:
            log.warning("status note not added: %s", exc, extra=self._fields(ticket))

    async def _comment(self, operation: str, ticket: TicketRef, text: str) -> None:
        await self._http.request(
            operation,
            "POST",
            f"{self._ticket_url(ticket)}/comment",
            json={"Content": text, "ContentType": "text/plain"},
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

    def _ticket_url(self, ticket: TicketRef) -> str:
        if not ticket.id.isdigit():
            raise ValueError(f"rt ticket id {ticket.id[:20]!r} is not a number")
        return f"{self._api}/ticket/{ticket.id}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


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
