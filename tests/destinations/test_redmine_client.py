"""The Redmine client against a loopback fake: the status code table and the
answers the real Redmine gives in the cases too rare to stage for real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import RedmineSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TicketRef,
    TransientError,
)
from ticketbridge.destinations.redmine import RedmineDestination
from ticketbridge.events import Event, EventKind

KEY = "rm-api-key-0123456789"
MARKER = "tb-0123456789abcdef0123"
FIELD = 5
ISSUE = TicketRef("42", "#42")
ONE = "/issues/42.json"
STATUSES = {
    "issue_statuses": [
        {"id": 1, "name": "New", "is_closed": False},
        {"id": 3, "name": "Resolved", "is_closed": False},
        {"id": 5, "name": "Closed", "is_closed": True},
    ]
}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    fake.on("GET", "/issue_statuses.json", Answer(200, STATUSES))
    yield fake
    await fake.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def rm(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[RedmineDestination]:
    client = make_redmine(api, sleeps)
    yield client
    await client.close()


def make_redmine(api: FakeApi, sleeps: Sleeps, **changes: Any) -> RedmineDestination:
    fields: dict[str, Any] = {
        "type": "redmine",
        "url": api.url,
        "api_key": KEY,
        "project": "ops",
        "custom_field_id": FIELD,
        "timeout": 0.5,
    }
    fields.update(changes)
    return RedmineDestination(
        "rm", RedmineSettings(**fields), read_retry=fast_retry(sleeps)
    )


def make_event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "source": "nagios",
        "source_event_id": "901",
        "kind": EventKind.PROBLEM,
        "severity": "CRITICAL",
        "host": "web01",
        "check": "HTTP",
        "summary": "HTTP 503",
        "details": "",
        "occurred_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    fields.update(changes)
    return Event(**fields)


def issue(status: int = 1, marker: str | None = MARKER, **more: Any) -> dict[str, Any]:
    names = {1: "New", 3: "Resolved", 5: "Closed"}
    body = {
        "id": 42,
        "tracker": {"id": 1, "name": "Bug"},
        "status": {"id": status, "name": names[status], "is_closed": status == 5},
        "custom_fields": [{"id": FIELD, "name": "Key", "value": marker}],
    }
    body.update(more)
    return body


def show(status: int = 1, **more: Any) -> Answer:
    return Answer(200, {"issue": issue(status, **more)})


# --- create ---------------------------------------------------------------------


async def test_requests_carry_the_api_key_header(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("POST", "/issues.json", Answer(201, {"issue": issue()}))
    await rm.create(make_event(), MARKER)
    assert api.seen[0].headers["X-Redmine-API-Key"] == KEY


async def test_create_puts_the_marker_in_the_custom_field(
    api: FakeApi, rm: RedmineDestination, sleeps: Sleeps
) -> None:
    api.on("POST", "/issues.json", Answer(201, {"issue": issue()}))
    assert await rm.create(make_event(), MARKER) == ISSUE
    [request] = api.requests("POST", "/issues.json")
    body = request.json["issue"]
    assert body["custom_fields"] == [{"id": FIELD, "value": MARKER}]
    assert (body["project_id"], body["subject"]) == (
        "ops",
        "[CRITICAL] web01/HTTP: HTTP 503",
    )
    assert "tracker_id" not in body and "priority_id" not in body


async def test_create_sends_tracker_and_priority_when_configured(
    api: FakeApi, sleeps: Sleeps
) -> None:
    api.on("POST", "/issues.json", Answer(201, {"issue": issue()}))
    client = make_redmine(api, sleeps, tracker_id=1, priority_id=4)
    try:
        await client.create(make_event(), MARKER)
    finally:
        await client.close()
    body = api.requests("POST", "/issues.json")[0].json["issue"]
    assert (body["tracker_id"], body["priority_id"]) == (1, 4)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(401, text="", content_type="application/json"), PermanentError),
        (Answer(403, text=""), PermanentError),
        (Answer(404, text=""), PermanentError),
        (Answer(412, text=""), PermanentError),
        (Answer(422, {"errors": ["Subject cannot be blank"]}), PermanentError),
        (Answer(429, headers={"Retry-After": "5"}), TransientError),
        (
            Answer(500, text="<html>boom</html>", content_type="text/html"),
            TransientError,
        ),
        (Answer(502), TransientError),
        (Answer(201, text="", content_type="application/json"), TransientError),
        (Answer(hang=True), TransientError),
        (Answer(hang_up=True), TransientError),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, Answer) else v.__name__,
)
async def test_create_answer_maps_to_the_right_error(
    api: FakeApi, rm: RedmineDestination, answer: Answer, error: type[Exception]
) -> None:
    api.on("POST", "/issues.json", answer)
    with pytest.raises(error):
        await rm.create(make_event(), MARKER)


async def test_422_message_lists_redmine_errors(
    api: FakeApi, rm: RedmineDestination
) -> None:
    errors = {"errors": ["Subject cannot be blank", "Tracker is invalid"]}
    api.on("POST", "/issues.json", Answer(422, errors))
    with pytest.raises(PermanentError, match="Subject cannot be blank; Tracker"):
        await rm.create(make_event(), MARKER)


async def test_error_message_never_contains_the_api_key(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("POST", "/issues.json", Answer(422, {"errors": [f"key {KEY} bad"]}))
    with pytest.raises(PermanentError) as caught:
        await rm.create(make_event(), MARKER)
    assert KEY not in str(caught.value)


def test_missing_api_key_is_refused_when_the_client_is_built() -> None:
    settings = RedmineSettings(
        type="redmine", url="http://127.0.0.1:9/", project="ops", custom_field_id=1
    )
    with pytest.raises(ValueError, match="api_key"):
        RedmineDestination("rm", settings)


# --- comment, resolve, reopen -----------------------------------------------------


async def test_comment_puts_a_note_only(api: FakeApi, rm: RedmineDestination) -> None:
    api.on("PUT", ONE, Answer(204, text=""))
    await rm.comment(ISSUE, make_event(kind=EventKind.UPDATE))
    [request] = api.requests("PUT", ONE)
    assert list(request.json["issue"]) == ["notes"]


async def test_update_answered_200_with_an_empty_body_is_success(
    api: FakeApi, rm: RedmineDestination
) -> None:
    """Redmine before 4.1 answered updates so."""
    api.on("PUT", ONE, Answer(200, text=""))
    await rm.comment(ISSUE, make_event())


async def test_resolve_sends_the_status_id_of_the_configured_name(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("GET", ONE, show(1), show(3))
    api.on("PUT", ONE, Answer(204, text=""))
    await rm.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    [request] = api.requests("PUT", ONE)
    assert request.json["issue"]["status_id"] == 3
    assert "Kind: recovery" in request.json["issue"]["notes"]


async def test_resolve_ignored_by_the_workflow_is_a_clear_permanent_error(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("GET", ONE, show(1))  # before and after: still New
    api.on("PUT", ONE, Answer(204, text=""))
    with pytest.raises(PermanentError) as caught:
        await rm.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    assert "did not change issue #42 to status 'resolved'" in str(caught.value)
    assert "still 'New'" in str(caught.value)


@pytest.mark.parametrize("status", [3, 5])
async def test_resolve_of_a_resolved_or_closed_issue_changes_nothing(
    api: FakeApi, rm: RedmineDestination, status: int
) -> None:
    api.on("GET", ONE, show(status))
    await rm.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    assert api.requests("PUT", ONE) == []


async def test_reopen_sends_the_reopened_status_and_reads_it_back(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("GET", ONE, show(1))
    api.on("PUT", ONE, Answer(204, text=""))
    await rm.reopen(ISSUE, make_event())
    assert api.requests("PUT", ONE)[0].json["issue"]["status_id"] == 1
    assert len(api.requests("GET", ONE)) == 1


async def test_unknown_status_name_is_permanent_and_names_the_known(
    api: FakeApi, sleeps: Sleeps
) -> None:
    client = make_redmine(api, sleeps, resolved_status="Done")
    try:
        with pytest.raises(PermanentError, match="no issue status 'Done'.*'new'"):
            await client.resolve(ISSUE, make_event())
    finally:
        await client.close()
    assert api.requests("PUT", ONE) == []


async def test_statuses_are_read_once(api: FakeApi, rm: RedmineDestination) -> None:
    api.on("GET", ONE, show(3))
    await rm.resolve(ISSUE, make_event())
    await rm.get(ISSUE, MARKER)
    assert len(api.requests("GET", "/issue_statuses.json")) == 1


async def test_note_on_a_missing_issue_is_ticket_not_found(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("PUT", ONE, Answer(404, text=""))
    with pytest.raises(TicketNotFound, match="#42"):
        await rm.comment(ISSUE, make_event())


# --- find and get -----------------------------------------------------------------


async def test_find_filters_by_custom_field_with_any_status(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("GET", "/issues.json", Answer(200, {"issues": [issue()], "total_count": 1}))
    assert await rm.find(MARKER) == ISSUE
    query = api.requests("GET", "/issues.json")[0].query
    assert query[f"cf_{FIELD}"] == f"={MARKER}"
    assert query["status_id"] == "*"


async def test_find_returns_none_when_nothing_matches(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("GET", "/issues.json", Answer(200, {"issues": [], "total_count": 0}))
    assert await rm.find(MARKER) is None


async def test_find_refuses_an_answer_with_other_issues(
    api: FakeApi, rm: RedmineDestination
) -> None:
    """A cf filter on a field not 'used as a filter' is dropped by Redmine."""
    others = [issue(marker="tb-other"), issue(marker=None)]
    api.on("GET", "/issues.json", Answer(200, {"issues": others}))
    with pytest.raises(PermanentError, match="Used as a filter"):
        await rm.find(MARKER)


@pytest.mark.parametrize(
    ("status", "is_open", "name"),
    [(1, True, "New"), (3, False, "Resolved"), (5, False, "Closed")],
)
async def test_get_counts_resolved_and_closed_statuses_as_not_open(
    api: FakeApi, rm: RedmineDestination, status: int, is_open: bool, name: str
) -> None:
    api.on("GET", ONE, show(status))
    view = await rm.get(ISSUE, MARKER)
    assert (view.marker_present, view.is_open, view.status) == (True, is_open, name)


async def test_get_with_the_marker_dropped_reports_it_missing(
    api: FakeApi, rm: RedmineDestination
) -> None:
    """Redmine drops a custom field value not enabled for the tracker."""
    api.on("GET", ONE, show(1, custom_fields=[]))
    assert not (await rm.get(ISSUE, MARKER)).marker_present


async def test_get_without_status_is_transient(
    api: FakeApi, rm: RedmineDestination
) -> None:
    api.on("GET", ONE, Answer(200, {"issue": {"id": 42}}))
    with pytest.raises(TransientError, match="status"):
        await rm.get(ISSUE, MARKER)


def test_build_destination_makes_a_redmine_client() -> None:
    settings = RedmineSettings(
        type="redmine",
        url="http://127.0.0.1:9/",
        project="ops",
        custom_field_id=1,
        api_key="k",
    )
    assert isinstance(build_destination("rm", settings), RedmineDestination)
