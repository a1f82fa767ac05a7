"""Faults that operators of monitoring-to-ticketing bridges reported, replayed.

Each test names the case it comes from (BC-xx in the project's case list) and
runs the daemon as a real process against the sandbox.
"""

import signal
import time
from datetime import datetime

import pytest

from tests.integration.processes import (
    Daemon,
    Sandbox,
    all_settled,
    http_json,
    wait_until,
)

ISSUE_CREATE = {"method": "POST", "path_regex": r"/rest/api/3/issue$"}


def creates(sandbox: Sandbox) -> list[dict]:
    return [
        r
        for r in sandbox.requests()
        if r["method"] == "POST" and r["path"] == "/rest/api/3/issue"
    ]


def issue_without_labels(key: str) -> dict:
    """A Jira issue as a screen configuration that drops labels returns it."""
    return {
        "id": "10000",
        "key": key,
        "fields": {
            "labels": [],
            "summary": "HTTP problem",
            "status": {"name": "To Do", "statusCategory": {"key": "new"}},
            "comment": {"total": 0, "comments": []},
        },
    }


def clear_faults(sandbox: Sandbox) -> None:
    http_json(f"{sandbox.url}/_sandbox/faults", method="DELETE")


def test_marker_dropped_by_the_destination_is_reported_and_never_recreated(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """BC-01: the label is silently dropped; the ledger, not a search, finds OPS-1."""
    daemon.config["failure_threshold"] = 2
    daemon.write_config(daemon.config)
    sandbox.script_faults(
        {"method": "GET", "path_regex": r"/rest/api/3/issue/[^/]+$"},
        [{"status": 200, "body": issue_without_labels("OPS-1")}] * 10,
    )
    daemon.start()
    daemon.notify("1001")
    wait_until(lambda: daemon.states().get(("1001", "jira_new")) == "dead", 30)
    clear_faults(sandbox)

    daemon.notify("1002")
    wait_until(lambda: all_settled(daemon, 2), timeout=30)

    first, repeat = daemon.deliveries()
    assert "OPS-1" in first["last_error"]
    assert "correlation marker missing" in first["last_error"]
    assert (repeat["operation"], repeat["ticket_key"]) == ("comment", "OPS-1")
    assert len(creates(sandbox)) == 1
    mismatches = daemon.metric(
        "ticketbridge_verifications_total", destination="jira_new", outcome="mismatch"
    )
    assert mismatches >= 3


def test_verification_and_repeats_use_the_ticket_id_never_a_search(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """BC-03: a search may lag behind the create; nothing here depends on one."""
    daemon.start()
    daemon.notify("1201")
    wait_until(lambda: all_settled(daemon, 1))
    daemon.notify("1202")
    wait_until(lambda: all_settled(daemon, 2))

    # The preflight probe at start searches once; after that, nothing may.
    requests = sandbox.requests()
    first_create = requests.index(creates(sandbox)[0])
    searches = [r for r in requests[first_create:] if "search" in r["path"]]
    assert searches == []
    assert len(creates(sandbox)) == 1
    assert [d["state"] for d in daemon.deliveries()] == ["verified", "verified"]


def test_201_and_204_answers_count_as_success_without_any_retry(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """BC-05: create answers 201 and the transition 204; neither is a failure."""
    daemon.config["destinations"]["jira_new"]["api_version"] = 2
    daemon.write_config(daemon.config)
    daemon.start()
    daemon.notify("1401")
    wait_until(lambda: all_settled(daemon, 1))
    daemon.notify("1402", kind="recovery")
    wait_until(lambda: all_settled(daemon, 2))

    answers = {
        (r["method"], r["path"].rsplit("/", 1)[-1]): r["status"]
        for r in sandbox.requests()
    }
    assert answers[("POST", "issue")] == 201
    assert answers[("POST", "transitions")] == 204
    assert [d["state"] for d in daemon.deliveries()] == ["verified", "verified"]
    assert daemon.metric(
        "ticketbridge_deliveries_total",
        destination="jira_new",
        operation="create",
        outcome="retrying",
    ) == pytest.approx(0)


def test_retry_after_zero_is_retried_and_a_longer_one_is_waited_out_in_full(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """BC-23: Retry-After is the least wait, and 0 still means "try again"."""
    sandbox.script_faults(
        ISSUE_CREATE,
        [
            {"status": 429, "headers": {"Retry-After": "0"}},
            {"status": 429, "headers": {"Retry-After": "2"}},
        ],
    )
    daemon.start()
    daemon.notify("1501")
    wait_until(lambda: all_settled(daemon, 1), timeout=30)

    posts = creates(sandbox)
    assert [p["status"] for p in posts] == [429, 429, 201]
    waited = datetime.fromisoformat(posts[2]["time"]) - datetime.fromisoformat(
        posts[1]["time"]
    )
    assert waited.total_seconds() >= 2
    assert len(sandbox.tickets()) == 1
    assert daemon.metric(
        "ticketbridge_deliveries_total",
        destination="jira_new",
        operation="create",
        outcome="retrying",
    ) == pytest.approx(2)


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("zero poll interval", lambda text: text + "poll_interval: 0\n"),
        ("unknown section", lambda text: text + "jira_oops:\n  url: x\n"),
        ("yaml syntax error", lambda text: text + "routes: [unclosed\n"),
    ],
)
def test_invalid_reload_while_a_create_is_in_flight_keeps_running_on_the_old_config(
    daemon: Daemon, sandbox: Sandbox, name: str, edit
) -> None:
    """BC-30: a bad SIGHUP never kills the daemon nor disturbs work in flight."""
    sandbox.script_faults(ISSUE_CREATE, [{"delay": 1.5}])
    daemon.start()
    daemon.notify("7001")
    wait_until(lambda: creates(sandbox), what="the create to be in flight")
    before = daemon.metric("ticketbridge_config_reload_failures_total")

    daemon.config_path.write_text(edit(daemon.config_path.read_text()))
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.metric("ticketbridge_config_reload_failures_total") > before,
        what=f"the {name} reload to be refused",
    )
    wait_until(lambda: all_settled(daemon, 1), timeout=30)
    time.sleep(0.5)

    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.metric("ticketbridge_config_last_reload_successful") == 0
    assert daemon.states()[("7001", "jira_new")] == "verified"
    assert len(sandbox.tickets()) == 1
    assert "reload refused" in daemon.log()


def test_resolve_whose_answer_was_lost_still_gets_the_recovery_comment(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """The transition takes but the connection drops: the retry adds the note."""
    daemon.start()
    daemon.notify("1601")
    wait_until(lambda: all_settled(daemon, 1))
    sandbox.script_faults(
        {"method": "POST", "path_regex": r"/transitions$"}, [{"reset": "after"}]
    )

    daemon.notify("1602", kind="recovery")
    wait_until(lambda: all_settled(daemon, 2), timeout=30)

    [ticket] = sandbox.tickets()
    assert ticket["status"] == "Done"
    assert ticket["comments"] == 1
    assert [d["state"] for d in daemon.deliveries()] == ["verified", "verified"]
