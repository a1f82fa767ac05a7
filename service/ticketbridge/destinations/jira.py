"""Jira: issues labelled with the correlation marker.

API version 3 is Jira Cloud: basic auth with e-mail and API token, and text
fields as Atlassian Document Format. Version 2 is Jira Data Center: a bearer
personal access token, and text fields as plain strings.
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote

from ticketbridge.config.model import JiraSettings
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
from ticketbridge.destinations.jira_probe import probe_jira
from ticketbridge.destinations.rendering import fit, render
from ticketbridge.events import Event
from ticketbridge.templates import templates_for
from ticketbridge.text import check_marker, quote_jql

log = logging.getLogger(__name__)

# Jira answers "Summary must be less than 255 characters".
SUMMARY_LIMIT = 254
DESCRIPTION_LIMIT = 32767
# A lookup by marker expects one issue; a few pages are enough to see that
# there are several, without walking a whole project if the query misfires.
FIND_PAGE_SIZE = 20
FIND_PAGES = 3


class JiraDestination:
    """Creates, comments on, resolves and looks up Jira issues."""

    def __init__(
        self,
        name: str,
        settings: JiraSettings,
        *,
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self._v = settings.api_version
        self._api = f"{str(settings.url).rstrip('/')}/rest/api/{self._v}"
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
        """Open an issue labelled with `marker`, its text from the templates.

        Fields are sent only here: afterwards the bridge only comments and
        transitions, so whatever a person edits on the issue stays theirs.
        """
        fields = await self.preview(event, marker)

        try:
            reply = await self._http.request(
                "create", "POST", f"{self._api}/issue", json={"fields": fields}
            )
        except PermanentError as exc:
            if "assignee" not in fields or not _about_assignee(exc):
                raise
            # The ticket matters more than who it is assigned to (BC-15).
            log.error(
                "assignee refused, creating the ticket unassigned: %s",
                exc,
                extra={"destination": self.name, "marker": marker},
            )
            fields.pop("assignee")
            reply = await self._http.request(
                "create", "POST", f"{self._api}/issue", json={"fields": fields}
            )

        try:
            ref = TicketRef(_id(reply.body, "id"), _id(reply.body, "key"))
        except MissingField as exc:
            raise self._http.unexpected("create", exc) from exc
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def preview(self, event: Event, marker: str) -> dict[str, Any]:
        """The fields of the create request, for `create` and shadow mode."""
        check_marker(marker)
        text = await render(
            self._templates,
            event,
            destination=self.name,
            operation="create",
            marker=marker,
        )
        description = self._fit("description", text.description, DESCRIPTION_LIMIT)
        fields: dict[str, Any] = {
            "project": {"key": self.settings.project},
            "issuetype": {"name": self.settings.issue_type},
            "summary": self._fit("summary", text.summary, SUMMARY_LIMIT),
            "description": self._text(description),
            "labels": [marker],
        }
        priority = self.settings.priority_map.get(event.severity.lower())
        if priority:
            fields["priority"] = {"name": priority}
        for field, value in text.fields.items():
            fields[field] = self._fit(field, value, DESCRIPTION_LIMIT)
        if self.settings.assignee_account_id:
            fields["assignee"] = {"accountId": self.settings.assignee_account_id}
        elif self.settings.assignee:
            fields["assignee"] = {"name": self.settings.assignee}
        return fields

    async def note(self, ticket: TicketRef, text: str) -> None:
        """Add a plain-text comment."""
        await self._comment("comment", ticket, text)

    async def reopen(self, ticket: TicketRef, event: Event) -> None:
        """Apply the reopen transition, then add the event as a comment.

        An issue no longer in the done category is left as it is, so a
        repeated reopen is harmless.
        """
        text = await render(
            self._templates, event, destination=self.name, operation="comment"
        )
        if not await self._is_done(ticket, "reopen"):
            log.info("ticket already open", extra=self._fields(ticket))
        else:
            transition = await self._transition_id(
                ticket, "reopen", self.settings.reopen_transition
            )
            await self._http.request(
                "reopen",
                "POST",
                f"{self._issue(ticket)}/transitions",
                json={"transition": {"id": transition}},
                body="none",
                ticket=ticket.key,
            )
            log.info("ticket reopened", extra=self._fields(ticket))
        await self._comment("reopen", ticket, text.comment)

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a comment: its summary and description."""
        text = await render(
            self._templates, event, destination=self.name, operation="comment"
        )
        await self._comment("comment", ticket, text.comment)
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Apply the resolve transition, then add the event as a comment.

        The comment is part of the resolve: when it fails, the delivery is
        retried, and a retry that finds the issue already in the done
        category (its transition took, the answer was lost) adds only the
        comment. Known shortcoming: a comment whose answer was lost is
        added twice.
        """
        # Rendered first: a broken template must not leave a resolved issue
        # without its note.
        text = await render(
            self._templates, event, destination=self.name, operation="resolve"
        )
        if await self._is_done(ticket, "resolve"):
            log.info("ticket already resolved", extra=self._fields(ticket))
        else:
            transition = await self._transition_id(
                ticket, "resolve", self.settings.resolve_transition
            )
            await self._http.request(
                "resolve",
                "POST",
                f"{self._issue(ticket)}/transitions",
                json={"transition": {"id": transition}},
                body="none",
                ticket=ticket.key,
            )
            log.info("ticket resolved", extra=self._fields(ticket))

        await self._comment("resolve", ticket, text.comment)

    async def find(self, marker: str) -> TicketRef | None:
        """Search the project for the one issue labelled exactly `marker`.

        Jira Cloud searches with POST /rest/api/3/search/jql (the old /search
        answers 410 there: a permanent error, never "nothing found"), asking
        for labels and status explicitly, since the new endpoint returns bare
        ids otherwise, and following nextPageToken. Data Center pages the old
        /rest/api/2/search by startAt. Only issues whose labels hold the
        marker count; several such issues are refused unless exactly one is
        open (BC-11). On Cloud the index lags behind writes; the sender only
        searches after a failed create, by which time it has usually caught up.
        """
        check_marker(marker)
        project = quote_jql(self.settings.project)
        jql = f"project = {project} AND labels = {quote_jql(marker)}"

        try:
            issues = await self._search(jql)
            return self._only_match(issues, marker)
        except MissingField as exc:
            raise self._http.unexpected("find", exc) from exc

    async def _search(
        self,
        jql: str,
        operation: str = "find",
        pages: int = FIND_PAGES,
        page_size: int = FIND_PAGE_SIZE,
    ) -> list[Any]:
        """The search this API version offers: /search/jql on 3, /search on 2.

        Any error, a 410 Gone of a removed search endpoint included, goes up:
        "no answer" must never read as "no ticket", or we create again.
        """
        issues: list[Any] = []
        token: str | None = None
        for _ in range(pages):
            if self._v == 3:
                search: dict[str, Any] = {
                    "jql": jql,
                    "fields": ["labels", "status"],
                    "maxResults": page_size,
                }
                if token:
                    search["nextPageToken"] = token
                reply = await self._http.request(
                    operation, "POST", f"{self._api}/search/jql", json=search
                )
            else:
                params = {
                    "jql": jql,
                    "fields": "labels,status",
                    "maxResults": str(page_size),
                    "startAt": str(len(issues)),
                }
                reply = await self._http.get(
                    operation, f"{self._api}/search", params=params
                )
            page = dig(reply.body, "issues", kind=list)
            issues += page
            token = _next_page(reply.body, self._v, len(issues))
            if token is None or (self._v == 2 and not page):
                break
        return issues

    def _only_match(self, issues: list[Any], marker: str) -> TicketRef | None:
        matches = [i for i in issues if marker in _labels(i)]
        if not matches and issues:
            raise PermanentError(
                f"{self.name} find: the search for label {marker} returned "
                f"{len(issues)} issue(s) without that label; refusing to pick one"
            )
        if not matches:
            return None
        if len(matches) == 1:
            return TicketRef(_id(matches[0], "id"), _id(matches[0], "key"))

        keys = ", ".join(str(i.get("key")) for i in matches)
        still_open = [i for i in matches if not _done(i)]
        log.warning(
            "several tickets carry one marker",
            extra={"destination": self.name, "marker": marker, "tickets": keys},
        )
        if len(still_open) == 1:
            return TicketRef(_id(still_open[0], "id"), _id(still_open[0], "key"))
        raise PermanentError(
            f"{self.name} find: {len(matches)} issues carry label {marker} "
            f"({keys}) and {len(still_open)} of them are open; "
            "close the duplicates by hand"
        )

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the issue back: labels, status category and comment count."""
        reply = await self._http.get(
            "get",
            self._issue(ticket),
            params={"fields": "labels,status,summary,comment,resolution"},
            ticket=ticket.key,
        )

        try:
            status = dig(reply.body, "fields", "status", kind=dict)
            labels = reply.body["fields"].get("labels") or []
            key = dig(reply.body, "key", kind=str)
        except MissingField as exc:
            raise self._http.unexpected("get", exc) from exc
        total = _comment_total(reply.body["fields"])
        resolution = reply.body["fields"].get("resolution")
        return TicketView(
            ref=TicketRef(ticket.id, key),
            marker_present=marker in labels,
            is_open=_category(status) != "done",
            status=str(status.get("name", "")),
            comment_count=total,
            resolution=str(resolution.get("name") or "")
            if isinstance(resolution, dict)
            else "",
        )

    async def probe(self) -> list[ProbeResult]:
        """Preflight checks, reads only; see `jira_probe`."""
        return await probe_jira(
            self._http,
            self._api,
            self.settings,
            lambda jql: self._search(jql, "probe", pages=1, page_size=1),
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _comment(self, operation: str, ticket: TicketRef, text: str) -> None:
        body = self._text(self._fit("comment", text, DESCRIPTION_LIMIT))
        await self._http.request(
            operation,
            "POST",
            f"{self._issue(ticket)}/comment",
            json={"body": body},
            body="optional",
            ticket=ticket.key,
        )

    async def _is_done(self, ticket: TicketRef, operation: str) -> bool:
        reply = await self._http.get(
            operation,
            self._issue(ticket),
            params={"fields": "status"},
            ticket=ticket.key,
        )
        try:
            status = dig(reply.body, "fields", "status", kind=dict)
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc
        return _category(status) == "done"

    async def _transition_id(
        self, ticket: TicketRef, operation: str, wanted: str
    ) -> str:
        reply = await self._http.get(
            operation, f"{self._issue(ticket)}/transitions", ticket=ticket.key
        )
        try:
            transitions = dig(reply.body, "transitions", kind=list)
        except MissingField as exc:
            raise self._http.unexpected(operation, exc) from exc

        chosen = choose_transition(transitions, wanted)
        if chosen is None:
            names = [t.get("name") for t in transitions if isinstance(t, dict)]
            available = ", ".join(repr(n) for n in names) or "none"
            raise PermanentError(
                f"{self.name} {operation}: issue {ticket.key} has no transition "
                f"{wanted!r} (available: {available})"
            )
        return chosen

    def _fit(self, field: str, text: str, limit: int) -> str:
        return fit(self.name, field, text, limit)

    def _text(self, text: str) -> str | dict[str, Any]:
        return jira_text(self._v, text)

    def _issue(self, ticket: TicketRef) -> str:
        return f"{self._api}/issue/{quote(ticket.id, safe='')}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def jira_text(api_version: int, text: str) -> str | dict[str, Any]:
    """A text field as the API version wants it: ADF (3) or a plain string (2)."""
    return adf_document(text) if api_version == 3 else text


def choose_transition(transitions: list[Any], wanted: str) -> str | None:
    """The id of the transition named `wanted`, or leading to a status so named.

    Names compare case-insensitively; a transition's own name wins over the
    name of its target status.
    """
    wanted = wanted.casefold()
    items = [t for t in transitions if isinstance(t, dict) and "id" in t]
    for item in items:
        if str(item.get("name", "")).casefold() == wanted:
            return str(item["id"])
    for item in items:
        target = item.get("to")
        if (
            isinstance(target, dict)
            and str(target.get("name", "")).casefold() == wanted
        ):
            return str(item["id"])
    return None


def adf_document(text: str) -> dict[str, Any]:
    """Plain text as an ADF doc: blank lines part paragraphs, newlines break."""
    paragraphs = []
    for block in text.split("\n\n"):
        content: list[dict[str, Any]] = []
        for line in block.split("\n"):
            if content:
                content.append({"type": "hardBreak"})
            # ADF forbids empty text nodes.
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


def _authorization(settings: JiraSettings) -> tuple[str, list[str]]:
    if settings.token is None:
        raise ValueError("jira: token is missing")
    token = settings.token.get_secret_value()
    if settings.api_version == 2:
        return f"Bearer {token}", [token]
    pair = base64.b64encode(f"{settings.email}:{token}".encode()).decode("ascii")
    return f"Basic {pair}", [token, pair]


def _category(status: dict[str, Any]) -> str:
    category = status.get("statusCategory")
    return str(category.get("key", "")) if isinstance(category, dict) else ""


def _about_assignee(exc: PermanentError) -> bool:
    """A 400 whose message names the assignee (or Cloud's accountId rule)."""
    text = str(exc)
    return exc.status == 400 and ("assignee" in text or "accountId" in text)


def _labels(issue: Any) -> list[Any]:
    fields = issue.get("fields") if isinstance(issue, dict) else None
    labels = fields.get("labels") if isinstance(fields, dict) else None
    return labels if isinstance(labels, list) else []


def _done(issue: Any) -> bool:
    fields = issue.get("fields") if isinstance(issue, dict) else None
    status = fields.get("status") if isinstance(fields, dict) else None
    return isinstance(status, dict) and _category(status) == "done"


def _next_page(body: Any, version: int, seen: int) -> str | None:
    """The next page's token (v3) or start index (v2), None on the last page."""
    if version == 3:
        token = body.get("nextPageToken")
        if body.get("isLast") is True or not token:
            return None
        return str(token)
    total = body.get("total")
    return str(seen) if isinstance(total, int) and seen < total else None


def _comment_total(fields: dict[str, Any]) -> int | None:
    comments = fields.get("comment")
    total = comments.get("total") if isinstance(comments, dict) else None
    return total if isinstance(total, int) else None


def _id(body: Any, key: str) -> str:
    return str(dig(body, key, kind=(str, int)))
