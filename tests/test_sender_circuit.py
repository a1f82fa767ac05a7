"""The sender with a circuit breaker, against an in-memory destination."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.fakes import FakeDestination
from tests.helpers import make_event
from ticketbridge.breaker import Breaker, CircuitState
from ticketbridge.config.model import JiraSettings
from ticketbridge.destinations.base import PermanentError, TransientError
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.metrics import Metrics
from ticketbridge.routing import correlation_marker
from ticketbridge.sender import Sender

FAILURE_THRESHOLD = 3


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Bench:
    def __init__(self, ledger: Ledger) -> None:
        settings = JiraSettings(
            type="jira",
            url="http://127.0.0.1:9",
            project="OPS",
            email="a@example.invalid",
            backoff_initial=0.01,
            backoff_max=0.01,
        )
        self.ledger = ledger
        self.fake = FakeDestination("jira")
        self.clock = Clock()
        self.breaker = Breaker("jira", 2, 60.0, clock=self.clock)
        self.probes = 0
        self.reachable = False
        self.sender = Sender(
            "jira",
            self.fake,
            settings,
            ledger,
            Metrics(),
            FAILURE_THRESHOLD,
            breaker=self.breaker,
            probe=self._probe,
        )

    async def _probe(self) -> bool:
        self.probes += 1
        return self.reachable

    async def add(self, event_id: str) -> int:
        event = make_event(id=event_id, host=f"web-{event_id}")
        key = f"nagios|web-{event_id}|HTTP"
        item = Routed(event, key, "all", ["jira"], correlation_marker(event))
        await self.ledger.ingest("nagios", [item], None)
        rows = await self.ledger.rows(
            "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE e.source_event_id = ?",
            (event_id,),
        )
        return int(rows[0]["id"])

    async def rows(self) -> list[tuple[str, int]]:
        found = await self.ledger.rows(
            "SELECT state, consecutive_failures FROM deliveries ORDER BY id", ()
        )
        return [(r["state"], r["consecutive_failures"]) for r in found]


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    ledger = await Ledger.open(tmp_path / "ledger.db")
    yield Bench(ledger)
    await ledger.close()


async def settle(condition: Callable[[], Awaitable[bool] | bool]) -> None:
    """Wait (5 s at most) until `condition` holds."""
    async with asyncio.timeout(5):
        while True:
            result = condition()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.02)


def is_open(bench: Bench) -> Callable[[], bool]:
    return lambda: bench.breaker.state is CircuitState.OPEN


def outage(count: int) -> list[TransientError]:
    return [TransientError("HTTP 503", status=503) for _ in range(count)]


async def test_an_outage_opens_the_circuit_and_no_delivery_dies(bench: Bench) -> None:
    bench.fake.failures["create"] = outage(100)
    for n in range(3):
        await bench.add(f"p{n}")

    bench.sender.start()
    await settle(is_open(bench))
    # Requests sent before the circuit opened may still come back.
    await asyncio.sleep(0.2)
    calls = len(bench.fake.calls)
    before = await bench.rows()
    await asyncio.sleep(0.5)  # many backoff periods: the deliveries are due

    assert len(bench.fake.calls) == calls
    assert await bench.rows() == before
    assert all(state != "dead" for state, _ in before)
    assert max(failures for _, failures in before) < FAILURE_THRESHOLD
    await bench.sender.stop(1)


async def test_after_the_cooldown_a_good_probe_resumes_sending(bench: Bench) -> None:
    bench.fake.failures["create"] = outage(2)
    for n in range(3):
        await bench.add(f"p{n}")
    bench.sender.start()
    await settle(is_open(bench))

    bench.reachable = True
    bench.clock.now += 60

    async def all_verified() -> bool:
        return {state for state, _ in await bench.rows()} == {"verified"}

    await settle(all_verified)
    assert bench.probes == 1
    assert bench.breaker.state is CircuitState.CLOSED
    assert bench.fake.creates() == 3 + 2  # every event once, plus the 2 failed
    assert len(bench.fake.tickets) == 3
    await bench.sender.stop(1)


async def test_a_bad_probe_keeps_the_circuit_open(bench: Bench) -> None:
    bench.fake.failures["create"] = outage(2)
    await bench.add("p1")
    bench.sender.start()
    await settle(is_open(bench))

    bench.clock.now += 60
    await settle(lambda: bench.probes == 1)
    await asyncio.sleep(0.2)

    assert bench.breaker.state is CircuitState.OPEN
    assert bench.fake.creates() == 2
    await bench.sender.stop(1)


async def test_rate_limiting_does_not_open_the_circuit(bench: Bench) -> None:
    """A 429 is the Retry-After pause's business."""
    delivery = await bench.add("p1")
    bench.fake.failures["create"] = [
        TransientError("HTTP 429", status=429, retry_after=0.0) for _ in range(3)
    ]

    for _ in range(3):
        await bench.sender.process(delivery)

    assert bench.breaker.state is CircuitState.CLOSED
    assert bench.breaker.failures == 0


async def test_an_answer_ends_the_failure_streak(bench: Bench) -> None:
    delivery = await bench.add("p1")
    bench.fake.failures["create"] = [
        TransientError("HTTP 503", status=503),
        PermanentError("HTTP 400", status=400),
    ]

    await bench.sender.process(delivery)
    assert bench.breaker.failures == 1
    await bench.sender.process(delivery)
    assert bench.breaker.failures == 0


async def test_failed_verification_reads_count_too(bench: Bench) -> None:
    delivery = await bench.add("p1")
    bench.fake.failures["get"] = outage(2)

    await bench.sender.process(delivery)
    await bench.sender.process(delivery)

    assert bench.breaker.state is CircuitState.OPEN
