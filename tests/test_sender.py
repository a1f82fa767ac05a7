"""The sender's rules, against an in-memory destination (no HTTP here)."""

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import FakeDestination, FakeTicket
from tests.helpers import make_event
from ticketbridge.config.model import DEFAULT_LIFECYCLE, JiraSettings, Lifecycle
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
    def __init__(
        self,
        ledger: Ledger,
        fake: FakeDestination,
        threshold: int,
        rules: Lifecycle = DEFAULT_LIFECYCLE,
    ) -> None:
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
        self.minutes = 0
        self.rules = rules
        self.metrics = Metrics()
        self.sender = Sender(
            "jira",
            fake,
            settings,
            ledger,
            self.metrics,
            threshold,
            rules=lambda route: self.rules,
        )

    async def add(self, event_id: str, kind: str = "problem", **fields: Any) -> int:
        """Ingest one event; each gets a later time unless `occurred_at` is given."""
        self.minutes += 1
        fields.setdefault("occurred_at", f"2026-12-01T10:{self.minutes:02d}:00Z")
        event = make_event(id=event_id, kind=kind, **fields)
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
    assert (await bench.ledger.delivery(delivery)).last_error == (
        "recovery without a known problem"
    )
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


async def test_a_failed_lookup_is_never_taken_for_no_ticket(bench: Bench) -> None:
    """BC-09: a removed search (410) must not lead to a second create."""
    delivery = await bench.add("p1")
    bench.fake.lose_create_response = TransientError("read timeout", ambiguous=True)
    bench.fake.failures["find"] = [PermanentError("HTTP 410: API removed", status=410)]

    assert await bench.run(delivery) == "retrying"
    await asyncio.sleep(SETTLE)  # the lookup waits for the search to catch up
    assert await bench.run(delivery) == "dead"

    assert bench.fake.creates() == 1
    row = await bench.ledger.delivery(delivery)
    assert "HTTP 410" in str(row.last_error)


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


# -- lifecycle rules ---------------------------------------------------------


def only_ticket(bench: Bench) -> FakeTicket:
    [ticket] = bench.fake.tickets.values()
    return ticket


async def reason(bench: Bench, delivery: int) -> str:
    return str((await bench.ledger.delivery(delivery)).last_error)


async def test_problem_within_reopen_window_reopens_the_resolved_ticket(
    bench: Bench,
) -> None:
    bench.rules = Lifecycle(reopen_window=3600)
    await bench.run(await bench.add("p1"))
    await bench.run(await bench.add("r1", "recovery"))

    assert await bench.run(await bench.add("p2")) == "verified"

    assert bench.fake.creates() == 1
    assert only_ticket(bench).open


async def test_problem_after_reopen_window_opens_a_new_ticket(bench: Bench) -> None:
    bench.rules = Lifecycle(reopen_window=60)
    await bench.run(await bench.add("p1"))
    await bench.run(await bench.add("r1", "recovery"))

    # Ledger times are wall-clock: a problem an hour on is past the window.
    assert await bench.run(await bench.add("p2", occurred_at="2030-01-01T00:00:00Z"))
    assert bench.fake.creates() == 2


async def test_wont_fix_resolution_gets_a_new_ticket_not_a_reopen(
    bench: Bench,
) -> None:
    bench.rules = Lifecycle(reopen_window=3600)
    bench.fake.resolution = "Won't Fix"
    await bench.run(await bench.add("p1"))
    await bench.run(await bench.add("r1", "recovery"))

    assert await bench.run(await bench.add("p2")) == "verified"
    assert bench.fake.creates() == 2
    assert "reopen" not in bench.fake.calls


async def test_resolve_records_when_and_how_the_ticket_was_resolved(
    bench: Bench,
) -> None:
    await bench.run(await bench.add("p1"))
    await bench.run(await bench.add("r1", "recovery"))
    [row] = await bench.ledger.rows(
        "SELECT state, resolved_at, resolution, closed_by FROM tickets"
    )
    assert (row["state"], row["resolution"], row["closed_by"]) == (
        "resolved",
        "Done",
        "bridge",
    )
    assert row["resolved_at"] > 0


async def test_repeat_problem_is_skipped_when_on_repeat_is_ignore(
    bench: Bench,
) -> None:
    bench.rules = Lifecycle(on_repeat="ignore")
    await bench.run(await bench.add("p1"))
    delivery = await bench.add("p2")
    assert await bench.run(delivery) == "skipped"
    assert "on_repeat: ignore" in await reason(bench, delivery)
    assert only_ticket(bench).comments == []


async def test_recovery_only_comments_when_resolve_on_recovery_is_false(
    bench: Bench,
) -> None:
    bench.rules = Lifecycle(resolve_on_recovery=False)
    await bench.run(await bench.add("p1"))
    assert await bench.run(await bench.add("r1", "recovery")) == "verified"
    assert only_ticket(bench).open
    assert "resolve" not in bench.fake.calls


async def test_ticket_closed_by_a_person_is_commented_and_not_fought(
    bench: Bench,
) -> None:
    await bench.run(await bench.add("p1"))
    bench.fake.close_by_hand(only_ticket(bench).ref.id, "Closed", "Won't Do")

    delivery = await bench.add("r1", "recovery")
    assert await bench.run(delivery) == "skipped"

    assert await reason(bench, delivery) == "closed by a person: status Closed"
    assert "resolve" not in bench.fake.calls
    assert only_ticket(bench).comments == ["HTTP 503"]
    [row] = await bench.ledger.rows("SELECT state, closed_by, resolution FROM tickets")
    assert dict(row) == {
        "state": "resolved",
        "closed_by": "person",
        "resolution": "Won't Do",
    }


async def test_problem_after_a_person_closed_the_ticket_opens_a_new_one(
    bench: Bench,
) -> None:
    bench.rules = Lifecycle(reopen_window=3600)
    await bench.run(await bench.add("p1"))
    bench.fake.close_by_hand(only_ticket(bench).ref.id, "Closed", "Done")
    await bench.run(await bench.add("p2"))  # finds it closed: skipped

    assert await bench.run(await bench.add("p3")) == "verified"
    assert bench.fake.creates() == 2
    assert "reopen" not in bench.fake.calls


async def test_acknowledgement_comments_on_the_open_ticket(bench: Bench) -> None:
    await bench.run(await bench.add("p1"))
    assert await bench.run(await bench.add("a1", "acknowledgement")) == "verified"
    assert len(only_ticket(bench).comments) == 1


async def test_flapping_is_ignored_when_the_route_says_so(bench: Bench) -> None:
    bench.rules = Lifecycle(on_flapping="ignore")
    await bench.run(await bench.add("p1"))
    delivery = await bench.add("f1", "flappingstart")
    assert await bench.run(delivery) == "skipped"
    assert only_ticket(bench).comments == []


async def test_recovery_before_any_problem_writes_nothing(bench: Bench) -> None:
    """BC-21 sequence A: recovery for an incident never seen."""
    delivery = await bench.add("5001", "recovery")
    assert await bench.run(delivery) == "skipped"
    assert await reason(bench, delivery) == "recovery without a known problem"
    assert bench.fake.calls == []


async def test_late_problem_older_than_its_recovery_leaves_no_open_ticket(
    bench: Bench,
) -> None:
    """BC-21 sequence B: recovery polled first, its older problem after."""
    recovery = await bench.add("5002", "recovery", occurred_at="2026-12-01T10:00:05Z")
    problem = await bench.add("5003", occurred_at="2026-12-01T10:00:00Z")

    assert await bench.run(recovery) == "skipped"
    assert await bench.run(problem) == "skipped"
    assert (await reason(bench, problem)).startswith("late problem")
    assert bench.fake.tickets == {}


async def test_copies_of_one_notification_make_one_ticket_and_no_comments(
    bench: Bench,
) -> None:
    """BC-06: Nagios notifies each contact; the copies differ only in contact."""
    when = "2026-12-01T10:30:00Z"
    copies = [
        await bench.add(str(n), occurred_at=when, problem_id="p-77", contact=who)
        for n, who in ((2001, "admins"), (2002, "jira-bot"), (2003, "oncall"))
    ]
    states = [await bench.run(d) for d in copies]

    assert states == ["verified", "skipped", "skipped"]
    assert await reason(bench, copies[1]) == "duplicate of event 2001"
    assert bench.fake.creates() == 1
    assert only_ticket(bench).comments == []


def rejections(bench: Bench, status: str) -> float | None:
    return bench.metrics.registry.get_sample_value(
        "ticketbridge_destination_rejections_total",
        {"destination": "jira", "status": status},
    )


async def test_refused_credentials_are_counted_as_a_rejection(bench: Bench) -> None:
    bench.fake.failures["create"] = [PermanentError("unauthorized", status=401)]
    delivery = await bench.add("p1")

    assert await bench.run(delivery) == "dead"
    assert rejections(bench, "401") == 1
    assert rejections(bench, "403") == 0


async def test_other_failures_are_not_rejections(bench: Bench) -> None:
    bench.fake.failures["create"] = [
        PermanentError("field required", status=400),
        TransientError("503", status=503),
    ]

    await bench.run(await bench.add("p1"))
    await bench.run(await bench.add("p2"))

    assert [rejections(bench, s) for s in ("401", "403", "404")] == [0, 0, 0]
    assert rejections(bench, "400") is None


async def test_an_unexpected_exception_from_the_destination_is_a_permanent_failure(
    bench: Bench,
) -> None:
    """Not a DestinationError (a bug, e.g. aiohttp's ValueError for a bad URL):
    recorded with its type, dead at once, never retried in a loop."""
    bench.fake.failures["create"] = [ValueError("Host 'x y' is not valid")] * 5
    delivery = await bench.add("p1")

    await bench.sender._work(delivery, KEY)

    row = await bench.ledger.delivery(delivery)
    assert row.state == "dead"
    assert row.consecutive_failures == 1
    assert row.last_error == (
        "permanent: unexpected ValueError: Host 'x y' is not valid"
    )
    assert bench.fake.creates() == 1
    labels = {"destination": "jira", "operation": "create", "outcome": "dead"}
    dead = bench.metrics.registry.get_sample_value(
        "ticketbridge_deliveries_total", labels
    )
    assert dead == 1


async def test_an_unexpected_exception_while_verifying_is_a_permanent_failure(
    bench: Bench,
) -> None:
    bench.fake.failures["get"] = [KeyError("Status")]
    delivery = await bench.add("p1")

    await bench.sender._work(delivery, KEY)

    row = await bench.ledger.delivery(delivery)
    assert (row.state, row.last_error) == (
        "dead",
        "permanent: unexpected KeyError: 'Status'",
    )
    assert bench.fake.creates() == 1


async def test_an_exception_escaping_a_delivery_is_recorded_not_spun_on(
    bench: Bench,
) -> None:
    """Whatever escapes `process` makes the delivery dead, so the dispatcher
    does not take it again at once."""
    delivery = await bench.add("p1")

    async def broken(delivery_id: int) -> None:
        raise RuntimeError("boom")

    bench.sender.process = broken  # type: ignore[method-assign]
    await bench.sender._work(delivery, KEY)

    row = await bench.ledger.delivery(delivery)
    assert (row.state, row.last_error) == (
        "dead",
        "permanent: unexpected RuntimeError: boom",
    )
    assert await bench.ledger.due("jira", 10**10, [], 10) == []


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
