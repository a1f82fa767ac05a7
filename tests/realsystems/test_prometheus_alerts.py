"""A real Prometheus scrapes a real daemon and raises the dead-delivery alert.

Prometheus from Debian's package runs as a plain process on loopback with a
generated config (scrape and evaluation every second) and the production
rules file as it is: the alerts awaited here have no `for:` duration (a dead
delivery and a rejection are final facts, not blips), so no shortened copy
of the rules is needed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import Daemon, Sandbox, all_settled, wait_until

from .prometheus import RULES, PrometheusHarness

pytestmark = pytest.mark.realsystem

CREATE = {"method": "POST", "path_regex": "/rest/api/3/issue$"}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    server = Sandbox(tmp_path / "sandbox.log")
    yield server
    server.stop()


@pytest.fixture
def daemon(tmp_path: Path, sandbox: Sandbox) -> Iterator[Daemon]:
    """A daemon whose only destination is the sandbox's Jira."""
    process = Daemon(tmp_path / "daemon", sandbox.url)
    del process.config["destinations"]["snow_old"]
    del process.secrets["TICKETBRIDGE_DESTINATIONS__SNOW_OLD__PASSWORD"]
    process.write_config(process.config)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def prometheus(tmp_path: Path, daemon: Daemon) -> Iterator[PrometheusHarness]:
    target = f"127.0.0.1:{daemon.metrics_port}"
    with PrometheusHarness(tmp_path / "prometheus", [target], RULES) as server:
        yield server


def firing(prometheus: PrometheusHarness, name: str) -> list[dict[str, Any]]:
    return [
        alert
        for alert in prometheus.alerts()
        if alert["labels"]["alertname"] == name and alert["state"] == "firing"
    ]


def scraped_dead(prometheus: PrometheusHarness) -> list[float]:
    query = 'ticketbridge_deliveries{job="ticketbridge",state="dead"}'
    result = prometheus.api(f"query?query={query}")["result"]
    return [float(sample["value"][1]) for sample in result]


def last_evaluation(prometheus: PrometheusHarness) -> str:
    [group] = prometheus.api("rules")["groups"]
    return str(group["lastEvaluation"])


def test_dead_delivery_raises_its_alert_in_a_real_prometheus(
    daemon: Daemon, sandbox: Sandbox, prometheus: PrometheusHarness
) -> None:
    # Silent while nothing is dead: seen scraped at 0, then evaluated once more.
    wait_until(lambda: scraped_dead(prometheus) == [0.0], what="first scrape")
    seen = last_evaluation(prometheus)
    wait_until(lambda: last_evaluation(prometheus) != seen, what="an evaluation")
    assert firing(prometheus, "TicketbridgeDeliveryDead") == []

    # The destination refuses the create: permanent, so dead at once.
    sandbox.script_faults(CREATE, [{"status": 403}])
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 1), timeout=15, what="delivery dead")
    assert daemon.states()[("p1", "jira_new")] == "dead"

    [dead] = wait_until(
        lambda: firing(prometheus, "TicketbridgeDeliveryDead"),
        timeout=15,
        what="TicketbridgeDeliveryDead firing",
    )
    assert dead["labels"]["destination"] == "jira_new"
    assert dead["labels"]["severity"] == "critical"
    assert "1 deliveries to destination jira_new" in dead["annotations"]["description"]
    assert dead["annotations"]["runbook"].endswith("#ticketbridgedeliverydead")

    [rejected] = wait_until(
        lambda: firing(prometheus, "TicketbridgeDestinationRejecting"),
        timeout=15,
        what="TicketbridgeDestinationRejecting firing",
    )
    assert rejected["labels"]["status"] == "403"
