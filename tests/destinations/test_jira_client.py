"""The Jira client against a loopback fake of the Jira REST API."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import JiraSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TicketRef,
    TransientError,
)
from ticketbridge.destinations.http import truncate
from ticketbridge.destinations.jira import JiraDestination
from ticketbridge.events import Event, EventKind

TOKEN = "jira-api-token-123"
MARKER = "tb-0123456789abcdef0123"
ISSUE = TicketRef("10001", "OPS-7")
V3 = "/rest/api/3"
V2 = "/rest/api/2"


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
async def jira(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[JiraDestination]:
    client = make_jira(api, 3, sleeps)
    yield client
    await client.close()


@pytest.fixture
async def jira2(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[JiraDestination]:
    client = make_jira(api, 2, sleeps)
    yield client
    await client.close()


def make_jira(
    api: FakeApi, version: int, sleeps: Sleeps, **changes: Any
) -> JiraDestination:
    settings = JiraSettings(
        type="jira",
        url=api.url,
        project="OPS",
        email="ops@example.com",
        token=TOKEN,
        api_version=version,  # type: ignore[arg-type]
        timeout=0.5,
        **changes,
    )
    return JiraDestination("jira", settings, read_retry=fast_retry(sleeps))


def make_event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "source": "nagios",
        "source_event_id": "42",
        "kind": EventKind.PROBLEM,
        "severity": "critical",
        "host": "web01",
        "check": "disk",
        "summary": "Disk full",
        "details": "/var at 99%",
        "occurred_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    fields.update(changes)
    return Event(**fields)


def created(api: FakeApi, prefix: str = V3) -> None:
    api.on("POST", f"{prefix}/issue", Answer(201, {"id": "10001", "key": "OPS-7"}))


def sent_fields(api: FakeApi, prefix: str = V3) -> dict[str, Any]:
    [request] = api.requests("POST", f"{prefix}/issue")
    fields: dict[str, Any] = request.json["fields"]
    return fields


def issue_status(category: str, name: str = "Open") -> dict[str, Any]:
    return {"name": name, "statusCategory": {"key": category}}


# --- create ---------------------------------------------------------------------


async def test_v3_sends_basic_auth_of_email_and_token(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(), MARKER)
    pair = base64.b64encode(f"ops@example.com:{TOKEN}".encode()).decode()
    assert api.seen[0].headers["Authorization"] == f"Basic {pair}"


async def test_v2_sends_the_token_as_bearer(
    api: FakeApi, jira2: JiraDestination
) -> None:
    created(api, V2)
    await jira2.create(make_event(), MARKER)
    assert api.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_v3_description_is_an_adf_document(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(), MARKER)
    description = sent_fields(api)["description"]
    assert (description["type"], description["version"]) == ("doc", 1)
    first = description["content"][0]["content"][0]
    assert first == {"type": "text", "text": "Host: web01"}


async def test_v2_description_is_a_plain_string(
    api: FakeApi, jira2: JiraDestination
) -> None:
    created(api, V2)
    await jira2.create(make_event(), MARKER)
    assert sent_fields(api, V2)["description"].startswith("Host: web01\n")


async def test_create_sets_project_issue_type_and_marker_label(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(), MARKER)
    fields = sent_fields(api)
    assert fields["project"] == {"key": "OPS"}
    assert fields["issuetype"] == {"name": "Incident"}
    assert fields["labels"] == [MARKER]


async def test_create_returns_the_issue_id_and_key(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    assert await jira.create(make_event(), MARKER) == TicketRef("10001", "OPS-7")


async def test_summary_names_severity_host_check_and_summary(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(), MARKER)
    assert sent_fields(api)["summary"] == "[CRITICAL] web01/disk: Disk full"


async def test_summary_of_a_host_event_leaves_the_check_out(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(check="", summary="Host down"), MARKER)
    assert sent_fields(api)["summary"] == "[CRITICAL] web01: Host down"


async def test_description_gives_the_time_in_utc_and_the_source_event(
    api: FakeApi, jira2: JiraDestination
) -> None:
    created(api, V2)
    local = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    await jira2.create(make_event(occurred_at=local), MARKER)
    description = sent_fields(api, V2)["description"]
    assert "Time: 2024-05-01 12:00:00 UTC" in description
    assert "Source: nagios (event 42)" in description
    assert "Kind: problem" in description
    assert description.endswith("/var at 99%")


async def test_long_summary_is_cut_to_254_and_ends_with_an_ellipsis(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(summary="x" * 400), MARKER)
    summary = sent_fields(api)["summary"]
    assert len(summary) == 254
    assert summary.endswith("x…")


async def test_summary_cut_never_splits_an_emoji(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(summary="🔥" * 300), MARKER)
    summary = sent_fields(api)["summary"]
    assert summary.endswith("🔥…")
    assert len(summary.encode("utf-16-le")) // 2 <= 254


async def test_summary_cut_keeps_combining_marks_with_their_letter(
    api: FakeApi, jira: JiraDestination
) -> None:
    created(api)
    await jira.create(make_event(summary="e\u0301" * 300), MARKER)
    summary = sent_fields(api)["summary"]
    assert summary.endswith("e\u0301…")


def test_cut_keeps_a_joined_emoji_sequence_whole() -> None:
    family = "👨\u200d👩\u200d👧"
    cut = truncate("ab" + family * 10, 14)
    assert cut == "ab" + family + "…"


def test_cut_keeps_flags_whole() -> None:
    flags = "🇩🇪🇫🇷🇮🇹"
    assert truncate(flags, 9) == "🇩🇪🇫🇷…"
    assert truncate(flags, 8) == "🇩🇪…"


def test_text_within_the_limit_is_left_alone() -> None:
    assert truncate("short", 5) == "short"


async def test_create_refuses_a_marker_outside_the_charset(
    jira: JiraDestination,
) -> None:
    with pytest.raises(ValueError, match="marker"):
        await jira.create(make_event(), "tb 1")


def test_missing_token_is_refused_when_the_client_is_built() -> None:
    settings = JiraSettings(
        type="jira", url="http://127.0.0.1:9/", project="OPS", email="a@b"
    )
    with pytest.raises(ValueError, match="token"):
        JiraDestination("jira", settings)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            Answer(400, {"errorMessages": [], "errors": {"summary": "bad"}}),
            PermanentError,
        ),
        (Answer(401), PermanentError),
        (Answer(403, {"errorMessages": ["forbidden"]}), PermanentError),
        (Answer(404), PermanentError),
        (Answer(409), PermanentError),
        (Answer(429), TransientError),
        (Answer(429, headers={"Retry-After": "0"}), TransientError),
        (Answer(500), TransientError),
        (Answer(503), TransientError),
        (Answer(200, text="<html/>", content_type="text/html"), TransientError),
        (Answer(hang=True), TransientError),
        (Answer(hang_up=True), TransientError),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, Answer) else v.__name__,
)
async def test_create_answer_maps_to_the_right_error(
    api: FakeApi, jira: JiraDestination, answer: Answer, error: type[Exception]
) -> None:
    api.on("POST", f"{V3}/issue", answer)
    with pytest.raises(error):
        await jira.create(make_event(), MARKER)


async def test_create_error_message_has_jira_messages_and_field_errors(
    api: FakeApi, jira: JiraDestination
) -> None:
    errors = {"errorMessages": ["Project is archived"], "errors": {"labels": "bad"}}
    api.on("POST", f"{V3}/issue", Answer(400, errors))
    with pytest.raises(PermanentError, match="Project is archived; labels: bad"):
        await jira.create(make_event(), MARKER)


async def test_error_message_never_contains_the_credentials(
    api: FakeApi, jira: JiraDestination
) -> None:
    pair = base64.b64encode(f"ops@example.com:{TOKEN}".encode()).decode()
    echo = {"errorMessages": [f"token {TOKEN} / header Basic {pair} refused"]}
    api.on("POST", f"{V3}/issue", Answer(401, echo))
    with pytest.raises(PermanentError) as caught:
        await jira.create(make_event(), MARKER)
    assert TOKEN not in str(caught.value)
    assert pair not in str(caught.value)


async def test_create_answer_without_a_key_is_an_ambiguous_failure(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("POST", f"{V3}/issue", Answer(201, {"id": "10001"}))
    with pytest.raises(TransientError, match="key") as caught:
        await jira.create(make_event(), MARKER)
    assert caught.value.ambiguous


async def test_create_is_not_retried_by_the_client(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("POST", f"{V3}/issue", Answer(503), Answer(201, {"id": "1", "key": "K"}))
    with pytest.raises(TransientError):
        await jira.create(make_event(), MARKER)
    assert len(api.seen) == 1


# --- comment --------------------------------------------------------------------


async def test_v3_comment_body_is_an_adf_document(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("POST", f"{V3}/issue/10001/comment", Answer(201, {"id": "1"}))
    await jira.comment(ISSUE, make_event(kind=EventKind.ACKNOWLEDGEMENT))
    [request] = api.seen
    assert request.json["body"]["type"] == "doc"


async def test_v2_comment_body_is_a_plain_string(
    api: FakeApi, jira2: JiraDestination
) -> None:
    api.on("POST", f"{V2}/issue/10001/comment", Answer(201, {"id": "1"}))
    await jira2.comment(ISSUE, make_event(kind=EventKind.ACKNOWLEDGEMENT))
    [request] = api.seen
    assert request.json["body"].startswith("[CRITICAL] web01/disk: Disk full\n")


async def test_comment_on_a_missing_issue_is_ticket_not_found(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("POST", f"{V3}/issue/10001/comment", Answer(404))
    with pytest.raises(TicketNotFound):
        await jira.comment(ISSUE, make_event())


# --- resolve --------------------------------------------------------------------


def transitions(*items: tuple[str, str, str]) -> Answer:
    return Answer(
        200,
        {
            "transitions": [
                {"id": tid, "name": name, "to": {"name": to}} for tid, name, to in items
            ]
        },
    )


def open_issue(api: FakeApi) -> None:
    api.on(
        "GET",
        f"{V3}/issue/10001",
        Answer(200, {"fields": {"status": issue_status("new")}}),
    )
    api.on("POST", f"{V3}/issue/10001/transitions", Answer(204))
    api.on("POST", f"{V3}/issue/10001/comment", Answer(201, {"id": "5"}))


async def test_resolve_chooses_the_transition_by_name_ignoring_case(
    api: FakeApi, jira: JiraDestination
) -> None:
    open_issue(api)
    api.on(
        "GET",
        f"{V3}/issue/10001/transitions",
        transitions(("11", "Start", "In Progress"), ("31", "DONE", "Closed")),
    )
    await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    [posted] = api.requests("POST", f"{V3}/issue/10001/transitions")
    assert posted.json == {"transition": {"id": "31"}}


async def test_resolve_accepts_a_transition_named_after_its_target_status(
    api: FakeApi, jira: JiraDestination
) -> None:
    open_issue(api)
    api.on(
        "GET",
        f"{V3}/issue/10001/transitions",
        transitions(("11", "Start", "In Progress"), ("41", "Finish", "Done")),
    )
    await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    [posted] = api.requests("POST", f"{V3}/issue/10001/transitions")
    assert posted.json == {"transition": {"id": "41"}}


async def test_resolve_without_the_transition_names_the_available_ones(
    api: FakeApi, jira: JiraDestination
) -> None:
    open_issue(api)
    api.on(
        "GET",
        f"{V3}/issue/10001/transitions",
        transitions(("11", "Start", "In Progress"), ("21", "Hold", "Waiting")),
    )
    with pytest.raises(PermanentError, match="'Done'.*'Start', 'Hold'"):
        await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    assert api.requests("POST", f"{V3}/issue/10001/transitions") == []


async def test_resolve_of_an_issue_already_done_adds_only_the_comment(
    api: FakeApi, jira: JiraDestination
) -> None:
    """An earlier attempt's transition took but its answer was lost."""
    done = {"fields": {"status": issue_status("done", "Closed")}}
    api.on("GET", f"{V3}/issue/10001", Answer(200, done))
    api.on("POST", f"{V3}/issue/10001/comment", Answer(201, {"id": "1"}))
    await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    assert [(s.method, s.path.rsplit("/", 1)[-1]) for s in api.seen] == [
        ("GET", "10001"),
        ("POST", "comment"),
    ]


async def test_resolve_adds_the_event_as_a_comment_after_the_transition(
    api: FakeApi, jira: JiraDestination
) -> None:
    open_issue(api)
    api.on("GET", f"{V3}/issue/10001/transitions", transitions(("31", "Done", "Done")))
    await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    posts = [s.path for s in api.seen if s.method == "POST"]
    assert posts == [f"{V3}/issue/10001/transitions", f"{V3}/issue/10001/comment"]


async def test_resolve_whose_note_fails_fails_so_that_the_note_is_retried(
    api: FakeApi, jira: JiraDestination
) -> None:
    """The recovery's text is part of the resolve; it is never dropped."""
    api.on(
        "GET",
        f"{V3}/issue/10001",
        Answer(200, {"fields": {"status": issue_status("new")}}),
    )
    api.on("GET", f"{V3}/issue/10001/transitions", transitions(("31", "Done", "Done")))
    api.on("POST", f"{V3}/issue/10001/transitions", Answer(204))
    api.on("POST", f"{V3}/issue/10001/comment", Answer(503))
    with pytest.raises(TransientError):
        await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))


# --- find -----------------------------------------------------------------------


async def test_v3_find_posts_an_enhanced_search_with_labels_and_status(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("POST", f"{V3}/search/jql", Answer(200, {"issues": [found()]}))
    assert await jira.find(MARKER) == ISSUE
    [request] = api.seen
    assert request.json["jql"] == f'project = "OPS" AND labels = "{MARKER}"'
    assert request.json["fields"] == ["labels", "status"]


async def test_v2_find_gets_the_search_with_jql(
    api: FakeApi, jira2: JiraDestination
) -> None:
    api.on("GET", f"{V2}/search", Answer(200, {"issues": [found()], "total": 1}))
    assert await jira2.find(MARKER) == ISSUE
    [request] = api.seen
    assert request.query["jql"] == f'project = "OPS" AND labels = "{MARKER}"'


async def test_find_returns_none_when_no_issue_carries_the_marker(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("POST", f"{V3}/search/jql", Answer(200, {"issues": [], "isLast": True}))
    assert await jira.find(MARKER) is None


def found(
    issue_id: str = "10001",
    key: str = "OPS-7",
    labels: tuple[str, ...] = (MARKER,),
    category: str = "new",
) -> dict[str, Any]:
    fields = {"labels": list(labels), "status": issue_status(category)}
    return {"id": issue_id, "key": key, "fields": fields}


async def test_find_ignores_issues_that_do_not_carry_the_exact_marker(
    api: FakeApi, jira: JiraDestination
) -> None:
    """BC-11: a lookup that returns unrelated issues must not pick one of them."""
    unrelated = [found("1", "OPS-1", ("other",)), found("2", "OPS-2", (MARKER + "x",))]
    api.on("POST", f"{V3}/search/jql", Answer(200, {"issues": unrelated}))
    with pytest.raises(PermanentError, match="without that label"):
        await jira.find(MARKER)


async def test_find_refuses_several_open_issues_with_one_marker(
    api: FakeApi, jira: JiraDestination
) -> None:
    """BC-11: several genuine matches are never chosen from arbitrarily."""
    twins = [found("1", "OPS-1"), found("2", "OPS-2")]
    api.on("POST", f"{V3}/search/jql", Answer(200, {"issues": twins}))
    with pytest.raises(PermanentError, match="2 issues carry label"):
        await jira.find(MARKER)


async def test_find_prefers_the_single_open_issue_among_matches(
    api: FakeApi, jira: JiraDestination
) -> None:
    """BC-11: one open match among resolved ones is the incident's ticket."""
    matches = [found("1", "OPS-1", category="done"), found("10001", "OPS-7")]
    api.on("POST", f"{V3}/search/jql", Answer(200, {"issues": matches}))
    assert await jira.find(MARKER) == ISSUE


async def test_find_follows_next_page_tokens(
    api: FakeApi, jira: JiraDestination
) -> None:
    """BC-13: the enhanced search pages with nextPageToken, never startAt."""
    api.on(
        "POST",
        f"{V3}/search/jql",
        Answer(200, {"issues": [], "nextPageToken": "t2", "isLast": False}),
        Answer(200, {"issues": [found()], "isLast": True}),
    )
    assert await jira.find(MARKER) == ISSUE
    assert [r.json.get("nextPageToken") for r in api.seen] == [None, "t2"]


async def test_find_on_a_removed_search_endpoint_is_a_permanent_error(
    api: FakeApi, jira: JiraDestination
) -> None:
    """BC-13: 410 Gone from a search is reported, never read as zero results."""
    gone = {"errorMessages": ["The requested API has been removed."]}
    api.on("POST", f"{V3}/search/jql", Answer(410, gone))
    with pytest.raises(PermanentError):
        await jira.find(MARKER)


async def test_v3_find_never_calls_the_removed_search(
    api: FakeApi, jira: JiraDestination
) -> None:
    """BC-13: Jira Cloud (v3) uses /search/jql only."""
    api.on("POST", f"{V3}/search/jql", Answer(200, {"issues": [], "isLast": True}))
    await jira.find(MARKER)
    assert [r.path for r in api.seen] == [f"{V3}/search/jql"]


async def test_find_refuses_a_marker_that_could_break_the_jql(
    api: FakeApi, jira: JiraDestination
) -> None:
    with pytest.raises(ValueError):
        await jira.find('x" OR project = "OTHER')
    assert api.seen == []


# --- get ------------------------------------------------------------------------


def issue(labels: list[str], category: str, comments: int = 2) -> Answer:
    fields = {
        "labels": labels,
        "status": issue_status(category, "In Progress"),
        "summary": "s",
        "comment": {"total": comments, "comments": []},
    }
    return Answer(200, {"id": "10001", "key": "OPS-7", "fields": fields})


async def test_get_reports_marker_state_status_and_comment_count(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("GET", f"{V3}/issue/10001", issue([MARKER], "indeterminate", 3))
    view = await jira.get(ISSUE, MARKER)
    assert (view.marker_present, view.is_open) == (True, True)
    assert (view.status, view.comment_count) == ("In Progress", 3)
    assert api.seen[0].query["fields"] == "labels,status,summary,comment,resolution"


async def test_get_of_an_issue_in_the_done_category_is_not_open(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("GET", f"{V3}/issue/10001", issue([MARKER], "done"))
    assert not (await jira.get(ISSUE, MARKER)).is_open


async def test_get_without_the_marker_label_reports_it_missing(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("GET", f"{V3}/issue/10001", issue(["other"], "new"))
    assert not (await jira.get(ISSUE, MARKER)).marker_present


async def test_get_of_a_missing_issue_is_ticket_not_found(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on("GET", f"{V3}/issue/10001", Answer(404, {"errorMessages": ["gone"]}))
    with pytest.raises(TicketNotFound):
        await jira.get(ISSUE, MARKER)


async def test_get_is_retried_after_a_503(
    api: FakeApi, jira: JiraDestination, sleeps: Sleeps
) -> None:
    api.on("GET", f"{V3}/issue/10001", Answer(503), issue([MARKER], "new"))
    assert (await jira.get(ISSUE, MARKER)).marker_present
    assert len(sleeps.waits) == 1


async def test_cloud_assignee_is_sent_as_an_account_id(
    api: FakeApi, sleeps: Sleeps
) -> None:
    """BC-15: Jira Cloud identifies users by accountId only."""
    client = make_jira(api, 3, sleeps, assignee_account_id="acct-placeholder-0001")
    created(api)
    await client.create(make_event(), MARKER)
    await client.close()
    [request] = api.seen
    assert request.json["fields"]["assignee"] == {"accountId": "acct-placeholder-0001"}


def test_cloud_assignee_by_name_is_refused_at_config_load() -> None:
    """BC-15: a name-only assignee cannot work on Cloud; say what to set."""
    with pytest.raises(ValueError, match="set assignee_account_id"):
        JiraSettings(
            type="jira",
            url="http://127.0.0.1:9/",
            project="OPS",
            email="a@b",
            token="t",
            assignee="jdoe",
        )


async def test_refused_assignee_still_creates_the_ticket_unassigned(
    api: FakeApi, sleeps: Sleeps
) -> None:
    """BC-15: the assignment failing must not lose the ticket."""
    client = make_jira(api, 3, sleeps, assignee_account_id="acct-gone")
    refusal = {
        "errorMessages": [],
        "errors": {"assignee": "User 'acct-gone' does not exist."},
    }
    api.on(
        "POST",
        f"{V3}/issue",
        Answer(400, refusal),
        Answer(201, {"id": "10001", "key": "OPS-7"}),
    )
    assert await client.create(make_event(), MARKER) == ISSUE
    await client.close()
    assert "assignee" not in api.seen[1].json["fields"]


async def test_get_reports_the_resolution_of_a_done_issue(
    api: FakeApi, jira: JiraDestination
) -> None:
    answer = issue([MARKER], "done")
    answer.json["fields"]["resolution"] = {"name": "Won't Fix"}
    api.on("GET", f"{V3}/issue/10001", answer)
    assert (await jira.get(ISSUE, MARKER)).resolution == "Won't Fix"


# --- reopen ---------------------------------------------------------------------


async def test_reopen_applies_the_reopen_transition_and_comments(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on(
        "GET",
        f"{V3}/issue/10001",
        Answer(200, {"fields": {"status": issue_status("done")}}),
    )
    api.on(
        "GET", f"{V3}/issue/10001/transitions", transitions(("41", "Reopen", "Open"))
    )
    api.on("POST", f"{V3}/issue/10001/transitions", Answer(204))
    api.on("POST", f"{V3}/issue/10001/comment", Answer(201, {"id": "1"}))

    await jira.reopen(ISSUE, make_event())

    posts = [r for r in api.seen if r.method == "POST"]
    assert posts[0].json == {"transition": {"id": "41"}}
    assert posts[1].path.endswith("/comment")


async def test_reopen_without_the_named_transition_is_a_permanent_error(
    api: FakeApi, jira: JiraDestination
) -> None:
    api.on(
        "GET",
        f"{V3}/issue/10001",
        Answer(200, {"fields": {"status": issue_status("done")}}),
    )
    api.on("GET", f"{V3}/issue/10001/transitions", transitions(("51", "Archive", "X")))
    with pytest.raises(PermanentError, match="no transition 'Reopen'"):
        await jira.reopen(ISSUE, make_event())


async def test_follow_ups_never_edit_issue_fields(
    api: FakeApi, jira: JiraDestination
) -> None:
    """A person's summary, priority, assignee or labels are never overwritten."""
    api.on(
        "GET",
        f"{V3}/issue/10001",
        Answer(200, {"fields": {"status": issue_status("new")}}),
    )
    api.on("GET", f"{V3}/issue/10001/transitions", transitions(("31", "Done", "Done")))
    api.on("POST", f"{V3}/issue/10001/transitions", Answer(204))
    api.on("POST", f"{V3}/issue/10001/comment", Answer(201, {"id": "1"}))

    await jira.comment(ISSUE, make_event())
    await jira.resolve(ISSUE, make_event(kind=EventKind.RECOVERY))
    await jira.note(ISSUE, "Twin ticket: snow_old INC0010001")

    assert {r.method for r in api.seen} <= {"GET", "POST"}
    for request in api.seen:
        if request.method == "POST":
            assert set(request.json) <= {"body", "transition"}


def test_build_destination_makes_a_jira_client() -> None:
    settings = JiraSettings(
        type="jira", url="http://127.0.0.1:9/", project="OPS", email="a@b", token="t"
    )
    assert isinstance(build_destination("jira", settings), JiraDestination)
