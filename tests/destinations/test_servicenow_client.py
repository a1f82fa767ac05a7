"""The ServiceNow client against a loopback fake of the Table API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import ServiceNowSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TicketRef,
    TransientError,
)
from ticketbridge.destinations.servicenow import ServiceNowDestination
from ticketbridge.events import Event, EventKind

PASSWORD = "sn-pass-word-456"
MARKER = "tb-0123456789abcdef0123"
SYS_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
RECORD = TicketRef(SYS_ID, "INC0010002")
TABLE = "/api/now/table/incident"


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
async def snow(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[ServiceNowDestination]:
    client = make_snow(api, sleeps)
    yield client
    await client.close()


def make_snow(api: FakeApi, sleeps: Sleeps, **changes: Any) -> ServiceNowDestination:
    settings = ServiceNowSettings(
        type="servicenow",
        url=api.url,
        username="bridge",
        password=PASSWORD,
        timeout=0.5,
        **changes,
    )
    return ServiceNowDestination("snow", settings, read_retry=fast_retry(sleeps))


def make_event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "source": "zabbix",
        "source_event_id": "777",
        "kind": EventKind.PROBLEM,
        "severity": "high",
        "host": "db01",
        "check": "replication",
        "summary": "Replica lag",
        "details": "lag 300s",
        "occurred_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    fields.update(changes)
    return Event(**fields)


def record(**changes: Any) -> dict[str, Any]:
    result = {
        "sys_id": SYS_ID,
        "number": "INC0010002",
        "state": "1",
        "correlation_id": MARKER,
    }
    result.update(changes)
    return {"result": result}


def created(api: FakeApi) -> None:
    api.on("POST", TABLE, Answer(201, record()))


def sent(api: FakeApi) -> dict[str, Any]:
    [request] = api.requests("POST", TABLE)
    body: dict[str, Any] = request.json
    return body


# --- create ---------------------------------------------------------------------


async def test_requests_carry_basic_auth_of_username_and_password(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    await snow.create(make_event(), MARKER)
    pair = base64.b64encode(f"bridge:{PASSWORD}".encode()).decode()
    assert api.seen[0].headers["Authorization"] == f"Basic {pair}"


async def test_create_sets_correlation_id_and_display(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    await snow.create(make_event(), MARKER)
    body = sent(api)
    assert (body["correlation_id"], body["correlation_display"]) == (
        MARKER,
        "ticketbridge",
    )


async def test_create_sends_short_description_and_description(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    await snow.create(make_event(), MARKER)
    body = sent(api)
    assert body["short_description"] == "[HIGH] db01/replication: Replica lag"
    assert "Source: zabbix (event 777)" in body["description"]


async def test_create_returns_sys_id_and_number(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    assert await snow.create(make_event(), MARKER) == RECORD


async def test_create_sets_caller_and_group_only_when_configured(
    api: FakeApi, snow: ServiceNowDestination, sleeps: Sleeps
) -> None:
    created(api)
    await snow.create(make_event(), MARKER)
    assert "caller_id" not in sent(api) and "assignment_group" not in sent(api)

    configured = make_snow(api, sleeps, caller_id="c1", assignment_group="g1")
    try:
        await configured.create(make_event(), MARKER)
    finally:
        await configured.close()
    last = api.requests("POST", TABLE)[-1].json
    assert (last["caller_id"], last["assignment_group"]) == ("c1", "g1")


async def test_short_description_is_cut_to_160_with_an_ellipsis(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    await snow.create(make_event(summary="y" * 300), MARKER)
    short = sent(api)["short_description"]
    assert len(short) == 160
    assert short.endswith("y…")


async def test_short_description_cut_never_splits_an_emoji(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    await snow.create(make_event(summary="x" + "🚨" * 100), MARKER)
    short = sent(api)["short_description"]
    assert short.endswith("🚨…")
    assert len(short.encode("utf-16-le")) // 2 <= 160


async def test_short_description_cut_keeps_combining_marks_with_their_letter(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    created(api)
    await snow.create(make_event(summary="n\u0303" * 200), MARKER)
    assert sent(api)["short_description"].endswith("n\u0303…")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(400, {"error": {"message": "bad", "detail": None}}), PermanentError),
        (Answer(401), PermanentError),
        (Answer(403), PermanentError),
        (Answer(404), PermanentError),
        (Answer(409), PermanentError),
        (Answer(429, headers={"Retry-After": "30"}), TransientError),
        (Answer(500), TransientError),
        (Answer(503), TransientError),
        (Answer(200, text="<html/>", content_type="text/html"), TransientError),
        (Answer(hang=True), TransientError),
        (Answer(hang_up=True), TransientError),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, Answer) else v.__name__,
)
async def test_create_answer_maps_to_the_right_error(
    api: FakeApi,
    snow: ServiceNowDestination,
    answer: Answer,
    error: type[Exception],
) -> None:
    api.on("POST", TABLE, answer)
    with pytest.raises(error):
        await snow.create(make_event(), MARKER)


async def test_error_message_has_servicenow_message_and_detail(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    body = {
        "error": {
            "message": "Operation Failed",
            "detail": "Data Policy Exception: Resolution code is mandatory",
        },
        "status": "failure",
    }
    api.on("PATCH", f"{TABLE}/{SYS_ID}", Answer(403, body))
    with pytest.raises(PermanentError, match="Operation Failed; Data Policy"):
        await snow.resolve(RECORD, make_event(kind=EventKind.RECOVERY))


async def test_error_message_never_contains_the_password(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    pair = base64.b64encode(f"bridge:{PASSWORD}".encode()).decode()
    echo = {"error": {"message": f"bad auth {pair}", "detail": PASSWORD}}
    api.on("POST", TABLE, Answer(401, echo))
    with pytest.raises(PermanentError) as caught:
        await snow.create(make_event(), MARKER)
    assert PASSWORD not in str(caught.value)
    assert pair not in str(caught.value)


async def test_429_keeps_the_retry_after(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    limited = {"error": {"message": "Rate limit exceeded", "detail": "N per hour"}}
    api.on("POST", TABLE, Answer(429, limited, headers={"Retry-After": "0"}))
    with pytest.raises(TransientError) as caught:
        await snow.create(make_event(), MARKER)
    assert caught.value.retry_after == 0.0


def test_missing_password_is_refused_when_the_client_is_built() -> None:
    settings = ServiceNowSettings(
        type="servicenow", url="http://127.0.0.1:9/", username="u"
    )
    with pytest.raises(ValueError, match="password"):
        ServiceNowDestination("snow", settings)


# --- comment and resolve ----------------------------------------------------------


async def test_comment_patches_the_comments_journal(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("PATCH", f"{TABLE}/{SYS_ID}", Answer(200, record(state="2")))
    await snow.comment(RECORD, make_event(kind=EventKind.UPDATE))
    [request] = api.seen
    assert list(request.json) == ["comments"]
    assert request.json["comments"].startswith("[HIGH] db01/replication")


async def test_resolve_patches_state_close_code_and_notes(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("PATCH", f"{TABLE}/{SYS_ID}", Answer(200, record(state="6")))
    await snow.resolve(RECORD, make_event(kind=EventKind.RECOVERY))
    [request] = api.seen
    assert request.json["state"] == "6"
    assert request.json["close_code"] == "Solved (Permanently)"
    assert "Kind: recovery" in request.json["close_notes"]


async def test_comment_on_a_missing_record_is_ticket_not_found(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on(
        "PATCH",
        f"{TABLE}/{SYS_ID}",
        Answer(404, {"error": {"message": "No Record found"}}),
    )
    with pytest.raises(TicketNotFound):
        await snow.comment(RECORD, make_event())


# --- find and get -----------------------------------------------------------------


async def test_find_queries_correlation_id_and_reads_it_back(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", TABLE, Answer(200, {"result": [record()["result"]]}))
    assert await snow.find(MARKER) == RECORD
    query = api.seen[0].query
    assert query["sysparm_query"] == f"correlation_id={MARKER}"
    assert "correlation_id" in query["sysparm_fields"].split(",")
    assert query["sysparm_limit"] == "5"


async def test_find_refuses_rows_that_do_not_carry_the_marker(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    """BC-11: an ignored query condition returns the whole table; update nothing."""
    rows = [
        {"sys_id": "s1", "number": "INC0001146", "state": "1"},
        {"sys_id": "s2", "number": "INC0001147", "state": "2"},
    ]
    api.on(
        "GET", TABLE, Answer(200, {"result": rows}, headers={"X-Total-Count": "8123"})
    )
    with pytest.raises(PermanentError, match="ignored the condition"):
        await snow.find(MARKER)


async def test_find_refuses_several_open_records_with_one_marker(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    """BC-11: never an arbitrary pick among genuine matches."""
    rows = [
        record(sys_id="s1", number="INC1")["result"],
        record(sys_id="s2", number="INC2")["result"],
    ]
    api.on("GET", TABLE, Answer(200, {"result": rows}))
    with pytest.raises(PermanentError, match="2 records carry"):
        await snow.find(MARKER)


async def test_find_prefers_the_single_open_record_among_matches(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    """BC-11: one open match among resolved ones is the incident's ticket."""
    rows = [
        record(sys_id="s1", number="INC1", state="6")["result"],
        record()["result"],
    ]
    api.on("GET", TABLE, Answer(200, {"result": rows}))
    assert await snow.find(MARKER) == RECORD


async def test_reopen_sets_in_progress_with_the_event_as_comment(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("PATCH", f"{TABLE}/{SYS_ID}", Answer(200, record(state="2")))
    await snow.reopen(RECORD, make_event())
    body = api.seen[0].json
    assert body["state"] == "2"
    assert set(body) == {"state", "comments"}


async def test_follow_ups_send_no_field_a_person_may_have_edited(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    """Only journal, state and resolution fields change after the create."""
    api.on("PATCH", f"{TABLE}/{SYS_ID}", Answer(200, record()))
    await snow.comment(RECORD, make_event())
    await snow.resolve(RECORD, make_event(kind=EventKind.RECOVERY))
    await snow.note(RECORD, "Twin ticket: jira_new OPS-12")
    allowed = {"comments", "state", "close_code", "close_notes"}
    for request in api.seen:
        assert set(request.json) <= allowed


async def test_find_returns_none_for_an_empty_result(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", TABLE, Answer(200, {"result": []}))
    assert await snow.find(MARKER) is None


async def test_find_returns_none_when_table_api_v1_answers_404(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", TABLE, Answer(404, {"error": {"message": "No Record found"}}))
    assert await snow.find(MARKER) is None


async def test_find_refuses_a_marker_that_would_add_a_condition(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    with pytest.raises(ValueError):
        await snow.find(f"{MARKER}^ORactive=true")
    assert api.seen == []


async def test_get_reports_marker_and_open_state(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", f"{TABLE}/{SYS_ID}", Answer(200, record(state="2")))
    view = await snow.get(RECORD, MARKER)
    assert (view.marker_present, view.is_open, view.status) == (True, True, "2")


async def test_get_of_a_resolved_record_is_not_open(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", f"{TABLE}/{SYS_ID}", Answer(200, record(state="6")))
    assert not (await snow.get(RECORD, MARKER)).is_open


async def test_get_with_another_correlation_id_reports_the_marker_missing(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", f"{TABLE}/{SYS_ID}", Answer(200, record(correlation_id="")))
    assert not (await snow.get(RECORD, MARKER)).marker_present


async def test_get_of_a_missing_record_is_ticket_not_found(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on(
        "GET",
        f"{TABLE}/{SYS_ID}",
        Answer(404, {"error": {"message": "No Record found"}}),
    )
    with pytest.raises(TicketNotFound):
        await snow.get(RECORD, MARKER)


async def test_get_with_a_state_that_is_not_a_number_is_transient(
    api: FakeApi, snow: ServiceNowDestination
) -> None:
    api.on("GET", f"{TABLE}/{SYS_ID}", Answer(200, record(state="Resolved")))
    with pytest.raises(TransientError, match="state"):
        await snow.get(RECORD, MARKER)


def test_build_destination_makes_a_servicenow_client() -> None:
    settings = ServiceNowSettings(
        type="servicenow", url="http://127.0.0.1:9/", username="u", password="p"
    )
    assert isinstance(build_destination("snow", settings), ServiceNowDestination)
