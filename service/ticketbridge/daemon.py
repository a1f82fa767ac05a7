"""The daemon's lifecycle: start, poll, send, reload on SIGHUP, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from ticketbridge import crashpoints, systemd_notify
from ticketbridge.config import Config, ConfigError, load_config
from ticketbridge.destinations import build_destination
from ticketbridge.events import Event
from ticketbridge.health import build_app, serve
from ticketbridge.ledger import Ledger, Routed
from ticketbridge.metrics import Metrics
from ticketbridge.routing import Router, correlation_marker, incident_key
from ticketbridge.sender import Sender
from ticketbridge.sources import Polled, Source, build_source

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config_path: Path, config: Config) -> None:
        self.config_path = config_path
        self.config = config
        self.metrics = Metrics()
        self.router = Router(config.routes)
        self.sources: dict[str, Source] = {}
        self.senders: dict[str, Sender] = {}
        self.ledger: Ledger | None = None
        self.last_poll = 0.0
        self.config_ok = True
        self._stop = asyncio.Event()
        self._poll_now = asyncio.Event()
        self._reloading = asyncio.Lock()
        # Stop tasks of replaced senders; held so they are not collected early.
        self._retiring: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------

    async def run(self) -> int:
        self.ledger = await Ledger.open(self.config.ledger.path)
        self.metrics.ledger_up.set(1)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_ok_time.set(time.time())
        self._apply(self.config)

        health = self.config.health
        runner = await serve(
            build_app(self.metrics, self.readiness), health.host, health.port
        )
        self._install_signals()
        tasks = [
            asyncio.create_task(self._poll_loop(), name="poll"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
        ]
        log.info(
            "ticketbridge started",
            extra={
                "ledger": str(self.ledger.path),
                "metrics": f"{health.host}:{health.port}",
            },
        )
        systemd_notify.notify("READY=1", "STATUS=polling")

        await self._stop.wait()
        systemd_notify.notify("STOPPING=1", "STATUS=stopping")
        await self._shutdown(tasks)
        await runner.cleanup()
        return 0

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(
            signal.SIGHUP, lambda: asyncio.create_task(self.reload())
        )

    def stop(self) -> None:
        log.info("stop requested")
        self._stop.set()
        self._poll_now.set()

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        timeout = self.config.shutdown_timeout
        await asyncio.gather(*(s.stop(timeout) for s in self.senders.values()))
        await asyncio.gather(*self._retiring, return_exceptions=True)
        assert self.ledger is not None
        await self.ledger.close()
        log.info("ticketbridge stopped")

    # -- configuration ----------------------------------------------------

    def _apply(self, config: Config, reloading: bool = False) -> None:
        """Swap routing, sources and senders to `config` in one step."""
        assert self.ledger is not None
        old = self.config
        self.config = config
        self.router = Router(config.routes)
        if reloading:
            crashpoints.reach("during_reload")
        self.sources = {
            name: build_source(name, settings)
            for name, settings in config.sources.items()
        }
        for name, settings in config.destinations.items():
            if name in self.senders and old.destinations.get(name) == settings:
                continue
            retiring = self._retire(name)
            destination = build_destination(
                name, settings, on_request=self.metrics.observe_request
            )
            sender = Sender(
                name,
                destination,
                settings,
                self.ledger,
                self.metrics,
                config.failure_threshold,
            )
            sender.start(after=retiring)
            self.senders[name] = sender
        for name in list(self.senders):
            if name not in config.destinations:
                self._retire(name)

    def _retire(self, name: str) -> asyncio.Task[None] | None:
        """A removed or changed destination's sender finishes its in-flight work.

        Returns the task that stops it, so a successor can wait for it.
        """
        sender = self.senders.pop(name, None)
        if sender is None:
            return None
        task = asyncio.create_task(sender.stop(self.config.shutdown_timeout))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return task

    async def reload(self) -> None:
        async with self._reloading:
            systemd_notify.notify("RELOADING=1", monotonic_usec())
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
                self._refuse_restart_only_changes(config)
            except ConfigError as exc:
                self.config_ok = False
                self.metrics.reload_ok.set(0)
                self.metrics.reload_failures.inc()
                log.error(
                    "config reload refused, keeping the old config: %s",
                    "; ".join(exc.problems),
                    extra={"config": str(self.config_path)},
                )
            else:
                self._apply(config, reloading=True)
                self.config_ok = True
                self.metrics.reload_ok.set(1)
                self.metrics.reload_ok_time.set(time.time())
                log.info("config reloaded", extra={"config": str(self.config_path)})
                self._poll_now.set()
            systemd_notify.notify("READY=1", "STATUS=polling")

    def _refuse_restart_only_changes(self, config: Config) -> None:
        problems = [
            f"{name}: changing it needs a restart"
            for name in ("ledger", "health")
            if getattr(config, name) != getattr(self.config, name)
        ]
        if problems:
            raise ConfigError(str(self.config_path), problems)

    # -- polling ----------------------------------------------------------

    async def _poll_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            full = False
            for name, source in list(self.sources.items()):
                full |= await self._poll_source(name, source)
            await self._update_stats()
            self.last_poll = time.time()
            self.metrics.heartbeat.set(self.last_poll)

            if full:
                continue  # a backlog: read the next batch at once
            wait = max(0.0, self.config.poll_interval - (time.monotonic() - started))
            self._poll_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), timeout=wait)

    async def _poll_source(self, name: str, source: Source) -> bool:
        """One batch from one source. Returns True when the batch was full."""
        assert self.ledger is not None
        try:
            cursor = await self.ledger.cursor(name)
            polled = await source.poll(cursor)
            await self._store(name, source, polled)
        except Exception as exc:
            self.metrics.source_errors.labels(name).inc()
            log.error("poll failed: %s", exc, extra={"source": name})
            return False

        self.metrics.source_last_success.labels(name).set(time.time())
        size = len(polled.events) + len(polled.rejects)
        return size >= source.batch_size

    async def _store(self, name: str, source: Source, polled: Polled) -> None:
        """Commit, then acknowledge: the source lets go only of what is stored."""
        assert self.ledger is not None
        fields = self.config.sources[name].incident_key
        routed = [self._route(event, fields) for event in polled.events]

        try:
            await self.ledger.quarantine(
                name,
                [
                    (r.item, f"{r.reason}: {r.detail}", r.payload)
                    for r in polled.rejects
                ],
            )
            new_ids = await self.ledger.ingest(name, routed, polled.cursor)
        except Exception:
            self.metrics.ledger_up.set(0)
            raise
        self.metrics.ledger_up.set(1)
        crashpoints.reach("after_ingest")

        await source.set_aside(polled)
        await source.acknowledge(polled)

        for reject in polled.rejects:
            self.metrics.rejected.labels(name, reject.reason).inc()
        if new_ids:
            self.metrics.ingested.labels(name).inc(len(new_ids))
            for item in routed:
                log.info(
                    "event ingested",
                    extra={
                        "event": f"{name}:{item.event.source_event_id}",
                        "incident": item.incident_key,
                        "route": item.route,
                        "destinations": ",".join(item.destinations) or "(dropped)",
                    },
                )
            for sender in self.senders.values():
                sender.wake()

    def _route(self, event: Event, fields: list[str]) -> Routed:
        decision = self.router.route(event)
        return Routed(
            event=event,
            incident_key=incident_key(event, fields),
            route=decision.route,
            destinations=decision.destinations,
            marker_seed=correlation_marker(event),
        )

    async def _update_stats(self) -> None:
        assert self.ledger is not None
        try:
            stats = await self.ledger.destination_stats(time.time())
        except Exception as exc:
            log.error("ledger unreadable: %s", exc)
            return
        self.metrics.set_destination_stats(list(self.config.destinations), stats)

    # -- health -----------------------------------------------------------

    def readiness(self) -> list[str]:
        problems = []
        if self.ledger is None:
            problems.append("ledger not open")
        if not self.config_ok:
            problems.append("last config reload was refused")
        if time.time() - self.last_poll > 3 * self.config.poll_interval:
            problems.append("poll loop has not run within 3 poll intervals")
        return problems

    def healthy(self) -> bool:
        return time.time() - self.last_poll <= 3 * self.config.poll_interval

    async def _watchdog(self) -> None:
        """Ping systemd's watchdog only while the poll loop keeps running."""
        interval = systemd_notify.watchdog_interval()
        if interval is None:
            return
        while True:
            if self.healthy():
                systemd_notify.notify("WATCHDOG=1")
            await asyncio.sleep(interval)


def monotonic_usec() -> str:
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


async def run_daemon(config_path: Path) -> int:
    config = load_config(config_path)
    return await Daemon(config_path, config).run()
