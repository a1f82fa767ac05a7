"""Redmine: issues carrying the correlation marker in a string custom field.

Redmine accepts some writes without doing them and still answers success:
a status change its workflow does not allow for the API user's role (204),
a custom field not enabled for the project or tracker (201, value dropped),
and a `cf_N` filter on a field not marked "used as a filter" (every issue
comes back). So status changes are read back here at once, the find checks
that what it got carries the marker, and the sender's follow-up read checks
the marker on the issue.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import RedmineSettings
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
    check_marker,
    dig,
    render_text,
    truncate,
)
from ticketbridge.destinations.probe import probe_reads
from ticketbridge.events import Event

log = logging.getLogger(__name__)

# `validates_length_of :subject, maximum: 255` in Redmine's Issue model.
SUBJECT_LIMIT = 255


class RedmineDestination:
    """Creates, notes, resolves, reopens and looks up Redmine issues."""

    def __init__(
        self,
        name: str,
        settings: RedmineSettings,
        *,
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._base = str(settings.url).rstrip("/")
        if settings.api_key is None:
            raise ValueError("redmine: api_key is missing")
        key = settings.api_key.get_secret_value()
        self._http = HttpClient(
            name,
            settings,
            headers={"X-Redmine-API-Key": key},
            secrets=[key],
            on_request=on_request,
            read_retry=read_retry,
        )
        # Status name (casefolded) -> id, read once from /issue_statuses.json.
        self._statuses: dict[str, int] | None = None

    async def create(self, event: Event, marker: str) -> TicketRef:
        """Open an issue whose marker custom field holds `marker`."""
        check_marker(marker)
        text = render_text(event)
        issue: dict[str, Any] = {
            "project_id": self.settings.project,
            "subject": truncate(text.title, SUBJECT_LIMIT),
            "description": text.body,
            "custom_fields": [{"id": self.settings.custom_field_id, "value": marker}],
        }
        if self.settings.tracker_id:
            issue["tracker_id"] = self.settings.tracker_id
        if self.settings.priority_id:
            issue["priority_id"] = self.settings.priority_id

        reply = await self._http.request(
            "create", "POST", f"{self._base}/issues.json", json={"issue": issue}
        )

        try:
            ref = _ref(dig(reply.body, "issue", kind=dict))
        except MissingField as exc:
            raise self._http.unexpected("create", exc) from exc
        self._check_tracker(ref, reply.body["issue"])
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a note (a journal entry)."""
        await self._update("comment", ticket, {"notes": render_text(event).comment})
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Move the issue to the resolved status with the event as its note.

        An issue already resolved or closed is left alone. A change the
        workflow refuses is answered 204 by Redmine; the status is read back
        and a refusal is a permanent error that names the workflow.
        """
        wanted = await self._status_id("resolve", self.settings.resolved_status)
        status = await self._status(ticket, "resolve")
        if status["id"] == wanted or status.get("is_closed") is True:
            log.info("ticket already resolved", extra=self._fields(ticket))
            return

        await self._change_status("resolve", ticket, event, wanted)
        log.info("ticket resolved", extra=self._fields(ticket))

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Move the issue back to the reopened status with the event as its note."""
        wanted = await self._status_id("reopen", self.settings.reopened_status)
        await self._change_status("reopen", ticket, event, wanted)
        log.info("ticket reopened", extra=self._fields(ticket))

    async def find(self, marker: str) -> TicketRef | None:
        """List issues of any status whose marker field equals `marker`.

        The leading `=` keeps a marker from being read as a filter operator.
        An answer with issues that lack the marker means the filter was
        dropped: the field is not "used as a filter", a configuration error.
        """
        check_marker(marker)
        params = {
            f"cf_{self.settings.custom_field_id}": f"={marker}",
            "status_id": "*",
            "sort": "id",
            "limit": "2",
        }
        reply = await self._http.get("find", f"{self._base}/issues.json", params=params)

        try:
            issues = dig(reply.body, "issues", kind=list)
            refs = [(_ref(i), self._marker_of(i)) for i in issues]
        except MissingField as exc:
            raise self._http.unexpected("find", exc) from exc
        if any(found != marker for _, found in refs):
            raise PermanentError(
                f"{self.name} find: Redmine ignored the filter on custom field "
                f"{self.settings.custom_field_id}; mark it 'Used as a filter' "
                "and enable it for the project and tracker"
            )
        if not refs:
            return None
        if len(refs) > 1:
            log.warning(
                "several tickets carry one marker",
                extra={"destination": self.name, "marker": marker},
            )
        return refs[0][0]

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the issue back: marker field and status.

        Redmine's default "Resolved" is not a closed status, so an issue in
        the configured resolved status counts as not open too.
        """
        issue = await self._issue(ticket, "get")
        status = issue["status"]
        resolved = await self._status_id("get", self.settings.resolved_status)
        return TicketView(
            ref=ticket,
            marker_present=self._marker_of(issue) == marker,
            is_open=not (status.get("is_closed") is True or status["id"] == resolved),
            status=str(status.get("name") or status["id"]),
        )

    async def probe(self) -> list[ProbeResult]:
        """Preflight: the API key, the project and the status list."""
        project = quote(self.settings.project, safe="")
        return await probe_reads(
            self._http,
            [
                ("credentials", f"{self._base}/users/current.json"),
                ("project", f"{self._base}/projects/{project}.json"),
                ("statuses", f"{self._base}/issue_statuses.json"),
            ],
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _change_status(
        self, operation: str, ticket: TicketRef, event: Event, wanted: int
    ) -> None:
        change = {"notes": render_text(event).comment, "status_id": wanted}
        await self._update(operation, ticket, change)

        # Redmine answers 204 even when its workflow dropped the status.
        status = await self._status(ticket, operation)
        if status["id"] != wanted:
            raise PermanentError(
                f"{self.name} {operation}: Redmine did not change issue "
                f"{ticket.key} to status {self._status_name(wanted)!r}, it is "
                f"still {status.get('name') or status['id']!r}: the workflow of "
                "its tracker does not allow this change for the API user's "
                "role (Administration > Workflow)"
            )

    async def _update(
        self, operation: str, ticket: TicketRef, change: dict[str, Any]
    ) -> None:
        # 204 since Redmine 4.1; older versions answer 200 with an empty body.
        await self._http.request(
            operation,
            "PUT",
            self._issue_url(ticket),
            json={"issue": change},
            body="optional",
            ticket=ticket.key,
        )

    async def _issue(self, ticket: TicketRef, operation: str) -> dict[str, Any]:
        reply = await self._http.get(
            operation, self._issue_url(ticket), ticket=ticket.key
        )
        try:
            issue: dict[str, Any] = dig(reply.body, "issue", kind=dict)
            dig(issue, "status", "id", kind=int)
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc
        return issue

    async def _status(self, ticket: TicketRef, operation: str) -> dict[str, Any]:
        status: dict[str, Any] = (await self._issue(ticket, operation))["status"]
        return status

    async def _status_id(self, operation: str, name: str) -> int:
        if self._statuses is None:
            reply = await self._http.get(operation, f"{self._base}/issue_statuses.json")
            try:
                items = dig(reply.body, "issue_statuses", kind=list)
                self._statuses = {
                    str(dig(s, "name", kind=str)).casefold(): int(
                        dig(s, "id", kind=int)
                    )
                    for s in items
                }
            except MissingField as exc:
                raise self._http.unexpected(operation, exc) from exc

        found = self._statuses.get(name.casefold())
        if found is None:
            known = ", ".join(repr(n) for n in self._statuses) or "none"
            raise PermanentError(
                f"{self.name} {operation}: Redmine has no issue status {name!r} "
                f"(known: {known})"
            )
        return found

    def _status_name(self, status_id: int) -> str:
        names = {v: k for k, v in (self._statuses or {}).items()}
        return names.get(status_id, str(status_id))

    def _marker_of(self, issue: Any) -> str | None:
        fields = issue.get("custom_fields") if isinstance(issue, dict) else None
        for field in fields if isinstance(fields, list) else []:
            if isinstance(field, dict) and field.get("id") == (
                self.settings.custom_field_id
            ):
                value = field.get("value")
                return value if isinstance(value, str) else None
        return None

    def _check_tracker(self, ref: TicketRef, issue: dict[str, Any]) -> None:
        # Redmine files an unknown tracker_id under the project's default.
        wanted = self.settings.tracker_id
        tracker = issue.get("tracker")
        got = tracker.get("id") if isinstance(tracker, dict) else None
        if wanted and got is not None and got != wanted:
            log.error(
                "ticket created under another tracker",
                extra=self._fields(ref, tracker=got, configured_tracker=wanted),
            )

    def _issue_url(self, ticket: TicketRef) -> str:
        if not ticket.id.isdigit():
            raise ValueError(f"redmine issue id {ticket.id[:20]!r} is not a number")
        return f"{self._base}/issues/{ticket.id}.json"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def _ref(issue: Any) -> TicketRef:
    number = str(dig(issue, "id", kind=int))
    return TicketRef(number, f"#{number}")
