"""The sandbox's own endpoints, and how it is started."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from tests.sandbox.conftest import Client, issue_fields
from ticketbridge.sandbox import main_sandbox, run, serve

ISSUE = "/rest/api/2/issue"
INCIDENT = "/api/now/table/incident"


async def fill(client: Client) -> None:
    """One ticket in each system."""
    await client.post(ISSUE, json=issue_fields(summary="<disk> full"))
    await client.post(
        INCIDENT, json={"short_description": "web01 down", "correlation_id": "zbx-9"}
    )
    await client.post(
        "/webhook/partner", json={"summary": "hook"}, headers={"Idempotency-Key": "k1"}
    )


async def test_tickets_lists_every_system_in_one_shape(client: Client) -> None:
    await fill(client)

    status, body = await client.get("/_sandbox/tickets")

    assert status == 200
    rows = {row["system"]: row for row in body["tickets"]}
    assert set(rows) == {"jira", "servicenow", "webhook"}
    assert rows["jira"] == {
        "system": "jira",
        "id": "10000",
        "key": "OPS-1",
        "summary": "<disk> full",
        "status": "Open",
        "open": True,
        "marker": "corr-nagios-1",
        "labels": ["corr-nagios-1"],
        "correlation_id": None,
        "comments": 0,
        "created": rows["jira"]["created"],
    }
    assert rows["servicenow"]["key"] == "INC0010001"
    assert rows["servicenow"]["marker"] == "zbx-9"
    assert rows["servicenow"]["status"] == "New"
    assert rows["webhook"]["marker"] == "k1"
    assert all(set(row) == set(rows["jira"]) for row in rows.values())


async def test_tickets_filter_by_marker(client: Client) -> None:
    await fill(client)

    _, body = await client.get("/_sandbox/tickets", params={"marker": "zbx-9"})

    assert [row["key"] for row in body["tickets"]] == ["INC0010001"]


async def test_tickets_filter_by_open(client: Client) -> None:
    await fill(client)
    await client.post(f"{ISSUE}/OPS-1/transitions", json={"transition": {"id": "31"}})

    _, body = await client.get(
        "/_sandbox/tickets", params={"system": "jira", "open": "false"}
    )

    assert [(row["key"], row["status"]) for row in body["tickets"]] == [
        ("OPS-1", "Done")
    ]


async def test_requests_log_counts_creates(client: Client) -> None:
    await fill(client)
    await client.get(f"{ISSUE}/OPS-1")

    _, body = await client.get(
        "/_sandbox/requests", params={"method": "POST", "path": "/issue$"}
    )

    assert len(body["requests"]) == 1
    entry = body["requests"][0]
    assert set(entry) == {
        "method",
        "path",
        "query",
        "status",
        "fault",
        "time",
        "system",
        "operation",
        "marker",
    }
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", ISSUE, 201)
    assert (entry["system"], entry["operation"]) == ("jira", "create")


async def test_requests_log_leaves_out_the_sandbox_endpoints(client: Client) -> None:
    await client.get("/_sandbox/tickets")
    await client.get("/")

    _, body = await client.get("/_sandbox/requests")

    assert body == {"requests": []}


async def test_reset_clears_tickets_requests_and_faults(client: Client) -> None:
    await fill(client)
    await client.post("/_sandbox/faults", json={"responses": [{"status": 500}]})

    status, _ = await client.post("/_sandbox/reset")
    _, tickets = await client.get("/_sandbox/tickets")
    _, faults = await client.get("/_sandbox/faults")
    created, issue = await client.post(ISSUE, json=issue_fields())

    assert status == 204
    assert tickets == {"tickets": []}
    assert faults == {"faults": []}
    assert (created, issue["key"]) == (201, "OPS-1")


async def test_html_page_lists_tickets_escaped(client: Client) -> None:
    await fill(client)

    async with client.session.get("/") as response:
        page = await response.text()

    assert response.content_type == "text/html"
    assert "OPS-1" in page and "INC0010001" in page
    assert "&lt;disk&gt; full" in page
    assert "<disk>" not in page


async def test_serve_on_port_zero_reports_the_bound_port() -> None:
    running = await serve("127.0.0.1", 0)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{running.port}/") as response,
        ):
            status = response.status
    finally:
        await running.close()

    assert running.port > 0
    assert status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::", "example.com"])
async def test_serve_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        await serve(host, 0)


def test_command_line_refuses_non_loopback_host() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main_sandbox(["--host", "0.0.0.0", "--port", "0"])

    assert exit_info.value.code == 2


async def test_run_prints_its_url_and_stops_on_the_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run("127.0.0.1", 0, stop=stop))
    printed = ""
    while "\n" not in printed:
        await asyncio.sleep(0.01)
        printed += capsys.readouterr().out
    url = printed.removeprefix("sandbox listening on ").strip()
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        status = response.status

    stop.set()
    await asyncio.wait_for(task, 5)

    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    assert status == 200
