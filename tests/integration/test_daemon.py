"""The daemon as a real process against the sandbox, over real sockets."""

import signal
import time

from tests.integration.processes import Daemon, Sandbox, all_settled, wait_until
from ticketbridge.crashpoints import ENV as CRASH_ENV
from ticketbridge.crashpoints import EXIT_CODE as CRASH_EXIT


def marker_tickets(sandbox: Sandbox, system: str) -> list[dict]:
    return [t for t in sandbox.tickets() if t["system"] == system]


def test_problem_becomes_a_verified_ticket(daemon: Daemon, sandbox: Sandbox) -> None:
    daemon.start()
    daemon.notify("p1")

    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")

    tickets = marker_tickets(sandbox, "jira")
    assert len(tickets) == 1 and tickets[0]["open"]
    assert daemon.metric("ticketbridge_events_ingested_total", source="nagios") == 1


def test_recovery_resolves_the_ticket(daemon: Daemon, sandbox: Sandbox) -> None:
    daemon.start()
    daemon.notify("p1")
    daemon.notify("r1", kind="recovery")

    wait_until(lambda: all_settled(daemon, 2))

    assert set(daemon.states().values()) == {"verified"}
    tickets = marker_tickets(sandbox, "jira")
    assert len(tickets) == 1 and not tickets[0]["open"]


def test_repeat_problem_comments_instead_of_opening_another(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    daemon.start()
    daemon.notify("p1")
    wait_until(lambda: all_settled(daemon, 1))
    daemon.notify("p2", summary="still failing")
    wait_until(lambda: all_settled(daemon, 2))

    tickets = marker_tickets(sandbox, "jira")
    assert len(tickets) == 1
    assert tickets[0]["comments"] == 1


def test_route_writes_to_old_and_new_system(daemon: Daemon, sandbox: Sandbox) -> None:
    daemon.config["routes"] = [
        {"name": "both", "destinations": ["snow_old", "jira_new"]}
    ]
    daemon.write_config(daemon.config)
    daemon.start()
    daemon.notify("p1")
    daemon.notify("r1", kind="recovery")

    wait_until(lambda: all_settled(daemon, 4))

    assert set(daemon.states().values()) == {"verified"}
    assert [t["open"] for t in marker_tickets(sandbox, "servicenow")] == [False]
    assert [t["open"] for t in marker_tickets(sandbox, "jira")] == [False]


def test_bad_spool_file_is_rejected_and_the_daemon_keeps_running(
    daemon: Daemon,
) -> None:
    daemon.start()
    (daemon.spool / "broken.json").write_text("{not json", encoding="utf-8")

    reason = daemon.spool / "rejected" / "broken.json.reason"
    wait_until(reason.exists)
    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")

    assert "invalid JSON" in reason.read_text(encoding="utf-8")
    assert (
        daemon.metric(
            "ticketbridge_events_rejected_total", source="nagios", reason="json"
        )
        == 1
    )


def test_valid_reload_applies_new_routes(daemon: Daemon, sandbox: Sandbox) -> None:
    daemon.start()
    daemon.config["routes"] = [
        {"name": "quiet", "match": {"host": "web*"}, "drop": True},
        {"name": "all", "destinations": ["jira_new"]},
    ]
    daemon.write_config(daemon.config)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in daemon.log())

    daemon.notify("p1")
    wait_until(lambda: daemon.spool.joinpath("processed").glob("*p1.json"))
    time.sleep(0.5)

    assert daemon.deliveries() == []
    assert daemon.metric("ticketbridge_config_last_reload_successful") == 1


def test_invalid_reload_keeps_the_old_config(daemon: Daemon, sandbox: Sandbox) -> None:
    daemon.start()
    daemon.config_path.write_text("poll_interval: 0\njira_oops: {\n", encoding="utf-8")
    daemon.signal(signal.SIGHUP)
    wait_until(
        lambda: daemon.metric("ticketbridge_config_last_reload_successful") == 0,
        what="reload refused",
    )

    daemon.notify("p1")
    wait_until(lambda: daemon.states().get(("p1", "jira_new")) == "verified")

    assert daemon.process is not None and daemon.process.poll() is None
    assert "config reload refused" in daemon.log()
    assert daemon.metric("ticketbridge_config_reload_failures_total") == 1


def test_sigterm_stops_cleanly(daemon: Daemon) -> None:
    daemon.start()
    daemon.signal(signal.SIGTERM)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=15) == 0
    assert "ticketbridge stopped" in daemon.log()


def test_destination_500_and_429_are_retried_to_one_ticket(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/rest/api/3/issue$"},
        [{"status": 500}, {"status": 429, "headers": {"Retry-After": "1"}}],
    )
    daemon.start()
    daemon.notify("p1")

    wait_until(lambda: all_settled(daemon, 1), timeout=30)

    assert daemon.states()[("p1", "jira_new")] == "verified"
    assert len(marker_tickets(sandbox, "jira")) == 1
    assert (
        daemon.metric(
            "ticketbridge_deliveries_total",
            destination="jira_new",
            operation="create",
            outcome="retrying",
        )
        == 2
    )


def test_sigkill_mid_flight_then_restart_delivers_each_event_once(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    # The create is acted on by the server, but the answer comes too late.
    sandbox.script_faults(
        {"method": "POST", "path_regex": "/rest/api/3/issue$"},
        [{"delay": 30}, {"delay": 30}, {"delay": 30}],
    )
    daemon.start()
    for n in range(3):
        daemon.notify(f"p{n}", host=f"web{n}")
    wait_until(lambda: len(sandbox.tickets()) >= 1, what="a create in flight")

    daemon.kill()
    daemon.start()
    wait_until(lambda: all_settled(daemon, 3), timeout=40)

    hosts = sorted(t["summary"] for t in marker_tickets(sandbox, "jira"))
    assert len(hosts) == 3
    assert set(daemon.states().values()) == {"verified"}


def test_crash_after_ingest_leaves_the_file_and_delivers_it_once(
    daemon: Daemon, sandbox: Sandbox
) -> None:
    """The ledger has the event, the spool still has the file: no loss, no double."""
    daemon.notify("p1")
    daemon.start(env={CRASH_ENV: "after_ingest:1"}, wait=False)
    assert daemon.process is not None
    assert daemon.process.wait(timeout=20) == CRASH_EXIT
    assert list(daemon.spool.glob("*-p1.json"))

    daemon.start()
    wait_until(lambda: all_settled(daemon, 1), timeout=30)

    assert len(marker_tickets(sandbox, "jira")) == 1
    assert not list(daemon.spool.glob("*-p1.json"))
    assert daemon.metric("ticketbridge_events_ingested_total", source="nagios") == 0
