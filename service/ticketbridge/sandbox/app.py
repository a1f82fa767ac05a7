"""The sandbox application, and how to start it on a loopback address.

Two middlewares wrap the imitated APIs: the outer one logs every call and lets
the fault script answer instead of the system; the inner one refuses
anonymous calls with each system's own 401.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from ticketbridge.sandbox import (
    control,
    faults,
    jira,
    rates,
    servicenow,
    webhook,
    zendesk,
)
from ticketbridge.sandbox.faults import FAULTS, FaultScript, Handler
from ticketbridge.sandbox.rates import RATES, RateFaults
from ticketbridge.sandbox.settings import SETTINGS, SandboxSettings
from ticketbridge.sandbox.store import STORE, RequestEntry, Store, now

logger = logging.getLogger(__name__)

TOKEN_ENV = "TICKETBRIDGE_SANDBOX_TOKEN"
_JIRA_PREFIX = "/rest/api/"
_SERVICENOW_PREFIX = "/api/now/"
_ZENDESK_PREFIX = "/api/v2/"


def build_app(settings: SandboxSettings | None = None) -> web.Application:
    """A fresh sandbox with empty state; nothing is shared between apps."""
    app = web.Application(middlewares=[_observe, _auth])
    app[SETTINGS] = settings or SandboxSettings()
    app[STORE] = Store()
    app[FAULTS] = FaultScript()
    app[RATES] = RateFaults()
    for module in (jira, servicenow, zendesk, webhook, faults, rates, control):
        app.add_routes(module.routes())
    if app[SETTINGS].faults is not None:
        rates.apply(app, rates.parse_profile(app[SETTINGS].faults))
    return app


@dataclass
class RunningSandbox:
    """A started sandbox: where it listens, and the runner that owns it."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def app(self) -> web.Application:
        return self.runner.app

    async def close(self) -> None:
        await self.runner.cleanup()


async def serve(
    host: str = "127.0.0.1", port: int = 0, settings: SandboxSettings | None = None
) -> RunningSandbox:
    """Start a sandbox on host:port; port 0 picks a free port, see `.port`.

    Raises ValueError for any host that is not a loopback address: the
    sandbox accepts any credential and must never face a network.
    """
    _require_loopback(host)
    runner = web.AppRunner(build_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1]
    logger.info("sandbox listening", extra={"host": host, "port": bound})
    return RunningSandbox(runner, host, bound)


async def run(
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: SandboxSettings | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until `stop` is set (or forever), then shut down cleanly."""
    sandbox = await serve(host, port, settings)
    print(f"sandbox listening on {sandbox.url}", flush=True)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await sandbox.close()


def run_sandbox(
    host: str = "127.0.0.1", port: int = 8080, settings: SandboxSettings | None = None
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""

    async def until_signalled() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(host, port, settings, stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(until_signalled())


def main_sandbox(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: parse options, serve, return the exit code."""
    parser = argparse.ArgumentParser(
        prog="ticketbridge sandbox",
        description="Serve a local imitation of Jira, ServiceNow, Zendesk and "
        "webhooks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument(
        "--project",
        action="append",
        dest="projects",
        help="Jira project key that exists (repeatable; default OPS)",
    )
    parser.add_argument(
        "--jira-deployment",
        choices=["Cloud"],
        help="act as Jira Cloud on both API versions: the old search answers 410",
    )
    parser.add_argument(
        "--faults",
        type=Path,
        metavar="FILE",
        help="rate profile (JSON or YAML) of faults to inject from the start",
    )
    args = parser.parse_args(argv)
    try:
        profile = read_profile(args.faults) if args.faults else None
    except ValueError as exc:
        parser.error(f"--faults {args.faults}: {exc}")
    settings = SandboxSettings(
        jira_projects=tuple(args.projects or ("OPS",)),
        token=os.environ.get(TOKEN_ENV) or None,
        jira_deployment=args.jira_deployment,
        faults=profile,
    )
    try:
        _require_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))
    run_sandbox(args.host, args.port, settings)
    return 0


def read_profile(path: Path) -> dict[str, Any]:
    """A rate profile file, checked; ValueError says what is wrong."""
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"not JSON or YAML: {exc}") from exc
    rates.parse_profile(spec)
    assert isinstance(spec, dict)
    return spec


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log each call to an imitated API, and let the fault script answer it."""
    if request.path == "/" or request.path.startswith("/_sandbox/"):
        return await handler(request)
    system, operation = rates.classify(request)
    fault = request.app[FAULTS].take(request.method, request.path)
    if fault is None:
        fault = request.app[RATES].draw(system, operation)
    entry = RequestEntry(
        method=request.method,
        path=request.path,
        query=request.query_string,
        status=None,
        fault=fault.label if fault else None,
        time=now(),
        system=system,
        operation=operation,
        marker=await _marker(request, system, operation),
    )
    request.app[STORE].requests.append(entry)
    try:
        if fault is None:
            response = await handler(request)
        else:
            response = await faults.perform(fault, request, handler)
    except web.HTTPException as exc:
        entry.status = exc.status
        raise
    # A hung-up request never got a status.
    entry.status = None if fault and fault.reset else response.status
    return response


async def _marker(request: web.Request, system: str, operation: str) -> str | None:
    """The correlation marker a create carries, so creates can be counted."""
    if system == "webhook":
        key = request.headers.get("Idempotency-Key", "")
        return key.split(":", 1)[0] or None
    if operation != "create":
        return None
    try:
        body = await request.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if system == "servicenow":
        return str(body.get("correlation_id") or "") or None
    fields = body.get("fields")
    labels = fields.get("labels") if isinstance(fields, dict) else None
    return str(labels[0]) if isinstance(labels, list) and labels else None


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith((_JIRA_PREFIX, _SERVICENOW_PREFIX, _ZENDESK_PREFIX)):
        return await handler(request)
    token = request.app[SETTINGS].token
    if _authorised(request.headers.get("Authorization", ""), token):
        return await handler(request)
    if path.startswith(_JIRA_PREFIX):
        message = "Client must be authenticated to access this resource."
        return jira.error(401, [message])
    if path.startswith(_ZENDESK_PREFIX):
        return zendesk.unauthorised()
    detail = "Required to provide Auth information"
    return servicenow.error(401, "User Not Authenticated", detail)


def _authorised(header: str, token: str | None) -> bool:
    """Basic or Bearer; with a token configured, only that secret passes."""
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() == "bearer" and credential:
        secret = credential
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, colon, secret = decoded.partition(":")
        if not (user and colon):
            return False
    else:
        return False
    return token is None or hmac.compare_digest(secret.encode(), token.encode())


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the sandbox binds to loopback addresses only, not {host!r}")
