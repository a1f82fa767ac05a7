"""The metrics and health endpoints: /metrics, /healthz, /readyz."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ticketbridge.metrics import Metrics


def build_app(metrics: Metrics, readiness: Callable[[], list[str]]) -> web.Application:
    """`readiness` returns what is wrong; an empty list means ready."""

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

    app = web.Application()
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    if not is_loopback(host):
        # Not refused: an operator may want it; but it is worth a line in the log.
        import logging

        logging.getLogger(__name__).warning(
            "metrics endpoint bound beyond loopback", extra={"host": host}
        )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
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
