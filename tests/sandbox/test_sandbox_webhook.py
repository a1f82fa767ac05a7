"""The webhook receiver and its verify URL."""

from __future__ import annotations

from tests.sandbox.conftest import Client


async def test_post_stores_the_body_and_returns_an_id(client: Client) -> None:
    status, record = await client.post("/webhook/partner", json={"summary": "disk"})

    assert status == 201
    assert record["id"]
    assert record["body"] == {"summary": "disk"}


async def test_same_idempotency_key_returns_the_same_record(client: Client) -> None:
    headers = {"Idempotency-Key": "evt-1"}

    first = await client.post("/webhook/partner", json={"n": 1}, headers=headers)
    again = await client.post("/webhook/partner", json={"n": 1}, headers=headers)
    _, listing = await client.get("/_sandbox/tickets", params={"system": "webhook"})

    assert (first[0], again[0]) == (201, 200)
    assert first[1]["id"] == again[1]["id"]
    assert len(listing["tickets"]) == 1


async def test_posts_without_a_key_are_separate_records(client: Client) -> None:
    first = await client.post("/webhook/partner", json={"n": 1})
    second = await client.post("/webhook/partner", json={"n": 1})

    assert first[1]["id"] != second[1]["id"]


async def test_verify_url_returns_the_record_stored_under_the_key(
    client: Client,
) -> None:
    headers = {"Idempotency-Key": "evt-7"}
    _, stored = await client.post("/webhook/partner", json={"n": 7}, headers=headers)

    status, found = await client.get("/webhook/partner/evt-7")

    assert (status, found) == (200, stored)


async def test_verify_url_is_404_for_an_unknown_key(client: Client) -> None:
    status, _ = await client.get("/webhook/partner/evt-404")

    assert status == 404


async def test_keys_are_kept_per_webhook_name(client: Client) -> None:
    headers = {"Idempotency-Key": "evt-1"}
    await client.post("/webhook/a", json={}, headers=headers)

    status, _ = await client.post("/webhook/b", json={}, headers=headers)

    assert status == 201


async def test_non_json_body_is_400(client: Client) -> None:
    status, _ = await client.post(
        "/webhook/partner", data=b"not json", headers={"Content-Type": "text/plain"}
    )

    assert status == 400


async def test_json_that_is_not_an_object_is_400(client: Client) -> None:
    status, _ = await client.post("/webhook/partner", json=[1, 2])

    assert status == 400


async def test_verify_url_finds_the_last_body_carrying_a_marker(
    client: Client,
) -> None:
    """ticketbridge asks GET {verify_url}/{marker} after each POST."""
    first = {"Idempotency-Key": "tb-1:create:e1"}
    second = {"Idempotency-Key": "tb-1:resolve:e2"}
    await client.post(
        "/webhook/p", json={"marker": "tb-1", "operation": "create"}, headers=first
    )
    await client.post(
        "/webhook/p", json={"marker": "tb-1", "operation": "resolve"}, headers=second
    )

    status, found = await client.get("/webhook/p/tb-1")

    assert status == 200
    assert (found["marker"], found["operation"]) == ("tb-1", "resolve")
