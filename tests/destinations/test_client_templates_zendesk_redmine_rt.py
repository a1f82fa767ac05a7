"""Zendesk, Redmine and RT send the rendered, cleaned and capped text of their
templates, a priority from `priority_map`, and preview what create would send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_client_templates import MARKER, make_event
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import (
    RedmineSettings,
    RequestTrackerSettings,
    TemplateSettings,
    ZendeskSettings,
)
from ticketbridge.destinations.base import (
    Notes,
    PermanentError,
    Previews,
    Reopens,
    TicketRef,
)
from ticketbridge.destinations.redmine import RedmineDestination
from ticketbridge.destinations.request_tracker import RequestTrackerDestination
from ticketbridge.destinations.zendesk import ZendeskDestination
from ticketbridge.events import EventKind
from ticketbridge.templates import reserved_field_problems

TICKETS = "/api/v2/tickets"
ISSUES = "/issues.json"
RT_TICKET = "/REST/2.0/ticket"
CUSTOM = TemplateSettings(
    summary="{{ extra.env | upper }} {{ host }} is {{ state }}",
    description="Output: {{ output }}\nKey: {{ incident_key }}",
    fields={"team": "{{ extra.env }}-ops"},
)
LONG = TemplateSettings(summary="{{ host }}-{{ 'x' * 300 }}")
BROKEN = TemplateSettings(description="{{ extra.missing }}")
COMMENT = TemplateSettings(summary="{{ kind }} on {{ host }}", description="D")


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


def zendesk(api: FakeApi, **settings: Any) -> ZendeskDestination:
    config = ZendeskSettings(
        type="zendesk",
        url=api.url,
        email="bridge@example.com",
        token="zd-token-123",
        timeout=0.5,
        **settings,
    )
    return ZendeskDestination("zd", config, read_retry=fast_retry(Sleeps()))


def redmine(api: FakeApi, **settings: Any) -> RedmineDestination:
    config = RedmineSettings(
        type="redmine",
        url=api.url,
        api_key="rm-key-123",
        project="ops",
        custom_field_id=7,
        timeout=0.5,
        **settings,
    )
    return RedmineDestination("rm", config, read_retry=fast_retry(Sleeps()))


def rt(api: FakeApi, **settings: Any) -> RequestTrackerDestination:
    config = RequestTrackerSettings(
        type="request_tracker",
        url=api.url,
        token="rt-token-123",
        timeout=0.5,
        **settings,
    )
    return RequestTrackerDestination("rt", config, read_retry=fast_retry(Sleeps()))


def zendesk_created(api: FakeApi) -> None:
    api.on("POST", TICKETS, Answer(201, {"ticket": {"id": 5}}))


def redmine_created(api: FakeApi) -> None:
    api.on("POST", ISSUES, Answer(201, {"issue": {"id": 9}}))


def rt_created(api: FakeApi) -> None:
    api.on("POST", RT_TICKET, Answer(201, {"type": "ticket", "id": "20"}))


def body(api: FakeApi, method: str, path: str, key: str | None = None) -> Any:
    [request] = api.requests(method, path)
    return request.json[key] if key else request.json


async def test_the_three_clients_offer_reopen_note_and_preview(api: FakeApi) -> None:
    """The sender, mirror mode and `route` find them by these interfaces."""
    for client in (zendesk(api), redmine(api), rt(api)):
        assert isinstance(client, Reopens)
        assert isinstance(client, Notes)
        assert isinstance(client, Previews)
        await client.close()


# --- Zendesk ------------------------------------------------------------------


async def test_zendesk_sends_the_custom_subject_description_and_fields(
    api: FakeApi,
) -> None:
    zendesk_created(api)
    client = zendesk(api, templates=CUSTOM)
    await client.create(make_event(incident_key="nagios|web01|disk"), MARKER)
    await client.close()

    ticket = body(api, "POST", TICKETS, "ticket")
    assert ticket["subject"] == "PROD web01 is CRITICAL"
    assert ticket["comment"] == {
        "body": "Output: Disk full\nKey: nagios|web01|disk",
        "public": False,
    }
    assert ticket["team"] == "prod-ops"


async def test_zendesk_subject_is_cut_to_255(api: FakeApi) -> None:
    zendesk_created(api)
    client = zendesk(api, templates=LONG)
    await client.create(make_event(), MARKER)
    await client.close()

    subject = body(api, "POST", TICKETS, "ticket")["subject"]
    assert len(subject) == 255
    assert subject.startswith("web01-xxx") and subject.endswith("…")


async def test_zendesk_preview_is_the_create_request_and_sends_nothing(
    api: FakeApi,
) -> None:
    zendesk_created(api)
    client = zendesk(api, templates=CUSTOM)
    preview = await client.preview(make_event(), MARKER)
    assert api.seen == []

    await client.create(make_event(), MARKER)
    await client.close()
    assert body(api, "POST", TICKETS, "ticket") == preview
    assert (preview["external_id"], preview["priority"]) == (MARKER, "urgent")


async def test_zendesk_comment_and_note_are_private(api: FakeApi) -> None:
    api.on("PUT", f"{TICKETS}/5", Answer(200, {"ticket": {"id": 5}}))
    client = zendesk(api, templates=COMMENT)
    await client.comment(TicketRef("5", "5"), make_event(kind=EventKind.UPDATE))
    await client.note(TicketRef("5", "5"), "twin: OPS-7")
    await client.close()

    sent = [r.json["ticket"]["comment"] for r in api.requests("PUT", f"{TICKETS}/5")]
    assert sent == [
        {"body": "update on web01\n\nD", "public": False},
        {"body": "twin: OPS-7", "public": False},
    ]


async def test_zendesk_resolve_with_a_broken_template_sends_nothing(
    api: FakeApi,
) -> None:
    client = zendesk(api, templates=BROKEN)
    with pytest.raises(PermanentError) as caught:
        await client.resolve(TicketRef("5", "5"), make_event())
    await client.close()

    assert caught.value.reason == "template"
    assert api.seen == []


# --- Redmine ------------------------------------------------------------------


async def test_redmine_sends_the_custom_subject_description_and_fields(
    api: FakeApi,
) -> None:
    redmine_created(api)
    client = redmine(api, templates=CUSTOM)
    await client.create(make_event(incident_key="nagios|web01|disk"), MARKER)
    await client.close()

    issue = body(api, "POST", ISSUES, "issue")
    assert issue["subject"] == "PROD web01 is CRITICAL"
    assert issue["description"] == "Output: Disk full\nKey: nagios|web01|disk"
    assert issue["team"] == "prod-ops"
    assert issue["custom_fields"] == [{"id": 7, "value": MARKER}]


async def test_redmine_subject_is_cut_to_255(api: FakeApi) -> None:
    redmine_created(api)
    client = redmine(api, templates=LONG)
    await client.create(make_event(), MARKER)
    await client.close()
    assert len(body(api, "POST", ISSUES, "issue")["subject"]) == 255


async def test_redmine_sends_no_priority_by_default(api: FakeApi) -> None:
    """Priority ids differ between Redmine installations: none is guessed."""
    client = redmine(api)
    assert "priority_id" not in await client.preview(make_event(), MARKER)
    await client.close()


async def test_redmine_priority_id_follows_the_map_then_the_fallback(
    api: FakeApi,
) -> None:
    client = redmine(api, priority_map={"CRITICAL": 5}, priority_id=2)
    critical = await client.preview(make_event(severity="critical"), MARKER)
    warning = await client.preview(make_event(severity="WARNING"), MARKER)
    await client.close()
    assert (critical["priority_id"], warning["priority_id"]) == (5, 2)


async def test_redmine_comment_and_note_are_notes(api: FakeApi) -> None:
    api.on("PUT", "/issues/9.json", Answer(204))
    client = redmine(api, templates=COMMENT)
    await client.comment(TicketRef("9", "#9"), make_event(kind=EventKind.UPDATE))
    await client.note(TicketRef("9", "#9"), "twin: OPS-7")
    await client.close()

    sent = [r.json["issue"] for r in api.requests("PUT", "/issues/9.json")]
    assert sent == [{"notes": "update on web01\n\nD"}, {"notes": "twin: OPS-7"}]


async def test_redmine_resolve_with_a_broken_template_sends_nothing(
    api: FakeApi,
) -> None:
    client = redmine(api, templates=BROKEN)
    with pytest.raises(PermanentError) as caught:
        await client.resolve(TicketRef("9", "#9"), make_event())
    await client.close()

    assert caught.value.reason == "template"
    assert api.seen == []


# --- Request Tracker ----------------------------------------------------------


async def test_rt_sends_the_custom_subject_content_and_fields(api: FakeApi) -> None:
    rt_created(api)
    client = rt(api, templates=CUSTOM)
    await client.create(make_event(incident_key="nagios|web01|disk"), MARKER)
    await client.close()

    ticket = body(api, "POST", RT_TICKET)
    assert ticket["Subject"] == "PROD web01 is CRITICAL"
    assert ticket["Content"] == "Output: Disk full\nKey: nagios|web01|disk"
    assert ticket["team"] == "prod-ops"
    assert ticket["CustomFields"] == {"CorrelationKey": MARKER}


async def test_rt_subject_is_cut_to_200(api: FakeApi) -> None:
    """RT's Tickets.Subject is varchar(200) in every database schema."""
    rt_created(api)
    client = rt(api, templates=LONG)
    await client.create(make_event(), MARKER)
    await client.close()
    assert len(body(api, "POST", RT_TICKET)["Subject"]) == 200


async def test_rt_priority_follows_rt_default_scale_and_zero_is_sent(
    api: FakeApi,
) -> None:
    client = rt(api)
    critical = await client.preview(make_event(severity="CRITICAL"), MARKER)
    ok = await client.preview(make_event(severity="OK"), MARKER)
    await client.close()
    assert (critical["Priority"], ok["Priority"]) == (100, 0)


async def test_rt_empty_priority_map_sends_no_priority(api: FakeApi) -> None:
    client = rt(api, priority_map={})
    assert "Priority" not in await client.preview(make_event(), MARKER)
    await client.close()


async def test_rt_comment_and_note_post_plain_text_comments(api: FakeApi) -> None:
    path = f"{RT_TICKET}/20/comment"
    api.on("POST", path, Answer(201, ["Comments added"]))
    client = rt(api, templates=COMMENT)
    await client.comment(TicketRef("20", "20"), make_event(kind=EventKind.UPDATE))
    await client.note(TicketRef("20", "20"), "twin: OPS-7")
    await client.close()

    sent = [r.json for r in api.requests("POST", path)]
    assert sent == [
        {"Content": "update on web01\n\nD", "ContentType": "text/plain"},
        {"Content": "twin: OPS-7", "ContentType": "text/plain"},
    ]


async def test_rt_reopen_with_a_broken_template_sends_nothing(api: FakeApi) -> None:
    client = rt(api, templates=BROKEN)
    with pytest.raises(PermanentError) as caught:
        await client.reopen(TicketRef("20", "20"), make_event())
    await client.close()

    assert caught.value.reason == "template"
    assert api.seen == []


# --- reserved fields ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("zendesk", "external_id"),
        ("zendesk", "subject"),
        ("redmine", "custom_fields"),
        ("redmine", "project_id"),
        ("request_tracker", "CustomFields"),
        ("request_tracker", "Queue"),
    ],
)
def test_a_field_the_client_fills_cannot_be_templated(kind: str, name: str) -> None:
    templates = TemplateSettings(fields={name: "x", "team": "ops"})
    problems = reserved_field_problems("destinations.d.templates", kind, templates)
    assert problems == [
        f"destinations.d.templates.fields.{name}: filled by ticketbridge itself; "
        "summary and description have templates of their own"
    ]
