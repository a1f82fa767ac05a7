"""The metrics and health endpoints: /metrics, /healthz, /readyz.

With basic auth configured every path asks for it, /healthz and /readyz
included, as the Prometheus exporter toolkit does: they tell an outsider
whether the daemon and its config are healthy, and a probe that needs them
(a load balancer, Kubernetes' httpGet) can send an Authorization header.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ticketbridge.basic_auth import BasicAuth
from ticketbridge.metrics import Metrics

log = logging.getLogger(__name__)


def build_app(
    metrics: Metrics,
    readiness: Callable[[], list[str]],
    auth: BasicAuth | None = None,
) -> web.Application:
    """`readiness` returns what is wrong; an empty list means ready.

    `auth` is consulted on every request, so a reload that changes its users
    takes effect without rebuilding the app.
    """

    async def metrics_view(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        problems = readiness()
        if problems:
            return web.json_response(
                {"status": "not ready", "problems": problems}, status=503
            )
        return web.json_response({"status": "ready"})

    app = web.Application(middlewares=[_authenticate(auth or BasicAuth())])
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def _authenticate(auth: BasicAuth) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if await auth.allows(request.headers.get("Authorization")):
            return await handler(request)
        return web.Response(
            status=401,
            text="401 unauthorized\n",
            headers={"WWW-Authenticate": 'Basic realm="ticketbridge", charset="UTF-8"'},
        )

    return middleware


async def serve(
    app: web.Application,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Listen on `host:port`, over TLS when `ssl_context` is given."""
    if not is_loopback(host):
        # Not refused: an operator may want it; but it is worth a line in the log.
        log.warning("metrics endpoint bound beyond loopback", extra={"host": host})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        return int(address[1])
    return 0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
