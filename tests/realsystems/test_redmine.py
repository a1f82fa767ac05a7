"""Our Redmine client against a real Redmine 5 from Debian's package.

One Redmine serves the whole test session (preparing it takes seconds);
each test makes its own issues with its own marker.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from ticketbridge.config.model import RedmineSettings
from ticketbridge.destinations.base import PermanentError, TicketRef
from ticketbridge.destinations.http import ReadRetry
from ticketbridge.destinations.redmine import RedmineDestination
from ticketbridge.events import Event, EventKind

from .redmine import (
    RedmineError,
    RedmineFacts,
    RedmineHarness,
    redmine_workdir,
    require_redmine,
)

pytestmark = pytest.mark.realsystem

_markers = itertools.count(1)


@pytest.fixture(scope="session")
def redmine() -> Iterator[tuple[RedmineHarness, RedmineFacts]]:
    """A missing Redmine fails the tests, it is not skipped: `make test` installs it."""
    try:
        require_redmine()
    except RedmineError as exc:
        pytest.fail(str(exc), pytrace=False)

    with redmine_workdir() as workdir:
        harness = RedmineHarness(workdir)
        facts = harness.prepare()
        with harness:
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in harness.timings.items())
            print(f"\nredmine harness: {timings}", file=sys.stderr)
            yield harness, facts


def client(
    redmine: tuple[RedmineHarness, RedmineFacts], **changes: Any
) -> RedmineDestination:
    harness, facts = redmine
    fields: dict[str, Any] = {
        "type": "redmine",
        "url": harness.url,
        "api_key": facts.api_key,
        "project": facts.project,
        "tracker_id": facts.trackers["Bug"],
        "custom_field_id": facts.marker_field,
    }
    fields.update(changes)
    return RedmineDestination(
        "redmine", RedmineSettings(**fields), read_retry=ReadRetry(initial=0.1)
    )


@pytest.fixture
async def bug(
    redmine: tuple[RedmineHarness, RedmineFacts],
) -> AsyncIterator[RedmineDestination]:
    destination = client(redmine)
    yield destination
    await destination.close()


def new_marker() -> str:
    return f"tb-redmine-{datetime.now(UTC):%H%M%S}-{next(_markers)}"


def make_event(kind: EventKind, summary: str) -> Event:
    return Event(
        source="nagios",
        source_event_id=summary,
        kind=kind,
        severity="CRITICAL",
        host="web01",
        check="HTTP",
        summary=summary,
        details="",
        occurred_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    )


async def notes_of(
    redmine: tuple[RedmineHarness, RedmineFacts], ticket: TicketRef
) -> list[str]:
    """The issue's journal notes, read with a plain HTTP client."""
    harness, facts = redmine
    headers = {"X-Redmine-API-Key": facts.api_key}
    url = f"{harness.url}/issues/{ticket.id}.json?include=journals"
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.get(url) as response,
    ):
        body = await response.json()
    return [j["notes"] for j in body["issue"]["journals"] if j.get("notes")]


async def test_issue_is_created_with_the_marker_and_found_by_it(
    bug: RedmineDestination,
) -> None:
    marker = new_marker()

    ticket = await bug.create(make_event(EventKind.PROBLEM, "down"), marker)

    view = await bug.get(ticket, marker)
    assert (view.marker_present, view.is_open, view.status) == (True, True, "New")
    assert await bug.find(marker) == ticket


async def test_find_of_an_unknown_marker_is_none(bug: RedmineDestination) -> None:
    assert await bug.find(new_marker()) is None


async def test_comment_resolve_and_reopen_each_read_back(
    redmine: tuple[RedmineHarness, RedmineFacts], bug: RedmineDestination
) -> None:
    marker = new_marker()
    ticket = await bug.create(make_event(EventKind.PROBLEM, "down"), marker)

    await bug.comment(ticket, make_event(EventKind.UPDATE, "still down"))
    assert any("still down" in n for n in await notes_of(redmine, ticket))

    await bug.resolve(ticket, make_event(EventKind.RECOVERY, "up again"))
    resolved = await bug.get(ticket, marker)
    assert (resolved.is_open, resolved.status) == (False, "Resolved")
    assert any("up again" in n for n in await notes_of(redmine, ticket))

    await bug.reopen(ticket, make_event(EventKind.PROBLEM, "down again"))
    reopened = await bug.get(ticket, marker)
    assert (reopened.is_open, reopened.status) == (True, "New")


async def test_resolved_issue_is_still_found_by_its_marker(
    bug: RedmineDestination,
) -> None:
    marker = new_marker()
    ticket = await bug.create(make_event(EventKind.PROBLEM, "down"), marker)
    await bug.resolve(ticket, make_event(EventKind.RECOVERY, "up"))

    assert await bug.find(marker) == ticket


async def test_status_change_refused_by_the_workflow_is_detected(
    redmine: tuple[RedmineHarness, RedmineFacts],
) -> None:
    """Redmine answers 204 but keeps the status: the read-back catches it."""
    frozen = client(redmine, tracker_id=redmine[1].trackers["No workflow"])
    try:
        marker = new_marker()
        ticket = await frozen.create(make_event(EventKind.PROBLEM, "down"), marker)

        with pytest.raises(PermanentError) as caught:
            await frozen.resolve(ticket, make_event(EventKind.RECOVERY, "up"))

        view = await frozen.get(ticket, marker)
    finally:
        await frozen.close()
    message = str(caught.value)
    assert f"did not change issue {ticket.key} to status 'resolved'" in message
    assert "still 'New'" in message and "workflow" in message
    assert (view.is_open, view.status) == (True, "New")


async def test_marker_field_that_is_not_a_filter_is_a_clear_error(
    redmine: tuple[RedmineHarness, RedmineFacts],
) -> None:
    """Redmine drops the filter and lists every issue: never take the first."""
    plain = client(redmine, custom_field_id=redmine[1].plain_field)
    try:
        await plain.create(make_event(EventKind.PROBLEM, "down"), new_marker())

        with pytest.raises(PermanentError, match="'Used as a filter'"):
            await plain.find(new_marker())
    finally:
        await plain.close()


async def test_unknown_status_name_names_the_known_ones(
    redmine: tuple[RedmineHarness, RedmineFacts],
) -> None:
    odd = client(redmine, resolved_status="Done")
    try:
        marker = new_marker()
        ticket = await odd.create(make_event(EventKind.PROBLEM, "down"), marker)
        with pytest.raises(PermanentError, match="no issue status 'Done'.*'closed'"):
            await odd.resolve(ticket, make_event(EventKind.RECOVERY, "up"))
    finally:
        await odd.close()


async def test_probe_passes_and_a_wrong_api_key_fails_its_credentials(
    redmine: tuple[RedmineHarness, RedmineFacts],
) -> None:
    """The real Redmine answers a wrong key with an empty 401."""
    good = client(redmine)
    wrong = client(redmine, api_key="0" * 40)
    try:
        passed = await good.probe()
        refused = await wrong.probe()
    finally:
        await good.close()
        await wrong.close()

    assert [(r.check, r.ok) for r in passed] == [
        ("credentials", True),
        ("project", True),
        ("statuses", True),
    ], passed
    assert [(r.check, r.ok) for r in refused] == [
        ("credentials", False),
        ("project", False),
        ("statuses", False),
    ]
    assert refused[0].detail.startswith("HTTP 401")
    assert refused[0].detail.endswith("(Redmine refused the api_key)")
    assert not refused[0].transient
