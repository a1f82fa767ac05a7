"""Scripted faults: errors, rate limits, delays and hang-ups on demand."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from tests.sandbox.conftest import Client, issue_fields

ISSUE = "/rest/api/3/issue"
INCIDENT = "/api/now/table/incident"


async def script(client: Client, path_regex: str, *responses: dict[str, Any]) -> None:
    status, body = await client.post(
        "/_sandbox/faults",
        json={
            "match": {"method": "POST", "path_regex": path_regex},
            "responses": list(responses),
        },
    )
    assert status == 201, body


async def jira_tickets(client: Client) -> list[dict[str, Any]]:
    _, listing = await client.get("/_sandbox/tickets", params={"system": "jira"})
    return list(listing["tickets"])


async def test_scripted_500_then_normal_behaviour(client: Client) -> None:
    await script(client, "/issue$", {"status": 500})

    first = await client.post(ISSUE, json=issue_fields())
    second = await client.post(ISSUE, json=issue_fields())

    assert first == (500, {"errorMessages": ["Internal Server Error"], "errors": {}})
    assert second[0] == 201
    assert len(await jira_tickets(client)) == 1


async def test_scripted_429_carries_retry_after(client: Client) -> None:
    await script(client, "/issue$", {"status": 429, "headers": {"Retry-After": "1"}})

    async with client.session.post(ISSUE, json=issue_fields()) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"


async def test_servicenow_429_has_the_rate_limit_body(client: Client) -> None:
    await script(client, "/incident$", {"status": 429})

    status, body = await client.post(INCIDENT, json={"short_description": "x"})

    assert status == 429
    assert body["error"]["message"] == "Rate limit exceeded"
    assert body["status"] == "failure"


async def test_reset_before_hangs_up_without_acting(client: Client) -> None:
    await script(client, "/issue$", {"reset": "before"})

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(ISSUE, json=issue_fields())

    assert await jira_tickets(client) == []


async def test_reset_after_hangs_up_once_the_ticket_exists(client: Client) -> None:
    await script(client, "/issue$", {"reset": "after"})

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(ISSUE, json=issue_fields())

    assert [t["key"] for t in await jira_tickets(client)] == ["OPS-1"]


async def test_delay_outlasts_the_client_but_still_acts(client: Client) -> None:
    await script(client, "/issue$", {"delay": 0.3})

    with pytest.raises(asyncio.TimeoutError):
        await client.post(
            ISSUE, json=issue_fields(), timeout=aiohttp.ClientTimeout(total=0.05)
        )
    for _ in range(100):
        if await jira_tickets(client):
            break
        await asyncio.sleep(0.02)

    assert len(await jira_tickets(client)) == 1


async def test_html_fault_answers_200_with_a_page(client: Client) -> None:
    await script(client, "/issue$", {"html": True})

    async with client.session.post(ISSUE, json=issue_fields()) as response:
        text = await response.text()

    assert response.status == 200
    assert response.content_type == "text/html"
    assert "<html>" in text
    assert await jira_tickets(client) == []


async def test_fault_matches_only_its_method(client: Client) -> None:
    await script(client, "/issue", {"status": 503})

    status, _ = await client.get(f"{ISSUE}/OPS-1")

    assert status == 404


async def test_responses_are_consumed_in_order(client: Client) -> None:
    await script(client, "/issue$", {"status": 502}, {"status": 503})

    statuses = [(await client.post(ISSUE, json=issue_fields()))[0] for _ in range(3)]
    _, faults = await client.get("/_sandbox/faults")

    assert statuses == [502, 503, 201]
    assert faults["faults"][0]["remaining"] == []


async def test_delete_clears_the_script(client: Client) -> None:
    await script(client, "/issue$", {"status": 500})

    status, _ = await client.call("DELETE", "/_sandbox/faults")
    created, _ = await client.post(ISSUE, json=issue_fields())

    assert (status, created) == (204, 201)


async def test_invalid_fault_is_refused(client: Client) -> None:
    status, body = await client.post(
        "/_sandbox/faults",
        json={"match": {"path_regex": "("}, "responses": [{"status": 500}]},
    )

    assert status == 400
    assert "path_regex" in body["error"]


async def test_requests_log_names_the_fault(client: Client) -> None:
    await script(client, "/issue$", {"status": 500}, {"reset": "before"})

    await client.post(ISSUE, json=issue_fields())
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(ISSUE, json=issue_fields())
    _, log = await client.get("/_sandbox/requests")

    assert [(e["status"], e["fault"]) for e in log["requests"]] == [
        (500, "status-500"),
        (None, "reset-before"),
    ]
