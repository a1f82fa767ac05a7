"""Webhook: each operation is a JSON POST to one URL.

The body is the event's record plus `text`: the summary, description and
extra fields rendered from the destination's templates.

Every POST carries `Idempotency-Key: <marker>:<operation>:<source event id>`
so a receiver can drop the repeats that retries produce. Any 2xx counts as
accepted, whatever its body, except an HTML page (a proxy's or a login form).

Verification needs the receiver's help. With `verify_url` set, the receiver
must answer `GET {verify_url}/{marker}` with the last payload it accepted for
that marker (a JSON object with at least `marker` and `operation`; `id` if it
has its own), or 404 if it has none. Without `verify_url` nothing can be read
back: the only proof of delivery is the 2xx answer to the POST, and `get`
reports the ticket as "unverifiable" with the state the last POST implied.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import WebhookSettings
from ticketbridge.destinations.base import (
    DestinationError,
    ProbeResult,
    TicketNotFound,
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
from ticketbridge.destinations.probe import OPERATION, Checks
from ticketbridge.destinations.rendering import render
from ticketbridge.events import Event
from ticketbridge.templates import templates_for
from ticketbridge.text import check_marker

log = logging.getLogger(__name__)


class WebhookDestination:
    """Posts events to a URL; reads them back from a verify URL if there is one.

    A ticket's key is its marker, so comment and resolve can name it.
    """

    def __init__(
        self,
        name: str,
        settings: WebhookSettings,
        *,
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._url = str(settings.url)
        self._templates = templates_for(
            f"destinations.{name}.templates", settings.templates
        )
        self._verify = (
            str(settings.verify_url).rstrip("/") if settings.verify_url else None
        )
        headers = dict(settings.headers)
        # A webhook URL often carries its secret in the path; extra headers
        # often carry an API key. Keep all of them out of messages.
        secrets = [self._url, *headers.values()]
        if self._verify:
            secrets.append(self._verify)
        if settings.probe_url is not None:
            secrets.append(str(settings.probe_url))
        if settings.token is not None:
            token = settings.token.get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
            secrets.append(token)
        self._http = HttpClient(
            name,
            settings,
            headers=headers,
            secrets=secrets,
            on_request=on_request,
            read_retry=read_retry,
        )
        # Last operation per marker: all `get` has to go on without a verify URL.
        # TODO(webhook-state): lost on restart, when a resolved ticket reads as
        # open until resolved again; remove once the ledger passes the operation.
        self._last: dict[str, str] = {}

    async def create(self, event: Event, marker: str) -> TicketRef:
        """POST the event as `create`; the receiver's `id` becomes the ticket id."""
        body = await self._post("create", check_marker(marker), event, None)

        ticket_id = body.get("id") if isinstance(body, dict) else None
        ref = TicketRef(str(ticket_id) if ticket_id else marker, marker)
        log.info("ticket created", extra=self._fields(ref))
        return ref

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """POST the event as `comment`."""
        await self._post("comment", check_marker(ticket.key), event, ticket)
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """POST the event as `resolve`."""
        await self._post("resolve", check_marker(ticket.key), event, ticket)
        log.info("ticket resolved", extra=self._fields(ticket))

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """POST the event as `reopen`."""
        await self._post("reopen", check_marker(ticket.key), event, ticket)
        log.info("ticket reopened", extra=self._fields(ticket))

    async def find(self, marker: str) -> TicketRef | None:
        """Ask the verify URL for the marker; without one nothing can be found."""
        check_marker(marker)
        if self._verify is None:
            return None

        try:
            reply = await self._http.get(
                "find", self._verify_url(marker), ticket=marker
            )
        except TicketNotFound:
            return None

        ticket_id = reply.body.get("id") if isinstance(reply.body, dict) else None
        return TicketRef(str(ticket_id) if ticket_id else marker, marker)

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the last accepted payload back, or report "unverifiable"."""
        check_marker(marker)
        if self._verify is None:
            is_open = self._last.get(marker) != "resolve"
            return TicketView(ticket, True, is_open, "unverifiable")

        reply = await self._http.get("get", self._verify_url(marker), ticket=ticket.key)

        try:
            operation = dig(reply.body, "operation", kind=str)
        except MissingField as exc:
            raise self._http.unexpected("get", exc) from exc
        return TicketView(
            ref=ticket,
            marker_present=reply.body.get("marker") == marker,
            is_open=operation != "resolve",
            status=operation,
        )

    async def probe(self) -> list[ProbeResult]:
        """GET `probe_url` if there is one; a webhook has nothing else to ask."""
        checks = Checks(self._http)
        if self.settings.probe_url is None:
            checks.passed("configured", "no probe_url: nothing to check before use")
            return checks.results

        try:
            await self._http.request(
                OPERATION, "GET", str(self.settings.probe_url), body="lenient"
            )
        except DestinationError as exc:
            checks.error("probe_url", exc)
        else:
            checks.passed("probe_url", "the probe URL answers")
        return checks.results

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The body `create` would POST, for shadow mode and `ticketbridge route`."""
        return await self._payload("create", marker, event, None)

    async def _payload(
        self, operation: str, marker: str, event: Event, ticket: TicketRef | None
    ) -> dict[str, Any]:
        text = await render(
            self._templates,
            event,
            destination=self.name,
            operation=operation,
            marker=marker,
        )
        # Built as data and serialised by the JSON encoder: quotes, newlines
        # and backslashes in event text cannot break the body.
        return {
            "operation": operation,
            "marker": marker,
            **event.to_record(),
            "ticket": {"id": ticket.id, "key": ticket.key} if ticket else None,
            "text": {
                "summary": text.summary,
                "description": text.description,
                "fields": text.fields,
            },
        }

    async def _post(
        self, operation: str, marker: str, event: Event, ticket: TicketRef | None
    ) -> Any:
        payload = await self._payload(operation, marker, event, ticket)
        key = idempotency_key(marker, operation, event)

        reply = await self._http.request(
            operation,
            "POST",
            self._url,
            json=payload,
            # Receivers often answer "ok" as plain text: only an HTML page (a
            # proxy's or a login form) casts doubt on the delivery.
            body="lenient",
            # A 404 here means a wrong URL, not a missing ticket: no `ticket`.
            headers={"Idempotency-Key": key},
        )

        self._last[marker] = operation
        return reply.body

    def _verify_url(self, marker: str) -> str:
        return f"{self._verify}/{marker}"

    def _fields(self, ticket: TicketRef) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key}


def idempotency_key(marker: str, operation: str, event: Event) -> str:
    """`<marker>:<operation>:<source event id>`, safe to send as a header."""
    # Event ids are free text; percent-encoding keeps a header value printable.
    return f"{marker}:{operation}:{quote(event.source_event_id, safe='')}"
