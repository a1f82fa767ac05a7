"""A sandbox on a free loopback port and an authenticated client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from ticketbridge.sandbox import RunningSandbox, SandboxSettings, serve

BASIC = {"Authorization": aiohttp.encode_basic_auth("ops@example.com", "secret")}


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    running = await serve("127.0.0.1", 0, SandboxSettings())
    yield running
    await running.close()


@pytest.fixture
async def client(sandbox: RunningSandbox) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession(sandbox.url, headers=BASIC) as session:
        yield Client(session)


class Client:
    """A thin wrapper that returns (status, parsed body) for each call."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, path, **kwargs) as response:
            text = await response.text()
            is_json = response.content_type == "application/json"
            return response.status, (await response.json() if is_json else text)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.call("PATCH", path, **kwargs)


def adf(text: str) -> dict[str, Any]:
    paragraph = {"type": "paragraph", "content": [{"type": "text", "text": text}]}
    return {"type": "doc", "version": 1, "content": [paragraph]}


def issue_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "project": {"key": "OPS"},
        "issuetype": {"name": "Incident"},
        "summary": "web01 HTTP 503",
        "labels": ["corr-nagios-1"],
    }
    fields.update(overrides)
    return {"fields": fields}
