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
    DestinationError,
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

# Jira answers "Summary must be less than 255 characters".
SUMMARY_LIMIT = 254
DESCRIPTION_LIMIT = 32767


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
        """Open an issue labelled with `marker`."""
        check_marker(marker)
        fields = issue_fields(self.settings, event, marker)

        reply = await self._http.request(
            "create", "POST", f"{self._api}/issue", json={"fields": fields}
        )

        try:
            ref = TicketRef(_id(reply.body, "id"), _id(reply.body, "key"))
        except MissingField as exc:
            raise self._http.unexpected("create", exc) from exc
        log.info("ticket created", extra=self._fields(ref, marker=marker))
        return ref

    async def comment(self, ticket: TicketRef, event: Event) -> None:
        """Add the event as a comment."""
        await self._comment("comment", ticket, render_text(event).comment)
        log.debug("ticket commented", extra=self._fields(ticket))

    async def resolve(self, ticket: TicketRef, event: Event) -> None:
        """Apply the resolve transition, then add the event as a comment.

        An issue already in the done category is left alone, so a repeated
        resolve is harmless.
        """
        if await self._is_done(ticket):
            log.info("ticket already resolved", extra=self._fields(ticket))
            return

        transition = await self._transition_id(ticket)

        await self._http.request(
            "resolve",
            "POST",
            f"{self._issue(ticket)}/transitions",
            json={"transition": {"id": transition}},
            body="none",
            ticket=ticket.key,
        )
        log.info("ticket resolved", extra=self._fields(ticket))

        # The note goes after the transition: a failed note must not make the
        # sender repeat a transition that has already happened.
        try:
            await self._comment("resolve", ticket, render_text(event).comment)
        except DestinationError as exc:
            log.warning("resolve note not added: %s", exc, extra=self._fields(ticket))

    async def find(self, marker: str) -> TicketRef | None:
        """Search the project for an issue labelled `marker`.

        On Jira Cloud the search index lags behind writes; the sender only
        searches after a failed create, by which time it has usually caught up.
        """
        check_marker(marker)
        project = _quote_jql(self.settings.project)
        jql = f"project = {project} AND labels = {_quote_jql(marker)}"

        if self._v == 3:
            search = {"jql": jql, "fields": ["labels", "status"], "maxResults": 2}
            reply = await self._http.request(
                "find", "POST", f"{self._api}/search/jql", json=search
            )
        else:
            params = {"jql": jql, "fields": "labels,status", "maxResults": "2"}
            reply = await self._http.get("find", f"{self._api}/search", params=params)

        try:
            return self._first_issue(reply.body, marker)
        except MissingField as exc:
            raise self._http.unexpected("find", exc) from exc

    async def get(self, ticket: TicketRef, marker: str) -> TicketView:
        """Read the issue back: labels, status category and comment count."""
        reply = await self._http.get(
            "get",
            self._issue(ticket),
            params={"fields": "labels,status,summary,comment"},
            ticket=ticket.key,
        )

        try:
            status = dig(reply.body, "fields", "status", kind=dict)
            labels = reply.body["fields"].get("labels") or []
            key = dig(reply.body, "key", kind=str)
        except MissingField as exc:
            raise self._http.unexpected("get", exc) from exc
        total = _comment_total(reply.body["fields"])
        return TicketView(
            ref=TicketRef(ticket.id, key),
            marker_present=marker in labels,
            is_open=_category(status) != "done",
            status=str(status.get("name", "")),
            comment_count=total,
        )

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def _comment(self, operation: str, ticket: TicketRef, text: str) -> None:
        body = self._text(truncate(text, DESCRIPTION_LIMIT))
        await self._http.request(
            operation,
            "POST",
            f"{self._issue(ticket)}/comment",
            json={"body": body},
            body="optional",
            ticket=ticket.key,
        )

    async def _is_done(self, ticket: TicketRef) -> bool:
        reply = await self._http.get(
            "resolve",
            self._issue(ticket),
            params={"fields": "status"},
            ticket=ticket.key,
        )
        try:
            status = dig(reply.body, "fields", "status", kind=dict)
        except MissingField as exc:
            raise self._http.unexpected("resolve", exc) from exc
        return _category(status) == "done"

    async def _transition_id(self, ticket: TicketRef) -> str:
        reply = await self._http.get(
            "resolve", f"{self._issue(ticket)}/transitions", ticket=ticket.key
        )
        try:
            transitions = dig(reply.body, "transitions", kind=list)
        except MissingField as exc:
            raise self._http.unexpected("resolve", exc) from exc

        chosen = choose_transition(transitions, self.settings.resolve_transition)
        if chosen is None:
            names = [t.get("name") for t in transitions if isinstance(t, dict)]
            available = ", ".join(repr(n) for n in names) or "none"
            raise PermanentError(
                f"{self.name} resolve: issue {ticket.key} has no transition "
                f"{self.settings.resolve_transition!r} (available: {available})"
            )
        return chosen

    def _first_issue(self, body: Any, marker: str) -> TicketRef | None:
        issues = dig(body, "issues", kind=list)
        if not issues:
            return None

        if len(issues) > 1:
            log.warning(
                "several tickets carry one marker",
                extra={"destination": self.name, "marker": marker},
            )
        return TicketRef(_id(issues[0], "id"), _id(issues[0], "key"))

    def _text(self, text: str) -> str | dict[str, Any]:
        return jira_text(self._v, text)

    def _issue(self, ticket: TicketRef) -> str:
        return f"{self._api}/issue/{quote(ticket.id, safe='')}"

    def _fields(self, ticket: TicketRef, **more: object) -> dict[str, object]:
        return {"destination": self.name, "ticket": ticket.key, **more}


def issue_fields(settings: JiraSettings, event: Event, marker: str) -> dict[str, Any]:
    """The fields `create` sends for `event`; also shown by `ticketbridge route`."""
    text = render_text(event)
    return {
        "project": {"key": settings.project},
        "issuetype": {"name": settings.issue_type},
        "summary": truncate(text.title, SUMMARY_LIMIT),
        "description": jira_text(
            settings.api_version, truncate(text.body, DESCRIPTION_LIMIT)
        ),
        "labels": [marker],
    }


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


def _quote_jql(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _category(status: dict[str, Any]) -> str:
    category = status.get("statusCategory")
    return str(category.get("key", "")) if isinstance(category, dict) else ""


def _comment_total(fields: dict[str, Any]) -> int | None:
    comments = fields.get("comment")
    total = comments.get("total") if isinstance(comments, dict) else None
    return total if isinstance(total, int) else None


def _id(body: Any, key: str) -> str:
    return str(dig(body, key, kind=(str, int)))
