"""`probe_reads` and the Zendesk, Redmine and RT probes built on it, against
the scripted loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from test_client_templates_zendesk_redmine_rt import redmine, rt, zendesk
from test_http_errors import Answer, FakeApi

from ticketbridge.config.model import HttpSettings
from ticketbridge.destinations.base import ProbeResult
from ticketbridge.destinations.http import HttpClient
from ticketbridge.destinations.probe import Read, probe_reads

STATUSES = {
    "issue_statuses": [
        {"id": 1, "name": "New", "is_closed": False},
        {"id": 3, "name": "Resolved", "is_closed": False},
        {"id": 5, "name": "Closed", "is_closed": True},
    ]
}
QUEUE = {"id": 1, "Name": "General", "Disabled": "0", "Lifecycle": "default"}


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


def outcomes(results: list[ProbeResult]) -> list[tuple[str, bool, str]]:
    return [(r.check, r.ok, r.detail) for r in results]


# --- probe_reads ----------------------------------------------------------------


async def run_reads(api: FakeApi, *reads: Read) -> list[ProbeResult]:
    http = HttpClient("d", HttpSettings(url=api.url, timeout=0.5))
    try:
        return await probe_reads(http, reads)
    finally:
        await http.close()


def read(api: FakeApi, check: str, **more: Any) -> Read:
    return Read(check, f"{api.url}{check}", "ok", **more)


async def test_reads_pass_when_each_answer_carries_its_key(api: FakeApi) -> None:
    api.on("GET", "/a", Answer(200, {"ok": 1}))
    api.on("GET", "/b", Answer(200, {"ok": 2}))

    results = await run_reads(api, read(api, "a"), read(api, "b"))

    assert outcomes(results) == [
        ("a", True, "GET /a answers"),
        ("b", True, "GET /b answers"),
    ]


async def test_a_failed_first_read_leaves_the_others_not_checked(api: FakeApi) -> None:
    api.on("GET", "/a", Answer(401, text=""))
    api.on("GET", "/b", Answer(200, {"ok": 2}))

    results = await run_reads(
        api, read(api, "a", hints={401: "check the key"}), read(api, "b")
    )

    assert outcomes(results) == [
        ("a", False, "HTTP 401: empty body (check the key)"),
        ("b", False, "not checked: a failed"),
    ]
    assert api.requests("GET", "/b") == []


async def test_a_later_failed_read_does_not_stop_the_rest(api: FakeApi) -> None:
    api.on("GET", "/a", Answer(200, {"ok": 1}))
    api.on("GET", "/b", Answer(404, {"message": "Not Found"}))
    api.on("GET", "/c", Answer(200, {"ok": 3}))

    results = await run_reads(api, read(api, "a"), read(api, "b"), read(api, "c"))

    assert [(r.check, r.ok) for r in results] == [
        ("a", True),
        ("b", False),
        ("c", True),
    ]
    assert results[1].detail == "HTTP 404: Not Found"


async def test_an_answer_without_the_key_fails_and_names_the_url(api: FakeApi) -> None:
    """Another system's JSON at the address is no proof of this API."""
    api.on("GET", "/a", Answer(200, {"something": "else"}))

    [result] = await run_reads(api, read(api, "a"))

    assert not result.ok and not result.transient
    assert result.detail == (
        "GET /a answered without 'ok': is url the address of this system's API?"
    )


async def test_a_judge_decides_beyond_answering(api: FakeApi) -> None:
    api.on("GET", "/a", Answer(200, {"ok": "no"}))

    [result] = await run_reads(
        api,
        read(api, "a", judge=lambda body: (body["ok"] == "yes", "said " + body["ok"])),
    )

    assert (result.ok, result.detail) == (False, "said no")


async def test_a_503_is_a_transient_failure(api: FakeApi) -> None:
    api.on("GET", "/a", Answer(503, text="down"))

    [result, skipped] = await run_reads(api, read(api, "a"), read(api, "b"))

    assert result.transient and not skipped.transient


# --- Zendesk ------------------------------------------------------------------


def healthy_zendesk(api: FakeApi) -> None:
    count = {"count": {"value": 12, "refreshed_at": "2024-05-01T12:00:00Z"}}
    api.on("GET", "/api/v2/tickets/count.json", Answer(200, count))
    fields = {"ticket_fields": [{"id": 1, "type": "subject"}], "count": 1}
    api.on("GET", "/api/v2/ticket_fields.json", Answer(200, fields))


async def test_zendesk_probe_passes_with_an_agents_credentials(api: FakeApi) -> None:
    healthy_zendesk(api)
    client = zendesk(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results) == [
        ("credentials", True, "credentials accepted: tickets can be counted"),
        ("ticket_fields", True, "1 ticket fields readable"),
    ]
    assert all(s.method == "GET" for s in api.seen)


async def test_zendesk_probe_names_refused_credentials(api: FakeApi) -> None:
    healthy_zendesk(api)
    api.answers[("GET", "/api/v2/tickets/count.json")] = [
        Answer(401, {"error": "Couldn't authenticate you"})
    ]
    client = zendesk(api)
    results = await client.probe()
    await client.close()

    assert results[0].detail == (
        "HTTP 401: Couldn't authenticate you (Zendesk refused email and token)"
    )
    assert "zd-token-123" not in results[0].detail
    assert results[1].detail == "not checked: credentials failed"


async def test_zendesk_probe_says_an_end_user_is_no_agent(api: FakeApi) -> None:
    healthy_zendesk(api)
    api.answers[("GET", "/api/v2/tickets/count.json")] = [
        Answer(403, {"error": "Forbidden", "description": "You do not have access"})
    ]
    client = zendesk(api)
    [credentials, _] = await client.probe()
    await client.close()

    assert credentials.detail.endswith(
        "(the user must be an agent who can see tickets)"
    )


# --- Redmine ------------------------------------------------------------------


def healthy_redmine(api: FakeApi) -> None:
    user = {"user": {"id": 1, "login": "bridge"}}
    api.on("GET", "/users/current.json", Answer(200, user))
    project = {"project": {"id": 1, "identifier": "ops", "name": "Operations"}}
    api.on("GET", "/projects/ops.json", Answer(200, project))
    api.on("GET", "/issue_statuses.json", Answer(200, STATUSES))


async def test_redmine_probe_passes_a_good_config(api: FakeApi) -> None:
    healthy_redmine(api)
    client = redmine(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results) == [
        ("credentials", True, "authenticated as bridge"),
        ("project", True, "project ops (Operations) exists"),
        ("statuses", True, "resolved_status and reopened_status exist"),
    ]
    assert {s.headers["X-Redmine-API-Key"] for s in api.seen} == {"rm-key-123"}


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "Redmine refused the api_key"),
        (403, "enable the REST API: Administration > Settings > API"),
    ],
)
async def test_redmine_credentials_failure_says_what_to_change(
    api: FakeApi, status: int, hint: str
) -> None:
    """Redmine's 401 and 403 have empty bodies: the hint is all there is."""
    healthy_redmine(api)
    api.answers[("GET", "/users/current.json")] = [Answer(status, text="")]
    client = redmine(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results)[0] == (
        "credentials",
        False,
        f"HTTP {status}: empty body ({hint})",
    )
    assert [r.ok for r in results] == [False, False, False]


async def test_redmine_unknown_project_is_named(api: FakeApi) -> None:
    healthy_redmine(api)
    api.answers[("GET", "/projects/ops.json")] = [Answer(404, text="")]
    client = redmine(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results)[1] == (
        "project",
        False,
        "HTTP 404: empty body (no project 'ops': give its identifier or id)",
    )
    assert results[2].ok


async def test_redmine_status_names_missing_from_redmine_fail(api: FakeApi) -> None:
    healthy_redmine(api)
    client = redmine(api, resolved_status="Fixed")
    results = await client.probe()
    await client.close()

    assert outcomes(results)[2] == (
        "statuses",
        False,
        "no issue status for resolved_status 'Fixed' "
        "(known: 'New', 'Resolved', 'Closed')",
    )


# --- Request Tracker ----------------------------------------------------------


def healthy_rt(api: FakeApi) -> None:
    api.on("GET", "/REST/2.0/rt", Answer(200, {"Version": "5.0.3"}))
    api.on("GET", "/REST/2.0/queue/General", Answer(200, QUEUE))


async def test_rt_probe_passes_a_good_config(api: FakeApi) -> None:
    healthy_rt(api)
    client = rt(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results) == [
        ("credentials", True, "RT 5.0.3 accepts the token"),
        ("queue", True, "queue General exists"),
    ]
    assert {s.headers["Authorization"] for s in api.seen} == {"token rt-token-123"}


async def test_rt_refused_token_leaves_the_queue_not_checked(api: FakeApi) -> None:
    healthy_rt(api)
    api.answers[("GET", "/REST/2.0/rt")] = [Answer(401, {"message": "Unauthorized"})]
    client = rt(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results) == [
        ("credentials", False, "HTTP 401: Unauthorized (RT refused the token)"),
        ("queue", False, "not checked: credentials failed"),
    ]


async def test_rt_unknown_queue_is_named(api: FakeApi) -> None:
    healthy_rt(api)
    api.on("GET", "/REST/2.0/queue/Ops Alerts", Answer(404, {"message": "Not Found"}))
    client = rt(api, queue="Ops Alerts")
    results = await client.probe()
    await client.close()

    assert outcomes(results)[1] == (
        "queue",
        False,
        "HTTP 404: Not Found (no queue named 'Ops Alerts')",
    )


async def test_rt_disabled_queue_fails(api: FakeApi) -> None:
    """RT loads a disabled queue by name but refuses to create tickets in it."""
    healthy_rt(api)
    api.answers[("GET", "/REST/2.0/queue/General")] = [
        Answer(200, {**QUEUE, "Disabled": "1"})
    ]
    client = rt(api)
    results = await client.probe()
    await client.close()

    assert outcomes(results)[1] == ("queue", False, "queue General is disabled")
