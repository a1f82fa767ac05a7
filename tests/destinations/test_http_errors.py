"""The shared HTTP layer: every outcome of a request becomes the right error.

`FakeApi` here is the loopback server the client tests of the other modules
script their answers on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.abc
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from tests.helpers import free_port

from ticketbridge.config.model import HttpSettings
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TransientError,
)
from ticketbridge.destinations.http import (
    HttpClient,
    ReadRetry,
    check_marker,
    error_detail,
    parse_retry_after,
)

SECRET = "s3cret-token-value"
PATH = "/api/thing"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# --- the fake API ---------------------------------------------------------------


@dataclass
class Answer:
    """One scripted answer of the fake API."""

    status: int = 200
    json: Any = None
    text: str = ""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer: the client times out
    hang_up: bool = False  # drop the connection once the request is read


@dataclass
class Seen:
    """One request as the fake API received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


class FakeApi:
    """A loopback HTTP server that answers from a script and records requests.

    Answers queued for one method and path are used in order; the last one
    repeats. A request nobody scripted gets 599, which no test expects.
    """

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[Answer]] = {}
        self.seen: list[Seen] = []
        self._release = asyncio.Event()
        self._server: TestServer | None = None

    def on(self, method: str, path: str, *answers: Answer) -> None:
        self.answers.setdefault((method, path), []).extend(answers)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if (s.method, s.path) == (method, path)]

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/"))

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(text) if text else None,
            )
        )

        queue = self.answers.get((request.method, request.path))
        if not queue:
            return web.Response(status=599, text="no answer scripted")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]

        if answer.hang:
            await self._release.wait()
        if answer.hang_up and request.transport is not None:
            request.transport.abort()
        body = json.dumps(answer.json) if answer.json is not None else answer.text
        return web.Response(
            status=answer.status,
            text=body,
            content_type=answer.content_type,
            headers=answer.headers,
        )


class Sleeps:
    """An injected sleep that records the waits instead of taking them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fast_retry(sleeps: Sleeps | None = None) -> ReadRetry:
    return ReadRetry(attempts=3, initial=0.01, maximum=2.0, sleep=sleeps or Sleeps())


# --- fixtures -------------------------------------------------------------------


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
async def client(api: FakeApi, sleeps: Sleeps) -> AsyncIterator[HttpClient]:
    http = make_client(api.url, sleeps=sleeps, timeout=0.5)
    yield http
    await http.close()


def make_client(
    url: str,
    *,
    sleeps: Sleeps | None = None,
    timeout: float = 5.0,
    on_request: Any = None,
    resolver: aiohttp.abc.AbstractResolver | None = None,
    **settings: Any,
) -> HttpClient:
    return HttpClient(
        "dest",
        HttpSettings(url=url, timeout=timeout, **settings),
        headers={"Authorization": f"Bearer {SECRET}"},
        secrets=[SECRET],
        on_request=on_request,
        read_retry=fast_retry(sleeps),
        resolver=resolver,
    )


def at(client: HttpClient) -> str:
    return f"{str(client.settings.url).rstrip('/')}{PATH}"


async def create(client: HttpClient) -> Any:
    return await client.request("create", "POST", at(client), json={"a": 1})


@contextlib.asynccontextmanager
async def serve(handler: Handler, **kwargs: Any) -> AsyncIterator[int]:
    """A raw TCP server on loopback, for what an HTTP server would not do."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0, **kwargs)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def raw_answer(status: int, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


# --- answers --------------------------------------------------------------------


async def test_2xx_json_body_is_returned_parsed(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(201, {"id": "1"}))
    reply = await create(client)
    assert (reply.status, reply.body) == (201, {"id": "1"})


async def test_204_without_body_is_accepted_when_none_expected(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(204))
    reply = await client.request("resolve", "POST", at(client), body="none")
    assert reply.body is None


async def test_html_page_with_200_is_transient(
    api: FakeApi, client: HttpClient
) -> None:
    page = "<html><head><title>Proxy login</title></head><body>x</body></html>"
    api.on("GET", PATH, Answer(200, text=page, content_type="text/html"))
    with pytest.raises(TransientError, match="not JSON.*Proxy login"):
        await client.get("get", at(client))


async def test_html_page_answering_a_write_is_ambiguous(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(200, text="<html></html>", content_type="text/html"))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.ambiguous


@pytest.mark.parametrize("status", [400, 401, 403, 409, 422])
async def test_4xx_is_permanent(api: FakeApi, client: HttpClient, status: int) -> None:
    api.on("POST", PATH, Answer(status, {"errorMessages": ["no"]}))
    with pytest.raises(PermanentError) as caught:
        await create(client)
    assert caught.value.status == status


async def test_404_naming_a_ticket_is_ticket_not_found(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("GET", PATH, Answer(404, {"errorMessages": ["Issue does not exist"]}))
    with pytest.raises(TicketNotFound, match="OPS-1"):
        await client.get("get", at(client), ticket="OPS-1")


async def test_404_of_a_collection_is_permanent_but_not_ticket_not_found(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(404))
    with pytest.raises(PermanentError) as caught:
        await create(client)
    assert not isinstance(caught.value, TicketNotFound)


async def test_redirect_of_a_write_is_permanent_and_not_followed(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(301, headers={"Location": "https://login.example/"}))
    with pytest.raises(PermanentError, match="redirected to login.example"):
        await create(client)
    assert len(api.seen) == 1


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
async def test_429_and_5xx_are_transient(
    api: FakeApi, client: HttpClient, status: int
) -> None:
    api.on("POST", PATH, Answer(status, text="busy", content_type="text/plain"))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.status == status


async def test_429_without_retry_after_has_no_retry_after(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(429))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.retry_after is None


async def test_429_retry_after_seconds_are_kept(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(429, headers={"Retry-After": "17"}))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.retry_after == 17.0


async def test_429_retry_after_zero_is_zero_not_none(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(429, headers={"Retry-After": "0"}))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.retry_after == 0.0


async def test_503_retry_after_http_date_becomes_seconds(
    api: FakeApi, client: HttpClient
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    api.on("POST", PATH, Answer(503, headers={"Retry-After": later}))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.retry_after is not None
    assert 100 < caught.value.retry_after <= 120


def test_retry_after_date_in_the_past_is_zero() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0


@pytest.mark.parametrize("value", ["-5", "soon", "nan", "inf", "", None])
def test_retry_after_that_cannot_be_read_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


async def test_429_on_a_write_is_not_ambiguous(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(429))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert not caught.value.ambiguous


async def test_502_on_a_write_is_ambiguous(api: FakeApi, client: HttpClient) -> None:
    """A gateway may give up after the backend created the ticket."""
    api.on("POST", PATH, Answer(502))
    with pytest.raises(TransientError) as caught:
        await create(client)
    assert caught.value.ambiguous


# --- messages -------------------------------------------------------------------


def test_jira_error_collection_gives_messages_and_field_errors() -> None:
    body = '{"errorMessages":["Bad project"],"errors":{"summary":"too long"}}'
    assert error_detail(body) == "Bad project; summary: too long"


def test_servicenow_error_gives_message_and_detail() -> None:
    body = (
        '{"error":{"message":"User Not Authenticated",'
        '"detail":"Required to provide Auth information"},"status":"failure"}'
    )
    assert error_detail(body) == (
        "User Not Authenticated; Required to provide Auth information"
    )


async def test_error_message_never_contains_the_secret(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(401, {"errorMessages": [f"bad: Bearer {SECRET}"]}))
    with pytest.raises(PermanentError) as caught:
        await create(client)
    assert SECRET not in str(caught.value)
    assert "bad: Bearer ***" in str(caught.value)


async def test_error_message_names_destination_operation_and_status(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(403, {"errorMessages": ["No permission"]}))
    with pytest.raises(PermanentError) as caught:
        await create(client)
    assert str(caught.value) == "dest create: HTTP 403: No permission"


# --- transport failures ---------------------------------------------------------


class FailingResolver(aiohttp.abc.AbstractResolver):
    """Name resolution that fails, or never finishes, without any DNS."""

    def __init__(self, *, stall: bool = False) -> None:
        self.stall = stall

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[aiohttp.abc.ResolveResult]:
        if self.stall:
            await asyncio.sleep(30)
        raise OSError(-2, "Name or service not known")

    async def close(self) -> None:
        return None


async def test_connection_refused_is_transient_and_not_ambiguous() -> None:
    http = make_client(f"http://127.0.0.1:{free_port()}/")
    try:
        with pytest.raises(TransientError, match="cannot connect") as caught:
            await create(http)
    finally:
        await http.close()
    assert not caught.value.ambiguous


async def test_name_resolution_failure_is_transient_and_not_ambiguous() -> None:
    http = make_client("http://tickets.test/", resolver=FailingResolver())
    try:
        with pytest.raises(TransientError, match="cannot resolve") as caught:
            await create(http)
    finally:
        await http.close()
    assert not caught.value.ambiguous


async def test_timeout_before_the_request_was_sent_is_not_ambiguous() -> None:
    http = make_client(
        "http://tickets.test/", timeout=0.2, resolver=FailingResolver(stall=True)
    )
    try:
        with pytest.raises(TransientError) as caught:
            await create(http)
    finally:
        await http.close()
    assert not caught.value.ambiguous


async def test_timeout_after_the_request_was_sent_is_ambiguous(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(hang=True))
    with pytest.raises(TransientError, match="no answer .* within 0.5s") as caught:
        await create(client)
    assert caught.value.ambiguous


async def test_connection_lost_after_the_request_was_sent_is_ambiguous(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("POST", PATH, Answer(hang_up=True))
    with pytest.raises(TransientError, match="connection to .* lost") as caught:
        await create(client)
    assert caught.value.ambiguous


async def test_timeout_of_a_read_is_transient(api: FakeApi, client: HttpClient) -> None:
    api.on("GET", PATH, Answer(hang=True))
    with pytest.raises(TransientError, match="no answer"):
        await client.get("get", at(client))


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        # Debian's openssl package; the TLS behaviour tested here is required.
        pytest.fail("openssl is needed to make a test certificate: install it")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


async def tls_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(Exception):
        await read_head(reader)
        writer.write(raw_answer(200, b'{"ok": true}'))
        await writer.drain()
    writer.close()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_untrusted_certificate_is_permanent_and_names_host(
    tmp_path: Path,
) -> None:
    cert, key = self_signed(tmp_path)
    async with serve(tls_answer, ssl=server_context(cert, key)) as port:
        http = make_client(f"https://127.0.0.1:{port}/")
        try:
            with pytest.raises(PermanentError) as caught:
                await http.get("get", str(http.settings.url))
        finally:
            await http.close()
    assert "TLS certificate verification failed for 127.0.0.1" in str(caught.value)


async def test_ca_bundle_makes_a_private_certificate_trusted(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    async with serve(tls_answer, ssl=server_context(cert, key)) as port:
        http = make_client(f"https://127.0.0.1:{port}/", ca_bundle=cert)
        try:
            reply = await http.get("get", str(http.settings.url))
        finally:
            await http.close()
    assert reply.body == {"ok": True}


async def test_proxy_from_the_environment_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await read_head(reader)).split(b"\r\n")[0])
        writer.write(raw_answer(200, b'{"via": "proxy"}'))
        await writer.drain()
        writer.close()

    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with serve(proxy) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        # Nothing listens on this loopback port: only the proxy can answer.
        target = f"http://127.0.0.2:{free_port()}/api/thing"
        http = make_client(target)
        try:
            reply = await http.get("get", target)
        finally:
            await http.close()
    assert reply.body == {"via": "proxy"}
    assert seen == [f"GET {target} HTTP/1.1".encode()]


async def test_no_proxy_host_goes_direct(
    api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BC-27: a host named in NO_PROXY bypasses the proxy from the environment."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append((await read_head(reader)).split(b"\r\n")[0])
        writer.close()

    api.on("GET", PATH, Answer(200, {"direct": True}))
    async with serve(proxy) as port:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        http = make_client(api.url)
        try:
            reply = await http.get("get", at(http))
        finally:
            await http.close()
    assert reply.body == {"direct": True}
    assert seen == []


# --- retries of reads -----------------------------------------------------------


async def test_read_is_retried_after_a_transient_failure(
    api: FakeApi, client: HttpClient, sleeps: Sleeps
) -> None:
    api.on("GET", PATH, Answer(503), Answer(200, {"ok": 1}))
    reply = await client.get("get", at(client))
    assert reply.body == {"ok": 1}
    assert len(sleeps.waits) == 1


async def test_read_retry_waits_at_least_retry_after(
    api: FakeApi, client: HttpClient, sleeps: Sleeps
) -> None:
    api.on("GET", PATH, Answer(429, headers={"Retry-After": "1.5"}), Answer(200, {}))
    await client.get("get", at(client))
    assert sleeps.waits[0] >= 1.5


async def test_read_gives_up_after_the_configured_attempts(
    api: FakeApi, client: HttpClient, sleeps: Sleeps
) -> None:
    api.on("GET", PATH, Answer(500))
    with pytest.raises(TransientError):
        await client.get("get", at(client))
    assert len(api.seen) == 3
    assert len(sleeps.waits) == 2


async def test_read_does_not_wait_out_a_long_retry_after(
    api: FakeApi, client: HttpClient, sleeps: Sleeps
) -> None:
    """A long pause is the sender's to take, for the whole destination."""
    api.on("GET", PATH, Answer(429, headers={"Retry-After": "60"}))
    with pytest.raises(TransientError) as caught:
        await client.get("get", at(client))
    assert caught.value.retry_after == 60.0
    assert sleeps.waits == []


async def test_permanent_read_failure_is_not_retried(
    api: FakeApi, client: HttpClient
) -> None:
    api.on("GET", PATH, Answer(401))
    with pytest.raises(PermanentError):
        await client.get("get", at(client))
    assert len(api.seen) == 1


async def test_write_is_never_retried_by_the_client(
    api: FakeApi, client: HttpClient, sleeps: Sleeps
) -> None:
    api.on("POST", PATH, Answer(503), Answer(201, {}))
    with pytest.raises(TransientError):
        await create(client)
    assert len(api.seen) == 1
    assert sleeps.waits == []


# --- observer -------------------------------------------------------------------


async def test_observer_gets_destination_operation_status_and_duration(
    api: FakeApi,
) -> None:
    seen: list[tuple[Any, ...]] = []
    api.on("POST", PATH, Answer(201, {}))
    http = make_client(api.url, on_request=lambda *args: seen.append(args))
    try:
        await create(http)
    finally:
        await http.close()
    [(destination, operation, status, seconds)] = seen
    assert (destination, operation, status) == ("dest", "create", 201)
    assert seconds >= 0


async def test_observer_gets_no_status_when_no_answer_came() -> None:
    seen: list[tuple[Any, ...]] = []
    http = make_client(
        f"http://127.0.0.1:{free_port()}/", on_request=lambda *a: seen.append(a)
    )
    try:
        with pytest.raises(TransientError):
            await create(http)
    finally:
        await http.close()
    assert seen[0][2] is None


async def test_failing_observer_does_not_fail_the_request(api: FakeApi) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("metrics down")

    api.on("POST", PATH, Answer(201, {"id": "1"}))
    http = make_client(api.url, on_request=broken)
    try:
        reply = await create(http)
    finally:
        await http.close()
    assert reply.body == {"id": "1"}


# --- marker ---------------------------------------------------------------------


@pytest.mark.parametrize("marker", ['tb"x', "tb x", "tb^x", "", "tb-é"])
def test_marker_outside_the_safe_charset_is_refused(marker: str) -> None:
    with pytest.raises(ValueError, match="marker"):
        check_marker(marker)
