"""The sandbox's memory: every ticket, webhook record and request it has seen.

One store per application. Handlers run on one event loop and never await
while they change it, so no lock is needed.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Comment:
    id: str
    text: str
    created: datetime


@dataclass
class JiraIssue:
    id: str
    key: str
    project: str
    issuetype: str
    summary: str
    labels: list[str]
    description: str | None
    created: datetime
    status: str = "Open"
    resolution: str | None = None
    comments: list[Comment] = field(default_factory=list)
    updated: datetime = field(default_factory=now)


@dataclass
class JournalEntry:
    """One comment or work note added to a ServiceNow record."""

    element: str
    text: str
    created: datetime


@dataclass
class Incident:
    """A ServiceNow record: every value is a string, as the Table API returns it."""

    table: str
    values: dict[str, str]
    created: datetime
    journal: list[JournalEntry] = field(default_factory=list)

    @property
    def sys_id(self) -> str:
        return self.values["sys_id"]


@dataclass
class ZendeskComment:
    body: str
    public: bool
    created: datetime = field(default_factory=now)


@dataclass
class ZendeskTicket:
    id: int
    subject: str
    description: str
    created: datetime
    external_id: str | None = None
    status: str = "new"
    priority: str | None = None
    type: str | None = None
    tags: list[str] = field(default_factory=list)
    group_id: int | None = None
    comments: list[ZendeskComment] = field(default_factory=list)
    updated: datetime = field(default_factory=now)


@dataclass
class WebhookRecord:
    id: str
    name: str
    idempotency_key: str | None
    body: dict[str, Any]
    received: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "idempotency_key": self.idempotency_key,
            "received": iso(self.received),
            "body": self.body,
        }


@dataclass
class RequestEntry:
    """One call to an imitated API. `marker` is the correlation marker a
    create carries (Jira label, ServiceNow correlation_id, webhook key)."""

    method: str
    path: str
    query: str
    status: int | None
    fault: str | None
    time: datetime
    system: str = ""
    operation: str = ""
    marker: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "fault": self.fault,
            "time": iso(self.time),
            "system": self.system,
            "operation": self.operation,
            "marker": self.marker,
        }


class Store:
    """All state of one sandbox; `reset` returns it to a fresh start."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        # Seconds a new ticket stays out of search results (GET by id sees it).
        self.search_lag = 0.0
        self.jira: dict[str, JiraIssue] = {}
        self.incidents: dict[str, Incident] = {}
        self.webhooks: dict[str, WebhookRecord] = {}
        self.zendesk: dict[int, ZendeskTicket] = {}
        self.requests: list[RequestEntry] = []
        self._jira_ids = itertools.count(10000)
        self._jira_numbers: defaultdict[str, itertools.count[int]] = defaultdict(
            lambda: itertools.count(1)
        )
        self._comment_ids = itertools.count(10000)
        self._incident_numbers = itertools.count(10001)
        self._webhook_ids = itertools.count(1)
        self._zendesk_ids = itertools.count(1)

    def next_jira_id(self, project: str) -> tuple[str, str]:
        """A new (id, key) pair, keys numbered per project like Jira does."""
        return str(
            next(self._jira_ids)
        ), f"{project}-{next(self._jira_numbers[project])}"

    def next_comment_id(self) -> str:
        return str(next(self._comment_ids))

    def next_incident_number(self) -> str:
        return f"INC{next(self._incident_numbers):07d}"

    def next_webhook_id(self) -> str:
        return f"wh-{next(self._webhook_ids)}"

    def next_zendesk_id(self) -> int:
        return next(self._zendesk_ids)

    def searchable(self, created: datetime) -> bool:
        """Whether a ticket created at `created` shows in searches yet."""
        return (now() - created).total_seconds() >= self.search_lag

    def find_jira(self, id_or_key: str) -> JiraIssue | None:
        issue = self.jira.get(id_or_key)
        if issue is not None:
            return issue
        wanted = id_or_key.upper()
        return next((i for i in self.jira.values() if i.key == wanted), None)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


STORE = web.AppKey("sandbox_store", Store)
