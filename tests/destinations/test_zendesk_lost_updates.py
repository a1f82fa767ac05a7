"""BC-26: a Zendesk rate limit never makes an update silently lost.

The real sender, a real ledger and the real Zendesk client against a loopback
fake: a recovery is `verified` only after a read-back shows `solved`, whether
the update first met a plain-text 429 or a 200 that did not take effect.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, fast_retry

from ticketbridge.config.model import ZendeskSettings
from ticketbridge.destinations.zendesk import ZendeskDestination
from ticketbridge.events import event_from_mapping
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.metrics import Metrics
from ticketbridge.routing import correlation_marker
from ticketbridge.sender import Sender

KEY = "nagios|web01|HTTP"
TICKETS = "/api/v2/tickets"
ONE = f"{TICKETS}/101"
LIMITED = Answer(
    429,
    text="Number of allowed API requests per minute exceeded",
    content_type="text/plain",
    headers={"Retry-After": "30"},
)


class Bench:
    """One Zendesk destination's sender over a ledger file."""

    def __init__(self, ledger: Ledger, api: FakeApi) -> None:
        settings = ZendeskSettings(
            type="zendesk",
            url=api.url,
            email="bridge@example.com",
            token="zd-token-1234",
            timeout=0.5,
            backoff_initial=0.01,
            backoff_max=0.01,
        )
        self.ledger = ledger
        self.metrics = Metrics()
        self.client = ZendeskDestination("zd", settings, read_retry=fast_retry())
        self.sender = Sender("zd", self.client, settings, ledger, self.metrics, 5)
        self.marker = ""

    async def add(self, event_id: str, kind: str) -> int:
        fields = {"id": event_id, "kind": kind, "host": "web01", "check": "HTTP"}
        event = event_from_mapping("nagios", fields)
        self.marker = self.marker or correlation_marker(event)
        item = Routed(event, KEY, "all", ["zd"], self.marker)
        await self.ledger.ingest("nagios", [item], None)
        rows = await self.ledger.rows(
            "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE e.source_event_id = ?",
            (event_id,),
        )
        return int(rows[0]["id"])

    async def run(self, delivery: int) -> str:
        await self.sender.process(delivery)
        return (await self.ledger.delivery(delivery)).state

    async def next_attempt(self, delivery: int) -> float:
        rows = await self.ledger.rows(
            "SELECT next_attempt_at FROM deliveries WHERE id = ?", (delivery,)
        )
        return float(rows[0]["next_attempt_at"])

    def ticket(self, status: str) -> Answer:
        body = {"id": 101, "status": status, "external_id": self.marker}
        return Answer(200, {"ticket": body})

    def verifications(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "ticketbridge_verifications_total",
            {"destination": "zd", "outcome": outcome},
        )
        return value or 0.0


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bench(tmp_path: Path, api: FakeApi) -> AsyncIterator[Bench]:
    ledger = await Ledger.open(tmp_path / "ledger.db")
    bench = Bench(ledger, api)
    yield bench
    await bench.client.close()
    await ledger.close()


async def open_ticket(bench: Bench, api: FakeApi) -> None:
    problem = await bench.add("p1", "problem")
    api.on("POST", TICKETS, Answer(201, {"ticket": {"id": 101, "status": "new"}}))
    api.on("GET", ONE, bench.ticket("new"))
    assert await bench.run(problem) == "verified"
    api.answers.pop(("GET", ONE))


def puts(api: FakeApi) -> list[Any]:
    return [s.json["ticket"].get("status") for s in api.requests("PUT", ONE)]


async def test_recovery_after_a_plain_text_429_waits_and_is_verified(
    bench: Bench, api: FakeApi
) -> None:
    await open_ticket(bench, api)
    recovery = await bench.add("r1", "recovery")
    # The sender reads the ticket before its first resolve, the client before
    # each PUT; it stays open until the second PUT applies.
    api.on("GET", ONE, *[bench.ticket("open")] * 3)
    api.on("GET", ONE, bench.ticket("solved"))
    api.on("PUT", ONE, LIMITED, bench.ticket("solved"))

    before = time.time()
    assert await bench.run(recovery) == "retrying"
    assert await bench.next_attempt(recovery) >= before + 30
    assert bench.sender._paused_until >= before + 30  # the whole destination

    assert await bench.run(recovery) == "verified"
    assert puts(api) == ["solved", "solved"]


async def test_a_200_that_did_not_apply_is_caught_and_the_update_redone(
    bench: Bench, api: FakeApi
) -> None:
    await open_ticket(bench, api)
    recovery = await bench.add("r1", "recovery")
    # The sender's read, the client's before the first PUT, after it
    # (unchanged!), before the second, after it.
    api.on("GET", ONE, *[bench.ticket("open")] * 4)
    api.on("GET", ONE, bench.ticket("solved"))
    api.on("PUT", ONE, bench.ticket("open"), bench.ticket("solved"))

    assert await bench.run(recovery) == "retrying"
    last_error = (await bench.ledger.delivery(recovery)).last_error
    assert "expected resolved, ticket status is 'open'" in str(last_error)
    assert bench.verifications("mismatch") == 1

    assert await bench.run(recovery) == "verified"
    assert puts(api) == ["solved", "solved"]


async def test_an_unconfirmed_recovery_is_never_verified(
    bench: Bench, api: FakeApi
) -> None:
    await open_ticket(bench, api)
    recovery = await bench.add("r1", "recovery")
    api.on("GET", ONE, bench.ticket("open"))
    api.on("PUT", ONE, bench.ticket("solved"))

    states = [await bench.run(recovery) for _ in range(6)]

    assert states[:5] == ["retrying"] * 5
    assert states[5] == "dead"
    assert bench.verifications("verified") == 1  # only the problem's create
