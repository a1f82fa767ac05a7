"""Metrics the alert rules depend on, read from a fresh registry."""

from ticketbridge.metrics import Metrics

INTERVAL = "ticketbridge_source_poll_interval_seconds"
LAST_SUCCESS = "ticketbridge_source_last_success_timestamp_seconds"


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_source_publishes_its_poll_interval() -> None:
    metrics = Metrics()

    metrics.set_sources({"nagios": 10.0, "legacy_db": 10.0})

    assert value(metrics, INTERVAL, source="nagios") == 10.0
    assert value(metrics, INTERVAL, source="legacy_db") == 10.0


def test_a_removed_source_leaves_no_series_that_could_look_stale() -> None:
    metrics = Metrics()
    metrics.set_sources({"nagios": 10.0, "legacy_db": 10.0})
    metrics.source_last_success.labels("legacy_db").set(1000.0)

    metrics.set_sources({"nagios": 5.0})

    assert value(metrics, INTERVAL, source="nagios") == 5.0
    assert value(metrics, INTERVAL, source="legacy_db") is None
    assert value(metrics, LAST_SUCCESS, source="legacy_db") is None


def test_rejection_series_start_at_zero_for_each_destination() -> None:
    metrics = Metrics()

    metrics.add_destination("jira_new")

    for status in ("401", "403", "404"):
        assert (
            value(
                metrics,
                "ticketbridge_destination_rejections_total",
                destination="jira_new",
                status=status,
            )
            == 0
        )
