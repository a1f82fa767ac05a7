"""The webhook client against a loopback receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from test_http_errors import Answer, FakeApi, Sleeps, fast_retry

from ticketbridge.config.model import WebhookSettings
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TicketRef,
    TransientError,
)
from ticketbridge.destinations.webhook import WebhookDestination
from ticketbridge.events import Event, EventKind

TOKEN = "hook-bearer-token-1"
API_KEY = "hdr-secret-789"
MARKER = "tb-0123456789abcdef0123"
HOOK = "/hooks/Xy7SecretPath"
VERIFY = "/verify"
TICKET = TicketRef("rcv-9", MARKER)


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    fake = FakeApi()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def hook(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[WebhookDestination]:
    client = make_hook(api, sleeps, verify=True)
    yield client
    await client.close()


@pytest.fixture
async def blind(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[WebhookDestination]:
    """A webhook without a verify URL."""
    client = make_hook(api, sleeps, verify=False)
    yield client
    await client.close()


def make_hook(api: FakeApi, sleeps: Sleeps, *, verify: bool) -> WebhookDestination:
    base = api.url.rstrip("/")
    settings = WebhookSettings(
        type="webhook",
        url=f"{base}{HOOK}",
        verify_url=f"{base}{VERIFY}" if verify else None,
        token=TOKEN,
        headers={"X-Api-Key": API_KEY},
        timeout=0.5,
    )
    return WebhookDestination("hook", settings, read_retry=fast_retry(sleeps))


def make_event(**changes: Any) -> Event:
    fields: dict[str, Any] = {
        "source": "nagios",
        "source_event_id": "42",
        "kind": EventKind.PROBLEM,
        "severity": "warning",
        "host": "web01",
        "check": "http",
        "summary": "Slow",
        "details": "",
        "occurred_at": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    fields.update(changes)
    return Event(**fields)


# --- create, comment, resolve -----------------------------------------------------


async def test_create_posts_operation_marker_and_event_fields(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(201, {"id": "rcv-9"}))
    await hook.create(make_event(), MARKER)
    body = api.seen[0].json
    assert (body["operation"], body["marker"], body["ticket"]) == (
        "create",
        MARKER,
        None,
    )
    assert (body["host"], body["check"], body["source_event_id"]) == (
        "web01",
        "http",
        "42",
    )


async def test_preview_is_the_body_create_would_post_and_sends_nothing(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(201, {"id": "rcv-9"}))
    previewed = await hook.preview(make_event(), MARKER)
    assert api.seen == []

    await hook.create(make_event(), MARKER)
    assert api.seen[0].json == previewed


async def test_create_sends_the_idempotency_key(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(201, {"id": "rcv-9"}))
    await hook.create(make_event(), MARKER)
    assert api.seen[0].headers["Idempotency-Key"] == f"{MARKER}:create:42"


async def test_idempotency_key_keeps_odd_event_ids_printable(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(204))
    await hook.create(make_event(source_event_id="a:b\nc d"), MARKER)
    assert api.seen[0].headers["Idempotency-Key"] == f"{MARKER}:create:a%3Ab%0Ac%20d"


async def test_requests_carry_bearer_token_and_extra_headers(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(204))
    await hook.create(make_event(), MARKER)
    headers = api.seen[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-Api-Key"] == API_KEY


async def test_create_returns_the_receivers_id_and_the_marker_as_key(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(201, {"id": "rcv-9"}))
    assert await hook.create(make_event(), MARKER) == TicketRef("rcv-9", MARKER)


async def test_create_answered_without_an_id_uses_the_marker(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(204))
    assert await hook.create(make_event(), MARKER) == TicketRef(MARKER, MARKER)


async def test_create_answered_with_plain_text_ok_succeeds(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(200, text="ok", content_type="text/plain"))
    assert await hook.create(make_event(), MARKER) == TicketRef(MARKER, MARKER)


async def test_comment_posts_operation_comment_with_the_ticket(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(200, {}))
    await hook.comment(TICKET, make_event(source_event_id="43"))
    request = api.seen[0]
    assert request.json["operation"] == "comment"
    assert request.json["ticket"] == {"id": "rcv-9", "key": MARKER}
    assert request.headers["Idempotency-Key"] == f"{MARKER}:comment:43"


async def test_resolve_posts_operation_resolve(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(200, {}))
    await hook.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    assert api.seen[0].json["operation"] == "resolve"


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (Answer(400, {"message": "bad payload"}), PermanentError),
        (Answer(401), PermanentError),
        (Answer(403), PermanentError),
        (Answer(404), PermanentError),
        (Answer(409), PermanentError),
        (Answer(429), TransientError),
        (Answer(500), TransientError),
        (Answer(503, headers={"Retry-After": "5"}), TransientError),
        (Answer(200, text="<html/>", content_type="text/html"), TransientError),
        (Answer(hang=True), TransientError),
        (Answer(hang_up=True), TransientError),
    ],
    ids=lambda v: repr(v)[:60] if isinstance(v, Answer) else v.__name__,
)
async def test_create_answer_maps_to_the_right_error(
    api: FakeApi,
    hook: WebhookDestination,
    answer: Answer,
    error: type[Exception],
) -> None:
    api.on("POST", HOOK, answer)
    with pytest.raises(error):
        await hook.create(make_event(), MARKER)


async def test_a_404_of_the_hook_url_is_not_ticket_not_found(
    api: FakeApi, hook: WebhookDestination
) -> None:
    """A missing hook is a misconfiguration, not a missing ticket."""
    api.on("POST", HOOK, Answer(404))
    with pytest.raises(PermanentError) as caught:
        await hook.comment(TICKET, make_event())
    assert not isinstance(caught.value, TicketNotFound)


async def test_error_message_never_contains_token_header_or_secret_url(
    api: FakeApi, hook: WebhookDestination
) -> None:
    url = str(hook.settings.url)
    echo = {"message": f"denied {url} with {TOKEN} and {API_KEY}"}
    api.on("POST", HOOK, Answer(403, echo))
    with pytest.raises(PermanentError) as caught:
        await hook.create(make_event(), MARKER)
    message = str(caught.value)
    assert TOKEN not in message and API_KEY not in message
    assert "Xy7SecretPath" not in message


async def test_create_refuses_a_marker_outside_the_charset(
    api: FakeApi, hook: WebhookDestination
) -> None:
    with pytest.raises(ValueError):
        await hook.create(make_event(), "tb\r\nX-Evil: 1")
    assert api.seen == []


# --- find and get -----------------------------------------------------------------


async def test_find_without_a_verify_url_finds_nothing(
    api: FakeApi, blind: WebhookDestination
) -> None:
    assert await blind.find(MARKER) is None
    assert api.seen == []


async def test_find_asks_the_verify_url_for_the_marker(
    api: FakeApi, hook: WebhookDestination
) -> None:
    stored = {"operation": "create", "marker": MARKER, "id": "rcv-9"}
    api.on("GET", f"{VERIFY}/{MARKER}", Answer(200, stored))
    assert await hook.find(MARKER) == TicketRef("rcv-9", MARKER)


async def test_find_of_an_unknown_marker_is_none(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("GET", f"{VERIFY}/{MARKER}", Answer(404))
    assert await hook.find(MARKER) is None


async def test_get_reports_the_last_operation_the_receiver_stored(
    api: FakeApi, hook: WebhookDestination
) -> None:
    stored = {"operation": "comment", "marker": MARKER}
    api.on("GET", f"{VERIFY}/{MARKER}", Answer(200, stored))
    view = await hook.get(TICKET, MARKER)
    assert (view.marker_present, view.is_open, view.status) == (
        True,
        True,
        "comment",
    )


async def test_get_after_a_stored_resolve_is_not_open(
    api: FakeApi, hook: WebhookDestination
) -> None:
    stored = {"operation": "resolve", "marker": MARKER}
    api.on("GET", f"{VERIFY}/{MARKER}", Answer(200, stored))
    assert not (await hook.get(TICKET, MARKER)).is_open


async def test_get_of_a_payload_with_another_marker_reports_it_missing(
    api: FakeApi, hook: WebhookDestination
) -> None:
    stored = {"operation": "create", "marker": "tb-other"}
    api.on("GET", f"{VERIFY}/{MARKER}", Answer(200, stored))
    assert not (await hook.get(TICKET, MARKER)).marker_present


async def test_get_of_an_unknown_marker_is_ticket_not_found(
    api: FakeApi, hook: WebhookDestination
) -> None:
    api.on("GET", f"{VERIFY}/{MARKER}", Answer(404))
    with pytest.raises(TicketNotFound):
        await hook.get(TICKET, MARKER)


async def test_get_without_a_verify_url_is_unverifiable(
    api: FakeApi, blind: WebhookDestination
) -> None:
    view = await blind.get(TICKET, MARKER)
    assert (view.marker_present, view.is_open, view.status) == (
        True,
        True,
        "unverifiable",
    )
    assert api.seen == []


async def test_get_without_a_verify_url_infers_resolved_from_the_last_post(
    api: FakeApi, blind: WebhookDestination
) -> None:
    api.on("POST", HOOK, Answer(204))
    await blind.resolve(TICKET, make_event(kind=EventKind.RECOVERY))
    assert not (await blind.get(TICKET, MARKER)).is_open


def test_build_destination_makes_a_webhook_client() -> None:
    settings = WebhookSettings(type="webhook", url="http://127.0.0.1:9/hook")
    assert isinstance(build_destination("hook", settings), WebhookDestination)
