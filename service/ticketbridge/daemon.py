"""The daemon's lifecycle: start, poll, send, reload on SIGHUP, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

from ticketbridge import crashpoints, systemd_notify
from ticketbridge.basic_auth import BasicAuth
from ticketbridge.breaker import Breaker
from ticketbridge.config import Config, ConfigError, load_config, load_web_config
from ticketbridge.config.diff import config_changes
from ticketbridge.config.model import DEFAULT_LIFECYCLE, Lifecycle
from ticketbridge.config.web import (
    WebConfig,
    WebConfigError,
    load_certificate,
    server_ssl_context,
)
from ticketbridge.destinations import build_destination
from ticketbridge.destinations.base import Destination, ProbeResult
from ticketbridge.events import Event
from ticketbridge.health import build_app, serve
from ticketbridge.ledger import Ledger, Repeat, Routed
from ticketbridge.metrics import Metrics
from ticketbridge.preflight import (
    Preflight,
    StatusObserver,
    failures,
    passed,
    reachable,
)
from ticketbridge.push import HeartbeatPush
from ticketbridge.routing import Router, correlation_marker, incident_key
from ticketbridge.sender import Sender
from ticketbridge.sources import Polled, Source, build_source

log = logging.getLogger(__name__)


class Daemon:
    def __init__(
        self,
        config_path: Path,
        config: Config,
        *,
        status_observer: StatusObserver | None = None,
    ) -> None:
        self.config_path = config_path
        self.config = config
        self.metrics = Metrics()
        self.push = HeartbeatPush(on_failure=self.metrics.push_failures.inc)
        # `status_observer` hears every probe run and circuit transition.
        self.preflight = Preflight(self.metrics, status_observer)
        self.router = Router(config.routes)
        self.sources: dict[str, Source] = {}
        self.senders: dict[str, Sender] = {}
        self.ledger: Ledger | None = None
        self.web = WebConfig()
        self.auth = BasicAuth()
        self.ssl_context: ssl.SSLContext | None = None
        self.last_poll = 0.0
        self.config_ok = True
        self.started = time.monotonic()
        self.ledger_writable = True
        self._stop = asyncio.Event()
        self._poll_now = asyncio.Event()
        self._reloading = asyncio.Lock()
        # Stop tasks of replaced senders; held so they are not collected early.
        self._retiring: set[asyncio.Task[None]] = set()

    # -- lifecycle --------------------------------------------------------

    async def run(self) -> int:
        # 1. The web config first: a bad one stops the start before anything opens.
        self.web, self.ssl_context = load_web_config(self.config_path, self.config)
        self.auth.replace(self.web.basic_auth_users)

        # 2. The ledger, sources and senders.
        self.ledger = await Ledger.open(self.config.ledger.path)
        if self.preflight.observer is None:
            # `ticketbridge status` reads circuit states and probe results here.
            self.preflight.observer = self._record_destination_status
        self.metrics.ledger_up.set(1)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_ok_time.set(time.time())
        await self._circuits_closed(self._apply(self.config))

        # 3. The metrics and health server, over TLS when configured.
        health = self.config.health
        runner = await serve(
            build_app(self.metrics, self.readiness, self.auth),
            health.host,
            health.port,
            self.ssl_context,
        )
        self._install_signals()
        tasks = [
            asyncio.create_task(self._poll_loop(), name="poll"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            # A failing preflight never stops the start: events are still
            # ingested and wait in the ledger; the probes only report.
            asyncio.create_task(self._probe_loop(), name="probe"),
        ]
        log.info(
            "ticketbridge started",
            extra={
                "ledger": str(self.ledger.path),
                "metrics": f"{health.host}:{health.port}",
                "tls": self.ssl_context is not None,
                "basic_auth": self.auth.enabled,
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
        await self.push.close()
        timeout = self.config.shutdown_timeout
        await asyncio.gather(*(s.stop(timeout) for s in self.senders.values()))
        await asyncio.gather(*self._retiring, return_exceptions=True)
        assert self.ledger is not None
        await self.ledger.close()
        log.info("ticketbridge stopped", extra=self._run_summary())

    def _run_summary(self) -> dict[str, object]:
        """What this run did, for the one line logged at shutdown."""
        outcomes = self.metrics.delivery_outcomes()
        return {
            "uptime": round(time.monotonic() - self.started, 1),
            "events_ingested": self.metrics.events_ingested(),
            "deliveries": ",".join(f"{k}={v}" for k, v in outcomes.items()) or "none",
        }

    # -- configuration ----------------------------------------------------

    def _apply(self, config: Config, reloading: bool = False) -> list[str]:
        """Swap routing, sources and senders to `config` in one step.

        Returns the destinations whose senders (and circuits) started afresh.
        """
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
        self.metrics.set_sources(dict.fromkeys(config.sources, config.poll_interval))
        started: list[str] = []
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
                rules=self.lifecycle_of,
                breaker=Breaker(
                    name,
                    config.breaker_threshold,
                    config.breaker_cooldown,
                    on_change=self.preflight.circuit_changed,
                ),
                probe=self._reach_probe(name, destination),
            )
            self.metrics.circuit_state.labels(name).set(0)
            sender.start(after=retiring)
            self.senders[name] = sender
            started.append(name)
        for name in list(self.senders):
            if name not in config.destinations:
                self._retire(name)
        return started

    async def _circuits_closed(self, names: list[str]) -> None:
        """A fresh sender's circuit is closed: say so where `status` reads it."""
        for name in names:
            try:
                await self._record_destination_status(name, circuit_state="closed")
            except Exception:
                log.exception("circuit state not recorded", extra={"destination": name})

    def lifecycle_of(self, route: str) -> Lifecycle:
        """The current lifecycle rules of a route; defaults once it is gone."""
        for candidate in self.config.routes:
            if candidate.name == route:
                return candidate.lifecycle
        return DEFAULT_LIFECYCLE

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

    def _reach_probe(
        self, name: str, destination: Destination
    ) -> Callable[[], Awaitable[bool]]:
        """The half-open probe of a circuit: reported like any other probe."""

        async def probe() -> bool:
            return reachable(await self.preflight.probe(name, destination))

        return probe

    def _destinations(self) -> dict[str, Destination]:
        return {name: s.destination for name, s in self.senders.items()}

    async def reload(self) -> None:
        async with self._reloading:
            systemd_notify.notify("RELOADING=1", monotonic_usec())
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
                web, _ = await asyncio.to_thread(
                    load_web_config, self.config_path, config
                )
                self._refuse_restart_only_changes(config, web)
                probes = await self._preflight_reload(config)
                self._reload_certificate(web)
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
                changes = config_changes(self.config, config) or {"changes": "none"}
                removed = set(self.config.destinations) - set(config.destinations)
                started = self._apply(config, reloading=True)
                await self._circuits_closed(started)
                await self.preflight.report_all(probes)
                self.web = web
                self.auth.replace(web.basic_auth_users)
                self.config_ok = True
                self.metrics.reload_ok.set(1)
                self.metrics.reload_ok_time.set(time.time())
                log.info(
                    "config reloaded",
                    extra={"config": str(self.config_path), **changes},
                )
                await self._warn_open_tickets(removed)
                self._poll_now.set()
            systemd_notify.notify("READY=1", "STATUS=polling")

    async def _warn_open_tickets(self, removed: set[str]) -> None:
        """A removed destination's open tickets get no more follow-ups: say so."""
        assert self.ledger is not None
        for name in sorted(removed):
            rows = await self.ledger.rows(
                "SELECT COUNT(*) AS n FROM tickets "
                "WHERE destination = ? AND state = 'open'",
                (name,),
            )
            if rows[0]["n"]:
                log.warning(
                    "destination removed while it holds open tickets: their "
                    "recoveries and comments will not reach it",
                    extra={"destination": name, "open_tickets": rows[0]["n"]},
                )

    def _refuse_restart_only_changes(self, config: Config, web: WebConfig) -> None:
        old = _restart_only(self.config, self.web)
        new = _restart_only(config, web)
        problems = [
            f"{name}: changing it needs a restart"
            for name in {**old, **new}
            if old.get(name) != new.get(name)
        ]
        if problems:
            raise ConfigError(str(self.config_path), problems)

    async def _preflight_reload(self, config: Config) -> dict[str, list[ProbeResult]]:
        """Probe the new config's destinations; refuse it only if it is worse.

        A new config that fails preflight is refused when the running config
        passes its own, and accepted otherwise (it is then no worse).
        """
        fresh: dict[str, Destination] = {}
        try:
            for name, settings in config.destinations.items():
                fresh[name] = build_destination(
                    name, settings, on_request=self.metrics.observe_request
                )
        except ValueError as exc:
            # E.g. a secret missing from environment and credentials.
            await asyncio.gather(*(d.close() for d in fresh.values()))
            raise ConfigError(str(self.config_path), [str(exc)]) from None
        try:
            results = await self.preflight.probe_all(fresh, report=False)
        finally:
            await asyncio.gather(*(d.close() for d in fresh.values()))
        problems = failures(results)
        if not problems:
            return results

        current = await self.preflight.probe_all(self._destinations())
        if all(passed(checks) for checks in current.values()):
            raise ConfigError(
                str(self.config_path),
                [*problems, "the running config passes its preflight: kept"],
            )
        log.warning(
            "new config fails preflight, accepted as the running one fails too",
            extra={"config": str(self.config_path)},
        )
        return results

    async def _probe_loop(self) -> None:
        """Probe every destination now and every `probe_interval` after."""
        while not self._stop.is_set():
            async with self._reloading:
                await self.preflight.probe_all(self._destinations())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.wait(), timeout=self.config.probe_interval
                )

    def _reload_certificate(self, web: WebConfig) -> None:
        """Load a renewed certificate and key into the listening socket's context.

        Handshakes from now on use them; open connections keep the old ones.
        The files were checked in a fresh context just before, so a failure
        here needs them to change in between; it refuses the reload, though
        the context may then hold the new certificate with the old key.
        """
        tls = web.tls_server_config
        if tls is None or self.ssl_context is None:
            return
        try:
            server_ssl_context(tls)
            load_certificate(self.ssl_context, tls)
        except WebConfigError as exc:
            where = f"health.web_config_file: {self.config.health.web_config_file}"
            raise ConfigError(
                str(self.config_path), [f"{where}: {p}" for p in exc.problems]
            ) from None

    # -- polling ----------------------------------------------------------

    async def poll_once(self) -> tuple[bool, bool]:
        """One batch from every source: (all polled well, some source has more)."""
        healthy = True
        full = False
        for name, source in list(self.sources.items()):
            ok, batch_full = await self._poll_source(name, source)
            healthy &= ok
            full |= batch_full
        return healthy, full

    async def _poll_loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            healthy, full = await self.poll_once()
            healthy &= await self._update_stats()
            self.last_poll = time.time()
            self.metrics.heartbeat.set(self.last_poll)
            if healthy:
                self.push.after_healthy_cycle(
                    self.config.health, self.config.poll_interval
                )

            if full:
                continue  # a backlog: read the next batch at once
            wait = max(0.0, self.config.poll_interval - (time.monotonic() - started))
            self._poll_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), timeout=wait)

    async def _poll_source(self, name: str, source: Source) -> tuple[bool, bool]:
        """One batch from one source: (it succeeded, the batch was full)."""
        assert self.ledger is not None
        try:
            cursor = await self.ledger.cursor(name)
            polled = await source.poll(cursor)
            await self._store(name, source, polled)
        except Exception as exc:
            self.metrics.source_errors.labels(name).inc()
            log.error("poll failed: %s", exc, extra={"source": name})
            await self._record_poll(name, False, f"{type(exc).__name__}: {exc}")
            return False, False

        self.metrics.source_last_success.labels(name).set(time.time())
        await self._record_poll(name, True, None)
        size = len(polled.events) + len(polled.rejects)
        return True, size >= source.batch_size

    async def _record_destination_status(
        self,
        destination: str,
        *,
        circuit_state: str | None = None,
        last_error: str | None = None,
        probes: list[ProbeResult] | None = None,
    ) -> None:
        assert self.ledger is not None
        await self.ledger.record_destination_status(
            destination,
            circuit_state=circuit_state,
            last_error=last_error,
            probes=None if probes is None else [asdict(p) for p in probes],
        )

    async def _record_poll(self, name: str, ok: bool, error: str | None) -> None:
        """Keep the poll's outcome in the ledger for `ticketbridge status`."""
        assert self.ledger is not None
        try:
            await self.ledger.record_source_poll(name, ok, error)
        except Exception as exc:
            # The ledger being unwritable is already loud (metrics, poll errors).
            log.warning("source status not recorded: %s", exc, extra={"source": name})

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
            repeats: list[Repeat] = []
            new_ids = await self.ledger.ingest(
                name,
                routed,
                polled.cursor,
                configured=set(self.config.destinations),
                repeats=repeats,
            )
        except Exception as exc:
            self._ledger_trouble(exc)
            raise
        self._ledger_writable_again()
        crashpoints.reach("after_ingest")

        await source.set_aside(polled)
        await source.acknowledge(polled)

        for reject in polled.rejects:
            self.metrics.rejected.labels(name, reject.reason).inc()
        for event in polled.events:
            self._count_fallbacks(name, event)
        self._note_repeats(name, repeats)
        if new_ids:
            self.metrics.ingested.labels(name).inc(len(new_ids))
            for item in _new_only(routed, repeats):
                log.info(
                    "event ingested",
                    extra={
                        "event": f"{name}:{item.event.source_event_id}",
                        "incident": item.incident_key,
                        "route": item.route,
                        "destinations": ",".join([*item.destinations, *item.shadow])
                        or "(dropped)",
                    },
                )
            for sender in self.senders.values():
                sender.wake()

    def _note_repeats(self, name: str, repeats: list[Repeat]) -> None:
        """An id the ledger already holds: quiet if identical, loud if not."""
        for repeat in repeats:
            self.metrics.duplicates.labels(name).inc()
            event = f"{name}:{repeat.source_event_id}"
            if repeat.same:
                log.debug("duplicate event ignored", extra={"event": event})
                continue
            log.warning(
                "event id reused with different content; stored version kept",
                extra={"source": name, "event": event},
            )

    def _ledger_trouble(self, exc: Exception) -> None:
        # Nothing was acknowledged: the source keeps the batch and it is read
        # again next poll, until the ledger takes writes again.
        self.metrics.ledger_up.set(0)
        if self.ledger_writable:
            log.error(
                "ledger not writable, holding events at their source: %s",
                exc,
                extra={"ledger": str(self.config.ledger.path)},
            )
        self.ledger_writable = False

    def _ledger_writable_again(self) -> None:
        self.metrics.ledger_up.set(1)
        if not self.ledger_writable:
            log.info(
                "ledger writable again",
                extra={"ledger": str(self.config.ledger.path)},
            )
        self.ledger_writable = True

    def _count_fallbacks(self, name: str, event: Event) -> None:
        if not event.fallbacks:
            return
        for field in event.fallbacks:
            self.metrics.field_fallbacks.labels(name, field).inc()
        log.warning(
            "event field replaced by a default",
            extra={
                "event": f"{name}:{event.source_event_id}",
                "fields": ",".join(event.fallbacks),
            },
        )

    def _route(self, event: Event, fields: list[str]) -> Routed:
        decision = self.router.route(event)
        return Routed(
            event=event,
            incident_key=incident_key(event, fields),
            route=decision.route,
            destinations=decision.destinations,
            marker_seed=correlation_marker(event),
            shadow=decision.shadow,
            twins=decision.twins,
            lifecycle=decision.lifecycle,
        )

    async def _update_stats(self) -> bool:
        """Refresh the ledger gauges; False when the ledger could not be read."""
        assert self.ledger is not None
        try:
            stats = await self.ledger.destination_stats(time.time())
        except Exception as exc:
            log.error("ledger unreadable: %s", exc)
            return False
        self.metrics.set_destination_stats(list(self.config.destinations), stats)
        return True

    # -- health -----------------------------------------------------------

    def readiness(self) -> list[str]:
        problems = []
        if self.ledger is None:
            problems.append("ledger not open")
        if not self.ledger_writable:
            problems.append("ledger not writable (disk full, read-only or locked?)")
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


def _restart_only(config: Config, web: WebConfig) -> dict[str, object]:
    """Settings a reload cannot change: the ledger file and the bound socket.

    The socket's TLS context is made once: whether there is TLS, who may
    connect and which versions are spoken stay until a restart. Its certificate
    and key, and the basic auth users, follow a reload.
    """
    settings: dict[str, object] = {
        "ledger": config.ledger,
        "health.host": config.health.host,
        "health.port": config.health.port,
    }
    tls = web.tls_server_config
    where = "health.web_config_file: tls_server_config"
    settings[f"{where} (TLS on or off)"] = tls is not None
    if tls is not None:
        settings[f"{where}.client_auth_type"] = tls.client_auth_type
        settings[f"{where}.client_ca_file"] = tls.client_ca_file
        settings[f"{where}.min_version"] = tls.min_version
    return settings


def _new_only(routed: list[Routed], repeats: list[Repeat]) -> list[Routed]:
    """The routed events the ledger took as new, in order.

    Of several copies of one id in a batch the first may be new, never a
    later one, so the repeats are each id's last copies.
    """
    left = Counter(r.source_event_id for r in repeats)
    kept: list[Routed] = []
    for item in reversed(routed):
        if left[item.event.source_event_id] > 0:
            left[item.event.source_event_id] -= 1
            continue
        kept.append(item)
    return kept[::-1]


def monotonic_usec() -> str:
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


async def run_daemon(config_path: Path) -> int:
    config = load_config(config_path)
    return await Daemon(config_path, config).run()
