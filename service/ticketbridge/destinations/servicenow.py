"""ServiceNow: Table API records carrying the marker as their correlation_id."""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import ServiceNowSettings
from ticketbridge.destinations.base import (
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
from ticketbridge.destinations.rendering import fit, render
from ticketbridge.destinations.servicenow_probe import probe_servicenow
from ticketbridge.events import Event
from ticketbridge.templates import templates_for
from ticketbridge.text import check_marker, encoded_query_value

log = logging.getLogger(__name__)

# Field lengths of the out-of-box incident table (dictionary max_length);
# an instance may have changed them.
SHORT_DESCRIPTION_LIMIT = 160
# No documented limit for description and journal fields: they are cut like
# Jira's text fields, so one event cannot fill a record with megabytes.
TEXT_LIMIT = 32767
FIELDS = "sys_id,number,state,correlation_id,close_code"
# Incident states from 6 (Resolved) up are closed ones.
FIRST_CLOSED_STATE = 6
# One record is expected; a few more show an ambiguity or a dropped condition.
FIND_LIMIT = 5


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
        self._base = str(settings.url).rstrip("/")
        table = quote(settings.table, safe="")
        self._table = f"{self._base}/api/now/table/{table}"
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
        """Insert a record whose correlation_id is `marker`.

        Fields are sent only here: later updates carry only the journal, the
        state and the resolution fields, so a person's edits stay theirs.
        """
        record = await self.preview(event, marker)

        reply = await self._http.request("create", "POST", self._table, json=record)

        ref = self._ref("create", reply.body)
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The record of the create request, for `create` and shadow mode."""
        check_marker(marker)
        text = await render(
            self._templates,
            event,
            destination=self.name,
            operation="create",
            marker=marker,
        )
        record = {
            "short_description": self._fit(
                "short_description", text.summary, SHORT_DESCRIPTION_LIMIT
            ),
            "description": self._fit("description", text.description, TEXT_LIMIT),
            "correlation_id": marker,
            "correlation_display": "ticketbridge",
        }
        priority = self.settings.priority_map.get(event.severity.lower())
        if priority is not None:
            record["impact"] = str(priority.impact)
            record["urgency"] = str(priority.urgency)
        for field, value in text.fields.items():
            record[field] = self._fit(field, value, TEXT_LIMIT)
        if self.settings.caller_id:
            record["caller_id"] = self.settings.caller_id
        if self.settings.assignment_group:
            record["assignment_group"] = self.settings.assignment_group
        return record

    async def note(self, ticket: TicketRef, text: str) -> None:
        """Add plain text to the comments journal."""
        await self._update("comment", ticket, {"comments": text})

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Set the record back to `reopened_state` (In Progress), with the event.

        Only the state and the journal change; the resolution fields stay as
        the record's history.
        """
        text = await render(
            self._templates, event, destination=self.name, operation="comment"
        )
        change = {"state": self.settings.reopened_state, "comments": text.comment}
        await self._update("reopen", ticket, change)
        log.info("ticket reopened", extra=self._fields(ticket))

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event to the record's comments journal."""
        text = await render(
            self._templates, event, destination=self.name, operation="comment"
        )
        note = self._fit("comments", text.comment, TEXT_LIMIT)
        await self._update("comment", ticket, {"comments": note})
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Set the resolved state with close code and notes in one update.

        ServiceNow drops a close_code that is not a choice on the instance and
        then refuses the update (403, data policy): a permanent error.
        """
        text = await render(
            self._templates, event, destination=self.name, operation="resolve"
        )
        change = {
            "state": self.settings.resolved_state,
            "close_code": self.settings.close_code,
            "close_notes": self._fit("close_notes", text.comment, TEXT_LIMIT),
        }
        await self._update("resolve", ticket, change)
        log.info("ticket resolved", extra=self._fields(ticket))

    async def find(self, marker: str) -> TicketRef | None:
        """Look the record up by correlation_id; only exact matches count.

        The marker's charset keeps `^`, the encoded-query separator, out of the
        query, so the lookup cannot grow into another condition; the value is
        checked again where the query is built. An instance drops a condition
        it cannot apply and returns every row (BC-11), so rows are checked
        here: rows that do not carry the marker are refused as a
        configuration fault, and several that do as ambiguous.
        """
        check_marker(marker)
        params = {
            "sysparm_query": f"correlation_id={encoded_query_value(marker)}",
            "sysparm_fields": FIELDS,
            "sysparm_limit": str(FIND_LIMIT),
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
            resolution=str(result.get("close_code") or ""),
        )

    async def probe(self) -> list[ProbeResult]:
        """Preflight checks, reads only; see `servicenow_probe`."""
        return await probe_servicenow(
            self._http, self._base, self._table, self.settings
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
        rows = [r for r in results if isinstance(r, dict)]
        matches = [r for r in rows if r.get("correlation_id") == marker]
        if not matches and rows:
            raise PermanentError(
                f"{self.name} find: the lookup by correlation_id={marker} returned "
                f"{len(rows)} record(s) without it; the instance ignored the "
                f"condition (is correlation_id readable on table "
                f"{self.settings.table}?)"
            )
        if not matches:
            return None

        still_open = [r for r in matches if _is_open_state(r.get("state"))]
        chosen = matches if len(matches) == 1 else still_open
        if len(matches) > 1:
            log.warning(
                "several tickets carry one marker",
                extra={"destination": self.name, "marker": marker},
            )
        if len(chosen) != 1:
            numbers = ", ".join(str(r.get("number")) for r in matches)
            raise PermanentError(
                f"{self.name} find: {len(matches)} records carry correlation_id "
                f"{marker} ({numbers}), {len(still_open)} open; "
                "close the duplicates by hand"
            )
        return self._ref("find", {"result": chosen[0]})

    def _ref(self, operation: str, body: Any) -> TicketRef:
        try:
            sys_id = dig(body, "result", "sys_id", kind=str)
            number = dig(body, "result", "number", kind=str)
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc
        return TicketRef(sys_id, number)

    def _fit(self, field: str, text: str, limit: int) -> str:
        return fit(self.name, field, text, limit)

    def _record(self, ticket: TicketRef) -> str:
        return f"{self._table}/{quote(ticket.id, safe='')}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def _is_open_state(state: object) -> bool:
    text = str(state or "")
    return text.isdigit() and int(text) < FIRST_CLOSED_STATE


def _authorization(settings: ServiceNowSettings) -> tuple[str, list[str]]:
    if settings.password is None:
        raise ValueError("servicenow: password is missing")
    password = settings.password.get_secret_value()
    pair = f"{settings.username}:{password}".encode()
    encoded = base64.b64encode(pair).decode("ascii")
    return f"Basic {encoded}", [password, encoded]
