"""The read-only endpoints preflight probes ask, and outages on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.sandbox.conftest import BASIC, Client
from ticketbridge.sandbox import RunningSandbox, SandboxSettings, serve

V3 = "/rest/api/3"
V2 = "/rest/api/2"
CHOICES = "/api/now/table/sys_choice"


async def test_myself_answers_who_is_calling(client: Client) -> None:
    status, body = await client.get(f"{V3}/myself")
    assert status == 200
    assert body["displayName"] == "Sandbox User" and body["active"] is True


async def test_myself_without_credentials_is_jiras_401(sandbox: RunningSandbox) -> None:
    async with (
        aiohttp.ClientSession(sandbox.url) as anonymous,
        anonymous.get(f"{V3}/myself") as response,
    ):
        body = await response.json()
    assert response.status == 401
    assert body == {
        "errorMessages": ["Client must be authenticated to access this resource."],
        "errors": {},
    }


async def test_server_info_tells_cloud_on_v3_and_data_center_on_v2(
    client: Client,
) -> None:
    _, cloud = await client.get(f"{V3}/serverInfo")
    _, data_center = await client.get(f"{V2}/serverInfo")
    assert cloud["deploymentType"] == "Cloud"
    assert data_center["deploymentType"] == "DataCenter"


async def test_project_lists_its_issue_types(client: Client) -> None:
    status, body = await client.get(f"{V3}/project/OPS")
    assert status == 200
    assert body["key"] == "OPS"
    assert [t["name"] for t in body["issueTypes"]] == ["Incident", "Task", "Bug"]


async def test_unknown_project_is_404_with_jiras_message(client: Client) -> None:
    status, body = await client.get(f"{V3}/project/NOPE")
    assert status == 404
    assert body == {
        "errorMessages": ["No project could be found with key 'NOPE'."],
        "errors": {},
    }


async def test_project_statuses_give_each_issue_type_its_workflow(
    client: Client,
) -> None:
    status, body = await client.get(f"{V3}/project/OPS/statuses")
    assert status == 200
    incident = next(t for t in body if t["name"] == "Incident")
    done = [
        s["name"] for s in incident["statuses"] if s["statusCategory"]["key"] == "done"
    ]
    assert done == ["Done"]


async def test_servicenow_sys_choice_lists_close_codes_of_the_incident_table(
    client: Client,
) -> None:
    query = "name=incident^element=close_code^inactive=false"
    status, body = await client.get(
        CHOICES, params={"sysparm_query": query, "sysparm_fields": "value,label"}
    )
    assert status == 200
    values = [row["value"] for row in body["result"]]
    assert "Solved (Permanently)" in values
    assert set(body["result"][0]) == {"value", "label"}


async def test_servicenow_sys_choice_lists_incident_states(client: Client) -> None:
    _, body = await client.get(
        CHOICES, params={"sysparm_query": "name=incident^element=state"}
    )
    assert {row["value"] for row in body["result"]} == {"1", "2", "3", "6", "7", "8"}


async def test_webhook_receiver_answers_a_probe(client: Client) -> None:
    await client.post("/webhook/alerts", json={"x": 1})
    status, body = await client.get("/webhook/alerts")
    assert (status, body) == (200, {"receiver": "alerts", "records": 1})


@pytest.fixture
async def cloud() -> AsyncIterator[Client]:
    running = await serve("127.0.0.1", 0, SandboxSettings(jira_deployment="Cloud"))
    async with aiohttp.ClientSession(running.url, headers=BASIC) as session:
        yield Client(session)
    await running.close()


async def test_cloud_deployment_answers_the_old_search_with_410(cloud: Client) -> None:
    status, body = await cloud.get(f"{V2}/search", params={"jql": "project = OPS"})
    assert status == 410
    assert body["errorMessages"][0].startswith("The requested API has been removed.")
    _, info = await cloud.get(f"{V2}/serverInfo")
    assert info["deploymentType"] == "Cloud"


async def test_cloud_deployment_keeps_the_new_search(cloud: Client) -> None:
    status, _ = await cloud.post(f"{V3}/search/jql", json={"jql": "project = OPS"})
    assert status == 200


async def test_an_outage_fault_fails_every_match_until_its_time_is_up(
    client: Client,
) -> None:
    status, rule = await client.post(
        "/_sandbox/faults",
        json={
            "match": {"path_regex": "^/rest/api/"},
            "responses": [{"status": 503}],
            "for_seconds": 0.5,
        },
    )
    assert status == 201 and rule["seconds_left"] > 0

    during = [(await client.get(f"{V3}/myself"))[0] for _ in range(4)]
    await asyncio.sleep(0.6)
    after, _ = await client.get(f"{V3}/myself")

    assert during == [503, 503, 503, 503]
    assert after == 200


async def test_an_outage_fault_needs_a_positive_duration(client: Client) -> None:
    status, body = await client.post(
        "/_sandbox/faults",
        json={"responses": [{"status": 503}], "for_seconds": 0},
    )
    assert status == 400
    assert body == {"error": "for_seconds must be a positive number"}
