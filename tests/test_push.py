"""The heartbeat push, against a receiver on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from tests.integration.processes import free_port
from ticketbridge.config.model import HealthSettings
from ticketbridge.push import HeartbeatPush

SECRET = "push-s3cret-password"


@dataclass
class Receiver:
    """Records each request; answers `status` after `delay` seconds."""

    url: str = ""
    status: int = 200
    delay: float = 0.0
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "authorization": request.headers.get("Authorization", ""),
            }
        )
        await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


class Failures:
    def __init__(self) -> None:
        self.count = 0

    def inc(self) -> None:
        self.count += 1


async def eventually(check: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def settings(url: str, **more: Any) -> HealthSettings:
    return HealthSettings(push_url=url, **more)


async def test_healthy_cycle_sends_a_get_to_the_push_url(receiver: Receiver) -> None:
    failures = Failures()
    push = HeartbeatPush(failures.inc)

    push.after_healthy_cycle(settings(f"{receiver.url}/ping/abc"), poll_interval=10)
    await eventually(lambda: receiver.seen)
    await push.close()

    assert receiver.seen == [
        {"method": "GET", "path": "/ping/abc", "authorization": ""}
    ]
    assert failures.count == 0


async def test_push_method_post_is_honoured(receiver: Receiver) -> None:
    push = HeartbeatPush(Failures().inc)

    push.after_healthy_cycle(
        settings(receiver.url, push_method="POST"), poll_interval=10
    )
    await eventually(lambda: receiver.seen)
    await push.close()

    assert receiver.seen[0]["method"] == "POST"


async def test_credentials_in_the_url_are_sent_as_basic_auth(
    receiver: Receiver,
) -> None:
    push = HeartbeatPush(Failures().inc)
    url = receiver.url.replace("http://", f"http://bridge:{SECRET}@")

    push.after_healthy_cycle(settings(url), poll_interval=10)
    await eventually(lambda: receiver.seen)
    await push.close()

    assert receiver.seen[0]["authorization"].startswith("Basic ")


async def test_no_second_push_before_the_interval_has_passed(
    receiver: Receiver,
) -> None:
    push = HeartbeatPush(Failures().inc)
    config = settings(receiver.url, push_interval=0.3)

    push.after_healthy_cycle(config, poll_interval=10)
    await eventually(lambda: len(receiver.seen) == 1)
    push.after_healthy_cycle(config, poll_interval=10)
    await asyncio.sleep(0.1)
    assert len(receiver.seen) == 1

    await asyncio.sleep(0.3)
    push.after_healthy_cycle(config, poll_interval=10)
    await eventually(lambda: len(receiver.seen) == 2)
    await push.close()


async def test_push_interval_defaults_to_the_poll_interval(
    receiver: Receiver,
) -> None:
    push = HeartbeatPush(Failures().inc)
    config = settings(receiver.url)

    push.after_healthy_cycle(config, poll_interval=0.2)
    await eventually(lambda: len(receiver.seen) == 1)
    await asyncio.sleep(0.25)
    push.after_healthy_cycle(config, poll_interval=0.2)
    await eventually(lambda: len(receiver.seen) == 2)
    await push.close()


async def test_error_answer_is_counted_and_logged_without_credentials(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    failures = Failures()
    push = HeartbeatPush(failures.inc)
    url = receiver.url.replace("http://", f"http://bridge:{SECRET}@")

    with caplog.at_level(logging.DEBUG, logger="ticketbridge.push"):
        push.after_healthy_cycle(settings(f"{url}/p?key={SECRET}"), poll_interval=10)
        await eventually(lambda: failures.count == 1)
    await push.close()

    [record] = [r for r in caplog.records if r.name == "ticketbridge.push"]
    assert record.getMessage() == "heartbeat push failed: status 500"
    assert record.__dict__["target"] == receiver.url
    assert SECRET not in caplog.text
    assert SECRET not in str(record.__dict__)


async def test_push_that_gets_no_answer_times_out_and_is_counted(
    receiver: Receiver,
) -> None:
    receiver.delay = 1
    failures = Failures()
    push = HeartbeatPush(failures.inc)

    push.after_healthy_cycle(settings(receiver.url, push_timeout=0.2), poll_interval=10)
    await eventually(lambda: failures.count == 1, within=3)
    await push.close()


async def test_unreachable_push_target_is_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = Failures()
    push = HeartbeatPush(failures.inc)
    url = f"http://bridge:{SECRET}@127.0.0.1:{free_port()}/p"
    config = settings(url, push_interval=0.05)

    with caplog.at_level(logging.DEBUG, logger="ticketbridge.push"):
        for expected in (1, 2):
            await asyncio.sleep(0.06)
            push.after_healthy_cycle(config, poll_interval=10)
            await eventually(lambda n=expected: failures.count == n)
    await push.close()

    lines = [r.getMessage() for r in caplog.records if r.name == "ticketbridge.push"]
    assert lines == ["heartbeat push failed: ClientConnectorError"]
    assert SECRET not in caplog.text


async def test_without_push_url_nothing_is_sent(receiver: Receiver) -> None:
    push = HeartbeatPush(Failures().inc)

    push.after_healthy_cycle(HealthSettings(), poll_interval=10)
    await asyncio.sleep(0.1)
    await push.close()

    assert receiver.seen == []
