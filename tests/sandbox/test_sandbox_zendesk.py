"""The imitated Zendesk Tickets API: create, show, list by external_id, update;
and our Zendesk client against it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from tests.sandbox.conftest import Client
from ticketbridge.config.model import ZendeskSettings
from ticketbridge.destinations.base import PermanentError, TransientError
from ticketbridge.destinations.zendesk import ZendeskDestination
from ticketbridge.events import Event, EventKind
from ticketbridge.sandbox import RunningSandbox, SandboxSettings, serve

TICKETS = "/api/v2/tickets"
NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}


async def create(client: Client, **fields: Any) -> dict[str, Any]:
    ticket = {"subject": "web01 down", "comment": {"body": "first"}}
    ticket.update(fields)
    status, body = await client.post(TICKETS, json={"ticket": ticket})
    assert status == 201, body
    return dict(body["ticket"])


async def update(client: Client, number: int, **fields: Any) -> tuple[int, Any]:
    return await client.call("PUT", f"{TICKETS}/{number}", json={"ticket": fields})


async def test_create_answers_201_with_ticket_audit_and_location(
    sandbox: RunningSandbox, client: Client
) -> None:
    body = {"ticket": {"subject": "x", "comment": {"body": "b", "public": False}}}
    async with client.session.post(TICKETS, json=body) as response:
        answer = await response.json()
        location = response.headers["Location"]

    assert response.status == 201
    assert answer["ticket"]["status"] == "new"
    assert location == f"{sandbox.url}{TICKETS}/{answer['ticket']['id']}.json"
    assert {"type": "Comment", "body": "b", "public": False} in answer["audit"][
        "events"
    ]


async def test_create_without_a_comment_is_record_invalid(client: Client) -> None:
    status, body = await client.post(TICKETS, json={"ticket": {"subject": "x"}})

    assert status == 422
    assert body["error"] == "RecordInvalid"
    assert body["details"]["base"][0]["description"] == "Description: cannot be blank"


async def test_invalid_status_is_record_invalid_and_changes_nothing(
    client: Client,
) -> None:
    ticket = await create(client)

    status, body = await update(client, ticket["id"], status="done")
    _, shown = await client.get(f"{TICKETS}/{ticket['id']}.json")

    assert (status, body["error"]) == (422, "RecordInvalid")
    assert shown["ticket"]["status"] == "new"


async def test_show_works_with_and_without_json_suffix(client: Client) -> None:
    ticket = await create(client, external_id="tb-1")

    plain = await client.get(f"{TICKETS}/{ticket['id']}")
    suffixed = await client.get(f"{TICKETS}/{ticket['id']}.json")

    assert plain == suffixed
    assert plain[1]["ticket"]["external_id"] == "tb-1"


async def test_unknown_ticket_gets_the_zendesk_404_body(client: Client) -> None:
    assert await client.get(f"{TICKETS}/999") == (404, NOT_FOUND)
    assert await update(client, 999, status="open") == (404, NOT_FOUND)


async def test_list_by_external_id_returns_every_ticket_carrying_it(
    client: Client,
) -> None:
    first = await create(client, external_id="tb-dup")
    await create(client, external_id="tb-other")
    second = await create(client, external_id="tb-dup")

    status, body = await client.get(TICKETS, params={"external_id": "tb-dup"})

    assert status == 200
    assert [t["id"] for t in body["tickets"]] == [first["id"], second["id"]]
    assert body["count"] == 2


async def test_solved_ticket_can_be_reopened_but_closed_refuses_updates(
    client: Client,
) -> None:
    ticket = await create(client)

    assert (await update(client, ticket["id"], status="solved"))[0] == 200
    assert (await update(client, ticket["id"], status="open"))[0] == 200
    assert (await update(client, ticket["id"], status="closed"))[0] == 200
    status, body = await update(client, ticket["id"], status="open")

    assert status == 422
    assert body["details"]["status"][0]["description"] == (
        "Status: closed prevents ticket update"
    )


async def test_anonymous_call_gets_zendesk_401(sandbox: RunningSandbox) -> None:
    async with (
        aiohttp.ClientSession(sandbox.url) as session,
        session.get(TICKETS) as response,
    ):
        assert response.status == 401
        assert await response.json() == {"error": "Couldn't authenticate you"}


async def test_scripted_429_is_plain_text_with_retry_after(client: Client) -> None:
    rule = {
        "match": {"method": "PUT", "path_regex": "^/api/v2/tickets/"},
        "responses": [{"status": 429}],
    }
    assert (await client.post("/_sandbox/faults", json=rule))[0] == 201
    ticket = await create(client)

    async with client.session.put(
        f"{TICKETS}/{ticket['id']}", json={"ticket": {"status": "solved"}}
    ) as response:
        text = await response.text()
        retry_after = response.headers.get("Retry-After")

    assert (response.status, response.content_type) == (429, "text/plain")
    assert (text, retry_after) == (
        "Number of allowed API requests per minute exceeded",
        "60",
    )


async def test_tickets_show_in_the_sandbox_listing(client: Client) -> None:
    await create(client, external_id="tb-list")

    _, listing = await client.get(
        "/_sandbox/tickets", params={"system": "zendesk", "marker": "tb-list"}
    )

    [row] = listing["tickets"]
    assert (row["status"], row["open"], row["comments"]) == ("new", True, 1)


# --- our client against the sandbox ---------------------------------------------


def event(kind: EventKind) -> Event:
    return Event(
        source="nagios",
        source_event_id="1",
        kind=kind,
        severity="CRITICAL",
        host="web01",
        check="HTTP",
        summary="HTTP 503",
        details="",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


@pytest.fixture
async def zd(sandbox: RunningSandbox) -> Any:
    settings = ZendeskSettings(
        type="zendesk", url=sandbox.url, email="bridge@example.com", token="t0ken"
    )
    client = ZendeskDestination("zd", settings)
    yield client
    await client.close()


async def test_client_round_trip_against_the_sandbox(
    client: Client, zd: ZendeskDestination
) -> None:
    ticket = await zd.create(event(EventKind.PROBLEM), "tb-round")
    assert await zd.find("tb-round") == ticket

    await zd.comment(ticket, event(EventKind.UPDATE))
    await zd.resolve(ticket, event(EventKind.RECOVERY))
    solved = await zd.get(ticket, "tb-round")
    await zd.reopen(ticket, event(EventKind.PROBLEM))
    reopened = await zd.get(ticket, "tb-round")

    assert (solved.is_open, solved.status) == (False, "solved")
    assert (reopened.is_open, reopened.status) == (True, "open")
    _, listing = await client.get("/_sandbox/tickets", params={"marker": "tb-round"})
    assert listing["tickets"][0]["comments"] == 4


async def test_client_sees_a_closed_ticket_refuse_reopen(
    client: Client, zd: ZendeskDestination
) -> None:
    ticket = await zd.create(event(EventKind.PROBLEM), "tb-closed")
    await update(client, int(ticket.id), status="closed")

    with pytest.raises(PermanentError, match="closed prevents ticket update"):
        await zd.reopen(ticket, event(EventKind.PROBLEM))


async def test_client_gets_retry_after_from_a_sandbox_429(
    client: Client, zd: ZendeskDestination
) -> None:
    ticket = await zd.create(event(EventKind.PROBLEM), "tb-limited")
    rule = {"match": {"method": "PUT"}, "responses": [{"status": 429}]}
    await client.post("/_sandbox/faults", json=rule)

    with pytest.raises(TransientError) as caught:
        await zd.comment(ticket, event(EventKind.UPDATE))

    assert caught.value.retry_after == 60.0


async def test_ticket_count_and_fields_answer_like_zendesk(client: Client) -> None:
    await create(client)
    for suffix in ("", ".json"):
        status, counted = await client.get(f"{TICKETS}/count{suffix}")
        assert (status, counted["count"]["value"]) == (200, 1)
        status, fields = await client.get(f"/api/v2/ticket_fields{suffix}")
        assert status == 200
        assert {"subject", "priority", "tickettype"} <= {
            f["type"] for f in fields["ticket_fields"]
        }


async def test_client_probe_passes_against_the_sandbox(zd: ZendeskDestination) -> None:
    results = await zd.probe()
    assert [(r.check, r.ok) for r in results] == [
        ("credentials", True),
        ("ticket_fields", True),
    ]


async def test_client_probe_with_a_wrong_token_fails_its_credentials() -> None:
    running = await serve("127.0.0.1", 0, SandboxSettings(token="right-token"))
    settings = ZendeskSettings(
        type="zendesk", url=running.url, email="bridge@example.com", token="wrong"
    )
    client = ZendeskDestination("zd", settings)
    try:
        results = await client.probe()
    finally:
        await client.close()
        await running.close()

    assert [(r.check, r.ok) for r in results] == [
        ("credentials", False),
        ("ticket_fields", False),
    ]
    assert results[0].detail == (
        "HTTP 401: Couldn't authenticate you (Zendesk refused email and token)"
    )
