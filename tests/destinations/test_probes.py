"""The clients' preflight probes, and their lookups after a removed search
(BC-09, BC-13), against the scripted loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import JiraSettings, ServiceNowSettings, WebhookSettings
from ticketbridge.destinations.base import PermanentError, ProbeResult
from ticketbridge.destinations.jira import JiraDestination
from ticketbridge.destinations.servicenow import ServiceNowDestination
from ticketbridge.destinations.webhook import WebhookDestination

MARKER = "tb-0123456789abcdef0123"
V3 = "/rest/api/3"
V2 = "/rest/api/2"
TABLE = "/api/now/table/incident"
CHOICES = "/api/now/table/sys_choice"
REMOVED = {
    "errorMessages": [
        "The requested API has been removed. Please migrate to the "
        "/rest/api/3/search/jql API."
    ],
    "errors": {},
}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


def jira_client(api: FakeApi, version: int = 3, **changes: Any) -> JiraDestination:
    settings = JiraSettings(
        type="jira",
        url=api.url,
        project="OPS",
        email="ops@example.com",
        token="jira-api-token-123",
        api_version=version,  # type: ignore[arg-type]
        timeout=0.5,
        **changes,
    )
    return JiraDestination("jira", settings, read_retry=fast_retry(Sleeps()))


def snow_client(api: FakeApi, **changes: Any) -> ServiceNowDestination:
    settings = ServiceNowSettings(
        type="servicenow",
        url=api.url,
        username="svc-bridge",
        password="snow-password-123",
        timeout=0.5,
        **changes,
    )
    return ServiceNowDestination("snow", settings, read_retry=fast_retry(Sleeps()))


def by_check(results: list[ProbeResult]) -> dict[str, ProbeResult]:
    return {r.check: r for r in results}


def status(name: str, category: str) -> dict[str, Any]:
    return {"id": name, "name": name, "statusCategory": {"key": category}}


def healthy_jira(api: FakeApi, prefix: str = V3, deployment: str = "Cloud") -> None:
    api.on("GET", f"{prefix}/myself", Answer(200, {"displayName": "Bridge Bot"}))
    api.on(
        "GET",
        f"{prefix}/serverInfo",
        Answer(200, {"deploymentType": deployment, "version": "1001.0.0"}),
    )
    api.on("POST", f"{prefix}/search/jql", Answer(200, {"issues": [], "isLast": True}))
    api.on("GET", f"{prefix}/search", Answer(200, {"issues": [], "total": 0}))
    api.on("GET", f"{prefix}/project/OPS", Answer(200, {"key": "OPS", "name": "Ops"}))
    workflow = [status("Open", "new"), status("Done", "done")]
    api.on(
        "GET",
        f"{prefix}/project/OPS/statuses",
        Answer(200, [{"name": "Incident", "statuses": workflow}]),
    )


# --- Jira probe -------------------------------------------------------------------


async def test_jira_probe_passes_every_check_of_a_good_config(api: FakeApi) -> None:
    healthy_jira(api)
    client = jira_client(api)

    results = await client.probe()

    await client.close()
    assert [(r.check, r.ok) for r in results] == [
        ("credentials", True),
        ("api_version", True),
        ("search", True),
        ("project", True),
        ("issue_type", True),
        ("resolve_transition", True),
    ]
    assert by_check(results)["credentials"].detail == "authenticated as Bridge Bot"


async def test_jira_probe_only_reads(api: FakeApi) -> None:
    healthy_jira(api)
    client = jira_client(api)
    await client.probe()
    await client.close()

    writes = [s for s in api.seen if s.method != "GET"]
    assert [(s.method, s.path) for s in writes] == [("POST", f"{V3}/search/jql")]


async def test_jira_401_fails_credentials_and_reports_the_rest_unchecked(
    api: FakeApi,
) -> None:
    healthy_jira(api)
    api.answers[("GET", f"{V3}/myself")] = [
        Answer(401, {"errorMessages": ["Client must be authenticated."]})
    ]
    client = jira_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert not results["credentials"].ok
    assert "HTTP 401" in results["credentials"].detail
    assert "check email and API token" in results["credentials"].detail
    assert "jira-api-token-123" not in results["credentials"].detail
    assert not results["credentials"].transient
    assert not results["project"].ok
    assert results["project"].detail == "not checked: credentials failed"


async def test_jira_probe_marks_a_503_as_transient(api: FakeApi) -> None:
    api.on("GET", f"{V3}/myself", Answer(503, {"errorMessages": ["Unavailable"]}))
    client = jira_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert results["credentials"].transient
    assert not results["project"].transient


async def test_removed_search_fails_the_search_check(api: FakeApi) -> None:
    """BC-13: Jira Cloud answers 410 Gone to the old search."""
    healthy_jira(api, V2, deployment="Server")
    api.answers[("GET", f"{V2}/search")] = [Answer(410, REMOVED)]
    client = jira_client(api, 2)

    results = by_check(await client.probe())

    await client.close()
    search = results["search"]
    assert not search.ok and not search.transient
    assert "HTTP 410" in search.detail
    assert "api_version 3" in search.detail


async def test_v2_against_jira_cloud_fails_the_api_version_check(
    api: FakeApi,
) -> None:
    healthy_jira(api, V2, deployment="Cloud")
    client = jira_client(api, 2)

    results = by_check(await client.probe())

    await client.close()
    assert not results["api_version"].ok
    assert "removed /rest/api/2/search" in results["api_version"].detail


async def test_v3_against_data_center_fails_the_api_version_check(
    api: FakeApi,
) -> None:
    healthy_jira(api)
    api.answers[("GET", f"{V3}/serverInfo")] = [
        Answer(404, {"errorMessages": ["null for uri"]})
    ]
    client = jira_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert not results["api_version"].ok
    assert "needs api_version: 2" in results["api_version"].detail


async def test_unknown_project_fails_project_and_skips_the_workflow(
    api: FakeApi,
) -> None:
    healthy_jira(api)
    missing = {"errorMessages": ["No project could be found with key 'OPS'."]}
    api.answers[("GET", f"{V3}/project/OPS")] = [Answer(404, missing)]
    client = jira_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert not results["project"].ok
    assert "No project could be found" in results["project"].detail
    assert results["issue_type"].detail == "not checked: project OPS failed"


async def test_unknown_issue_type_names_those_the_project_has(api: FakeApi) -> None:
    healthy_jira(api)
    client = jira_client(api, issue_type="Incidnet")

    results = by_check(await client.probe())

    await client.close()
    assert not results["issue_type"].ok
    assert "no issue type 'Incidnet'" in results["issue_type"].detail
    assert "'Incident'" in results["issue_type"].detail
    assert not results["resolve_transition"].ok


async def test_resolve_name_that_is_a_done_status_passes(api: FakeApi) -> None:
    healthy_jira(api)
    client = jira_client(api, resolve_transition="done")

    results = by_check(await client.probe())

    await client.close()
    assert results["resolve_transition"].ok
    assert results["resolve_transition"].detail == "leads to done status 'Done'"


async def test_resolve_name_that_is_an_open_status_fails(api: FakeApi) -> None:
    healthy_jira(api)
    client = jira_client(api, resolve_transition="Open")

    results = by_check(await client.probe())

    await client.close()
    assert not results["resolve_transition"].ok
    assert "not done" in results["resolve_transition"].detail


async def test_workflow_without_a_done_status_fails_the_resolve_check(
    api: FakeApi,
) -> None:
    healthy_jira(api)
    only_open = [{"name": "Incident", "statuses": [status("Open", "new")]}]
    api.answers[("GET", f"{V3}/project/OPS/statuses")] = [Answer(200, only_open)]
    client = jira_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert not results["resolve_transition"].ok
    assert "no status in the done category" in results["resolve_transition"].detail


async def test_other_transition_names_pass_but_say_they_are_unchecked(
    api: FakeApi,
) -> None:
    healthy_jira(api)
    client = jira_client(api, resolve_transition="Resolve Issue")

    results = by_check(await client.probe())

    await client.close()
    assert results["resolve_transition"].ok
    assert "checked at the first resolve" in results["resolve_transition"].detail


# --- BC-09: a failed lookup is never "no ticket" ------------------------------------


async def test_jira_v2_find_raises_on_410_instead_of_finding_nothing(
    api: FakeApi,
) -> None:
    api.on("GET", f"{V2}/search", Answer(410, REMOVED))
    client = jira_client(api, 2)

    with pytest.raises(PermanentError) as caught:
        await client.find(MARKER)

    await client.close()
    assert caught.value.status == 410
    assert "has been removed" in str(caught.value)


async def test_jira_v3_find_raises_on_410_instead_of_finding_nothing(
    api: FakeApi,
) -> None:
    api.on("POST", f"{V3}/search/jql", Answer(410, REMOVED))
    client = jira_client(api)

    with pytest.raises(PermanentError) as caught:
        await client.find(MARKER)

    await client.close()
    assert caught.value.status == 410


async def test_servicenow_find_raises_on_410_instead_of_finding_nothing(
    api: FakeApi,
) -> None:
    gone = {"error": {"message": "Gone", "detail": None}, "status": "failure"}
    api.on("GET", TABLE, Answer(410, gone))
    client = snow_client(api)

    with pytest.raises(PermanentError) as caught:
        await client.find(MARKER)

    await client.close()
    assert caught.value.status == 410


async def test_webhook_find_raises_on_410_instead_of_finding_nothing(
    api: FakeApi,
) -> None:
    api.on("GET", f"/verify/{MARKER}", Answer(410, {"error": "gone"}))
    settings = WebhookSettings(
        type="webhook",
        url=f"{api.url}hook",
        verify_url=f"{api.url}verify",
        timeout=0.5,
    )
    client = WebhookDestination("hook", settings, read_retry=fast_retry(Sleeps()))

    with pytest.raises(PermanentError) as caught:
        await client.find(MARKER)

    await client.close()
    assert caught.value.status == 410


# --- ServiceNow probe ---------------------------------------------------------------


def choices(*values: str) -> Answer:
    return Answer(200, {"result": [{"value": v, "label": v} for v in values]})


def healthy_snow(api: FakeApi) -> None:
    api.on("GET", TABLE, Answer(200, {"result": [{"sys_id": "abc"}]}))
    api.on("GET", CHOICES, choices("1", "2", "6", "7"), choices("Solved (Permanently)"))


async def test_servicenow_probe_passes_a_good_config(api: FakeApi) -> None:
    healthy_snow(api)
    client = snow_client(api)

    results = await client.probe()

    await client.close()
    assert [(r.check, r.ok) for r in results] == [
        ("credentials", True),
        ("table", True),
        ("resolved_state", True),
        ("close_code", True),
    ]
    table_read = api.requests("GET", TABLE)[0]
    assert table_read.query["sysparm_limit"] == "1"
    close_query = api.requests("GET", CHOICES)[1].query["sysparm_query"]
    assert close_query == "name=incident^element=close_code^inactive=false"


async def test_servicenow_401_fails_credentials(api: FakeApi) -> None:
    refused = {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }
    api.on("GET", TABLE, Answer(401, refused))
    client = snow_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert not results["credentials"].ok
    assert "User Not Authenticated" in results["credentials"].detail
    assert results["close_code"].detail == "not checked: credentials failed"


async def test_servicenow_unreadable_table_fails_the_table_check(api: FakeApi) -> None:
    denied = {"error": {"message": "Insufficient rights"}, "status": "failure"}
    api.on("GET", TABLE, Answer(403, denied))
    api.on("GET", CHOICES, choices("6"), choices("Solved (Permanently)"))
    client = snow_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert results["credentials"].ok
    assert not results["table"].ok
    assert "Insufficient rights" in results["table"].detail


async def test_unknown_close_code_fails_and_lists_the_valid_ones(api: FakeApi) -> None:
    api.on("GET", TABLE, Answer(200, {"result": []}))
    api.on("GET", CHOICES, choices("6"), choices("Solution provided", "Duplicate"))
    client = snow_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert not results["close_code"].ok
    assert "'Solved (Permanently)' is not a close_code choice" in (
        results["close_code"].detail
    )
    assert "'Solution provided'" in results["close_code"].detail


async def test_an_open_resolved_state_fails_without_asking(api: FakeApi) -> None:
    api.on("GET", TABLE, Answer(200, {"result": []}))
    api.on("GET", CHOICES, choices("Solved (Permanently)"))
    client = snow_client(api, resolved_state="2")

    results = by_check(await client.probe())

    await client.close()
    assert not results["resolved_state"].ok
    assert "not a closed state" in results["resolved_state"].detail
    assert len(api.requests("GET", CHOICES)) == 1


async def test_unreadable_choice_list_passes_as_not_checked(api: FakeApi) -> None:
    api.on("GET", TABLE, Answer(200, {"result": []}))
    api.on("GET", CHOICES, Answer(403, {"error": {"message": "ACL"}}))
    client = snow_client(api)

    results = by_check(await client.probe())

    await client.close()
    assert results["close_code"].ok
    assert "not checked: sys_choice unreadable (HTTP 403)" in (
        results["close_code"].detail
    )


# --- webhook probe ------------------------------------------------------------------


async def test_webhook_without_probe_url_is_only_configured(api: FakeApi) -> None:
    settings = WebhookSettings(type="webhook", url=f"{api.url}hook")
    client = WebhookDestination("hook", settings)

    results = await client.probe()

    await client.close()
    assert [(r.check, r.ok) for r in results] == [("configured", True)]
    assert api.seen == []


async def test_webhook_probe_url_answering_plain_text_passes(api: FakeApi) -> None:
    api.on("GET", "/health", Answer(200, text="ok", content_type="text/plain"))
    settings = WebhookSettings(
        type="webhook", url=f"{api.url}hook", probe_url=f"{api.url}health"
    )
    client = WebhookDestination("hook", settings)

    results = await client.probe()

    await client.close()
    assert [(r.check, r.ok) for r in results] == [("probe_url", True)]


async def test_webhook_probe_url_failing_fails_without_showing_the_url(
    api: FakeApi,
) -> None:
    api.on("GET", "/health-s3cr3t", Answer(502, text="bad gateway"))
    settings = WebhookSettings(
        type="webhook", url=f"{api.url}hook", probe_url=f"{api.url}health-s3cr3t"
    )
    client = WebhookDestination("hook", settings)

    [result] = await client.probe()

    await client.close()
    assert not result.ok and result.transient
    assert "HTTP 502" in result.detail
    assert "s3cr3t" not in result.detail
