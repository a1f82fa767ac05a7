"""Prometheus from Debian's package, for tests: promtool and a private server.

`PrometheusHarness` runs `prometheus` as a plain process (never the system
service) on 127.0.0.1 with a free port, a generated config and a storage
folder of its own, and stops it by its PID.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

from tests.integration.processes import free_port, wait_until

INSTALL_HINT = "run `make test` (scripts/install-test-packages.sh installs it)"
RULES = Path(__file__).parents[2] / "config" / "prometheus" / "ticketbridge-alerts.yml"


def binary_or_fail(name: str) -> str:
    """Path of a binary of the prometheus package; a missing one fails the test.

    Not skipped: `make test` installs the package, so its absence is a fault.
    """
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}", pytrace=False)
    return found


def run_promtool(
    *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary_or_fail("promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class PrometheusHarness:
    """One Prometheus scraping `targets` as job "ticketbridge", with `rules`."""

    def __init__(
        self,
        workdir: Path,
        targets: list[str],
        rules: Path,
        interval: str = "1s",
        scrape: dict[str, Any] | None = None,
    ) -> None:
        """`scrape` adds settings to the job's scrape config (scheme, auth, TLS)."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "prometheus.yml"
        self.log_path = workdir / "prometheus.log"
        config = {
            "global": {
                "scrape_interval": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": "ticketbridge",
                    "static_configs": [{"targets": targets}],
                    **(scrape or {}),
                }
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary_or_fail("prometheus"),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    # The package's defaults point at its system folders.
                    "--web.console.templates=/nonexistent",
                    "--web.console.libraries=/nonexistent",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, timeout=20, what="prometheus /-/ready")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited: {self.log()}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)

    def api(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}", timeout=5) as reply:
            body = json.loads(reply.read().decode())
        assert body["status"] == "success", body
        return body["data"]

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> PrometheusHarness:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
