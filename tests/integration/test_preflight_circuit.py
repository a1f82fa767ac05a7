"""Preflight probes and the circuit breaker: the daemon as a real process
against the sandbox, with real signals."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

from tests.integration.processes import Daemon, Sandbox, all_settled, wait_until

PROBE_OK = "ticketbridge_destination_probe_ok"
CIRCUIT = "ticketbridge_destination_circuit_state"


def probe_ok(daemon: Daemon, check: str) -> float | None:
    """The gauge, or None while the check has not been reported yet."""
    wanted = f'{PROBE_OK}{{check="{check}",destination="jira_new"}}'
    for line in daemon.metrics().splitlines():
        if line.startswith(wanted + " "):
            return float(line.rpartition(" ")[2])
    return None


def test_outage_opens_the_circuit_and_every_event_lands_once_after(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """503 for several seconds: far longer than failure_threshold retries last."""
    daemon = Daemon(
        tmp_path / "daemon",
        sandbox.url,
        failure_threshold=3,
        breaker_threshold=3,
        breaker_cooldown=1,
    )
    try:
        daemon.start()
        wait_until(lambda: probe_ok(daemon, "credentials") == 1, what="first probe")
        sandbox.script_faults(
            {"path_regex": "^/rest/api/"}, [{"status": 503}], for_seconds=6
        )
        for n in range(4):
            daemon.notify(f"p{n}", host=f"web{n}")

        wait_until(lambda: daemon.metric(CIRCUIT, destination="jira_new") == 1)
        time.sleep(3)  # deep in the outage: retries alone would be dead by now
        during = daemon.deliveries()
        assert all(d["state"] in ("pending", "retrying") for d in during)
        assert max(d["consecutive_failures"] for d in during) < 3
        wait_until(lambda: all_settled(daemon, 4), timeout=30, what="recovery")

        assert set(daemon.states().values()) == {"verified"}
        assert daemon.metric(CIRCUIT, destination="jira_new") == 0
        markers = Counter(
            marker
            for ticket in sandbox.tickets()
            if ticket["system"] == "jira"
            for marker in ticket["labels"]
        )
        assert len(markers) == 4 and set(markers.values()) == {1}
        log = daemon.log()
        assert "circuit open" in log and "circuit half_open" in log
        assert "circuit closed" in log
    finally:
        daemon.stop()


def test_refused_credentials_show_as_probe_0_and_the_daemon_still_works(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    sandbox.script_faults(
        {"method": "GET", "path_regex": "/myself$"}, [{"status": 401}]
    )

    daemon.start()
    wait_until(lambda: probe_ok(daemon, "credentials") == 0, what="failed probe")
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")

    assert probe_ok(daemon, "project") == 0  # not checked after credentials
    log = daemon.log()
    assert "destination preflight failed" in log
    assert "destination probe failed: HTTP 401: Unauthorized (check email" in log


def test_reload_to_a_failing_config_is_refused_while_the_running_one_passes(
    daemon: Daemon,
) -> None:
    daemon.start()
    wait_until(lambda: probe_ok(daemon, "project") == 1, what="first probe")

    daemon.config["destinations"]["jira_new"]["project"] = "NOPE"
    daemon.write_config(daemon.config)
    daemon.signal(signal.SIGHUP)

    wait_until(lambda: daemon.metric("ticketbridge_config_reload_failures_total") == 1)
    assert daemon.metric("ticketbridge_config_last_reload_successful") == 0
    assert probe_ok(daemon, "project") == 1  # still the running config's
    assert "destinations.jira_new: preflight project failed" in daemon.log()
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")


def test_reload_is_accepted_when_the_running_config_fails_preflight_too(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    daemon = Daemon(tmp_path / "daemon", sandbox.url)
    daemon.config["destinations"]["jira_new"]["project"] = "GONE"
    daemon.write_config(daemon.config)
    try:
        daemon.start()
        wait_until(lambda: probe_ok(daemon, "project") == 0, what="first probe")

        daemon.config["destinations"]["jira_new"]["issue_type"] = "Nonsense"
        daemon.write_config(daemon.config)
        daemon.signal(signal.SIGHUP)

        wait_until(lambda: "new config fails preflight, accepted" in daemon.log())
        assert daemon.metric("ticketbridge_config_reload_failures_total") == 0
        assert daemon.metric("ticketbridge_config_last_reload_successful") == 1
    finally:
        daemon.stop()
