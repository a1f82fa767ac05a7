"""ServiceNow: Table API records carrying the marker as their correlation_id."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import ServiceNowSettings
from ticketbridge.destinations.base import (
    PermanentError,
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
from ticketbridge.events import Event

log = logging.getLogger(__name__)

SHORT_DESCRIPTION_LIMIT = 160
FIELDS = "sys_id,number,state,correlation_id"
# Incident states from 6 (Resolved) up are closed ones.
FIRST_CLOSED_STATE = 6


class ServiceNowDestination:
    """Creates, comments on, resolves and looks up ServiceNow records."""

    def __init__(
        self,
        name: str,
        settings: ServiceNowSettings,
        *,
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        base = str(settings.url).rstrip("/")
        self._table = f"{base}/api/now/table/{quote(settings.table, safe='')}"
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
        """Insert a record whose correlation_id is `marker`."""
        check_marker(marker)
        record = incident_record(self.settings, event, marker)

        reply = await self._http.request("create", "POST", self._table, json=record)

        ref = self._ref("create", reply.body)
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event to the record's comments journal."""
        await self._update("comment", ticket, {"comments": render_text(event).comment})
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Set the resolved state with close code and notes in one update.

        ServiceNow drops a close_code that is not a choice on the instance and
        then refuses the update (403, data policy): a permanent error.
        """
        await self._update("resolve", ticket, resolve_change(self.settings, event))
        log.info("ticket resolved", extra=self._fields(ticket))

    async def find(self, marker: str) -> TicketRef | None:
        """Look the record up by correlation_id.

        The marker's charset keeps `^`, the encoded-query separator, out of the
        query, so the lookup cannot grow into another condition.
        """
        check_marker(marker)
        params = {
            "sysparm_query": f"correlation_id={marker}",
            "sysparm_fields": FIELDS,
            "sysparm_limit": "2",
        }

        try:
            reply = await self._http.get("find", self._table, params=params)
        except PermanentError as exc:
            # Version 1 of the Table API answers an empty query with 404.
            if exc.status == 404:
                return None
            raise

        return self._first(reply.body, marker)

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the record back: correlation_id and state."""
        reply = await self._http.get(
            "get",
            self._record(ticket),
            params={"sysparm_fields": FIELDS},
            ticket=ticket.key,
        )

        try:
            result = dig(reply.body, "result", kind=dict)
            state = str(dig(result, "state", kind=(str, int)))
            if not state.isdigit():
                raise MissingField(f"state {state[:20]!r} is not a number")
        except MissingField as exc:
            raise self._http.unexpected("get", exc) from exc
        return TicketView(
            ref=TicketRef(ticket.id, str(result.get("number") or ticket.key)),
            marker_present=result.get("correlation_id") == marker,
            is_open=int(state) < FIRST_CLOSED_STATE,
            status=state,
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _update(
        self, operation: str, ticket: TicketRef, change: dict[str, str]
    ) -> None:
        await self._http.request(
            operation,
            "PATCH",
            self._record(ticket),
            json=change,
            params={"sysparm_fields": FIELDS},
            ticket=ticket.key,
        )

    def _first(self, body: Any, marker: str) -> TicketRef | None:
        try:
            results = dig(body, "result", kind=list)
        except MissingField as exc:
            raise self._http.unexpected("find", exc) from exc
        if not results:
            return None

        if len(results) > 1:
            log.warning(
                "several tickets carry one marker",
                extra={"destination": self.name, "marker": marker},
            )
        return self._ref("find", {"result": results[0]})

    def _ref(self, operation: str, body: Any) -> TicketRef:
        try:
            sys_id = dig(body, "result", "sys_id", kind=str)
            number = dig(body, "result", "number", kind=str)
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc
        return TicketRef(sys_id, number)

    def _record(self, ticket: TicketRef) -> str:
        return f"{self._table}/{quote(ticket.id, safe='')}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def incident_record(
    settings: ServiceNowSettings, event: Event, marker: str
) -> dict[str, str]:
    """The record `create` inserts for `event`; also shown by `ticketbridge route`."""
    text = render_text(event)
    record = {
        "short_description": truncate(text.title, SHORT_DESCRIPTION_LIMIT),
        "description": text.body,
        "correlation_id": marker,
        "correlation_display": "ticketbridge",
    }
    if settings.caller_id:
        record["caller_id"] = settings.caller_id
    if settings.assignment_group:
        record["assignment_group"] = settings.assignment_group
    return record


def resolve_change(settings: ServiceNowSettings, event: Event) -> dict[str, str]:
    """The update `resolve` sends; also shown by `ticketbridge route`."""
    return {
        "state": settings.resolved_state,
        "close_code": settings.close_code,
        "close_notes": render_text(event).comment,
    }


def _authorization(settings: ServiceNowSettings) -> tuple[str, list[str]]:
    if settings.password is None:
        raise ValueError("servicenow: password is missing")
    password = settings.password.get_secret_value()
    pair = f"{settings.username}:{password}".encode()
    encoded = base64.b64encode(pair).decode("ascii")
    return f"Basic {encoded}", [password, encoded]
