"""Scripted failures: the next matching requests get errors, delays or hang-ups.

A test posts a rule naming which requests it matches and a list of scripted
responses. Each matching request consumes the next one; once the list is
used up, the rule stops matching and the sandbox behaves normally again.
A rule with `for_seconds` is an outage instead: for that long every matching
request gets the responses in turn, over and over, then the rule ends.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ticketbridge.sandbox import jira, servicenow, zendesk

_RESPONSE_KEYS = {"status", "headers", "body", "delay", "reset", "html", "hang"}
_LOGIN_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in</title></head>"
    "<body><h1>Sign in to continue</h1><form method='post'>"
    "<input name='username'><input name='password' type='password'>"
    "</form></body></html>"
)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Scripted:
    """One scripted response. `reset` hangs up before or after the server acts.

    `delay` waits before the server acts (a late answer); `hang` waits after
    it acted, so a client that gives up first loses the answer of a write
    that happened.
    """

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    reset: str | None = None
    html: bool = False
    hang: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": self.headers,
            "body": self.body,
            "delay": self.delay,
            "reset": self.reset,
            "html": self.html,
            "hang": self.hang,
        }

    @property
    def label(self) -> str:
        """A short name of the fault for the request log."""
        if self.reset:
            return f"reset-{self.reset}"
        if self.html:
            return "html"
        if self.status:
            return f"status-{self.status}"
        if self.hang:
            return "hang"
        return "delay"


@dataclass
class Rule:
    id: int
    method: str | None
    path_regex: re.Pattern[str] | None
    responses: deque[Scripted]
    until: float | None = None  # monotonic end of an outage rule

    def matches(self, method: str, path: str) -> bool:
        return (
            bool(self.responses)
            and (self.until is None or time.monotonic() < self.until)
            and self.method in (None, method)
            and (self.path_regex is None or self.path_regex.search(path) is not None)
        )

    def take(self) -> Scripted:
        if self.until is None:
            return self.responses.popleft()
        self.responses.rotate(-1)
        return self.responses[-1]

    def as_json(self) -> dict[str, Any]:
        pattern = self.path_regex.pattern if self.path_regex else None
        left = None if self.until is None else max(0.0, self.until - time.monotonic())
        return {
            "id": self.id,
            "match": {"method": self.method, "path_regex": pattern},
            "remaining": [r.as_json() for r in self.responses],
            "seconds_left": left,
        }


class FaultScript:
    """The rules in force, first added first consulted."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._next_id = 1

    def add(self, spec: object) -> Rule:
        """Add a rule from its JSON form; ValueError says what is wrong with it."""
        if not isinstance(spec, dict):
            raise ValueError("the body must be a JSON object")
        match = spec.get("match") or {}
        responses = spec.get("responses")
        if not isinstance(match, dict):
            raise ValueError("match must be an object")
        if not isinstance(responses, list) or not responses:
            raise ValueError("responses must be a non-empty list")
        method = match.get("method")
        if method is not None and not isinstance(method, str):
            raise ValueError("match.method must be a string")
        seconds = spec.get("for_seconds")
        if seconds is not None and (
            not isinstance(seconds, int | float)
            or isinstance(seconds, bool)
            or seconds <= 0
        ):
            raise ValueError("for_seconds must be a positive number")
        rule = Rule(
            id=self._next_id,
            method=method.upper() if method else None,
            path_regex=_compile(match.get("path_regex")),
            responses=deque(_scripted(r) for r in responses),
            until=None if seconds is None else time.monotonic() + float(seconds),
        )
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> Scripted | None:
        rule = next((r for r in self.rules if r.matches(method, path)), None)
        return rule.take() if rule else None

    def clear(self) -> None:
        self.rules.clear()


FAULTS = web.AppKey("sandbox_faults", FaultScript)


async def perform(
    fault: Scripted, request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Answer `request` as scripted, calling `handler` only if the script acts."""
    if fault.delay:
        # Read the body first: the request has fully arrived, and a client
        # that gives up meanwhile does not stop it being acted on, which is
        # the ambiguous-timeout case. aiohttp keeps the body for the handler.
        await request.read()
        await asyncio.sleep(fault.delay)
    if fault.reset == "before":
        return _hang_up(request)
    if fault.html:
        return web.Response(
            status=fault.status or 200,
            text=_LOGIN_PAGE,
            content_type="text/html",
            headers=fault.headers,
        )
    if fault.status:
        return _scripted_error(request.path, fault)
    response = await handler(request)
    if fault.hang:
        await asyncio.sleep(fault.hang)
    return _hang_up(request) if fault.reset == "after" else response


def routes() -> list[web.RouteDef]:
    return [
        web.post("/_sandbox/faults", add_fault),
        web.get("/_sandbox/faults", list_faults),
        web.delete("/_sandbox/faults", clear_faults),
    ]


async def add_fault(request: web.Request) -> web.Response:
    try:
        rule = request.app[FAULTS].add(await request.json())
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(rule.as_json(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    rules = [r.as_json() for r in request.app[FAULTS].rules]
    return web.json_response({"faults": rules})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.Response(status=204)


def _hang_up(request: web.Request) -> web.Response:
    """Close the connection; aiohttp then finds it gone and writes nothing."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


def _scripted_error(path: str, fault: Scripted) -> web.Response:
    """A scripted status with a body shaped like the imitated system's."""
    status = fault.status or 500
    if fault.body is not None:
        response = web.Response(
            status=status, text=json.dumps(fault.body), content_type="application/json"
        )
    elif path.startswith("/rest/api/"):
        response = jira.error(status, [_reason(status)])
    elif path.startswith("/api/now/"):
        response = servicenow.error(status, *_servicenow_reason(status))
    elif path.startswith("/api/v2/"):
        response = zendesk.scripted_error(status)
    else:
        response = web.json_response({"error": _reason(status)}, status=status)
    response.headers.update(fault.headers)
    return response


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _servicenow_reason(status: int) -> tuple[str, str | None]:
    if status == 429:
        return (
            "Rate limit exceeded",
            "Rate limit of 100 requests per hour for Table API exceeded",
        )
    return _reason(status), None


def _compile(pattern: object) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise ValueError("match.path_regex must be a string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"match.path_regex is invalid: {exc}") from exc


def _scripted(spec: object) -> Scripted:
    if not isinstance(spec, dict):
        raise ValueError("each response must be an object")
    unknown = set(spec) - _RESPONSE_KEYS
    if unknown:
        raise ValueError(f"unknown response keys: {sorted(unknown)}")
    status = spec.get("status")
    if status is not None and (not isinstance(status, int) or not 100 <= status < 600):
        raise ValueError("status must be an HTTP status code")
    delay = spec.get("delay", 0.0)
    if not isinstance(delay, int | float) or delay < 0:
        raise ValueError("delay must be a non-negative number of seconds")
    reset = spec.get("reset")
    if reset not in (None, "before", "after"):
        raise ValueError('reset must be "before" or "after"')
    hang = spec.get("hang", 0.0)
    if not isinstance(hang, int | float) or hang < 0:
        raise ValueError("hang must be a non-negative number of seconds")
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError("headers must be an object")
    return Scripted(
        status=status,
        headers={str(k): str(v) for k, v in headers.items()},
        body=spec.get("body"),
        delay=float(delay),
        reset=reset,
        html=bool(spec.get("html", False)),
        hang=float(hang),
    )
