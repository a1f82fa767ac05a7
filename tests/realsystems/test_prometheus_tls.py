"""A real Prometheus scrapes the daemon over TLS with basic auth.

The scrape config is the README's example: scheme https, basic_auth with a
password file, tls_config.ca_file naming the daemon's self-signed certificate.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.processes import Daemon, wait_until
from tests.integration.test_metrics_tls import secured_daemon

from .prometheus import RULES, PrometheusHarness

pytestmark = pytest.mark.realsystem


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    process = secured_daemon(tmp_path / "daemon", password="scrape-s3cret")
    process.start()
    yield process
    process.stop()


def scrape_config(tmp_path: Path, daemon: Daemon, password: str) -> dict[str, object]:
    password_file = tmp_path / f"password-{password}"
    password_file.write_text(password, encoding="utf-8")
    return {
        "scheme": "https",
        "basic_auth": {"username": "prometheus", "password_file": str(password_file)},
        "tls_config": {"ca_file": str(daemon.workdir / "tls" / "server.crt")},
    }


def up(prometheus: PrometheusHarness) -> list[str]:
    result = prometheus.api('query?query=up{job="ticketbridge"}')["result"]
    return [sample["value"][1] for sample in result]


def test_prometheus_scrapes_over_tls_with_the_password(
    tmp_path: Path, daemon: Daemon
) -> None:
    """One case only: a real Prometheus costs about 5 s to start; the refusals
    are proved by the integration tests against the same daemon."""
    target = f"127.0.0.1:{daemon.metrics_port}"
    scrape = scrape_config(tmp_path, daemon, "scrape-s3cret")

    with PrometheusHarness(
        tmp_path / "prometheus", [target], RULES, scrape=scrape
    ) as prometheus:
        wait_until(lambda: up(prometheus), what="a first scrape")
        result = up(prometheus)

    assert result == ["1"]
