"""Probe results as metrics, log lines and observer calls."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

from tests.fakes import FakeDestination
from ticketbridge.breaker import CircuitState
from ticketbridge.destinations.base import ProbeResult
from ticketbridge.metrics import Metrics
from ticketbridge.preflight import Preflight, failures, passed, reachable


class Observer:
    """Stands in for the ledger's record_destination_status."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def __call__(
        self,
        destination: str,
        *,
        circuit_state: str | None = None,
        last_error: str | None = None,
        probes: list[ProbeResult] | None = None,
    ) -> None:
        self.calls.append(
            {
                "destination": destination,
                "circuit_state": circuit_state,
                "last_error": last_error,
                "probes": probes,
            }
        )


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


PROBE_OK = "ticketbridge_destination_probe_ok"
BAD = ProbeResult("credentials", False, "HTTP 401: refused")
GOOD = ProbeResult("project", True, "project OPS exists")


async def test_each_check_becomes_a_gauge() -> None:
    metrics = Metrics()
    fake = FakeDestination("jira")
    fake.probe_results = [BAD, GOOD]

    await Preflight(metrics).probe("jira", fake)

    assert sample(metrics, PROBE_OK, destination="jira", check="credentials") == 0
    assert sample(metrics, PROBE_OK, destination="jira", check="project") == 1


async def test_each_failed_check_is_an_error_line_with_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeDestination("jira")
    fake.probe_results = [BAD, GOOD]

    with caplog.at_level(logging.INFO, logger="ticketbridge.preflight"):
        await Preflight(Metrics()).probe("jira", fake)

    lines = [
        (r.levelname, r.getMessage(), r.__dict__.get("check"), r.__dict__.get("ok"))
        for r in caplog.records
    ]
    assert lines == [
        ("ERROR", "destination probe failed: HTTP 401: refused", "credentials", False),
        ("INFO", "destination probe passed: project OPS exists", "project", True),
        ("ERROR", "destination preflight failed", None, None),
    ]
    assert all(r.__dict__["destination"] == "jira" for r in caplog.records)


async def test_an_unchanged_pass_is_logged_only_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeDestination("jira")
    fake.probe_results = [GOOD]
    preflight = Preflight(Metrics())
    await preflight.probe("jira", fake)

    with caplog.at_level(logging.INFO, logger="ticketbridge.preflight"):
        caplog.clear()  # the first probe's line, when logging is already set up
        await preflight.probe("jira", fake)

    assert caplog.records == []


async def test_a_crashing_probe_is_one_failed_check() -> None:
    metrics = Metrics()
    fake = FakeDestination("jira")
    fake.failures["probe"] = [RuntimeError("bug")]  # type: ignore[list-item]

    [result] = await Preflight(metrics).probe("jira", fake)

    assert (result.check, result.ok) == ("probe", False)
    assert "bug" in result.detail
    assert sample(metrics, PROBE_OK, destination="jira", check="probe") == 0


async def test_checks_no_longer_made_and_removed_destinations_disappear() -> None:
    metrics = Metrics()
    preflight = Preflight(metrics)
    await preflight.report_all({"jira": [BAD], "snow": [GOOD]})

    await preflight.report_all({"jira": [GOOD]})

    text = generate_latest(metrics.registry).decode()
    assert 'check="credentials"' not in text
    assert 'destination="snow"' not in text
    assert sample(metrics, PROBE_OK, destination="jira", check="project") == 1


async def test_the_observer_hears_probes_and_circuit_changes() -> None:
    observer = Observer()
    metrics = Metrics()
    preflight = Preflight(metrics, observer)

    await preflight.report("jira", [BAD, GOOD])
    await preflight.circuit_changed("jira", CircuitState.OPEN, "5 failures")

    assert observer.calls == [
        {
            "destination": "jira",
            "circuit_state": None,
            "last_error": "HTTP 401: refused",
            "probes": [BAD, GOOD],
        },
        {
            "destination": "jira",
            "circuit_state": "open",
            "last_error": "5 failures",
            "probes": None,
        },
    ]
    assert (
        sample(metrics, "ticketbridge_destination_circuit_state", destination="jira")
        == 1
    )


async def test_a_failing_observer_does_not_stop_reporting() -> None:
    async def broken(destination: str, **fields: Any) -> None:
        raise RuntimeError("ledger locked")

    metrics = Metrics()
    await Preflight(metrics, broken).report("jira", [GOOD])
    assert sample(metrics, PROBE_OK, destination="jira", check="project") == 1


def test_a_transient_failure_means_unreachable_a_config_failure_does_not() -> None:
    down = ProbeResult("credentials", False, "HTTP 503", transient=True)
    assert not reachable([down, GOOD])
    assert reachable([BAD, GOOD])
    assert not passed([BAD, GOOD]) and passed([GOOD])


def test_failures_name_the_destination_path() -> None:
    assert failures({"jira": [BAD, GOOD]}) == [
        "destinations.jira: preflight credentials failed: HTTP 401: refused"
    ]
