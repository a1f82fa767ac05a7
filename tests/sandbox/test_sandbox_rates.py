"""Faults by rate: a seeded share of requests misbehave, search lags creates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.sandbox.conftest import BASIC, Client, issue_fields
from ticketbridge.sandbox import SandboxSettings, serve
from ticketbridge.sandbox.app import read_profile

ISSUE = "/rest/api/3/issue"
SEARCH = "/rest/api/3/search/jql"
INCIDENT = "/api/now/table/incident"


async def set_rates(client: Client, profile: dict[str, Any]) -> dict[str, Any]:
    status, body = await client.call("PUT", "/_sandbox/faults/rates", json=profile)
    assert status == 200, body
    return dict(body)


async def create_statuses(client: Client, count: int) -> list[int]:
    statuses = []
    for n in range(count):
        status, _ = await client.post(ISSUE, json=issue_fields(labels=[f"m{n}"]))
        statuses.append(status)
    return statuses


async def test_rate_one_fails_every_request_of_the_system(client: Client) -> None:
    await set_rates(client, {"rates": {"jira": {"rate": 1, "mix": {"503": 1}}}})

    jira = await create_statuses(client, 3)
    snow, _ = await client.post(INCIDENT, json={"short_description": "x"})

    assert (jira, snow) == ([503, 503, 503], 201)


async def test_same_seed_gives_the_same_sequence(client: Client) -> None:
    profile = {"seed": 11, "rates": {"*": {"rate": 0.5, "mix": {"500": 1}}}}

    await set_rates(client, profile)
    first = await create_statuses(client, 20)
    await set_rates(client, profile)
    second = await create_statuses(client, 20)

    assert first == second
    assert 500 in first and 201 in first


async def test_operation_rate_overrides_the_system_rate(client: Client) -> None:
    await set_rates(
        client,
        {
            "rates": {
                "jira": {"rate": 1, "mix": {"500": 1}},
                "jira.get": {"rate": 0},
            }
        },
    )

    created, _ = await client.post(ISSUE, json=issue_fields())
    read, _ = await client.get(f"{ISSUE}/OPS-1")

    assert (created, read) == (500, 404)


async def test_429_carries_a_retry_after_from_the_weights(client: Client) -> None:
    await set_rates(
        client,
        {
            "rates": {"*": {"rate": 1, "mix": {"429": 1}}},
            "retry_after": {"0": 1, "120": 0},
        },
    )

    async with client.session.post(ISSUE, json=issue_fields()) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "0"


async def test_timeout_after_create_makes_the_ticket_and_loses_the_answer(
    client: Client,
) -> None:
    await set_rates(
        client,
        {
            "rates": {"jira.create": {"rate": 1, "mix": {"timeout_after_create": 1}}},
            "hang_seconds": 2,
        },
    )

    with pytest.raises(asyncio.TimeoutError):
        await client.post(
            ISSUE, json=issue_fields(), timeout=aiohttp.ClientTimeout(total=0.3)
        )
    _, listing = await client.get("/_sandbox/tickets", params={"system": "jira"})

    assert len(listing["tickets"]) == 1


async def test_reset_kinds_act_or_not(client: Client) -> None:
    await set_rates(client, {"rates": {"jira": {"rate": 1, "mix": {"reset_after": 1}}}})
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(ISSUE, json=issue_fields())
    await set_rates(
        client, {"rates": {"jira": {"rate": 1, "mix": {"reset_before": 1}}}}
    )
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(ISSUE, json=issue_fields())
    await set_rates(client, {})

    _, listing = await client.get("/_sandbox/tickets", params={"system": "jira"})

    assert [t["key"] for t in listing["tickets"]] == ["OPS-1"]


async def test_html200_answers_a_page_without_acting(client: Client) -> None:
    await set_rates(
        client, {"rates": {"servicenow": {"rate": 1, "mix": {"html200": 1}}}}
    )

    async with client.session.post(INCIDENT, json={"x": 1}) as response:
        text = await response.text()
    _, listing = await client.get("/_sandbox/tickets")

    assert (response.status, response.content_type) == (200, "text/html")
    assert "<html>" in text and listing["tickets"] == []


async def test_search_lags_behind_create_but_get_by_id_does_not(
    client: Client,
) -> None:
    await set_rates(client, {"search_lag": 0.5})
    await client.post(ISSUE, json=issue_fields(labels=["m1"]))
    await client.post(INCIDENT, json={"short_description": "x", "correlation_id": "m1"})
    jql = {"jql": 'labels = "m1"'}
    query = {"sysparm_query": "correlation_id=m1"}

    _, early_jira = await client.post(SEARCH, json=jql)
    _, early_snow = await client.get(INCIDENT, params=query)
    by_id, _ = await client.get(f"{ISSUE}/OPS-1")
    await asyncio.sleep(0.6)
    _, late_jira = await client.post(SEARCH, json=jql)
    _, late_snow = await client.get(INCIDENT, params=query)

    assert (early_jira["issues"], early_snow["result"], by_id) == ([], [], 200)
    assert len(late_jira["issues"]) == len(late_snow["result"]) == 1


async def test_unauthorized_after_n_requests_for_a_while(client: Client) -> None:
    await set_rates(client, {"unauthorized": {"after": 1, "count": 2}})

    statuses = await create_statuses(client, 4)

    assert statuses == [201, 401, 401, 201]


async def test_counts_say_what_was_injected(client: Client) -> None:
    await set_rates(client, {"rates": {"jira": {"rate": 1, "mix": {"502": 1}}}})
    await create_statuses(client, 2)

    _, shown = await client.get("/_sandbox/faults/rates")

    assert shown["injected"] == {"jira.create.502": 2}
    assert shown["requests"] == 2


async def test_requests_log_names_operation_and_marker(client: Client) -> None:
    await client.post(ISSUE, json=issue_fields(labels=["tb-1"]))
    await client.post(INCIDENT, json={"short_description": "x", "correlation_id": "c2"})
    await client.get(f"{ISSUE}/OPS-1")

    _, creates = await client.get("/_sandbox/requests", params={"operation": "create"})

    assert [(e["system"], e["marker"]) for e in creates["requests"]] == [
        ("jira", "tb-1"),
        ("servicenow", "c2"),
    ]


@pytest.mark.parametrize(
    ("profile", "problem"),
    [
        ({"rates": {"zendesk": {"rate": 1}}}, "system must be one of"),
        ({"rates": {"*": {"rate": 2}}}, "between 0 and 1"),
        ({"rates": {"*": {"rate": 1, "mix": {"boom": 1}}}}, "unknown fault"),
        ({"retry_after": {"soon": 1}}, "whole seconds"),
        ({"search_lag": -1}, "non-negative"),
        ({"rate": 0.3}, "unknown rate profile keys"),
    ],
)
async def test_invalid_profile_is_refused(
    client: Client, profile: dict[str, Any], problem: str
) -> None:
    status, body = await client.call("PUT", "/_sandbox/faults/rates", json=profile)

    assert status == 400
    assert problem in body["error"]


async def test_faults_file_is_in_force_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("rates:\n  jira: {rate: 1, mix: {'500': 1}}\n", encoding="utf-8")
    settings = SandboxSettings(faults=read_profile(path))

    sandbox = await serve("127.0.0.1", 0, settings)
    try:
        async with aiohttp.ClientSession(sandbox.url, headers=BASIC) as session:
            status, _ = await Client(session).post(ISSUE, json=issue_fields())
    finally:
        await sandbox.close()

    assert status == 500


def test_bad_faults_file_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text("rates: {jira: {rate: 7}}\n", encoding="utf-8")

    with pytest.raises(ValueError, match="rate must be between 0 and 1"):
        read_profile(path)
