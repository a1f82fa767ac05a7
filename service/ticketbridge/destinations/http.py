"""The HTTP layer every destination client shares.

One `HttpClient` per destination owns one aiohttp session. Every outcome of a
request becomes either a `Reply` or one of the errors of `base.py`:

    DestinationError
    ├── TransientError   429, 408, 5xx, a 2xx body that is not the JSON
    │                    expected, connection refused, DNS failure, timeouts,
    │                    resets. `ambiguous` is set when the request may have
    │                    been acted on; `retry_after` when the server asked.
    └── PermanentError   any other 4xx, a redirect of a write, a TLS
        │                certificate that fails verification.
        └── TicketNotFound   404 on a request that names a ticket.

Reads (GET) are retried here a few quick times; writes never are, because the
sender above decides, with the ledger, whether a write may be repeated.

What the clients share besides HTTP (the marker check, ticket text, cutting
and quoting) lives in `ticketbridge.text`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from ticketbridge import __version__, crashpoints
from ticketbridge.config.model import HttpSettings
from ticketbridge.destinations.base import (
    PermanentError,
    TicketNotFound,
    TransientError,
)
from ticketbridge.text import (  # noqa: F401 (kept importable from here)
    TicketText,
    check_marker,
    render_text,
    truncate,
)

log = logging.getLogger(__name__)

OnRequest = Callable[[str, str, int | None, float], None]
"""Observer of each HTTP request: (destination, operation, status, seconds).

`status` is None when no response arrived. Called once per attempt.
"""

Sleep = Callable[[float], Awaitable[None]]

# What a 2xx answer must carry: JSON; JSON or nothing; anything but an HTML
# page (plain-text bodies read as nothing); anything at all.
BodyKind = Literal["json", "optional", "lenient", "none"]

# Statuses whose request was surely not acted on; other 5xx answers to a
# write may come from a proxy that gave up after the backend had acted.
NOT_ACTED_ON = frozenset({429, 503})

MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """How reads are retried inside one operation: a few quick tries.

    A Retry-After longer than `maximum` is not waited for here: the error goes
    up at once so the sender can pause the whole destination instead.
    """

    attempts: int = 3
    initial: float = 0.5
    maximum: float = 5.0
    sleep: Sleep = asyncio.sleep


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful answer: its status and its body parsed as JSON (or None)."""

    status: int
    body: Any


@dataclass(slots=True)
class _Progress:
    """How far one request got, filled in by aiohttp's trace signals."""

    started: bool = False
    sent: bool = False


class HttpClient:
    """One destination's HTTP session, with error classification and timing."""

    def __init__(
        self,
        destination: str,
        settings: HttpSettings,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        on_request: OnRequest | None = None,
        read_retry: ReadRetry | None = None,
        resolver: aiohttp.abc.AbstractResolver | None = None,
    ) -> None:
        self.destination = destination
        self.settings = settings
        self.host = settings.url.host or "?"
        self._headers = {
            "Accept": "application/json",
            "User-Agent": f"ticketbridge/{__version__}",
            **(headers or {}),
        }
        # Short strings would blank out ordinary words of a message.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len)[::-1]
        self._on_request = on_request
        self._retry = read_retry or ReadRetry()
        # Built from strategies every supported tenacity version has.
        self._backoff = wait_exponential(
            multiplier=self._retry.initial, max=self._retry.maximum
        ) + wait_random(0, self._retry.initial)
        # Swappable so tests can fail name resolution without a DNS server.
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        if not settings.verify_tls:
            log.warning(
                "tls verification disabled",
                extra={"destination": destination, "host": self.host},
            )

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        body: BodyKind = "json",
        ticket: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send one request once; raise a classified error on any failure.

        `body` says what a 2xx must carry (see BodyKind).
        `ticket` names the ticket the request is about: a 404 then means
        TicketNotFound, and the log lines carry it.
        """
        return await self._attempt(
            operation, method, url, json, params, body, ticket, headers
        )

    async def get(
        self,
        operation: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        ticket: str | None = None,
    ) -> Reply:
        """GET a JSON document, retrying transient failures a few times."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=self._read_wait,
            retry=retry_if_exception(self._worth_retrying),
            sleep=self._retry.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        return await retrying(
            self._attempt, operation, "GET", url, None, params, "json", ticket, None
        )

    async def close(self) -> None:
        """Close the session; the client opens a new one if used again."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _attempt(
        self,
        operation: str,
        method: str,
        url: str,
        payload: Any,
        params: Mapping[str, str] | None,
        body: BodyKind,
        ticket: str | None,
        headers: Mapping[str, str] | None,
    ) -> Reply:
        session = self._open_session()
        progress = _Progress()
        status: int | None = None
        started = time.monotonic()

        try:
            async with session.request(
                method,
                url,
                json=payload,
                params=params,
                headers={**self._headers, **(headers or {})},
                # A redirected POST would come back as a GET: never follow one.
                allow_redirects=method == "GET",
                trace_request_ctx=progress,
            ) as response:
                status = response.status
                raw = await response.read()
                answer = response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(exc, operation, method, progress) from exc
        finally:
            self._observe(operation, status, time.monotonic() - started)

        log.debug(
            "destination request",
            extra={
                "destination": self.destination,
                "ticket": ticket,
                "operation": operation,
                "method": method,
                "status": status,
                "duration": round(time.monotonic() - started, 3),
            },
        )
        text = raw.decode("utf-8", errors="replace")
        return self._classify(operation, method, status, answer, text, body, ticket)

    def _open_session(self) -> aiohttp.ClientSession:
        # Created on first use: a session belongs to the running event loop.
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_request_start.append(_on_started)
            trace.on_request_headers_sent.append(_on_sent)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=_ssl_setting(self.settings), resolver=self._resolver
                ),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                # HTTP(S)_PROXY and NO_PROXY from the service's environment.
                trust_env=True,
                trace_configs=[trace],
            )
        return self._session

    def _classify(
        self,
        operation: str,
        method: str,
        status: int,
        headers: Mapping[str, str],
        text: str,
        body: BodyKind,
        ticket: str | None,
    ) -> Reply:
        if 200 <= status < 300:
            return Reply(
                status, self._parse_body(operation, method, status, text, body)
            )

        detail = error_detail(text)
        message = self._message(operation, f"HTTP {status}", detail)
        if status == 429 or status == 408 or status >= 500:
            raise TransientError(
                message,
                status=status,
                retry_after=parse_retry_after(headers.get("Retry-After")),
                ambiguous=method != "GET" and status not in NOT_ACTED_ON,
            )
        if 300 <= status < 400:
            where = urlsplit(headers.get("Location", "")).hostname or "elsewhere"
            raise PermanentError(
                self._message(operation, f"HTTP {status}", f"redirected to {where}"),
                status=status,
            )
        if status == 404 and ticket is not None:
            raise TicketNotFound(
                self._message(operation, f"ticket {ticket} not found", detail),
                status=status,
            )
        raise PermanentError(message, status=status)

    def _parse_body(
        self, operation: str, method: str, status: int, text: str, body: BodyKind
    ) -> Any:
        if body == "none" or (body != "json" and not text.strip()):
            return None
        try:
            return json.loads(text)
        except ValueError:
            if body == "lenient" and not _is_html(text):
                return None
            # A proxy's or login page's HTML: the request may never have
            # reached the system, or may have been acted on.
            raise TransientError(
                self._message(
                    operation,
                    f"HTTP {status}",
                    f"the answer is not JSON: {_snippet(text)}",
                ),
                status=status,
                ambiguous=method != "GET",
            ) from None

    def _transport_error(
        self,
        exc: BaseException,
        operation: str,
        method: str,
        progress: _Progress,
    ) -> Exception:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return PermanentError(
                self._message(
                    operation,
                    f"TLS certificate verification failed for {self.host}",
                    str(exc.certificate_error),
                )
            )
        if isinstance(exc, aiohttp.InvalidURL):
            return PermanentError(self._message(operation, "invalid URL", ""))
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            reason = f"cannot resolve {self.host}"
            return TransientError(self._message(operation, reason, ""))
        if isinstance(exc, aiohttp.ClientConnectorError):
            reason = f"cannot connect to {self.host}"
            return TransientError(self._message(operation, reason, _os_reason(exc)))
        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            reason = f"timed out connecting to {self.host}"
            return TransientError(self._message(operation, reason, ""))

        # The request may have reached the server. Only when the trace shows
        # it was started but its headers never went out is it surely unsent;
        # without a trace (e.g. a test double) assume the worst.
        unsent = progress.started and not progress.sent
        ambiguous = method != "GET" and not unsent
        if isinstance(exc, TimeoutError):
            reason = f"no answer from {self.host} within {self.settings.timeout:g}s"
        else:
            reason = f"connection to {self.host} lost"
        return TransientError(
            self._message(operation, reason, _os_reason(exc)), ambiguous=ambiguous
        )

    def unexpected(self, operation: str, missing: MissingField) -> TransientError:
        """The error for a 2xx answer without what the system always sends."""
        return TransientError(
            self._message(operation, "unexpected answer", str(missing)),
            # A write may have been applied even though its answer is unusable.
            ambiguous=operation != "get" and operation != "find",
        )

    def _message(self, operation: str, what: str, detail: str) -> str:
        text = f"{self.destination} {operation}: {what}"
        if detail:
            text = f"{text}: {detail}"
        return self.redact(text)

    def redact(self, text: str) -> str:
        """Blank out every credential this client knows of."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _observe(self, operation: str, status: int | None, seconds: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(self.destination, operation, status, seconds)
        except Exception:
            # A broken metrics hook must not fail a delivery.
            log.exception("request observer failed", extra=self._fields(operation))

    def _worth_retrying(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientError):
            return False
        return exc.retry_after is None or exc.retry_after <= self._retry.maximum

    def _read_wait(self, state: RetryCallState) -> float:
        wait = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        # Retry-After is a floor, never shortened by the backoff.
        return max(wait, retry_after or 0.0)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        fields = self._fields(str(state.args[0]) if state.args else "get")
        fields["attempt"] = state.attempt_number
        log.debug("retrying read: %s", exc, extra=fields)

    def _fields(self, operation: str) -> dict[str, object]:
        return {"destination": self.destination, "operation": operation}


class MissingField(LookupError):
    """A JSON answer lacks a member the client relies on."""


def dig(body: Any, *path: str, kind: type | tuple[type, ...] = object) -> Any:
    """`body[path[0]][path[1]]...`, which must exist, be non-null and a `kind`."""
    value = body
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            raise MissingField(f"no {'.'.join(path)!r} in the answer")
    if not isinstance(value, kind):
        raise MissingField(f"{'.'.join(path)!r} is a {type(value).__name__}")
    return value


def parse_retry_after(
    value: str | None, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date.

    Never negative: a date in the past means "now". Unreadable values are None.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until(text, now or datetime.now(UTC))
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until(text: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def error_detail(text: str) -> str:
    """The human part of an error body, for the error message.

    Knows Jira's ErrorCollection, ServiceNow's error object, Zendesk's
    validation details and the usual `error`/`message`/`errors` shapes;
    anything else is shown as a snippet.
    """
    try:
        body = json.loads(text)
    except ValueError:
        return _snippet(text)
    if not isinstance(body, dict):
        return _snippet(text)

    parts: list[str] = []
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts += [str(m) for m in messages if m]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{k}: {v}" for k, v in errors.items()]
    elif isinstance(errors, list):
        parts += [str(e) for e in errors if e]

    error = body.get("error")
    if isinstance(error, dict):
        parts += [str(error[k]) for k in ("message", "detail") if error.get(k)]
    elif isinstance(error, str):
        parts.append(error)
        if isinstance(body.get("description"), str):
            parts.append(body["description"])
        parts += _zendesk_details(body.get("details"))
    if isinstance(body.get("message"), str):
        parts.append(body["message"])

    return _cut("; ".join(parts), MAX_DETAIL) if parts else _snippet(text)


def _zendesk_details(details: Any) -> list[str]:
    """Zendesk's per-field validation messages: {field: [{description}]}."""
    if not isinstance(details, dict):
        return []
    parts = []
    for name, problems in details.items():
        for problem in problems if isinstance(problems, list) else [problems]:
            text = problem.get("description") if isinstance(problem, dict) else problem
            if text:
                parts.append(f"{name}: {text}")
    return parts


def _is_html(text: str) -> bool:
    return re.match(r"\s*<(!doctype|html|head|body)", text, re.IGNORECASE) is not None


def _snippet(text: str) -> str:
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title or _is_html(text):
        page = " ".join(title.group(1).split()) if title else ""
        return f"an HTML page {page!r}" if page else "an HTML page"
    flat = " ".join(text.split())
    return _cut(flat, MAX_DETAIL) if flat else "empty body"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _os_reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None) or exc
    reason = getattr(os_error, "strerror", None)
    if reason:
        return str(reason)
    return type(exc).__name__


def _ssl_setting(settings: HttpSettings) -> ssl.SSLContext | bool:
    if not settings.verify_tls:
        return False
    if settings.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(settings.ca_bundle))
    return True


async def _on_started(
    session: aiohttp.ClientSession, context: SimpleNamespace, params: object
) -> None:
    if isinstance(context.trace_request_ctx, _Progress):
        context.trace_request_ctx.started = True


async def _on_sent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    if isinstance(context.trace_request_ctx, _Progress):
        context.trace_request_ctx.sent = True
    if params.method != "GET":
        # Once the body is on its way too (the next turn of the loop).
        asyncio.get_running_loop().call_soon(crashpoints.reach, "request_sent")
