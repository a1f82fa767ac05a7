"""The imitated ServiceNow Table API: create, read, query, resolve."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from tests.sandbox.conftest import Client
from ticketbridge.sandbox import RunningSandbox, SandboxSettings, serve

TABLE = "/api/now/table/incident"
NOT_FOUND = {
    "error": {
        "message": "No Record found",
        "detail": "Record doesn't exist or ACL restricts the record retrieval",
    },
    "status": "failure",
}


async def create(client: Client, **values: Any) -> dict[str, str]:
    body = {"short_description": "web01 HTTP 503", "correlation_id": "zbx-1"}
    body.update(values)
    status, created = await client.post(TABLE, json=body)
    assert status == 201, created
    return dict(created["result"])


async def resolve(client: Client, sys_id: str, **values: str) -> tuple[int, Any]:
    return await client.patch(f"{TABLE}/{sys_id}", json={"state": "6", **values})


async def test_create_returns_the_record_as_strings(client: Client) -> None:
    record = await create(client, urgency=2, description="details")

    assert re.fullmatch(r"[0-9a-f]{32}", record["sys_id"])
    assert record["number"] == "INC0010001"
    assert record["state"] == "1"
    assert record["active"] == "true"
    assert record["urgency"] == "2"
    assert record["correlation_id"] == "zbx-1"
    assert record["close_code"] == ""
    assert all(isinstance(v, str) for v in record.values())


async def test_create_answers_with_a_location_header(
    sandbox: RunningSandbox, client: Client
) -> None:
    async with client.session.post(TABLE, json={"short_description": "x"}) as r:
        sys_id = (await r.json())["result"]["sys_id"]
        location = r.headers["Location"]

    assert location == f"{sandbox.url}{TABLE}/{sys_id}"


async def test_numbers_count_up(client: Client) -> None:
    first = await create(client)
    second = await create(client, correlation_id="zbx-2")

    assert (first["number"], second["number"]) == ("INC0010001", "INC0010002")


async def test_get_returns_the_record(client: Client) -> None:
    record = await create(client)

    status, body = await client.get(f"{TABLE}/{record['sys_id']}")

    assert status == 200
    assert body["result"] == record


async def test_unknown_sys_id_gets_the_servicenow_404_body(client: Client) -> None:
    status, body = await client.get(f"{TABLE}/{'0' * 32}")

    assert (status, body) == (404, NOT_FOUND)


async def test_query_by_correlation_id_and_active(client: Client) -> None:
    await create(client, correlation_id="zbx-1")
    wanted = await create(client, correlation_id="zbx-2")

    status, body = await client.get(
        TABLE,
        params={
            "sysparm_query": "correlation_id=zbx-2^active=true",
            "sysparm_fields": "sys_id,number,state",
            "sysparm_limit": "2",
        },
    )

    assert status == 200
    assert body["result"] == [
        {"sys_id": wanted["sys_id"], "number": "INC0010002", "state": "1"}
    ]


async def test_query_without_match_is_an_empty_list(client: Client) -> None:
    await create(client)

    status, body = await client.get(
        TABLE, params={"sysparm_query": "correlation_id=zbx-404"}
    )

    assert (status, body) == (200, {"result": []})


async def test_v1_query_without_match_is_404(client: Client) -> None:
    status, body = await client.get(
        "/api/now/v1/table/incident", params={"sysparm_query": "correlation_id=none"}
    )

    assert (status, body) == (404, NOT_FOUND)


async def test_query_with_a_misspelt_field_returns_the_whole_table(
    client: Client,
) -> None:
    """Like the real Table API, an unknown field in the query is dropped."""
    await create(client, correlation_id="zbx-1")
    await create(client, correlation_id="zbx-2")

    _, body = await client.get(TABLE, params={"sysparm_query": "corelation_id=zbx-1"})

    assert len(body["result"]) == 2


async def test_resolve_without_close_code_is_refused_by_data_policy(
    client: Client,
) -> None:
    record = await create(client)

    status, body = await resolve(client, record["sys_id"], close_notes="recovered")
    _, after = await client.get(f"{TABLE}/{record['sys_id']}")

    assert status == 403
    assert body == {
        "error": {
            "message": "Operation Failed",
            "detail": "Data Policy Exception: The following fields are mandatory: "
            "Resolution code",
        },
        "status": "failure",
    }
    assert after["result"]["state"] == "1"


async def test_resolve_without_close_notes_names_resolution_notes(
    client: Client,
) -> None:
    record = await create(client)

    status, body = await resolve(
        client, record["sys_id"], close_code="Solution provided"
    )

    assert status == 403
    assert body["error"]["detail"].endswith("mandatory: Resolution notes")


async def test_resolve_with_close_code_and_notes_deactivates(client: Client) -> None:
    record = await create(client)

    status, body = await resolve(
        client,
        record["sys_id"],
        close_code="Solution provided",
        close_notes="recovered",
    )

    assert status == 200
    assert body["result"]["state"] == "6"
    assert body["result"]["active"] == "false"
    assert body["result"]["resolved_at"] != ""


async def test_unknown_close_code_is_dropped_and_refused(client: Client) -> None:
    record = await create(client)

    status, _ = await resolve(
        client, record["sys_id"], close_code="Fixed it", close_notes="recovered"
    )

    assert status == 403


async def test_any_close_code_passes_when_choices_are_not_checked() -> None:
    running = await serve("127.0.0.1", 0, SandboxSettings(close_codes=None))
    headers = {"Authorization": aiohttp.encode_basic_auth("admin", "pw")}
    try:
        async with aiohttp.ClientSession(running.url, headers=headers) as session:
            client = Client(session)
            record = await create(client)
            status, _ = await resolve(
                client, record["sys_id"], close_code="Fixed it", close_notes="ok"
            )
    finally:
        await running.close()

    assert status == 200


async def test_comments_on_patch_append_journal_entries(client: Client) -> None:
    record = await create(client)

    for text in ("first", "second"):
        status, _ = await client.patch(
            f"{TABLE}/{record['sys_id']}", json={"comments": text}
        )
        assert status == 200
    _, listing = await client.get("/_sandbox/tickets", params={"system": "servicenow"})

    assert listing["tickets"][0]["comments"] == 2


async def test_patch_of_unknown_record_is_404(client: Client) -> None:
    status, body = await client.patch(f"{TABLE}/{'f' * 32}", json={"state": "2"})

    assert (status, body) == (404, NOT_FOUND)


async def test_missing_basic_auth_is_401_user_not_authenticated(
    sandbox: RunningSandbox,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.url}{TABLE}") as response,
    ):
        body = await response.json()

    assert response.status == 401
    assert body["error"]["message"] == "User Not Authenticated"
    assert body["status"] == "failure"
