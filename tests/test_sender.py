"""The sender's rules, against an in-memory destination (no HTTP here)."""

import asyncio
import time
from pathlib import Path

import pytest

from tests.fakes import FakeDestination
from tests.helpers import make_event
from ticketbridge.config.model import JiraSettings
from ticketbridge.destinations.base import PermanentError, TransientError
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.metrics import Metrics
from ticketbridge.routing import correlation_marker
from ticketbridge.sender import Sender

KEY = "nagios|web01|HTTP"
SEARCH_LAG = 0.2
# After an attempt that may have created a ticket: its timeout plus the lag.
SETTLE = 0.1 + SEARCH_LAG + 0.05


class Bench:
    def __init__(self, ledger: Ledger, fake: FakeDestination, threshold: int) -> None:
        settings = JiraSettings(
            type="jira",
            url="http://127.0.0.1:9",
            project="OPS",
            email="a@example.invalid",
            backoff_initial=0.01,
            backoff_max=0.01,
            timeout=0.1,
            search_lag=SEARCH_LAG,
        )
        self.ledger = ledger
        self.fake = fake
        self.sender = Sender("jira", fake, settings, ledger, Metrics(), threshold)

    async def add(self, event_id: str, kind: str = "problem") -> int:
        event = make_event(id=event_id, kind=kind)
        item = Routed(event, KEY, "all", ["jira"], correlation_marker(event))
        await self.ledger.ingest("nagios", [item], None)
        rows = await self.ledger.rows(
            "SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id "
            "WHERE e.source_event_id = ?",
            (event_id,),
        )
        return int(rows[0]["id"])

    async def run(self, delivery_id: int, times: int = 1) -> str:
        for _ in range(times):
            await self.sender.process(delivery_id)
        return (await self.ledger.delivery(delivery_id)).state


@pytest.fixture
async def bench(tmp_path: Path):
    ledger = await Ledger.open(tmp_path / "ledger.db")
    yield Bench(ledger, FakeDestination("jira"), threshold=3)
    await ledger.close()


async def test_problem_creates_a_verified_ticket(bench: Bench) -> None:
    delivery = await bench.add("p1")
    assert await bench.run(delivery) == "verified"
    assert len(bench.fake.tickets) == 1


async def test_repeat_problem_comments_on_the_open_ticket(bench: Bench) -> None:
    await bench.run(await bench.add("p1"))
    assert await bench.run(await bench.add("p2")) == "verified"
    assert bench.fake.creates() == 1
    assert len(next(iter(bench.fake.tickets.values())).comments) == 1


async def test_recovery_resolves_the_open_ticket(bench: Bench) -> None:
    await bench.run(await bench.add("p1"))
    assert await bench.run(await bench.add("r1", "recovery")) == "verified"
    assert not next(iter(bench.fake.tickets.values())).open


async def test_recovery_without_open_ticket_is_skipped_with_reason(
    bench: Bench,
) -> None:
    delivery = await bench.add("r1", "recovery")
    assert await bench.run(delivery) == "skipped"
    assert (await bench.ledger.delivery(delivery)).last_error == "no open ticket"
    assert bench.fake.calls == []


async def test_lost_create_response_is_looked_up_not_created_again(
    bench: Bench,
) -> None:
    bench.fake.lose_create_response = TransientError("read timeout", ambiguous=True)
    delivery = await bench.add("p1")

    assert await bench.run(delivery) == "retrying"
    await asyncio.sleep(SETTLE)
    assert await bench.run(delivery) == "verified"

    assert len(bench.fake.tickets) == 1
    assert bench.fake.calls.count("find") == 1


async def test_create_after_a_lost_response_waits_for_the_search_to_catch_up(
    bench: Bench,
) -> None:
    """A lookup before the search shows the first ticket would make a second."""
    bench.fake.search_lag = SEARCH_LAG
    bench.fake.lose_create_response = TransientError("read timeout", ambiguous=True)
    delivery = await bench.add("p1")

    await bench.run(delivery)
    early = await bench.run(delivery)
    calls_before_settling = list(bench.fake.calls)
    await asyncio.sleep(SETTLE)
    late = await bench.run(delivery)

    assert (early, late) == ("retrying", "verified")
    assert calls_before_settling == ["create"]
    assert len(bench.fake.tickets) == 1


async def test_create_after_a_crash_mid_request_waits_for_the_search(
    bench: Bench,
) -> None:
    """A crash leaves the attempt recorded but its outcome unknown."""
    bench.fake.search_lag = SEARCH_LAG
    delivery = await bench.add("p1")
    settle = time.time() + SETTLE
    await bench.ledger.start_attempt(delivery, "create", settle)
    event = (await bench.ledger.delivery(delivery)).event
    await bench.fake.create(event, correlation_marker(event))  # then the crash

    early = await bench.run(delivery)
    await asyncio.sleep(SETTLE)
    late = await bench.run(delivery)

    assert (early, late) == ("pending", "verified")
    assert len(bench.fake.tickets) == 1


async def test_create_refused_for_sure_is_retried_without_waiting(
    bench: Bench,
) -> None:
    bench.fake.search_lag = SEARCH_LAG
    bench.fake.failures["create"] = [TransientError("503", status=503)]
    delivery = await bench.add("p1")

    assert await bench.run(delivery) == "retrying"
    assert await bench.run(delivery) == "verified"

    assert len(bench.fake.tickets) == 1


async def test_transient_failures_past_threshold_make_the_delivery_dead(
    bench: Bench,
) -> None:
    bench.fake.failures["create"] = [TransientError("503", status=503)] * 10
    delivery = await bench.add("p1")
    assert await bench.run(delivery, times=3) == "retrying"
    assert await bench.run(delivery) == "dead"


async def test_permanent_failure_is_not_retried(bench: Bench) -> None:
    bench.fake.failures["create"] = [PermanentError("project OPS unknown", status=400)]
    delivery = await bench.add("p1")
    assert await bench.run(delivery) == "dead"
    assert "permanent: project OPS unknown" in str(
        (await bench.ledger.delivery(delivery)).last_error
    )


async def test_dropped_marker_is_never_verified_and_never_recreated(
    bench: Bench,
) -> None:
    bench.fake.drop_marker = True
    delivery = await bench.add("p1")
    await bench.run(delivery, times=5)
    state = await bench.ledger.delivery(delivery)
    assert state.state == "dead"
    assert "correlation marker missing" in str(state.last_error)
    assert bench.fake.creates() == 1


async def test_resolve_the_destination_ignored_is_done_again(bench: Bench) -> None:
    await bench.run(await bench.add("p1"))
    bench.fake.ignore_resolve = True
    recovery = await bench.add("r1", "recovery")
    assert await bench.run(recovery) == "retrying"

    bench.fake.ignore_resolve = False
    assert await bench.run(recovery) == "verified"
    assert bench.fake.calls.count("resolve") == 2


async def test_retry_after_pauses_the_whole_destination(bench: Bench) -> None:
    bench.fake.failures["create"] = [TransientError("429", status=429, retry_after=30)]
    await bench.run(await bench.add("p1"))
    assert bench.sender._paused_until > 0  # noqa: SLF001
    due = await bench.ledger.due("jira", now=1e12, busy=[], limit=5)
    await bench.sender._dispatch_due()  # noqa: SLF001
    assert due and bench.fake.creates() == 1


async def test_verification_failure_keeps_the_write_and_reads_again(
    bench: Bench,
) -> None:
    bench.fake.failures["get"] = [TransientError("502", status=502)]
    delivery = await bench.add("p1")
    assert await bench.run(delivery) == "sent"
    assert await bench.run(delivery) == "verified"
    assert bench.fake.creates() == 1


async def test_successor_sender_waits_for_its_predecessor_to_stop(
    bench: Bench,
) -> None:
    """On a reload two senders of one destination must never work at once."""
    delivery = await bench.add("p1")
    predecessor_done = asyncio.Event()

    async def predecessor_stops() -> None:
        await predecessor_done.wait()

    bench.sender.start(after=asyncio.create_task(predecessor_stops()))
    await asyncio.sleep(0.3)
    calls_while_waiting = list(bench.fake.calls)
    predecessor_done.set()
    for _ in range(50):
        if (await bench.ledger.delivery(delivery)).state == "verified":
            break
        await asyncio.sleep(0.05)
    await bench.sender.stop(grace=1)

    assert calls_while_waiting == []
    assert (await bench.ledger.delivery(delivery)).state == "verified"
