"""The Zendesk client against a loopback fake of the Tickets API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import ZendeskSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TicketRef,
    TransientError,
)
from ticketbridge.destinations.zendesk import ZendeskDestination
from ticketbridge.events import Event, EventKind

TOKEN = "zd-api-token-789"
MARKER = "tb-0123456789abcdef0123"
TICKETS = "/api/v2/tickets"
ONE = f"{TICKETS}/35436"
TICKET = TicketRef("35436", "35436")
INVALID = {
    "error": "RecordInvalid",
    "description": "Record validation errors",
    "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
}


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
async def zd(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[ZendeskDestination]:
    client = make_zendesk(api, sleeps)
    yield client
    await client.close()


def make_zendesk(api: FakeApi, sleeps: Sleeps, **changes: Any) -> ZendeskDestination:
    fields: dict[str, Any] = {
        "type": "zendesk",
        "url": api.url,
        "email": "bridge@example.com",
        "token": TOKEN,
        "timeout": 0.5,
    }
    fields.update(changes)
    settings = ZendeskSettings(**fields)
    return ZendeskDestination("zd", settings, read_retry=fast_retry(sleeps))


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


def ticket(**changes: Any) -> dict[str, Any]:
    body = {"id": 35436, "status": "new", "external_id": MARKER, "subject": "x"}
    body.update(changes)
    return {"ticket": body}


def created(api: FakeApi) -> None:
    api.on("POST", TICKETS, Answer(201, {**ticket(), "audit": {"events": []}}))


def sent(api: FakeApi, method: str = "POST", path: str = TICKETS) -> dict[str, Any]:
    [request] = api.requests(method, path)
    body: dict[str, Any] = request.json["ticket"]
    return body


# --- create ---------------------------------------------------------------------


async def test_api_token_auth_is_basic_with_email_slash_token(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    created(api)
    await zd.create(make_event(), MARKER)
    pair = base64.b64encode(f"bridge@example.com/token:{TOKEN}".encode()).decode()
    assert api.seen[0].headers["Authorization"] == f"Basic {pair}"


async def test_without_email_the_token_is_an_oauth_bearer(
    api: FakeApi, sleeps: Sleeps
) -> None:
    created(api)
    client = make_zendesk(api, sleeps, email=None)
    try:
        await client.create(make_event(), MARKER)
    finally:
        await client.close()
    assert api.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_create_sets_external_id_subject_and_a_private_first_comment(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    created(api)
    await zd.create(make_event(), MARKER)
    body = sent(api)
    assert body["external_id"] == MARKER
    assert body["subject"] == "[CRITICAL] web01/HTTP: HTTP 503"
    assert body["comment"]["public"] is False
    assert "Source: nagios (event 901)" in body["comment"]["body"]
    assert (body["type"], body["tags"]) == ("incident", ["ticketbridge"])


async def test_create_sets_the_priority_of_the_severity_by_default(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    created(api)
    await zd.create(make_event(severity="CRITICAL"), MARKER)
    await zd.create(make_event(severity="warning"), MARKER)
    sent_priorities = [
        r.json["ticket"]["priority"] for r in api.requests("POST", TICKETS)
    ]
    assert sent_priorities == ["urgent", "normal"]


async def test_an_empty_priority_map_sends_no_priority_and_no_group(
    api: FakeApi, sleeps: Sleeps
) -> None:
    created(api)
    client = make_zendesk(api, sleeps, priority_map={})
    try:
        await client.create(make_event(), MARKER)
    finally:
        await client.close()
    assert "priority" not in sent(api) and "group_id" not in sent(api)


async def test_priority_is_the_fallback_for_severities_the_map_lacks(
    api: FakeApi, sleeps: Sleeps
) -> None:
    created(api)
    client = make_zendesk(
        api, sleeps, priority_map={"Critical": "high"}, priority="low"
    )
    try:
        await client.create(make_event(severity="CRITICAL"), MARKER)
        await client.create(make_event(severity="PENDING"), MARKER)
    finally:
        await client.close()
    sent_priorities = [
        r.json["ticket"]["priority"] for r in api.requests("POST", TICKETS)
    ]
    assert sent_priorities == ["high", "low"]


async def test_a_priority_without_a_map_is_sent_for_every_ticket_as_before(
    api: FakeApi, sleeps: Sleeps
) -> None:
    created(api)
    configured = make_zendesk(api, sleeps, priority="urgent", group_id=7)
    try:
        await configured.create(make_event(severity="WARNING"), MARKER)
    finally:
        await configured.close()
    assert (sent(api)["priority"], sent(api)["group_id"]) == ("urgent", 7)


async def test_create_returns_the_ticket_number_as_id_and_key(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    created(api)
    assert await zd.create(make_event(), MARKER) == TICKET


async def test_create_answer_without_ticket_id_is_transient_and_ambiguous(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("POST", TICKETS, Answer(201, {"ticket": {"status": "new"}}))
    with pytest.raises(TransientError) as caught:
        await zd.create(make_event(), MARKER)
    assert caught.value.ambiguous


async def test_create_refuses_a_marker_outside_the_safe_charset(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    with pytest.raises(ValueError):
        await zd.create(make_event(), "a&b=c")
    assert api.seen == []


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(400, text="Bad request", content_type="text/plain"), PermanentError),
        (Answer(401, {"error": "Couldn't authenticate you"}), PermanentError),
        (Answer(403, {"error": "Forbidden"}), PermanentError),
        (Answer(404, {"error": "RecordNotFound"}), PermanentError),
        (Answer(409), PermanentError),
        (Answer(422, INVALID), PermanentError),
        (Answer(429, headers={"Retry-After": "30"}), TransientError),
        (Answer(500), TransientError),
        (Answer(503), TransientError),
        (Answer(201, text="<html/>", content_type="text/html"), TransientError),
        (Answer(hang=True), TransientError),
        (Answer(hang_up=True), TransientError),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, Answer) else v.__name__,
)
async def test_create_answer_maps_to_the_right_error(
    api: FakeApi,
    zd: ZendeskDestination,
    answer: Answer,
    error: type[Exception],
) -> None:
    api.on("POST", TICKETS, answer)
    with pytest.raises(error):
        await zd.create(make_event(), MARKER)


async def test_429_with_a_plain_text_body_keeps_retry_after_and_the_text(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    """BC-26: the rate-limit answer is plain text; it must not crash parsing."""
    text = "Number of allowed API requests per minute exceeded"
    limited = Answer(
        429, text=text, content_type="text/plain", headers={"Retry-After": "30"}
    )
    api.on("PUT", ONE, limited)
    with pytest.raises(TransientError, match="per minute exceeded") as caught:
        await zd.comment(TICKET, make_event())
    assert caught.value.retry_after == 30.0
    assert caught.value.status == 429
    assert not caught.value.ambiguous  # a 429 was surely not applied


async def test_read_waits_out_a_short_retry_after_and_tries_again(
    api: FakeApi, zd: ZendeskDestination, sleeps: Sleeps
) -> None:
    api.on(
        "GET",
        ONE,
        Answer(429, text="slow down", headers={"Retry-After": "1"}),
        Answer(200, ticket(status="open")),
    )
    view = await zd.get(TICKET, MARKER)
    assert view.status == "open"
    assert sleeps.waits and sleeps.waits[0] >= 1.0


async def test_read_with_a_long_retry_after_goes_up_to_the_sender(
    api: FakeApi, zd: ZendeskDestination, sleeps: Sleeps
) -> None:
    api.on("GET", ONE, Answer(429, text="slow down", headers={"Retry-After": "60"}))
    with pytest.raises(TransientError) as caught:
        await zd.get(TICKET, MARKER)
    assert caught.value.retry_after == 60.0
    assert sleeps.waits == []


async def test_422_message_names_zendesk_error_and_description(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("PUT", ONE, Answer(422, INVALID))
    with pytest.raises(PermanentError, match="RecordInvalid; Record validation"):
        await zd.comment(TICKET, make_event())


async def test_error_message_never_contains_the_token(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    pair = base64.b64encode(f"bridge@example.com/token:{TOKEN}".encode()).decode()
    api.on("POST", TICKETS, Answer(401, {"error": f"bad {pair} {TOKEN}"}))
    with pytest.raises(PermanentError) as caught:
        await zd.create(make_event(), MARKER)
    assert TOKEN not in str(caught.value) and pair not in str(caught.value)


def test_missing_token_is_refused_when_the_client_is_built() -> None:
    settings = ZendeskSettings(type="zendesk", url="http://127.0.0.1:9/")
    with pytest.raises(ValueError, match="token"):
        ZendeskDestination("zd", settings)


# --- comment, resolve, reopen -----------------------------------------------------


async def test_comment_puts_a_private_comment_only(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("PUT", ONE, Answer(200, ticket(status="open")))
    await zd.comment(TICKET, make_event(kind=EventKind.UPDATE))
    body = sent(api, "PUT", ONE)
    assert list(body) == ["comment"]
    assert body["comment"]["public"] is False
    assert body["comment"]["body"].startswith("[CRITICAL] web01/HTTP")


async def test_resolve_sets_solved_with_a_private_comment(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", ONE, Answer(200, ticket(status="open")))
    api.on("PUT", ONE, Answer(200, ticket(status="solved")))
    await zd.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    body = sent(api, "PUT", ONE)
    assert body["status"] == "solved"
    assert body["comment"]["public"] is False
    assert "Kind: recovery" in body["comment"]["body"]


@pytest.mark.parametrize("status", ["solved", "closed"])
async def test_resolve_of_a_solved_or_closed_ticket_changes_nothing(
    api: FakeApi, zd: ZendeskDestination, status: str
) -> None:
    api.on("GET", ONE, Answer(200, ticket(status=status)))
    await zd.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    assert api.requests("PUT", ONE) == []


async def test_reopen_sets_open_with_a_private_comment(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("PUT", ONE, Answer(200, ticket(status="open")))
    await zd.reopen(TICKET, make_event())
    body = sent(api, "PUT", ONE)
    assert body["status"] == "open"
    assert body["comment"]["public"] is False


async def test_reopen_of_a_closed_ticket_is_permanent(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("PUT", ONE, Answer(422, INVALID))
    with pytest.raises(PermanentError, match="closed prevents ticket update"):
        await zd.reopen(TICKET, make_event())


async def test_comment_on_a_missing_ticket_is_ticket_not_found(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    not_found = {"error": "RecordNotFound", "description": "Not found"}
    api.on("PUT", ONE, Answer(404, not_found))
    with pytest.raises(TicketNotFound, match="35436"):
        await zd.comment(TICKET, make_event())


async def test_a_ticket_id_that_is_not_a_number_is_refused_before_sending(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    with pytest.raises(ValueError):
        await zd.comment(TicketRef("1/../2", "x"), make_event())
    assert api.seen == []


# --- find and get -----------------------------------------------------------------


async def test_find_lists_tickets_by_external_id(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", TICKETS, Answer(200, {"tickets": [ticket()["ticket"]]}))
    assert await zd.find(MARKER) == TICKET
    assert api.seen[0].query == {"external_id": MARKER}


async def test_find_returns_none_when_no_ticket_has_the_external_id(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", TICKETS, Answer(200, {"tickets": [], "count": 0}))
    assert await zd.find(MARKER) is None


async def test_find_picks_the_oldest_of_several_tickets(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    """external_id is not unique in Zendesk."""
    many = [ticket(id=900)["ticket"], ticket(id=35)["ticket"]]
    api.on("GET", TICKETS, Answer(200, {"tickets": many}))
    assert await zd.find(MARKER) == TicketRef("35", "35")


async def test_find_answer_without_tickets_list_is_transient(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", TICKETS, Answer(200, {"results": []}))
    with pytest.raises(TransientError, match="tickets"):
        await zd.find(MARKER)


@pytest.mark.parametrize(
    ("status", "is_open"),
    [
        ("new", True),
        ("open", True),
        ("pending", True),
        ("hold", True),
        ("solved", False),
        ("closed", False),
    ],
)
async def test_get_reports_open_by_status(
    api: FakeApi, zd: ZendeskDestination, status: str, is_open: bool
) -> None:
    api.on("GET", ONE, Answer(200, ticket(status=status)))
    view = await zd.get(TICKET, MARKER)
    assert (view.marker_present, view.is_open, view.status) == (True, is_open, status)


async def test_get_with_another_external_id_reports_the_marker_missing(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", ONE, Answer(200, ticket(external_id=None)))
    assert not (await zd.get(TICKET, MARKER)).marker_present


async def test_get_of_a_missing_ticket_is_ticket_not_found(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", ONE, Answer(404, {"error": "RecordNotFound"}))
    with pytest.raises(TicketNotFound):
        await zd.get(TICKET, MARKER)


async def test_get_without_status_is_transient(
    api: FakeApi, zd: ZendeskDestination
) -> None:
    api.on("GET", ONE, Answer(200, {"ticket": {"id": 35436}}))
    with pytest.raises(TransientError, match="status"):
        await zd.get(TICKET, MARKER)


def test_build_destination_makes_a_zendesk_client() -> None:
    settings = ZendeskSettings(type="zendesk", url="http://127.0.0.1:9/", token="t")
    assert isinstance(build_destination("zd", settings), ZendeskDestination)
