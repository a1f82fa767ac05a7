"""Migration modes at send time: mirror twins, shadow renders, owners keep work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes import FakeDestination
from tests.helpers import make_event
from ticketbridge.config.model import JiraSettings
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.metrics import Metrics
from ticketbridge.mirror import note_twins
from ticketbridge.routing import correlation_marker
from ticketbridge.sender import Sender

KEY = "nagios|web01|HTTP"
TWINS = {"old": "new", "new": "old"}


class Pair:
    """Two destinations, `old` and `new`, each with its own sender, one ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.fakes = {name: FakeDestination(name) for name in ("old", "new")}
        settings = JiraSettings(
            type="jira",
            url="http://127.0.0.1:9",
            project="OPS",
            email="a@example.invalid",
        )
        self.senders = {
            name: Sender(name, fake, settings, ledger, Metrics(), 3)
            for name, fake in self.fakes.items()
        }
        self.minutes = 0

    async def add(
        self,
        event_id: str,
        kind: str = "problem",
        *,
        to: tuple[str, ...] = ("old", "new"),
        shadow: tuple[str, ...] = (),
        twins: dict[str, str] | None = None,
    ) -> None:
        self.minutes += 1
        event = make_event(
            id=event_id, kind=kind, occurred_at=f"2026-12-01T10:{self.minutes:02d}:00Z"
        )
        item = Routed(
            event, KEY, "r", to, correlation_marker(event), shadow, twins or {}
        )
        await self.ledger.ingest("nagios", [item], None, configured=("old", "new"))

    async def settle(self) -> None:
        """Work every due delivery of both destinations, in ingest order."""
        for _ in range(20):
            worked = 0
            for name, sender in self.senders.items():
                for delivery_id, _ in await self.ledger.due(name, 1e12, [], 100):
                    await sender.process(delivery_id)
                    worked += 1
            if not worked:
                return

    async def states(self) -> list[tuple[str, str, str, str | None]]:
        rows = await self.ledger.rows(
            "SELECT e.source_event_id, d.destination, d.state, d.last_error "
            "FROM deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.id"
        )
        return [
            (r["source_event_id"], r["destination"], r["state"], r["last_error"])
            for r in rows
        ]


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    ledger = await Ledger.open(tmp_path / "ledger.db")
    yield Pair(ledger)
    await ledger.close()


async def note_all(pair: Pair) -> None:
    for name, fake in pair.fakes.items():
        await note_twins(name, fake, pair.ledger, {})


async def test_mirror_tickets_each_name_their_twin(pair: Pair) -> None:
    await pair.add("p1", twins=TWINS)
    await pair.settle()
    await note_all(pair)

    [old] = pair.fakes["old"].tickets.values()
    [new] = pair.fakes["new"].tickets.values()
    assert old.comments == [f"Twin ticket: new {new.ref.key}"]
    assert new.comments == [f"Twin ticket: old {old.ref.key}"]


async def test_twin_note_is_written_once(pair: Pair) -> None:
    await pair.add("p1", twins=TWINS)
    await pair.settle()
    await note_all(pair)
    await note_all(pair)

    assert pair.fakes["old"].calls.count("note") == 1
    assert pair.fakes["new"].calls.count("note") == 1


async def test_twin_note_waits_until_both_tickets_exist(pair: Pair) -> None:
    await pair.add("p1", twins=TWINS)
    await pair.senders["old"].process(1)
    await note_all(pair)

    assert pair.fakes["old"].calls.count("note") == 0


async def test_twin_is_the_ticket_the_same_event_opened_not_a_later_one(
    pair: Pair,
) -> None:
    """`old` is a whole episode ahead of `new`: no cross-episode twin note."""
    await pair.add("p1", twins=TWINS)
    await pair.settle()
    await note_all(pair)
    await pair.add("r1", "recovery", twins=TWINS)
    await pair.add("p2", twins=TWINS)
    for _ in range(2):  # only `old` works off the recovery and the new problem
        [(delivery_id, _)] = await pair.ledger.due("old", 1e12, [], 1)
        await pair.senders["old"].process(delivery_id)

    await note_all(pair)

    first_new = next(iter(pair.fakes["new"].tickets.values()))
    second_old = list(pair.fakes["old"].tickets.values())[1]
    assert second_old.comments == []
    assert first_new.comments == [
        f"Twin ticket: old {next(iter(pair.fakes['old'].tickets.values())).ref.key}"
    ]


async def test_shadow_destination_renders_and_creates_nothing(pair: Pair) -> None:
    await pair.add("p1", to=("old",), shadow=("new",))
    await pair.settle()

    assert pair.fakes["new"].tickets == {}
    assert pair.fakes["new"].calls == ["preview"]
    assert ("p1", "new", "skipped", "shadow") in await pair.states()


async def test_follow_ups_stay_with_the_owner_after_the_route_changed(
    pair: Pair,
) -> None:
    """The ticket is open in old; the route now says new; the recovery goes to old."""
    await pair.add("p1", to=("old",))
    await pair.settle()
    await pair.add("p2", to=("new",))
    await pair.add("r1", "recovery", to=("new",))
    await pair.settle()

    [old] = pair.fakes["old"].tickets.values()
    assert not old.open
    assert pair.fakes["new"].calls == []
    assert {d for _, d, _, _ in await pair.states()} == {"old"}


async def test_follow_up_waits_for_a_create_still_in_flight_at_the_owner(
    pair: Pair,
) -> None:
    """Route switched before old's create ran: the recovery still goes to old."""
    await pair.add("p1", to=("old",))
    await pair.add("r1", "recovery", to=("new",))
    await pair.settle()

    assert [s for _, _, s, _ in await pair.states()] == ["verified", "verified"]
    [old] = pair.fakes["old"].tickets.values()
    assert not old.open


async def test_new_incident_after_the_switch_goes_to_the_new_system(
    pair: Pair,
) -> None:
    await pair.add("p1", to=("old",))
    await pair.add("r1", "recovery", to=("old",))
    await pair.settle()
    await pair.add("p2", to=("new",))
    await pair.settle()

    assert len(pair.fakes["new"].tickets) == 1
    assert pair.fakes["old"].creates() == 1
