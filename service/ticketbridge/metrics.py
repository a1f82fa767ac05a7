"""Prometheus metrics. Labels stay bounded: names from config, never event data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ticketbridge.ledger import STATES, DestinationStats

# Answers that say the destination refuses us (credentials, permissions, an
# unknown project or URL) rather than that it is busy. The status code is the
# label, so the set of series per destination stays this small.
REJECTION_STATUSES = (401, 403, 404)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.heartbeat = Gauge(
            "ticketbridge_heartbeat_timestamp_seconds",
            "Unix time the poll loop last completed a cycle.",
            registry=r,
        )
        self.source_last_success = Gauge(
            "ticketbridge_source_last_success_timestamp_seconds",
            "Unix time of the last successful poll of a source.",
            ["source"],
            registry=r,
        )
        self.source_poll_interval = Gauge(
            "ticketbridge_source_poll_interval_seconds",
            "Configured seconds between polls of a source (for staleness alerts).",
            ["source"],
            registry=r,
        )
        self.source_errors = Counter(
            "ticketbridge_source_errors_total",
            "Polls of a source that failed (source or ledger unavailable).",
            ["source"],
            registry=r,
        )
        self.ingested = Counter(
            "ticketbridge_events_ingested_total",
            "New events committed to the ledger.",
            ["source"],
            registry=r,
        )
        self.rejected = Counter(
            "ticketbridge_events_rejected_total",
            "Source records set aside as invalid, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "ticketbridge_events_duplicate_total",
            "Events whose id the ledger already held; the stored one is kept.",
            ["source"],
            registry=r,
        )
        self.field_fallbacks = Counter(
            "ticketbridge_event_field_fallbacks_total",
            "Optional event fields replaced by a default (unexpanded macro, "
            "unreadable time); the event itself was kept.",
            ["source", "field"],
            registry=r,
        )
        self.deliveries_total = Counter(
            "ticketbridge_deliveries_total",
            "Delivery operations by outcome (sent, skipped, retrying, dead).",
            ["destination", "operation", "outcome"],
            registry=r,
        )
        # Read from the ledger each poll cycle; see LedgerGauges for why.
        self.ledger_gauges = LedgerGauges()
        r.register(self.ledger_gauges)
        self.verifications = Counter(
            "ticketbridge_verifications_total",
            "Follow-up lookups by outcome (verified, mismatch, error).",
            ["destination", "outcome"],
            registry=r,
        )
        self.request_duration = Histogram(
            "ticketbridge_destination_request_duration_seconds",
            "Duration of HTTP requests to destinations.",
            ["destination", "operation"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.reload_ok = Gauge(
            "ticketbridge_config_last_reload_successful",
            "1 if the last config load or reload was accepted, else 0.",
            registry=r,
        )
        self.reload_ok_time = Gauge(
            "ticketbridge_config_last_reload_success_timestamp_seconds",
            "Unix time of the last accepted config load or reload.",
            registry=r,
        )
        self.reload_failures = Counter(
            "ticketbridge_config_reload_failures_total",
            "Config reloads refused as invalid.",
            registry=r,
        )
        self.destination_rejections = Counter(
            "ticketbridge_destination_rejections_total",
            "Destination answers of 401, 403 or 404 to the sender, by status.",
            ["destination", "status"],
            registry=r,
        )
        self.push_failures = Counter(
            "ticketbridge_push_heartbeat_failures_total",
            "Heartbeat pushes to health.push_url that failed or timed out.",
            registry=r,
        )
        self.ledger_up = Gauge(
            "ticketbridge_ledger_writable",
            "1 while the last ledger write succeeded, else 0.",
            registry=r,
        )
        self.probe_ok = Gauge(
            "ticketbridge_destination_probe_ok",
            "1 if the last preflight probe's check passed, else 0.",
            ["destination", "check"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "ticketbridge_destination_circuit_state",
            "Circuit breaker of a destination: 0 closed, 1 open, 2 half-open.",
            ["destination"],
            registry=r,
        )
        self._probe_checks: dict[str, set[str]] = {}

    def set_sources(self, intervals: dict[str, float]) -> None:
        """Publish each configured source's poll interval; forget removed sources.

        A removed source's last-success time would otherwise stay frozen and
        look like a source that stopped polling.
        """
        for name in _sources_of(self.source_poll_interval):
            if name not in intervals:
                self.source_poll_interval.remove(name)
                with contextlib.suppress(KeyError):
                    self.source_last_success.remove(name)
        for name, seconds in intervals.items():
            self.source_poll_interval.labels(name).set(seconds)

    def add_destination(self, destination: str) -> None:
        """Create the rejection series at 0, so the first rejection is an increase."""
        for status in REJECTION_STATUSES:
            self.destination_rejections.labels(destination, str(status))

    def count_rejection(self, destination: str, status: int | None) -> None:
        """Count a 401/403/404 answer; other statuses are not rejections."""
        if status in REJECTION_STATUSES:
            self.destination_rejections.labels(destination, str(status)).inc()

    def observe_request(
        self, destination: str, operation: str, status: int | None, seconds: float
    ) -> None:
        self.request_duration.labels(destination, operation).observe(seconds)

    def set_probe_results(
        self, destination: str, results: list[tuple[str, bool]]
    ) -> None:
        """One destination's probe checks; checks it no longer makes disappear."""
        checks = {check for check, _ in results}
        for gone in self._probe_checks.get(destination, set()) - checks:
            self.probe_ok.remove(destination, gone)
        self._probe_checks[destination] = checks
        for check, ok in results:
            self.probe_ok.labels(destination, check).set(1 if ok else 0)

    def forget_destination(self, destination: str) -> None:
        """Drop the probe and circuit series of a destination removed by reload."""
        for check in self._probe_checks.pop(destination, set()):
            self.probe_ok.remove(destination, check)
        with contextlib.suppress(KeyError):
            self.circuit_state.remove(destination)

    def events_ingested(self) -> int:
        """Events this process stored, over every source."""
        return int(_total(self.ingested))

    def delivery_outcomes(self) -> dict[str, int]:
        """Delivery operations this process finished, by outcome, sorted."""
        totals: dict[str, int] = {}
        for sample in _samples(self.deliveries_total):
            outcome = sample.labels["outcome"]
            totals[outcome] = totals.get(outcome, 0) + int(sample.value)
        return dict(sorted(totals.items()))

    def set_destination_stats(
        self, destinations: list[str], stats: dict[str, DestinationStats]
    ) -> None:
        self.ledger_gauges.snapshot = {
            name: stats.get(name, DestinationStats({}, 0.0, 0)) for name in destinations
        }


def _sources_of(gauge: Gauge) -> set[str]:
    """The `source` label values a gauge has series for."""
    return {
        sample.labels["source"]
        for family in gauge.collect()
        for sample in family.samples
    }


def _samples(counter: Counter) -> list[Any]:
    return [
        sample
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    ]


def _total(counter: Counter) -> float:
    return sum(sample.value for sample in _samples(counter))


class LedgerGauges(Collector):
    """Gauges over the ledger's deliveries, from the last poll cycle's snapshot.

    A collector of its own because `ticketbridge_deliveries` (a gauge) and
    `ticketbridge_deliveries_total` (a counter) are both part of the interface,
    and the client library refuses to register that pair. We expose the text
    format 0.0.4 only, where the two are separate families.
    """

    def __init__(self) -> None:
        self.snapshot: dict[str, DestinationStats] = {}

    def collect(self) -> Iterator[Metric]:
        states = GaugeMetricFamily(
            "ticketbridge_deliveries",
            "Deliveries in the ledger by state.",
            labels=["destination", "state"],
        )
        oldest = GaugeMetricFamily(
            "ticketbridge_oldest_pending_delivery_age_seconds",
            "Age of the oldest delivery not yet verified, skipped or dead.",
            labels=["destination"],
        )
        failures = GaugeMetricFamily(
            "ticketbridge_delivery_consecutive_failures_max",
            "Longest current failure streak of an active delivery.",
            labels=["destination"],
        )
        for name, entry in sorted(self.snapshot.items()):
            for state in STATES:
                states.add_metric([name, state], entry.counts.get(state, 0))
            oldest.add_metric([name], entry.oldest_pending_age)
            failures.add_metric([name], entry.max_consecutive_failures)
        yield from (states, oldest, failures)
