"""A webhook receiver that keeps what it is sent, once per idempotency key.

A partner integration posts JSON to /webhook/{name}; the verify URL
/webhook/{name}/{key} shows what was stored under that Idempotency-Key (or,
for a correlation marker, the last body that carried it), so
the sender can prove its delivery the same way it does for ticketing systems.
GET /webhook/{name} answers 200 while the receiver is up: a probe URL.
"""

from __future__ import annotations

from aiohttp import web

from ticketbridge.sandbox.store import STORE, WebhookRecord, now


def routes() -> list[web.RouteDef]:
    return [
        web.post("/webhook/{name}", receive),
        web.get("/webhook/{name}", status),
        web.get("/webhook/{name}/{ref}", lookup),
    ]


async def receive(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "the body is not valid JSON")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")

    store = request.app[STORE]
    name = request.match_info["name"]
    key = request.headers.get("Idempotency-Key") or None
    if key is not None:
        seen = next(
            (
                r
                for r in store.webhooks.values()
                if r.name == name and r.idempotency_key == key
            ),
            None,
        )
        if seen is not None:
            return web.json_response(seen.as_json(), status=200)
    record = WebhookRecord(store.next_webhook_id(), name, key, body, now())
    store.webhooks[record.id] = record
    return web.json_response(record.as_json(), status=201)


async def status(request: web.Request) -> web.Response:
    """What a probe URL answers: the receiver is up, and how much it holds."""
    name = request.match_info["name"]
    held = sum(1 for r in request.app[STORE].webhooks.values() if r.name == name)
    return web.json_response({"receiver": name, "records": held})


async def lookup(request: web.Request) -> web.Response:
    """Find a record by its idempotency key, or failing that by its id."""
    name = request.match_info["name"]
    ref = request.match_info["ref"]
    record = _find(request, name, ref)
    if record is None:
        return _error(404, "no record under this key")
    found = record.as_json()
    if record.body.get("marker") == ref:
        # The shape ticketbridge's verify GET reads: marker and operation.
        found |= {"marker": ref, "operation": record.body.get("operation")}
    return web.json_response(found)


def _find(request: web.Request, name: str, ref: str) -> WebhookRecord | None:
    """By idempotency key, else by id, else the last record whose body
    carries `ref` as its `marker` (what ticketbridge's verify GET asks)."""
    records = [r for r in request.app[STORE].webhooks.values() if r.name == name]
    by_key = next((r for r in records if r.idempotency_key == ref), None)
    by_id = next((r for r in records if r.id == ref), None)
    by_marker = [r for r in records if r.body.get("marker") == ref]
    return by_key or by_id or (by_marker[-1] if by_marker else None)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)
