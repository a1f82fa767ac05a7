"""The Request Tracker (REST2) client against a loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import RequestTrackerSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TicketRef,
    TransientError,
)
from ticketbridge.destinations.request_tracker import RequestTrackerDestination
from ticketbridge.events import Event, EventKind

TOKEN = "1-14-0123456789abcdef"
MARKER = "tb-0123456789abcdef0123"
API = "/REST/2.0"
ONE = f"{API}/ticket/20"
TICKET = TicketRef("20", "20")


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def rt(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[RequestTrackerDestination]:
    client = make_rt(api, sleeps)
    yield client
    await client.close()


def make_rt(api: FakeApi, sleeps: Sleeps, **changes: Any) -> RequestTrackerDestination:
    fields: dict[str, Any] = {
        "type": "request_tracker",
        "url": api.url,
        "token": TOKEN,
        "timeout": 0.5,
    }
    fields.update(changes)
    return RequestTrackerDestination(
        "rt", RequestTrackerSettings(**fields), read_retry=fast_retry(sleeps)
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


def record(
    status: str = "new", values: list[str] | None = None, name: str = "CorrelationKey"
) -> Answer:
    # The shape of a real RT 5.0.3 answer (the field also has type and _url).
    field: dict[str, Any] = {"id": "1", "name": name}
    field["values"] = [MARKER] if values is None else values
    body = {"id": 20, "Status": status, "Queue": {"id": "1"}, "CustomFields": [field]}
    return Answer(200, body)


CREATED = Answer(201, {"type": "ticket", "id": "20", "_url": f"{API}/ticket/20"})
MESSAGES = Answer(200, ["Ticket 20: Status changed from 'new' to 'resolved'"])


# --- create ---------------------------------------------------------------------


async def test_requests_carry_the_token_authorization(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("POST", f"{API}/ticket", CREATED)
    await rt.create(make_event(), MARKER)
    assert api.seen[0].headers["Authorization"] == f"token {TOKEN}"


async def test_create_sets_queue_subject_content_and_marker_field(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("POST", f"{API}/ticket", CREATED)
    assert await rt.create(make_event(), MARKER) == TICKET
    body = api.requests("POST", f"{API}/ticket")[0].json
    assert body["Queue"] == "General"
    assert body["Subject"] == "[CRITICAL] web01/HTTP: HTTP 503"
    assert body["ContentType"] == "text/plain"
    assert body["CustomFields"] == {"CorrelationKey": MARKER}
    assert "Requestor" not in body


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(400, {"message": "Could not create ticket"}), PermanentError),
        (Answer(401, {"message": "Unauthorized"}), PermanentError),
        (Answer(403, {"message": "Forbidden"}), PermanentError),
        (Answer(404, {"message": "Not Found"}), PermanentError),
        (Answer(409, {"message": "Conflict"}), PermanentError),
        (Answer(429, headers={"Retry-After": "3"}), TransientError),
        (Answer(500, {"message": "Internal Server Error"}), TransientError),
        (Answer(503), TransientError),
        (Answer(201, text="<html/>", content_type="text/html"), TransientError),
        (Answer(201, {"type": "ticket"}), TransientError),
        (Answer(hang=True), TransientError),
        (Answer(hang_up=True), TransientError),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, Answer) else v.__name__,
)
async def test_create_answer_maps_to_the_right_error(
    api: FakeApi,
    rt: RequestTrackerDestination,
    answer: Answer,
    error: type[Exception],
) -> None:
    api.on("POST", f"{API}/ticket", answer)
    with pytest.raises(error):
        await rt.create(make_event(), MARKER)


async def test_error_message_carries_rt_message_but_not_the_token(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("POST", f"{API}/ticket", Answer(400, {"message": f"No queue {TOKEN}"}))
    with pytest.raises(PermanentError, match="No queue") as caught:
        await rt.create(make_event(), MARKER)
    assert TOKEN not in str(caught.value)


def test_missing_token_is_refused_when_the_client_is_built() -> None:
    settings = RequestTrackerSettings(type="request_tracker", url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="token"):
        RequestTrackerDestination("rt", settings)


# --- comment, resolve, reopen -----------------------------------------------------


async def test_comment_posts_plain_text_to_the_comment_endpoint(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("POST", f"{ONE}/comment", Answer(201, ["Comments added"]))
    await rt.comment(TICKET, make_event(kind=EventKind.UPDATE))
    [request] = api.requests("POST", f"{ONE}/comment")
    assert request.json["ContentType"] == "text/plain"
    assert request.json["Content"].startswith("[CRITICAL] web01/HTTP")


async def test_resolve_puts_the_status_reads_it_back_then_comments(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("GET", ONE, record("open"), record("resolved"))
    api.on("PUT", ONE, MESSAGES)
    api.on("POST", f"{ONE}/comment", Answer(201, ["Comments added"]))
    await rt.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    assert api.requests("PUT", ONE)[0].json == {"Status": "resolved"}
    assert [s.method for s in api.seen] == ["GET", "PUT", "GET", "POST"]


async def test_status_change_answered_200_but_not_made_is_a_clear_error(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    """RT says 200 with its messages even when it refused the change."""
    api.on("GET", ONE, record("open"))
    api.on("PUT", ONE, Answer(200, ["Status 'resolved' isn't a valid status"]))
    with pytest.raises(PermanentError) as caught:
        await rt.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    message = str(caught.value)
    assert "did not set ticket 20 to status 'resolved', it is still 'open'" in message
    assert "isn't a valid status" in message
    assert api.requests("POST", f"{ONE}/comment") == []


@pytest.mark.parametrize("status", ["resolved", "rejected", "deleted"])
async def test_resolve_of_an_inactive_ticket_adds_only_the_comment(
    api: FakeApi, rt: RequestTrackerDestination, status: str
) -> None:
    api.on("GET", ONE, record(status))
    api.on("POST", f"{ONE}/comment", Answer(201, ["Comments added"]))
    await rt.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    assert api.requests("PUT", ONE) == []
    assert len(api.requests("POST", f"{ONE}/comment")) == 1


async def test_failed_note_after_a_made_change_fails_the_resolve_to_be_retried(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    """The recovery's text is part of the resolve; it is never dropped."""
    api.on("GET", ONE, record("open"), record("resolved"))
    api.on("PUT", ONE, MESSAGES)
    api.on("POST", f"{ONE}/comment", Answer(500))
    with pytest.raises(TransientError):
        await rt.resolve(TICKET, make_event(kind=EventKind.RECOVERY))


async def test_reopen_puts_the_reopened_status(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("GET", ONE, record("open"))
    api.on("PUT", ONE, Answer(200, ["Status changed"]))
    api.on("POST", f"{ONE}/comment", Answer(201, ["Comments added"]))
    await rt.reopen(TICKET, make_event())
    assert api.requests("PUT", ONE)[0].json == {"Status": "open"}


async def test_comment_on_a_missing_ticket_is_ticket_not_found(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("POST", f"{ONE}/comment", Answer(404, {"message": "Not Found"}))
    with pytest.raises(TicketNotFound):
        await rt.comment(TICKET, make_event())


# --- find and get -----------------------------------------------------------------


async def test_find_searches_the_queue_by_the_custom_field(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    items = {"items": [{"type": "ticket", "id": "20"}], "count": 1, "total": 1}
    api.on("GET", f"{API}/tickets", Answer(200, items))
    assert await rt.find(MARKER) == TICKET
    query = api.seen[0].query["query"]
    assert query == f"Queue = 'General' AND 'CF.{{CorrelationKey}}' = '{MARKER}'"


async def test_find_quotes_a_queue_name_with_an_apostrophe(
    api: FakeApi, sleeps: Sleeps
) -> None:
    api.on("GET", f"{API}/tickets", Answer(200, {"items": []}))
    client = make_rt(api, sleeps, queue="Ops' Queue")
    try:
        assert await client.find(MARKER) is None
    finally:
        await client.close()
    assert api.seen[0].query["query"].startswith("Queue = 'Ops\\' Queue' AND")


async def test_find_answer_without_items_is_transient(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("GET", f"{API}/tickets", Answer(200, {"count": 0}))
    with pytest.raises(TransientError, match="items"):
        await rt.find(MARKER)


@pytest.mark.parametrize(
    ("status", "is_open"),
    [("new", True), ("open", True), ("stalled", True), ("resolved", False)],
)
async def test_get_reports_marker_and_open_by_status(
    api: FakeApi, rt: RequestTrackerDestination, status: str, is_open: bool
) -> None:
    api.on("GET", ONE, record(status))
    view = await rt.get(TICKET, MARKER)
    assert (view.marker_present, view.is_open, view.status) == (True, is_open, status)


async def test_get_reports_a_marker_rt_did_not_store(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    """RT only logs an unknown custom field on create."""
    api.on("GET", ONE, record(values=[]))
    assert not (await rt.get(TICKET, MARKER)).marker_present


async def test_get_matches_the_custom_field_name_regardless_of_case(
    api: FakeApi, sleeps: Sleeps
) -> None:
    """RT stores the marker under a field named in any case and answers its own."""
    api.on("GET", ONE, record(name="Correlation Key"))
    client = make_rt(api, sleeps, custom_field="correlation key")
    try:
        assert (await client.get(TICKET, MARKER)).marker_present
    finally:
        await client.close()


async def test_get_ignores_the_marker_in_another_custom_field(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("GET", ONE, record(name="CorrelationKeyOld"))
    assert not (await rt.get(TICKET, MARKER)).marker_present


async def test_get_of_a_missing_ticket_is_ticket_not_found(
    api: FakeApi, rt: RequestTrackerDestination
) -> None:
    api.on("GET", ONE, Answer(404, {"message": "Resource does not exist"}))
    with pytest.raises(TicketNotFound):
        await rt.get(TICKET, MARKER)


def test_build_destination_makes_a_request_tracker_client() -> None:
    settings = RequestTrackerSettings(
        type="request_tracker", url="http://127.0.0.1:9/", token="t"
    )
    assert isinstance(build_destination("rt", settings), RequestTrackerDestination)
