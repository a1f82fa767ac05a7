"""Clients send the rendered, cleaned and capped text of their templates."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import (
    JiraSettings,
    ServiceNowSettings,
    TemplateSettings,
    WebhookSettings,
)
from ticketbridge.destinations.base import PermanentError, TicketRef
from ticketbridge.destinations.jira import JiraDestination
from ticketbridge.destinations.servicenow import ServiceNowDestination
from ticketbridge.destinations.webhook import WebhookDestination
from ticketbridge.events import Event, EventKind

MARKER = "tb-0123456789abcdef0123"
ISSUE = TicketRef("10001", "OPS-7")
TABLE = "/api/now/table/incident"
BC18_OUTPUT = "Latency – p99 2.3 s ≥ 2 s (Zürich DC) 🚨 中文 \u0000 bell\u0007 end"


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


def make_event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "source": "nagios",
        "source_event_id": "42",
        "kind": EventKind.PROBLEM,
        "severity": "CRITICAL",
        "host": "web01",
        "check": "disk",
        "summary": "Disk full",
        "details": "/var at 99%",
        "occurred_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "raw": {"env": "prod"},
    }
    fields.update(changes)
    return Event(**fields)


def jira(api: FakeApi, **settings: Any) -> JiraDestination:
    config = JiraSettings(
        type="jira",
        url=api.url,
        project="OPS",
        email="ops@example.com",
        token="jira-token-123",
        api_version=2,
        timeout=0.5,
        **settings,
    )
    return JiraDestination("jira_new", config, read_retry=fast_retry(Sleeps()))


def servicenow(api: FakeApi, **settings: Any) -> ServiceNowDestination:
    config = ServiceNowSettings(
        type="servicenow",
        url=api.url,
        username="bridge",
        password="sn-password-123",
        timeout=0.5,
        **settings,
    )
    return ServiceNowDestination("sn_old", config, read_retry=fast_retry(Sleeps()))


def webhook(api: FakeApi, **settings: Any) -> WebhookDestination:
    config = WebhookSettings(
        type="webhook", url=f"{api.url}hook", timeout=0.5, **settings
    )
    return WebhookDestination("hook", config, read_retry=fast_retry(Sleeps()))


def jira_created(api: FakeApi) -> None:
    api.on("POST", "/rest/api/2/issue", Answer(201, {"id": "10001", "key": "OPS-7"}))


def jira_fields(api: FakeApi) -> dict[str, Any]:
    [request] = api.requests("POST", "/rest/api/2/issue")
    fields: dict[str, Any] = request.json["fields"]
    return fields


def sn_created(api: FakeApi) -> None:
    record = {"result": {"sys_id": "abc", "number": "INC0010001"}}
    api.on("POST", TABLE, Answer(201, record))


def sn_record(api: FakeApi) -> dict[str, Any]:
    [request] = api.requests("POST", TABLE)
    record: dict[str, Any] = request.json
    return record


# --- Jira -------------------------------------------------------------------


async def test_jira_sends_the_custom_summary_description_and_fields(
    api: FakeApi,
) -> None:
    jira_created(api)
    templates = TemplateSettings(
        summary="{{ extra.env | upper }} {{ host }} is {{ state }}",
        description="Output: {{ output }}\nKey: {{ incident_key }}",
        fields={"environment": "{{ extra.env }}"},
    )
    client = jira(api, templates=templates)
    await client.create(make_event(incident_key="nagios|web01|disk"), MARKER)
    await client.close()

    fields = jira_fields(api)
    assert fields["summary"] == "PROD web01 is CRITICAL"
    assert fields["description"] == "Output: Disk full\nKey: nagios|web01|disk"
    assert fields["environment"] == "prod"


async def test_jira_priority_follows_the_severity_map(api: FakeApi) -> None:
    jira_created(api)
    client = jira(api, priority_map={"CRITICAL": "P1", "warning": "P3"})
    await client.create(make_event(severity="critical"), MARKER)
    await client.close()
    assert jira_fields(api)["priority"] == {"name": "P1"}


async def test_jira_default_priority_map_makes_critical_highest(
    api: FakeApi,
) -> None:
    jira_created(api)
    client = jira(api)
    await client.create(make_event(), MARKER)
    await client.close()
    assert jira_fields(api)["priority"] == {"name": "Highest"}


async def test_jira_sends_no_priority_for_an_unmapped_severity(api: FakeApi) -> None:
    jira_created(api)
    client = jira(api, priority_map={})
    await client.create(make_event(), MARKER)
    await client.close()
    assert "priority" not in jira_fields(api)


async def test_jira_description_of_100000_characters_is_cut_to_32767(
    api: FakeApi,
) -> None:
    """BC-17: a huge plugin output becomes a description Jira accepts."""
    jira_created(api)
    lines = [f"line {n:04d}: ERROR something failed in module X" for n in range(2000)]
    output = "\n".join(lines)[:100_000]
    client = jira(api, templates=TemplateSettings(description="{{ details }}"))
    await client.create(make_event(details=output), MARKER)
    await client.close()

    description = jira_fields(api)["description"]
    assert len(description.encode("utf-16-le")) // 2 <= 32767
    assert len(description) > 32000
    assert description.endswith("…")
    assert output.startswith(description[:-1])


async def test_jira_keeps_non_latin1_text_and_drops_control_characters(
    api: FakeApi,
) -> None:
    """BC-18: en dash, ≥, ü, CJK and emoji arrive unchanged; NUL and BEL do not."""
    jira_created(api)
    client = jira(api, templates=TemplateSettings(description="{{ extra.output }}"))
    await client.create(make_event(raw={"output": BC18_OUTPUT}), MARKER)
    await client.close()

    expected = "Latency – p99 2.3 s ≥ 2 s (Zürich DC) 🚨 中文  bell end"
    assert jira_fields(api)["description"] == expected


async def test_jira_template_error_fails_permanently_before_any_request(
    api: FakeApi,
) -> None:
    """BC-29: a runtime template error sends nothing and names the template."""
    jira_created(api)
    client = jira(api, templates=TemplateSettings(summary="{{ extra.team }}"))

    with pytest.raises(PermanentError) as caught:
        await client.create(make_event(), MARKER)
    await client.close()

    assert caught.value.reason == "template"
    assert "destinations.jira_new.templates.summary: line 1:" in str(caught.value)
    assert api.seen == []


async def test_jira_comment_uses_the_rendered_summary_and_description(
    api: FakeApi,
) -> None:
    api.on("POST", "/rest/api/2/issue/10001/comment", Answer(201, {"id": "1"}))
    templates = TemplateSettings(summary="{{ kind }} on {{ host }}", description="D")
    client = jira(api, templates=templates)
    await client.comment(ISSUE, make_event(kind=EventKind.UPDATE))
    await client.close()

    [request] = api.requests("POST", "/rest/api/2/issue/10001/comment")
    assert request.json["body"] == "update on web01\n\nD"


async def test_jira_find_quotes_the_project_in_jql(api: FakeApi) -> None:
    api.on("GET", "/rest/api/2/search", Answer(200, {"issues": []}))
    client = jira(api)
    client.settings = client.settings.model_copy(update={"project": 'O"PS\\'})
    await client.find(MARKER)
    await client.close()

    [request] = api.requests("GET", "/rest/api/2/search")
    jql = request.query["jql"]
    assert jql == f'project = "O\\"PS\\\\" AND labels = "{MARKER}"'


# --- ServiceNow -------------------------------------------------------------


async def test_servicenow_short_description_is_rendered_and_cut_to_160(
    api: FakeApi,
) -> None:
    sn_created(api)
    templates = TemplateSettings(summary="{{ host }} {{ output * 20 }}")
    client = servicenow(api, templates=templates)
    await client.create(make_event(), MARKER)
    await client.close()

    short = sn_record(api)["short_description"]
    assert len(short) == 160
    assert short.startswith("web01 Disk full")
    assert short.endswith("…")


async def test_servicenow_impact_and_urgency_follow_the_severity_map(
    api: FakeApi,
) -> None:
    sn_created(api)
    client = servicenow(api, priority_map={"warning": {"impact": 2, "urgency": 1}})
    await client.create(make_event(severity="WARNING"), MARKER)
    await client.close()

    record = sn_record(api)
    assert (record["impact"], record["urgency"]) == ("2", "1")


async def test_servicenow_extra_fields_are_sent(api: FakeApi) -> None:
    sn_created(api)
    templates = TemplateSettings(fields={"category": "{{ extra.env }}-monitoring"})
    client = servicenow(api, templates=templates)
    await client.create(make_event(), MARKER)
    await client.close()
    assert sn_record(api)["category"] == "prod-monitoring"


async def test_servicenow_resolve_with_a_broken_template_sends_nothing(
    api: FakeApi,
) -> None:
    """BC-29: no half-rendered close notes, no state change without notes."""
    templates = TemplateSettings(description="{{ extra.missing }}")
    client = servicenow(api, templates=templates)
    with pytest.raises(PermanentError) as caught:
        await client.resolve(TicketRef("abc", "INC1"), make_event())
    await client.close()

    assert caught.value.reason == "template"
    assert api.seen == []


# --- Webhook ----------------------------------------------------------------


async def test_webhook_text_with_quotes_newlines_and_backslashes_stays_json(
    api: FakeApi,
) -> None:
    """BC-19: quotes, tabs and backslashes reach the receiver intact."""
    api.on("POST", "/hook", Answer(200, {"id": "w1"}))
    output = 'Check "api" failed:\n\tHTTP 500 at C:\\srv\\api\n'
    client = webhook(api, templates=TemplateSettings(description="{{ details }}"))
    await client.create(make_event(details=output), MARKER)
    await client.close()

    [request] = api.requests("POST", "/hook")
    body = request.json
    assert body["text"]["description"] == output
    assert body["details"] == output
