"""Our Request Tracker client against a real RT 5 from Debian's packages.

One RT serves the whole test session (preparing it takes seconds and it
holds ~600 MB); each test makes its own tickets with its own marker.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from ticketbridge.config.model import RequestTrackerSettings
from ticketbridge.destinations.base import PermanentError, TicketNotFound, TicketRef
from ticketbridge.destinations.http import ReadRetry
from ticketbridge.destinations.request_tracker import RequestTrackerDestination
from ticketbridge.events import Event, EventKind

from .request_tracker import (
    RequestTrackerError,
    RequestTrackerFacts,
    RequestTrackerHarness,
    require_request_tracker,
    rt_workdir,
)

pytestmark = pytest.mark.realsystem

RealRT = tuple[RequestTrackerHarness, RequestTrackerFacts]

_markers = itertools.count(1)


@pytest.fixture(scope="session")
def real_rt() -> Iterator[RealRT]:
    """A missing RT fails the tests, it is not skipped: `make test` installs it."""
    try:
        require_request_tracker()
    except RequestTrackerError as exc:
        pytest.fail(str(exc), pytrace=False)

    with rt_workdir() as workdir:
        harness = RequestTrackerHarness(workdir)
        facts = harness.prepare()
        with harness:
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in harness.timings.items())
            print(
                f"\nrt harness: {timings}, {harness.resident_mb():.0f} MB resident",
                file=sys.stderr,
            )
            yield harness, facts


def client(real_rt: RealRT, **changes: Any) -> RequestTrackerDestination:
    harness, facts = real_rt
    fields: dict[str, Any] = {
        "type": "request_tracker",
        "url": harness.url,
        "token": facts.token,
        "queue": facts.queue,
        "custom_field": facts.custom_field,
    }
    fields.update(changes)
    return RequestTrackerDestination(
        "rt", RequestTrackerSettings(**fields), read_retry=ReadRetry(initial=0.1)
    )


@pytest.fixture
async def rt(real_rt: RealRT) -> AsyncIterator[RequestTrackerDestination]:
    destination = client(real_rt)
    yield destination
    await destination.close()


def new_marker() -> str:
    return f"tb-rt-{datetime.now(UTC):%H%M%S}-{next(_markers)}"


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


async def comments_of(real_rt: RealRT, ticket: TicketRef) -> list[str]:
    """The texts of the ticket's comments, read with a plain HTTP client."""
    harness, facts = real_rt
    api = f"{harness.url}/REST/2.0"
    headers = {"Authorization": f"token {facts.token}"}
    texts: list[str] = []
    async with aiohttp.ClientSession(headers=headers) as session:
        history_url = f"{api}/ticket/{ticket.id}/history"
        async with session.get(history_url, params={"fields": "Type"}) as response:
            history = await response.json()
        for item in history["items"]:
            if item["Type"] != "Comment":
                continue
            parts_url = f"{api}/transaction/{item['id']}/attachments"
            params = {"fields": "Content"}
            async with session.get(parts_url, params=params) as response:
                parts = await response.json()
            texts.extend(part["Content"] for part in parts["items"])
    return texts


async def test_ticket_is_created_with_the_marker_and_found_by_it(
    rt: RequestTrackerDestination,
) -> None:
    marker = new_marker()

    ticket = await rt.create(make_event(EventKind.PROBLEM, "down"), marker)

    view = await rt.get(ticket, marker)
    assert (view.marker_present, view.is_open, view.status) == (True, True, "new")
    assert await rt.find(marker) == ticket


async def test_find_of_an_unknown_marker_is_none(rt: RequestTrackerDestination) -> None:
    assert await rt.find(new_marker()) is None


async def test_another_tickets_marker_is_not_reported_present(
    rt: RequestTrackerDestination,
) -> None:
    ticket = await rt.create(make_event(EventKind.PROBLEM, "down"), new_marker())

    assert not (await rt.get(ticket, new_marker())).marker_present


async def test_comment_resolve_and_reopen_each_read_back(
    real_rt: RealRT, rt: RequestTrackerDestination
) -> None:
    marker = new_marker()
    ticket = await rt.create(make_event(EventKind.PROBLEM, "down"), marker)

    await rt.comment(ticket, make_event(EventKind.UPDATE, "still down"))
    assert any("still down" in c for c in await comments_of(real_rt, ticket))

    await rt.resolve(ticket, make_event(EventKind.RECOVERY, "up again"))
    resolved = await rt.get(ticket, marker)
    assert (resolved.is_open, resolved.status) == (False, "resolved")
    assert any("up again" in c for c in await comments_of(real_rt, ticket))

    await rt.reopen(ticket, make_event(EventKind.PROBLEM, "down again"))
    reopened = await rt.get(ticket, marker)
    assert (reopened.marker_present, reopened.is_open, reopened.status) == (
        True,
        True,
        "open",
    )
    assert any("down again" in c for c in await comments_of(real_rt, ticket))


async def test_resolved_ticket_is_still_found_by_its_marker(
    rt: RequestTrackerDestination,
) -> None:
    marker = new_marker()
    ticket = await rt.create(make_event(EventKind.PROBLEM, "down"), marker)
    await rt.resolve(ticket, make_event(EventKind.RECOVERY, "up"))

    assert await rt.find(marker) == ticket


async def test_resolve_of_a_resolved_ticket_adds_only_its_note(
    real_rt: RealRT, rt: RequestTrackerDestination
) -> None:
    """A retry after a lost answer: the status stays, the recovery text lands."""
    marker = new_marker()
    ticket = await rt.create(make_event(EventKind.PROBLEM, "down"), marker)
    await rt.resolve(ticket, make_event(EventKind.RECOVERY, "up"))

    await rt.resolve(ticket, make_event(EventKind.RECOVERY, "up twice"))

    assert (await rt.get(ticket, marker)).status == "resolved"
    assert any("up twice" in c for c in await comments_of(real_rt, ticket))


async def test_status_outside_the_lifecycle_is_a_clear_error(real_rt: RealRT) -> None:
    """RT answers 200 with "isn't a valid status": the read-back catches it."""
    odd = client(real_rt, resolved_status="done")
    try:
        marker = new_marker()
        ticket = await odd.create(make_event(EventKind.PROBLEM, "down"), marker)

        with pytest.raises(PermanentError) as caught:
            await odd.resolve(ticket, make_event(EventKind.RECOVERY, "up"))

        view = await odd.get(ticket, marker)
    finally:
        await odd.close()
    message = str(caught.value)
    assert f"did not set ticket {ticket.key} to status 'done'" in message
    assert "still 'new'" in message
    assert "Status 'done' isn't a valid status for this ticket" in message
    assert (view.is_open, view.status) == (True, "new")


async def test_status_name_in_other_letter_case_is_accepted(real_rt: RealRT) -> None:
    capital = client(real_rt, resolved_status="Resolved", reopened_status="Open")
    try:
        marker = new_marker()
        ticket = await capital.create(make_event(EventKind.PROBLEM, "down"), marker)

        await capital.resolve(ticket, make_event(EventKind.RECOVERY, "up"))
        assert not (await capital.get(ticket, marker)).is_open
        await capital.reopen(ticket, make_event(EventKind.PROBLEM, "down"))
        assert (await capital.get(ticket, marker)).status == "open"
    finally:
        await capital.close()


async def test_unknown_custom_field_leaves_the_ticket_without_the_marker(
    real_rt: RealRT,
) -> None:
    """RT creates the ticket and only logs the field; get() must say so."""
    wrong = client(real_rt, custom_field="No such field")
    try:
        marker = new_marker()
        ticket = await wrong.create(make_event(EventKind.PROBLEM, "down"), marker)

        assert not (await wrong.get(ticket, marker)).marker_present
    finally:
        await wrong.close()


async def test_missing_ticket_is_ticket_not_found(
    rt: RequestTrackerDestination,
) -> None:
    missing = TicketRef("999999", "999999")

    with pytest.raises(TicketNotFound):
        await rt.get(missing, new_marker())
    with pytest.raises(TicketNotFound):
        await rt.reopen(missing, make_event(EventKind.PROBLEM, "down"))


async def test_probe_passes_with_the_token_and_queue(
    rt: RequestTrackerDestination,
) -> None:
    results = await rt.probe()

    assert [(r.check, r.ok) for r in results] == [
        ("credentials", True),
        ("queue", True),
    ]


async def test_probe_names_a_missing_queue(real_rt: RealRT) -> None:
    nowhere = client(real_rt, queue="No such queue")
    try:
        results = await nowhere.probe()
    finally:
        await nowhere.close()

    assert [(r.check, r.ok) for r in results] == [
        ("credentials", True),
        ("queue", False),
    ]


async def test_custom_field_named_in_other_letter_case_carries_the_marker(
    real_rt: RealRT,
) -> None:
    """RT looks a custom field up by name regardless of case."""
    lower = client(real_rt, custom_field=real_rt[1].custom_field.lower())
    try:
        marker = new_marker()
        ticket = await lower.create(make_event(EventKind.PROBLEM, "down"), marker)

        assert (await lower.get(ticket, marker)).marker_present
        assert await lower.find(marker) == ticket
    finally:
        await lower.close()


async def test_wrong_token_is_a_permanent_error_without_the_token(
    real_rt: RealRT,
) -> None:
    wrong_token = "1-14-00000000000000000000000000000000"
    stranger = client(real_rt, token=wrong_token)
    try:
        with pytest.raises(PermanentError, match="401") as caught:
            await stranger.create(make_event(EventKind.PROBLEM, "down"), new_marker())
    finally:
        await stranger.close()
    assert wrong_token not in str(caught.value)


async def test_long_non_ascii_summary_arrives_whole_in_the_body(
    real_rt: RealRT, rt: RequestTrackerDestination
) -> None:
    summary = "Dienst außer Betrieb – 東京 " + "x" * 300
    ticket = await rt.create(make_event(EventKind.PROBLEM, summary), new_marker())

    harness, facts = real_rt
    headers = {"Authorization": f"token {facts.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        url = f"{harness.url}/REST/2.0/ticket/{ticket.id}"
        async with session.get(url) as response:
            subject = (await response.json())["Subject"]
        url = f"{url}/attachments"
        async with session.get(url, params={"fields": "Content"}) as response:
            parts = (await response.json())["items"]
    assert subject.startswith("[CRITICAL] web01/HTTP: Dienst außer Betrieb – 東京 x")
    assert len(subject) <= 200
    assert any(summary in part["Content"] for part in parts)


async def test_status_change_without_the_right_is_a_clear_error(
    real_rt: RealRT,
) -> None:
    """RT answers 200 with "Permission Denied"; the read-back catches it."""
    limited = client(real_rt, token=real_rt[1].limited_token)
    try:
        marker = new_marker()
        ticket = await limited.create(make_event(EventKind.PROBLEM, "down"), marker)
        await limited.comment(ticket, make_event(EventKind.UPDATE, "still down"))

        with pytest.raises(PermanentError) as caught:
            await limited.resolve(ticket, make_event(EventKind.RECOVERY, "up"))

        view = await limited.get(ticket, marker)
    finally:
        await limited.close()
    message = str(caught.value)
    assert f"did not set ticket {ticket.key} to status 'resolved'" in message
    assert "Permission Denied" in message and "token user's rights" in message
    assert (view.marker_present, view.is_open, view.status) == (True, True, "new")
