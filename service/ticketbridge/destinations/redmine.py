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
    dig,
)
from ticketbridge.destinations.probe import Read, probe_reads
from ticketbridge.destinations.rendering import fit, render
from ticketbridge.events import Event
from ticketbridge.templates import Rendered, templates_for
from ticketbridge.text import check_marker

log = logging.getLogger(__name__)

# `validates_length_of :subject, maximum: 255` in Redmine's Issue model; it
# counts characters, never more than the UTF-16 units `fit` counts.
SUBJECT_LIMIT = 255
# Redmine validates no length of descriptions and notes; they are cut like
# Jira's text fields, so one event cannot fill an issue with megabytes.
TEXT_LIMIT = 32767


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
        self._templates = templates_for(
            f"destinations.{name}.templates", settings.templates
        )
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
        """Open an issue whose marker custom field holds `marker`.

        Fields are sent only here: later updates carry only a note and the
        status, so whatever a person edits on the issue stays theirs.
        """
        issue = await self.preview(event, marker)

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

    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The issue of the create request, for `create` and shadow mode."""
        check_marker(marker)
        text = await render(
            self._templates,
            event,
            destination=self.name,
            operation="create",
            marker=marker,
        )
        issue: dict[str, Any] = {
            "project_id": self.settings.project,
            "subject": self._fit("subject", text.summary, SUBJECT_LIMIT),
            "description": self._fit("description", text.description, TEXT_LIMIT),
            "custom_fields": [{"id": self.settings.custom_field_id, "value": marker}],
        }
        if self.settings.tracker_id:
            issue["tracker_id"] = self.settings.tracker_id
        severity = event.severity.lower()
        priority = self.settings.priority_map.get(severity, self.settings.priority_id)
        if priority is not None:
            issue["priority_id"] = priority
        for field, value in text.fields.items():
            issue[field] = self._fit(field, value, TEXT_LIMIT)
        return issue

    async def note(self, ticket: TicketRef, text: str) -> None:
        """Add plain text as a note (a journal entry)."""
        await self._update("comment", ticket, {"notes": self._notes(text)})

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a note (a journal entry)."""
        text = await self._render(event, "comment")
        await self._update("comment", ticket, {"notes": self._notes(text.comment)})
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Move the issue to the resolved status with the event as its note.

        An issue already resolved or closed is left alone. A change the
        workflow refuses is answered 204 by Redmine; the status is read back
        and a refusal is a permanent error that names the workflow.
        """
        # Rendered first: a broken template must fail before any request.
        text = await self._render(event, "resolve")
        wanted = await self._status_id("resolve", self.settings.resolved_status)
        status = await self._status(ticket, "resolve")
        if status["id"] == wanted or status.get("is_closed") is True:
            log.info("ticket already resolved", extra=self._fields(ticket))
            return

        await self._change_status("resolve", ticket, text.comment, wanted)
        log.info("ticket resolved", extra=self._fields(ticket))

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Move the issue back to the reopened status with the event as its note."""
        text = await self._render(event, "reopen")
        wanted = await self._status_id("reopen", self.settings.reopened_status)
        await self._change_status("reopen", ticket, text.comment, wanted)
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
        """Preflight: the API key, the project and the configured status names.

        Redmine answers 401, 403 and 404 with an empty body, so the hints
        say what each means here.
        """
        project = self.settings.project
        return await probe_reads(
            self._http,
            [
                Read(
                    "credentials",
                    f"{self._base}/users/current.json",
                    "user",
                    _logged_in,
                    {
                        401: "Redmine refused the api_key",
                        403: "enable the REST API: Administration > Settings > API",
                    },
                ),
                Read(
                    "project",
                    f"{self._base}/projects/{quote(project, safe='')}.json",
                    "project",
                    lambda found: (True, f"project {_name(found, project)} exists"),
                    {
                        403: f"the API user is no member of project {project}",
                        404: f"no project {project!r}: give its identifier or id",
                    },
                ),
                Read(
                    "statuses",
                    f"{self._base}/issue_statuses.json",
                    "issue_statuses",
                    self._known_statuses,
                ),
            ],
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _change_status(
        self, operation: str, ticket: TicketRef, notes: str, wanted: int
    ) -> None:
        change = {"notes": self._notes(notes), "status_id": wanted}
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

    def _known_statuses(self, answer: dict[str, Any]) -> tuple[bool, str]:
        """Whether the configured status names are among Redmine's statuses."""
        statuses = answer["issue_statuses"]
        if not isinstance(statuses, list):
            return False, "issue_statuses is not a list"
        names = [s.get("name") for s in statuses if isinstance(s, dict)]
        known = {str(n).casefold() for n in names if n}
        wanted = (
            ("resolved_status", self.settings.resolved_status),
            ("reopened_status", self.settings.reopened_status),
        )
        missing = [f"{k} {v!r}" for k, v in wanted if v.casefold() not in known]
        if missing:
            listed = ", ".join(repr(n) for n in names) or "none"
            return False, f"no issue status for {', '.join(missing)} (known: {listed})"
        return True, "resolved_status and reopened_status exist"

    async def _render(self, event: Event, operation: str) -> Rendered:
        return await render(
            self._templates, event, destination=self.name, operation=operation
        )

    def _notes(self, text: str) -> str:
        return self._fit("notes", text, TEXT_LIMIT)

    def _fit(self, field: str, text: str, limit: int) -> str:
        return fit(self.name, field, text, limit)

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


def _logged_in(answer: dict[str, Any]) -> tuple[bool, str]:
    user = answer["user"]
    login = user.get("login") if isinstance(user, dict) else None
    return True, f"authenticated as {login or 'an unnamed user'}"


def _name(answer: dict[str, Any], fallback: str) -> str:
    project = answer["project"]
    name = project.get("name") if isinstance(project, dict) else None
    return f"{fallback} ({name})" if name else fallback


def _ref(issue: Any) -> TicketRef:
    number = str(dig(issue, "id", kind=int))
    return TicketRef(number, f"#{number}")
