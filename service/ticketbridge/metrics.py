"""Prometheus metrics. Labels stay bounded: names from config, never event data."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ticketbridge.ledger import STATES, DestinationStats


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
        self.ledger_up = Gauge(
            "ticketbridge_ledger_writable",
            "1 while the last ledger write succeeded, else 0.",
            registry=r,
        )

    def observe_request(
        self, destination: str, operation: str, status: int | None, seconds: float
    ) -> None:
        self.request_duration.labels(destination, operation).observe(seconds)

    def set_destination_stats(
        self, destinations: list[str], stats: dict[str, DestinationStats]
    ) -> None:
        self.ledger_gauges.snapshot = {
            name: stats.get(name, DestinationStats({}, 0.0, 0)) for name in destinations
        }


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
