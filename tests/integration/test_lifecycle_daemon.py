"""Lifecycle rules and migration modes: the real daemon against the sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from typing import Any

from tests.integration.processes import (
    SECRETS,
    Daemon,
    Sandbox,
    all_settled,
    wait_until,
)


def tickets(sandbox: Sandbox, system: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.tickets() if t["system"] == system]


def route(daemon: Daemon, **fields: Any) -> None:
    daemon.config["routes"] = [{"name": "main", **fields}]
    daemon.write_config(daemon.config)


def reload(daemon: Daemon) -> None:
    before = daemon.log().count("config reloaded")
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: daemon.log().count("config reloaded") > before, what="reload")


def as_a_person(
    sandbox: Sandbox, path: str, method: str = "GET", body: Any = None
) -> Any:
    """A call to the imitated Jira API as someone working in Jira by hand."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{sandbox.url}/rest/api/2{path}",
        data=data,
        method=method,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer a-person",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return json.loads(text) if text else None


def jira_comments(sandbox: Sandbox, key: str) -> list[str]:
    issue = as_a_person(sandbox, f"/issue/{key}?fields=comment")
    return [c["body"] for c in issue["fields"]["comment"]["comments"]]


def test_problem_within_reopen_window_reopens_the_jira_issue(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    route(daemon, destinations=["jira_new"], lifecycle={"reopen_window": "1h"})
    daemon.start()
    daemon.notify("p1")
    daemon.notify("r1", kind="recovery")
    wait_until(lambda: all_settled(daemon, 2))

    daemon.notify("p2")
    wait_until(lambda: all_settled(daemon, 3))

    [issue] = tickets(sandbox, "jira")
    assert issue["open"] and issue["status"] == "Open"
    assert daemon.states()[("p2", "jira_new")] == "verified"


def test_problem_after_reopen_window_opens_a_new_issue(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    route(daemon, destinations=["jira_new"], lifecycle={"reopen_window": "1s"})
    daemon.start()
    daemon.notify("p1")
    daemon.notify("r1", kind="recovery")
    wait_until(lambda: all_settled(daemon, 2))

    time.sleep(1.5)
    daemon.notify("p2")
    wait_until(lambda: all_settled(daemon, 3))

    assert [t["open"] for t in tickets(sandbox, "jira")] == [False, True]


def test_mirror_mode_links_the_twin_tickets(daemon: Daemon, sandbox: Sandbox) -> None:
    route(daemon, mode="mirror", old="snow_old", new="jira_new")
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 2))

    [incident] = tickets(sandbox, "servicenow")
    [issue] = tickets(sandbox, "jira")
    wait_until(lambda: jira_comments(sandbox, issue["key"]), what="twin note")
    wait_until(lambda: tickets(sandbox, "servicenow")[0]["comments"] == 1)

    assert jira_comments(sandbox, issue["key"]) == [
        f"Twin ticket: snow_old {incident['key']}"
    ]


def test_shadow_mode_creates_nothing_in_the_new_system(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    route(daemon, mode="shadow", old="snow_old", new="jira_new")
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 2))

    assert tickets(sandbox, "jira") == []
    assert len(tickets(sandbox, "servicenow")) == 1
    shadow = [d for d in daemon.deliveries() if d["destination"] == "jira_new"]
    assert [(d["state"], d["last_error"]) for d in shadow] == [("skipped", "shadow")]
    assert "shadow ticket rendered" in daemon.log()
    # Preflight probes read; nothing may be written to the new system.
    writes = [
        r
        for r in sandbox.requests()
        if r["method"] != "GET" and not r["path"].endswith("/search/jql")
    ]
    assert not [r for r in writes if r["path"].startswith("/rest/api")]


def test_routing_change_keeps_follow_ups_on_the_owning_system(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    route(daemon, mode="old", old="snow_old", new="jira_new")
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 1))

    route(daemon, mode="new", old="snow_old", new="jira_new")
    reload(daemon)
    report = migration_report(daemon)
    daemon.notify("r1", kind="recovery")
    wait_until(lambda: all_settled(daemon, 2))

    assert [t["open"] for t in tickets(sandbox, "servicenow")] == [False]
    assert tickets(sandbox, "jira") == []
    assert daemon.states()[("r1", "snow_old")] == "verified"
    [gap] = report
    assert (gap["old"]["state"], gap["new"]["state"]) == ("open", "missing")
    assert gap["old"]["checked"].startswith("open")


def test_ticket_a_person_resolved_is_left_alone(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 1))
    [issue] = tickets(sandbox, "jira")
    as_a_person(
        sandbox,
        f"/issue/{issue['key']}/transitions",
        "POST",
        {"transition": {"id": "31"}},
    )

    daemon.notify("r1", kind="recovery")
    wait_until(lambda: all_settled(daemon, 2))

    delivery = daemon.deliveries()[-1]
    assert (delivery["state"], delivery["last_error"]) == (
        "skipped",
        "closed by a person: status Done",
    )
    transitions = [
        r
        for r in sandbox.requests()
        if r["method"] == "POST" and r["path"].endswith("/transitions")
    ]
    assert len(transitions) == 1  # the person's, none of ours


def migration_report(daemon: Daemon) -> list[dict[str, Any]]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ticketbridge",
            "--config",
            str(daemon.config_path),
            "migration",
            "report",
            "--json",
            "--check",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **SECRETS},
        check=True,
    )
    gaps: list[dict[str, Any]] = json.loads(result.stdout)
    return gaps
