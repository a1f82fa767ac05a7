"""Real processes for integration tests: the sandbox and the daemon, on loopback."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import free_port

SECRETS = {
    "TICKETBRIDGE_DESTINATIONS__JIRA_NEW__TOKEN": "it-jira-secret",
    "TICKETBRIDGE_DESTINATIONS__SNOW_OLD__PASSWORD": "it-snow-secret",
}


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError, ValueError):
            last = None
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")


def http_json(
    url: str,
    method: str = "GET",
    body: Any = None,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def http_text(
    url: str,
    *,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5, context=context) as response:
        return str(response.read().decode())


class Sandbox:
    """`ticketbridge sandbox` on a free loopback port, optionally with a
    rate profile of faults (`faults`, a JSON or YAML file)."""

    def __init__(self, log_path: Path, faults: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "ticketbridge", "sandbox"]
        command += ["--port", str(self.port)]
        if faults is not None:
            command += ["--faults", str(faults)]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until(
            lambda: http_json(f"{self.url}/_sandbox/tickets") is not None,
            what="sandbox to answer",
        )

    def tickets(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.url}/_sandbox/tickets")["tickets"])

    def requests(self) -> list[dict[str, Any]]:
        return list(http_json(f"{self.url}/_sandbox/requests")["requests"])

    def script_faults(
        self, match: dict[str, str], responses: list[dict], **rule: Any
    ) -> None:
        """Add a fault rule; `rule` takes further keys such as for_seconds."""
        http_json(
            f"{self.url}/_sandbox/faults",
            method="POST",
            body={"match": match, "responses": responses, **rule},
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()


class Daemon:
    """`ticketbridge run` as a child process with its own config, spool and ledger."""

    def __init__(
        self,
        workdir: Path,
        sandbox_url: str,
        spool: Path | None = None,
        **overrides: Any,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.spool = spool or workdir / "spool"
        self.spool.mkdir(parents=True, exist_ok=True)
        self.ledger = workdir / "ledger.sqlite3"
        self.metrics_port = free_port()
        self.config_path = workdir / "config.yaml"
        self.log_path = workdir / "daemon.log"
        self.config = self.default_config(sandbox_url)
        self.config.update(overrides)
        self.write_config(self.config)
        # Environment secrets; a test that drops a destination drops its secret.
        self.secrets = dict(SECRETS)
        self.process: subprocess.Popen[bytes] | None = None
        # Extra environment for the daemon and its commands; None removes.
        self.env: dict[str, str | None] = {}
        # How the test's own requests reach a metrics server with a web config.
        self.scheme = "http"
        self.client_tls: ssl.SSLContext | None = None
        self.client_headers: dict[str, str] = {}

    def default_config(self, sandbox_url: str) -> dict[str, Any]:
        return {
            "poll_interval": 0.3,
            "failure_threshold": 5,
            "shutdown_timeout": 3,
            "ledger": {"path": str(self.ledger)},
            "health": {"host": "127.0.0.1", "port": self.metrics_port},
            "sources": {"nagios": {"type": "spool", "path": str(self.spool)}},
            "destinations": {
                "jira_new": {
                    "type": "jira",
                    "url": sandbox_url,
                    "api_version": 3,
                    "project": "OPS",
                    "email": "bridge@example.invalid",
                    # The sandbox's search does not lag unless told to.
                    "search_lag": 0,
                    "timeout": 3,
                    "backoff_initial": 0.2,
                    "backoff_max": 1,
                },
                "snow_old": {
                    "type": "servicenow",
                    "url": sandbox_url,
                    "username": "bridge",
                    "timeout": 3,
                    "backoff_initial": 0.2,
                    "backoff_max": 1,
                },
            },
            "routes": [{"name": "all", "destinations": ["jira_new"]}],
        }

    def write_config(self, config: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.config_path.chmod(0o600)

    def environment(self) -> dict[str, str]:
        merged = {**os.environ, **self.secrets, **self.env}
        return {name: value for name, value in merged.items() if value is not None}

    def command(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run `ticketbridge --config <this config> ARGV...` with the daemon's env."""
        return subprocess.run(
            [sys.executable, "-m", "ticketbridge", "--config", str(self.config_path)]
            + list(argv),
            capture_output=True,
            text=True,
            env=self.environment(),
            timeout=30,
        )

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> None:
        """Start the daemon (with extra `env`); wait for /readyz unless told not."""
        env = {**self.environment(), **(env or {})}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ticketbridge",
                    "--config",
                    str(self.config_path),
                    "run",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        if wait:
            wait_until(self.ready, what="daemon /readyz")

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"daemon exited: {self.log()}")
        readyz = http_json(
            self.url("/readyz"), context=self.client_tls, headers=self.client_headers
        )
        return bool(readyz["status"] == "ready")

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.metrics_port}{path}"

    def metrics(self) -> str:
        return http_text(
            self.url("/metrics"), context=self.client_tls, headers=self.client_headers
        )

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample, 0 when absent."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics().splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric_name, _, label_text = series.partition("{")
            if metric_name != name:
                continue
            got = (
                ",".join(sorted(label_text.rstrip("}").split(",")))
                if label_text
                else ""
            )
            if got == wanted:
                return float(value)
        return 0.0

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=5)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.terminate()
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def deliveries(self) -> list[dict[str, Any]]:
        import sqlite3

        db = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute(
                "SELECT d.*, e.source_event_id, e.kind FROM deliveries d "
                "JOIN events e ON e.id = d.event_id ORDER BY d.id"
            ).fetchall()
        finally:
            db.close()
        return [dict(row) for row in rows]

    def states(self) -> dict[tuple[str, str], str]:
        return {
            (d["source_event_id"], d["destination"]): d["state"]
            for d in self.deliveries()
        }

    def notify(self, event_id: str, kind: str = "problem", **fields: str) -> None:
        """Drop one event file the way `ticketbridge notify` does (dot-name, rename)."""
        data = {
            "id": event_id,
            "kind": kind,
            "host": "web01",
            "check": "HTTP",
            "severity": "CRITICAL" if kind == "problem" else "OK",
            "summary": f"HTTP {kind}",
        }
        data.update(fields)
        temp = self.spool / f".{event_id}.tmp"
        temp.write_text(json.dumps(data), encoding="utf-8")
        temp.rename(self.spool / f"{time.time_ns()}-{event_id}.json")


def all_settled(daemon: Daemon, count: int) -> bool:
    states = daemon.states()
    return len(states) == count and all(
        s in ("verified", "skipped", "dead") for s in states.values()
    )


def stop_signal() -> signal.Signals:
    return signal.SIGTERM
