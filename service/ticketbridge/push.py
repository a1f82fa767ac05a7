"""The heartbeat push: a request to an outside watcher after healthy poll cycles.

Prometheus notices a dead daemon only while Prometheus itself runs. A push to
a dead man's switch (a URL that raises an alarm when it stops being called)
covers the whole monitoring host going away. A push never disturbs the
daemon: it runs beside the poll loop, with a short timeout, and a failure is
logged and counted, nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp

from ticketbridge import __version__
from ticketbridge.config.model import HealthSettings

log = logging.getLogger(__name__)

# Poll cycles end a little earlier or later than the interval: a push that
# falls due 10% early still goes, so pushes do not skip every other cycle.
EARLY = 0.9


class HeartbeatPush:
    """Sends at most one push per interval, and never two at once."""

    def __init__(self, on_failure: Callable[[], None]) -> None:
        self._on_failure = on_failure
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_start = float("-inf")
        self._last_problem = ""

    def after_healthy_cycle(
        self, settings: HealthSettings, poll_interval: float
    ) -> None:
        """Start a push if one is configured and due; returns at once."""
        if settings.push_url is None:
            return
        if self._task is not None and not self._task.done():
            return  # the previous push is still waiting for its timeout
        interval = settings.push_interval or poll_interval
        now = time.monotonic()
        if now - self._last_start < EARLY * interval:
            return

        self._last_start = now
        self._task = asyncio.create_task(
            self._push(
                str(settings.push_url), settings.push_method, settings.push_timeout
            ),
            name="heartbeat-push",
        )

    async def close(self) -> None:
        """Drop a push in flight and close the HTTP session."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _push(self, url: str, method: str, seconds: float) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"ticketbridge/{__version__}"}
            )
        try:
            async with self._session.request(
                method, url, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as response:
                await response.read()
                problem = "" if response.status < 400 else f"status {response.status}"
        except TimeoutError:
            problem = f"no answer within {seconds:g}s"
        except Exception as exc:
            # Whatever goes wrong stays here: a push must not disturb the
            # daemon. The exception's text can quote the URL, credentials and
            # all, so only its type is logged.
            problem = type(exc).__name__
        self._report(url, problem)

    def _report(self, url: str, problem: str) -> None:
        """Count every failure; log only when the failure changes or ends."""
        target = _safe_target(url)
        if problem:
            self._on_failure()
            if problem != self._last_problem:
                log.warning(
                    "heartbeat push failed: %s",
                    problem,
                    extra={"target": target},
                )
        elif self._last_problem:
            log.info("heartbeat push recovered", extra={"target": target})
        self._last_problem = problem


def _safe_target(url: str) -> str:
    """Scheme, host and port only: user, password, path and query may be secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    with contextlib.suppress(ValueError):
        if parts.port is not None:
            return f"{parts.scheme}://{host}:{parts.port}"
    return f"{parts.scheme}://{host}"
